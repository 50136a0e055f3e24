//! What the command's standard descriptors are connected to.
//!
//! * **Direct** (no plumbing): the command gets jitrun's own descriptors, and the caller's
//!   terminal is handed to its process group for the run (exec/terminal.rs). That is the run
//!   of a command as the invoker that records nothing.
//! * **A pty** of jitrun's, when one of fds 0–2 is a terminal and the rule records, or the
//!   command runs as another user (settings `use_pty`, default on): each of fds 0–2 that is a
//!   terminal becomes the pty's slave in the command; jitrun relays between the caller's
//!   terminal and the master (exec/relay.rs). The command never holds a descriptor of the
//!   caller's terminal: it cannot push keystrokes into her shell or change her terminal.
//! * **Pipes**, for what is not a terminal when the rule records: the command's stdout and
//!   stderr (and stdin with `record_input`) are pipes that jitrun reads (or writes) and
//!   relays, recording what passes. Without a recording such descriptors are left as they
//!   are (a file, `/dev/null`, a pipe of the caller's).
//!
//! The plumbing is made by the supervisor, as root, before the fork; the child puts its ends
//! on 0–2 ([`Plumbing::child_stdio`]); the supervisor then closes them
//! ([`Plumbing::close_child_side`]), so that the end of the command's output is seen.

use super::terminal;
use crate::system::pty::{self, Pty, WindowSize};
use crate::system::stream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What the run asks for.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// The rule records the session.
    pub record: bool,
    /// ... and what is typed to the command.
    pub record_input: bool,
    /// Settings `use_pty`, and the command runs as a user other than the invoker.
    pub isolate: bool,
}

/// What the command gets as one of its standard descriptors.
enum ChildEnd {
    /// jitrun's own descriptor, as it is.
    Inherit,
    /// The pty's slave.
    Slave,
    /// The command's end of a pipe jitrun relays.
    Pipe(OwnedFd),
}

pub struct Plumbing {
    /// The pty, when the command runs on one (the slave until the fork).
    pub pty: Option<PtyEnds>,
    child: [ChildEnd; 3],
    /// jitrun's ends of the pipes: [the command's stdin (write end), its stdout, its stderr
    /// (read ends)].
    pub pipes: [Option<OwnedFd>; 3],
}

pub struct PtyEnds {
    pub master: OwnedFd,
    slave: Option<OwnedFd>,
    /// The caller's terminal (the first of fds 0–2 that is one).
    pub terminal: BorrowedFd<'static>,
    /// Its size when the run started (80x24 if it has none).
    pub size: WindowSize,
}

/// Bytes the pipe of a recorded stdout or stderr holds (the default is 64 KiB; the relay
/// reads up to 256 KiB at once).
const OUTPUT_PIPE: i32 = 1024 * 1024;

impl Plumbing {
    /// The plumbing a run needs; None when the command gets jitrun's descriptors as they are.
    pub fn new(want: Want) -> std::io::Result<Option<Plumbing>> {
        let terminal = terminal::terminal();
        let on_pty = terminal.is_some() && (want.record || want.isolate);
        if !on_pty && !want.record {
            return Ok(None);
        }
        let pty = match terminal {
            Some(t) if on_pty => Some(open_pty(t)?),
            _ => None,
        };
        let mut child = [ChildEnd::Inherit, ChildEnd::Inherit, ChildEnd::Inherit];
        let mut pipes = [None, None, None];
        for (n, end) in child.iter_mut().enumerate() {
            let fd = crate::system::fs::std_fd(n as i32);
            if pty.is_some() && crate::system::term::isatty(fd) {
                *end = ChildEnd::Slave;
            } else if want.record && (n > 0 || want.record_input) {
                let (r, w) = crate::system::process::pipe()?;
                let (ours, theirs) = if n == 0 { (w, r) } else { (r, w) };
                stream::set_nonblocking(ours.as_fd())?;
                if n > 0 {
                    // Room for a burst of output: the relay reads it in large blocks (fewer
                    // turns, fuller session.io chunks). Best effort: the default still works.
                    let _ = crate::system::process::set_pipe_size(ours.as_fd(), OUTPUT_PIPE);
                }
                pipes[n] = Some(ours);
                *end = ChildEnd::Pipe(theirs);
            }
        }
        Ok(Some(Plumbing { pty, child, pipes }))
    }

    /// What the command puts on fds 0, 1 and 2 (None: keep what it has).
    pub fn child_stdio(&self) -> [Option<BorrowedFd<'_>>; 3] {
        [0, 1, 2].map(|n| match &self.child[n] {
            ChildEnd::Inherit => None,
            ChildEnd::Slave => self.slave(),
            ChildEnd::Pipe(p) => Some(p.as_fd()),
        })
    }

    /// The slave, for the monitor to make it its controlling terminal.
    pub fn slave(&self) -> Option<BorrowedFd<'_>> {
        self.pty.as_ref()?.slave.as_ref().map(|s| s.as_fd())
    }

    /// The supervisor, once the command is forked: its ends are the command's alone now.
    pub fn close_child_side(&mut self) {
        self.child = [ChildEnd::Inherit, ChildEnd::Inherit, ChildEnd::Inherit];
        if let Some(p) = self.pty.as_mut() {
            p.slave = None;
        }
    }
}

/// The caller's terminal's size (80x24 without one): a recording's header says it.
pub fn terminal_size() -> WindowSize {
    terminal::terminal()
        .and_then(|t| pty::window_size(t).ok())
        .filter(|s| s.cols > 0 && s.rows > 0)
        .unwrap_or(WindowSize::new(80, 24))
}

/// A pty whose slave starts with the caller's terminal settings and window size.
fn open_pty(terminal: BorrowedFd<'static>) -> std::io::Result<PtyEnds> {
    let Pty { master, slave } = pty::open()?;
    if let Ok(mode) = pty::mode(terminal) {
        let _ = pty::set_mode(slave.as_fd(), &mode);
    }
    let size = terminal_size();
    pty::set_window_size(master.as_fd(), size)?;
    stream::set_nonblocking(master.as_fd())?;
    Ok(PtyEnds {
        master,
        slave: Some(slave),
        terminal,
        size,
    })
}
