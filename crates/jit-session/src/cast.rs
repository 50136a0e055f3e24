//! The asciicast v2 format as jitrun writes and reads it.
//!
//! A recording is newline-delimited JSON: one header object, then one event per line,
//! `[TIME, CODE, DATA]` with TIME in seconds since the start (6 decimals, never
//! decreasing) and DATA a string:
//!
//! | code | data | written when |
//! |---|---|---|
//! | `"o"` | text the command wrote to the terminal (stdout and stderr) | always |
//! | `"i"` | text typed to the command | only with `record_input = true` |
//! | `"r"` | the new size, `"COLSxROWS"` | the terminal was resized |
//! | `"m"` | a marker; jitrun's start with [`MARKER_PREFIX`] | the size cap was reached |
//! | `"x"` | the exit status in decimal (asciicast v3's exit event) | always the last line |
//!
//! `o`, `i`, `r` and `m` are asciicast v2's own codes; `x` is the exit event of asciicast
//! v3, which the v2 specification lets players ignore ("a tool which interprets the event
//! stream should ignore (or pass through) event codes it doesn't understand"). A recording
//! whose last line is an `x` event is complete; `--follow` stops there.
//!
//! Every line is at most [`MAX_LINE`] bytes: longer output becomes several events with the
//! same time, so that each line fits one syslog datagram as a `session.io` chunk.

use crate::encode::{json_string, json_string_capped};
use std::time::Duration;

/// Longest line (without its newline). With every character of a line escaped twice more
/// (as an RFC 5424 SD-PARAM holding a JSON array), a line of this size and the rest of a
/// `session.io` event still fit in 8096 bytes, rsyslog's default `maxMessageSize`.
pub const MAX_LINE: usize = 1536;

/// Bytes of a recording kept free below `record.max_bytes` for the truncation marker and the
/// exit event, so that a capped recording still ends properly.
pub const RESERVE: u64 = 512;

/// The smallest `record.max_bytes` accepted: the header, some output and [`RESERVE`].
pub const MIN_MAX_BYTES: u64 = 64 * 1024;

/// jitrun's markers (`"m"` events) start with this.
pub const MARKER_PREFIX: &str = "jitrun: ";

/// The label of the marker written when `record.max_bytes` is reached starts with this.
pub const TRUNCATED_MARKER: &str = "jitrun: recording truncated";

/// Header field caps (bytes of the JSON string literal), so that a header line stays below
/// [`MAX_LINE`] whatever the command line or the environment hold.
const CAP_COMMAND: usize = 320;
const CAP_NAME: usize = 128;
const CAP_TERM: usize = 64;
const CAP_SHELL: usize = 128;

/// Who, where and what: the `jitrun` object of the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    /// `jitrun.session_id`: 32 lowercase hex digits, also the file name.
    pub id: String,
    pub host: String,
    /// The invoking user.
    pub user: String,
    pub uid: u32,
    /// The run-as user's name.
    pub run_as: String,
    pub rule: String,
    /// Whether typed input is recorded (`record_input`).
    pub input: bool,
}

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Columns and rows at the start (80x24 when the command has no terminal).
    pub width: u16,
    pub height: u16,
    /// Unix time of the start, in seconds.
    pub timestamp: i64,
    /// The command line for people ([`command_line`]); cut to fit.
    pub command: String,
    /// `TERM` and `SHELL` of the invoker's environment, as asciinema records them.
    pub term: Option<String>,
    pub shell: Option<String>,
    pub session: SessionInfo,
}

