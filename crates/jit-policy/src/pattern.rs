//! Command patterns: `argv[0]` an exact absolute path (no glob), then each argument
//! exact or a glob within that one argument (see [`crate::glob`]); a final `**`
//! matches any remaining arguments, including none. Without `**`, the pattern
//! matches exactly that many arguments. A glob never spans arguments.
//!
//! Written in TOML either as a string (split on ASCII whitespace) or as an array
//! of strings (for arguments with spaces). `**` anywhere but last is an error.
//!
//! The program path must be canonical (no `.`, `..` or empty components, no trailing
//! `/`), because it is compared with the canonical path jitrun resolved: a
//! non-canonical path could never match. In the string form quotes are refused
//! (they are not interpreted: use the array form for arguments with spaces).
//!
//! Two rules keep a glob inside the directory it names:
//! * an argument that a glob word matches may not hold a `..` path component (a
//!   component between `/` or `=` separators): `/var/log/*` never matches
//!   `/var/log/../../etc/shadow`. A literal word is compared as written.
//! * a word written `path:PATTERN` is a path glob: the argument must be a normalised
//!   path (no `.`, `..` or empty components, no trailing `/`), each `*`, `?` or `[...]`
//!   matches within one path component (never a `/`), and a component that is exactly
//!   `**` matches any number of whole components: `path:/var/log/*` matches the entries
//!   of `/var/log` only, `path:/var/log/**/*.log` any `.log` file below it.

use crate::error::PolicyError;
use crate::glob::{glob_match, glob_within, has_meta};
use crate::text::quote;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    /// Absolute path of the program, exact.
    pub program: String,
    /// Argument patterns (after `argv[0]`); a final `**` is NOT kept here but in `rest`.
    pub args: Vec<String>,
    /// True when the pattern ended with `**`.
    pub rest: bool,
}

/// How a command is shown in messages. Computed only when there is an error: quoting
/// every command of every rule on the success path was a measurable part of loading.
type Shown<'a> = &'a dyn Fn() -> String;

fn invalid(shown: Shown<'_>, why: &str) -> PolicyError {
    PolicyError::Value(format!("command {}: {why}", shown()))
}

fn check_program(program: &str, shown: Shown<'_>) -> Result<(), PolicyError> {
    if !program.starts_with('/') {
        return Err(invalid(
            shown,
            &format!(
                "the program {} must be an absolute path such as /usr/sbin/ip (policy never searches PATH)",
                quote(program)
            ),
        ));
    }
    if has_meta(program.as_bytes()) {
        return Err(invalid(
            shown,
            &format!(
                "the program {} must be an exact path: no *, ? or [ in it (globs are for arguments)",
                quote(program)
            ),
        ));
    }
    if program == "/"
        || program[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid(
            shown,
            &format!(
                "the program {} must be a canonical path (no \".\", \"..\", \"//\" or trailing \"/\"), as jitrun compares it with the resolved path",
                quote(program)
            ),
        ));
    }
    Ok(())
}

/// A `path:` word must hold a normalised path pattern (what it can match).
fn check_path_globs(args: &[String], shown: Shown<'_>) -> Result<(), PolicyError> {
    for a in args {
        let Some(p) = path_glob(a) else { continue };
        let why = match components(p.as_bytes()) {
            None => Some("it must be a path without \".\", \"..\", \"//\" or a trailing \"/\" (the arguments it matches have none either)"),
            Some((_, parts)) if parts.iter().any(|c| *c != b"**" && c.windows(2).any(|w| w == b"**")) => {
                Some("\"**\" is only meaningful as a whole path component (\"/var/log/**/*.log\"); within a component write \"*\"")
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(invalid(
                shown,
                &format!("the path glob {}: {why}", quote(a)),
            ));
        }
    }
    Ok(())
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\'')
}

impl CommandPattern {
    /// From the string form: split on ASCII whitespace.
    pub fn parse_str(s: &str) -> Result<CommandPattern, PolicyError> {
        let words: Vec<&str> = s.split_ascii_whitespace().collect();
        if words.is_empty() {
            return Err(PolicyError::Value(
                "empty command: write an absolute program path and its arguments, e.g. \"/usr/sbin/ip **\"".to_string(),
            ));
        }
        if s.contains(['"', '\'']) {
            return Err(invalid(
                &|| quote(s),
                "quotes are not interpreted in the string form; write the command as an array of strings, e.g. [\"/usr/bin/printf\", \"a b\"]",
            ));
        }
        Self::build(&words, &|| quote(s))
    }

