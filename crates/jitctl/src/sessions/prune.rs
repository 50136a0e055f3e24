//! `jitctl sessions prune --older-than DURATION [--dry-run]`: retention for recordings.
//!
//! Only regular files named `<session id>.cast` directly in the directory are considered,
//! by the time they were last written (a recording is written until its session ends). As
//! root, the directory and every directory above it must be root's and writable by root
//! alone, so that nobody can swap a path component while root removes files.
use super::{human_size, read_error, utc, valid_id};
use crate::cli::SessionsPruneArgs;
use crate::error::{io_error, CliError, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

pub fn run(args: &SessionsPruneArgs) -> Result<()> {
    let age = jit_policy::parse_duration(&args.older_than)
        .map_err(|e| CliError(format!("--older-than: {e}")))?;
    if age.is_zero() {
        return Err("--older-than must be longer than zero, e.g. \"90d\"".into());
    }
    if nix::unistd::geteuid().is_root() {
        trusted_dir(&args.dir)?;
    }
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let (mut removed, mut kept, mut bytes) = (0u64, 0u64, 0u64);
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for entry in
        std::fs::read_dir(&args.dir).map_err(|e| read_error("cannot read", &args.dir, &e))?
    {
        let entry = entry.map_err(|e| read_error("cannot read", &args.dir, &e))?;
        let name = entry.file_name();
        let is_recording = name
            .to_str()
            .and_then(|n| n.strip_suffix(".cast"))
            .is_some_and(valid_id);
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) if is_recording && m.file_type().is_file() => m,
            _ => continue,
        };
        let written = meta.modified().unwrap_or(SystemTime::now());
        if written >= cutoff {
            kept += 1;
            continue;
        }
        if !args.dry_run {
            std::fs::remove_file(&path).map_err(|e| io_error("cannot remove", &path, &e))?;
        }
        removed += 1;
        bytes += meta.len();
        println!(
            "{verb} {} ({}, last written {} UTC)",
            path.display(),
            human_size(meta.len()),
            utc(meta.mtime())
        );
    }
    println!(
        "{verb} {removed} recording(s), {}; kept {kept} written in the last {}",
        human_size(bytes),
        args.older_than
    );
    Ok(())
}

/// `dir` and every directory above it: real directories (no symlink), root's, not writable
/// by group or others — or, above `dir`, sticky (like /tmp: others cannot rename or remove
/// the root-owned directory below it).
fn trusted_dir(dir: &Path) -> Result<()> {
    let abs = std::path::absolute(dir).map_err(|e| io_error("cannot resolve", dir, &e))?;
    for (i, d) in abs.ancestors().enumerate() {
        let m = std::fs::symlink_metadata(d).map_err(|e| read_error("cannot read", d, &e))?;
        let writable_by_others = m.mode() & 0o022 != 0 && (i == 0 || m.mode() & 0o1000 == 0);
        if !m.file_type().is_dir() || m.uid() != 0 || writable_by_others {
            return Err(CliError(format!(
                "{} is not a directory that root owns and alone can write (owner uid {}, mode {:o}); refusing to remove files under it as root",
                d.display(),
                m.uid(),
                m.mode() & 0o7777
            )));
        }
    }
    Ok(())
}
