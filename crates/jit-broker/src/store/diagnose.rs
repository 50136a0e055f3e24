//! Why the store cannot be opened or written, in words an operator can act on: SQLite says
//! "unable to open database file" or "attempt to write a readonly database" whether the
//! directory is missing, not writable by the broker's user, on a read-only file system, or the
//! disk is full.
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{access, AccessFlags, Uid};
use rusqlite::ErrorCode;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Free space below which the store counts as full for readiness (SQLite needs room to grow
/// its WAL and, at checkpoints, the database).
pub const MIN_FREE_BYTES: u64 = 4 << 20;

/// Does this SQLite error come from the file system rather than from SQL?
fn about_files(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
        )
    )
}

/// Bytes available to unprivileged users (the broker's user) on the file system.
// The field types differ between platforms (u32 or u64).
#[allow(clippy::unnecessary_cast)]
fn free_bytes(fs: &nix::sys::statvfs::Statvfs) -> u64 {
    (fs.blocks_available() as u64).saturating_mul(fs.fragment_size() as u64)
}

fn owner_mode(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("owner uid {}, mode {:04o}", m.uid(), m.mode() & 0o7777),
        Err(_) => "unreadable".into(),
    }
}

/// What is wrong with the file system under `store`, and what to do; None when nothing
/// explains `e`.
pub fn hint(store: &Path, e: &rusqlite::Error) -> Option<String> {
    if !about_files(e) {
        return None;
    }
    let dir = match store.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let who = format!("uid {}", Uid::effective());
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "the directory {} does not exist; create it (`jitbroker init` does, as the broker's user) or point `store` in broker.toml elsewhere",
                dir.display()
            ))
        }
        Err(err) => {
            return Some(format!(
                "the directory {} cannot be examined ({err}); {who} needs to search it",
                dir.display()
            ))
        }
        Ok(m) if !m.is_dir() => {
            return Some(format!(
                "{} is not a directory; `store` in broker.toml must name a file in a directory",
                dir.display()
            ))
        }
        Ok(_) => {}
    }
    if let Ok(fs) = statvfs(dir) {
        if fs.flags().contains(FsFlags::ST_RDONLY) {
            return Some(format!(
                "{} is on a read-only file system; remount it read-write, or move the store (`store` in broker.toml) to a writable file system",
                dir.display()
            ));
        }
        let free = free_bytes(&fs);
        if e.sqlite_error_code() == Some(ErrorCode::DiskFull) || free < MIN_FREE_BYTES {
            return Some(format!(
                "the file system holding {} is full ({free} bytes free for {who}); free some space, then the broker writes again",
                dir.display()
            ));
        }
    }
    if let Err(errno) = access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        return Some(format!(
            "{who} cannot write the directory {} ({errno}; {}): SQLite creates the -wal and -shm files next to the store; give the directory to the broker's user (`chown jitbroker: {}`)",
            dir.display(),
            owner_mode(dir),
            dir.display()
        ));
    }
    let sibling = |suffix: &str| {
        let mut name = store.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    for file in [store.to_path_buf(), sibling("-wal"), sibling("-shm")] {
        if file.exists() {
            if let Err(errno) = access(&file, AccessFlags::R_OK | AccessFlags::W_OK) {
                return Some(format!(
                    "{who} cannot write {} ({errno}; {}); give it to the broker's user (`chown jitbroker: {}`)",
                    file.display(),
                    owner_mode(&file),
                    file.display()
                ));
            }
        }
    }
    None
}

/// Readiness of the file system under `store`: writable, not read-only, room to grow.
pub fn space_problem(store: &Path) -> Option<String> {
    let dir = store.parent().filter(|d| !d.as_os_str().is_empty())?;
    let fs = statvfs(dir).ok()?;
    if fs.flags().contains(FsFlags::ST_RDONLY) {
        return Some(format!("{} is on a read-only file system", dir.display()));
    }
    let free = free_bytes(&fs);
    (free < MIN_FREE_BYTES).then(|| {
        format!(
            "the file system holding {} has {free} bytes free (less than {MIN_FREE_BYTES}); free some space",
            dir.display()
        )
    })
}
