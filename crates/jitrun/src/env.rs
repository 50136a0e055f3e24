//! The command's environment: built, not inherited. The target's HOME, USER, LOGNAME and
//! SHELL, PATH = secure_path, TERM when it looks like a terminal name, and the variables
//! the rule keeps (`jit_policy::Rule::kept_env`: `env_keep` names on the known-safe list and
//! `env_keep_unchecked`), when their values are sane. Nothing else passes.
//!
//! A command that gains capabilities or another uid must not be steered by its caller's files
//! either: capabilities arrive as ambient capabilities, so the kernel does not mark the exec
//! secure (AT_SECURE) and programs read their user's dotfiles as usual (a Python `.pth` file in
//! `~/.local` runs inside the capable command). Such a command gets a HOME the caller cannot
//! write ([`NO_HOME`] when it runs as the caller herself, else the target's own home),
//! `PYTHONNOUSERSITE=1` and `PYTHONSAFEPATH=1`, and never the variables that point programs at
//! per-user configuration or code ([`steers_per_user_files`]), whatever `env_keep` says.

use crate::harden::EnvSnapshot;
use crate::identity::Target;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Longest value kept from the caller's environment.
const MAX_VALUE: usize = 4096;

/// HOME of a command that runs as its caller with capabilities: a path that does not exist
/// and that only root could create (Debian's convention for users without a home), so that
/// `~/.config`, `~/.local`, `~/.gitconfig`, `~/.inputrc`, `~/.terminfo`… read nothing.
pub const NO_HOME: &str = "/nonexistent";

/// What the run does to the caller's privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Her own uid and no capabilities: her environment and files are hers to use.
    Same,
    /// Capabilities, another uid, or both; `as_caller`: the uid stays hers.
    Elevated { as_caller: bool },
}

/// Variables that make programs read configuration or code from a path the caller chooses
/// (XDG base directories, git, terminfo, readline, OpenSSL, interpreters, temporary
/// directories…): never passed to an elevated command, even when `env_keep` names them.
fn steers_per_user_files(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "XDG_",
        "GIT_",
        "PYTHON",
        "PERL",
        "RUBY",
        "NODE_",
        "TERMINFO",
        "LESS",
        "OPENSSL_",
        "SSL_CERT_",
        "GNUPG",
        "KRB5",
    ];
    const NAMES: &[&str] = &[
        "INPUTRC",
        "CURL_HOME",
        "WGETRC",
        "VIMINIT",
        "EXINIT",
        "MYVIMRC",
        "GVIMINIT",
        "HISTFILE",
        "MANPATH",
        "TMPDIR",
        "TMP",
        "TEMP",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

fn sane_term(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(b))
}

/// A kept value must not smuggle code or paths: no bash function bodies, no control
/// characters, bounded size; locale and time-zone values must not be paths.
fn sane_value(name: &str, v: &[u8]) -> bool {
    if v.len() > MAX_VALUE || v.starts_with(b"()") || v.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return false;
    }
    let dotdot = v.windows(2).any(|w| w == b"..");
    if name == "TZ" {
        // A zone name (`Europe/Paris`, `UTC`, `:Europe/Paris`) is relative to the zoneinfo
        // directory; an absolute path or `..` would make the command read a file of the
        // caller's choosing with its new privileges.
        let zone = v.strip_prefix(b":").unwrap_or(v);
        return !zone.starts_with(b"/") && !dotdot;
    }
    let is_locale = name == "LANG" || name == "LANGUAGE" || name.starts_with("LC_");
    !(is_locale && (v.contains(&b'/') || dotdot))
}

/// The same list `policy check` refuses in `env_keep` (defence in depth: a rule that named
/// one of them never gets it).
fn forbidden(name: &str) -> bool {
    jit_policy::env_never_kept(name)
}

fn entry(name: &str, value: &[u8]) -> Option<CString> {
    let mut s = Vec::with_capacity(name.len() + 1 + value.len());
    s.extend_from_slice(name.as_bytes());
    s.push(b'=');
    s.extend_from_slice(value);
    CString::new(s).ok()
}

