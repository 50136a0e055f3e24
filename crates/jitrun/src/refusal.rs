//! Why jitrun will not run something: one line for the person, a stable code for the
//! audit trail, and the exit status.

/// What kind of event a refusal is logged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// `elevate.deny`.
    Deny,
    /// `policy.error`: a configuration or trust problem on the host.
    PolicyError,
    /// Usage errors are not logged (nothing was asked that could be granted).
    Unlogged,
}

#[derive(Debug, Clone)]
pub struct Refusal {
    /// Stable machine-readable reason (`jitrun.deny_code`).
    pub code: &'static str,
    /// One sentence for the person: what is wrong and what to do next.
    pub message: String,
    pub exit: i32,
    pub logged: Logged,
    /// The rule concerned, when one is.
    pub rule: Option<String>,
}

pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

impl Refusal {
    pub fn deny(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            exit: EXIT_REFUSED,
            logged: Logged::Deny,
            rule: None,
        }
    }

    pub fn config(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            exit: EXIT_REFUSED,
            logged: Logged::PolicyError,
            rule: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Refusal {
        Refusal {
            code: "usage",
            message: message.into(),
            exit: EXIT_USAGE,
            logged: Logged::Unlogged,
            rule: None,
        }
    }

    pub fn with_exit(mut self, exit: i32) -> Refusal {
        self.exit = exit;
        self
    }

    pub fn with_rule(mut self, rule: Option<String>) -> Refusal {
        self.rule = rule;
        self
    }
}