    /// From the array form.
    pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<CommandPattern, PolicyError> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        if words.is_empty() {
            return Err(PolicyError::Value(
                "empty command: the array needs at least the absolute program path, e.g. [\"/usr/sbin/ip\", \"**\"]"
                    .to_string(),
            ));
        }
        let shown = || {
            format!(
                "[{}]",
                words
                    .iter()
                    .map(|w| quote(w))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Self::build(&words, &shown)
    }

    /// From the parts a pattern was split into (a program, its argument patterns, and whether
    /// a final `**` followed), with the same checks as [`CommandPattern::parse_words`] on
    /// `[program, args..., "**"?]`: for patterns stored in a compiled form.
    pub fn from_parts(
        program: String,
        args: Vec<String>,
        rest: bool,
    ) -> Result<CommandPattern, PolicyError> {
        let shown = || {
            let mut words = vec![program.as_str()];
            words.extend(args.iter().map(String::as_str));
            if rest {
                words.push("**");
            }
            format!(
                "[{}]",
                words
                    .iter()
                    .map(|w| quote(w))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if program.contains('\0') || args.iter().any(|a| a.contains('\0')) {
            return Err(invalid(
                &shown,
                "NUL characters cannot occur in a command line",
            ));
        }
        check_program(&program, &shown)?;
        check_path_globs(&args, &shown)?;
        if args.iter().any(|a| a == "**") {
            return Err(invalid(
                &shown,
                "\"**\" (any remaining arguments) may only be the last word; use \"*\" for one argument",
            ));
        }
        Ok(CommandPattern {
            program,
            args,
            rest,
        })
    }

    fn build(words: &[&str], shown: Shown<'_>) -> Result<CommandPattern, PolicyError> {
        if words.iter().any(|w| w.contains('\0')) {
            return Err(invalid(
                shown,
                "NUL characters cannot occur in a command line",
            ));
        }
        let program = words[0];
        check_program(program, shown)?;
        let mut args: Vec<String> = words[1..].iter().map(|w| w.to_string()).collect();
        let rest = args.last().is_some_and(|a| a == "**");
        if rest {
            args.pop();
        }
        check_path_globs(&args, shown)?;
        if args.iter().any(|a| a == "**") {
            return Err(invalid(
                shown,
                "\"**\" (any remaining arguments) may only be the last word; use \"*\" for one argument",
            ));
        }
        Ok(CommandPattern {
            program: program.to_string(),
            args,
            rest,
        })
    }

    /// The same program, and a number of arguments the pattern takes.
    fn program_and_count(&self, program: &OsStr, count: usize) -> bool {
        let count_ok = if self.rest {
            count >= self.args.len()
        } else {
            count == self.args.len()
        };
        program.as_bytes() == self.program.as_bytes() && count_ok
    }

    /// `program` is the canonical absolute path jitrun resolved; `args` are argv[1..].
    pub fn matches(&self, program: &OsStr, args: &[&OsStr]) -> bool {
        self.program_and_count(program, args.len())
            && self
                .args
                .iter()
                .zip(args)
                .all(|(p, a)| word_matches(p, a.as_bytes()))
    }

    /// When this pattern refuses the command only because an argument that one of its globs
    /// matches holds a `..` component, that argument (for a message that says so).
    pub fn dotdot_refusal<'a>(&self, program: &OsStr, args: &[&'a OsStr]) -> Option<&'a OsStr> {
        if !self.program_and_count(program, args.len()) {
            return None;
        }
        let mut offending = None;
        for (p, a) in self.args.iter().zip(args) {
            if word_matches(p, a.as_bytes()) {
                continue;
            }
            let textual = path_glob(p).is_none()
                && has_meta(p.as_bytes())
                && glob_match(p.as_bytes(), a.as_bytes());
            if !textual {
                return None;
            }
            offending = offending.or(Some(*a));
        }
        offending
    }

    /// Is every command this pattern matches also matched by `outer`? Used for the
    /// grant's `cmd` narrowing: a grant pattern must be a sub-pattern of some rule pattern.
    /// Conservative: when unsure, false.
    pub fn is_within(&self, outer: &CommandPattern) -> bool {
        if self.program != outer.program {
            return false;
        }
        let (k, m) = (self.args.len(), outer.args.len());
        // Every argument count self accepts (k, or k and more with `**`) must be one
        // outer accepts (m, or m and more with `**`).
        let lengths_ok = match (self.rest, outer.rest) {
            (false, false) => k == m,
            (_, true) => k >= m,
            (true, false) => false,
        };
        // Then each position outer constrains (all of them lie within self's first k)
        // must be narrower in self; positions past m are free in outer.
        lengths_ok
            && self
                .args
                .iter()
                .zip(&outer.args)
                .all(|(i, o)| word_within(i, o))
    }
}