impl Header {
    /// The header as one JSON line (no newline), at most [`MAX_LINE`] bytes; the title is
    /// the session id.
    pub fn line(&self) -> String {
        let s = &self.session;
        let mut env = Vec::new();
        if let Some(t) = &self.term {
            env.push(format!("\"TERM\": {}", json_string_capped(t, CAP_TERM)));
        }
        if let Some(sh) = &self.shell {
            env.push(format!("\"SHELL\": {}", json_string_capped(sh, CAP_SHELL)));
        }
        let name = |v: &str| json_string_capped(v, CAP_NAME);
        format!(
            "{{\"version\": 2, \"width\": {}, \"height\": {}, \"timestamp\": {}, \"command\": {}, \"title\": {}, \"env\": {{{}}}, \"jitrun\": {{\"session_id\": {}, \"host\": {}, \"user\": {}, \"uid\": {}, \"run_as\": {}, \"rule\": {}, \"input\": {}}}}}",
            self.width,
            self.height,
            self.timestamp,
            json_string_capped(&self.command, CAP_COMMAND),
            name(&s.id),
            env.join(", "),
            name(&s.id),
            name(&s.host),
            name(&s.user),
            s.uid,
            name(&s.run_as),
            name(&s.rule),
            s.input,
        )
    }
}

/// argv for people: each argument as text (valid UTF-8 as is, other bytes as `\xNN`, a
/// backslash doubled: jit-audit's lossless escaping), in single quotes when it holds a space,
/// a quote or nothing, joined with spaces.
pub fn command_line<A: AsRef<[u8]>>(argv: &[A]) -> String {
    argv.iter()
        .map(|a| {
            let text = jit_audit::escape_bytes(a.as_ref());
            let plain = !text.is_empty()
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '$' | '`' | ';'));
            if plain {
                text
            } else {
                format!("'{}'", text.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[1.234567, "o", "` — the start of an event line, up to its data.
pub fn event_prefix(time: &str, code: char) -> String {
    format!("[{time}, \"{code}\", \"")
}

/// The end of an event line after its data.
pub const EVENT_SUFFIX: &str = "\"]";

/// Seconds with six decimals, as asciinema writes them.
pub fn format_time(t: Duration) -> String {
    format!("{}.{:06}", t.as_secs(), t.subsec_micros())
}

/// One whole event line whose data is `data` (escaped here).
pub fn event_line(time: &str, code: char, data: &str) -> String {
    format!("[{time}, \"{code}\", {}]", json_string(data))
}

// ------------------------------------------------------------------------- reading

/// The header as read back (any asciicast v2 producer: what is not there is `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderView {
    pub width: u64,
    pub height: u64,
    pub timestamp: Option<i64>,
    pub command: Option<String>,
    pub title: Option<String>,
    /// jitrun's own object, when jitrun wrote the file.
    pub session: Option<SessionInfo>,
}

/// One event as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    pub time: f64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Output(String),
    Input(String),
    Resize(String),
    Marker(String),
    /// The exit status, as written.
    Exit(String),
    /// Any other code: players ignore it.
    Other(String, String),
}

fn str_of(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_owned)
}

/// Parse a header line: a JSON object with `"version": 2`, `width` and `height`.
pub fn parse_header(line: &str) -> Result<HeaderView, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("the header is not JSON ({e})"))?;
    if v.get("version").and_then(|x| x.as_u64()) != Some(2) {
        return Err("not an asciicast v2 header (\"version\": 2 missing)".into());
    }
    let dim = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_u64())
            .ok_or_else(|| format!("the header has no integer {k:?}"))
    };
    let session = v
        .get("jitrun")
        .filter(|j| j.is_object())
        .map(|j| SessionInfo {
            id: str_of(j, "session_id").unwrap_or_default(),
            host: str_of(j, "host").unwrap_or_default(),
            user: str_of(j, "user").unwrap_or_default(),
            uid: j
                .get("uid")
                .and_then(|u| u.as_u64())
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(u32::MAX),
            run_as: str_of(j, "run_as").unwrap_or_default(),
            rule: str_of(j, "rule").unwrap_or_default(),
            input: j.get("input").and_then(|b| b.as_bool()).unwrap_or(false),
        });
    Ok(HeaderView {
        width: dim("width")?,
        height: dim("height")?,
        timestamp: v
            .get("timestamp")
            .and_then(|t| t.as_f64())
            .map(|t| t as i64),
        command: str_of(&v, "command"),
        title: str_of(&v, "title"),
        session,
    })
}

