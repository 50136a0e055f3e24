//! Command patterns: argv[0] an exact absolute path (no glob), then each argument
//! exact or a glob within that one argument (see [`crate::glob`]); a final `**`
//! matches any remaining arguments, including none. Without `**`, the pattern
//! matches exactly that many arguments. A glob never spans arguments.
//!
//! Written in TOML either as a string (split on ASCII whitespace) or as an array
//! of strings (for arguments with spaces). `**` anywhere but last is an error.

use std::ffi::OsStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPattern {
    /// Absolute path of the program, exact.
    pub program: String,
    /// Argument patterns (after argv[0]); a final `**` is NOT kept here but in `rest`.
    pub args: Vec<String>,
    /// True when the pattern ended with `**`.
    pub rest: bool,
}

impl CommandPattern {
    /// From the string form: split on ASCII whitespace.
    pub fn parse_str(s: &str) -> Result<CommandPattern, crate::PolicyError> { todo!() }
    /// From the array form.
    pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<CommandPattern, crate::PolicyError> { todo!() }
    /// `program` is the canonical absolute path jitrun resolved; `args` are argv[1..].
    pub fn matches(&self, program: &OsStr, args: &[&OsStr]) -> bool { todo!() }
    /// Is every command this pattern matches also matched by `outer`? Used for the
    /// grant's `cmd` narrowing: a grant pattern must be a sub-pattern of some rule pattern.
    /// Conservative: when unsure, false.
    pub fn is_within(&self, outer: &CommandPattern) -> bool { todo!() }
}

impl std::fmt::Display for CommandPattern {
    /// The string form; arguments containing whitespace are shown quoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { todo!() }
}
