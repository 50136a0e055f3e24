//! Command line, parsed by hand (no parser crate in the setuid binary).
//!
//! `jitrun [--grant FILE|-] [-u USER] [--rule NAME] [--] CMD [ARGS...]`, `jitrun -l`,
//! `jitrun --version`, `jitrun --help`, `jitrun attest --method M --path P --body-sha256 HEX`.
//! Options come before the command; the first word that is not an option starts it (so
//! `jitrun ls -l` runs `ls -l`), except `attest` as the very first word: that is the
//! attestation subcommand (a program named `attest` runs with `jitrun -- attest`).

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

/// `jitrun attest`: what the attestation binds (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestArgs {
    pub method: String,
    pub path: String,
    pub body_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run(RunArgs),
    Attest(AttestArgs),
    List,
    /// `-k`: forget the caller's cached PAM authentications (`pam.auth_cache`).
    ResetAuth,
    Version,
    Help,
}

pub const USAGE: &str =
    "usage: jitrun [--grant FILE|-] [-u USER] [--rule NAME] [--] COMMAND [ARGS...]
       jitrun -l | --list
       jitrun -k | --reset-auth
       jitrun attest --method METHOD --path /v1/... --body-sha256 HEX
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
  -k, --reset-auth
                 forget your cached password (settings pam.auth_cache), so the
                 next rule with authenticate = true asks again
  --version      print the version
  -h, --help     this help

jitrun attest --method METHOD --path PATH --body-sha256 HEX
                 print a short-lived attestation (who you are, on which host, for
                 which broker request), signed with /etc/jitrun/host.key; jitctl
                 sends it with every call to the broker. METHOD is one of GET, POST,
                 PUT, PATCH, DELETE; PATH starts with /v1/; HEX is the lowercase
                 SHA-256 of the request body. It elevates nothing and is not logged.
                 (A program named attest runs with: jitrun -- attest)

No grant? Ask for one: jitctl request RULE --reason \"why\"";

/// Methods `jitrun attest` signs for (the broker's API uses no others).
pub const ATTEST_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Longest request path `jitrun attest` signs for.
pub const MAX_ATTEST_PATH: usize = 1024;

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

/// Split `--opt=value` and `-uNAME` into the option and its attached value.
fn split_attached(a: &[u8]) -> (&[u8], Option<OsString>) {
    let value = |v: &[u8]| Some(OsString::from(std::ffi::OsStr::from_bytes(v)));
    if a.starts_with(b"--") {
        if let Some(eq) = a.iter().position(|&b| b == b'=') {
            return (&a[..eq], value(&a[eq + 1..]));
        }
    } else if a.starts_with(b"-u") && a.len() > 2 {
        return (&a[..2], value(&a[2..]));
    }
    (a, None)
}

fn once<T>(slot: &mut Option<T>, opt: &str, value: T) -> Result<(), Refusal> {
    if slot.is_some() {
        return Err(Refusal::usage(format!("{opt} given twice\n{USAGE}")));
    }
    *slot = Some(value);
    Ok(())
}

fn attest_usage(why: impl std::fmt::Display) -> Refusal {
    Refusal::usage(format!(
        "attest: {why}\nusage: jitrun attest --method METHOD --path /v1/... --body-sha256 HEX"
    ))
}

fn utf8_value(opt: &str, v: OsString) -> Result<String, Refusal> {
    v.into_string()
        .map_err(|_| attest_usage(format!("{opt}: the value is not valid UTF-8")))
}

/// `attest --method M --path P --body-sha256 HEX`, each exactly once, strictly checked.
fn parse_attest(args: Vec<OsString>) -> Result<Mode, Refusal> {
    let (mut method, mut path, mut hash) = (None, None, None);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes().to_vec();
        let (opt, attached) = split_attached(&bytes);
        let opt = String::from_utf8_lossy(opt).into_owned();
        if opt == "-h" || opt == "--help" {
            return Ok(Mode::Help);
        }
        let slot = match opt.as_str() {
            "--method" => &mut method,
            "--path" => &mut path,
            "--body-sha256" => &mut hash,
            _ => {
                return Err(attest_usage(format!(
                    "unexpected argument {:?}",
                    String::from_utf8_lossy(&bytes)
                )))
            }
        };
        let v = attached
            .or_else(|| it.next())
            .ok_or_else(|| attest_usage(format!("{opt} needs a value")))?;
        let v = utf8_value(&opt, v)?;
        if slot.is_some() {
            return Err(attest_usage(format!("{opt} given twice")));
        }
        *slot = Some(v);
    }
    let method = method.ok_or_else(|| attest_usage("--method is missing"))?;
    let path = path.ok_or_else(|| attest_usage("--path is missing"))?;
    let body_sha256 = hash.ok_or_else(|| attest_usage("--body-sha256 is missing"))?;
    if !ATTEST_METHODS.contains(&method.as_str()) {
        return Err(attest_usage(format!(
            "--method {method:?}: expected one of {} (upper case)",
            ATTEST_METHODS.join(", ")
        )));
    }
    if !path.starts_with("/v1/")
        || path.len() > MAX_ATTEST_PATH
        || path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(attest_usage(format!(
            "--path {path:?}: expected the broker request path, starting with /v1/, at most {MAX_ATTEST_PATH} characters, without query string, spaces or control characters"
        )));
    }
    if body_sha256.len() != 64
        || !body_sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(attest_usage(format!(
            "--body-sha256 {body_sha256:?}: expected exactly 64 lowercase hex digits (the SHA-256 of the request body)"
        )));
    }
    Ok(Mode::Attest(AttestArgs {
        method,
        path,
        body_sha256,
    }))
}