/// Parse an event line `[time, code, data]`.
pub fn parse_event(line: &str) -> Result<CastEvent, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let arr = v
        .as_array()
        .filter(|a| a.len() == 3)
        .ok_or("not an event (a JSON array [time, code, data])")?;
    let time = arr[0]
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or("the event time is not a number of seconds")?;
    let code = arr[1].as_str().ok_or("the event code is not a string")?;
    let data = match &arr[2] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kind = match code {
        "o" => EventKind::Output(data),
        "i" => EventKind::Input(data),
        "r" => EventKind::Resize(data),
        "m" => EventKind::Marker(data),
        "x" => EventKind::Exit(data),
        other => EventKind::Other(other.to_owned(), data),
    };
    Ok(CastEvent { time, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            width: 80,
            height: 24,
            timestamp: 1_795_626_901,
            command: "/bin/bash -l".into(),
            term: Some("xterm-256color".into()),
            shell: Some("/bin/bash".into()),
            session: SessionInfo {
                id: "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6".into(),
                host: "web-1".into(),
                user: "alice".into(),
                uid: 1000,
                run_as: "root".into(),
                rule: "break-glass".into(),
                input: false,
            },
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        let line = h.line();
        assert!(line.starts_with(r#"{"version": 2, "width": 80, "height": 24, "timestamp": 1795626901, "command": "/bin/bash -l", "title": "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6", "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"}"#), "{line}");
        let v = parse_header(&line).unwrap();
        assert_eq!(
            (v.width, v.height, v.timestamp),
            (80, 24, Some(1_795_626_901))
        );
        assert_eq!(v.command.as_deref(), Some("/bin/bash -l"));
        assert_eq!(v.session.as_ref(), Some(&h.session));
    }

    #[test]
    fn hostile_header_fields_stay_within_one_line() {
        let mut h = header();
        h.command = "\u{1b}\"\\".repeat(10_000);
        h.term = Some("\0".repeat(500));
        h.shell = Some("\u{2028}".repeat(500));
        h.session.user = "u".repeat(300);
        h.session.host = "\"".repeat(300);
        h.session.rule = "r".repeat(300);
        h.session.run_as = "\n".repeat(300);
        let line = h.line();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(!line.chars().any(char::is_control));
        let v = parse_header(&line).unwrap();
        assert!(v.command.unwrap().ends_with('…'));
    }

    #[test]
    fn command_lines_for_people() {
        let argv: [&[u8]; 5] = [b"/bin/sh", b"-c", b"echo 'hi' there", b"", b"a\xffb\\"];
        assert_eq!(
            command_line(&argv),
            r#"/bin/sh -c 'echo '\''hi'\'' there' '' a\xffb\\"#
        );
    }

    #[test]
    fn events_parse() {
        assert_eq!(format_time(Duration::from_micros(1_500_001)), "1.500001");
        let line = event_line("1.500001", 'o', "hi\u{1b}[0m\r\n");
        assert_eq!(line, r#"[1.500001, "o", "hi\u001b[0m\r\n"]"#);
        let e = parse_event(&line).unwrap();
        assert_eq!(e.time, 1.500001);
        assert_eq!(e.kind, EventKind::Output("hi\u{1b}[0m\r\n".into()));
        assert_eq!(
            parse_event(r#"[2, "x", "0"]"#).unwrap().kind,
            EventKind::Exit("0".into())
        );
        assert_eq!(
            parse_event(r#"[2, "q", 5]"#).unwrap().kind,
            EventKind::Other("q".into(), "5".into())
        );
        assert!(parse_event(r#"[-1, "o", ""]"#).is_err());
        assert!(parse_event(r#"{"version": 2}"#).is_err());
        assert!(parse_header(r#"{"version": 1, "width": 1, "height": 1}"#).is_err());
    }
}
