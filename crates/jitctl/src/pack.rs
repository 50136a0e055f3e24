//! Policy packages: `jitctl policy pack` builds `jitrun-policy-NAME_V_all.deb`, whose
//! postinst runs `jitctl policy activate NAME --priority NN`.
//!
//! Activation never makes a policy live that jitrun could not load: it assembles the
//! candidate (the host's policy.toml and policy.d/ with this package's file added or
//! replaced as `NN-NAME.toml`) in a private temporary directory, loads it with the loader
//! jitrun uses, and only then renames the new file into place (written beside it first, so
//! the switch is atomic). On failure it says why and exits non-zero: dpkg leaves the package
//! half-configured and policy.d untouched, so the previous policy (on an upgrade, the
//! previous version's file) stays active. Once activated, the policy snapshot jitrun reads is
//! compiled ahead of time (`compile.rs`).

use crate::cli::{ActivateArgs, PackArgs};
use crate::error::{io_error, CliError, Result};
use crate::policy::{load_sources, policy_files};
use jit_policy::test_case::run_test;
use jit_policy::{load_tests, Policy, PolicySource, PolicyTest};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a policy package installs its files (one directory per package).
pub const PACKAGES_DIR: &str = "/usr/share/jitrun/policy-packages";
/// The jitrun configuration directory (policy.toml, policy.d/).
pub const ETC_DIR: &str = "/etc/jitrun";
/// First line of every file `activate` writes: how it knows its own files.
const MARKER: &str = "# jitrun-policy-package: ";

/// `jitrun-policy-NAME` must be a Debian package name, and `NN-NAME.toml` a plain file name.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 100
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid policy package name {name:?}: lower-case letters, digits, '-' and '.', starting with a letter or digit (the package is called jitrun-policy-NAME)"
        )
        .into())
    }
}

/// A Debian version: `[EPOCH:]UPSTREAM[-REVISION]`, UPSTREAM starting with a digit.
fn check_version(what: &str, v: &str) -> Result<()> {
    let rest = match v.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        Some(_) => "",
        None => v,
    };
    let ok = v.len() <= 100
        && rest.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && !rest.ends_with('-')
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {v:?}: a Debian version such as 1.0, 2.3-1 or 1:4.0~rc1 (starts with a digit; letters, digits, '.', '+', '~', '-')"
        )
        .into())
    }
}

fn check_priority(p: u8) -> Result<()> {
    if p > 99 {
        return Err(format!(
            "invalid priority {p}: 0 to 99 (the file is policy.d/NN-NAME.toml, loaded in name order)"
        )
        .into());
    }
    Ok(())
}

