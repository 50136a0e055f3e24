//! `jitctl revocations sync` (root, from a systemd timer): fetch the broker's signed
//! revocation list, verify it with `/etc/jitrun/keys.d/`, refuse a rollback (a lower `seq`
//! than the list on disk), and write it atomically (root 0644) to
//! `/var/lib/jitrun/revocations`, where jitrun and its watchdog read it.

use crate::client::{text, Broker};
use crate::error::{io_error, CliError, Result};
use crate::sync::{host_keys, write_atomic, KEYS_DIR};
use jit_grant::{format_time, KeySet, RevocationList};
use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

pub const STATE_DIR: &str = "/var/lib/jitrun";
pub const FILE: &str = "revocations";

pub fn sync(broker: &Broker) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        return Err(CliError(
            "revocations sync writes /var/lib/jitrun/revocations: run it as root (the jitrun-revocations-sync timer does)".into(),
        ));
    }
    let keys = host_keys()?;
    if keys.is_empty() {
        return Err(CliError(format!(
            "{KEYS_DIR} holds no trusted broker key, so no revocation list can be verified; install the broker's public key there"
        )));
    }
    let (token, new) = fetch(broker, &keys)?;
    let path = Path::new(STATE_DIR).join(FILE);
    let old = on_disk(&path, &keys)?;
    if let Some(old) = &old {
        refuse_rollback(&new, old)?;
        if new.seq == old.seq && new.iat <= old.iat {
            println!(
                "revocation list unchanged: seq {} from {}, issued {} ({} revoked)",
                new.seq,
                new.iss,
                format_time(new.iat),
                new.revoked.len()
            );
            return Ok(0);
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(STATE_DIR)
        .map_err(|e| io_error("cannot create", Path::new(STATE_DIR), &e))?;
    write_atomic(
        Path::new(STATE_DIR),
        FILE,
        format!("{token}\n").as_bytes(),
        0o644,
    )?;
    report(&path, old.as_ref(), &new);
    Ok(0)
}

/// The broker's list: its token, and the list once it verifies with `keys` and carries the
/// `seq` the broker announced beside it.
fn fetch(broker: &Broker, keys: &KeySet) -> Result<(String, RevocationList)> {
    let v = broker.call("GET", "/v1/revocations", None)?;
    let token = text(&v, "token").trim().to_string();
    let new = RevocationList::verify(&token, keys)
        .map_err(|e| {
            CliError(format!(
                "the broker's revocation list does not verify with the keys in {KEYS_DIR}: {e}; nothing was written"
            ))
        })?
        .list;
    if let Some(seq) = v.get("seq").and_then(|s| s.as_u64()) {
        if seq != new.seq {
            return Err(CliError(format!(
                "the broker says seq {seq} but its signed list has seq {}; nothing was written",
                new.seq
            )));
        }
    }
    Ok((token, new))
}

/// The list on disk, when there is one that verifies (one that does not is replaced, with a
/// warning).
fn on_disk(path: &Path, keys: &KeySet) -> Result<Option<RevocationList>> {
    match std::fs::read_to_string(path) {
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
        Err(e) => Err(io_error("cannot read", path, &e)),
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

/// What was written, and which grants the new list adds and drops.
fn report(path: &Path, old: Option<&RevocationList>, new: &RevocationList) {
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
    println!(
        "wrote {}: seq {}{} from {}, issued {}; {} revoked{}{}",
        path.display(),
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
    );
}
