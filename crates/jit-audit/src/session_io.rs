//! `session.io`: a session recording, sent through syslog while it is written, so that a
//! copy is out of the recorded command's reach (docs/audit.md, "session.io").
//!
//! The recording is an asciicast v2 file (`/var/log/jitrun/sessions/<session id>.cast`,
//! written by the `jit-session` crate): newline-delimited JSON. Each `session.io` event
//! carries a run of whole lines of that file, in order, as a list of strings without their
//! newline — exactly the text of the file, so that `jitctl sessions fetch` rebuilds the
//! identical file (`lines` joined with `\n`, plus a final `\n`), and a SIEM can search the
//! output as text. Lists are exact in both framings (a JSON array in `cee`, the same array as
//! one SD-PARAM value in `rfc5424`), and a recording line holds no control character (the
//! asciicast writer escapes them), so nothing is lost on the way.
//!
//! Fields, besides `event.*`, `jitrun.schema_version`, `jitrun.session_id`, `host.name` and
//! `user.name` (the invoking user):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | [`SEQ`] `jitrun.recording.seq` | int | 0, 1, 2, … per session: a gap is a lost chunk |
//! | [`OFFSET`] `jitrun.recording.offset` | int | byte offset in the file of the first line |
//! | [`LINES`] `jitrun.recording.lines` | list | the lines, without their `\n` |
//! | [`SHA256`] `jitrun.recording.hash.sha256` | string | SHA-256 (lowercase hex) of the file from its first byte through the last line of this chunk |
//! | [`FINAL`] `jitrun.recording.final` | bool | `true` on the last chunk of a recording that ended normally; absent otherwise |

use crate::{Event, EventType, Value};

pub const SEQ: &str = "jitrun.recording.seq";
pub const OFFSET: &str = "jitrun.recording.offset";
pub const LINES: &str = "jitrun.recording.lines";
pub const SHA256: &str = "jitrun.recording.hash.sha256";
pub const FINAL: &str = "jitrun.recording.final";

/// What every chunk of one recording says about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIo {
    /// `jitrun.session_id`: 32 lowercase hex digits, also the recording's file name.
    pub session_id: String,
    /// `host.name`.
    pub host: String,
    /// `user.name`: the invoking user.
    pub user: String,
}

/// One chunk: where it goes in the file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u64,
    pub offset: u64,
    pub lines: Vec<String>,
    /// Lowercase hex SHA-256 of the file's bytes `0 .. offset + bytes of these lines`.
    pub sha256: String,
    pub last: bool,
}

impl Chunk {
    /// The bytes this chunk adds to the file: each line and its newline.
    pub fn len(&self) -> u64 {
        self.lines.iter().map(|l| l.len() as u64 + 1).sum()
    }

    /// A chunk without lines (never sent; the writer always has at least one line).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl SessionIo {
    /// The `session.io` event of one chunk.
    pub fn event(&self, chunk: &Chunk) -> Event {
        let mut e = self.fixed_fields(chunk);
        // Last: the one field whose size varies, so the datagram's fixed part comes first.
        e.list(LINES, chunk.lines.iter().map(String::as_str));
        e
    }

    /// [`SessionIo::event`], the chunk's lines moved into the event rather than copied.
    pub fn into_event(&self, chunk: Chunk) -> Event {
        let mut e = self.fixed_fields(&chunk);
        e.set(LINES, Value::List(chunk.lines));
        e
    }

    /// Every field but the lines.
    fn fixed_fields(&self, chunk: &Chunk) -> Event {
        let mut e = Event::new(EventType::SessionIo);
        e.str("jitrun.session_id", self.session_id.as_str())
            .str("host.name", self.host.as_str())
            .str("user.name", self.user.as_str())
            .int(SEQ, int(chunk.seq))
            .int(OFFSET, int(chunk.offset))
            .str(SHA256, chunk.sha256.as_str());
        if chunk.last {
            e.bool(FINAL, true);
        }
        e
    }
}

/// Sequence numbers and offsets as JSON integers (i64: a recording never reaches 2^63 bytes).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Framer, Framing, Value};
    use time::OffsetDateTime;

    fn sample(lines: &[&str], last: bool) -> (SessionIo, Chunk) {
        (
            SessionIo {
                session_id: "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6".into(),
                host: "web-01".into(),
                user: "alice".into(),
            },
            Chunk {
                seq: 3,
                offset: 1234,
                lines: lines.iter().map(|s| s.to_string()).collect(),
                sha256: "ab".repeat(32),
                last,
            },
        )
    }

    #[test]
    fn event_fields_and_order() {
        let (s, c) = sample(&[r#"[0.5, "o", "hi\r\n"]"#], true);
        let e = s.event(&c);
        assert_eq!(e.kind, EventType::SessionIo);
        assert_eq!(e.get(SEQ), Some(&Value::Int(3)));
        assert_eq!(e.get(OFFSET), Some(&Value::Int(1234)));
        assert_eq!(e.get(FINAL), Some(&Value::Bool(true)));
        assert_eq!(e.fields.last().map(|(k, _)| k.as_str()), Some(LINES));
        assert_eq!(c.len(), c.lines[0].len() as u64 + 1);
        let (s, c) = sample(&["x"], false);
        assert_eq!(s.event(&c).get(FINAL), None);
    }

    #[test]
    fn into_event_is_event() {
        for last in [false, true] {
            let (s, c) = sample(&["one", "", r#"[1.0, "o", "\u001b"]"#], last);
            assert_eq!(s.into_event(c.clone()), s.event(&c));
        }
    }

    #[test]
    fn list_entry_len_is_what_each_line_adds() {
        let now = OffsetDateTime::from_unix_timestamp(1_795_626_901).unwrap();
        let hostile = [
            r#"[1.000001, "o", "\u001b[1;31m\"quoted\" ] \\ back\r\n"]"#,
            "é€😀 ]]] \\\\\\ \"\"\"",
            "",
            "plain",
        ];
        for framing in [Framing::Cee, Framing::Rfc5424] {
            let f = Framer::new(framing, "jitrun", "web-01", 4242);
            let (s, mut c) = sample(&[], false);
            let mut len = f.render_whole(&s.event(&c), now).unwrap().len();
            for (i, line) in hostile.iter().enumerate() {
                c.lines.push(line.to_string());
                len += f.list_entry_len(line) + usize::from(i > 0);
                let out = f.render_whole(&s.event(&c), now).unwrap();
                assert_eq!(out.len(), len, "{framing:?} {line}");
            }
        }
    }
}
