//! File-system calls: file-system identity, descriptor hygiene, openat, flock.
//!
//! Through nix (and std's `File::lock`), except `close_range`, which nix lacks, and the
//! standard descriptors' `BorrowedFd`s, which only this module may vouch for.

use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

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

/// setfsgid/setfsuid report no failure: callers confirm the result with
/// [`current_fsuid`] and [`current_fsgid`].
fn set_fs_ids(uid: u32, gid: u32) {
    nix::unistd::setfsgid(Gid::from_raw(gid));
    nix::unistd::setfsuid(Uid::from_raw(uid));
}

fn current_fsuid() -> u32 {
    // An invalid id (-1) changes nothing and returns the current fsuid.
    nix::unistd::setfsuid(Uid::from_raw(u32::MAX)).as_raw()
}

fn current_fsgid() -> u32 {
    // An invalid id (-1) changes nothing and returns the current fsgid.
    nix::unistd::setfsgid(Gid::from_raw(u32::MAX)).as_raw()
}

/// Make sure fds 0, 1 and 2 are open (on /dev/null if they were closed), so that files
/// jitrun opens later can never land on them and receive what is meant for stderr. open(2)
/// returns the lowest free descriptor: /dev/null is opened until that is above 2 (one open
/// and one close when nothing was closed).
pub fn ensure_std_fds() -> io::Result<()> {
    loop {
        // Not close-on-exec: what lands on 0–2 is the command's standard descriptor too.
        let null = nix::fcntl::open(c"/dev/null", OFlag::O_RDWR, Mode::empty())?;
        if null.as_raw_fd() > 2 {
            return Ok(());
        }
        // Kept open for the life of the process, as a standard descriptor.
        let _ = null.into_raw_fd();
    }
}

/// Close every descriptor above 2 (`close_range`, hand-written: nix lacks it; one by one up to
/// the open-file limit on kernels before 5.9).
///
/// # Safety
///
/// No object of this process may own a descriptor above 2 (an `OwnedFd`, a `File`, a socket
/// of a library): it would go on using a number that is closed, or that a later open reuses.
/// Only at start-up, before anything is opened.
pub unsafe fn close_from_3() -> io::Result<()> {
    // SAFETY: close_range takes integers only; the caller guarantees that nothing owns the
    // descriptors it closes (see # Safety).
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r == 0 {
        return Ok(());
    }
    let max = match nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX) {
        Ok(Some(n)) if n > 0 => n.min(1 << 20),
        _ => 65536,
    } as RawFd;
    for fd in 3..max {
        // EBADF for descriptors that are not open is ignored.
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

pub fn set_umask(mask: u32) {
    nix::sys::stat::umask(Mode::from_bits_truncate(mask));
}

fn oflag(flags: libc::c_int) -> OFlag {
    OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let mode = Mode::from_bits_truncate(mode);
    Ok(nix::fcntl::openat(dir, name, oflag(flags), mode)?)
}

/// `open(path, flags | O_CLOEXEC)`.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(path, oflag(flags), Mode::empty())?)
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
    Ok(to_stat(&nix::sys::stat::fstat(fd)?))
}

/// `lstat(path)`: the metadata of the path's last component itself (a symbolic link is
/// reported as one), without a descriptor.
pub fn lstat(path: &CStr) -> io::Result<Stat> {
    Ok(to_stat(&nix::sys::stat::lstat(path)?))
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

/// Take an exclusive `flock` on the file (blocking; std's `File::lock`); released when the
/// file is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        match file.lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Clear FD_CLOEXEC so the descriptor survives exec (for `#!` scripts run through
/// /dev/fd/N by execveat).
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// Read at most `limit` bytes from the start of `fd` (one pread, so the offset is untouched).
pub fn pread_prefix(fd: BorrowedFd<'_>, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit];
    let n = nix::sys::uio::pread(fd, &mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// `mkdirat(dir, name, mode)`; an existing entry is not an error.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)) {
        Err(nix::errno::Errno::EEXIST) => Ok(()),
        other => Ok(other?),
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
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&fd| PollFd::new(fd, PollFlags::POLLIN))
        .collect();
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128))
        .unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut pfds, ms) {
        Err(nix::errno::Errno::EINTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect()),
    }
}

/// Close descriptors inherited across fork that this (child) process will never use.
///
/// # Safety
///
/// Only in a forked process that never again reads, writes or drops the Rust objects owning
/// these descriptors (in its copy of the parent's memory) and ends with `_exit`: closing them
/// affects only this process's descriptor table, but the objects would name closed numbers.
pub unsafe fn close_inherited(fds: &[RawFd]) {
    for &fd in fds {
        if fd > 2 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// Point descriptors 0, 1 and 2 at /dev/null.
pub fn std_fds_to_null() -> io::Result<()> {
    let null = open(c"/dev/null", libc::O_RDWR)?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Standard descriptor `fd` (0, 1 or 2), borrowed for the life of the process: they are open
/// when `main` starts (Rust's runtime reopens closed ones on /dev/null, and so does
/// [`ensure_std_fds`]), jitrun never closes them, and [`std_fds_to_null`] replaces them in
/// place.
pub fn std_fd(fd: RawFd) -> BorrowedFd<'static> {
    assert!((0..=2).contains(&fd));
    // SAFETY: fds 0–2 are open for the whole life of the process (see above).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `pread` exactly `len` bytes at `offset` (a short read is an error: the file shrank).
pub fn pread_exact(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match nix::sys::uio::pread(fd, &mut buf[done..], at) {
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
        }
    }
    Ok(buf)
}

/// `renameat(dir, from, dir, to)`: atomically replace `to` in one directory.
pub fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    Ok(nix::fcntl::renameat(dir, from, dir, to)?)
}

/// `unlinkat(dir, name, 0)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let flags = nix::unistd::UnlinkatFlags::NoRemoveDir;
    Ok(nix::unistd::unlinkat(dir, name, flags)?)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))?)
}