/// The prefix that makes an argument pattern a path glob.
pub const PATH_GLOB: &str = "path:";

/// The pattern of a `path:` word, if it is one.
pub fn path_glob(word: &str) -> Option<&str> {
    word.strip_prefix(PATH_GLOB)
}

/// Does `arg` hold a `..` path component? Components are separated by `/` and `=` (so that
/// `--file=../x` counts too).
pub fn has_dotdot(arg: &[u8]) -> bool {
    arg.split(|&b| b == b'/' || b == b'=').any(|c| c == b"..")
}

/// One argument pattern against one argument: a path glob, a glob (never with a `..`
/// component in the argument), or literal text.
fn word_matches(pattern: &str, arg: &[u8]) -> bool {
    if let Some(p) = path_glob(pattern) {
        return path_glob_match(p.as_bytes(), arg);
    }
    if has_meta(pattern.as_bytes()) && has_dotdot(arg) {
        return false;
    }
    glob_match(pattern.as_bytes(), arg)
}

/// The components of a normalised path: None when `path` has `.`, `..` or empty components
/// (`//`, a trailing `/`), or is empty. The leading `/` of an absolute path is not a
/// component; the bool says whether it was there.
fn components(path: &[u8]) -> Option<(bool, Vec<&[u8]>)> {
    let (absolute, rest) = match path.strip_prefix(b"/") {
        Some(r) => (true, r),
        None => (false, path),
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == b"." || *c == b"..")
    {
        return None;
    }
    Some((absolute, parts))
}

/// A path glob against an argument: component by component, `**` for any number of
/// whole components; the argument must be a normalised path.
fn path_glob_match(pattern: &[u8], arg: &[u8]) -> bool {
    let (Some((pa, pat)), Some((aa, text))) = (components(pattern), components(arg)) else {
        return false;
    };
    pa == aa && components_match(&pat, &text)
}

fn components_match(pat: &[&[u8]], text: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => text.is_empty(),
        Some((first, rest)) if *first == b"**" => {
            (0..=text.len()).any(|skip| components_match(rest, &text[skip..]))
        }
        Some((first, rest)) => match text.split_first() {
            Some((t, trest)) => glob_match(first, t) && components_match(rest, trest),
            None => false,
        },
    }
}

/// Is every argument `inner` matches also matched by `outer`? Sound, not complete.
fn word_within(inner: &str, outer: &str) -> bool {
    match (path_glob(inner), path_glob(outer)) {
        // Path globs: the same pattern, or a literal path the outer one matches.
        (Some(i), Some(o)) => {
            i == o
                || (!has_meta(i.as_bytes())
                    && path_glob_match(o.as_bytes(), unescape(i).as_bytes()))
        }
        // A literal argument within a path glob.
        (None, Some(o)) => {
            !has_meta(inner.as_bytes()) && path_glob_match(o.as_bytes(), unescape(inner).as_bytes())
        }
        // A path glob matches normalised paths whose components its globs match, which the
        // same text as a plain glob matches too, unless it uses `**` (which also matches
        // zero components, i.e. one `/` fewer). Neither holds a `..` component.
        (Some(i), None) => {
            components(i.as_bytes()).is_some_and(|(_, c)| !c.iter().any(|c| *c == b"**"))
                && glob_within(i.as_bytes(), outer.as_bytes())
        }
        (None, None) => {
            // A glob word refuses `..` arguments that a literal word would take.
            let outer_refuses = has_meta(outer.as_bytes()) && !has_meta(inner.as_bytes());
            glob_within(inner.as_bytes(), outer.as_bytes())
                && !(outer_refuses && has_dotdot(inner.as_bytes()))
        }
    }
}

/// A literal pattern word (no metacharacters) as the argument it matches: escapes removed.
fn unescape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
    out
}

