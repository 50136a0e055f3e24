//! Rebuilding a recording from its `session.io` chunks, as syslog kept them.
//!
//! Chunks are put in sequence order whatever order they arrived in. Each chunk names the
//! byte offset of its first line and the SHA-256 of the recording through its last line, so
//! a lost chunk (a gap in the sequence numbers or offsets), a duplicate, a reordering, an
//! altered or forged chunk (its hash does not match what precedes it) and a recording that
//! never ended (no chunk with `jitrun.recording.final`) are each found and named by their
//! sequence numbers. With every chunk present and matching, the result is byte for byte
//! the file jitrun wrote, and its SHA-256 is the final chunk's (and `elevate.end`'s).

use crate::cast::{format_time, parse_event};
use crate::encode::json_string;
use crate::logline::Record;
use crate::sha::Sha256;
use jit_audit::session_io::Chunk;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Where a chunk was read: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Something wrong (or worth knowing) about the chunks of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A `session.io` event of this session that could not be read.
    Malformed { at: Source, why: String },
    /// The same chunk twice (the copy is ignored).
    Duplicate {
        seq: u64,
        first: Source,
        again: Source,
    },
    /// Two different chunks with one sequence number.
    Conflict {
        seq: u64,
        first: Source,
        again: Source,
    },
    /// A chunk that arrived after a later one (put back in order).
    Reordered { seq: u64, after: u64, at: Source },
    /// Chunks `from..=to` were not found.
    Missing { from: u64, to: u64 },
    /// A chunk does not start where the one before it ended.
    OffsetGap { seq: u64, expected: u64, got: u64 },
    /// A chunk's SHA-256 does not match the recording up to it.
    HashMismatch { seq: u64, at: Source },
    /// No chunk says it is the last one: the recording is cut short (or still running).
    NoFinal { last_seq: u64 },
    /// Chunks after the one marked final.
    AfterFinal { seq: u64 },
    /// `elevate.end` names another size or SHA-256 than the rebuilt recording's.
    EndMismatch {
        what: &'static str,
        end: String,
        rebuilt: String,
    },
    /// No chunk of this session at all.
    Nothing,
}

impl Problem {
    /// Whether the rebuilt file can be trusted despite this (duplicates and reordering are
    /// normal on some transports and change nothing).
    pub fn is_harmless(&self) -> bool {
        matches!(self, Problem::Duplicate { .. } | Problem::Reordered { .. })
    }
}

fn seqs(from: u64, to: u64) -> String {
    if from == to {
        format!("chunk seq {from} is")
    } else {
        format!("chunks seq {from} to {to} are")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed { at, why } => write!(f, "{at}: unreadable session.io event: {why}"),
            Problem::Duplicate { seq, first, again } => {
                write!(f, "chunk seq {seq} appears twice ({first} and {again}); the copy is ignored")
            }
            Problem::Conflict { seq, first, again } => write!(
                f,
                "chunk seq {seq} appears twice with different content ({first} and {again}): one of them is not jitrun's"
            ),
            Problem::Reordered { seq, after, at } => write!(
                f,
                "chunk seq {seq} ({at}) arrived after chunk seq {after}; put back in order"
            ),
            Problem::Missing { from, to } => write!(f, "{} missing", seqs(*from, *to)),
            Problem::OffsetGap { seq, expected, got } => write!(
                f,
                "chunk seq {seq} starts at byte {got}, but the chunks before it end at byte {expected}"
            ),
            Problem::HashMismatch { seq, at } => write!(
                f,
                "chunk seq {seq} ({at}) does not match its SHA-256: the recording was altered before or in this chunk"
            ),
            Problem::NoFinal { last_seq } => write!(
                f,
                "no final chunk: the recording ends after chunk seq {last_seq} (the session is still running, or the rest was lost)"
            ),
            Problem::AfterFinal { seq } => {
                write!(f, "chunk seq {seq} comes after the final chunk")
            }
            Problem::EndMismatch { what, end, rebuilt } => write!(
                f,
                "elevate.end gives the recording's {what} as {end}, the rebuilt recording has {rebuilt}"
            ),
            Problem::Nothing => write!(f, "no session.io event of this session was found"),
        }
    }
}

