//! `Defaults` settings: every name sudo 1.9 knows, its kind of value, and the check `visudo -c`
//! makes of it (with visudo's messages). The table was read off Debian's sudo 1.9.13 by giving
//! `visudo -c` each name with a series of values; tests/policy_tools compares the two again.
use super::options::timeout_seconds;

/// How a `Defaults` line sets a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `name` or `!name`.
    Flag(bool),
    Set,
    Add,
    Remove,
}

/// One setting of a `Defaults` line: `name`, `!name`, `name=value`, `name+=value`, `name-=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub op: Op,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// On or off: `name`, `!name`.
    Flag,
    Str,
    /// An absolute path.
    Path,
    /// An absolute path, `~` or `*`.
    ChPath,
    /// A list of words, with `=`, `+=`, `-=`.
    List,
    /// A resource limit: a number, `infinity`, `user` or `default`, or `soft,hard` of those.
    Rlimit,
    /// sudo's timeout syntax (`1h30m`).
    Timeout,
    /// Minutes, possibly fractional or negative.
    Timespec,
    Uint,
    Int,
    /// An octal mode up to 0777.
    Mode,
    Tuple(&'static [&'static str]),
    LogFacility,
    LogPriority,
    /// A locale name; sudo accepts `C` and `POSIX` everywhere.
    Locale,
}

/// (names, kind, whether `!name` — and for tuples and facilities a bare `name` — is allowed).
const TABLE: &[(&[&str], Ty, bool)] = &[
    (
        &[
            "always_query_group_plugin",
            "always_set_home",
            "authenticate",
            "case_insensitive_group",
            "case_insensitive_user",
            "closefrom_override",
            "compress_io",
            "env_editor",
            "env_reset",
            "exec_background",
            "fast_glob",
            "fqdn",
            "ignore_audit_errors",
            "ignore_dot",
            "ignore_iolog_errors",
            "ignore_local_sudoers",
            "ignore_logfile_errors",
            "ignore_unknown_defaults",
            "insults",
            "intercept",
            "intercept_allow_setid",
            "intercept_authenticate",
            "intercept_verify",
            "iolog_flush",
            "log_allowed",
            "log_denied",
            "log_exit_status",
            "log_host",
            "log_input",
            "log_output",
            "log_passwords",
            "log_server_keepalive",
            "log_server_verify",
            "log_stderr",
            "log_stdin",
            "log_stdout",
            "log_subcmds",
            "log_ttyin",
            "log_ttyout",
            "log_year",
            "long_otp_prompt",
            "mail_all_cmnds",
            "mail_always",
            "mail_badpass",
            "mail_no_host",
            "mail_no_perms",
            "mail_no_user",
            "match_group_by_gid",
            "netgroup_tuple",
            "noexec",
            "noninteractive_auth",
            "pam_acct_mgmt",
            "pam_rhost",
            "pam_ruser",
            "pam_session",
            "pam_setcred",
            "passprompt_override",
            "path_info",
            "preserve_groups",
            "pwfeedback",
            "requiretty",
            "root_sudo",
            "rootpw",
            "runas_allow_unknown_id",
            "runas_check_shell",
            "runaspw",
            "selinux",
            "set_home",
            "set_logname",
            "set_utmp",
            "setenv",
            "shell_noargs",
            "stay_setuid",
            "sudoedit_checkdir",
            "sudoedit_follow",
            "syslog_pid",
            "targetpw",
            "tty_tickets",
            "umask_override",
            "use_loginclass",
            "use_netgroups",
            "use_pty",
            "user_command_timeouts",
            "utmp_runas",
            "visiblepw",
        ],
        Ty::Flag,
        true,
    ),
    (
        &[
            "apparmor_profile",
            "authfail_message",
            "badpass_message",
            "group_plugin",
            "iolog_file",
            "limitprivs",
            "mailsub",
            "maxseq",
            "pam_askpass_service",
            "pam_login_service",
            "pam_service",
            "passprompt",
            "privs",
            "role",
            "runas_default",
            "timestampowner",
            "type",
        ],
        Ty::Str,
        false,
    ),
    (
        &[
            "exempt_group",
            "iolog_group",
            "iolog_user",
            "mailerflags",
            "mailfrom",
            "mailto",
            "secure_path",
        ],
        Ty::Str,
        true,
    ),
    (
        &[
            "rlimit_as",
            "rlimit_core",
            "rlimit_cpu",
            "rlimit_data",
            "rlimit_fsize",
            "rlimit_locks",
            "rlimit_memlock",
            "rlimit_nofile",
            "rlimit_nproc",
            "rlimit_rss",
            "rlimit_stack",
        ],
        Ty::Rlimit,
        true,
    ),
    (
        &[
            "env_file",
            "lecture_file",
            "log_server_cabundle",
            "log_server_peer_cert",
            "log_server_peer_key",
            "logfile",
            "mailerpath",
            "restricted_env_file",
        ],
        Ty::Path,
        true,
    ),
    (
        &["editor", "iolog_dir", "lecture_status_dir", "timestampdir"],
        Ty::Path,
        false,
    ),
    (&["admin_flag", "runchroot", "runcwd"], Ty::ChPath, true),
    (
        &[
            "env_check",
            "env_delete",
            "env_keep",
            "log_servers",
            "passprompt_regex",
        ],
        Ty::List,
        true,
    ),
    (
        &["command_timeout", "log_server_timeout"],
        Ty::Timeout,
        true,
    ),
    (&["passwd_timeout", "timestamp_timeout"], Ty::Timespec, true),
    (&["passwd_tries", "syslog_maxlen"], Ty::Uint, false),
    (&["loglinelen"], Ty::Uint, true),
    (&["closefrom"], Ty::Int, false),
    (&["iolog_mode"], Ty::Mode, false),
    (&["umask"], Ty::Mode, true),
    (
        &["listpw", "verifypw"],
        Ty::Tuple(&["never", "any", "all", "always"]),
        true,
    ),
    (&["lecture"], Ty::Tuple(&["never", "once", "always"]), true),
    (
        &["fdexec"],
        Ty::Tuple(&["never", "digest_only", "always"]),
        true,
    ),
    (&["intercept_type"], Ty::Tuple(&["dso", "trace"]), false),
    (&["log_format"], Ty::Tuple(&["sudo", "json"]), false),
    (
        &["timestamp_type"],
        Ty::Tuple(&["global", "ppid", "tty", "kernel"]),
        false,
    ),
    (&["syslog"], Ty::LogFacility, true),
    (&["syslog_badpri", "syslog_goodpri"], Ty::LogPriority, true),
    (&["sudoers_locale"], Ty::Locale, false),
];

