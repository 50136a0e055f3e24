use super::programs::{data, identify};
use super::*;
use jit_policy::PolicySource;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A throwaway tree standing for `/`: Debian's alternatives links and a few scripts.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Tree {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("jitctl-lint-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for dir in ["usr/bin", "usr/sbin", "etc/alternatives", "usr/local/bin"] {
            std::fs::create_dir_all(d.join(dir)).unwrap();
        }
        let t = Tree(d);
        for f in [
            "usr/bin/vim.basic",
            "usr/bin/less",
            "usr/bin/python3.11",
            "usr/bin/cat",
        ] {
            t.file(f, "\x7fELF");
        }
        t.link("usr/bin/editor", "/etc/alternatives/editor");
        t.link("etc/alternatives/editor", "/usr/bin/vim.basic");
        t.link("usr/bin/ex", "/etc/alternatives/ex");
        t.link("etc/alternatives/ex", "/usr/bin/vim.basic");
        t.link("usr/bin/pager", "/etc/alternatives/pager");
        t.link("etc/alternatives/pager", "../../usr/bin/less");
        t.link("usr/bin/python3", "python3.11");
        t.file("usr/local/bin/report", "#!/usr/bin/python3\nprint('hi')\n");
        t.file(
            "usr/local/bin/report-env",
            "#!/usr/bin/env python3\nprint('hi')\n",
        );
        t.file("usr/local/bin/backup.sh", "#!/bin/sh\necho hi\n");
        t.file(
            "usr/local/bin/report-isolated",
            "#!/usr/bin/python3 -I\nprint('hi')\n",
        );
        t
    }
    fn file(&self, rel: &str, text: &str) {
        std::fs::write(self.0.join(rel), text).unwrap();
    }
    fn link(&self, rel: &str, target: &str) {
        symlink(target, self.0.join(rel)).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(text: &str) -> Policy {
    Policy::load(&[PolicySource {
        name: "p.toml".to_string(),
        text: text.to_string(),
    }])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn run(text: &str, root: &Path) -> Vec<Finding> {
    let settings = Settings::default();
    lint_on(
        &load(text),
        &Host {
            settings: &settings,
            root,
        },
    )
}

fn findings(text: &str) -> Vec<(usize, &'static str)> {
    let tree = Tree::new("plain");
    run(text, &tree.0)
        .into_iter()
        .map(|f| (f.line, f.code))
        .collect()
}

fn codes_for(rule_body: &str, tree: &Tree) -> Vec<&'static str> {
    let text = format!("[[rule]]\nname = \"r\"\nusers = [\"a\"]\nmin_approvals = 1\n{rule_body}\n");
    run(&text, &tree.0).into_iter().map(|f| f.code).collect()
}

#[test]
fn recording_input() {
    let rule = "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/true\"]\n";
    let codes = |extra: &str| -> Vec<(usize, &'static str)> {
        findings(&format!("{rule}{extra}"))
            .into_iter()
            .filter(|(_, c)| *c == "records-input" || *c == "no-effect")
            .collect()
    };
    assert_eq!(codes("record = true\n"), []);
    assert_eq!(
        codes("record = true\nrecord_input = true\n"),
        [(6, "records-input")]
    );
    assert_eq!(codes("record_input = true\n"), [(5, "no-effect")]);
}

#[test]
fn allow_comments() {
    let text = "a\n# jitctl-lint: allow(standing-access) migration until May\ngrant = \"none\"\nx = 1 # jitctl-lint: allow(shadowed)\n";
    assert!(allowed_at(text, 3, "standing-access"));
    assert!(allowed_at(text, 2, "standing-access"));
    assert!(!allowed_at(text, 3, "shadowed"));
    assert!(allowed_at(text, 4, "shadowed"));
    assert!(!allowed_at(text, 1, "standing-access"));
    assert!(
        !allowed_at("jitctl-lint: allow(x)\n", 1, "x"),
        "only in a comment"
    );
}

#[test]
fn data_file_parses() {
    let d = data();
    assert!(d.interpreters.iter().any(|i| i == "python*"));
    assert!(d.runners.iter().any(|i| i == "env"));
    assert!(d.escape.iter().any(|e| e.names.iter().any(|n| n == "less")));
    let ip = d
        .escape
        .iter()
        .find(|e| e.names.iter().any(|n| n == "ip"))
        .unwrap();
    let open = |p: &str| ip.open_in(&CommandPattern::parse_str(p).unwrap());
    assert!(open("/usr/sbin/ip **") && open("/usr/sbin/ip -s **") && open("/usr/sbin/ip netns **"));
    assert!(open("/usr/sbin/ip -batch *") && open("/usr/sbin/ip * link"));
    assert!(!open("/usr/sbin/ip link **") && !open("/usr/sbin/ip -s link **"));
    assert!(!open("/usr/sbin/ip link set * up"));
    // Every lint id is documented with a line.
    for (id, what) in LINTS {
        assert!(!id.is_empty() && !what.is_empty());
    }
}

#[test]
fn identities_follow_links_and_alternatives() {
    let tree = Tree::new("ids");
    let secure = ["/usr/local/bin", "/usr/bin"];
    let id = identify(&tree.0, "/usr/bin/editor", &secure);
    assert_eq!(id.names, ["editor", "vim.basic"]);
    let id = identify(&tree.0, "/usr/bin/pager", &secure);
    assert_eq!(id.names, ["pager", "less"]);
    let id = identify(&tree.0, "/usr/local/bin/report-env", &secure);
    assert_eq!(id.interpreter_shown.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(id.interpreter.unwrap().names, ["python3", "python3.11"]);
    // Not on this machine: the name as written.
    assert_eq!(identify(&tree.0, "/opt/x/vim", &secure).names, ["vim"]);
}

#[test]
fn a_clean_rule_has_no_findings() {
    assert_eq!(
        findings("[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/ip link **\", \"/usr/bin/cat /var/log/syslog\"]\ncapabilities = [\"net_admin\"]\nmin_approvals = 1\n"),
        []
    );
    // Without privilege, shells and escapes give nothing away.
    assert_eq!(
        findings("[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/bash **\", \"/usr/bin/less **\", \"/usr/bin/cat *\"]\n"),
        []
    );
}

#[test]
fn each_lint_fires_at_its_line() {
    let text = "[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\n  \"/usr/bin/bash **\",\n  \"/usr/bin/env **\",\n  \"/usr/bin/env /usr/bin/python3 x.py\",\n  \"/usr/bin/vim **\",\n  \"/usr/bin/vim /etc/hosts\",\n  \"/opt/tool/bin/x\",\n]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\ngrant = \"none\"\nhosts = [\"10.0.0.0/8\"]\nauthenticate = true\n";
    assert_eq!(
        findings(text),
        [
            (14, "standing-access"),
            (13, "all-capabilities"),
            (15, "never-matches"),
            (5, "shell-with-privilege"),
            (6, "runs-any-command"),
            (7, "shell-with-privilege"),
            (8, "shell-escape"),
            (8, "arbitrary-file"),
            (9, "shell-escape"),
            (10, "outside-secure-path"),
        ]
    );
}

/// The thirteen traps of issue 13: each a warning, at the rule's line, with what to do.
#[test]
fn the_thirteen_traps() {
    let tree = Tree::new("traps");
    let cases: &[(&str, &str)] = &[
        // `*` matches `/` and `..`: also a run-time refusal (pattern.rs).
        ("commands = [\"/usr/bin/cat /var/log/*\"]\ncapabilities = [\"CAP_DAC_READ_SEARCH\"]", "glob-crosses-directories"),
        // Shell escapes with fixed arguments, by resolved identity.
        ("commands = [\"/usr/bin/vim.basic /etc/hosts\"]\nrun_as = \"root\"", "shell-escape"),
        ("commands = [\"/usr/bin/ex\"]\nrun_as = \"root\"", "shell-escape"),
        ("commands = [\"/usr/bin/pager /var/log/syslog\"]\nrun_as = \"root\"", "shell-escape"),
        // Arguments that name an arbitrary path without `**`.
        ("commands = [\"/usr/sbin/ip -batch *\"]\ncapabilities = [\"CAP_NET_ADMIN\"]", "shell-escape"),
        ("commands = [\"/usr/bin/tcpdump -w *\"]\ncapabilities = [\"CAP_NET_RAW\", \"CAP_DAC_OVERRIDE\"]", "arbitrary-file"),
        ("commands = [\"/usr/bin/tee /var/log/app/*\"]\nrun_as = \"root\"", "glob-crosses-directories"),
        // Capabilities that are root in disguise on any command.
        ("commands = [\"/usr/bin/id\"]\ncapabilities = [\"CAP_SETUID\"]", "root-equivalent-capability"),
        ("commands = [\"/usr/bin/id\"]\ncapabilities = [\"CAP_SYS_ADMIN\"]", "root-equivalent-capability"),
        ("commands = [\"/usr/bin/id\"]\ncapabilities = [\"CAP_SYS_MODULE\"]", "root-equivalent-capability"),
        ("commands = [\"/usr/bin/id\"]\ncapabilities = [\"CAP_SYS_PTRACE\"]", "root-equivalent-capability"),
        ("commands = [\"/usr/bin/tee /srv/app/state\"]\ncapabilities = [\"CAP_DAC_OVERRIDE\"]", "root-equivalent-capability"),
        // Programs that read the caller's configuration.
        ("commands = [\"/usr/bin/git -C /srv/repo status\"]\nrun_as = \"root\"", "reads-caller-config"),
        ("commands = [\"/usr/local/bin/report\"]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]", "script-interpreter"),
    ];
    for (body, code) in cases {
        let got = codes_for(body, &tree);
        assert!(got.contains(code), "{body}: expected {code}, got {got:?}");
    }
    // The messages say what goes wrong and what to write instead.
    let msg = |body: &str, code: &str| {
        let text = format!("[[rule]]\nname = \"r\"\nusers = [\"a\"]\nmin_approvals = 1\n{body}\n");
        run(&text, &tree.0)
            .into_iter()
            .find(|f| f.code == code)
            .unwrap()
            .message
    };
    let m = msg(cases[0].0, "glob-crosses-directories");
    assert!(m.contains("write \"path:/var/log/*\""), "{m}");
    let m = msg(cases[1].0, "shell-escape");
    assert!(
        m.contains(":!sh") && m.contains("keeps the identity of root"),
        "{m}"
    );
    let m = msg(cases[3].0, "shell-escape");
    assert!(m.contains("(/usr/bin/pager is less)"), "{m}");
    let m = msg(cases[5].0, "arbitrary-file");
    assert!(
        m.contains("\"*\" is open to any path") && m.contains("path:"),
        "{m}"
    );
    let m = msg(cases[7].0, "root-equivalent-capability");
    assert!(m.contains("setuid(0)"), "{m}");
    let m = msg(cases[12].0, "reads-caller-config");
    assert!(m.contains("core.fsmonitor") && m.contains("wrapper"), "{m}");
    let m = msg(cases[13].0, "script-interpreter");
    assert!(
        m.contains("user site directory") && m.contains("python3 -I"),
        "{m}"
    );
}

#[test]
fn narrower_forms_are_quiet() {
    let tree = Tree::new("quiet");
    for body in [
        // A path glob cannot leave its directory.
        "commands = [\"/usr/bin/cat path:/var/log/*\"]\ncapabilities = [\"CAP_DAC_READ_SEARCH\"]",
        // tar with fixed arguments; systemctl with a unit and no pager.
        "commands = [\"/usr/bin/tar --create --file=- --directory=/ etc\"]\ncapabilities = [\"CAP_DAC_READ_SEARCH\"]",
        "commands = [\"/usr/bin/systemctl restart nginx\", \"/usr/bin/systemctl --no-pager status nginx\"]\nrun_as = \"root\"",
        // A glob that is an option's value, or cannot begin with '-'.
        "commands = [\"/usr/bin/tcpdump -n -i * -c * port [0-9]*\"]\ncapabilities = [\"CAP_NET_RAW\"]",
        // A capture file confined to its directory.
        "commands = [\"/usr/bin/tcpdump -n -i * -w path:/var/tmp/capture/*.pcap\"]\ncapabilities = [\"CAP_NET_RAW\", \"CAP_DAC_OVERRIDE\"]\nallow_risks = [\"root-equivalent-capability\"]",
        // A shell script (no per-user code), and a python script run as a dedicated user.
        "commands = [\"/usr/local/bin/backup.sh\"]\ncapabilities = [\"CAP_NET_RAW\"]",
        "commands = [\"/usr/local/bin/report\"]\nrun_as = \"svc\"",
        "commands = [\"/usr/local/bin/report-isolated\"]\ncapabilities = [\"CAP_NET_RAW\"]",
        // git as the caller without privilege.
        "commands = [\"/usr/bin/git **\"]",
    ] {
        let got: Vec<&str> = codes_for(body, &tree)
            .into_iter()
            .filter(|c| !matches!(*c, "root-equivalent-capability"))
            .collect();
        assert_eq!(got, Vec::<&str>::new(), "{body}");
    }
    let systemctl_status = codes_for(
        "commands = [\"/usr/bin/systemctl status nginx\"]\nrun_as = \"root\"",
        &tree,
    );
    assert_eq!(
        systemctl_status,
        ["shell-escape"],
        "status pages through less"
    );
    let awk = |pattern: &str| {
        codes_for(
            &format!("commands = [\"{pattern}\"]\nrun_as = \"root\""),
            &tree,
        )
    };
    assert!(!awk("/usr/bin/awk -F: {print$1} /etc/passwd").contains(&"shell-escape"));
    assert!(
        awk("/usr/bin/awk * /etc/passwd").contains(&"shell-escape"),
        "* can be BEGIN{{system(...)}}"
    );
    assert!(awk("/usr/bin/mawk **").contains(&"shell-escape"));
    let tar_glob = codes_for(
        "commands = [\"/usr/bin/tar -cf /tmp/x.tar *\"]\ncapabilities = [\"CAP_DAC_READ_SEARCH\"]",
        &tree,
    );
    assert!(
        tar_glob.contains(&"shell-escape"),
        "* can be --use-compress-program: {tar_glob:?}"
    );
}

#[test]
fn allow_risks_acknowledges_and_stale_ones_are_reported() {
    let tree = Tree::new("ack");
    let text = "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/ex\"]\nrun_as = \"root\"\nmin_approvals = 2\nallow_risks = [\"shell-escape\", \"shadowed\", \"shel-escape\"]\n";
    let f = run(text, &tree.0);
    let esc = f.iter().find(|f| f.code == "shell-escape").unwrap();
    assert!(esc.acknowledged);
    let unused: Vec<&Finding> = f.iter().filter(|f| f.code == "unused-allow-risk").collect();
    assert_eq!(unused.len(), 2, "{f:?}");
    assert!(unused.iter().all(|u| !u.acknowledged && u.line == 7));
    assert!(unused[0]
        .message
        .contains("\"shadowed\", but the rule has no such finding"));
    assert!(unused[1]
        .message
        .contains("not a lint id (did you mean \"shell-escape\"?)"));
}

#[test]
fn all_capabilities_with_approvers_is_break_glass() {
    assert_eq!(
        findings("[[rule]]\nname = \"bg\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/reboot\"]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\nmin_approvals = 2\n"),
        []
    );
    assert_eq!(
        findings("[[rule]]\nname = \"bg\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/reboot\"]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\n"),
        [(6, "all-capabilities")]
    );
}

#[test]
fn env_keep_unchecked_is_flagged_per_name() {
    let tree = Tree::new("env");
    let text = "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/id\"]\nmin_approvals = 1\nenv_keep_unchecked = [\"APP_MODE\", \"APP_ZONE\"]\n";
    let f = run(text, &tree.0);
    let codes: Vec<(usize, &str)> = f.iter().map(|f| (f.line, f.code)).collect();
    assert_eq!(
        codes,
        [(6, "env-keep-unchecked"), (6, "env-keep-unchecked")]
    );
    assert!(f[0].message.contains("APP_MODE") && f[1].message.contains("APP_ZONE"));
}

#[test]
fn shadowed_standing_rules() {
    let text = "[[rule]]\nname = \"a\"\nusers = [\"u\", \"v\"]\ncommands = [\"/usr/bin/journalctl **\"]\ngrant = \"none\"\n\n[[rule]]\nname = \"b\"\nusers = [\"u\"]\nhosts = [\"web-*\"]\ncommands = [\"/usr/bin/journalctl -u *\"]\ngrant = \"none\"\n";
    assert_eq!(
        findings(text),
        [
            (5, "standing-access"),
            (12, "standing-access"),
            (7, "shadowed")
        ]
    );
    // A different identity, or someone the first does not name, is not shadowed.
    let text2 = text.replace("users = [\"u\"]\nhosts", "users = [\"w\"]\nhosts");
    assert!(!findings(&text2).iter().any(|f| f.1 == "shadowed"));
    let text3 = text.replace(
        "hosts = [\"web-*\"]",
        "hosts = [\"web-*\"]\nrun_as = \"root\"",
    );
    assert!(!findings(&text3).iter().any(|f| f.1 == "shadowed"));
}
