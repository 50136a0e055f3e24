//! Processes and credentials: fork, exec by descriptor, uid/gid/groups, wait, limits.
//!
//! Through nix, except for what it has no wrapper for: `clone3` with `CLONE_INTO_CGROUP`,
//! `pidfd_open` and `_exit`.

use nix::sys::resource;
pub use nix::sys::resource::Resource;
use nix::sys::wait::{self, WaitPidFlag};
use nix::unistd::{self, Gid, Pid, Uid};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// fork(2).
///
/// # Safety
///
/// The calling process must be single-threaded (jitrun never starts a thread): in the child
/// only the calling thread exists, and a lock another thread held (the allocator's, stdio's)
/// would stay locked forever. The child must then only run code prepared for it and end with
/// exec or [`exit_now`], never returning into code that assumes it is the parent.
pub unsafe fn fork() -> io::Result<Fork> {
    // SAFETY: the caller guarantees that this process is single-threaded and that the child
    // only runs what was prepared for it (see # Safety).
    Ok(match unsafe { unistd::fork() }? {
        unistd::ForkResult::Child => Fork::Child,
        unistd::ForkResult::Parent { child } => Fork::Parent(child.as_raw()),
    })
}

/// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2), but the child starts inside the cgroup `cgroup_dir` (clone3 with
/// CLONE_INTO_CGROUP, Linux 5.7+). Moving a running process into a cgroup waits for an RCU
/// grace period in the kernel (about a millisecond); being born there costs nothing extra.
/// Errors mean "not supported here": the caller falls back to [`fork`] and migration.
/// Hand-written: nix has no clone3.
///
/// # Safety
///
/// As for [`fork`]; besides, the child must not rely on the C library's cached thread id
/// (`raise`, `pthread_kill`), which a raw clone does not update.
pub unsafe fn fork_into_cgroup(cgroup_dir: BorrowedFd<'_>) -> io::Result<Fork> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: with no stack and no CLONE_VM, clone3 behaves as fork: the child gets a copy of
    // the address space and continues here on its copy of the stack; the caller upholds what
    // that needs (see # Safety). `args` lives for the call and its size is passed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as libc::pid_t)),
    }
}

/// `pidfd_open(pid, 0)` (Linux 5.3+): a descriptor that becomes readable when `pid` exits.
/// Only for a process that cannot be reaped meanwhile (an unreaped child of the caller), so
/// that the pid cannot name another process. Hand-written: nix has no pidfd_open.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the returned descriptor is new.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: `fd` was just returned by pidfd_open (close-on-exec) and is owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Leave the process without running destructors or atexit handlers (a forked child, or a
/// supervisor that must not go on). Hand-written: nix has no `_exit`, and std's
/// `process::exit` runs the C library's atexit handlers and flushes stdio.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Ask the kernel to let the pipe of `fd` hold `bytes` (F_SETPIPE_SZ; rounded up to pages).
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: i32) -> io::Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes))?;
    Ok(())
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): run exactly the file that was checked.
/// Returns only on failure.
pub fn exec_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let flags = nix::fcntl::AtFlags::AT_EMPTY_PATH;
    match unistd::execveat(fd, c"", argv, envp, flags) {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

pub fn setpgid(pid: libc::pid_t, pgid: libc::pid_t) -> io::Result<()> {
    Ok(unistd::setpgid(Pid::from_raw(pid), Pid::from_raw(pgid))?)
}

pub fn getpgrp() -> libc::pid_t {
    unistd::getpgrp().as_raw()
}

pub fn getpid() -> libc::pid_t {
    unistd::getpid().as_raw()
}

pub fn getppid() -> libc::pid_t {
    unistd::getppid().as_raw()
}

pub fn geteuid() -> u32 {
    unistd::geteuid().as_raw()
}

pub fn getuid() -> u32 {
    unistd::getuid().as_raw()
}

pub fn getgid() -> u32 {
    unistd::getgid().as_raw()
}

/// Supplementary groups of the calling process.
pub fn getgroups() -> io::Result<Vec<u32>> {
    Ok(unistd::getgroups()?.into_iter().map(Gid::as_raw).collect())
}

pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
    Ok(unistd::setgroups(&groups)?)
}

/// initgroups(3): the user's groups from the group database, plus `gid`.
pub fn initgroups(user: &CStr, gid: u32) -> io::Result<()> {
    Ok(unistd::initgroups(user, Gid::from_raw(gid))?)
}

pub fn setresgid(gid: u32) -> io::Result<()> {
    let gid = Gid::from_raw(gid);
    Ok(unistd::setresgid(gid, gid, gid)?)
}

