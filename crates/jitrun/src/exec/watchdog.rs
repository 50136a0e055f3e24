//! The watchdog: a second root process, in its own session, that ends the command's
//! process tree at the grant's expiry even when the supervisor cannot.
//!
//! The supervisor stops itself when the command is stopped (Ctrl-Z), so that the shell sees
//! the job stop; a stopped supervisor enforces nothing, and the invoking user may continue
//! the command alone (SIGCONT is allowed within a session). The watchdog cannot be stopped or
//! signalled by the user (root, another session, no terminal), so expiry holds. If the
//! supervisor disappears without saying it is done (killed by a resource limit, a bug), the
//! watchdog kills the whole tree at once, removes the cgroup and logs `elevate.end` with
//! `supervisor_killed`: nothing runs unsupervised and nothing ends unlogged.
//!
//! It also watches the command itself (a pidfd): when the command exits, whatever it left
//! behind is killed at once, even while the supervisor is stopped (a caller who continues only
//! the command of a stopped job must not keep its setsid'd children running, standing rules
//! included). The supervisor logs the end when it runs again.
//!
//! It also watches the revocation list (docs/broker.md): every 2 s it looks whether
//! `/var/lib/jitrun/revocations` changed (inode, size, mtime) and, when it did, verifies it
//! again; once the grant is on it, the command ends like at expiry (SIGTERM, `kill_grace`,
//! `cgroup.kill`) and the supervisor is told, so that `elevate.end` says `revoked`.
//!
//! At the end the supervisor says "done" and the watchdog answers whether it ended the command
//! for a revocation (one socket both ways, one descriptor each), and exits; the supervisor does
//! not wait for that. The run's front removes the cgroup's directories once the supervisor
//! has exited (front.rs). Without a front (a kernel that cannot start the supervisor in its
//! cgroup), the watchdog stays until the supervisor has exited, then leaves the cgroup and
//! removes them: a process that moves itself to another cgroup waits for an RCU grace period
//! (milliseconds on a busy host), and the supervisor cannot remove a directory it is in, so
//! neither delays the caller. Should nobody get to it, the next jitrun's sweep removes the
//! empty directories (`stale_runs.rs`).

use super::relay::TerminalRestore;
use super::terminate::{remove_when_empty, terminate};
use crate::revocations::{self, Fingerprint, ListState};
use crate::system::cgroup::{RunCgroup, SessionCgroup};
use crate::system::fs;
use crate::system::process::{self, Fork, Resource};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often the revocation list's file is looked at while a command runs.
pub const REVOCATION_POLL: Duration = Duration::from_secs(2);

/// The grant a run uses, to end the run when it is revoked.
#[derive(Debug, Clone)]
pub struct RevocationWatch {
    pub jti: String,
    /// The trusted broker keys the list is verified with.
    pub keys: jit_grant::KeySet,
}

/// What the watchdog guards.
pub struct Guard<'a> {
    pub cgroup: Option<&'a RunCgroup>,
    pub child: libc::pid_t,
    /// The supervisor's pid: whose adopted orphans to end without a cgroup.
    pub supervisor: libc::pid_t,
    /// A pidfd of the command (None on kernels before 5.3): readable once it exited.
    pub command_exit: Option<BorrowedFd<'a>>,
    /// The run's cgroup directory: left and removed when the watchdog ends a run alone.
    pub session: Option<&'a SessionCgroup>,
    pub expires: Option<OffsetDateTime>,
    pub kill_grace: Duration,
    pub revocation: Option<&'a RevocationWatch>,
    /// Descriptors inherited from the supervisor that the watchdog has no use for: it closes
    /// them, so that a caller's tiny RLIMIT_NOFILE leaves room to read the revocation list
    /// (and so that the command's stdin pipe and the pty monitor see the supervisor go).
    pub unneeded: &'a [std::os::fd::RawFd],
    /// The caller's terminal as it was before the relay made it raw: put back if the
    /// supervisor vanishes.
    pub terminal: Option<&'a TerminalRestore>,
}

pub struct Watchdog {
    pid: libc::pid_t,
    talk: UnixStream,
}

/// The supervisor's word at the end of the run.
const DONE: u8 = b'd';
/// The watchdog's answers: it ended the command because the grant was revoked, or not.
const REVOKED: u8 = b'r';
const NOT_REVOKED: u8 = b'k';
/// How long the watchdog waits for the supervisor's exit before it leaves the cgroup's
/// removal to the next jitrun (the supervisor logs the end and closes the PAM session first).
const SUPERVISOR_EXIT_WAIT: Duration = Duration::from_secs(60);