const FACILITIES: &[&str] = &[
    "authpriv", "auth", "daemon", "user", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const PRIORITIES: &[&str] = &[
    "alert", "crit", "debug", "emerg", "err", "info", "notice", "warning", "none",
];

fn lookup(name: &str) -> Option<(Ty, bool)> {
    TABLE
        .iter()
        .find(|(names, _, _)| names.contains(&name))
        .map(|(_, ty, b)| (*ty, *b))
}

fn digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

fn rlimit_one(v: &str) -> bool {
    digits(v) || matches!(v, "infinity" | "user" | "default")
}

fn value_ok(ty: Ty, v: &str) -> bool {
    match ty {
        Ty::Flag => false,
        Ty::Str | Ty::List => true,
        Ty::Path => v.starts_with('/'),
        Ty::ChPath => v.starts_with(['/', '~', '*']),
        Ty::Rlimit => match v.split_once(',') {
            Some((soft, hard)) => rlimit_one(soft) && rlimit_one(hard),
            None => rlimit_one(v),
        },
        Ty::Timeout => timeout_seconds(v).is_ok(),
        Ty::Timespec => {
            let body = v.strip_prefix('-').unwrap_or(v);
            let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
            (digits(whole) || (whole.is_empty() && digits(frac)))
                && (frac.is_empty() || digits(frac))
        }
        Ty::Uint => digits(v) && v.parse::<u32>().is_ok(),
        Ty::Int => {
            let body = v.strip_prefix('-').unwrap_or(v);
            digits(body) && v.parse::<i32>().is_ok()
        }
        Ty::Mode => {
            v.bytes().all(|b| (b'0'..=b'7').contains(&b))
                && u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o777)
                && !v.is_empty()
        }
        Ty::Tuple(values) => values.contains(&v),
        Ty::LogFacility => FACILITIES.contains(&v),
        Ty::LogPriority => PRIORITIES.contains(&v),
        Ty::Locale => v == "C" || v == "POSIX",
    }
}

