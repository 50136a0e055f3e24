//! File-system calls: file-system identity, descriptor hygiene, openat, flock.

use super::check;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Run `f` with the file-system identity (fsuid/fsgid) of `uid`/`gid`, then return to root.
/// While the fsuid is not 0 the kernel also drops the file capabilities (DAC override and
/// friends) from the effective set, so every open inside `f` is checked as that user.
pub fn as_user_fs<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    // SAFETY: setfsgid/setfsuid take an integer and touch no memory. They return the previous
    // id and never fail loudly, so each change is confirmed by asking again with an invalid id
    // (-1 changes nothing and returns the current value).
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
        let now_uid = libc::setfsuid(u32::MAX) as u32;
        let now_gid = libc::setfsgid(u32::MAX) as u32;
        if now_uid != uid || now_gid != gid {
            restore_root_fs();
            return Err(io::Error::other(format!(
                "could not take the file-system identity of uid {uid}"
            )));
        }
    }
    let out = f();
    restore_root_fs();
    Ok(out)
}

fn restore_root_fs() {
    // SAFETY: as above; setting fsuid/fsgid back to 0 is always allowed for a process whose
    // effective uid is 0, which is how jitrun runs.
    unsafe {
        libc::setfsuid(0);
        libc::setfsgid(0);
    }
}

/// Make sure fds 0, 1 and 2 are open (on /dev/null if they were closed), so that files
/// jitrun opens later can never land on them and receive what is meant for stderr.
pub fn ensure_std_fds() -> io::Result<()> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD on any integer is harmless; it only reports whether fd is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opening /dev/null with a static NUL-terminated path; the new fd is the
            // lowest free one, which is `fd` because all lower ones are open.
            let new = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
            if new != fd {
                return Err(io::Error::other(
                    "could not reopen standard descriptors on /dev/null",
                ));
            }
        }
    }
    Ok(())
}

/// Close every descriptor above 2.
pub fn close_from_3() -> io::Result<()> {
    // SAFETY: close_range takes integers; closing descriptors this process does not use yet
    // cannot invalidate any Rust object (nothing is open at this point of start-up).
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: close them one by one up to the soft limit.
    // SAFETY: sysconf takes an integer.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = if max <= 0 { 65536 } else { max.min(1 << 20) } as RawFd;
    for fd in 3..max {
        // SAFETY: as above; EBADF for fds that are not open is ignored.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

pub fn set_umask(mask: u32) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the returned descriptor is new
    // and owned by nobody else.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by openat and is owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(path, flags | O_CLOEXEC)`.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and outlives the call; the descriptor is new.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by open and is owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The metadata jitrun checks on trusted files and commands.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub size: u64,
}

impl Stat {
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    // SAFETY: all-zero bytes are a valid `struct stat`; fstat fills it in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable struct stat for the duration of the call.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(Stat {
        mode: st.st_mode,
        uid: st.st_uid,
        size: st.st_size as u64,
    })
}

/// Take an exclusive `flock` on the file (blocking); released when the file is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own; touches no memory.
        match check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

/// Clear FD_CLOEXEC so the descriptor survives exec (for `#!` scripts run through
/// /dev/fd/N by execveat).
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we hold; touches no memory.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }).map(drop)
}

/// Read at most `limit` bytes from the start of `fd` (pread, so the offset is untouched).
pub fn pread_prefix(fd: BorrowedFd<'_>, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit];
    // SAFETY: `buf` is writable for `limit` bytes for the whole call.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), limit, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `mkdirat(dir, name, mode)`; an existing entry is not an error.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}
