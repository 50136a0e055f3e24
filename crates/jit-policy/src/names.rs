//! Name checks: what a rule, user, group, host, lint id or environment variable name may
//! look like, and which variables a privileged command may be given. A leaf: nothing here
//! depends on the rest of the crate, so the loader, the snapshot decoder, the `[[test]]`
//! parser and other crates (jit-grant re-exports [`valid_user_name`]) share one copy.

/// Rule names: `[A-Za-z0-9._-]+`.
pub fn valid_rule_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// User and group names as shadow-utils accepts them: `[A-Za-z0-9._-]`, optionally a
/// final `$`, not starting with `-`, not all digits (a number would be read as an id),
/// not `.` or `..` (useradd refuses them: they are path components), at most 256 bytes.
///
/// The one check of the workspace: policy `users`, `groups` and `run_as`, `[[test]]`
/// cases, a grant's `run_as` claim (jit-grant), the broker's requests, `jitctl grant mint`
/// and `jitctl policy import-sudoers` all use it.
pub fn valid_user_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 256
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !body.bytes().all(|b| b.is_ascii_digit())
        && body != "."
        && body != ".."
}

/// Host names or globs in a rule's `hosts`: printable, no whitespace, at most 255 bytes.
pub fn valid_host_pattern(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic())
}

/// The settings' `host`: letters, digits, `.`, `-` and `_`, at most 253 bytes.
pub fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Lint ids (`allow_risks`): `[a-z0-9-]+`, as `jitctl policy check` prints them.
pub fn valid_lint_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Variables known to be safe to pass to a privileged command: their values are terminal
/// sizes and names, locale names and time-zone names (jitrun refuses locale and TZ values
/// that are paths), which no program reads code, configuration or a file name from. These
/// are the only names `env_keep` accepts; anything else needs `env_keep_unchecked`.
pub const SAFE_ENV: &[&str] = &[
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_ADDRESS",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NAME",
    "LC_NUMERIC",
    "LC_PAPER",
    "LC_TELEPHONE",
    "LC_TIME",
    "TZ",
];

/// Is `name` on [`SAFE_ENV`]?
pub fn env_known_safe(name: &str) -> bool {
    SAFE_ENV.contains(&name)
}

/// Prefixes of variables never passed to a privileged command (see [`NEVER_KEPT_ENV`]):
/// the dynamic loader's, git's (`GIT_CONFIG_PARAMETERS` runs `core.fsmonitor`, `GIT_DIR`
/// picks the repository and its hooks), interpreters' start-up and module paths, less's
/// (`LESSOPEN`, `LESSEDIT`, `LESS=+!sh`), systemd's pager and editor (`SYSTEMD_PAGER`,
/// `SYSTEMD_PAGERSECURE=0`), the XDG directories programs read configuration and plugins
/// from, and OpenSSL's configuration and engines.
pub const NEVER_KEPT_PREFIXES: &[&str] = &[
    "LD_", "GIT_", "PYTHON", "PERL", "RUBY", "NODE_", "LESS", "SYSTEMD_", "XDG_", "OPENSSL_",
    "SSL_", "KRB5", "GTK_", "QT_", "GIO_", "DYLD_",
];

/// Variables never passed to a privileged command, whatever a rule says: they make the
/// dynamic loader, the C library, a shell, an interpreter, an editor, a pager or another
/// program run code or read configuration, data or credentials of the caller's choosing,
/// or choose which program runs (an ambient-capability exec is not AT_SECURE, so the C
/// library trusts its environment). Together with [`NEVER_KEPT_PREFIXES`]. The policy
/// loader refuses them in `env_keep` and `env_keep_unchecked`, and jitrun drops them even
/// if a rule got through.
pub const NEVER_KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "SHELL",
    "IFS",
    "CDPATH",
    "FPATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "HISTFILE",
    "INPUTRC",
    "ZDOTDIR",
    "GCONV_PATH",
    "GETCONF_DIR",
    "LOCPATH",
    "NLSPATH",
    "TZDIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "RESOLV_HOST_CONF",
    "NIS_PATH",
    "MALLOC_CHECK_",
    "MALLOC_TRACE",
    "GLIBC_TUNABLES",
    "TMPDIR",
    "TMP",
    "TEMP",
    "TERMINFO",
    "TERMINFO_DIRS",
    "TERMCAP",
    "TERMPATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "EDITOR",
    "VISUAL",
    "SUDO_EDITOR",
    "SUDO_ASKPASS",
    "SSH_ASKPASS",
    "SSH_AUTH_SOCK",
    "PAGER",
    "MANPAGER",
    "MANOPT",
    "MANPATH",
    "MANROFFOPT",
    "BROWSER",
    "VIMINIT",
    "EXINIT",
    "MYVIMRC",
    "VIMRUNTIME",
    "EMACSLOADPATH",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKEFILES",
    "CURL_HOME",
    "WGETRC",
    "NETRC",
    "GNUPGHOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "XAUTHORITY",
    "KUBECONFIG",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "PSQLRC",
    "PGPASSFILE",
    "PGSERVICEFILE",
    "MYSQL_HOME",
    "SQLITE_HISTORY",
    "GDBHISTFILE",
];

/// Is `name` one of the variables never passed to a command ([`NEVER_KEPT_ENV`] and
/// [`NEVER_KEPT_PREFIXES`])?
pub fn env_never_kept(name: &str) -> bool {
    NEVER_KEPT_ENV.contains(&name) || NEVER_KEPT_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_validators() {
        for ok in [
            "alice", "a.b", "_svc", "svc-1", "ALICE", "host$", "a1", ".a", "a..b",
        ] {
            assert!(valid_user_name(ok), "{ok}");
        }
        for bad in [
            "", "-x", "12", "a b", "a:b", "a/b", "$", ".", "..", ".$", "..$", "é",
        ] {
            assert!(!valid_user_name(bad), "{bad}");
        }
        assert!(valid_user_name(&"a".repeat(256)) && !valid_user_name(&"a".repeat(257)));
        assert!(valid_env_name("LANG") && valid_env_name("_") && valid_env_name("A_1"));
        assert!(
            !valid_env_name("")
                && !valid_env_name("1A")
                && !valid_env_name("A-B")
                && !valid_env_name("A=B")
        );
        assert!(
            valid_rule_name("net-debug.v2_x")
                && !valid_rule_name("net debug")
                && !valid_rule_name("")
        );
        assert!(valid_host_pattern("web-*") && !valid_host_pattern("web 1"));
        assert!(valid_host_name("web-1.example") && !valid_host_name("web-*"));
        assert!(valid_lint_id("shell-escape") && !valid_lint_id("Shell escape"));
    }

    #[test]
    fn environment_lists() {
        assert!(env_known_safe("TERM") && !env_known_safe("PATH"));
        assert!(env_never_kept("LD_PRELOAD") && env_never_kept("PATH"));
        assert!(!env_never_kept("TERM") && !env_never_kept("APP_ENV"));
        // No name is both known safe and never kept.
        assert!(SAFE_ENV.iter().all(|n| !env_never_kept(n)));
    }
}
