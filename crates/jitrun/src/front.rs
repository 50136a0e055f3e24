//! The front: the process the caller's shell started stays her job, while the supervisor that
//! decides, runs, ends and logs the command is born in jitrun's own cgroup.
//!
//! jitrun's own processes must not run in a cgroup its caller may write (I22: in a delegated
//! scope of hers she could kill or freeze them). Moving the process her shell started into
//! jitrun's cgroup waits for an RCU grace period in the kernel (every move takes the cgroup
//! threadgroup lock for writing): measured here, 1.7 ms per run back to back and 9 ms for a run
//! on its own, on a busy 2-core host. A process *born* in a cgroup (clone3 with
//! CLONE_INTO_CGROUP) costs a fork instead. So, right after the settings are read, the process
//! her shell started (the front) makes the run's `supervisor` leaf and starts the supervisor in
//! it. From then on the front only:
//!
//! * passes on the signals that reach it (root's `kill`, the terminal's) to the supervisor,
//!   which passes them on to the command as before;
//! * stops when the supervisor stops for job control (Ctrl-Z: the shell waits for the front,
//!   so the front's stop is what it sees), and goes on when the shell continues the job (its
//!   SIGCONT reaches the whole process group, the supervisor included);
//! * exits as the supervisor did; after a supervisor that exited (not one that was killed:
//!   its watchdog, else the next jitrun, deals with that run) it first removes the run's
//!   cgroup directories from outside them, once the watchdog (which exits when the supervisor
//!   is done) has left them: no jitrun process ever moves itself out of them.
//!
//! The front holds nothing the run needs: no lock, no descriptor the supervisor uses, no
//! decision, and it logs nothing once the supervisor runs. Freezing or killing it (she may: it
//! is in her cgroup) costs her only her shell's view of the job: the supervisor and the
//! watchdog go on, end the command when they must and log it.
//!
//! A raw clone3 leaves the C library's thread data of the new process as the front's (its
//! cached thread id; `fork` in the C library sets it right). So the child born in the leaf
//! forks once more, with the C library's fork (no cgroup move: a child is born in its parent's
//! cgroup), and exits; the grandchild is the supervisor, re-parented to the front, which is a
//! child subreaper for that.

use crate::system::cgroup::SessionCgroup;
use crate::system::process::{self, Fork, WaitStatus};
use crate::system::signals;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

/// Signals the front takes (blocked, and waited for): the supervisor's, SIGCHLD and those it
/// passes on. SIGCONT is passed on too: continued alone (`kill -CONT` of the front), the front
/// continues the supervisor; the supervisor, continued, continues the front
/// (`exec::terminal::continue_front`).
const TAKEN: &[libc::c_int] = crate::exec::HANDLED;

/// Which process this is after [`split`].
pub enum Role {
    /// The process the caller's shell started: it waits for the supervisor.
    Front(Front),
    /// The supervisor, in the run's `supervisor` leaf: it goes on with the run.
    Supervisor,
}

/// The front's side: the supervisor's pid.
pub struct Front {
    supervisor: libc::pid_t,
}

