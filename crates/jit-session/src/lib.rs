//! jit-session: jitrun's session recordings — the data plane of a recorded run.
//!
//! * Writing (linked into the setuid `jitrun`, so pure and small: no I/O beyond the
//!   `Write` it is handed): [`Recorder`] turns what a command writes (and, when asked, what
//!   is typed to it), window size changes and its exit into an **asciicast v2** file
//!   ([`cast`]), streamed line by line, with the running size and SHA-256 of the file, a
//!   size cap with an explicit truncation marker, and — for each call — the `session.io`
//!   audit events ([`jit_audit::session_io`]) that carry the same lines off the host.
//! * Reading (jitctl): [`cast`] parses recordings; [`logline`] reads `session.io` events
//!   back from what rsyslog wrote (either framing); [`fetch`] puts the chunks together,
//!   names every missing, duplicated, reordered or altered chunk, and checks the result
//!   against the recording's SHA-256.
//!
//! # What a recording holds
//!
//! See [`cast`] for the format. Text is UTF-8 as the terminal shows it: a UTF-8 sequence
//! split between two reads is decoded whole; bytes that are not UTF-8 are recorded as
//! U+FFFD (one per maximal invalid subsequence, as a terminal displays them) and counted
//! ([`Summary::replaced_bytes`]). Control characters, NUL and escape sequences are kept,
//! JSON-escaped (`\u001b[31m`), so no output can break a line of the file or a datagram.
//!
//! # For the pty relay
//!
//! ```text
//! let (mut rec, step) = Recorder::start(file, &header, session_io, options)?;   // header
//! send(step.chunks);                                   // session.io events, through the Auditor
//! loop {
//!     let step = rec.output(elapsed, &buf[..n]);       // also rec.input(..), rec.resize(..)
//!     send(step.chunks);
//!     if step.write_error.is_some() { /* record.on_failure */ }
//!     if step.limit_reached { /* record.on_max_bytes = "end": end the command */ }
//! }
//! let done = rec.finish(elapsed, exit_status);         // the exit event, final chunk
//! send(done.step.chunks);  // done.summary: size and SHA-256 for elevate.end
//! ```
#![forbid(unsafe_code)]

pub mod cast;
pub mod encode;
pub mod fetch;
pub mod logline;
pub mod recorder;
pub mod sha;

pub use cast::{command_line, Header, SessionInfo, MAX_LINE, MIN_MAX_BYTES};
pub use fetch::{Problem, Reassembler, Rebuilt, Source};
pub use logline::{parse_line, Record};
pub use recorder::{Finished, OnLimit, Options, RecordError, Recorder, Step, Summary};