/// Parse `args` (without argv[0]).
pub fn parse(args: Vec<OsString>) -> Result<Mode, Refusal> {
    if args.first().is_some_and(|a| a.as_bytes() == b"attest") {
        return parse_attest(args.into_iter().skip(1).collect());
    }
    let mut it = args.into_iter();
    let mut run = RunArgs {
        grant: None,
        user: None,
        rule: None,
        command: Vec::new(),
    };
    let mut list = false;
    let mut reset_auth = false;
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes().to_vec();
        let (opt, attached) = split_attached(&bytes);
        let mut value = |name: &str| {
            attached
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| Refusal::usage(format!("{name} needs a value\n{USAGE}")))
        };
        match opt {
            b"--" if attached.is_none() => {
                run.command.extend(it.by_ref());
                break;
            }
            b"-h" | b"--help" => return Ok(Mode::Help),
            b"-V" | b"--version" => return Ok(Mode::Version),
            b"-l" | b"--list" => list = true,
            b"-k" | b"--reset-auth" => reset_auth = true,
            b"--grant" => {
                let v = value("--grant")?;
                let source = if v.as_bytes() == b"-" {
                    GrantSource::Stdin
                } else {
                    GrantSource::File(v)
                };
                once(&mut run.grant, "--grant", source)?;
            }
            b"-u" | b"--user" => {
                let v = name_arg("-u", Some(value("-u")?))?;
                once(&mut run.user, "-u", v)?;
            }
            b"--rule" => {
                let v = name_arg("--rule", Some(value("--rule")?))?;
                once(&mut run.rule, "--rule", v)?;
            }
            _ if opt.starts_with(b"-") => {
                return Err(Refusal::usage(format!(
                    "unknown option {}\n{USAGE}",
                    String::from_utf8_lossy(&bytes)
                )));
            }
            _ => {
                run.command.push(arg);
                run.command.extend(it.by_ref());
                break;
            }
        }
    }
    if reset_auth {
        if list || !run.command.is_empty() || run.grant.is_some() || run.user.is_some() {
            return Err(Refusal::usage(format!(
                "-k takes no command or other option\n{USAGE}"
            )));
        }
        return Ok(Mode::ResetAuth);
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
    fn options_count_once_in_every_spelling() {
        for dup in [
            &["--grant", "a", "--grant=b", "true"][..],
            &["-u", "x", "-ux", "true"],
            &["--user=x", "-u", "y", "true"],
            &["--rule", "a", "--rule=b", "true"],
        ] {
            assert_eq!(parse(args(dup)).unwrap_err().exit, 2, "{dup:?}");
        }
        let Mode::Run(r) = parse(args(&["--grant=-", "-uroot", "--rule=r", "ls"])).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.grant, r.user.as_deref(), r.rule.as_deref()),
            (Some(GrantSource::Stdin), Some("root"), Some("r"))
        );
    }

    const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn attest_is_parsed_strictly() {
        let ok = parse(args(&[
            "attest",
            "--method",
            "POST",
            "--path=/v1/requests",
            "--body-sha256",
            HASH,
        ]))
        .unwrap();
        assert_eq!(
            ok,
            Mode::Attest(AttestArgs {
                method: "POST".into(),
                path: "/v1/requests".into(),
                body_sha256: HASH.into()
            })
        );
        let upper = HASH.to_uppercase();
        let long_path = format!("/v1/{}", "a".repeat(MAX_ATTEST_PATH));
        for bad in [
            vec![
                "attest",
                "--method",
                "post",
                "--path",
                "/v1/x",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "CONNECT",
                "--path",
                "/v1/x",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v2/x",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/x?a=1",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/x\n",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/a b",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                &long_path,
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/x",
                "--body-sha256",
                &upper,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/x",
                "--body-sha256",
                "abc",
            ],
            vec!["attest", "--method", "GET", "--path", "/v1/x"],
            vec![
                "attest",
                "--method",
                "GET",
                "--method",
                "GET",
                "--path",
                "/v1/x",
                "--body-sha256",
                HASH,
            ],
            vec![
                "attest",
                "--method",
                "GET",
                "--path",
                "/v1/x",
                "--body-sha256",
                HASH,
                "extra",
            ],
            vec!["attest", "--method"],
        ] {
            let e = parse(args(&bad)).unwrap_err();
            assert_eq!(e.exit, 2, "{bad:?}");
            assert!(e.message.starts_with("attest: "), "{}", e.message);
        }
        // Only the first word: `jitrun -- attest` and `jitrun -u x attest` run a program.
        let Mode::Run(r) = parse(args(&["--", "attest"])).unwrap() else {
            panic!()
        };
        assert_eq!(r.command, args(&["attest"]));
        assert!(matches!(
            parse(args(&["-u", "x", "attest"])).unwrap(),
            Mode::Run(_)
        ));
    }

    #[test]
    fn list_and_errors() {
        assert_eq!(parse(args(&["-l"])).unwrap(), Mode::List);
        assert_eq!(parse(args(&["-k"])).unwrap(), Mode::ResetAuth);
        assert_eq!(parse(args(&["--reset-auth"])).unwrap(), Mode::ResetAuth);
        assert_eq!(parse(args(&["-k", "ls"])).unwrap_err().exit, 2);
        assert_eq!(parse(args(&[])).unwrap_err().exit, 2);
        assert_eq!(parse(args(&["--bogus"])).unwrap_err().exit, 2);
        assert_eq!(parse(args(&["-l", "ls"])).unwrap_err().exit, 2);
    }
}
