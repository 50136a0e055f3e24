//! Command line, parsed by hand (no parser crate in the setuid binary).
//!
//! `jitrun [--grant FILE|-] [-u USER] [--rule NAME] [--] CMD [ARGS...]`, `jitrun -l`,
//! `jitrun --version`, `jitrun --help`. Options come before the command; the first word
//! that is not an option starts it (so `jitrun ls -l` runs `ls -l`).

use crate::refusal::Refusal;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSource {
    File(OsString),
    Stdin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub grant: Option<GrantSource>,
    pub user: Option<String>,
    pub rule: Option<String>,
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run(RunArgs),
    List,
    Version,
    Help,
}

pub const USAGE: &str =
    "usage: jitrun [--grant FILE|-] [-u USER] [--rule NAME] [--] COMMAND [ARGS...]
       jitrun -l | --list
       jitrun --version | --help";

pub const HELP: &str =
    "jitrun runs one command with the Linux capabilities that a signed, short-lived
grant (and this host's policy) allow, ends it when the grant expires, and logs
every step to syslog.

Options:
  --grant FILE   use the grant token in FILE ('-' reads it from standard input);
                 default: the grants in ~/.local/state/jitrun/grants/
  -u USER        run as USER; must be the identity the rule or grant names
  --rule NAME    for standing access (grant = \"none\"), use this rule
  -l, --list     what you may run on this host, and the grants you hold
  --version      print the version
  -h, --help     this help

No grant? Ask for one: jitctl request RULE --reason \"why\"";

/// Longest user or rule name accepted on the command line.
const MAX_NAME: usize = 256;

fn name_arg(opt: &str, value: Option<OsString>) -> Result<String, Refusal> {
    let value = value.ok_or_else(|| Refusal::usage(format!("{opt} needs a value\n{USAGE}")))?;
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME {
        return Err(Refusal::usage(format!(
            "{opt}: a name of 1 to {MAX_NAME} characters is expected"
        )));
    }
    let s = std::str::from_utf8(bytes)
        .map_err(|_| Refusal::usage(format!("{opt}: the name is not valid UTF-8")))?;
    if s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == ':')
        || s.starts_with('-')
        || s.starts_with('#')
    {
        return Err(Refusal::usage(format!(
            "{opt}: {:?} is not a valid name (no spaces, control characters, '/', ':', leading '-' or '#')",
            s
        )));
    }
    Ok(s.to_string())
}

/// Parse `args` (without argv[0]).
pub fn parse(args: Vec<OsString>) -> Result<Mode, Refusal> {
    let mut it = args.into_iter();
    let mut run = RunArgs {
        grant: None,
        user: None,
        rule: None,
        command: Vec::new(),
    };
    let mut list = false;
    while let Some(arg) = it.next() {
        let a = arg.as_bytes();
        match a {
            b"--" => {
                run.command.extend(it.by_ref());
                break;
            }
            b"-h" | b"--help" => return Ok(Mode::Help),
            b"-V" | b"--version" => return Ok(Mode::Version),
            b"-l" | b"--list" => list = true,
            b"--grant" => {
                let v = it.next().ok_or_else(|| {
                    Refusal::usage(format!("--grant needs a file name or '-'\n{USAGE}"))
                })?;
                if run.grant.is_some() {
                    return Err(Refusal::usage("--grant given twice"));
                }
                run.grant = Some(if v.as_bytes() == b"-" {
                    GrantSource::Stdin
                } else {
                    GrantSource::File(v)
                });
            }
            b"-u" | b"--user" => {
                if run.user.is_some() {
                    return Err(Refusal::usage("-u given twice"));
                }
                run.user = Some(name_arg("-u", it.next())?);
            }
            b"--rule" => {
                if run.rule.is_some() {
                    return Err(Refusal::usage("--rule given twice"));
                }
                run.rule = Some(name_arg("--rule", it.next())?);
            }
            _ if a.starts_with(b"--grant=") => {
                let v = OsString::from(std::ffi::OsStr::from_bytes(&a[8..]));
                run.grant = Some(if v.as_bytes() == b"-" {
                    GrantSource::Stdin
                } else {
                    GrantSource::File(v)
                });
            }
            _ if a.starts_with(b"-u") && a.len() > 2 => {
                run.user = Some(name_arg(
                    "-u",
                    Some(OsString::from(std::ffi::OsStr::from_bytes(&a[2..]))),
                )?);
            }
            _ if a.starts_with(b"-") => {
                return Err(Refusal::usage(format!(
                    "unknown option {}\n{USAGE}",
                    String::from_utf8_lossy(a)
                )));
            }
            _ => {
                run.command.push(arg);
                run.command.extend(it.by_ref());
                break;
            }
        }
    }
    if list {
        if !run.command.is_empty() {
            return Err(Refusal::usage(format!("-l takes no command\n{USAGE}")));
        }
        return Ok(Mode::List);
    }
    if run.command.is_empty() {
        return Err(Refusal::usage(format!("no command given\n{USAGE}")));
    }
    if run.command[0].is_empty() {
        return Err(Refusal::usage("the command name is empty"));
    }
    Ok(Mode::Run(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn command_starts_at_first_non_option() {
        let Mode::Run(r) = parse(args(&["-u", "root", "ls", "-l", "--", "x"])).unwrap() else {
            panic!()
        };
        assert_eq!(r.user.as_deref(), Some("root"));
        assert_eq!(r.command, args(&["ls", "-l", "--", "x"]));
    }

    #[test]
    fn double_dash_allows_dash_commands() {
        let Mode::Run(r) = parse(args(&["--grant", "-", "--", "-weird"])).unwrap() else {
            panic!()
        };
        assert_eq!(r.grant, Some(GrantSource::Stdin));
        assert_eq!(r.command, args(&["-weird"]));
    }

    #[test]
    fn bad_user_names_are_usage_errors() {
        for bad in ["#-1", "../../x", "a b", "a\nb", "", "-x"] {
            let e = parse(args(&["-u", bad, "true"])).unwrap_err();
            assert_eq!(e.exit, 2, "{bad:?}");
        }
        let long = "a".repeat(1 << 20);
        assert_eq!(parse(args(&["-u", &long, "true"])).unwrap_err().exit, 2);
    }

    #[test]
    fn list_and_errors() {
        assert_eq!(parse(args(&["-l"])).unwrap(), Mode::List);
        assert_eq!(parse(args(&[])).unwrap_err().exit, 2);
        assert_eq!(parse(args(&["--bogus"])).unwrap_err().exit, 2);
        assert_eq!(parse(args(&["-l", "ls"])).unwrap_err().exit, 2);
    }
}
