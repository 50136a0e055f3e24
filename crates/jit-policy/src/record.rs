//! Session recording: the `[record]` table of the settings, and sizes as people write them.
//!
//! ```toml
//! [record]
//! default = false            # whether rules that do not say `record = …` record
//! max_bytes = "1G"           # the most a recording may hold: bytes, or K/M/G/T (x 1024)
//! on_max_bytes = "end"       # "end": end the command | "truncate": go on, unrecorded
//! on_failure = "end"         # writing the recording failed: "end" the command | "continue"
//! ```
//!
//! A rule records when its own `record` says so, else when `default` does
//! ([`crate::Rule::records`]); `record_input` (a rule key, default `false`) adds what is typed.

use crate::error::PolicyError;
use crate::fields::choice;
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Raw};

/// The smallest `max_bytes`: the header, some output, and the end of a recording.
pub const MIN_MAX_BYTES: u64 = 64 * 1024;
/// The default `max_bytes`: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// What happens when a recording reaches `max_bytes` (the recording says so with a marker,
/// and `elevate.end` with the end reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMaxBytes {
    /// End the command (the default: flooding the terminal must not blind the recording).
    End,
    /// Let the command go on; what it writes from then on is not recorded.
    Truncate,
}

/// What happens when writing the recording fails while the command runs (disk full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// End the command (`jitrun.end_reason = "recording_failed"`), the default.
    End,
    /// Let it go on; the `session.io` events still carry the recording off the host.
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSettings {
    /// Whether rules without a `record` key record.
    pub default: bool,
    pub max_bytes: u64,
    pub on_max_bytes: OnMaxBytes,
    pub on_failure: OnFailure,
}

impl Default for RecordSettings {
    fn default() -> Self {
        RecordSettings {
            default: false,
            max_bytes: DEFAULT_MAX_BYTES,
            on_max_bytes: OnMaxBytes::End,
            on_failure: OnFailure::End,
        }
    }
}

pub(crate) const RECORD_KEYS: &[&str] = &["default", "max_bytes", "on_max_bytes", "on_failure"];

pub(crate) fn parse_record(
    doc: &Doc<'_>,
    table: &[Entry],
    record: &mut RecordSettings,
) -> Result<(), PolicyError> {
    doc.check_keys(table, RECORD_KEYS, "record")?;
    for e in table {
        let field = format!("record.{}", e.key);
        let bad = |m: String| doc.err(doc.entry_span(e), &field, m);
        match e.key.as_str() {
            "default" => record.default = doc.boolean(e, &field)?,
            "max_bytes" => {
                let n = match &e.node.value {
                    Raw::Int(n) => {
                        u64::try_from(*n).map_err(|_| bad(format!("{n} is negative")))?
                    }
                    Raw::Str(s) => parse_size(s).map_err(bad)?,
                    other => {
                        return Err(bad(format!(
                            "expected a size such as \"1G\" or a number of bytes, found {}",
                            other.kind()
                        )))
                    }
                };
                if n < MIN_MAX_BYTES {
                    return Err(bad(format!(
                        "{n} bytes is below the smallest recording cap, {MIN_MAX_BYTES} bytes (\"64K\")"
                    )));
                }
                record.max_bytes = n;
            }
            "on_max_bytes" => {
                record.on_max_bytes = choice(
                    doc,
                    e,
                    &field,
                    &[("end", OnMaxBytes::End), ("truncate", OnMaxBytes::Truncate)],
                    "\"end\" (end the command) or \"truncate\" (stop recording, let it run)",
                )?
            }
            "on_failure" => {
                record.on_failure = choice(
                    doc,
                    e,
                    &field,
                    &[("end", OnFailure::End), ("continue", OnFailure::Continue)],
                    "\"end\" (end the command) or \"continue\"",
                )?
            }
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(())
}

/// `"512M"`, `"1G"`, `"65536"`: digits, then optionally one of K, M, G, T (powers of 1024),
/// optionally followed by `B` or `iB` (`"1GiB"`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let hint = "expected a size such as \"100M\" or \"1G\" (K, M, G, T: powers of 1024)";
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("{}: {hint}", quote(s)));
    }
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("{}: too large", quote(s)))?;
    let unit = match s[digits..].trim_end_matches("iB").trim_end_matches('B') {
        "" => 1u64,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{}: {hint}", quote(s))),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{}: too large", quote(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }
}