/// The outcome of [`Reassembler::finish`].
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The recording; with missing chunks, what there is, with a marker (`"m"` event) at
    /// each gap (and a stand-in header if the first chunk is lost), so it still plays.
    pub bytes: Vec<u8>,
    pub problems: Vec<Problem>,
    /// Chunks used.
    pub chunks: u64,
    /// SHA-256 of `bytes`.
    pub sha256: String,
    /// Every chunk from the first to the final one is there, each matches its hash, and
    /// `elevate.end` (when given) agrees: `bytes` is the recording jitrun wrote.
    pub complete: bool,
    /// An `elevate.end` with the recording's totals was found (and agrees when `complete`).
    pub end_seen: bool,
}

#[derive(Debug, Clone)]
struct Received {
    chunk: Chunk,
    at: Source,
}

/// Collects the chunks of one session, in any order.
#[derive(Debug)]
pub struct Reassembler {
    session_id: String,
    chunks: BTreeMap<u64, Vec<Received>>,
    highest: Option<u64>,
    problems: Vec<Problem>,
    end: Option<(Option<u64>, Option<String>)>,
}

impl Reassembler {
    pub fn new(session_id: &str) -> Reassembler {
        Reassembler {
            session_id: session_id.to_owned(),
            chunks: BTreeMap::new(),
            highest: None,
            problems: Vec::new(),
            end: None,
        }
    }

    /// Take one record; records of other sessions are ignored.
    pub fn add(&mut self, record: Record, at: Source) {
        match record {
            Record::End {
                session_id,
                size,
                sha256,
            } if session_id == self.session_id => self.end = Some((size, sha256)),
            Record::Chunk { session_id, chunk } if session_id == self.session_id => {
                self.add_chunk(chunk, at)
            }
            _ => {}
        }
    }

    /// A line that looked like this session's `session.io` event but could not be read.
    pub fn malformed(&mut self, at: Source, why: String) {
        self.problems.push(Problem::Malformed { at, why });
    }

