//! Reading `session.io` (and `elevate.end`) events back from what syslog wrote.
//!
//! One line of a log file is any of:
//!
//! * a JSON object with the event's fields nested (`{"event":{"action":"session.io",…},
//!   "jitrun":{"recording":{…}}}`): what the rsyslog drop-ins in `packaging/siem/rsyslog/`
//!   write for either framing, and what docs/audit.md's minimal configuration writes for `cee`;
//! * a JSON object `{"rfc5424-sd":{"<SD-ID>":{"jitrun.recording.seq":"3",…}}}`: docs/audit.md's
//!   minimal configuration for `rfc5424` (flat names, every value a string, lists as a JSON
//!   array inside the string);
//! * a raw syslog line holding `@cee:{…}` (e.g. `/var/log/auth.log`);
//! * a raw RFC 5424 line whose MSGID is the event type (`… session.io [jitrun@32473 …] …`).
//!
//! Anything else is not an event of interest and is skipped.

use jit_audit::session_io::{Chunk, FINAL, LINES, OFFSET, SEQ, SHA256};
use serde_json::{Map, Value};

/// A `session.io` chunk, or the recording totals of an `elevate.end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Chunk {
        session_id: String,
        chunk: Chunk,
    },
    End {
        session_id: String,
        size: Option<u64>,
        sha256: Option<String>,
    },
}

/// The recording's size and hash in `elevate.end` (when jitrun records the session).
pub const END_SIZE: &str = "jitrun.recording.size";
pub const END_SHA256: &str = "jitrun.recording.hash.sha256";

/// `None`: not a `session.io` or `elevate.end` event; `Some(Err)`: one that cannot be read.
pub fn parse_line(line: &str) -> Option<Result<Record, String>> {
    let flat = flat_fields(line.trim_end_matches(['\r', '\n']))?;
    let action = flat.get("event.action").and_then(Value::as_str)?;
    match action {
        "session.io" => Some(chunk(&flat)),
        "elevate.end" => {
            let session_id = string(&flat, "jitrun.session_id")?;
            let size = flat.get(END_SIZE).and_then(int);
            let sha256 = string(&flat, END_SHA256);
            (size.is_some() || sha256.is_some()).then_some(Ok(Record::End {
                session_id,
                size,
                sha256,
            }))
        }
        _ => None,
    }
}

fn chunk(flat: &Map<String, Value>) -> Result<Record, String> {
    let need = |key: &str| flat.get(key).ok_or_else(|| format!("{key} is missing"));
    let session_id = string(flat, "jitrun.session_id").ok_or("jitrun.session_id is missing")?;
    let seq = int(need(SEQ)?).ok_or_else(|| format!("{SEQ} is not a number"))?;
    let offset = int(need(OFFSET)?).ok_or_else(|| format!("{OFFSET} is not a number"))?;
    let sha256 = string(flat, SHA256)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("{SHA256} is not a SHA-256"))?;
    let lines = strings(need(LINES)?).ok_or_else(|| format!("{LINES} is not a list of strings"))?;
    let last = flat
        .get(FINAL)
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    Ok(Record::Chunk {
        session_id,
        chunk: Chunk {
            seq,
            offset,
            lines,
            sha256: sha256.to_ascii_lowercase(),
            last,
        },
    })
}

fn string(flat: &Map<String, Value>, key: &str) -> Option<String> {
    flat.get(key)?.as_str().map(str::to_owned)
}

/// A JSON number, or a decimal string (RFC 5424 values are strings).
fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A JSON array of strings, or such an array as a string (RFC 5424 list values).
fn strings(v: &Value) -> Option<Vec<String>> {
    let parsed;
    let arr = match v {
        Value::Array(a) => a,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).ok()?;
            parsed.as_array()?
        }
        _ => return None,
    };
    arr.iter().map(|x| x.as_str().map(str::to_owned)).collect()
}

