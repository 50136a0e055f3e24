//! The one error type of jitctl: a message for the person at the terminal.
use std::fmt;

#[derive(Debug)]
pub struct CliError(pub String);

pub type Result<T> = std::result::Result<T, CliError>;

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<String> for CliError {
    fn from(s: String) -> CliError {
        CliError(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> CliError {
        CliError(s.to_string())
    }
}

impl From<jit_grant::GrantError> for CliError {
    fn from(e: jit_grant::GrantError) -> CliError {
        CliError(e.to_string())
    }
}

impl From<jit_policy::PolicyError> for CliError {
    fn from(e: jit_policy::PolicyError) -> CliError {
        CliError(e.to_string())
    }
}

/// `path: io error`, the way people read it.
pub fn io_error(what: &str, path: &std::path::Path, e: &std::io::Error) -> CliError {
    CliError(format!("{what} {}: {}", path.display(), io_reason(e)))
}

fn io_reason(e: &std::io::Error) -> String {
    // Drop the "(os error N)" suffix.
    let text = e.to_string();
    match text.rfind(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