    fn add_chunk(&mut self, chunk: Chunk, at: Source) {
        let seq = chunk.seq;
        let copies = self.chunks.entry(seq).or_default();
        if let Some(first) = copies.first() {
            let problem = if copies.iter().any(|c| c.chunk == chunk) {
                Problem::Duplicate {
                    seq,
                    first: first.at.clone(),
                    again: at,
                }
            } else {
                let p = Problem::Conflict {
                    seq,
                    first: first.at.clone(),
                    again: at.clone(),
                };
                copies.push(Received { chunk, at });
                p
            };
            self.problems.push(problem);
            return;
        }
        if let Some(after) = self.highest.filter(|h| *h > seq) {
            self.problems.push(Problem::Reordered {
                seq,
                after,
                at: at.clone(),
            });
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        copies.push(Received { chunk, at });
    }

    /// Put the chunks together and check them.
    pub fn finish(self) -> Rebuilt {
        let mut b = Builder::default();
        let mut problems = self.problems;
        if self.chunks.is_empty() {
            problems.push(Problem::Nothing);
        }
        let mut final_seen: Option<u64> = None;
        for (&seq, copies) in &self.chunks {
            if final_seen.is_some() {
                problems.push(Problem::AfterFinal { seq });
                continue;
            }
            if seq != b.next_seq {
                problems.push(Problem::Missing {
                    from: b.next_seq,
                    to: seq - 1,
                });
                b.gap(seq, copies[0].chunk.offset);
            } else if copies[0].chunk.offset != b.expected_offset {
                problems.push(Problem::OffsetGap {
                    seq,
                    expected: b.expected_offset,
                    got: copies[0].chunk.offset,
                });
                b.intact = false;
            }
            let chosen = b.choose(copies);
            if b.intact && b.hash.hex() != chosen.chunk.sha256 {
                problems.push(Problem::HashMismatch {
                    seq,
                    at: chosen.at.clone(),
                });
                b.intact = false;
            }
            if chosen.chunk.last {
                final_seen = Some(seq);
            }
        }
        if final_seen.is_none() {
            if let Some(&last_seq) = self.chunks.keys().next_back() {
                problems.push(Problem::NoFinal { last_seq });
            }
        }
        let end_seen = self.end.is_some();
        if let Some((size, sha256)) = self.end {
            let (got_size, got_hash) = (b.bytes.len() as u64, b.file_hash.hex());
            if let Some(size) = size.filter(|s| *s != got_size) {
                problems.push(Problem::EndMismatch {
                    what: "size",
                    end: size.to_string(),
                    rebuilt: got_size.to_string(),
                });
            }
            if let Some(h) = sha256.filter(|h| !h.eq_ignore_ascii_case(&got_hash)) {
                problems.push(Problem::EndMismatch {
                    what: "SHA-256",
                    end: h,
                    rebuilt: got_hash,
                });
            }
        }
        let complete = problems.iter().all(Problem::is_harmless);
        Rebuilt {
            sha256: b.file_hash.hex(),
            bytes: b.bytes,
            chunks: b.used,
            problems,
            complete,
            end_seen,
        }
    }
}

/// The file as it is put together.
struct Builder {
    bytes: Vec<u8>,
    /// Hash of the recording's own bytes (without gap markers): what chunks name.
    hash: Sha256,
    /// Hash of `bytes` as written out.
    file_hash: Sha256,
    next_seq: u64,
    expected_offset: u64,
    /// No gap or mismatch so far: hashes can be checked.
    intact: bool,
    used: u64,
    last_time: Duration,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            bytes: Vec::new(),
            hash: Sha256::new(),
            file_hash: Sha256::new(),
            next_seq: 0,
            expected_offset: 0,
            intact: true,
            used: 0,
            last_time: Duration::ZERO,
        }
    }
}

impl Builder {
    fn push_line(&mut self, line: &str, own: bool) {
        if own {
            self.hash.update(line.as_bytes());
            self.hash.update(b"\n");
        }
        self.file_hash.update(line.as_bytes());
        self.file_hash.update(b"\n");
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
        if let Ok(e) = parse_event(line) {
            self.last_time = self.last_time.max(Duration::from_secs_f64(e.time));
        }
    }

    /// Chunks are missing before `seq` (which starts at byte `offset`): a stand-in header
    /// when the first one is lost, and a marker where the rest were.
    fn gap(&mut self, seq: u64, offset: u64) {
        if self.next_seq == 0 {
            self.push_line(
                r#"{"version": 2, "width": 80, "height": 24, "title": "header lost: rebuilt by jitctl sessions fetch"}"#,
                false,
            );
        }
        let label = format!(
            "jitctl sessions fetch: {} missing here (bytes {} to {} of the recording)",
            seqs(self.next_seq, seq - 1),
            self.expected_offset,
            offset
        );
        let time = format_time(self.last_time);
        self.push_line(&format!("[{time}, \"m\", {}]", json_string(&label)), false);
        self.intact = false;
    }

    /// The copy to use (the first whose hash matches, when it can be checked), appended.
    fn choose<'c>(&mut self, copies: &'c [Received]) -> &'c Received {
        let matching = copies.iter().find(|c| {
            let mut h = self.hash.clone();
            for line in &c.chunk.lines {
                h.update(line.as_bytes());
                h.update(b"\n");
            }
            h.hex() == c.chunk.sha256
        });
        let chosen = match matching {
            Some(c) if self.intact => c,
            _ => &copies[0],
        };
        for line in &chosen.chunk.lines {
            self.push_line(line, true);
        }
        self.next_seq = chosen.chunk.seq + 1;
        self.expected_offset = chosen.chunk.offset + chosen.chunk.len();
        self.used += 1;
        chosen
    }
}
