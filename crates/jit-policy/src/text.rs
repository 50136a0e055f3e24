//! Small helpers for messages: quoting values safely for a terminal or a log.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `s` in double quotes, with `"`, `\` and control characters escaped, so that a
/// hostile value can neither break the message apart nor drive the terminal.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A value that is shown bare when it is plain, quoted otherwise.
fn word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\'')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

/// One argv element for a message: lossy UTF-8, quoted when it needs to be.
pub(crate) fn os_word(s: &OsStr) -> String {
    match std::str::from_utf8(s.as_bytes()) {
        Ok(u) => word(u),
        Err(_) => {
            // Show invalid bytes as \xNN escapes inside quotes.
            let mut out = String::from("\"");
            for chunk in s.as_bytes().utf8_chunks() {
                for c in chunk.valid().chars() {
                    out.extend(c.escape_debug());
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out.push('"');
            out
        }
    }
}

/// The command line `program args...` for a message, bounded in length.
pub(crate) fn command_line(program: &OsStr, args: &[&OsStr]) -> String {
    const MAX: usize = 200;
    let mut out = os_word(program);
    for a in args {
        out.push(' ');
        out.push_str(&os_word(a));
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str(" …");
            break;
        }
    }
    out
}

/// Edit distance, for "did you mean" hints on unknown keys.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `"a", "b" and "c"`.
pub(crate) fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    match q.len() {
        0 => String::new(),
        1 => q[0].clone(),
        n => format!("{} and {}", q[..n - 1].join(", "), q[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("\x1b[31m"), "\"\\u{1b}[31m\"");
        let cmd = command_line(
            OsStr::new("/usr/bin/printf"),
            &[
                OsStr::new("a b"),
                OsStr::new("x"),
                OsStr::from_bytes(b"\xff\x1b"),
            ],
        );
        assert_eq!(cmd, "/usr/bin/printf \"a b\" x \"\\xff\\u{1b}\"");
        let long = "x".repeat(500);
        let cmd = command_line(OsStr::new("/bin/echo"), &[OsStr::new(&long)]);
        assert!(cmd.len() < 220 && cmd.ends_with(" …"));
    }

    #[test]
    fn helpers() {
        assert_eq!(distance("usres", "users"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("groups", "groups"), 0);
        assert_eq!(quoted_list(&["a"]), "\"a\"");
        assert_eq!(quoted_list(&["a", "b", "c"]), "\"a\", \"b\" and \"c\"");
    }
}