fn target_name(name: &str, priority: u8) -> String {
    format!("{priority:02}-{name}.toml")
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
    String::from_utf8(bytes).map_err(|e| {
        CliError(format!(
            "{}: not UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The one file `activate` writes: a marker line, then every policy file of the package in
/// name order, each introduced by a comment naming it.
fn combine(name: &str, files: &[PathBuf]) -> Result<String> {
    let mut out = format!(
        "{MARKER}{name}\n# Written by `jitctl policy activate` from {PACKAGES_DIR}/{name}/ (package jitrun-policy-{name}).\n# Do not edit: the next upgrade replaces it and removing the package deletes it.\n"
    );
    for f in files {
        let text = read_text(f)?;
        out.push_str(&format!("\n# ---- {} ----\n", f.display()));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The package's policy files, in name order.
fn package_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = policy_files(&[dir.to_path_buf()])?;
    if files.is_empty() {
        return Err(format!("{}: no *.toml policy files", dir.display()).into());
    }
    Ok(files)
}

/// A private directory (0700) under `parent`, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, prefix: &str) -> Result<TempDir> {
        let template = parent.join(format!("{prefix}XXXXXX"));
        let path = nix::unistd::mkdtemp(&template).map_err(|e| {
            CliError(format!(
                "cannot create a temporary directory in {}: {}",
                parent.display(),
                e.desc()
            ))
        })?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error("cannot create", path, &e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error("cannot write", path, &e))?;
    // The mode given to open() is filtered by the umask; say exactly what is meant.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("cannot set the mode of", path, &e))
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| io_error("cannot create", path, &e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("cannot set the mode of", path, &e))
}

// ---- pack ------------------------------------------------------------------------------

fn control(args: &PackArgs) -> String {
    let depends = match &args.depends_version {
        Some(v) => format!("jitrun (>= {v})"),
        None => "jitrun".to_string(),
    };
    let target = target_name(&args.name, args.priority);
    let summary = args
        .description
        .clone()
        .unwrap_or_else(|| format!("jitrun policy {}", args.name));
    format!(
        "Package: jitrun-policy-{name}\nVersion: {version}\nArchitecture: all\nMaintainer: {maintainer}\nDepends: {depends}\nSection: admin\nPriority: optional\nDescription: {summary}\n Policy rules for jitrun, installed to {PACKAGES_DIR}/{name}/\n and activated into /etc/jitrun/policy.d/{target} only if the host's\n whole policy still loads; otherwise the installation fails and the\n previous policy stays active. Removing the package removes its rules.\n",
        name = args.name,
        version = args.version,
        maintainer = args.maintainer,
    )
}

fn postinst(name: &str, priority: u8) -> String {
    format!(
        "#!/bin/sh\n# postinst of jitrun-policy-{name} (made by jitctl policy pack).\n# Activation fails, and so does this script, when the resulting policy would not load:\n# the package stays half-configured and the previous policy stays active.\nset -e\n\ncase \"$1\" in\nconfigure)\n    /usr/bin/jitctl policy activate {name} --priority {priority:02}\n    ;;\nesac\n\nexit 0\n"
    )
}

fn postrm(name: &str) -> String {
    // Every NN-NAME.toml this package activated (whatever its priority), never a file that
    // does not carry the package's marker line.
    format!(
        "#!/bin/sh\n# postrm of jitrun-policy-{name} (made by jitctl policy pack): removing the package removes its rules.\nset -e\n\ncase \"$1\" in\nremove|purge)\n    for f in /etc/jitrun/policy.d/[0-9][0-9]-{name}.toml; do\n        if [ -f \"$f\" ] && [ \"$(head -n 1 \"$f\")\" = \"{MARKER}{name}\" ]; then\n            rm -f \"$f\"\n        fi\n    done\n    # The policy changed: compile the snapshot jitrun reads (else its first run does).\n    if [ -x /usr/bin/jitctl ]; then\n        /usr/bin/jitctl policy compile >/dev/null 2>&1 || true\n    fi\n    ;;\nesac\n\nexit 0\n"
    )
}

/// The file name dpkg-deb and apt use: the version without its epoch.
fn deb_file_name(name: &str, version: &str) -> String {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    format!("jitrun-policy-{name}_{v}_all.deb")
}

fn check_pack_args(args: &PackArgs) -> Result<()> {
    check_name(&args.name)?;
    check_version("version", &args.version)?;
    if let Some(v) = &args.depends_version {
        check_version("--depends-version", v)?;
    }
    check_priority(args.priority)?;
    if args.maintainer.contains('\n') {
        return Err("--maintainer: one line, such as \"Fleet Admins <admins@example.com>\"".into());
    }
    if args
        .description
        .as_deref()
        .is_some_and(|d| d.contains('\n'))
    {
        return Err("--description: one line".into());
    }
    Ok(())
}

/// The package's own policy must load, with its `[[test]]` cases (the host check, with the
/// host's other files, runs at installation), and so must its files once combined into one.
/// Returns how many rules and tests it has.
fn check_package_policy(args: &PackArgs, files: &[PathBuf]) -> Result<(usize, usize)> {
    let sources = load_sources(files)?;
    let own = load_with_tests(&sources).map_err(|e| {
        CliError(format!(
            "{e}; the package was not built (check it with: jitctl policy check {})",
            args.dir.display()
        ))
    })?;
    let combined = [PolicySource {
        name: target_name(&args.name, args.priority),
        text: combine(&args.name, files)?,
    }];
    let merged = load_with_tests(&combined).ok();
    let counts = (own.0.rules.len(), own.1.len());
    if merged.is_none_or(|(policy, tests)| (policy.rules.len(), tests.len()) != counts) {
        return Err(format!(
            "{}: the files do not combine into one policy file; write every rule as a [[rule]] table and every test as a [[test]] table (no top-level keys or inline arrays of tables)",
            args.dir.display()
        )
        .into());
    }
    Ok(counts)
}

/// The rules and the `[[test]]` cases of `sources`.
fn load_with_tests(
    sources: &[PolicySource],
) -> std::result::Result<(Policy, Vec<PolicyTest>), jit_policy::PolicyError> {
    Ok((Policy::load(sources)?, load_tests(sources)?))
}

/// The package's tree under `root`: DEBIAN/ (control, postinst, postrm) and the policy files
/// under PACKAGES_DIR/NAME/.
fn stage_package(args: &PackArgs, files: &[PathBuf], root: &Path) -> Result<()> {
    let debian = root.join("DEBIAN");
    let share = root.join(format!("usr/share/jitrun/policy-packages/{}", args.name));
    for d in [
        root.to_path_buf(),
        debian.clone(),
        root.join("usr"),
        root.join("usr/share"),
        root.join("usr/share/jitrun"),
        root.join("usr/share/jitrun/policy-packages"),
        share.clone(),
    ] {
        mkdir(&d, 0o755)?;
    }
    write_file(&debian.join("control"), &control(args), 0o644)?;
    write_file(
        &debian.join("postinst"),
        &postinst(&args.name, args.priority),
        0o755,
    )?;
    write_file(&debian.join("postrm"), &postrm(&args.name), 0o755)?;
    for f in files {
        let file_name = f.file_name().expect("policy files have names");
        write_file(&share.join(file_name), &read_text(f)?, 0o644)?;
    }
    Ok(())
}

fn dpkg_deb_build(root: &Path, out: &Path) -> Result<()> {
    let result = Command::new("dpkg-deb")
        .arg("--build")
        .arg("--root-owner-group")
        .arg(root)
        .arg(out)
        .output()
        .map_err(|e| {
            CliError(format!(
                "cannot run dpkg-deb: {e}; install the dpkg package (it builds the .deb)"
            ))
        })?;
    if !result.status.success() {
        return Err(format!(
            "dpkg-deb --build failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        )
        .into());
    }
    Ok(())
}

pub fn pack(args: &PackArgs) -> Result<()> {
    check_pack_args(args)?;
    let files = package_files(&args.dir)?;
    let (rules, tests) = check_package_policy(args, &files)?;
    fs::create_dir_all(&args.output).map_err(|e| io_error("cannot create", &args.output, &e))?;
    let stage = TempDir::new(&args.output, ".jitctl-pack-")?;
    let root = stage.0.join("root");
    stage_package(args, &files, &root)?;
    let out = args.output.join(deb_file_name(&args.name, &args.version));
    dpkg_deb_build(&root, &out)?;
    println!(
        "{} ({rules} rules, {tests} tests; activates as /etc/jitrun/policy.d/{})",
        out.display(),
        target_name(&args.name, args.priority)
    );
    Ok(())
}

// ---- activate --------------------------------------------------------------------------

/// Is `file_name` an `NN-NAME.toml` of package `name` (any priority)?
fn is_package_file_name(file_name: &str, name: &str) -> bool {
    let b = file_name.as_bytes();
    b.len() > 3
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && file_name[3..].strip_suffix(".toml") == Some(name)
}

fn written_by_package(path: &Path, name: &str) -> bool {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l == format!("{MARKER}{name}")))
        .unwrap_or(false)
}

/// The end of every refusal of `activate`.
const UNCHANGED: &str = "; policy.d is unchanged and the previous policy stays active";

/// Activate package `name` at `priority`, with explicit directories (tests use their own).
pub fn activate_in(
    packages_dir: &Path,
    etc_dir: &Path,
    name: &str,
    priority: u8,
) -> Result<PathBuf> {
    check_name(name)?;
    check_priority(priority)?;
    let files =
        package_files(&packages_dir.join(name)).map_err(|e| CliError(format!("{e}{UNCHANGED}")))?;
    let combined = combine(name, &files)?;
    let dropins = etc_dir.join("policy.d");
    let target = dropins.join(target_name(name, priority));
    if target.exists() && !written_by_package(&target, name) {
        return Err(format!(
            "{} exists and was not written for package jitrun-policy-{name} (its first line is not \"{MARKER}{name}\"); move it away or pick another --priority{UNCHANGED}",
            target.display()
        )
        .into());
    }
    let candidate = Candidate::assemble(etc_dir, name, &target, &combined)?;
    let rules = check_candidate(name, &files, &candidate.sources, &target)?;
    install(&target, &combined, &candidate.stale)?;
    println!(
        "activated policy package {name}: {} ({} files; the policy now has {rules} rules from {} files)",
        target.display(),
        files.len(),
        candidate.sources.len()
    );
    Ok(target)
}

/// The policy the host would have with the package active: policy.toml, then policy.d/
/// without any file of this package, plus the new NN-NAME.toml; copied into a private
/// directory and loaded exactly as jitrun loads /etc/jitrun.
struct Candidate {
    /// The files, named where they will be (not as the temporary copies).
    sources: Vec<PolicySource>,
    /// This package's files under other priorities, removed once the new one is in place.
    stale: Vec<PathBuf>,
}

impl Candidate {
    fn assemble(etc_dir: &Path, name: &str, target: &Path, combined: &str) -> Result<Candidate> {
        let policy_toml = etc_dir.join("policy.toml");
        let dropins = etc_dir.join("policy.d");
        let mut stale = Vec::new();
        let tmp = TempDir::new(&std::env::temp_dir(), "jitctl-activate-")?;
        let cand_dropins = tmp.0.join("policy.d");
        mkdir(&cand_dropins, 0o700)?;
        let mut paths = Vec::new();
        if policy_toml.exists() {
            write_file(&tmp.0.join("policy.toml"), &read_text(&policy_toml)?, 0o600)?;
            paths.push(tmp.0.join("policy.toml"));
        }
        if dropins.is_dir() {
            for f in policy_files(std::slice::from_ref(&dropins))? {
                let file_name = f.file_name().unwrap_or_default().to_string_lossy();
                if is_package_file_name(&file_name, name) && written_by_package(&f, name) {
                    if f != target {
                        stale.push(f.clone());
                    }
                    continue;
                }
                write_file(&cand_dropins.join(&*file_name), &read_text(&f)?, 0o600)?;
            }
        }
        let file_name = target.file_name().expect("NN-NAME.toml");
        write_file(&cand_dropins.join(file_name), combined, 0o600)?;
        paths.push(cand_dropins);
        let (from, to) = (tmp.0.display().to_string(), etc_dir.display().to_string());
        let sources = load_sources(&policy_files(&paths)?)?
            .into_iter()
            .map(|s| PolicySource {
                name: s.name.replacen(&from, &to, 1),
                text: s.text,
            })
            .collect();
        Ok(Candidate { sources, stale })
    }
}

/// The candidate must load, with its `[[test]]` cases, and every case (the package's and the
/// host's) must pass. It is loaded twice: with the package's own files in the new file's
/// place, so that a message (and a failing case) names the line of the file the package
/// author wrote; then exactly as it will be written. Returns how many rules it has.
fn check_candidate(
    name: &str,
    files: &[PathBuf],
    sources: &[PolicySource],
    target: &Path,
) -> Result<usize> {
    let target_source = target.display().to_string();
    let mut split = Vec::new();
    for s in sources {
        if s.name == target_source {
            split.extend(load_sources(files)?);
        } else {
            split.push(s.clone());
        }
    }
    let (policy, tests) = load_with_tests(&split)
        .and_then(|loaded| load_with_tests(sources).map(|_| loaded))
        .map_err(|e| {
            CliError(format!(
                "policy package {name} not activated: with it the policy would not load: {e}{UNCHANGED}"
            ))
        })?;
    let failures = failing_tests(&policy, &tests);
    if !failures.is_empty() {
        return Err(format!(
            "policy package {name} not activated: {} of {} policy test(s) fail with it: {}{UNCHANGED}",
            failures.len(),
            tests.len(),
            failures.join("; ")
        )
        .into());
    }
    Ok(policy.rules.len())
}

/// `FILE:LINE: LABEL: what differs (got: ...)` for each case that fails.
fn failing_tests(policy: &Policy, tests: &[PolicyTest]) -> Vec<String> {
    tests
        .iter()
        .filter_map(|t| {
            let o = run_test(policy, t);
            (!o.passed).then(|| {
                format!(
                    "{}:{}: {}: {} (got: {})",
                    t.source.file,
                    t.source.line,
                    t.label(),
                    o.mismatch.as_deref().unwrap_or("unexpected outcome"),
                    o.got
                )
            })
        })
        .collect()
}

/// Write the combined file beside the target (a name the loader ignores), remove the
/// package's files under other priorities, rename it over the target, sync the directory.
fn install(target: &Path, combined: &str, stale: &[PathBuf]) -> Result<()> {
    let dropins = target.parent().expect("policy.d/NN-NAME.toml");
    let file_name = target.file_name().expect("NN-NAME.toml").to_string_lossy();
    mkdir(dropins, 0o755)?;
    let new = dropins.join(format!(".{file_name}.new"));
    match fs::remove_file(&new) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &new, &e)),
    }
    write_file(&new, combined, 0o644)?;
    for f in stale {
        fs::remove_file(f).map_err(|e| io_error("cannot remove", f, &e))?;
    }
    fs::rename(&new, target).map_err(|e| io_error("cannot rename into place", target, &e))?;
    fs::File::open(dropins)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot sync", dropins, &e))?;
    Ok(())
}

/// Activate, then compile the policy snapshot jitrun reads (`jitctl policy compile`), so that
/// the first jitrun after the change need not parse every file. The activation stands even
/// when compiling fails: jitrun then builds the snapshot itself on its first run.
pub fn activate(args: &ActivateArgs) -> Result<()> {
    activate_in(
        Path::new(PACKAGES_DIR),
        Path::new(ETC_DIR),
        &args.name,
        args.priority,
    )?;
    match crate::compile::compile() {
        Ok(c) => println!(
            "compiled the policy snapshot jitrun reads: {} rules from {} files",
            c.rules, c.files
        ),
        Err(e) => eprintln!(
            "jitctl: warning: the policy snapshot was not compiled ({e}); the first jitrun after this change compiles it"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        root: PathBuf,
    }

    impl Fixture {
        fn new(tag: &str) -> Fixture {
            let root =
                std::env::temp_dir().join(format!("jitctl-pack-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("pkgs")).unwrap();
            fs::create_dir_all(root.join("etc/policy.d")).unwrap();
            Fixture { root }
        }
        fn pkgs(&self) -> PathBuf {
            self.root.join("pkgs")
        }
        fn etc(&self) -> PathBuf {
            self.root.join("etc")
        }
        fn package(&self, name: &str, files: &[(&str, &str)]) {
            let d = self.pkgs().join(name);
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            for (f, text) in files {
                fs::write(d.join(f), text).unwrap();
            }
        }
        fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = fs::read_dir(self.etc().join("policy.d"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        }
        fn activate(&self, name: &str, priority: u8) -> Result<PathBuf> {
            activate_in(&self.pkgs(), &self.etc(), name, priority)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn rule(name: &str) -> String {
        format!(
            "[[rule]]\nname = \"{name}\"\nusers = [\"alice\"]\ncommands = [\"/usr/bin/true\"]\n"
        )
    }

    #[test]
    fn names_versions_priorities() {
        for good in ["net", "net-debug", "a.b", "0x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Net", "-x", "a/b", "a b", "a_b", "a+b", ".x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["1", "1.0", "2.3-1", "1:4.0~rc1", "0.1+git20260101"] {
            assert!(check_version("version", good).is_ok(), "{good}");
        }
        for bad in ["", "v1", "1.0-", "1 0", ":1", "a:1", "1_0", "1/0"] {
            assert!(check_version("version", bad).is_err(), "{bad}");
        }
        assert!(check_priority(99).is_ok() && check_priority(100).is_err());
        assert_eq!(
            deb_file_name("net", "1:2.0-1"),
            "jitrun-policy-net_2.0-1_all.deb"
        );
        assert!(is_package_file_name("50-net.toml", "net"));
        assert!(!is_package_file_name("50-foo-net.toml", "net"));
        assert!(!is_package_file_name("5-net.toml", "net"));
        assert!(!is_package_file_name("50-net.toml~", "net"));
    }

    #[test]
    fn activates_combines_files_and_replaces_on_upgrade() {
        let fx = Fixture::new("good");
        fs::write(fx.etc().join("policy.toml"), rule("local")).unwrap();
        fx.package(
            "net",
            &[("b.toml", &rule("net-b")), ("a.toml", &rule("net-a"))],
        );
        let target = fx.activate("net", 50).unwrap();
        assert_eq!(target, fx.etc().join("policy.d/50-net.toml"));
        let text = fs::read_to_string(&target).unwrap();
        assert!(text.starts_with("# jitrun-policy-package: net\n"), "{text}");
        assert!(
            text.find("net-a").unwrap() < text.find("net-b").unwrap(),
            "{text}"
        );
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        // Upgrade: the package's own previous file is replaced, not a duplicate.
        fx.package(
            "net",
            &[("a.toml", &rule("net-a")), ("c.toml", &rule("net-c"))],
        );
        fx.activate("net", 50).unwrap();
        let text = fs::read_to_string(&target).unwrap();
        assert!(text.contains("net-c") && !text.contains("net-b"), "{text}");
        // A new priority moves the file.
        fx.activate("net", 60).unwrap();
        let names: Vec<_> = fx.snapshot().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["60-net.toml"]);
    }

    #[test]
    fn a_policy_that_would_not_load_changes_nothing() {
        let fx = Fixture::new("bad");
        fs::write(fx.etc().join("policy.d/10-local.toml"), rule("shared")).unwrap();
        fx.package("net", &[("a.toml", &rule("net-a"))]);
        fx.activate("net", 50).unwrap();
        let before = fx.snapshot();
        for (what, text) in [
            ("duplicate", rule("shared")),
            ("syntax", "[[rule]\nname = \"x\"\n".to_string()),
            ("unknown key", rule("net-a") + "comands = []\n"),
        ] {
            fx.package("net", &[("a.toml", &text)]);
            let e = fx.activate("net", 50).unwrap_err().to_string();
            assert!(
                e.starts_with("policy package net not activated: "),
                "{what}: {e}"
            );
            assert!(e.contains("previous policy stays active"), "{what}: {e}");
            assert!(
                !e.contains("jitctl-activate-"),
                "{what}: names a temporary file: {e}"
            );
            assert_eq!(fx.snapshot(), before, "{what}");
        }
        fx.package("net", &[("a.toml", &rule("shared"))]);
        let e = fx.activate("net", 50).unwrap_err().to_string();
        assert!(e.contains("\"shared\""), "{e}");
        // The message names the package author's file and line, and the other place.
        assert!(
            e.contains("/pkgs/net/a.toml:1: rule \"shared\" is already defined at "),
            "{e}"
        );
        assert!(e.contains("/etc/policy.d/10-local.toml:1"), "{e}");
    }

    #[test]
    fn never_overwrites_a_file_it_did_not_write() {
        let fx = Fixture::new("foreign");
        fs::write(fx.etc().join("policy.d/50-net.toml"), rule("hand")).unwrap();
        fx.package("net", &[("a.toml", &rule("net-a"))]);
        let before = fx.snapshot();
        let e = fx.activate("net", 50).unwrap_err().to_string();
        assert!(
            e.contains("was not written for package jitrun-policy-net"),
            "{e}"
        );
        assert_eq!(fx.snapshot(), before);
        // Nor counts a hand-written 40-net.toml as the package's old file.
        fs::remove_file(fx.etc().join("policy.d/50-net.toml")).unwrap();
        fs::write(fx.etc().join("policy.d/40-net.toml"), rule("hand")).unwrap();
        fx.activate("net", 50).unwrap();
        let names: Vec<_> = fx.snapshot().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["40-net.toml", "50-net.toml"]);
    }

    #[test]
    fn a_missing_package_directory_is_an_error() {
        let fx = Fixture::new("missing");
        let e = fx.activate("nope", 50).unwrap_err().to_string();
        assert!(e.contains("pkgs/nope") && e.contains("unchanged"), "{e}");
    }
}
