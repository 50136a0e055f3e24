//! Step 3: reading the files jitrun trusts (settings, policy, keys, state).
//!
//! A trusted file is reached by walking from `/` one component at a time with
//! `openat(O_NOFOLLOW)`, checking every directory on the way and the file itself:
//! owned by root, not writable by group or others, no symbolic links, a regular file of
//! bounded size. Anything else is refused with the path and the reason.

use crate::refusal::Refusal;
use crate::system::fs::{self, Stat};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Largest trusted file read (policy files included).
pub const MAX_TRUSTED_FILE: usize = 4 << 20;

fn untrusted(path: &str, why: impl std::fmt::Display) -> Refusal {
    Refusal::config(
        "untrusted_file",
        format!("{path}: {why}; jitrun trusts only files and directories owned by root and writable by root alone (fix: chown root:root, chmod go-w)"),
    )
}

fn check_owner_mode(path: &str, st: &Stat) -> Result<(), Refusal> {
    if st.uid != 0 {
        return Err(untrusted(
            path,
            format!("owned by uid {}, not root", st.uid),
        ));
    }
    if st.mode & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "writable by group or others (mode {:04o})",
                st.mode & 0o7777
            ),
        ));
    }
    Ok(())
}

fn io_refusal(path: &str, e: std::io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
            untrusted(path, "a symbolic link (or a path through one)")
        }
        // The caller's open-file limit (jitrun cannot always raise a hard one): their doing.
        Some(libc::EMFILE) | Some(libc::ENFILE) => Refusal::deny(
            "resource_limit",
            format!("{path}: {e}; your open-file limit is too low for jitrun (raise it: ulimit -n 1024)"),
        ),
        _ => Refusal::config("untrusted_file", format!("{path}: {e}")),
    }
}

/// Open the directory `dir` (absolute) through a checked walk. Ok(None) when it does not exist.
pub(crate) fn walk_dir(dir: &str) -> Result<Option<OwnedFd>, Refusal> {
    let mut cur =
        fs::open(c"/", libc::O_PATH | libc::O_DIRECTORY).map_err(|e| io_refusal("/", e))?;
    check_owner_mode(
        "/",
        &fs::fstat(cur.as_fd()).map_err(|e| io_refusal("/", e))?,
    )?;
    let mut so_far = String::new();
    for comp in dir.split('/').filter(|c| !c.is_empty()) {
        so_far.push('/');
        so_far.push_str(comp);
        if comp == ".." || comp == "." {
            return Err(untrusted(&so_far, "path with . or .. components"));
        }
        let c = CString::new(comp).map_err(|_| untrusted(&so_far, "NUL in path"))?;
        let next = match fs::openat(
            cur.as_fd(),
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(io_refusal(&so_far, e)),
        };
        check_owner_mode(
            &so_far,
            &fs::fstat(next.as_fd()).map_err(|e| io_refusal(&so_far, e))?,
        )?;
        cur = next;
    }
    Ok(Some(cur))
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i.max(1)], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Read a trusted file. Ok(None) when it (or its directory) does not exist.
pub fn read(path: &str, max: usize) -> Result<Option<Vec<u8>>, Refusal> {
    read_checked(path, max, false)
}

/// Read a secret (a private key): a trusted file that, on top, nobody but its owner (root)
/// may read: mode 0600 or stricter. Ok(None) when it does not exist.
pub fn read_secret(path: &str, max: usize) -> Result<Option<Vec<u8>>, Refusal> {
    read_checked(path, max, true)
}

fn read_checked(path: &str, max: usize, secret: bool) -> Result<Option<Vec<u8>>, Refusal> {
    let (dir, name) = split(path);
    let Some(dirfd) = walk_dir(dir)? else {
        return Ok(None);
    };
    let c = CString::new(name).map_err(|_| untrusted(path, "NUL in path"))?;
    let fd = match fs::openat(
        dirfd.as_fd(),
        &c,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(io_refusal(path, e)),
    };
    let st = fs::fstat(fd.as_fd()).map_err(|e| io_refusal(path, e))?;
    if !st.is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    check_owner_mode(path, &st)?;
    if secret && st.mode & 0o077 != 0 {
        return Err(Refusal::config(
            "untrusted_file",
            format!(
                "{path}: a secret key readable by group or others (mode {:04o}); it must be root's alone (fix: chown root:root {path} && chmod 0600 {path})",
                st.mode & 0o7777
            ),
        ));
    }
    if st.size > max as u64 {
        return Err(untrusted(
            path,
            format!(
                "{} bytes, larger than the {max} bytes jitrun reads",
                st.size
            ),
        ));
    }
    let mut buf = Vec::with_capacity(st.size as usize);
    std::fs::File::from(fd)
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Refusal::config("untrusted_file", format!("{path}: {e}")))?;
    if buf.len() > max {
        return Err(untrusted(path, "grew larger than jitrun reads"));
    }
    Ok(Some(buf))
}

