//! The recorder: what the pty relay calls for every read, resize and the exit.
//!
//! Each call turns what happened into asciicast lines ([`crate::cast`]), writes them to the
//! file it was given (one `write_all` and one `flush` per call: streamed, never held back
//! until the end), and returns the `session.io` events that carry the same lines, for the
//! caller to send at once. The running size and SHA-256 cover exactly the bytes of those
//! lines, so `elevate.end` can name them and `jitctl sessions fetch` can check a rebuilt
//! file against them.
//!
//! The recorder does no I/O of its own besides `Write` on the file it was handed, and never
//! fails half-way: a failed write is reported once in the [`Step`] (the caller ends the
//! command, or goes on as its settings say); the lines keep coming as `session.io` events,
//! so the copy outside the host stays complete even when the local disk is full.

use crate::cast::{
    event_line, event_prefix, format_time, Header, EVENT_SUFFIX, MAX_LINE, RESERVE,
    TRUNCATED_MARKER,
};
use crate::encode::{escape_char, escaped_len, Utf8Stream};
use crate::sha::Sha256;
use jit_audit::event::plain_ascii_prefix;
use jit_audit::session_io::{Chunk, SessionIo};
use jit_audit::{Event, Framer};
use std::io::{self, Write};
use std::time::Duration;
use time::OffsetDateTime;

/// What happens when a recording reaches `record.max_bytes`: the marker says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimit {
    /// The caller ends the command ([`Step::limit_reached`] tells it when).
    End,
    /// The command goes on; what it writes is no longer recorded.
    Truncate,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The most bytes the recording may have (`record.max_bytes`), end marker included.
    pub max_bytes: u64,
    pub on_limit: OnLimit,
    /// The framer of the audit sink the events go to (its framing, host, pid, SD-ID and
    /// `max_message` decide how many lines fit in one datagram).
    pub framer: Framer,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("audit datagrams of {max_message} bytes are too small for session recording chunks (at least {needed} bytes are needed)")]
    MessageTooSmall { max_message: usize, needed: usize },
    #[error("record.max_bytes = {max_bytes} is too small: the recording's header and end need {needed} bytes")]
    LimitTooSmall { max_bytes: u64, needed: u64 },
    #[error("cannot write the recording: {0}")]
    Write(#[source] io::Error),
}

/// What one call produced.
#[must_use = "the session.io events must be sent, and a write error acted upon"]
#[derive(Debug)]
pub struct Step {
    /// `session.io` events carrying the new lines, in order: send them now.
    pub chunks: Vec<Event>,
    /// `record.max_bytes` has been reached (in this call or before): with [`OnLimit::End`],
    /// end the command.
    pub limit_reached: bool,
    /// Writing the file failed in this call (reported once; from then on the lines go only
    /// into the events).
    pub write_error: Option<io::Error>,
}

/// The recording's totals, for `elevate.end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of the recording (= of the file, when `file_complete`).
    pub size: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
    /// `session.io` events produced.
    pub chunks: u64,
    /// `record.max_bytes` was reached.
    pub truncated: bool,
    /// Bytes of output and input not recorded because of the cap (as text up to the call
    /// that reached it, as read after that).
    pub dropped_bytes: u64,
    /// Invalid UTF-8 bytes recorded as U+FFFD.
    pub replaced_bytes: u64,
    /// Every line reached the file.
    pub file_complete: bool,
}

/// The end of a recording.
#[derive(Debug)]
pub struct Finished<W> {
    pub step: Step,
    pub summary: Summary,
    /// The file, to sync or close.
    pub out: W,
}

/// Splits lines into `session.io` chunks that each fit one datagram.
#[derive(Debug)]
struct Chunker {
    framer: Framer,
    session: SessionIo,
    seq: u64,
    offset: u64,
    /// [`Chunker::base_len`] by the digits of `seq` and of `offset` and the final flag: the
    /// only things in an empty chunk's datagram whose size varies (the header's time has a
    /// fixed width), so each size is rendered once, not once per chunk.
    base_lens: Vec<((u32, u32, bool), Option<usize>)>,
}