/// Check one setting as visudo does (visudo's message on failure). An unknown name is always
/// refused (with `Defaults ignore_unknown_defaults` visudo still fails, silently).
pub fn check_setting(s: &Setting) -> Result<(), String> {
    let name = s.name.as_str();
    let Some((ty, boolean)) = lookup(name) else {
        return Err(format!("unknown defaults entry \"{name}\""));
    };
    let no_value = || Err(format!("no value specified for \"{name}\""));
    match (&s.op, s.value.as_deref()) {
        (Op::Flag(true), _) => {
            let bare = ty == Ty::Flag || (boolean && matches!(ty, Ty::Tuple(_) | Ty::LogFacility));
            if bare {
                Ok(())
            } else {
                no_value()
            }
        }
        (Op::Flag(false), _) => {
            if boolean || ty == Ty::Flag || matches!(ty, Ty::Tuple(_)) {
                Ok(())
            } else {
                no_value()
            }
        }
        (op, Some(v)) => {
            if ty == Ty::Flag {
                return Err(format!("option \"{name}\" does not take a value"));
            }
            if matches!(op, Op::Add | Op::Remove) && ty != Ty::List {
                let o = if *op == Op::Add { "+=" } else { "-=" };
                return Err(format!("invalid operator \"{o}\" for \"{name}\""));
            }
            if value_ok(ty, v) {
                Ok(())
            } else if ty == Ty::Path {
                Err(format!("values for \"{name}\" must start with a '/'"))
            } else if ty == Ty::ChPath {
                Err(format!(
                    "values for \"{name}\" must start with a '/', '~', or '*'"
                ))
            } else {
                Err(format!("value \"{v}\" is invalid for option \"{name}\""))
            }
        }
        (_, None) => no_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, op: Op, value: Option<&str>) -> Result<(), String> {
        check_setting(&Setting {
            name: name.into(),
            op,
            value: value.map(str::to_string),
        })
    }

    #[test]
    fn what_visudo_says() {
        assert!(set("authenticate", Op::Flag(true), None).is_ok());
        assert!(set("lecture", Op::Flag(true), None).is_ok());
        assert_eq!(
            set("foo", Op::Flag(true), None),
            Err("unknown defaults entry \"foo\"".into())
        );
        assert_eq!(
            set("passwd_tries", Op::Flag(false), None),
            Err("no value specified for \"passwd_tries\"".into())
        );
        assert_eq!(
            set("authenticate", Op::Set, Some("yes")),
            Err("option \"authenticate\" does not take a value".into())
        );
        assert_eq!(
            set("passwd_tries", Op::Add, Some("3")),
            Err("invalid operator \"+=\" for \"passwd_tries\"".into())
        );
        assert_eq!(
            set("passwd_tries", Op::Set, Some("abc")),
            Err("value \"abc\" is invalid for option \"passwd_tries\"".into())
        );
        assert_eq!(
            set("logfile", Op::Set, Some("relative")),
            Err("values for \"logfile\" must start with a '/'".into())
        );
        assert_eq!(
            set("runcwd", Op::Set, Some("rel")),
            Err("values for \"runcwd\" must start with a '/', '~', or '*'".into())
        );
        for (n, v) in [
            ("umask", "077"),
            ("iolog_mode", "0600"),
            ("syslog", "local3"),
            ("syslog_badpri", "none"),
            ("timestamp_timeout", "-1.5"),
            ("closefrom", "-2"),
            ("rlimit_core", "1,infinity"),
            ("command_timeout", "1h30m"),
            ("env_keep", "A B"),
        ] {
            assert!(set(n, Op::Set, Some(v)).is_ok(), "{n}={v}");
        }
        for (n, v) in [
            ("umask", "0999"),
            ("umask", "8"),
            ("syslog", "LOCAL3"),
            ("lecture", "Once"),
            ("rlimit_core", "-1"),
            ("timestamp_timeout", "1e3"),
            ("command_timeout", "30m1h"),
            ("passwd_tries", "-1"),
        ] {
            assert!(set(n, Op::Set, Some(v)).is_err(), "{n}={v}");
        }
        assert!(
            set("env_keep", Op::Remove, Some("A")).is_ok()
                && set("env_keep", Op::Flag(false), None).is_ok()
        );
    }
}
