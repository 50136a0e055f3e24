//! `pam.auth_cache`: "this user authenticated in this terminal session a moment ago".
//!
//! One root-owned file per uid, `/var/lib/jitrun/auth/<uid>` (directory root 0700, file
//! 0600), so a user can neither forge nor share an entry. An entry is bound to the
//! terminal (device number), the session id and the session leader's start time (so a new
//! login on a reused tty or a recycled session id does not match), and is timed on
//! CLOCK_BOOTTIME (not the settable wall clock; it does not survive a reboot). Runs without a
//! controlling terminal are never cached.

use crate::paths;
use crate::refusal::Refusal;
use crate::system::{fs, process};
use crate::trusted_files;
use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::time::Duration;

/// Entries kept per user (newest first); older ones are dropped.
const MAX_ENTRIES: usize = 16;

/// The terminal session a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    tty: u64,
    sid: i32,
    leader_start: u64,
}

/// Fields 7 (tty_nr), 6 (session) and 22 (starttime) of /proc/PID/stat, counted after the
/// command name, which may contain spaces and parentheses.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    // after[0] is field 3 (state)
    Some(after.split_whitespace().map(str::to_string).collect())
}

impl Key {
    /// This process's terminal session, if it has a controlling terminal.
    pub fn current() -> Option<Key> {
        let me = stat_fields("self")?;
        let sid: i32 = me.get(3)?.parse().ok()?; // field 6
        let tty: u64 = me.get(4)?.parse::<i64>().ok()? as u64; // field 7
        if tty == 0 || sid <= 0 {
            return None;
        }
        let leader = stat_fields(&sid.to_string())?;
        let leader_start: u64 = leader.get(19)?.parse().ok()?; // field 22
        Some(Key {
            tty,
            sid,
            leader_start,
        })
    }
}

fn dir() -> String {
    format!("{}/auth", paths::STATE_DIR)
}

struct Entry {
    key: Key,
    at: u64,
}

fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 5 || f[0] != "v1" {
                return None;
            }
            Some(Entry {
                key: Key {
                    tty: f[1].parse().ok()?,
                    sid: f[2].parse().ok()?,
                    leader_start: f[3].parse().ok()?,
                },
                at: f[4].parse().ok()?,
            })
        })
        .collect()
}

fn open(uid: u32, create: bool) -> Result<Option<std::fs::File>, Refusal> {
    let dir_fd = if create {
        trusted_files::state_dir(&dir())?
    } else {
        match trusted_files::walk_dir(&dir())? {
            Some(d) => d,
            None => return Ok(None),
        }
    };
    let name = CString::new(uid.to_string()).expect("digits");
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | if create { libc::O_CREAT } else { 0 };
    let fd = match fs::openat(dir_fd.as_fd(), &name, flags, 0o600) {
        Ok(fd) => fd,
        Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Refusal::config("state", format!("{}/{uid}: {e}", dir()))),
    };
    let st = fs::fstat(fd.as_fd())
        .map_err(|e| Refusal::config("state", format!("{}/{uid}: {e}", dir())))?;
    if !st.is_file() || st.uid != 0 || st.mode & 0o077 != 0 {
        return Err(Refusal::config(
            "untrusted_file",
            format!(
                "{}/{uid}: must be a regular file owned by root with mode 0600; remove it",
                dir()
            ),
        ));
    }
    let file = std::fs::File::from(fd);
    fs::lock_exclusive(&file)
        .map_err(|e| Refusal::config("state", format!("{}/{uid}: cannot lock: {e}", dir())))?;
    Ok(Some(file))
}

/// Did `uid` authenticate in session `key` less than `ttl` ago? Any doubt is "no".
pub fn is_fresh(uid: u32, key: &Key, ttl: Duration) -> bool {
    let Ok(Some(mut f)) = open(uid, false) else {
        return false;
    };
    let mut text = String::new();
    if f.read_to_string(&mut text).is_err() {
        return false;
    }
    let Ok(now) = process::boottime_secs() else {
        return false;
    };
    parse(&text)
        .iter()
        .any(|e| e.key == *key && e.at <= now && now - e.at < ttl.as_secs())
}

/// Remember that `uid` authenticated now in session `key`.
pub fn record(uid: u32, key: &Key) -> Result<(), Refusal> {
    let now = process::boottime_secs()
        .map_err(|e| Refusal::config("state", format!("clock_gettime(CLOCK_BOOTTIME): {e}")))?;
    let mut f = open(uid, true)?
        .ok_or_else(|| Refusal::config("state", format!("{}/{uid}: not created", dir())))?;
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let mut entries: Vec<Entry> = parse(&text).into_iter().filter(|e| e.key != *key).collect();
    entries.insert(
        0,
        Entry {
            key: key.clone(),
            at: now,
        },
    );
    entries.truncate(MAX_ENTRIES);
    let out: String = entries
        .iter()
        .map(|e| {
            format!(
                "v1 {} {} {} {}\n",
                e.key.tty, e.key.sid, e.key.leader_start, e.at
            )
        })
        .collect();
    let write = |f: &mut std::fs::File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(out.as_bytes())?;
        f.sync_all()
    };
    write(&mut f).map_err(|e| Refusal::config("state", format!("{}/{uid}: {e}", dir())))
}

/// Forget every cached authentication of `uid` (`jitrun -k`).
pub fn clear(uid: u32) -> Result<(), Refusal> {
    if let Some(f) = open(uid, false)? {
        f.set_len(0)
            .map_err(|e| Refusal::config("state", format!("{}/{uid}: {e}", dir())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_garbage_and_other_versions() {
        let e = parse("v1 34816 100 5000 42\nv2 1 2 3 4\nv1 x 1 2 3\n\nv1 1 2 3\n");
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].key,
            Key {
                tty: 34816,
                sid: 100,
                leader_start: 5000
            }
        );
        assert_eq!(e[0].at, 42);
    }
}
