//! `jitctl revocations sync` (root, from a systemd timer) and `jitctl revocations watch` (root,
//! a small service): fetch the broker's signed revocation list, verify it with
//! `/etc/jitrun/keys.d/`, refuse a rollback (a lower `seq` than the list on disk), and write it
//! atomically (root 0644) to `/var/lib/jitrun/revocations`, where jitrun and its watchdog read
//! it. The watch asks with `after_seq`, which the broker holds open until the list changes, so
//! a revocation reaches the host in about a second instead of at the timer's next run.
//!
//! Both write under one lock (`/var/lib/jitrun/.revocations.lock`): the timer and the watch
//! running at the same moment cannot write an older list over a newer one.

use crate::cli::WatchArgs;
use crate::client::{text, Broker, Reply, CALL_TIMEOUT};
use crate::error::{io_error, CliError, Result};
use crate::sync::{host_keys, write_atomic, KEYS_DIR, STATE_DIR};
use jit_grant::{format_time, KeySet, RevocationList};
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

pub const FILE: &str = "revocations";
const LOCK: &str = ".revocations.lock";
/// Longest pause between two attempts of the watch when no broker answers.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much longer than its hold a watch call may take before it counts as lost.
const WATCH_SLACK: Duration = Duration::from_secs(20);

/// What writing a fetched list did.
enum Applied {
    /// The same `seq`, not newer: nothing written.
    Unchanged(RevocationList),
    /// Written; the list it replaced, if one verified.
    Written {
        old: Option<RevocationList>,
        new: RevocationList,
    },
}

fn require_root(what: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(CliError(format!(
        "revocations {what} writes /var/lib/jitrun/revocations: run it as root (the jitrun-revocations-{what} unit does)"
    )))
}

fn trusted_keys() -> Result<KeySet> {
    let keys = host_keys()?;
    if keys.is_empty() {
        return Err(CliError(format!(
            "{KEYS_DIR} holds no trusted broker key, so no revocation list can be verified; install the broker's public key there"
        )));
    }
    Ok(keys)
}

/// The list on disk, if it verifies (a warning when it is there and does not).
fn on_disk(keys: &KeySet) -> Result<Option<RevocationList>> {
    let path = Path::new(STATE_DIR).join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => match RevocationList::verify(t.trim(), keys) {
            Ok(v) => Ok(Some(v.list)),
            Err(e) => {
                eprintln!(
                    "jitctl: warning: the list on disk ({}) does not verify ({e}); replacing it",
                    path.display()
                );
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read", &path, &e)),
    }
}

/// Hold the lock on the state directory's revocation lock file while `f` runs.
fn locked<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(STATE_DIR)
        .map_err(|e| io_error("cannot create", Path::new(STATE_DIR), &e))?;
    let path = Path::new(STATE_DIR).join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(&path)
        .map_err(|e| io_error("cannot open", &path, &e))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| CliError(format!("cannot lock {}: {e}", path.display())))?;
    f()
}

fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// Verify the broker's answer and write it unless it is older than, or the same as, the
/// list on disk.
fn apply(v: &Value, keys: &KeySet) -> Result<Applied> {
    let (token, new) = verified(v, keys)?;
    locked(|| {
        let old = on_disk(keys)?;
        if let Some(old) = &old {
            refuse_rollback(&new, old)?;
            if new.seq == old.seq && new.iat <= old.iat {
                return Ok(Applied::Unchanged(new));
            }
        }
        write_atomic(
            Path::new(STATE_DIR),
            FILE,
            format!("{token}\n").as_bytes(),
            0o644,
        )?;
        Ok(Applied::Written { old, new })
    })
}

/// The broker's list: its token, and the list once it verifies with `keys` and carries the
/// `seq` the broker announced beside it.
fn verified(v: &Value, keys: &KeySet) -> Result<(String, RevocationList)> {
    let token = text(v, "token").trim().to_string();
    let new = RevocationList::verify(&token, keys)
        .map_err(|e| {
            CliError(format!(
                "the broker's revocation list does not verify with the keys in {KEYS_DIR}: {e}; nothing was written"
            ))
        })?
        .list;
    match v.get("seq").and_then(Value::as_u64) {
        Some(seq) if seq != new.seq => Err(CliError(format!(
            "the broker says seq {seq} but its signed list has seq {}; nothing was written",
            new.seq
        ))),
        _ => Ok((token, new)),
    }
}

/// A list older than the one on disk (a lower `seq`) is a replay or a restored broker.
fn refuse_rollback(new: &RevocationList, old: &RevocationList) -> Result<()> {
    if new.seq >= old.seq {
        return Ok(());
    }
    Err(CliError(format!(
        "refusing a rollback: the broker's list has seq {} (issued {}), older than seq {} (issued {}) on disk; a replayed or restored broker? nothing was written",
        new.seq,
        format_time(new.iat),
        old.seq,
        format_time(old.iat)
    )))
}

