//! jit-docgen: writes, at package build time, the man pages of `jitctl` and `jitbroker` (from
//! their clap definitions) and the bash, zsh and fish completions of `jitctl` and `jitrun`.
//!
//! `jit-docgen OUT_DIR` creates `OUT_DIR/man/jitctl*.1` (for the jitrun package),
//! `OUT_DIR/broker-man/jitbroker*.1` (for the jitbroker package) and `OUT_DIR/completions/`
//! (`jitctl.bash`, `_jitctl`, `jitctl.fish`, and the same for `jitrun`). The pages' date is
//! `SOURCE_DATE_EPOCH` (the Makefile sets it to the last commit's time, so a rebuild of the
//! same commit writes the same pages), else today.
//!
//! The command lines of jitctl and jitbroker are compiled in from their source files
//! (`jitctl/src/cli.rs`, `jit-broker/src/args.rs`), so the pages cannot drift from the
//! binaries. jitrun parses its command line by hand (no parser crate in the setuid binary):
//! its page is written by hand (`packaging/man/jitrun.1`) and the mirror below only feeds the
//! completion generators. Tests hold the three together: every option `jitrun --help` lists is
//! in jitrun.1 (crates/jitrun/tests/man_page.rs), and the mirror has exactly jitrun.1's options
//! (here).

use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};
use clap_complete::Shell;
use clap_mangen::Man;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[allow(dead_code)] // the parsed values are read by jitctl, not here
#[path = "../../jitctl/src/cli.rs"]
mod jitctl_cli;

#[allow(dead_code)] // the parsed values are read by jitbroker, not here
#[path = "../../jit-broker/src/args.rs"]
mod jitbroker_args;

/// jitrun's command line as clap sees it, for the completion generators only.
fn jitrun_command() -> Command {
    Command::new("jitrun")
        .about("Run one command with the capabilities a signed, short-lived grant allows")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("grant")
                .long("grant")
                .value_name("FILE")
                .value_hint(ValueHint::FilePath)
                .help("Use the grant token in FILE ('-' reads it from standard input)"),
        )
        .arg(
            Arg::new("user")
                .short('u')
                .long("user")
                .value_name("USER")
                .value_hint(ValueHint::Username)
                .help("Run as USER; must be the identity the rule or grant names"),
        )
        .arg(
            Arg::new("rule")
                .long("rule")
                .value_name("NAME")
                .help("For standing access (grant = \"none\"), use this rule"),
        )
        .arg(
            Arg::new("list")
                .short('l')
                .long("list")
                .action(ArgAction::SetTrue)
                .help("What you may run on this host, and the grants you hold"),
        )
        .arg(
            Arg::new("reset-auth")
                .short('k')
                .long("reset-auth")
                .action(ArgAction::SetTrue)
                .help("Forget your cached password (pam.auth_cache)"),
        )
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Print help"),
        )
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_hint(ValueHint::CommandWithArguments)
                .help("The command and its arguments"),
        )
}

fn jitctl_command() -> Command {
    jitctl_cli::Cli::command()
}

fn jitbroker_command() -> Command {
    jitbroker_args::Cli::command()
}

/// The date of the pages (`.TH`'s third field, YYYY-MM-DD): `SOURCE_DATE_EPOCH` when set
/// and not empty (reproducible builds), else today (UTC).
fn page_date() -> Result<String, String> {
    let when = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.trim().is_empty() => {
            let secs: i64 = text.trim().parse().map_err(|_| {
                format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds since 1970")
            })?;
            time::OffsetDateTime::from_unix_timestamp(secs)
                .map_err(|e| format!("SOURCE_DATE_EPOCH={text:?}: {e}"))?
        }
        _ => time::OffsetDateTime::now_utc(),
    };
    Ok(when.date().to_string())
}

/// One page per command and subcommand (`jitctl.1`, `jitctl-policy-check.1`, …), as
/// `clap_mangen::generate_to` writes them, with a date, the project as source and the
/// manual's name in the `.TH` line.
fn write_man_pages(cmd: Command, dir: &Path, date: &str) -> Result<(), String> {
    fn write(cmd: Command, dir: &Path, date: &str) -> Result<(), String> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            write(sub, dir, date)?;
        }
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
        Man::new(cmd)
            .title(name.to_uppercase())
            .date(date)
            .source(format!("jitrun {}", env!("CARGO_PKG_VERSION")))
            .manual("User Commands")
            .generate_to(dir)
            .map_err(|e| {
                format!(
                    "cannot write the man page of {name} to {}: {e}",
                    dir.display()
                )
            })?;
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    write(cmd, dir, date)
}