/// What the watchdog did, as the supervisor learns when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub revoked: bool,
}

impl Watchdog {
    /// Fork the watchdog. `supervisor_lost` runs in the watchdog if the supervisor vanishes.
    pub fn start(guard: &Guard<'_>, supervisor_lost: impl FnOnce()) -> std::io::Result<Watchdog> {
        let (ours, theirs) = UnixStream::pair()?;
        // Without a front (which removes the run's cgroup after the supervisor: front.rs), the
        // watchdog stays after the supervisor to remove it.
        let removes = guard.session.is_some_and(|s| !s.removal_handed_over())
            && !cfg!(jitrun_ab = "wait_watchdog");
        // SAFETY: jitrun is single-threaded, and the child runs only `watch`, which ends with
        // `_exit` and never returns here.
        #[allow(unsafe_code)]
        let forked = unsafe { process::fork() }?;
        match forked {
            Fork::Child => {
                drop(ours);
                watch(guard, theirs, removes, supervisor_lost)
            }
            Fork::Parent(pid) => {
                if let Some(session) = guard.session.filter(|_| removes) {
                    session.hand_over_removal();
                }
                Ok(Watchdog { pid, talk: ours })
            }
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The supervisor is done with the command: the watchdog says what it did. It is not
    /// waited for: it exits after the supervisor (see the module documentation).
    pub fn finish(mut self) -> Report {
        let mut answer = [0u8; 1];
        let revoked = self.talk.write_all(&[DONE]).is_ok()
            && matches!(self.talk.read(&mut answer), Ok(1) if answer[0] == REVOKED);
        if cfg!(jitrun_ab = "wait_watchdog") {
            // The bench's A/B build: waited for, as before (the supervisor then removes the
            // cgroup itself).
            let _ = process::wait_blocking(self.pid);
        }
        Report { revoked }
    }
}

/// Watches the revocation list for one grant.
struct RevocationCheck<'a> {
    watch: &'a RevocationWatch,
    seen: Option<Fingerprint>,
    next: Instant,
}

impl RevocationCheck<'_> {
    /// Is the grant revoked now? Reads and verifies the list only when its file changed
    /// since the last look (and always on the first).
    fn revoked(&mut self, first: bool) -> bool {
        self.next = Instant::now() + REVOCATION_POLL;
        let now = Fingerprint::now();
        if !first && now == self.seen {
            return false;
        }
        match revocations::load(&self.watch.keys) {
            ListState::Valid(list) => {
                self.seen = now;
                list.contains(&self.watch.jti)
            }
            // A list that vanished or cannot be verified revokes nothing; jitrun refuses new
            // runs of rules that need a fresh list.
            ListState::Missing | ListState::Invalid(_) => {
                self.seen = now;
                false
            }
            // Not read this time (out of descriptors): look again at the next tick.
            ListState::Unreadable(_) => false,
        }
    }
}

/// Where the watchdog is in ending the command.
struct Ending<'g, 'a> {
    guard: &'g Guard<'a>,
    kill_at: Option<Instant>,
    revoked: bool,
}

impl Ending<'_, '_> {
    /// SIGTERM to everything the command started; SIGKILL after `kill_grace`.
    fn begin(&mut self) {
        let g = self.guard;
        terminate(g.cgroup, g.child, g.supervisor, libc::SIGTERM);
        self.kill_at = Some(Instant::now() + g.kill_grace);
    }

    fn kill(&self) {
        let g = self.guard;
        terminate(g.cgroup, g.child, g.supervisor, libc::SIGKILL);
    }

    /// Nothing arrived before the time-out: kill at the end of the grace period, begin at
    /// expiry, or when the grant is on the revocation list.
    fn on_timeout(&mut self, revocation: Option<&mut RevocationCheck<'_>>) {
        match self.kill_at {
            Some(at) if Instant::now() >= at => {
                self.kill();
                self.kill_at = Some(Instant::now() + Duration::from_secs(3600));
            }
            Some(_) => {}
            None if self
                .guard
                .expires
                .is_some_and(|exp| OffsetDateTime::now_utc() >= exp) =>
            {
                self.begin()
            }
            None => {
                if let Some(check) = revocation {
                    if Instant::now() >= check.next && check.revoked(false) {
                        self.revoked = true;
                        self.begin();
                    }
                }
            }
        }
    }
}

