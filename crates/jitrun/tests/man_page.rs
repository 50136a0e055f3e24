//! jitrun parses its command line by hand and its man page is written by hand: every option
//! `jitrun --help` lists must appear in packaging/man/jitrun.1, so the two cannot drift.

use std::process::Command;

const JITRUN_1: &str = include_str!("../../../packaging/man/jitrun.1");

/// `-x` and `--long` words of a text.
fn options(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            let long = w.len() > 2
                && w.starts_with("--")
                && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-');
            let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
            long || short
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_option_of_help_is_in_the_man_page() {
    let out = Command::new(env!("CARGO_BIN_EXE_jitrun"))
        .arg("--help")
        .output()
        .expect("run jitrun --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    // The usage lines (up to the first blank line) and the option column of the lines that
    // start with an option; not the prose (it names other programs' options).
    let usage = help.split("\n\n").next().unwrap_or("");
    let column: Vec<&str> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .map(|l| l.trim_start().split("   ").next().unwrap_or(""))
        .collect();
    let listed = options(&format!("{usage}\n{}", column.join("\n")));
    for must in [
        "--grant",
        "-u",
        "--rule",
        "-l",
        "--list",
        "--version",
        "--help",
    ] {
        assert!(
            listed.iter().any(|o| o == must),
            "{must} not found in --help: {help}"
        );
    }
    let documented = options(&JITRUN_1.replace("\\-", "-"));
    let missing: Vec<_> = listed.iter().filter(|o| !documented.contains(o)).collect();
    assert!(
        missing.is_empty(),
        "options in `jitrun --help` but not in packaging/man/jitrun.1: {missing:?}"
    );
}