fn write_completions(mut cmd: Command, name: &str, dir: &Path) -> Result<(), String> {
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let path = dir.join(&file);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, name, &mut out);
        std::fs::write(&path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn generate(out: &Path, date: &str) -> Result<Vec<PathBuf>, String> {
    let man = out.join("man");
    let broker_man = out.join("broker-man");
    let completions = out.join("completions");
    for d in [&man, &broker_man, &completions] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    write_man_pages(jitctl_command(), &man, date)?;
    write_man_pages(jitbroker_command(), &broker_man, date)?;
    write_completions(jitctl_command(), "jitctl", &completions)?;
    write_completions(jitrun_command(), "jitrun", &completions)?;
    let mut written = Vec::new();
    for d in [&man, &broker_man, &completions] {
        let entries =
            std::fs::read_dir(d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for entry in entries {
            written.push(entry.map_err(|e| e.to_string())?.path());
        }
    }
    written.sort();
    Ok(written)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: jit-docgen OUT_DIR   (writes OUT_DIR/man/, OUT_DIR/broker-man/ and OUT_DIR/completions/)");
        return ExitCode::from(2);
    };
    match page_date().and_then(|date| generate(Path::new(out), &date)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jit-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod docgen_tests {
    use super::*;
    use std::collections::BTreeSet;

    const JITRUN_1: &str = include_str!("../../../packaging/man/jitrun.1");

    /// Options in the roff source: `\-x` and `\-\-long` (written that way in man(7)).
    fn man_options(roff: &str) -> BTreeSet<String> {
        let text = roff.replace("\\-", "-");
        let mut opts = BTreeSet::new();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let long = word.starts_with("--")
                && word.len() > 2
                && word[2..]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-');
            let short = word.len() == 2
                && word.starts_with('-')
                && word.as_bytes()[1].is_ascii_alphabetic();
            if long || short {
                opts.insert(word.to_string());
            }
        }
        opts
    }

    #[test]
    fn page_date_is_source_date_epoch() {
        // The only test that sets it; generate() takes the date as an argument.
        std::env::set_var("SOURCE_DATE_EPOCH", "1764064125");
        let date = page_date();
        std::env::set_var("SOURCE_DATE_EPOCH", "yesterday");
        let bad = page_date();
        std::env::remove_var("SOURCE_DATE_EPOCH");
        assert_eq!(date.unwrap(), "2025-11-25");
        assert!(bad.unwrap_err().contains("SOURCE_DATE_EPOCH"));
    }

    #[test]
    fn jitrun_mirror_has_exactly_the_options_of_jitrun_1() {
        let mut mirror = BTreeSet::new();
        for arg in jitrun_command().get_arguments() {
            if let Some(s) = arg.get_short() {
                mirror.insert(format!("-{s}"));
            }
            if let Some(l) = arg.get_long() {
                mirror.insert(format!("--{l}"));
            }
        }
        // jitrun.1 also shows options of the commands in its examples (e.g. `ip -s`) in
        // its EXAMPLES section: only the OPTIONS section counts.
        let start = JITRUN_1
            .find(".SH OPTIONS")
            .expect("jitrun.1 has .SH OPTIONS");
        let rest = &JITRUN_1[start + 3..];
        let end = rest.find(".SH ").unwrap_or(rest.len());
        let documented = man_options(&rest[..end]);
        assert_eq!(
            mirror, documented,
            "jitrun's completion mirror and jitrun.1's OPTIONS differ"
        );
    }

    #[test]
    fn generates_pages_and_completions() {
        let dir = std::env::temp_dir().join(format!("jit-docgen-test-{}", std::process::id()));
        let files = generate(&dir, "2026-11-25").unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "jitctl.1",
            "jitctl-policy.1",
            "jitctl-policy-check.1",
            "jitctl-grant-mint.1",
            "jitbroker.1",
            "jitbroker-host-add.1",
            "jitbroker-audit-verify.1",
            "jitctl.bash",
            "_jitctl",
            "jitctl.fish",
            "jitrun.bash",
            "_jitrun",
            "jitrun.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let page = std::fs::read_to_string(dir.join("man/jitctl-grant-mint.1")).unwrap();
        assert!(page.contains(".SH SYNOPSIS"), "{page}");
        // .TH title section date source manual: a date man(7) readers can parse.
        let th = page
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_default();
        assert!(
            th.starts_with(".TH JITCTL-GRANT-MINT 1 2026-11-25 \"jitrun "),
            "{th}"
        );
        let broker = std::fs::read_to_string(dir.join("broker-man/jitbroker.1")).unwrap();
        assert!(
            broker.contains("jitbroker\\-host(1)") && broker.contains("\\-\\-config"),
            "{broker}"
        );
        let host = std::fs::read_to_string(dir.join("broker-man/jitbroker-host.1")).unwrap();
        assert!(host.contains("enroll\\-token"), "{host}");
        assert!(page.contains("not\\-before"), "{page}");
        let bash = std::fs::read_to_string(dir.join("completions/jitrun.bash")).unwrap();
        assert!(
            bash.contains("--grant") && bash.contains("--rule"),
            "{bash}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