/// The event's fields under their dotted names, from any of the line forms.
fn flat_fields(line: &str) -> Option<Map<String, Value>> {
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        return from_object(v);
    }
    // RFC 5424 first: its values may hold the text "@cee:" (a recording of any output does).
    if is_rfc5424(line) {
        return rfc5424_params(line);
    }
    // In a cee line the first "@cee:" is the cookie: the header before it holds no user text.
    let i = line.find("@cee:")?;
    let v: Value = serde_json::from_str(line[i + 5..].trim_start()).ok()?;
    from_object(v)
}

/// `<PRI>1 ` (a version 1 syslog message), where an RFC 3164 line has a month name.
fn is_rfc5424(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('<') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (1..=3).contains(&digits) && rest[digits..].starts_with(">1 ")
}

fn from_object(v: Value) -> Option<Map<String, Value>> {
    let Value::Object(obj) = v else { return None };
    // docs/audit.md's minimal rsyslog configuration for rfc5424: {"rfc5424-sd": {SD-ID: {…}}}
    if let Some(Value::Object(sd)) = obj.get("rfc5424-sd") {
        return sd.values().find_map(|params| match params {
            Value::Object(p) if p.contains_key("event.action") => Some(p.clone()),
            _ => None,
        });
    }
    let mut flat = Map::new();
    flatten("", Value::Object(obj), &mut flat);
    Some(flat)
}

fn flatten(prefix: &str, v: Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf);
        }
    }
}

/// The SD-PARAMs of the first SD-ELEMENT that has `event.action`, from a raw RFC 5424
/// line `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD-ID name="value" …]… MSG`.
fn rfc5424_params(line: &str) -> Option<Map<String, Value>> {
    let rest = line.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix("1 ")?;
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then the structured data.
    let mut sd = rest;
    for _ in 0..5 {
        sd = sd.split_once(' ')?.1;
    }
    let mut p = SdParser {
        s: sd.as_bytes(),
        i: 0,
    };
    while p.peek() == Some(b'[') {
        let params = p.element()?;
        if params.contains_key("event.action") {
            return Some(params);
        }
    }
    None
}

