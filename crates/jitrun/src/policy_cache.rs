//! The compiled policy cache: `/var/lib/jitrun/policy.snapshot`.
//!
//! Parsing every policy file on every run costs time in proportion to the policy (about
//! 120 ms at 10 000 rules). Instead, a run that finds a snapshot built from exactly the
//! files on disk decodes only the rules that name the caller (see `jit_policy::snapshot`).
//!
//! * The key (`jit_policy::snapshot_key`) is a format/version line, then for each source
//!   (policy.toml, the policy.d directory itself, each policy.d/*.toml in name order) its
//!   device, inode, size, mtime and ctime in nanoseconds, from `fstat` on the trusted, opened
//!   file: every run still walks and checks every policy file (owner, mode, no symbolic
//!   links) as a full load would, only without reading it. Any edit changes the ctime (which
//!   no one can set back), so an edited policy is never decided from an old snapshot.
//! * A snapshot is written only when every source is older than `snapshot_key::SETTLE`: a
//!   file changed twice within one tick of the file system's clock could otherwise keep its
//!   times and size across the edit (the "racy" case); until then runs load the files in full.
//! * `jitctl policy compile` (and `jitctl policy activate`) writes the same snapshot ahead of
//!   time, under the same rules, so that the first run after a change made with the
//!   project's tools need not parse anything. jitrun checks it like any other: nothing in it
//!   is believed unless its key is this run's.
//! * The snapshot must be a regular file owned by root, mode 0600, one link, in the
//!   root-owned state directory that no one else may even read (0700); anything else
//!   (damaged, stale, a symbolic link, another owner or mode) is ignored and replaced.
//! * On a miss, the policy is loaded in full as before, and the snapshot is written
//!   atomically (temporary file, then rename); a failure to write only costs the next run
//!   its speed.
//! * The subset: with a grant (or `--rule`), only the rule it names, if that rule names the
//!   caller; else (`jitrun -l`, the grant store, standing rules) every rule that names the
//!   caller. Either way it holds every rule that could allow the run, in load order.
//! * The subset allows exactly what the full policy allows; a refusal is re-decided on the
//!   full policy by the caller ([`Loaded::complete`]), so its message and deny code are
//!   those of a full load. Refusals are the slow path.

use crate::config;
use crate::identity::Invoker;
use crate::paths;
use crate::refusal::Refusal;
use crate::system::{self, fs};
use crate::trusted_files::{self, MAX_TRUSTED_FILE};
use jit_policy::decide::names_user;
use jit_policy::snapshot::{self, Snapshot, SnapshotError, Want, HEADER_LEN};
use jit_policy::snapshot_key::{SnapshotKey, SourceIdentity};
use jit_policy::Policy;
use std::ffi::CString;
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SNAPSHOT_NAME: &str = "policy.snapshot";
/// Largest snapshot read: the policy files themselves are bounded by MAX_TRUSTED_FILE each.
const MAX_SNAPSHOT: u64 = 1 << 30;

/// A policy, possibly only the rules that name the caller.
pub struct Loaded {
    pub policy: Policy,
    /// False when `policy` holds only the caller's rules: re-decide a refusal on the full
    /// policy ([`config::load_policy`]).
    pub complete: bool,
}

fn identity(st: fs::Stat) -> SourceIdentity {
    SourceIdentity {
        dev: st.dev,
        ino: st.ino,
        size: st.size,
        mtime_ns: st.mtime_ns,
        ctime_ns: st.ctime_ns,
        mode: st.mode,
    }
}

/// The key of the policy files on disk, checking each as a full load would.
fn key() -> Result<SnapshotKey, Refusal> {
    let mut key = SnapshotKey::new();
    // One checked walk to /etc/jitrun, then each file relative to it: the same checks as a
    // full load (every directory and file root-owned, writable by root alone, no links).
    let (conf, policy_name) = paths::POLICY.rsplit_once('/').expect("an absolute path");
    let (_, dir_name) = paths::POLICY_DIR
        .rsplit_once('/')
        .expect("an absolute path");
    let conf_fd = trusted_files::walk_dir(conf)?;
    let policy = match &conf_fd {
        Some(fd) => {
            trusted_files::stat_in(fd.as_fd(), paths::POLICY, policy_name, MAX_TRUSTED_FILE)?
        }
        None => None,
    };
    key.source(paths::POLICY, policy.map(identity).as_ref());
    let dir_fd = match &conf_fd {
        Some(fd) => trusted_files::subdir(fd.as_fd(), paths::POLICY_DIR, dir_name)?,
        None => None,
    };
    let dir = match &dir_fd {
        Some(fd) => Some(fs::fstat(fd.as_fd()).map_err(|e| {
            Refusal::config("untrusted_file", format!("{}: {e}", paths::POLICY_DIR))
        })?),
        None => None,
    };
    key.source(paths::POLICY_DIR, dir.map(identity).as_ref());
    if let Some(fd) = &dir_fd {
        for name in trusted_files::names(paths::POLICY_DIR, ".toml")? {
            let path = format!("{}/{name}", paths::POLICY_DIR);
            let st = trusted_files::stat_in(fd.as_fd(), &path, &name, MAX_TRUSTED_FILE)?;
            key.source(&path, st.map(identity).as_ref());
        }
    }
    Ok(key)
}

