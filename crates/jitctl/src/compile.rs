//! `jitctl policy compile` (root): the compiled policy snapshot jitrun uses,
//! `/var/lib/jitrun/policy.snapshot`, built ahead of time from /etc/jitrun, so that the first
//! jitrun after a policy change need not parse every file (at 10 000 rules, about 150 ms and
//! 35 MiB in the setuid binary). `jitctl policy activate` runs it after it changed policy.d.
//!
//! It is the snapshot jitrun would write on its first run, under the same rules:
//!
//! * the files are checked as jitrun checks them (every directory from `/` and the file
//!   root's, writable by root alone, no symbolic links, regular files of at most 4 MiB): a file
//!   jitrun would refuse is refused here, and nothing is written;
//! * the key is `jit_policy::snapshot_key`, from `fstat` on the very descriptor each file is
//!   then read from, in jitrun's load order (policy.toml, the policy.d directory, its `*.toml`
//!   in name order, hidden files skipped);
//! * a snapshot is written only from files older than `snapshot_key::SETTLE` (2 s): newer ones
//!   are waited for (an edit within one tick of the file system's clock could otherwise keep
//!   a file's times and size), and the files are checked again after reading;
//! * root's own file, mode 0600, in the root-only state directory, written beside it and
//!   renamed into place.
//!
//! jitrun still checks the key on every run and ignores a snapshot that does not match the
//! files on disk (docs/SECURITY.md, I21): compiling is only ever a speed-up.

use crate::error::{io_error, CliError, Result};
use crate::sync::write_atomic;
use jit_policy::snapshot_key::{is_dropin_name, SnapshotKey, SourceIdentity};
use jit_policy::{snapshot, Policy, PolicySource};
use nix::libc;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ETC_DIR: &str = "/etc/jitrun";
pub const STATE_DIR: &str = "/var/lib/jitrun";
pub const SNAPSHOT: &str = "policy.snapshot";
/// jitrun's limit for a trusted file (trusted_files.rs, MAX_TRUSTED_FILE).
const MAX_FILE: u64 = 4 << 20;
/// Files that keep changing: give up after this many rounds of waiting for them to settle.
const ROUNDS: usize = 5;

/// What one compile wrote.
pub struct Compiled {
    pub rules: usize,
    pub files: usize,
    pub bytes: usize,
}

fn untrusted(path: &Path, why: impl std::fmt::Display) -> CliError {
    CliError(format!(
        "{}: {why}; jitrun trusts only files and directories owned by root and writable by root alone (fix: chown root:root, chmod go-w); no snapshot was written",
        path.display()
    ))
}