/// The identity of a trusted file without reading it: the same checks as [`read`] (every
/// directory on the way, `O_NOFOLLOW`, a regular file owned by root and writable by root
/// alone, at most `max` bytes), on an `O_PATH` descriptor, for `name` in a directory
/// reached through [`walk_dir`] or [`subdir`] (`path` is the file's full path, for
/// messages). Ok(None) when it does not exist.
pub fn stat_in(
    dirfd: BorrowedFd<'_>,
    path: &str,
    name: &str,
    max: usize,
) -> Result<Option<Stat>, Refusal> {
    let c = CString::new(name).map_err(|_| untrusted(path, "NUL in path"))?;
    let fd = match fs::openat(dirfd, &c, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(io_refusal(path, e)),
    };
    let st = fs::fstat(fd.as_fd()).map_err(|e| io_refusal(path, e))?;
    if st.file_type() == libc::S_IFLNK {
        return Err(untrusted(path, "a symbolic link (or a path through one)"));
    }
    if !st.is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    check_owner_mode(path, &st)?;
    if st.size > max as u64 {
        return Err(untrusted(
            path,
            format!(
                "{} bytes, larger than the {max} bytes jitrun reads",
                st.size
            ),
        ));
    }
    Ok(Some(st))
}

/// The subdirectory `name` of a directory reached through [`walk_dir`] (`path` is its full
/// path, for messages), checked like every directory of a walk. Ok(None) when it does not exist.
pub fn subdir(dirfd: BorrowedFd<'_>, path: &str, name: &str) -> Result<Option<OwnedFd>, Refusal> {
    let c = CString::new(name).map_err(|_| untrusted(path, "NUL in path"))?;
    let fd = match fs::openat(
        dirfd,
        &c,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(io_refusal(path, e)),
    };
    check_owner_mode(
        path,
        &fs::fstat(fd.as_fd()).map_err(|e| io_refusal(path, e))?,
    )?;
    Ok(Some(fd))
}

/// Read a trusted file as UTF-8 text.
pub fn read_text(path: &str) -> Result<Option<String>, Refusal> {
    match read(path, MAX_TRUSTED_FILE)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| Refusal::config("policy_error", format!("{path}: not valid UTF-8 text"))),
    }
}

/// The files in trusted directory `dir` whose names end with `suffix`, in name (byte) order,
/// as full paths. Hidden files are skipped. A missing directory is an empty list.
pub fn list(dir: &str, suffix: &str) -> Result<Vec<String>, Refusal> {
    if walk_dir(dir)?.is_none() {
        return Ok(Vec::new());
    }
    Ok(names(dir, suffix)?
        .into_iter()
        .map(|n| format!("{dir}/{n}"))
        .collect())
}

/// The names in `dir` (a directory just reached through a checked walk) ending with
/// `suffix`, in name (byte) order, hidden files skipped: what [`list`] lists.
pub fn names(dir: &str, suffix: &str) -> Result<Vec<String>, Refusal> {
    let entries = std::fs::read_dir(Path::new(dir))
        .map_err(|e| Refusal::config("untrusted_file", format!("{dir}: {e}")))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && n.ends_with(suffix) && n.len() > suffix.len())
        .collect();
    names.sort();
    Ok(names)
}

/// Open (creating if needed, mode 0700) a trusted directory for state, e.g. /var/lib/jitrun/uses.
pub fn state_dir(dir: &str) -> Result<OwnedFd, Refusal> {
    if let Some(fd) = walk_dir(dir)? {
        return Ok(fd);
    }
    let (parent, name) = split(dir);
    let Some(pfd) = walk_dir(parent)? else {
        return Err(Refusal::config(
            "state",
            format!(
                "{parent} does not exist; create it owned by root, mode 0700 (make install does)"
            ),
        ));
    };
    let c = CString::new(name).map_err(|_| untrusted(dir, "NUL in path"))?;
    fs::mkdirat(pfd.as_fd(), &c, 0o700)
        .map_err(|e| Refusal::config("state", format!("cannot create {dir}: {e}")))?;
    walk_dir(dir)?
        .ok_or_else(|| Refusal::config("state", format!("{dir} vanished while being created")))
}
