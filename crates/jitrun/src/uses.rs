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

fn open(jti: &str) -> Result<std::fs::File, Refusal> {
    let dir = trusted_files::state_dir(&counter_dir())?;
    let name = file_name(jti)?;
    let fd = fs::openat(
        dir.as_fd(),
        &name,
        libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW,
        0o600,
    )
    .map_err(|e| Refusal::config("state", format!("{}/{jti}: {e}", counter_dir())))?;
    let file = std::fs::File::from(fd);
    fs::lock_exclusive(&file).map_err(|e| {
        Refusal::config(
            "state",
            format!("{}/{jti}: cannot lock: {e}", counter_dir()),
        )
    })?;
    Ok(file)
}

fn read_count(file: &mut std::fs::File) -> u64 {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    s.trim().parse().unwrap_or(0)
}

/// How many times grant `jti` has started a command.
pub fn used(jti: &str) -> Result<u64, Refusal> {
    let mut f = open(jti)?;
    Ok(read_count(&mut f))
}

/// Count one use, unless `max` are used up.
pub fn consume(jti: &str, max: u32) -> Result<u64, Refusal> {
    let mut f = open(jti)?;
    let n = read_count(&mut f);
    if n >= max as u64 {
        return Err(Refusal::deny(
            "grant_used_up",
            format!("grant {jti} has been used {n} of {max} time(s); request a new one (jitctl request)"),
        ));
    }
    let write = |f: &mut std::fs::File| -> std::io::Result<()> {
        f.seek(SeekFrom::Start(0))?;
        f.set_len(0)?;
        f.write_all(format!("{}\n", n + 1).as_bytes())?;
        f.sync_all()
    };
    write(&mut f).map_err(|e| Refusal::config("state", format!("{}/{jti}: {e}", counter_dir())))?;
    Ok(n + 1)
}