/// A stand-in for a chunk's hash while its size is worked out (a hash is always 64 digits).
const HASH_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Chunker {
    fn new(framer: Framer, session: SessionIo) -> Chunker {
        Chunker {
            framer,
            session,
            seq: 0,
            offset: 0,
            base_lens: Vec::new(),
        }
    }

    /// [`Chunker::render_base_len`], rendered once per width of the numbers.
    fn base_len(&mut self, seq: u64, offset: u64, last: bool) -> Option<usize> {
        let key = (digits(seq), digits(offset), last);
        if let Some((_, len)) = self.base_lens.iter().find(|(k, _)| *k == key) {
            return *len;
        }
        let len = self.render_base_len(seq, offset, last);
        self.base_lens.push((key, len));
        len
    }

    /// Bytes of the datagram of an empty chunk (`None`: not even that fits).
    fn render_base_len(&self, seq: u64, offset: u64, last: bool) -> Option<usize> {
        let empty = Chunk {
            seq,
            offset,
            lines: Vec::new(),
            sha256: HASH_PLACEHOLDER.to_owned(),
            last,
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        self.framer
            .render_whole(&self.session.event(&empty), now)
            .map(|d| d.len())
    }

    /// The smallest datagram size that carries any line: the widest numbers, the final
    /// flag, and a line of [`MAX_LINE`] backslashes (the most escaping there can be).
    fn needed(&self) -> usize {
        let mut wide = self.framer.clone();
        wide.max_message = usize::MAX;
        let widest = Chunker::new(wide, self.session.clone());
        let base = widest
            .render_base_len(i64::MAX as u64, i64::MAX as u64, true)
            .unwrap_or(usize::MAX);
        base.saturating_add(self.framer.list_entry_len(&"\\".repeat(MAX_LINE)))
    }

    /// Group `lines` into chunks (hashes still to be filled in), each as many lines as fit.
    fn pack(&mut self, lines: Vec<String>, last: bool) -> Vec<Chunk> {
        let max = self.framer.max_message;
        let mut chunks = Vec::new();
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            let mut len = self
                .base_len(self.seq, self.offset, last)
                .unwrap_or(usize::MAX);
            let mut chunk = Chunk {
                seq: self.seq,
                offset: self.offset,
                lines: Vec::new(),
                sha256: String::new(),
                last: false,
            };
            while let Some(line) = lines.peek() {
                let add = self.framer.list_entry_len(line) + usize::from(!chunk.is_empty());
                // One line always goes (start() checked that any line fits).
                if !chunk.is_empty() && len.saturating_add(add) > max {
                    break;
                }
                len = len.saturating_add(add);
                chunk.lines.extend(lines.next());
            }
            self.seq += 1;
            self.offset += chunk.len();
            chunks.push(chunk);
        }
        if last {
            if let Some(c) = chunks.last_mut() {
                c.last = true;
            }
        }
        chunks
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> u32 {
    n.checked_ilog10().unwrap_or(0) + 1
}

pub struct Recorder<W: Write> {
    out: W,
    file_ok: bool,
    hash: Sha256,
    /// Bytes of the recording so far (lines and newlines).
    size: u64,
    chunker: Chunker,
    max_bytes: u64,
    on_limit: OnLimit,
    /// The latest event time: times never go back.
    last_time: Duration,
    output: Utf8Stream,
    input: Utf8Stream,
    truncated: bool,
    dropped: u64,
    /// Lines of the call in progress, and their bytes with newlines.
    pending: Vec<String>,
    pending_bytes: u64,
    /// Buffers kept from call to call: the text of a read, the bytes of a call's lines.
    text: String,
    bytes: Vec<u8>,
}

impl<W: Write> Recorder<W> {
    /// Start a recording: check that chunks fit the audit datagrams and that the header and
    /// the end fit `max_bytes`, then write the header. The step holds its `session.io` event.
    pub fn start(
        out: W,
        header: &Header,
        session: SessionIo,
        opts: Options,
    ) -> Result<(Recorder<W>, Step), RecordError> {
        let chunker = Chunker::new(opts.framer, session);
        let needed = chunker.needed();
        if needed > chunker.framer.max_message {
            return Err(RecordError::MessageTooSmall {
                max_message: chunker.framer.max_message,
                needed,
            });
        }
        let line = header.line();
        let needed = line.len() as u64 + 1 + RESERVE;
        if opts.max_bytes < needed {
            return Err(RecordError::LimitTooSmall {
                max_bytes: opts.max_bytes,
                needed,
            });
        }
        let mut rec = Recorder {
            out,
            file_ok: true,
            hash: Sha256::new(),
            size: 0,
            chunker,
            max_bytes: opts.max_bytes,
            on_limit: opts.on_limit,
            last_time: Duration::ZERO,
            output: Utf8Stream::default(),
            input: Utf8Stream::default(),
            truncated: false,
            dropped: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            text: String::new(),
            bytes: Vec::new(),
        };
        rec.push_line(line);
        let step = rec.commit(false);
        match step.write_error {
            Some(e) => Err(RecordError::Write(e)),
            None => Ok((rec, step)),
        }
    }

    /// Bytes the command wrote to its terminal (or stdout/stderr), as read.
    pub fn output(&mut self, at: Duration, bytes: &[u8]) -> Step {
        self.text(at, 'o', bytes)
    }

    /// Bytes typed to the command (only when the rule records input).
    pub fn input(&mut self, at: Duration, bytes: &[u8]) -> Step {
        self.text(at, 'i', bytes)
    }

    fn text(&mut self, at: Duration, code: char, bytes: &[u8]) -> Step {
        if self.truncated {
            // Past the cap nothing is decoded: a flood costs nothing but counting.
            self.dropped += bytes.len() as u64;
            return self.commit(false);
        }
        let stream = if code == 'i' {
            &mut self.input
        } else {
            &mut self.output
        };
        let mut scratch = std::mem::take(&mut self.text);
        let text = stream.text(bytes, &mut scratch);
        let time = self.time(at);
        self.push_text(&time, code, text);
        self.text = scratch;
        self.commit(false)
    }

    /// The terminal was resized.
    pub fn resize(&mut self, at: Duration, cols: u16, rows: u16) -> Step {
        let time = self.time(at);
        let line = event_line(&time, 'r', &format!("{cols}x{rows}"));
        if !self.truncated {
            if (line.len() as u64) < self.room() {
                self.push_line(line);
            } else {
                self.truncate(&time);
            }
        }
        self.commit(false)
    }

    /// The command ended with `exit_status` (the status jitrun exits with: 128 + N for a
    /// signal). Writes what is left of a cut UTF-8 sequence, then the exit event, which is
    /// always the last line; its chunk carries `jitrun.recording.final`.
    pub fn finish(mut self, at: Duration, exit_status: i32) -> Finished<W> {
        let time = self.time(at);
        let mut rest = String::new();
        self.output.finish(&mut rest);
        self.push_text(&time, 'o', &rest);
        let mut rest = String::new();
        self.input.finish(&mut rest);
        self.push_text(&time, 'i', &rest);
        self.push_line(event_line(&time, 'x', &exit_status.to_string()));
        let step = self.commit(true);
        let summary = self.summary();
        Finished {
            step,
            summary,
            out: self.out,
        }
    }

    /// Bytes of the recording so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The totals so far.
    pub fn summary(&self) -> Summary {
        Summary {
            size: self.size,
            sha256: self.hash.hex(),
            chunks: self.chunker.seq,
            truncated: self.truncated,
            dropped_bytes: self.dropped,
            replaced_bytes: self.output.replaced + self.input.replaced,
            file_complete: self.file_ok,
        }
    }

    fn time(&mut self, at: Duration) -> String {
        self.last_time = self.last_time.max(at);
        format_time(self.last_time)
    }

    /// Bytes still free for events (the reserve kept for the marker and the exit).
    fn room(&self) -> u64 {
        self.max_bytes
            .saturating_sub(RESERVE)
            .saturating_sub(self.size + self.pending_bytes)
    }

    fn push_line(&mut self, line: String) {
        self.pending_bytes += line.len() as u64 + 1;
        self.pending.push(line);
    }

    /// `text` as events of `code`, each line at most [`MAX_LINE`] bytes; past the cap,
    /// the truncation marker and nothing more.
    fn push_text(&mut self, time: &str, code: char, text: &str) {
        let prefix = event_prefix(time, code);
        let mut rest = text;
        while !rest.is_empty() {
            if self.truncated {
                self.dropped += rest.len() as u64;
                return;
            }
            let room = self.room().min(MAX_LINE as u64 + 1) as usize;
            let mut line = String::with_capacity(room.min(MAX_LINE));
            line.push_str(&prefix);
            // As many characters as fit, escaped; runs that need no escape copied at once.
            let (mut len, mut used, mut plain_from) = (line.len(), 0, 0);
            let bytes = rest.as_bytes();
            while used < bytes.len() {
                // a run of plain text, as much of it as the line has room for (looked for no
                // further: a long run is cut into many lines)
                let end = bytes
                    .len()
                    .min(used + room.saturating_sub(len + EVENT_SUFFIX.len() + 1));
                let run = plain_ascii_prefix(&bytes[used..end]);
                len += run;
                used += run;
                if used == end {
                    break; // all of the text, or all the line takes
                }
                let c = match bytes[used] {
                    b if b.is_ascii() => char::from(b),
                    _ => rest[used..].chars().next().expect("a character boundary"),
                };
                let (n, add) = (c.len_utf8(), escaped_len(c));
                if len + add + EVENT_SUFFIX.len() + 1 > room {
                    break;
                }
                len += add;
                if add != n {
                    line.push_str(&rest[plain_from..used]);
                    escape_char(c, &mut line);
                    plain_from = used + n;
                }
                used += n;
            }
            line.push_str(&rest[plain_from..used.max(plain_from)]);
            if used == 0 {
                self.truncate(time);
                continue;
            }
            line.push_str(EVENT_SUFFIX);
            self.push_line(line);
            rest = &rest[used..];
        }
    }

    fn truncate(&mut self, time: &str) {
        self.truncated = true;
        let what = match self.on_limit {
            OnLimit::End => "the command is ended",
            OnLimit::Truncate => "what follows is not recorded",
        };
        let label = format!(
            "{TRUNCATED_MARKER}: record.max_bytes ({} bytes) reached; {what}",
            self.max_bytes
        );
        self.push_line(event_line(time, 'm', &label));
    }

    /// Chunk, hash and write the pending lines.
    fn commit(&mut self, last: bool) -> Step {
        let lines = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        let mut chunks = self.chunker.pack(lines, last);
        for chunk in &mut chunks {
            let start = bytes.len();
            for line in &chunk.lines {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
            self.hash.update(&bytes[start..]);
            chunk.sha256 = self.hash.hex();
        }
        self.size += bytes.len() as u64;
        let mut write_error = None;
        if self.file_ok && !bytes.is_empty() {
            if let Err(e) = self.out.write_all(&bytes).and_then(|()| self.out.flush()) {
                self.file_ok = false;
                write_error = Some(e);
            }
        }
        self.bytes = bytes;
        Step {
            chunks: chunks
                .into_iter()
                .map(|c| self.chunker.session.into_event(c))
                .collect(),
            limit_reached: self.truncated,
            write_error,
        }
    }
}