/// The policy for `inv`: from the snapshot when it is current, else loaded in full (and,
/// with `rebuild`, the snapshot written again). From the snapshot: with `only`, just the
/// rules of those names that name the caller (a grant's rule, `--rule`); else every rule
/// that names the caller. `jitrun -l` passes `rebuild = false`: it creates no state.
pub fn load_for(inv: &Invoker, only: Option<&[String]>, rebuild: bool) -> Result<Loaded, Refusal> {
    // A policy file that cannot be checked: the full load reports it, with today's message.
    let Ok(key) = key() else {
        return full(None);
    };
    if let Some(policy) = read_subset(key.bytes(), inv, only) {
        return Ok(Loaded {
            policy,
            complete: false,
        });
    }
    full(Some(&key).filter(|_| rebuild))
}

fn full(key: Option<&SnapshotKey>) -> Result<Loaded, Refusal> {
    let policy = config::load_policy()?;
    if let Some(key) = key {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        if key.settles_in(now).is_zero() {
            // Best effort: a snapshot that cannot be written only makes the next run slower.
            let _ = write(&policy, key.bytes());
        }
    }
    Ok(Loaded {
        policy,
        complete: true,
    })
}

/// The state directory, if it is root's alone (walk-checked, and no access for others).
fn state_dir(create: bool) -> Option<std::os::fd::OwnedFd> {
    let dir = if create {
        trusted_files::state_dir(paths::STATE_DIR).ok()?
    } else {
        trusted_files::walk_dir(paths::STATE_DIR).ok()??
    };
    let st = fs::fstat(dir.as_fd()).ok()?;
    (st.uid == 0 && st.mode & 0o077 == 0).then_some(dir)
}

fn read_subset(key: &[u8], inv: &Invoker, only: Option<&[String]>) -> Option<Policy> {
    let dir = state_dir(false)?;
    let name = CString::new(SNAPSHOT_NAME).expect("no NUL");
    let fd = fs::openat(
        dir.as_fd(),
        &name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )
    .ok()?;
    let st = fs::fstat(fd.as_fd()).ok()?;
    if !st.is_file()
        || st.uid != 0
        || st.mode & 0o7777 != 0o600
        || st.nlink != 1
        || st.size > MAX_SNAPSHOT
    {
        return None;
    }
    decode_subset(fd.as_fd(), st.size, key, inv, only)
}

fn decode_subset(
    fd: BorrowedFd<'_>,
    size: u64,
    key: &[u8],
    inv: &Invoker,
    only: Option<&[String]>,
) -> Option<Policy> {
    let head = fs::pread_exact(fd, 0, HEADER_LEN).ok()?;
    let key_len = Snapshot::key_len(&head).ok()?;
    if (HEADER_LEN + key_len) as u64 > size {
        return None;
    }
    let prefix = fs::pread_exact(fd, 0, HEADER_LEN + key_len).ok()?;
    let snap = Snapshot::open(&prefix, key, size).ok()?;
    let want = match only {
        None => Want::Naming {
            user: &inv.name,
            groups: &inv.groups,
        },
        Some(names) => Want::Named(names),
    };
    let mut read = |r: std::ops::Range<u64>| {
        let len = usize::try_from(r.end - r.start).map_err(|_| SnapshotError::Stale)?;
        fs::pread_exact(fd, r.start, len).map_err(|e| SnapshotError::Corrupt(e.to_string()))
    };
    let mut rules = snap.read_rules(want, &mut read).ok()?;
    // A rule named by a grant or --rule is of use only if it names the caller.
    rules.retain(|r| names_user(r, &inv.name, &inv.groups));
    Some(Policy { rules })
}

fn write(policy: &Policy, key: &[u8]) -> std::io::Result<()> {
    let dir = state_dir(true).ok_or_else(|| std::io::Error::other("state directory"))?;
    let bytes = snapshot::encode(policy, key);
    let tmp =
        CString::new(format!(".{SNAPSHOT_NAME}.{}", system::random_hex16()?)).expect("no NUL");
    let fd = fs::openat(
        dir.as_fd(),
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o600,
    )?;
    let done = (|| {
        fs::fchmod(fd.as_fd(), 0o600)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(&bytes)?;
        drop(f);
        let name = CString::new(SNAPSHOT_NAME).expect("no NUL");
        fs::renameat(dir.as_fd(), &tmp, &name)
    })();
    if done.is_err() {
        let _ = fs::unlinkat(dir.as_fd(), &tmp);
    }
    done
}