/// Start the supervisor in `session`'s `supervisor` leaf (made now). Errors are those of
/// making the leaf and of clone3 (ENOSYS or EINVAL: a kernel without CLONE_INTO_CGROUP).
pub fn split(session: &SessionCgroup) -> io::Result<Role> {
    let front = process::getpid();
    let leaf = session.make_supervisor_leaf()?;
    process::set_child_subreaper()?;
    let (from_middle, to_front) = process::pipe()?;
    // SAFETY: jitrun is single-threaded. The child born in the leaf runs only the block below:
    // the C library's fork, one write and `_exit` (it relies on no cached thread id); its own
    // child is a normal process (see below).
    #[allow(unsafe_code)]
    let born = unsafe { process::fork_into_cgroup(leaf.as_fd()) }?;
    match born {
        Fork::Child => {
            drop(from_middle);
            drop(leaf);
            // SAFETY: single-threaded (the one thread clone3 copied). The C library's fork
            // sets the grandchild's thread data right; the grandchild returns as the
            // supervisor into run mode, whose code from here on is the supervisor's (the
            // front never returns there), and this middle process only writes and `_exit`s.
            #[allow(unsafe_code)]
            match unsafe { process::fork() } {
                Ok(Fork::Child) => {
                    drop(to_front);
                    crate::exec::set_front(front);
                    Ok(Role::Supervisor)
                }
                Ok(Fork::Parent(pid)) => {
                    let _ = std::fs::File::from(to_front).write_all(&pid.to_le_bytes());
                    process::exit_now(0)
                }
                Err(_) => process::exit_now(1),
            }
        }
        Fork::Parent(middle) => {
            drop(to_front);
            drop(leaf);
            let mut pid = [0u8; 4];
            let read = std::fs::File::from(from_middle).read_exact(&mut pid);
            let _ = process::wait_blocking(middle);
            read.map_err(|e| io::Error::new(e.kind(), "the supervisor was not started"))?;
            Ok(Role::Front(Front {
                supervisor: libc::pid_t::from_le_bytes(pid),
            }))
        }
    }
}

impl Front {
    /// Wait for the supervisor (passing signals on, mirroring its stops), remove the run's
    /// cgroup directories, and return its exit status (or die of the signal it died of).
    pub fn wait(self, session: &SessionCgroup) -> i32 {
        let _ = signals::block(TAKEN);
        let ended = loop {
            match self.reap() {
                Some(WaitStatus::Stopped(_)) => {
                    // Her shell waits for this process: the job stops when it does.
                    let _ = signals::kill(process::getpid(), libc::SIGSTOP);
                    continue;
                }
                Some(ended) => break ended,
                None => {}
            }
            match signals::wait(TAKEN, Duration::from_secs(3600)) {
                Ok(Some(libc::SIGCHLD)) | Ok(None) | Err(_) => {}
                // The supervisor may be stopped for job control: the front's stop was only its
                // mirror, and whoever continued the front meant the job.
                Ok(Some(sig)) => {
                    let _ = signals::kill(self.supervisor, sig);
                }
            }
        };
        match ended {
            WaitStatus::Exited(code) => {
                remove_run_cgroup(session);
                code
            }
            // Killed (root, the OOM killer): the watchdog, else the next jitrun, ends and logs
            // the run; its directories stay for them.
            WaitStatus::Signaled(sig) | WaitStatus::Stopped(sig) => die_of(sig),
        }
    }

    /// The supervisor's change of state, if any; anything else that ended is reaped (the
    /// command and the watchdog are re-parented here should the supervisor die).
    fn reap(&self) -> Option<WaitStatus> {
        loop {
            match process::wait_nohang(-1) {
                Ok(Some((pid, st))) if pid == self.supervisor => return Some(st),
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                // No child at all: the supervisor is gone without a word (cannot happen).
                Err(_) => return Some(WaitStatus::Exited(crate::refusal::EXIT_REFUSED)),
            }
        }
    }
}

/// After a supervisor that exited: remove the run's cgroup directories. Its watchdog answered
/// the supervisor and is exiting (re-parented here should it outlive the supervisor): wait for
/// it to leave the `supervisor` leaf, a little (the next jitrun's sweep removes what is left).
fn remove_run_cgroup(session: &SessionCgroup) {
    for _ in 0..50 {
        if session.remove_from_outside() {
            return;
        }
        while let Ok(Some(_)) = process::wait_nohang(-1) {}
        let _ = signals::wait(&[libc::SIGCHLD], Duration::from_millis(20));
    }
}

/// End this process by `sig`, as the supervisor ended (its caller's shell then reports the
/// same); 128 + `sig` should the signal not end it.
fn die_of(sig: libc::c_int) -> i32 {
    signals::set_default(sig);
    let _ = signals::unblock_all();
    let _ = signals::kill(process::getpid(), sig);
    128 + sig
}
