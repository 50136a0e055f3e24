//! Runs whose supervisor and watchdog both vanished (only root or the kernel's OOM killer can
//! end both: the caller can neither signal them nor reach them through a cgroup). Their
//! command would keep its capabilities with nobody to end it and nothing logged; the next
//! jitrun on the host finds such a run, ends it and logs its `elevate.end`
//! (`supervisor_killed`).
//!
//! Finding: a session directory `<cgroup2>/jitrun/<session>` whose `supervisor` leaf holds no
//! process (`system::cgroup::abandoned_sessions`). Logging: while the command runs, a record
//! `/var/lib/jitrun/runs/<session>` (root, 0600, in the root-only state directory) holds the
//! `elevate.end` event it would get. Exactly one jitrun logs it: a sweeper claims the record by
//! renaming it, which only one rename can do, so no lock is needed (and none can be held
//! against it).

use crate::audit::Auditor;
use crate::paths;
use crate::refusal::Refusal;
use crate::system::{cgroup, fs, process};
use crate::trusted_files;
use jit_audit::{Event, Value};
use serde_json::{json, Value as Json};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::AsFd;
use std::time::Duration;

fn runs_dir() -> String {
    format!("{}/runs", paths::STATE_DIR)
}

/// Session ids are 32 lower-case hex digits; nothing else names a record.
fn record_name(session: &str) -> Option<CString> {
    (session.len() == 32 && session.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| CString::new(session).expect("hex digits"))
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn to_json(event: &Event) -> Json {
    let fields: Vec<Json> = event
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Str(s) => json!({ "s": s }),
                Value::Int(i) => json!({ "i": i }),
                Value::Bool(b) => json!({ "b": b }),
                Value::List(l) => json!({ "l": l }),
            };
            json!([k, v])
        })
        .collect();
    json!({ "v": 1, "started_ms": now_ms(), "kind": event.kind.as_str(), "fields": fields })
}

fn from_json(j: &Json) -> Option<(Event, i64)> {
    if j.get("v")?.as_i64()? != 1 {
        return None;
    }
    let mut event = Event::new(jit_audit::EventType::from_name(j.get("kind")?.as_str()?)?);
    for f in j.get("fields")?.as_array()? {
        let [k, v] = f.as_array()?.as_slice() else {
            return None;
        };
        let value = if let Some(s) = v.get("s") {
            Value::Str(s.as_str()?.to_string())
        } else if let Some(i) = v.get("i") {
            Value::Int(i.as_i64()?)
        } else if let Some(b) = v.get("b") {
            Value::Bool(b.as_bool()?)
        } else {
            let items = v.get("l")?.as_array()?;
            Value::List(
                items
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<_>>()?,
            )
        };
        event.set(k.as_str()?, value);
    }
    Some((event, j.get("started_ms")?.as_i64()?))
}

/// Keep the `elevate.end` event a run would get if its supervisor and watchdog vanished. Needs
/// one free descriptor at most (a caller's tiny RLIMIT_NOFILE).
pub fn write(session: &str, end: &Event) -> Result<(), Refusal> {
    if record_name(session).is_none() {
        return Err(Refusal::config(
            "state",
            format!("bad session id {session:?}"),
        ));
    }
    trusted_files::write_state_file(&runs_dir(), session, to_json(end).to_string().as_bytes())
}

/// The run ended and its end was logged: forget the record (best effort).
pub fn remove(session: &str) {
    if record_name(session).is_some() {
        trusted_files::remove_state_file(&runs_dir(), session);
    }
}

/// Take the record of `session` for this process alone: Some(event, start) if it was there.
fn claim(session: &str) -> Option<(Event, i64)> {
    let name = record_name(session)?;
    let dir = trusted_files::walk_dir(&runs_dir()).ok()??;
    let mine = CString::new(format!(".{session}.claimed.{}", process::getpid())).ok()?;
    fs::renameat(dir.as_fd(), &name, &mine).ok()?;
    let mut text = String::new();
    let read = fs::openat(
        dir.as_fd(),
        &mine,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
    .and_then(|fd| std::fs::File::from(fd).read_to_string(&mut text));
    let _ = fs::unlinkat(dir.as_fd(), &mine);
    read.ok()?;
    from_json(&serde_json::from_str(&text).ok()?)
}

/// End every run whose supervisor and watchdog are gone, and log each end once.
pub fn sweep(auditor: &Auditor, own_session: &str) {
    for (session, dir, command) in cgroup::abandoned_sessions() {
        if session == own_session {
            continue;
        }
        if command.is_populated() {
            let _ = command.kill_all();
            for _ in 0..200 {
                if !command.is_populated() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some((mut end, started_ms)) = claim(&session) {
            end.int("jitrun.duration_ms", (now_ms() - started_ms).max(0))
                .str(
                    "jitrun.error",
                    format!(
                        "the supervisor and the watchdog of this run ended unexpectedly; jitrun (pid {}) found the command's processes left and killed them",
                        process::getpid()
                    ),
                );
            if let Err(e) = auditor.record(&end) {
                say!("jitrun: warning: the end of an abandoned run {session} was not logged: {e}");
            }
        }
        cgroup::remove_session(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_the_event_it_holds() {
        let mut ev = Event::new(jit_audit::EventType::ElevateEnd);
        ev.str("jitrun.session_id", "ab")
            .int("process.pid", 42)
            .bool("jitrun.grant.break_glass", false)
            .list("process.args", ["a", "b\nc"]);
        let (back, started) = from_json(&to_json(&ev)).unwrap();
        assert_eq!(back, ev);
        assert!(started > 0);
    }

    #[test]
    fn only_session_ids_name_records() {
        assert!(record_name("0123456789abcdef0123456789abcdef").is_some());
        for bad in [
            "",
            "../x",
            "0123456789abcdef0123456789abcde/",
            "g".repeat(32).as_str(),
        ] {
            assert!(record_name(bad).is_none(), "{bad}");
        }
    }
}
