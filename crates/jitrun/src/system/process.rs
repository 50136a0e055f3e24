//! Processes and credentials: fork, exec by descriptor, uid/gid/groups, wait, limits.

use super::check;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// fork(2). jitrun is single-threaded when it forks, so the child may keep running Rust code.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: jitrun never starts a thread, so no lock can be held by a thread that does not
    // exist in the child; the child only runs code prepared for it before returning to exec.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
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
pub fn fork_into_cgroup(cgroup_dir: BorrowedFd<'_>) -> io::Result<Fork> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: with no stack and no CLONE_VM, clone3 behaves as fork: the child gets a copy of
    // the address space and continues here on its copy of the stack. jitrun is single-threaded
    // (no lock can be held by another thread), and the child only runs the code prepared for
    // it (credential changes, exec) without using the C library's cached thread id (raise,
    // pthread_kill), which a raw clone does not update. `args` lives for the call.
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
/// that the pid cannot name another process.
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

/// Leave the process without running destructors or atexit handlers (child side).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): run exactly the file that was checked.
/// Returns only on failure.
pub fn exec_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated arrays of pointers to NUL-terminated strings that
    // outlive the call (owned by `argv`/`envp`); the empty path with AT_EMPTY_PATH means `fd`.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

pub fn setpgid(pid: libc::pid_t, pgid: libc::pid_t) -> io::Result<()> {
    // SAFETY: integers only.
    check(unsafe { libc::setpgid(pid, pgid) }).map(drop)
}

pub fn getpgrp() -> libc::pid_t {
    // SAFETY: cannot fail.
    unsafe { libc::getpgrp() }
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: cannot fail.
    unsafe { libc::getpid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getgid() }
}

/// Supplementary groups of the calling process.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: size 0 asks only for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `groups` has room for `n` entries.
    let n = check(unsafe { libc::getgroups(n, groups.as_mut_ptr()) })?;
    groups.truncate(n as usize);
    Ok(groups)
}

pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`, valid for the call.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).map(drop)
}

/// initgroups(3): the user's groups from the group database, plus `gid`.
pub fn initgroups(user: &CStr, gid: u32) -> io::Result<()> {
    // SAFETY: `user` is NUL-terminated and outlives the call.
    check(unsafe { libc::initgroups(user.as_ptr(), gid) }).map(drop)
}

pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: integers only.
    check(unsafe { libc::setresgid(gid, gid, gid) }).map(drop)
}

pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: integers only.
    check(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

/// The three uids (real, effective, saved).
pub fn getresuid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// How a child ended or changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    Stopped(i32),
}

/// waitpid(pid, WNOHANG | WUNTRACED). Ok(None) when nothing changed.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r == 0 {
        return Ok(None);
    }
    let ws = if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else if libc::WIFSTOPPED(status) {
        WaitStatus::Stopped(libc::WSTOPSIG(status))
    } else {
        return Ok(None);
    };
    Ok(Some((r, ws)))
}

/// Blocking waitpid for `pid` (exit or signal only).
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<WaitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) {
            return Ok(WaitStatus::Exited(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(WaitStatus::Signaled(libc::WTERMSIG(status)));
        }
    }
}

/// Replace the environment of this process with nothing (after taking a snapshot).
pub fn clear_env() {
    // SAFETY: jitrun is single-threaded, so no other thread reads the environment meanwhile.
    unsafe { libc::clearenv() };
}

/// One resource limit (soft, hard).
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer for the call.
    check(unsafe { libc::getrlimit(resource, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is valid for the call.
    check(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

/// Start a new session (no controlling terminal).
pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments, touches no memory.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Seconds on CLOCK_BOOTTIME: monotonic, counts suspend, starts at boot, not settable.
pub fn boottime_secs() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    check(unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) })?;
    Ok(ts.tv_sec as u64)
}

/// Set only the real uid (effective and saved stay as they are). With euid 0 any value is
/// allowed.
pub fn set_real_uid(uid: u32) -> io::Result<()> {
    // SAFETY: integers only; -1 (as uid_t) leaves the effective and saved uids unchanged.
    check(unsafe { libc::setresuid(uid, libc::uid_t::MAX, libc::uid_t::MAX) }).map(drop)
}

/// While alive, the real uid is 0 (PAM modules expect to run as full root, as under sudo:
/// pam_exec runs its program with the real uid, and a module may check `getuid() == 0`).
/// Dropping it puts the caller's real uid back; if that fails the process exits (a
/// supervisor must never go on with a real uid it was not meant to have).
pub struct RealRoot {
    ruid: u32,
}

pub fn real_root() -> io::Result<RealRoot> {
    let (ruid, _, _) = getresuid();
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
