//! Shell-style glob within ONE string (one argument, one host name):
//! `*` any run of characters (including none, including `/`), `?` one character,
//! `[abc]`, `[a-z]`, `[!abc]` / `[^abc]` classes, `\x` a literal x.
//! Works on bytes so that arguments that are not UTF-8 can still match.
//! A malformed class (no closing `]`) matches the `[` literally, as fnmatch does.

/// Does `pattern` match the whole of `text`? No backtracking blow-up (linear-ish algorithm).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool { todo!() }

/// True when the pattern contains any glob metacharacter (`*`, `?`, `[`).
pub fn has_meta(pattern: &[u8]) -> bool { todo!() }
