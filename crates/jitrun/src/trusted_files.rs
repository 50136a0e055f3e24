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

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

fn read_checked(path: &str, max: usize, secret: bool) -> Result<Option<Vec<u8>>, Refusal> {
    let (dir, name) = split(path);
    let dirfd = match walk_dir(dir) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Ok(None),
        Err(r) if r.code == "resource_limit" => return read_by_path(path, max, secret),
        Err(r) => return Err(r),
    };
    let c = CString::new(name).map_err(|_| untrusted(path, "NUL in path"))?;
    let fd = match fs::openat(dirfd.as_fd(), &c, READ_FLAGS, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if out_of_descriptors(&e) => {
            drop(dirfd);
            return read_by_path(path, max, secret);
        }
        Err(e) => return Err(io_refusal(path, e)),
    };
    read_open(path, fd, max, secret).map(Some)
}

/// [`read_checked`] for a process with a single descriptor to spare (a caller's hard
/// RLIMIT_NOFILE of 4 leaves one beside fds 0-2, and root may lack CAP_SYS_RESOURCE to raise
/// it): every directory on the way is checked with lstat(2), then the file is opened by path
/// with O_NOFOLLOW. As sound as the walk: each checked directory is root's and writable by
/// root alone, so nobody else can change what the path names between the checks and the open.
/// This is what lets jitrun read its settings, and so log its refusal, under such a limit.
fn read_by_path(path: &str, max: usize, secret: bool) -> Result<Option<Vec<u8>>, Refusal> {
    if !check_dirs_by_path(split(path).0)? {
        return Ok(None);
    }
    let c = CString::new(path).map_err(|_| untrusted(path, "NUL in path"))?;
    let fd = match fs::open(&c, READ_FLAGS) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(io_refusal(path, e)),
    };
    read_open(path, fd, max, secret).map(Some)
}

/// `dir` and every directory above it checked with lstat(2), without a descriptor: each a
/// directory (not a symbolic link), owned by root, writable by root alone. Ok(false) when one
/// does not exist.
fn check_dirs_by_path(dir: &str) -> Result<bool, Refusal> {
    let mut dirs = vec!["/".to_string()];
    for comp in dir.split('/').filter(|c| !c.is_empty()) {
        let so_far = format!("{}/{comp}", dirs.last().expect("/").trim_end_matches('/'));
        if comp == ".." || comp == "." {
            return Err(untrusted(&so_far, "path with . or .. components"));
        }
        dirs.push(so_far);
    }
    for d in &dirs {
        let c = CString::new(d.as_str()).map_err(|_| untrusted(d, "NUL in path"))?;
        let st = match fs::lstat(&c) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(io_refusal(d, e)),
        };
        if st.file_type() != libc::S_IFDIR {
            return Err(untrusted(d, "a symbolic link (or a path through one)"));
        }
        check_owner_mode(d, &st)?;
    }
    Ok(true)
}

/// Write `bytes` as `name` in the state directory `dir` (made, mode 0700, under its checked
/// parent when missing), atomically: a new temporary file, then a rename. It needs one
/// descriptor at most (the checks of [`read_by_path`]), so that a run under a caller's tiny
/// RLIMIT_NOFILE can still keep what it must keep.
pub fn write_state_file(dir: &str, name: &str, bytes: &[u8]) -> Result<(), Refusal> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let failed = |e: std::io::Error| Refusal::config("state", format!("{dir}/{name}: {e}"));
    if !check_dirs_by_path(dir)? {
        let parent = split(dir).0;
        if !check_dirs_by_path(parent)? {
            return Err(Refusal::config(
                "state",
                format!("{parent} does not exist; create it owned by root, mode 0700 (make install does)"),
            ));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(failed(e)),
            _ => {}
        }
        if !check_dirs_by_path(dir)? {
            return Err(Refusal::config(
                "state",
                format!("{dir} vanished while being created"),
            ));
        }
    }
    let (tmp, dest) = (format!("{dir}/.{name}.tmp"), format!("{dir}/{name}"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, &dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(e));
    }
    Ok(())
}

/// Remove `name` from the state directory `dir`, checked as [`write_state_file`] does; best
/// effort, without a descriptor.
pub fn remove_state_file(dir: &str, name: &str) {
    if let Ok(true) = check_dirs_by_path(dir) {
        let _ = std::fs::remove_file(format!("{dir}/{name}"));
    }
}

/// Check an opened trusted file and read it.
fn read_open(path: &str, fd: OwnedFd, max: usize, secret: bool) -> Result<Vec<u8>, Refusal> {
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
    Ok(buf)
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