/// The watchdog's own process: out of the caller's session and terminal, with room for the
/// descriptors it needs.
fn detach(guard: &Guard<'_>) {
    // The caller's RLIMIT_NOFILE (inherited, possibly tiny) must not keep the watchdog from
    // reading the revocation list: drop what it does not need, and raise the limit where the
    // kernel lets root (not in containers without CAP_SYS_RESOURCE).
    // SAFETY: the watchdog never touches the supervisor's objects that own these (the pipes'
    // other ends) and ends with `_exit`.
    #[allow(unsafe_code)]
    unsafe {
        fs::close_inherited(guard.unneeded)
    };
    if let Ok((_, hard)) = process::getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.max(256);
        let _ = process::setrlimit(Resource::RLIMIT_NOFILE, want, want);
    }
    let _ = process::setsid();
    let _ = fs::std_fds_to_null();
}

/// How long to wait for the supervisor or the command: until the end of the grace period
/// once ending, else until expiry and the next look at the revocation list.
fn timeout(ending: &Ending<'_, '_>, revocation: Option<&RevocationCheck<'_>>) -> Duration {
    let timeout = match (ending.kill_at, ending.guard.expires) {
        (Some(at), _) => at.saturating_duration_since(Instant::now()),
        (None, Some(exp)) => {
            let left = exp - OffsetDateTime::now_utc();
            Duration::from_millis(left.whole_milliseconds().clamp(0, 3_600_000) as u64)
        }
        (None, None) => Duration::from_secs(3600),
    };
    match (ending.kill_at, revocation) {
        (None, Some(check)) => timeout.min(check.next.saturating_duration_since(Instant::now())),
        _ => timeout,
    }
}

/// A pidfd of the supervisor (our parent), if it is still the process that forked us.
fn supervisor_pidfd(guard: &Guard<'_>) -> Option<OwnedFd> {
    let fd = process::pidfd_open(guard.supervisor).ok()?;
    // Still our parent after the open: the pid was not reused, the descriptor is its.
    (process::getppid() == guard.supervisor).then_some(fd)
}

/// The run is over and the supervisor answered: once it has exited, leave the run's cgroup
/// and remove its directories (the supervisor's leaf is then empty).
fn remove_cgroup_after(guard: &Guard<'_>, supervisor: Option<OwnedFd>) {
    let (Some(session), Some(supervisor)) = (guard.session, supervisor) else {
        return;
    };
    if !matches!(
        fs::poll_readable(supervisor.as_fd(), SUPERVISOR_EXIT_WAIT),
        Ok(true)
    ) {
        return; // still there: the next jitrun's sweep removes the directories
    }
    session.leave();
}

fn watch(
    guard: &Guard<'_>,
    talk: UnixStream,
    removes_cgroup: bool,
    supervisor_lost: impl FnOnce(),
) -> ! {
    let mut from_supervisor = talk;
    detach(guard);
    let supervisor = guard
        .session
        .filter(|_| removes_cgroup)
        .and_then(|_| supervisor_pidfd(guard));
    let mut ending = Ending {
        guard,
        kill_at: None,
        revoked: false,
    };
    let mut command_exit = guard.command_exit;
    let mut revocation = guard.revocation.map(|watch| RevocationCheck {
        watch,
        seen: None,
        next: Instant::now(),
    });
    // The list may have changed between the decision and the start.
    if let Some(check) = revocation.as_mut() {
        if check.revoked(true) {
            ending.revoked = true;
            ending.begin();
        }
    }
    loop {
        let mut fds = vec![from_supervisor.as_fd()];
        fds.extend(command_exit);
        let ready = match fs::poll_readable_any(&fds, timeout(&ending, revocation.as_ref())) {
            Ok(r) => r,
            Err(_) => break, // cannot watch: fail closed
        };
        if ready.get(1) == Some(&true) {
            // The command exited: nothing it started outlives it, whether or not the
            // supervisor (perhaps stopped for job control) gets to it now.
            ending.kill();
            command_exit = None;
        }
        if ready[0] {
            let mut byte = [0u8; 1];
            let done = from_supervisor
                .read(&mut byte)
                .map(|n| n == 1 && byte[0] == DONE)
                .unwrap_or(false);
            if done {
                let answer = if ending.revoked { REVOKED } else { NOT_REVOKED };
                let _ = from_supervisor.write_all(&[answer]);
                drop(from_supervisor);
                remove_cgroup_after(guard, supervisor);
                process::exit_now(0);
            }
            break; // end of file: the supervisor is gone
        }
        if !ready.contains(&true) {
            ending.on_timeout(revocation.as_mut());
        }
    }
    ending.kill();
    if let Some(t) = guard.terminal {
        t.restore();
    }
    supervisor_lost();
    if let Some(cg) = guard.cgroup {
        remove_when_empty(cg);
    }
    if let Some(session) = guard.session {
        session.leave();
    }
    process::exit_now(0)
}
