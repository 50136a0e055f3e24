//! `jitctl sessions list|play|fetch|prune`: session recordings (docs/admin-guide.md,
//! "Session recordings"). The recordings directory is root's alone (0700, files 0600), so
//! list, play and prune work as root; fetch reads whatever log files its caller may read.
mod fetch;
mod list;
mod play;
mod prune;

use crate::cli::SessionsCommand;
use crate::error::{io_error, CliError, Result};
use jit_session::cast::{parse_event, parse_header, EventKind, HeaderView, TRUNCATED_MARKER};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub fn run(cmd: &SessionsCommand) -> Result<i32> {
    match cmd {
        SessionsCommand::List(a) => list::run(a).map(|()| 0),
        SessionsCommand::Play(a) => play::run(a),
        SessionsCommand::Fetch(a) => fetch::run(a),
        SessionsCommand::Prune(a) => prune::run(a).map(|()| 0),
    }
}

/// A session id: 32 lowercase hex digits (jitrun.session_id, the recording's file name).
pub fn valid_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `ID` → `DIR/ID.cast`; anything with a `/` or ending in `.cast` is a file path.
pub fn recording_path(arg: &str, dir: &Path) -> Result<PathBuf> {
    if valid_id(arg) {
        return Ok(dir.join(format!("{arg}.cast")));
    }
    if arg.contains('/') || arg.ends_with(".cast") {
        return Ok(PathBuf::from(arg));
    }
    Err(CliError(format!(
        "{arg:?} is neither a session id (32 hex digits, as `jitctl sessions list` shows) nor a .cast file"
    )))
}

/// An error reading the recordings, with what to do when it is a permission problem.
pub fn read_error(what: &str, path: &Path, e: &io::Error) -> CliError {
    let mut err = io_error(what, path, e);
    if e.kind() == io::ErrorKind::PermissionDenied {
        err.0.push_str(
            "; session recordings are root's alone (directory 0700, files 0600): run this as root",
        );
    }
    err
}

/// How a recording ended, as far as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The exit event is there: the status as written.
    Ended(String),
    /// No exit event (yet): still being recorded, or jitrun was killed.
    Open,
}

/// What `list` shows of one recording.
#[derive(Debug, Clone)]
pub struct Summary {
    pub path: PathBuf,
    pub header: HeaderView,
    pub size: u64,
    pub modified: SystemTime,
    /// Time of the last event, in seconds from the start.
    pub duration: f64,
    pub state: State,
    pub truncated: bool,
}

/// Bytes read from each end of a file to find its header and its last events.
const PEEK: u64 = 64 * 1024;

/// Read a recording's header and its last lines (never the whole file).
pub fn summarize(path: &Path) -> Result<Summary> {
    let mut file = File::open(path).map_err(|e| read_error("cannot read", path, &e))?;
    let meta = file
        .metadata()
        .map_err(|e| read_error("cannot read", path, &e))?;
    let mut head = Vec::new();
    (&mut file)
        .take(PEEK)
        .read_to_end(&mut head)
        .map_err(|e| read_error("cannot read", path, &e))?;
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = parse_header(&String::from_utf8_lossy(first))
        .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    let size = meta.len();
    let tail = if size > PEEK {
        let mut t = Vec::new();
        file.seek(SeekFrom::Start(size - PEEK))
            .and_then(|_| file.take(PEEK).read_to_end(&mut t))
            .map_err(|e| read_error("cannot read", path, &e))?;
        t
    } else {
        head
    };
    let (duration, state, truncated) = tail_facts(&tail);
    Ok(Summary {
        path: path.to_owned(),
        header,
        size,
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        duration,
        state,
        truncated,
    })
}

/// From the last bytes of a recording: the last event's time, whether the exit event ends
/// it, and whether the truncation marker is there (it is among the last lines).
fn tail_facts(tail: &[u8]) -> (f64, State, bool) {
    let text = String::from_utf8_lossy(tail);
    let mut duration = 0.0;
    let mut state = State::Open;
    let mut truncated = false;
    // Only whole lines: the last one may still be being written.
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    for (i, line) in complete.rsplit('\n').take(8).enumerate() {
        let Ok(e) = parse_event(line) else { continue };
        duration = f64::max(duration, e.time);
        match e.kind {
            // The exit event counts only as the very last line.
            EventKind::Exit(s) if i == 0 => state = State::Ended(s),
            EventKind::Marker(m) if m.starts_with(TRUNCATED_MARKER) => truncated = true,
            _ => {}
        }
    }
    (duration, state, truncated)
}

/// `1.2 MiB`, `512 B`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `2026-11-25 17:15:01` (UTC).
pub fn utc(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// `1h02m03s`, `4.2s`.
pub fn human_duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        let dir = Path::new("/var/log/jitrun/sessions");
        let id = "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6";
        assert_eq!(
            recording_path(id, dir).unwrap(),
            dir.join(format!("{id}.cast"))
        );
        assert_eq!(recording_path("x/y", dir).unwrap(), PathBuf::from("x/y"));
        assert_eq!(
            recording_path("a.cast", dir).unwrap(),
            PathBuf::from("a.cast")
        );
        assert!(recording_path("../../etc/shadow", dir).is_ok()); // a path: read as the caller
        let e = recording_path("4F6C", dir).unwrap_err().to_string();
        assert!(e.contains("neither a session id"), "{e}");
        assert!(!valid_id(&id.to_uppercase()) && !valid_id(&id[1..]));
    }

    #[test]
    fn tails() {
        let t = b"{\"version\": 2}\n[1.5, \"o\", \"x\"]\n[2.0, \"m\", \"jitrun: recording truncated: ...\"]\n[3.25, \"x\", \"143\"]\n";
        assert_eq!(tail_facts(t), (3.25, State::Ended("143".into()), true));
        let open = b"[1.5, \"o\", \"x\"]\n[2.5, \"o\", \"y\"]\n[3.0, \"o\", \"half";
        assert_eq!(tail_facts(open), (2.5, State::Open, false));
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_duration(4.25), "4.2s");
        assert_eq!(human_duration(3723.0), "1h02m03s");
        assert_eq!(utc(1_795_626_901), "2026-11-25 17:15:01");
    }
}