pub fn build(
    snapshot: &EnvSnapshot,
    target: &Target,
    secure_path: &str,
    env_keep: &[String],
    privilege: Privilege,
) -> Vec<CString> {
    let mut out = Vec::new();
    let home = match privilege {
        Privilege::Elevated { as_caller: true } => NO_HOME.as_bytes(),
        _ => target.home.as_os_str().as_bytes(),
    };
    out.extend(entry("HOME", home));
    out.extend(entry("USER", target.name.as_bytes()));
    out.extend(entry("LOGNAME", target.name.as_bytes()));
    out.extend(entry("SHELL", target.shell.as_os_str().as_bytes()));
    out.extend(entry("PATH", secure_path.as_bytes()));
    let mut fixed = vec!["HOME", "USER", "LOGNAME", "SHELL", "PATH"];
    let elevated = privilege != Privilege::Same;
    if elevated {
        // No user site-packages, and no script directory or working directory on sys.path.
        out.extend(entry("PYTHONNOUSERSITE", b"1"));
        out.extend(entry("PYTHONSAFEPATH", b"1"));
        fixed.extend(["PYTHONNOUSERSITE", "PYTHONSAFEPATH"]);
    }
    let lookup = |name: &str| {
        snapshot
            .iter()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.as_bytes())
    };
    if let Some(v) = lookup("TERM").filter(|v| sane_term(v)) {
        out.extend(entry("TERM", v));
    }
    for name in env_keep {
        if name == "TERM"
            || fixed.contains(&name.as_str())
            || forbidden(name)
            || (elevated && steers_per_user_files(name))
        {
            continue;
        }
        if let Some(v) = lookup(name).filter(|v| sane_value(name, v)) {
            out.extend(entry(name, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn target() -> Target {
        Target {
            name: "svc".into(),
            uid: 5,
            gid: 5,
            home: PathBuf::from("/srv"),
            shell: PathBuf::from("/bin/sh"),
            keep_groups: None,
        }
    }

    fn snap(v: &[(&str, &str)]) -> EnvSnapshot {
        v.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(env: &[CString]) -> Vec<String> {
        env.iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn only_the_built_environment_passes() {
        let s = snap(&[
            ("LD_PRELOAD", "/tmp/x.so"),
            ("IFS", "x"),
            ("TERM", "xterm-256color"),
            ("FOO", "bar"),
            ("HOME", "/home/alice"),
        ]);
        let env = names(&build(
            &s,
            &target(),
            "/usr/bin:/bin",
            &["FOO".into(), "LD_PRELOAD".into(), "PATH".into()],
            Privilege::Same,
        ));
        assert_eq!(
            env,
            [
                "HOME=/srv",
                "USER=svc",
                "LOGNAME=svc",
                "SHELL=/bin/sh",
                "PATH=/usr/bin:/bin",
                "TERM=xterm-256color",
                "FOO=bar"
            ]
        );
    }

    #[test]
    fn insane_values_are_dropped() {
        let s = snap(&[
            ("TERM", "../../evil"),
            ("LANG", "../../x"),
            ("TZ", "/etc/shadow"),
            ("F", "() { :; }; id"),
            ("LC_ALL", "C.UTF-8"),
        ]);
        let env = names(&build(
            &s,
            &target(),
            "/bin",
            &["LANG".into(), "TZ".into(), "F".into(), "LC_ALL".into()],
            Privilege::Same,
        ));
        assert_eq!(env[5..], ["LC_ALL=C.UTF-8"]);
    }

    #[test]
    fn time_zones_by_name_pass_paths_do_not() {
        for (tz, kept) in [
            ("Europe/Paris", true),
            ("UTC", true),
            (":Europe/Paris", true),
            (":/etc/shadow", false),
            ("/etc/shadow", false),
            ("../../etc/shadow", false),
            ("Europe/../../x", false),
        ] {
            let env = names(&build(
                &snap(&[("TZ", tz)]),
                &target(),
                "/bin",
                &["TZ".into()],
                Privilege::Same,
            ));
            assert_eq!(env.iter().any(|e| e == &format!("TZ={tz}")), kept, "{tz}");
        }
    }

    #[test]
    fn an_elevated_command_reads_nothing_of_its_callers() {
        let s = snap(&[
            ("XDG_CONFIG_HOME", "/home/alice/.config"),
            ("GIT_CONFIG_GLOBAL", "/home/alice/x"),
            ("TMPDIR", "/home/alice/tmp"),
            ("INPUTRC", "/home/alice/.inputrc"),
            ("LANG", "C.UTF-8"),
        ]);
        let keep: Vec<String> = [
            "XDG_CONFIG_HOME",
            "GIT_CONFIG_GLOBAL",
            "TMPDIR",
            "INPUTRC",
            "LANG",
        ]
        .map(String::from)
        .into();
        let same = names(&build(&s, &target(), "/bin", &keep, Privilege::Same));
        assert!(same.contains(&"HOME=/srv".to_string()));
        // TMPDIR is on the never-kept list (a policy that keeps it does not load): dropped here too.
        assert!(!same.iter().any(|e| e.starts_with("TMPDIR=")));
        assert!(same.contains(&"LANG=C.UTF-8".to_string()));
        let caller = names(&build(
            &s,
            &target(),
            "/bin",
            &keep,
            Privilege::Elevated { as_caller: true },
        ));
        assert_eq!(
            caller,
            [
                "HOME=/nonexistent",
                "USER=svc",
                "LOGNAME=svc",
                "SHELL=/bin/sh",
                "PATH=/bin",
                "PYTHONNOUSERSITE=1",
                "PYTHONSAFEPATH=1",
                "LANG=C.UTF-8"
            ]
        );
        let other = names(&build(
            &s,
            &target(),
            "/bin",
            &keep,
            Privilege::Elevated { as_caller: false },
        ));
        assert_eq!(other[0], "HOME=/srv");
    }
}