impl std::fmt::Display for CommandPattern {
    /// The string form; arguments containing whitespace are shown quoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if is_plain(&self.program) {
            f.write_str(&self.program)?;
        } else {
            f.write_str(&quote(&self.program))?;
        }
        for a in &self.args {
            if is_plain(a) {
                write!(f, " {a}")?;
            } else {
                write!(f, " {}", quote(a))?;
            }
        }
        if self.rest {
            f.write_str(" **")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CommandPattern {
        CommandPattern::parse_str(s).unwrap()
    }

    fn hit(pat: &CommandPattern, argv: &[&str]) -> bool {
        let args: Vec<&OsStr> = argv[1..].iter().map(OsStr::new).collect();
        pat.matches(OsStr::new(argv[0]), &args)
    }

    #[test]
    fn parse_string_form() {
        let c = p("  /usr/sbin/ip   link\tset  ** ");
        assert_eq!(c.program, "/usr/sbin/ip");
        assert_eq!(c.args, vec!["link", "set"]);
        assert!(c.rest);
        let c = p("/usr/bin/id");
        assert!(c.args.is_empty() && !c.rest);
    }

    #[test]
    fn parse_errors() {
        let e = CommandPattern::parse_str("usr/bin/ip **")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be an absolute path"), "{e}");
        let e = CommandPattern::parse_str("/usr/bin/*")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be an exact path"), "{e}");
        assert!(CommandPattern::parse_str("/usr/bin/i?").is_err());
        assert!(CommandPattern::parse_str("/usr/bin/[i]p").is_err());
        let e = CommandPattern::parse_str("/usr/sbin/ip ** link")
            .unwrap_err()
            .to_string();
        assert!(e.contains("may only be the last word"), "{e}");
        assert!(CommandPattern::parse_str("/usr/sbin/ip ** **").is_err());
        assert!(CommandPattern::parse_str("")
            .unwrap_err()
            .to_string()
            .contains("empty command"));
        assert!(CommandPattern::parse_str("   ").is_err());
        assert!(CommandPattern::parse_words::<&str>(&[]).is_err());
        for bad in [
            "/usr/bin/../bin/cat",
            "/usr//bin/cat",
            "/usr/bin/cat/",
            "/",
            "/usr/./bin/cat",
        ] {
            let e = CommandPattern::parse_str(bad).unwrap_err().to_string();
            assert!(e.contains("canonical"), "{bad}: {e}");
        }
        let e = CommandPattern::parse_str("/usr/bin/printf 'a b'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("array of strings"), "{e}");
        assert!(CommandPattern::parse_words(&["/bin/echo", "a\0b"]).is_err());
        assert!(CommandPattern::parse_words(&["ip", "**"]).is_err());
    }

    #[test]
    fn double_star_matches_zero_or_more() {
        let c = p("/usr/sbin/ip **");
        assert!(hit(&c, &["/usr/sbin/ip"]));
        assert!(hit(&c, &["/usr/sbin/ip", "link"]));
        assert!(hit(
            &c,
            &["/usr/sbin/ip", "link", "set", "dev", "eth0", "up"]
        ));
        assert!(!hit(&c, &["/usr/bin/ip", "link"]));
        let c = p("/usr/sbin/ip link **");
        assert!(hit(&c, &["/usr/sbin/ip", "link"]));
        assert!(!hit(&c, &["/usr/sbin/ip"]));
        assert!(!hit(&c, &["/usr/sbin/ip", "addr"]));
    }

    #[test]
    fn exact_argument_count() {
        let c = p("/usr/bin/systemctl restart nginx");
        assert!(hit(&c, &["/usr/bin/systemctl", "restart", "nginx"]));
        assert!(!hit(&c, &["/usr/bin/systemctl", "restart"]));
        assert!(!hit(
            &c,
            &["/usr/bin/systemctl", "restart", "nginx", "postgresql"]
        ));
        let c = p("/usr/bin/id");
        assert!(hit(&c, &["/usr/bin/id"]));
        assert!(!hit(&c, &["/usr/bin/id", "-u"]));
        // Program compared exactly.
        assert!(!hit(&c, &["/usr/bin/id2"]));
        assert!(!hit(&c, &["/usr/bin/i"]));
    }

    #[test]
    fn glob_never_spans_arguments() {
        let c = p("/usr/bin/journalctl -u *");
        assert!(hit(&c, &["/usr/bin/journalctl", "-u", "nginx"]));
        assert!(hit(&c, &["/usr/bin/journalctl", "-u", ""]));
        assert!(!hit(&c, &["/usr/bin/journalctl", "-u", "nginx", "-f"]));
        assert!(!hit(&c, &["/usr/bin/journalctl", "-u"]));
        // "*" matches a single argument even if it contains spaces, but not two arguments.
        let c = p("/bin/cat /var/log/*");
        assert!(hit(&c, &["/bin/cat", "/var/log/a b"]));
        assert!(!hit(&c, &["/bin/cat", "/var/log/a", "/etc/shadow"]));
        assert!(
            hit(&c, &["/bin/cat", "/var/log/nginx/access.log"]),
            "a textual glob crosses '/'"
        );
    }

    #[test]
    fn a_glob_never_matches_a_dotdot_component() {
        let c = p("/bin/cat /var/log/*");
        for bad in [
            "/var/log/../../etc/shadow",
            "/var/log/..",
            "/var/log/x/../../../etc/shadow",
            "/var/log//../x",
        ] {
            assert!(!hit(&c, &["/bin/cat", bad]), "{bad}");
            let args = [OsStr::new(bad)];
            assert_eq!(
                c.dotdot_refusal(OsStr::new("/bin/cat"), &args),
                Some(OsStr::new(bad))
            );
        }
        // Names that merely contain dots are fine; `.` and `//` cannot leave the directory.
        for ok in [
            "/var/log/a..b",
            "/var/log/...",
            "/var/log/./x",
            "/var/log//x",
        ] {
            assert!(hit(&c, &["/bin/cat", ok]), "{ok}");
        }
        let c = p("/usr/bin/tar --file=* **");
        assert!(!hit(&c, &["/usr/bin/tar", "--file=../x"]));
        assert!(hit(&c, &["/usr/bin/tar", "--file=x..y"]));
        // A literal word is compared as written, and `**` arguments are open anyway.
        let c = p("/bin/cat /var/log/../x **");
        assert!(hit(&c, &["/bin/cat", "/var/log/../x", "../y"]));
        assert_eq!(
            c.dotdot_refusal(OsStr::new("/bin/cat"), &[OsStr::new("/var/log/../z")]),
            None
        );
        // git's revision ranges are not path components.
        assert!(hit(
            &p("/usr/bin/git log *"),
            &["/usr/bin/git", "log", "HEAD..main"]
        ));
    }

    #[test]
    fn path_globs_stay_within_one_directory() {
        let c = p("/bin/cat path:/var/log/*");
        assert!(hit(&c, &["/bin/cat", "/var/log/syslog"]));
        assert!(hit(&c, &["/bin/cat", "/var/log/.hidden"]));
        for bad in [
            "/var/log/nginx/access.log",
            "/var/log/../etc/shadow",
            "/var/log/./syslog",
            "/var/log//syslog",
            "/var/log/",
            "/var/log",
            "var/log/syslog",
            "/var/log/syslog/",
        ] {
            assert!(!hit(&c, &["/bin/cat", bad]), "{bad}");
        }
        let c = p("/bin/cat path:/var/log/**/*.log");
        assert!(hit(&c, &["/bin/cat", "/var/log/x.log"]));
        assert!(hit(&c, &["/bin/cat", "/var/log/a/b/x.log"]));
        assert!(!hit(&c, &["/bin/cat", "/var/log/a/../../x.log"]));
        assert!(!hit(&c, &["/bin/cat", "/var/x.log"]));
        let c = p("/bin/cat path:logs/?.txt");
        assert!(hit(&c, &["/bin/cat", "logs/a.txt"]));
        assert!(!hit(&c, &["/bin/cat", "/logs/a.txt"]));
        assert!(!hit(&c, &["/bin/cat", "logs//.txt"]));
        // Malformed path globs are refused at load.
        for bad in [
            "/bin/cat path:",
            "/bin/cat path:/var/../x",
            "/bin/cat path:/var/log/",
            "/bin/cat path:/var//log",
            "/bin/cat path:/var/log/a**",
        ] {
            let e = CommandPattern::parse_str(bad).unwrap_err().to_string();
            assert!(e.contains("path glob"), "{bad}: {e}");
        }
        assert!(
            CommandPattern::from_parts("/bin/cat".into(), vec!["path:/x/./y".into()], false)
                .is_err()
        );
    }

    #[test]
    fn within_with_path_globs() {
        let rule = p("/bin/cat path:/var/log/*");
        assert!(p("/bin/cat path:/var/log/*").is_within(&rule));
        assert!(p("/bin/cat /var/log/syslog").is_within(&rule));
        assert!(!p("/bin/cat /var/log/a/b").is_within(&rule));
        assert!(
            !p("/bin/cat /var/log/*").is_within(&rule),
            "textual * is wider"
        );
        assert!(!p("/bin/cat path:/var/log/**").is_within(&rule));
        let textual = p("/bin/cat /var/log/*");
        assert!(p("/bin/cat path:/var/log/*").is_within(&textual));
        assert!(p("/bin/cat path:/var/log/a/*").is_within(&textual));
        assert!(!p("/bin/cat path:/var/log/**").is_within(&textual));
        assert!(
            !p("/bin/cat /var/log/../x").is_within(&textual),
            "the rule refuses .."
        );
        assert!(p("/bin/cat /var/log/x").is_within(&textual));
    }

    #[test]
    fn array_form_with_spaces() {
        let c = CommandPattern::parse_words(&["/usr/bin/printf", "%s with spaces\n", "*"]).unwrap();
        assert_eq!(c.args, vec!["%s with spaces\n", "*"]);
        assert!(!c.rest);
        assert!(hit(&c, &["/usr/bin/printf", "%s with spaces\n", "x y"]));
        assert!(!hit(
            &c,
            &["/usr/bin/printf", "%s", "with", "spaces\n", "x"]
        ));
        let c = CommandPattern::parse_words(&["/opt/My App/bin/tool", "**"]).unwrap();
        assert!(c.rest);
        assert!(hit(&c, &["/opt/My App/bin/tool", "--x"]));
        let c = CommandPattern::parse_words(&["/bin/echo", ""]).unwrap();
        assert!(hit(&c, &["/bin/echo", ""]));
        assert!(!hit(&c, &["/bin/echo", "x"]));
    }

    #[test]
    fn non_utf8_arguments() {
        let c = p("/bin/cat /tmp/*");
        let arg = OsStr::from_bytes(b"/tmp/\xff\xfe");
        assert!(c.matches(OsStr::new("/bin/cat"), &[arg]));
        assert!(!c.matches(OsStr::from_bytes(b"/bin/cat\xff"), &[arg]));
    }

    #[test]
    fn within() {
        let rule = p("/usr/sbin/ip **");
        assert!(p("/usr/sbin/ip link show").is_within(&rule));
        assert!(p("/usr/sbin/ip").is_within(&rule));
        assert!(p("/usr/sbin/ip link **").is_within(&rule));
        assert!(rule.is_within(&rule));
        assert!(!p("/usr/bin/ip link").is_within(&rule));

        let rule = p("/bin/cat /var/log/*");
        assert!(p("/bin/cat /var/log/syslog").is_within(&rule));
        assert!(p("/bin/cat /var/log/nginx/*").is_within(&rule));
        assert!(!p("/bin/cat /etc/*").is_within(&rule));
        assert!(!p("/bin/cat *").is_within(&rule));
        assert!(!p("/bin/cat /var/log/syslog /etc/shadow").is_within(&rule));
        assert!(!p("/bin/cat").is_within(&rule));
        assert!(
            !p("/bin/cat /var/log/* **").is_within(&rule),
            "** is wider than a fixed count"
        );

        let rule = p("/usr/bin/systemctl restart * **");
        assert!(p("/usr/bin/systemctl restart nginx").is_within(&rule));
        assert!(!p("/usr/bin/systemctl restart").is_within(&rule));
        assert!(!p("/usr/bin/systemctl stop nginx").is_within(&rule));
        let rule = p("/usr/bin/x a * **");
        assert!(p("/usr/bin/x a **").is_within(&p("/usr/bin/x a **")));
        assert!(
            !p("/usr/bin/x a **").is_within(&rule),
            "inner allows zero extra args"
        );
        let rule = p("/usr/bin/x a b **");
        assert!(!p("/usr/bin/x a **").is_within(&rule));
    }

    #[test]
    fn display() {
        assert_eq!(
            p("/usr/sbin/ip  link   **").to_string(),
            "/usr/sbin/ip link **"
        );
        assert_eq!(p("/usr/bin/id").to_string(), "/usr/bin/id");
        let c =
            CommandPattern::parse_words(&["/usr/bin/printf", "%s with spaces\n", "*", ""]).unwrap();
        assert_eq!(
            c.to_string(),
            "/usr/bin/printf \"%s with spaces\\n\" * \"\""
        );
        // Round trip of the string form.
        for s in [
            "/usr/sbin/ip **",
            "/bin/cat /var/log/*",
            "/usr/bin/systemctl restart nginx",
        ] {
            assert_eq!(CommandPattern::parse_str(&p(s).to_string()).unwrap(), p(s));
        }
    }
}