/// One line about a written list: seq, issuer, time, what changed, and which broker.
fn written_line(old: Option<&RevocationList>, new: &RevocationList, from: &str) -> String {
    let before: HashSet<&str> = old
        .map(|o| o.revoked.iter().map(|r| r.jti.as_str()).collect())
        .unwrap_or_default();
    let after: HashSet<&str> = new.revoked.iter().map(|r| r.jti.as_str()).collect();
    let added: Vec<String> = new
        .revoked
        .iter()
        .filter(|r| !before.contains(r.jti.as_str()))
        .map(|r| format!("{} ({})", r.jti, r.reason))
        .collect();
    let dropped = before.difference(&after).count();
    format!(
        "wrote {STATE_DIR}/{FILE}: seq {}{} from {} ({from}), issued {}; {} revoked{}{}",
        old.map(|o| format!("{} -> ", o.seq)).unwrap_or_default(),
        new.seq,
        new.iss,
        format_time(new.iat),
        new.revoked.len(),
        if added.is_empty() {
            String::new()
        } else {
            format!("; newly revoked: {}", added.join(", "))
        },
        if dropped > 0 {
            format!("; {dropped} expired entries left the list")
        } else {
            String::new()
        }
    )
}

pub fn sync(broker: &Broker) -> Result<i32> {
    require_root("sync")?;
    let keys = trusted_keys()?;
    let reply = broker.exchange("GET", "/v1/revocations", None, CALL_TIMEOUT)?;
    let v = reply.json("GET", "/v1/revocations")?;
    match apply(&v, &keys)? {
        Applied::Unchanged(list) => println!(
            "revocation list unchanged: seq {} from {} ({}), issued {} ({} revoked)",
            list.seq,
            list.iss,
            reply.base,
            format_time(list.iat),
            list.revoked.len()
        ),
        Applied::Written { old, new } => {
            println!("{}", written_line(old.as_ref(), &new, &reply.base))
        }
    }
    crate::sealed::report_uses(broker);
    Ok(0)
}

/// `jitctl revocations watch`: hold a watch on the broker (fail-over through the URL list),
/// write every new list as `sync` does, and start again; never returns but on a fatal error
/// (not root, no trusted key).
pub fn watch(broker: &Broker, args: &WatchArgs) -> Result<i32> {
    require_root("watch")?;
    let wait = jit_policy::parse_duration(&args.wait)
        .map_err(|e| CliError(format!("--wait: {e}")))?
        .max(Duration::from_secs(1));
    let mut backoff = Duration::from_secs(1);
    let mut last_base = String::new();
    loop {
        // The keys are read every time: a key roll-over in keys.d needs no restart.
        let keys = trusted_keys()?;
        let after = on_disk(&keys)?.map_or(0, |l| l.seq);
        let path = format!("/v1/revocations?after_seq={after}&wait={}", wait.as_secs());
        let pause = match broker.exchange("GET", &path, None, wait + WATCH_SLACK) {
            Ok(reply) if reply.status == 429 => Some(watches_full(&reply, wait)),
            Ok(reply) => match reply.json("GET", &path).and_then(|v| apply(&v, &keys)) {
                Ok(applied) => {
                    say_applied(&applied, &reply.base, &mut last_base);
                    backoff = Duration::from_secs(1);
                    None
                }
                Err(e) => Some(failed(&e, &mut backoff)),
            },
            Err(e) => Some(failed(&e, &mut backoff)),
        };
        crate::sealed::report_uses(broker);
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    }
}

/// What the watch prints: a line per new list (not for the same list signed anew), and
/// when another broker starts answering.
fn say_applied(applied: &Applied, base: &str, last_base: &mut String) {
    if let Applied::Written { old, new } = applied {
        if old.as_ref().is_none_or(|o| o.seq != new.seq) {
            println!("{}", written_line(old.as_ref(), new, base));
        }
    }
    if last_base != base {
        if !last_base.is_empty() {
            println!("watching {base} now");
        }
        *last_base = base.to_string();
    }
}

/// Every broker holds as many watches as it may: wait as told (at most the hold), and the
/// timer keeps the list current meanwhile.
fn watches_full(reply: &Reply, wait: Duration) -> Duration {
    let pause = reply
        .retry_after
        .map_or(wait, Duration::from_secs)
        .min(wait);
    eprintln!(
        "jitctl: {} holds as many revocation watches as it may (HTTP 429); watching again in {}",
        reply.base,
        jit_policy::format_duration(pause)
    );
    pause
}

fn failed(e: &CliError, backoff: &mut Duration) -> Duration {
    let pause = *backoff;
    eprintln!(
        "jitctl: revocations watch: {e}; trying again in {}",
        jit_policy::format_duration(pause)
    );
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    pause
}
