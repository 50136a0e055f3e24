//! Uses of sealed break-glass grants, reported to the broker by `jitctl revocations sync` and
//! `watch` (root): a sealed grant is used on a host cut off from the broker, so the broker
//! learns of it when the host can reach it again. jitrun's use counters
//! (`/var/lib/jitrun/uses/<grant id>`, one per grant with `max_uses`) changed since the last
//! report are sent (`POST /v1/sealed/used`); the broker records those that are sealed grants
//! for this host and ignores the others. `/var/lib/jitrun/.uses-reported` remembers how far the
//! reports got.

use crate::client::{Broker, CALL_TIMEOUT};
use crate::error::{io_error, CliError, Result};
use crate::sync::{write_atomic, STATE_DIR};
use jit_grant::format_time;
use serde_json::{json, Value};
use std::path::Path;
use std::time::SystemTime;
use time::OffsetDateTime;

const USES: &str = "uses";
const MARK: &str = ".uses-reported";
/// Uses per report (the broker takes at most 500: a body of at most 64 KiB).
const CHUNK: usize = 250;

/// Report the uses counted since the last report; a failure is a warning (the next sync or
/// watch round tries again), never the end of the sync.
pub fn report_uses(broker: &Broker) {
    if let Err(e) = report(broker) {
        eprintln!("jitctl: warning: reporting uses of sealed grants to the broker: {e}; the next sync tries again");
    }
}

/// Nanoseconds since the epoch (the counters' mtimes, and the mark).
fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn read_mark() -> u128 {
    std::fs::read_to_string(Path::new(STATE_DIR).join(MARK))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Counters written after `since`: (grant id, when), oldest first.
fn counters_since(since: u128) -> Result<Vec<(String, u128)>> {
    let dir = Path::new(STATE_DIR).join(USES);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot read", &dir, &e)),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let at = meta.modified().map(nanos).unwrap_or(0);
        if valid && meta.is_file() && meta.len() > 0 && at > since {
            found.push((id, at));
        }
    }
    found.sort_by_key(|(_, at)| *at);
    Ok(found)
}

fn rfc3339(at: u128) -> String {
    let t =
        OffsetDateTime::from_unix_timestamp_nanos(at as i128).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format_time(t)
}

fn report(broker: &Broker) -> Result<()> {
    let counters = counters_since(read_mark())?;
    for chunk in counters.chunks(CHUNK) {
        let uses: Vec<Value> = chunk
            .iter()
            .map(|(id, at)| json!({"id": id, "at": rfc3339(*at)}))
            .collect();
        let body = json!({ "uses": uses });
        let reply = broker.exchange("POST", "/v1/sealed/used", Some(&body), CALL_TIMEOUT)?;
        let answer = reply.json("POST", "/v1/sealed/used")?;
        let recorded: Vec<&str> = answer
            .get("recorded")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !recorded.is_empty() {
            println!(
                "reported the use of sealed break-glass grant(s) {} on this host to {}",
                recorded.join(", "),
                reply.base
            );
        }
        let newest = chunk.last().map_or(0, |(_, at)| *at);
        write_atomic(
            Path::new(STATE_DIR),
            MARK,
            format!("{newest}\n").as_bytes(),
            0o600,
        )
        .map_err(|e| CliError(format!("{e} (the uses will be reported again)")))?;
    }
    Ok(())
}
