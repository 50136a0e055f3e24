//! The pty monitor: a small root process, the leader of the session whose controlling
//! terminal is the command's pty, and the command's parent (as sudo's monitor is).
//!
//! Why a process of its own: the kernel ignores the terminal's stop signals (Ctrl-Z's
//! SIGTSTP, SIGTTIN, SIGTTOU) for a process group that is *orphaned*, one with no parent in
//! its session outside the group. A command that led its own session would be such a group,
//! so Ctrl-Z would not stop `sleep` or `cat` there. With the monitor as the session leader
//! and the command in a process group of its own, the command stops as it would on the
//! caller's terminal; the monitor sees it stop (waitpid with WUNTRACED), tells the
//! supervisor, which gives the caller's terminal back and stops its own process group so
//! that her shell sees the job stop, and, once continued, tells the monitor to give the
//! command the pty's foreground back and continue it.
//!
//! The monitor stays in jitrun's own cgroup leaf (it is one of jitrun's processes: the
//! watchdog ending what a command left when it exits never kills it) and creates the command
//! in the command's leaf. It dies with the supervisor (`PR_SET_PDEATHSIG`): should the
//! supervisor vanish, the watchdog, or with it gone too the next jitrun (which looks for runs
//! whose `supervisor` leaf is empty), ends the run as without a pty. It is root, blocks every signal the supervisor handles, and holds
//! only the master of the pty (to move the pty's foreground) and its two pipes to the
//! supervisor. When the command ends, the monitor ends the same way (its exit status, or the
//! same signal), so the supervisor sees the command's own status.
//!
//! Messages to the supervisor are 5 bytes (a tag and an i32), written whole to a pipe:
//! `p` the command's pid, `b` 1 if it was born inside its cgroup, `s` it stopped with this
//! signal, `e` setting up failed with this errno. The supervisor answers a stop with one byte.

use super::spawn::{self, Spawned};
use super::Launch;
use crate::refusal::Refusal;
use crate::system::cgroup::RunCgroup;
use crate::system::process::{self, Fork, WaitStatus};
use crate::system::{fs, pty, signals, stream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::plumbing::Plumbing;

/// The supervisor's side of the monitor.
pub struct Monitor {
    pub pid: libc::pid_t,
    /// The monitor's messages (non-blocking).
    pub status: OwnedFd,
    control: OwnedFd,
}

/// A monitor message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Pid(libc::pid_t),
    BornInside(bool),
    Stopped(libc::c_int),
    Failed(i32),
}

const MESSAGE_LEN: usize = 5;

impl Message {
    fn encode(self) -> [u8; MESSAGE_LEN] {
        let (tag, v) = match self {
            Message::Pid(p) => (b'p', p),
            Message::BornInside(b) => (b'b', i32::from(b)),
            Message::Stopped(s) => (b's', s),
            Message::Failed(e) => (b'e', e),
        };
        let v = v.to_le_bytes();
        [tag, v[0], v[1], v[2], v[3]]
    }

    fn decode(b: &[u8]) -> Option<Message> {
        let v = i32::from_le_bytes(b.get(1..MESSAGE_LEN)?.try_into().ok()?);
        Some(match b[0] {
            b'p' => Message::Pid(v),
            b'b' => Message::BornInside(v != 0),
            b's' => Message::Stopped(v),
            b'e' => Message::Failed(v),
            _ => return None,
        })
    }
}

