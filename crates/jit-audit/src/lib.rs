//! jit-audit: jitrun's audit events — the schema, the two syslog framings, and the
//! datagram sink. It makes no decisions.
//!
//! One schema, two framings:
//! * `cee` (default): RFC 3164 header as glibc's syslog(3) writes it to a local socket
//!   (`<PRI>Mmm dd hh:mm:ss jitrun[PID]: `) then `@cee:` and the event as one JSON object
//!   with nested ECS objects (`{"event":{"action":"elevate.start",...},"user":{...},"jitrun":{...}}`).
//! * `rfc5424`: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD-ID k="v" ...] MSG` with MSGID = event type
//!   and the same fields, flattened to dotted names, as SD-PARAMs (escaping `"`, `\`, `]`).
//!
//! Facility authpriv (10). Severity per event type (see [`EventType::severity`]).
//!
//! `session.io` events carry a session recording in chunks ([`session_io`]).

pub mod escape;
pub mod event;
pub mod frame;
pub mod session_io;
pub mod sink;
pub mod spool;

pub use escape::{escape_bytes, unescape_bytes};
pub use event::{Event, EventType, Severity, Value, SCHEMA_VERSION};
pub use frame::{Framer, Framing, DEFAULT_MAX_MESSAGE, DEFAULT_SD_ID};
pub use session_io::{Chunk, SessionIo};
pub use sink::{AuditError, SyslogSink, DEFAULT_SOCKET};
pub use spool::{Spool, SpoolError, MAX_SPOOLED};
