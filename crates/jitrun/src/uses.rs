//! `max_uses`: a locked counter per grant id under /var/lib/jitrun/uses/, so that N
//! concurrent runs of a grant with `max_uses = N` start exactly N commands.

use crate::paths;
use crate::refusal::Refusal;
use crate::system::fs;
use crate::trusted_files;
use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

fn counter_dir() -> String {
    format!("{}/uses", paths::STATE_DIR)
}

fn file_name(jti: &str) -> Result<CString, Refusal> {
    if jti.is_empty()
        || jti.len() > 64
        || !jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Refusal::deny(
            "grant_invalid_claim",
            format!("grant id {jti:?} cannot carry max_uses: ids are ULIDs or UUIDs"),
        ));
    }
    Ok(CString::new(jti).expect("checked: no NUL"))
}

fn open(jti: &str, create: bool) -> Result<Option<std::fs::File>, Refusal> {
    let dir = if create {
        trusted_files::state_dir(&counter_dir())?
    } else {
        match trusted_files::walk_dir(&counter_dir())? {
            Some(dir) => dir,
            None => return Ok(None),
        }
    };
    let name = file_name(jti)?;
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | if create { libc::O_CREAT } else { 0 };
    let fd = match fs::openat(dir.as_fd(), &name, flags, 0o600) {
        Ok(fd) => fd,
        Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(Refusal::config(
                "state",
                format!("{}/{jti}: {e}", counter_dir()),
            ))
        }
    };
    let file = std::fs::File::from(fd);
    fs::lock_exclusive(&file).map_err(|e| {
        Refusal::config(
            "state",
            format!("{}/{jti}: cannot lock: {e}", counter_dir()),
        )
    })?;
    Ok(Some(file))
}

/// The count: an empty (new) file is 0; anything unreadable is a refusal, never "0 uses".
fn read_count(jti: &str, file: &mut std::fs::File) -> Result<u64, Refusal> {
    let mut s = String::new();
    let corrupt = || {
        Refusal::config(
            "state",
            format!("{}/{jti}: the use counter is unreadable; refusing (remove it only if you know the grant's uses)", counter_dir()),
        )
    };
    file.read_to_string(&mut s).map_err(|_| corrupt())?;
    if s.is_empty() {
        return Ok(0);
    }
    s.trim().parse().map_err(|_| corrupt())
}

/// How many times grant `jti` has started a command (creates nothing).
pub fn used(jti: &str) -> Result<u64, Refusal> {
    match open(jti, false)? {
        Some(mut f) => read_count(jti, &mut f),
        None => Ok(0),
    }
}

/// Count one use, unless `max` are used up. The count is rewritten in place at a fixed
/// width by one write(2), so no moment exists at which the file reads as fewer uses.
pub fn consume(jti: &str, max: u32) -> Result<u64, Refusal> {
    let mut f = open(jti, true)?
        .ok_or_else(|| Refusal::config("state", format!("{}/{jti}: not created", counter_dir())))?;
    let n = read_count(jti, &mut f)?;
    if n >= max as u64 {
        return Err(Refusal::deny(
            "grant_used_up",
            format!("grant {jti} has been used {n} of {max} time(s); request a new one (jitctl request)"),
        ));
    }
    let write = |f: &mut std::fs::File| -> std::io::Result<()> {
        f.seek(SeekFrom::Start(0))?;
        f.write_all(format!("{:020}\n", n + 1).as_bytes())?;
        f.sync_all()
    };
    write(&mut f).map_err(|e| Refusal::config("state", format!("{}/{jti}: {e}", counter_dir())))?;
    Ok(n + 1)
}
