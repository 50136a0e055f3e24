//! Step 4: which file runs. An absolute path, or a name looked up in `secure_path`
//! (never the caller's PATH), found with the caller's own file permissions ([`locate`]). Only
//! once the policy allowed the run is the file opened, as root ([`open`]): first with
//! `O_PATH`, which opens nothing (no FIFO writer is released, no device driver runs), to check
//! that it is a safe regular file; then for reading, and that same open file is what gets
//! executed (execveat), so it cannot be swapped between the check and the exec.

use crate::identity::Invoker;
use crate::refusal::{Refusal, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};
use crate::system::{caps, fs};
use crate::trusted_files;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the command is, as the caller found it: what the policy decides on.
#[derive(Debug, Clone)]
pub struct Located {
    /// The path as found (`/bin/ls`, or `secure_path` entry + name).
    pub spelled: PathBuf,
    /// The canonical path (`/usr/bin/ls`).
    pub canonical: PathBuf,
}

#[derive(Debug)]
pub struct Program {
    /// The open file that will be executed.
    pub fd: OwnedFd,
    /// The canonical path (`/usr/bin/ls`), what policy patterns and audit events see.
    pub canonical: PathBuf,
    /// Starts with `#!`: executed through /dev/fd/N, so its descriptor must survive exec.
    pub is_script: bool,
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// Where `argv0` is, as the path found and its canonical form. Runs with the caller's
/// file-system identity, so that jitrun never tells a caller more about the file system than
/// they could find out themselves (whether a file in a directory they cannot search exists,
/// what a symbolic link there points to).
fn locate(argv0: &OsStr, secure_path: &str) -> Result<(PathBuf, PathBuf), Refusal> {
    let name = argv0.as_bytes();
    let spelled = if name.contains(&b'/') {
        if !name.starts_with(b"/") {
            return Err(Refusal::deny(
                "command_relative",
                format!(
                    "{}: give an absolute path or a bare command name (found in secure_path); relative paths are not run",
                    argv0.to_string_lossy()
                ),
            ));
        }
        PathBuf::from(argv0)
    } else {
        secure_path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(argv0))
            .find(|p| p.metadata().map(|m| m.is_file()).unwrap_or(false))
            .ok_or_else(|| {
                Refusal::deny(
                    "command_not_found",
                    format!(
                        "{}: command not found in secure_path ({secure_path})",
                        argv0.to_string_lossy()
                    ),
                )
                .with_exit(EXIT_NOT_FOUND)
            })?
    };
    let canonical = std::fs::canonicalize(&spelled).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Refusal::deny(
            "command_not_found",
            format!("{}: no such file", shown(&spelled)),
        )
        .with_exit(EXIT_NOT_FOUND),
        std::io::ErrorKind::PermissionDenied => Refusal::deny(
            "command_not_executable",
            format!(
                "{}: permission denied (commands are looked up with your own file permissions)",
                shown(&spelled)
            ),
        )
        .with_exit(EXIT_CANNOT_EXECUTE),
        _ => Refusal::deny(
            "command_not_executable",
            format!("{}: {e}", shown(&spelled)),
        )
        .with_exit(EXIT_CANNOT_EXECUTE),
    })?;
    Ok((spelled, canonical))
}

/// Find the program named by `argv0` for the caller `inv`, with her file permissions; nothing
/// is opened.
pub fn locate_for(argv0: &OsStr, secure_path: &str, inv: &Invoker) -> Result<Located, Refusal> {
    let (spelled, canonical) = fs::as_user_fs(inv.uid, inv.gid, || locate(argv0, secure_path))
        .map_err(|e| {
        Refusal::config(
            "identity",
            format!("cannot take your file-system identity: {e}"),
        )
    })??;
    Ok(Located { spelled, canonical })
}

/// Open the located program as root, for a run the policy allowed: check it through its
/// `O_PATH` descriptor first (a FIFO, a device or a directory is refused unopened), then open
/// that same file for reading.
pub fn open(located: &Located) -> Result<Program, Refusal> {
    let canonical = located.canonical.clone();

    let unsafe_target = |why: String| {
        Refusal::deny(
            "command_unsafe",
            format!("will not run {}: {why}", shown(&canonical)),
        )
    };
    let parent = canonical.parent().unwrap_or(Path::new("/"));
    let file_name = canonical
        .file_name()
        .ok_or_else(|| unsafe_target("not a file".into()))?;
    let dirfd = trusted_files::walk_dir(&parent.to_string_lossy())
        .map_err(|r| unsafe_target(format!("its directory is not trusted: {}", r.message)))?
        .ok_or_else(|| {
            Refusal::deny(
                "command_not_found",
                format!("{}: no such file", shown(&canonical)),
            )
            .with_exit(EXIT_NOT_FOUND)
        })?;
    let c = CString::new(file_name.as_bytes()).map_err(|_| unsafe_target("NUL in path".into()))?;
    let cannot_open = |e: std::io::Error| {
        Refusal::deny(
            "command_not_executable",
            format!("{}: {e}", shown(&canonical)),
        )
        .with_exit(EXIT_CANNOT_EXECUTE)
    };
    let path_fd =
        fs::openat(dirfd.as_fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(cannot_open)?;
    let st = fs::fstat(path_fd.as_fd()).map_err(|e| unsafe_target(e.to_string()))?;
    if !st.is_file() {
        return Err(Refusal::deny(
            "command_not_executable",
            format!("{}: not a regular file", shown(&canonical)),
        )
        .with_exit(EXIT_CANNOT_EXECUTE));
    }
    if st.mode & 0o111 == 0 {
        return Err(Refusal::deny(
            "command_not_executable",
            format!("{}: not executable", shown(&canonical)),
        )
        .with_exit(EXIT_CANNOT_EXECUTE));
    }
    if st.mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
        return Err(unsafe_target("it has the setuid or setgid bit; jitrun grants capabilities, not a second privilege path".into()));
    }
    if st.uid != 0 {
        return Err(unsafe_target(format!("owned by uid {}, not root", st.uid)));
    }
    if st.mode & 0o022 != 0 {
        return Err(unsafe_target(format!(
            "writable by group or others (mode {:04o})",
            st.mode & 0o7777
        )));
    }
    // A checked regular file: opening it has no side effect. Its directories are root's alone,
    // so the name still means this file; the inode is compared all the same.
    let fd = fs::openat(
        dirfd.as_fd(),
        &c,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK,
        0,
    )
    .map_err(cannot_open)?;
    let opened = fs::fstat(fd.as_fd()).map_err(|e| unsafe_target(e.to_string()))?;
    if (opened.dev, opened.ino) != (st.dev, st.ino) {
        return Err(unsafe_target(
            "it was replaced while jitrun checked it".into(),
        ));
    }
    match caps::file_has_caps(fd.as_fd()) {
        Ok(false) => {}
        Ok(true) => {
            return Err(unsafe_target(
                "it carries file capabilities (security.capability)".into(),
            ))
        }
        Err(e) => {
            return Err(unsafe_target(format!(
                "cannot read its file capabilities: {e}"
            )))
        }
    }
    let is_script = fs::pread_prefix(fd.as_fd(), 2)
        .map(|b| b == b"#!")
        .unwrap_or(false);
    Ok(Program {
        fd,
        canonical,
        is_script,
    })
}