pub fn setresuid(uid: u32) -> io::Result<()> {
    let uid = Uid::from_raw(uid);
    Ok(unistd::setresuid(uid, uid, uid)?)
}

/// The three uids (real, effective, saved).
pub fn getresuid() -> io::Result<(u32, u32, u32)> {
    let ids = unistd::getresuid()?;
    Ok((
        ids.real.as_raw(),
        ids.effective.as_raw(),
        ids.saved.as_raw(),
    ))
}

/// SIGKILL this process when its parent `parent` ends (`PR_SET_PDEATHSIG`), and end now if
/// it already has (the parent may have died before the setting took).
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if unistd::getppid().as_raw() != parent {
        exit_now(1);
    }
    Ok(())
}

pub fn set_child_subreaper() -> io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}

/// How a child ended or changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    Stopped(i32),
}

impl WaitStatus {
    fn from_nix(st: wait::WaitStatus) -> Option<(libc::pid_t, WaitStatus)> {
        match st {
            wait::WaitStatus::Exited(pid, code) => Some((pid.as_raw(), WaitStatus::Exited(code))),
            wait::WaitStatus::Signaled(pid, sig, _) => {
                Some((pid.as_raw(), WaitStatus::Signaled(sig as i32)))
            }
            wait::WaitStatus::Stopped(pid, sig) => {
                Some((pid.as_raw(), WaitStatus::Stopped(sig as i32)))
            }
            _ => None,
        }
    }
}

/// waitpid(pid, WNOHANG | WUNTRACED). Ok(None) when nothing changed.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED;
    Ok(WaitStatus::from_nix(wait::waitpid(
        Pid::from_raw(pid),
        Some(flags),
    )?))
}

/// Blocking waitpid for `pid` (exit or signal only).
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<WaitStatus> {
    loop {
        match wait::waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(st) => match WaitStatus::from_nix(st) {
                Some((_, st @ (WaitStatus::Exited(_) | WaitStatus::Signaled(_)))) => return Ok(st),
                _ => continue,
            },
        }
    }
}

/// Blocking waitpid for `pid`, stops included (WUNTRACED): the pty monitor follows its
/// command's job-control stops.
pub fn wait_change(pid: libc::pid_t) -> io::Result<WaitStatus> {
    loop {
        match wait::waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WUNTRACED)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(st) => {
                if let Some((_, st)) = WaitStatus::from_nix(st) {
                    return Ok(st);
                }
            }
        }
    }
}

/// Replace the environment of this process with nothing (after taking a snapshot).
///
/// # Safety
///
/// No other thread may read or write the environment meanwhile (jitrun is single-threaded),
/// and no reference into it (from `std::env::var_os` and the like) may be kept across the call.
pub unsafe fn clear_env() {
    // SAFETY: the caller guarantees that nothing else uses the environment (see # Safety).
    // clearenv(3) cannot fail on glibc; should it, the caller's snapshot is still what the
    // command gets, and jitrun reads no variable.
    let _ = unsafe { nix::env::clearenv() };
}

/// One resource limit (soft, hard).
pub fn getrlimit(resource: Resource) -> io::Result<(u64, u64)> {
    Ok(resource::getrlimit(resource)?)
}

pub fn setrlimit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    Ok(resource::setrlimit(resource, soft, hard)?)
}

/// Start a new session (no controlling terminal).
pub fn setsid() -> io::Result<()> {
    unistd::setsid()?;
    Ok(())
}

/// Seconds on CLOCK_BOOTTIME: monotonic, counts suspend, starts at boot, not settable.
pub fn boottime_secs() -> io::Result<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)?;
    Ok(ts.tv_sec() as u64)
}

/// Set only the real uid (effective and saved stay as they are). With euid 0 any value is
/// allowed.
pub fn set_real_uid(uid: u32) -> io::Result<()> {
    // -1 (as uid_t) leaves the effective and saved uids unchanged.
    let unchanged = Uid::from_raw(libc::uid_t::MAX);
    Ok(unistd::setresuid(Uid::from_raw(uid), unchanged, unchanged)?)
}

/// While alive, the real uid is 0 (PAM modules expect to run as full root, as under sudo:
/// pam_exec runs its program with the real uid, and a module may check `getuid() == 0`).
/// Dropping it puts the caller's real uid back; if that fails the process exits (a
/// supervisor must never go on with a real uid it was not meant to have).
pub struct RealRoot {
    ruid: u32,
}

pub fn real_root() -> io::Result<RealRoot> {
    let (ruid, _, _) = getresuid()?;
    set_real_uid(0)?;
    Ok(RealRoot { ruid })
}

impl Drop for RealRoot {
    fn drop(&mut self) {
        if set_real_uid(self.ruid).is_err() {
            exit_now(1);
        }
    }
}