fn check_owner_mode(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.uid() != 0 {
        return Err(untrusted(
            path,
            format!("owned by uid {}, not root", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "writable by group or others (mode {:04o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// `dir` and every directory above it: directories (not symbolic links), root's, writable
/// by root alone. Ok(false) when one does not exist.
fn trusted_dir(dir: &Path) -> Result<bool> {
    let mut so_far = PathBuf::from("/");
    let mut dirs = vec![so_far.clone()];
    for comp in dir.components().skip(1) {
        so_far.push(comp);
        dirs.push(so_far.clone());
    }
    for d in dirs {
        let meta = match std::fs::symlink_metadata(&d) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("cannot check", &d, &e)),
        };
        if !meta.is_dir() {
            return Err(untrusted(&d, "a symbolic link (or not a directory)"));
        }
        check_owner_mode(&d, &meta)?;
    }
    Ok(true)
}

fn identity(meta: &Metadata) -> SourceIdentity {
    let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    SourceIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        mode: meta.mode(),
    }
}

/// One policy file, opened without following a link, checked, and read from the descriptor
/// its identity comes from. None when it does not exist.
fn read_source(path: &Path) -> Result<Option<(SourceIdentity, String)>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        // A symbolic link is refused; a FIFO put in place of a policy file cannot hang us.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(untrusted(path, "a symbolic link"))
        }
        Err(e) => return Err(io_error("cannot open", path, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot check", path, &e))?;
    if !meta.is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    check_owner_mode(path, &meta)?;
    if meta.size() > MAX_FILE {
        return Err(untrusted(
            path,
            format!(
                "{} bytes, larger than the {MAX_FILE} bytes jitrun reads",
                meta.size()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.size() as usize);
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("cannot read", path, &e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError(format!("{}: not valid UTF-8 text", path.display())))?;
    Ok(Some((identity(&meta), text)))
}

/// The policy under `etc` as jitrun would load it, with its snapshot key.
fn read_policy(etc: &Path) -> Result<(SnapshotKey, Vec<PolicySource>)> {
    if !trusted_dir(etc)? {
        return Err(CliError(format!(
            "{} does not exist: there is no policy to compile",
            etc.display()
        )));
    }
    let mut key = SnapshotKey::new();
    let mut sources = Vec::new();
    let main = etc.join("policy.toml");
    let name = |p: &Path| p.display().to_string();
    match read_source(&main)? {
        Some((id, text)) => {
            key.source(&name(&main), Some(&id));
            sources.push(PolicySource {
                name: name(&main),
                text,
            });
        }
        None => key.source(&name(&main), None),
    }
    let dropins = etc.join("policy.d");
    let dir = match std::fs::symlink_metadata(&dropins) {
        Ok(m) if m.file_type().is_symlink() => return Err(untrusted(&dropins, "a symbolic link")),
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("cannot check", &dropins, &e)),
    };
    key.source(&name(&dropins), dir.as_ref().map(identity).as_ref());
    if let Some(meta) = dir {
        if !meta.is_dir() {
            return Err(untrusted(&dropins, "not a directory"));
        }
        check_owner_mode(&dropins, &meta)?;
        let mut names: Vec<String> = std::fs::read_dir(&dropins)
            .map_err(|e| io_error("cannot list", &dropins, &e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_dropin_name(n))
            .collect();
        names.sort();
        for n in names {
            let path = dropins.join(&n);
            let (id, text) = read_source(&path)?.ok_or_else(|| {
                CliError(format!("{} vanished while it was read", path.display()))
            })?;
            key.source(&name(&path), Some(&id));
            sources.push(PolicySource {
                name: name(&path),
                text,
            });
        }
    }
    Ok((key, sources))
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The state directory, made (0700) when missing, and root's alone: jitrun ignores a snapshot
/// anywhere else.
fn state_dir(state: &Path) -> Result<()> {
    if let Some(parent) = state.parent() {
        if !trusted_dir(parent)? {
            return Err(CliError(format!(
                "{} does not exist; create it owned by root (make install and the packages do)",
                parent.display()
            )));
        }
    }
    if !state.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(state)
            .map_err(|e| io_error("cannot create", state, &e))?;
    }
    if !trusted_dir(state)? {
        return Err(CliError(format!(
            "{} vanished while it was made",
            state.display()
        )));
    }
    let meta = std::fs::metadata(state).map_err(|e| io_error("cannot check", state, &e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(untrusted(
            state,
            format!(
                "readable by others (mode {:04o}); jitrun uses a snapshot only in a directory that is root's alone (chmod 0700)",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Compile the policy under `etc` into `state`/policy.snapshot. `wait` is told how long it
/// waits for young files to settle, before it sleeps.
pub fn compile_in(etc: &Path, state: &Path, mut wait: impl FnMut(Duration)) -> Result<Compiled> {
    for _ in 0..ROUNDS {
        let (key, sources) = read_policy(etc)?;
        let left = key.settles_in(now_ns());
        if !left.is_zero() {
            // Slightly more than needed: the file system's clock may lag the system's by a tick.
            let nap = left + Duration::from_millis(50);
            wait(nap);
            std::thread::sleep(nap);
            continue;
        }
        let policy = Policy::load(&sources).map_err(|e| {
            CliError(format!(
                "{e}; nothing was compiled (jitrun refuses every run until the policy loads)"
            ))
        })?;
        // Read again: a file replaced or edited meanwhile means another round.
        if read_policy(etc)?.0.bytes() != key.bytes() {
            continue;
        }
        state_dir(state)?;
        let bytes = snapshot::encode(&policy, key.bytes());
        write_atomic(state, SNAPSHOT, &bytes, 0o600)?;
        return Ok(Compiled {
            rules: policy.rules.len(),
            files: sources.len(),
            bytes: bytes.len(),
        });
    }
    Err(CliError(format!(
        "the policy files under {} kept changing; nothing was compiled (run it again once they are written)",
        etc.display()
    )))
}

fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError(format!(
            "policy compile writes {STATE_DIR}/{SNAPSHOT}, which is root's: run it as root"
        )))
    }
}

/// `jitctl policy compile`, and the end of `jitctl policy activate`.
pub fn compile() -> Result<Compiled> {
    require_root()?;
    compile_in(Path::new(ETC_DIR), Path::new(STATE_DIR), |d| {
        eprintln!(
            "jitctl: waiting {:.1} s until the policy files are 2 s old (an edit within one tick of the file system's clock could otherwise go unseen)",
            d.as_secs_f64()
        );
    })
}

pub fn run() -> Result<()> {
    let c = compile()?;
    println!(
        "compiled {} rules from {} files into {STATE_DIR}/{SNAPSHOT} ({} bytes); jitrun uses it while these files stay as they are",
        c.rules, c.files, c.bytes
    );
    Ok(())
}