struct SdParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl SdParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn name(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'=' || c == b']' || c == b'"' {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// `[SD-ID (SP PARAM-NAME="PARAM-VALUE")*]`; `\"`, `\\` and `\]` unescaped (RFC 5424
    /// §6.3.3: a backslash before anything else is kept).
    fn element(&mut self) -> Option<Map<String, Value>> {
        self.i += 1; // '['
        self.name()?;
        let mut params = Map::new();
        loop {
            match self.peek()? {
                b']' => {
                    self.i += 1;
                    return Some(params);
                }
                b' ' => self.i += 1,
                _ => {
                    let name = self.name()?;
                    if self.peek()? != b'=' {
                        return None;
                    }
                    self.i += 1;
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.i += 1;
                    let mut value = Vec::new();
                    loop {
                        let c = self.peek()?;
                        self.i += 1;
                        match c {
                            b'"' => break,
                            b'\\' if matches!(self.peek(), Some(b'"' | b'\\' | b']')) => {
                                value.push(self.peek()?);
                                self.i += 1;
                            }
                            c => value.push(c),
                        }
                    }
                    let text = String::from_utf8(value).ok()?;
                    params.insert(name, Value::String(text));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_audit::session_io::SessionIo;
    use jit_audit::{Framer, Framing};
    use time::{OffsetDateTime, UtcOffset};

    fn sample() -> (SessionIo, Chunk) {
        (
            SessionIo {
                session_id: "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6".into(),
                host: "web-01".into(),
                user: "alice".into(),
            },
            Chunk {
                seq: 7,
                offset: 4096,
                lines: vec![
                    r#"[1.000000, "o", "\u001b[1m\"hi\"\u001b[0m ] \\ [x@1 a=\"b\"]\r\n"]"#.into(),
                    "[1.5, \"o\", \"é€😀\"]".into(),
                ],
                sha256: "0123456789abcdef".repeat(4),
                last: true,
            },
        )
    }

    #[test]
    fn both_raw_framings_parse_back_exactly() {
        let (s, c) = sample();
        let now = OffsetDateTime::from_unix_timestamp(1_795_626_901).unwrap();
        for framing in [Framing::Cee, Framing::Rfc5424] {
            let f = Framer::new(framing, "jitrun", "web-01", 4242);
            let dgram = f.render_with_offset(&s.event(&c), now, UtcOffset::UTC);
            let line = String::from_utf8(dgram).unwrap();
            let rec = parse_line(&line).unwrap().unwrap();
            assert_eq!(
                rec,
                Record::Chunk {
                    session_id: s.session_id.clone(),
                    chunk: c.clone()
                },
                "{framing:?}: {line}"
            );
        }
    }

    #[test]
    fn a_cee_cookie_inside_rfc5424_values_is_just_text() {
        let (s, mut c) = sample();
        c.lines = vec![r#"[1.0, "o", "@cee:{\"x\":1} and <86>Nov 25 jitrun[1]: @cee:{}"]"#.into()];
        let now = OffsetDateTime::from_unix_timestamp(1_795_626_901).unwrap();
        let f = Framer::new(Framing::Rfc5424, "jitrun", "web-01", 4242);
        let line = String::from_utf8(f.render(&s.event(&c), now)).unwrap();
        let Some(Ok(Record::Chunk { chunk, .. })) = parse_line(&line) else {
            panic!("{line}")
        };
        assert_eq!(chunk, c);
        assert!(!is_rfc5424("<86>Nov 25 17:15:01 jitrun[1]: @cee:{}"));
        assert!(is_rfc5424("<86>1 2026-11-25T17:15:01Z h a 1 m - x"));
    }

    #[test]
    fn rsyslog_json_forms_parse() {
        let (s, c) = sample();
        let nested = s.event(&c).to_json_string();
        let want = Record::Chunk {
            session_id: s.session_id.clone(),
            chunk: c.clone(),
        };
        assert_eq!(parse_line(&nested).unwrap().unwrap(), want);
        let flat = serde_json::json!({"rfc5424-sd": {"acme@1": {
            "event.action": "session.io",
            "jitrun.session_id": s.session_id,
            "jitrun.recording.seq": "7",
            "jitrun.recording.offset": "4096",
            "jitrun.recording.hash.sha256": c.sha256,
            "jitrun.recording.final": "true",
            "jitrun.recording.lines": serde_json::to_string(&c.lines).unwrap(),
        }}});
        assert_eq!(parse_line(&flat.to_string()).unwrap().unwrap(), want);
    }

    #[test]
    fn other_lines_are_skipped_and_broken_ones_reported() {
        assert!(parse_line("").is_none());
        assert!(parse_line("<86>Nov 25 17:15:01 sshd[77]: Accepted publickey").is_none());
        assert!(parse_line(r#"{"event":{"action":"elevate.start"}}"#).is_none());
        assert!(
            parse_line(r#"{"event":{"action":"elevate.end"},"jitrun":{"session_id":"x"}}"#)
                .is_none()
        );
        let end = parse_line(
            r#"{"event":{"action":"elevate.end"},"jitrun":{"session_id":"x","recording":{"size":12,"hash":{"sha256":"ab"}}}}"#,
        );
        assert_eq!(
            end.unwrap().unwrap(),
            Record::End {
                session_id: "x".into(),
                size: Some(12),
                sha256: Some("ab".into())
            }
        );
        let bad = parse_line(
            r#"{"event":{"action":"session.io"},"jitrun":{"session_id":"x","recording":{"seq":"no"}}}"#,
        );
        assert!(bad.unwrap().is_err());
        assert!(parse_line(
            "<86>1 2026-11-25T17:15:01Z h jitrun 1 session.io [x@1 event.action=\"session.io\""
        )
        .is_none());
    }
}
