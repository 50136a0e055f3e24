//! File-system calls: file-system identity, descriptor hygiene, openat, flock.

use super::check;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Run `f` with the file-system identity (fsuid/fsgid) of `uid`/`gid` and no effective
/// capabilities, then return to the previous identity and capabilities. Every open inside `f`
/// is checked as that user: no DAC override, and no CAP_SYS_PTRACE to open another process's
/// `/proc/PID/fd` links. The ids are taken while CAP_SETUID/CAP_SETGID are still effective
/// (jitrun's real uid is root's by then, see `harden::become_unsignalable`), then every
/// effective capability is dropped. Fails closed: if the previous state cannot be restored,
/// the error is returned.
pub fn as_user_fs<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    let saved = super::caps::get()?;
    let (old_uid, old_gid) = (current_fsuid(), current_fsgid());
    set_fs_ids(uid, gid);
    let dropped = super::caps::set(super::caps::CapSets {
        effective: 0,
        ..saved
    });
    if dropped.is_err() || (current_fsuid(), current_fsgid()) != (uid, gid) {
        restore_fs(saved, old_uid, old_gid)?;
        dropped?;
        return Err(io::Error::other(format!(
            "could not take the file-system identity of uid {uid}"
        )));
    }
    let out = f();
    restore_fs(saved, old_uid, old_gid)?;
    Ok(out)
}

fn restore_fs(saved: super::caps::CapSets, uid: u32, gid: u32) -> io::Result<()> {
    // Capabilities first: setting fsgid back to root's needs CAP_SETGID in the effective set.
    super::caps::set(saved)?;
    set_fs_ids(uid, gid);
    if (current_fsuid(), current_fsgid()) != (uid, gid) || super::caps::get()? != saved {
        return Err(io::Error::other(
            "could not return to jitrun's own file-system identity",
        ));
    }
    Ok(())
}

/// Files jitrun creates (state, spool) belong to root:root, not to the caller's group,
/// which a setuid-root process otherwise keeps as its file-system gid.
pub fn take_root_fs_ids() -> io::Result<()> {
    set_fs_ids(0, 0);
    if (current_fsuid(), current_fsgid()) != (0, 0) {
        return Err(io::Error::other("could not take root's file-system ids"));
    }
    Ok(())
}

fn set_fs_ids(uid: u32, gid: u32) {
    // SAFETY: setfsgid/setfsuid take an integer and touch no memory; callers confirm the
    // result with current_fsuid/current_fsgid, since these calls do not report failure.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
    }
}

fn current_fsuid() -> u32 {
    // SAFETY: an invalid id (-1) changes nothing and returns the current fsuid.
    unsafe { libc::setfsuid(u32::MAX) as u32 }
}

fn current_fsgid() -> u32 {
    // SAFETY: an invalid id (-1) changes nothing and returns the current fsgid.
    unsafe { libc::setfsgid(u32::MAX) as u32 }
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
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Nanoseconds since the epoch (negative before it).
    pub mtime_ns: i128,
    pub ctime_ns: i128,
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
    Ok(to_stat(&st))
}

/// `lstat(path)`: the metadata of the path's last component itself (a symbolic link is
/// reported as one), without a descriptor.
pub fn lstat(path: &CStr) -> io::Result<Stat> {
    // SAFETY: all-zero bytes are a valid `struct stat`; lstat fills it in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` writable, both for the duration of the call.
    check(unsafe { libc::lstat(path.as_ptr(), &mut st) })?;
    Ok(to_stat(&st))
}

// nlink_t is u64 here and u32 on other targets.
#[allow(clippy::unnecessary_cast)]
fn to_stat(st: &libc::stat) -> Stat {
    let ns = |sec: i64, nsec: i64| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    Stat {
        mode: st.st_mode,
        uid: st.st_uid,
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink as u64,
        mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
        ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
    }
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

/// Wait up to `timeout` for `fd` to become readable (data or end of file). EINTR is a time-out.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    Ok(poll_readable_any(&[fd], timeout)?[0])
}

/// Wait up to `timeout` for any of `fds` to become readable (data, end of file, or for a
/// pidfd the process's exit); which ones are. EINTR is a time-out (none ready).
pub fn poll_readable_any(
    fds: &[BorrowedFd<'_>],
    timeout: std::time::Duration,
) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` holds `pfds.len()` valid pollfd entries for the duration of the call.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(vec![false; fds.len()])
        } else {
            Err(e)
        };
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// Close descriptors inherited across fork that this (child) process will never use. Only for
/// a forked process that then ends with `_exit` and never touches the objects that own them.
pub fn close_inherited(fds: &[RawFd]) {
    for &fd in fds {
        if fd > 2 {
            // SAFETY: called in a forked child (the watchdog) that never reads, writes or
            // drops the Rust objects owning these descriptors in the parent's copy of memory;
            // closing them here affects only this process's descriptor table.
            unsafe { libc::close(fd) };
        }
    }
}

/// Point descriptors 0, 1 and 2 at /dev/null.
pub fn std_fds_to_null() -> io::Result<()> {
    let null = open(c"/dev/null", libc::O_RDWR)?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto a standard descriptor; `null` stays open for the call.
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// `pread` exactly `len` bytes at `offset` (a short read is an error: the file shrank).
pub fn pread_exact(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `buf[done..]` is writable for `len - done` bytes for the whole call.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                len - done,
                at,
            )
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            n => done += n as usize,
        }
    }
    Ok(buf)
}

/// `renameat(dir, from, dir, to)`: atomically replace `to` in one directory.
pub fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    check(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
        .map(drop)
}

/// `unlinkat(dir, name, 0)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on a descriptor we hold; touches no memory.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}
