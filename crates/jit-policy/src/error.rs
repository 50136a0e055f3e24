//! The error type of this crate. Every message names the file (and line when
//! known), the field or rule, and what the person can do about it.
use std::fmt;

/// Where something came from: a file name (as the loader was told) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.file, self.line)
        } else {
            write!(f, "{}", self.file)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// TOML syntax error, unknown key, wrong type, bad value; `field` is the dotted
    /// key path when known (e.g. `rule[2].capabilities`).
    #[error("{at}: {field}: {message}")]
    Invalid {
        at: Location,
        field: String,
        message: String,
    },
    /// Two rules with the same name (possibly across files).
    #[error("{at}: rule \"{name}\" is already defined at {first}; rule names must be unique across policy.toml and policy.d/")]
    DuplicateRule {
        name: String,
        at: Location,
        first: Location,
    },
    /// A value outside of any file (a capability name on a command line, a grant claim, ...).
    #[error("{0}")]
    Value(String),
}