impl Monitor {
    /// Messages that arrived (the pipe is non-blocking: none is an empty list).
    pub fn messages(&self) -> Vec<Message> {
        let mut buf = [0u8; MESSAGE_LEN * 16];
        match stream::read(self.status.as_fd(), &mut buf) {
            Ok(n) => buf[..n]
                .chunks(MESSAGE_LEN)
                .filter_map(Message::decode)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Its pipes' descriptors (for the watchdog to close).
    pub fn descriptors(&self) -> [std::os::fd::RawFd; 2] {
        [self.status.as_raw_fd(), self.control.as_raw_fd()]
    }

    /// The supervisor is back (and has the caller's terminal as it should): continue the
    /// stopped command in the pty's foreground.
    pub fn resume(&self) {
        let _ = stream::write(self.control.as_fd(), b"c");
    }
}

fn fail(what: &str, e: std::io::Error) -> Refusal {
    Refusal::config(
        "supervise",
        format!("cannot start the command on its terminal: {what}: {e}"),
    )
}

/// Read one message, waiting for it (the monitor sends them right after the fork).
fn expect(status: BorrowedFd<'_>) -> Result<Message, Refusal> {
    let mut buf = [0u8; MESSAGE_LEN];
    let mut got = 0;
    while got < MESSAGE_LEN {
        match stream::read(status, &mut buf[got..]) {
            Ok(0) => {
                return Err(fail(
                    "the pty monitor",
                    std::io::Error::other("ended before the command started"),
                ))
            }
            Ok(n) => got += n,
            Err(e) => return Err(fail("the pty monitor", e)),
        }
    }
    Message::decode(&buf).ok_or_else(|| {
        fail(
            "the pty monitor",
            std::io::Error::other("sent a message jitrun does not know"),
        )
    })
}

/// Fork the monitor, which forks the command on the pty. Returns the monitor and the
/// command (waiting for its go, as without a pty).
pub fn spawn(
    launch: &Launch<'_>,
    cgroup: Option<&RunCgroup>,
    plumbing: &Plumbing,
) -> Result<(Monitor, Spawned), Refusal> {
    let pipe = || process::pipe().map_err(|e| fail("pipe", e));
    let (go_r, go_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let (control_r, control_w) = pipe()?;
    let supervisor = process::getpid();
    // SAFETY: jitrun is single-threaded; the monitor runs only `monitor_main`, which ends
    // with `_exit` (or dies of its command's signal) and never returns here.
    #[allow(unsafe_code)]
    let forked = unsafe { process::fork() }.map_err(|e| fail("fork", e))?;
    let pid = match forked {
        Fork::Child => {
            drop((go_w, rep_r, status_r, control_w));
            let ends = Ends {
                go: go_r,
                report: rep_w,
                status: status_w,
                control: control_r,
            };
            monitor_main(launch, cgroup, plumbing, ends, supervisor)
        }
        Fork::Parent(pid) => pid,
    };
    drop((go_r, rep_w, status_w, control_r));
    let monitor = Monitor {
        pid,
        status: status_r,
        control: control_w,
    };
    let (command, born_inside) = monitor.command()?;
    let spawned = Spawned {
        pid: command,
        born_inside,
        go: go_w,
        report: rep_r,
    };
    Ok((monitor, spawned))
}

impl Monitor {
    /// The command's pid and whether it was born inside its cgroup, as the monitor reports
    /// them right after the fork. A monitor that cannot go on is ended (with its command,
    /// which waits for its go).
    fn command(&self) -> Result<(libc::pid_t, bool), Refusal> {
        let abandon = |r: Refusal| {
            let _ = signals::kill(self.pid, libc::SIGKILL);
            let _ = process::wait_blocking(self.pid);
            r
        };
        let command = match expect(self.status.as_fd()).map_err(abandon)? {
            Message::Pid(c) => c,
            Message::Failed(errno) => {
                let e = std::io::Error::from_raw_os_error(errno);
                return Err(abandon(fail("setting up its session", e)));
            }
            other => {
                let e = std::io::Error::other(format!("unexpected {other:?}"));
                return Err(abandon(fail("the pty monitor", e)));
            }
        };
        let born_inside = matches!(
            expect(self.status.as_fd()).map_err(abandon)?,
            Message::BornInside(true)
        );
        stream::set_nonblocking(self.status.as_fd()).map_err(|e| abandon(fail("pipe", e)))?;
        Ok((command, born_inside))
    }
}

/// The monitor's ends of its pipes, and the command's.
struct Ends {
    go: OwnedFd,
    report: OwnedFd,
    status: OwnedFd,
    control: OwnedFd,
}

fn send(status: BorrowedFd<'_>, m: Message) {
    let _ = stream::write(status, &m.encode());
}

/// The monitor's process: lead a new session on the pty, fork the command into its cgroup,
/// then follow it until it ends, and end the same way.
fn monitor_main(
    launch: &Launch<'_>,
    cgroup: Option<&RunCgroup>,
    plumbing: &Plumbing,
    ends: Ends,
    supervisor: libc::pid_t,
) -> ! {
    if process::die_with_parent(supervisor).is_err() {
        process::exit_now(1);
    }
    let Ends {
        go,
        report,
        status,
        control,
    } = ends;
    let master = plumbing.pty.as_ref().map(|p| p.master.as_fd());
    let (Some(slave), Some(master)) = (plumbing.slave(), master) else {
        send(status.as_fd(), Message::Failed(libc::EBADF));
        process::exit_now(1)
    };
    if let Err(e) = process::setsid().and_then(|_| pty::make_controlling(slave)) {
        send(
            status.as_fd(),
            Message::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
        );
        process::exit_now(1);
    }
    // SAFETY: jitrun is single-threaded (so is its fork, the monitor); the command's process
    // runs only `child_main`, which execs or ends with `_exit`.
    #[allow(unsafe_code)]
    let forked = unsafe { spawn::fork_into(cgroup) };
    let (command, born_inside) = match forked {
        Ok((Fork::Child, _)) => {
            drop((status, control));
            spawn::child_main(launch, go, report, plumbing.child_stdio())
        }
        Ok((Fork::Parent(pid), inside)) => (pid, inside),
        Err(e) => {
            send(
                status.as_fd(),
                Message::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
            );
            process::exit_now(1)
        }
    };
    drop((go, report));
    // The command in a process group of its own, in the pty's foreground (it does the same,
    // whichever of the two runs first).
    let _ = process::setpgid(command, command);
    let _ = pty::set_foreground(master, command);
    send(status.as_fd(), Message::Pid(command));
    send(status.as_fd(), Message::BornInside(born_inside));
    // Nothing of the caller's terminal, nor of the command's plumbing, stays open here: the
    // supervisor sees the end of the command's output only once every copy of the slave is
    // closed.
    let _ = fs::std_fds_to_null();
    // SAFETY: the monitor never again uses or drops the objects owning these descriptors
    // (the plumbing, the checked program) and ends with `_exit` or its command's signal.
    #[allow(unsafe_code)]
    unsafe {
        stream::close_all_but(&[master.as_raw_fd(), status.as_raw_fd(), control.as_raw_fd()])
    };
    follow(command, master, status.as_fd(), control.as_fd())
}

/// Wait for the command's changes of state: pass its stops on (and continue it when told),
/// end as it ends.
fn follow(
    command: libc::pid_t,
    master: BorrowedFd<'_>,
    status: BorrowedFd<'_>,
    control: BorrowedFd<'_>,
) -> ! {
    loop {
        match process::wait_change(command) {
            Ok(WaitStatus::Stopped(sig)) => {
                let foreground = pty::foreground(master).unwrap_or(command);
                send(status, Message::Stopped(sig));
                // Until the supervisor says so (or is gone: then the watchdog ends the run).
                let mut byte = [0u8; 1];
                let _ = stream::read(control, &mut byte);
                let _ = pty::set_foreground(master, foreground);
                let _ = signals::kill(-command, libc::SIGCONT);
            }
            Ok(WaitStatus::Exited(code)) => process::exit_now(code),
            Ok(WaitStatus::Signaled(sig)) => stream::die_of(sig),
            Err(_) => process::exit_now(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn messages_read_back_as_written() {
        for m in [
            Message::Pid(4_194_304),
            Message::BornInside(true),
            Message::BornInside(false),
            Message::Stopped(libc::SIGTSTP),
            Message::Failed(libc::ENOTTY),
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode(b"z\0\0\0\0"), None);
        assert_eq!(Message::decode(b"p\0"), None);
    }
}
