//! The supervisor's relay, when the command has plumbing (exec/plumbing.rs): what the caller
//! types goes to the pty's master (or the command's stdin pipe), what the command writes goes
//! to the caller's terminal and jitrun's stdout and stderr, and the recording, if any, sees
//! every byte on the way. It runs inside the supervisor's loop (supervise.rs): one `poll` on
//! the descriptors and on the supervisor's signals (a signalfd) per turn.
//!
//! The caller's terminal, while the command runs on a pty: in raw mode while jitrun is in its
//! foreground (every key goes through, Ctrl-C and Ctrl-Z included, and the pty's own line
//! discipline turns them into the command's signals); back as it was on every way out (the
//! end, a refusal after the start, a stop for job control, and — through the copy the
//! watchdog keeps — a supervisor that vanished). Its window size follows SIGWINCH onto the
//! pty (and into the recording). When the command stops (Ctrl-Z), the monitor says so: the
//! terminal is given back as it was and jitrun's process group is stopped with the same
//! signal, as sudo does, so that the caller's shell sees the job stop; continued in the
//! foreground (`fg`) the terminal goes raw again and the command continues; in the background
//! (`bg`) the command continues and what the caller types is left to her shell.
//!
//! Descriptors jitrun made (the master, its pipe ends) are non-blocking; the caller's own
//! (fds 0–2, shared with her shell) are never made so: they are read only when `poll` says
//! so, and written at most `PIPE_BUF` bytes at a time when they are pipes or sockets.

use super::monitor::{Message, Monitor};
use super::plumbing::Plumbing;
use crate::audit::EndReason;
use crate::recording::{Recording, Report};
use crate::system::pty::{self, Mode, WindowSize};
use crate::system::stream::{self, Interest, Signals};
use crate::system::{fs, signals, term};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// The most one read takes: a recorded command's output pipe holds 1 MiB (plumbing.rs), and
/// each read is one call of the recorder, whose last session.io chunk may not be full.
const BUF: usize = 256 * 1024;
const PIPE_BUF: usize = 4096;

/// One end of a channel.
enum End {
    /// One of jitrun's fds 0–2 (the caller's).
    Std(i32),
    /// A descriptor jitrun made (the master is shared by the two pty channels).
    Own(Rc<OwnedFd>),
}

impl End {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            End::Std(n) => fs::std_fd(*n),
            End::Own(o) => o.as_fd(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The caller's terminal to the pty.
    Typed,
    /// The pty to the caller's terminal.
    Shown,
    /// The command's stdout or stderr pipe to jitrun's.
    Written,
    /// jitrun's stdin to the command's stdin pipe.
    Fed,
}

struct Channel {
    flow: Flow,
    from: Option<End>,
    to: Option<End>,
    buf: Vec<u8>,
    at: usize,
    /// Nothing more comes from `from`.
    eof: bool,
    /// Most bytes per write to `to`.
    chunk: usize,
}

impl Channel {
    fn new(flow: Flow, from: End, to: End) -> Channel {
        let chunk = match &to {
            End::Std(n) if shared_pipe(*n) => PIPE_BUF,
            _ => BUF,
        };
        Channel {
            flow,
            from: Some(from),
            to: Some(to),
            buf: Vec::new(),
            at: 0,
            eof: false,
            chunk,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    fn wants_write(&self) -> bool {
        self.to.is_some() && !self.pending().is_empty()
    }

    fn is_input(&self) -> bool {
        matches!(self.flow, Flow::Typed | Flow::Fed)
    }

    /// Write what `poll` says fits (one call); a sink that is gone discards what follows.
    fn write_some(&mut self) {
        let Some(to) = &self.to else { return };
        let n = self.pending().len().min(self.chunk);
        match stream::write(to.fd(), &self.buf[self.at..self.at + n]) {
            Ok(n) => {
                self.at += n;
                if self.at == self.buf.len() {
                    self.buf.clear();
                    self.at = 0;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                // The reader is gone (EPIPE), or the terminal hung up: drop what is pending.
                self.to = None;
                self.buf.clear();
                self.at = 0;
                if self.is_input() {
                    self.eof = true; // the command no longer reads: stop taking input for it
                }
            }
        }
    }

    /// What remains is written, waiting as long as the sink needs (at the end of the run).
    fn flush(&mut self) {
        while self.wants_write() {
            let to = self.to.as_ref().expect("checked");
            let ready = stream::poll(
                &[Interest {
                    fd: to.fd(),
                    read: false,
                    write: true,
                }],
                Duration::from_secs(3600),
            );
            if ready.is_err() {
                return;
            }
            self.write_some();
        }
    }
}

/// Whether jitrun's fd `n` is a pipe or socket (shared: written `PIPE_BUF` at a time, so
/// that a write `poll` allowed never blocks).
fn shared_pipe(n: i32) -> bool {
    fs::fstat(fs::std_fd(n))
        .is_ok_and(|st| matches!(st.file_type(), libc::S_IFIFO | libc::S_IFSOCK))
}

/// The caller's terminal while the command runs on a pty.
struct CallerTerminal {
    fd: BorrowedFd<'static>,
    /// fd 0 is the terminal: what she types is relayed.
    input: bool,
    /// jitrun's process group.
    pgrp: libc::pid_t,
    saved: Option<Mode>,
    raw: bool,
    reading: bool,
    size: WindowSize,
}

impl CallerTerminal {
    fn foreground(&self) -> bool {
        pty::foreground(self.fd).ok() == Some(self.pgrp)
    }

    fn make_raw(&mut self) {
        if let (Some(saved), false) = (&self.saved, self.raw) {
            self.raw = pty::set_mode(self.fd, &pty::raw(saved)).is_ok();
        }
    }

    fn restore(&mut self) {
        if let (Some(saved), true) = (&self.saved, self.raw) {
            let _ = pty::set_mode(self.fd, saved);
            self.raw = false;
        }
    }

    /// In the foreground: raw, and what she types goes to the command. In the background:
    /// as it was, and her typing is her shell's.
    fn settle(&mut self) {
        if self.foreground() {
            if self.input {
                self.make_raw();
            }
            self.reading = self.input;
        } else {
            self.restore();
            self.reading = false;
        }
    }
}

impl Drop for CallerTerminal {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The caller's terminal settings as they were, for the watchdog to put back should the
/// supervisor vanish while the terminal is raw (its own descriptor of the terminal: the
/// watchdog points its fds 0–2 at /dev/null).
pub struct TerminalRestore {
    fd: OwnedFd,
    mode: Mode,
}

impl TerminalRestore {
    pub fn restore(&self) {
        let _ = pty::set_mode(self.fd.as_fd(), &self.mode);
    }
}

struct PtySide {
    master: Rc<OwnedFd>,
    monitor: Monitor,
    tty: CallerTerminal,
}

pub struct Relay<'r> {
    channels: Vec<Channel>,
    signals: Signals,
    command: libc::pid_t,
    pty: Option<PtySide>,
    recording: Option<Recording<'r>>,
    /// Why the command must end (the recording asked), once.
    end: Option<EndReason>,
    end_told: bool,
    /// What one read takes (allocated once, not per turn).
    scratch: Vec<u8>,
}

impl<'r> Relay<'r> {
    /// The relay of a command forked with `plumbing` (the child's ends already closed).
    pub fn new(
        plumbing: Plumbing,
        monitor: Option<Monitor>,
        command: libc::pid_t,
        recording: Option<Recording<'r>>,
        signals: &[libc::c_int],
    ) -> std::io::Result<Relay<'r>> {
        let Plumbing { pty, pipes, .. } = plumbing;
        let mut channels = Vec::new();
        let pty = match (pty, monitor) {
            (Some(ends), Some(monitor)) => {
                let master = Rc::new(ends.master);
                let input = term::isatty(fs::std_fd(0));
                if input {
                    channels.push(Channel::new(
                        Flow::Typed,
                        End::Std(0),
                        End::Own(master.clone()),
                    ));
                }
                let shown = [1, 2, 0]
                    .into_iter()
                    .find(|&n| term::isatty(fs::std_fd(n)))
                    .unwrap_or(2);
                channels.push(Channel::new(
                    Flow::Shown,
                    End::Own(master.clone()),
                    End::Std(shown),
                ));
                let tty = CallerTerminal {
                    fd: ends.terminal,
                    input,
                    pgrp: crate::system::process::getpgrp(),
                    saved: pty::mode(ends.terminal).ok(),
                    raw: false,
                    reading: false,
                    size: ends.size,
                };
                Some(PtySide {
                    master,
                    monitor,
                    tty,
                })
            }
            _ => None,
        };
        let [stdin, stdout, stderr] = pipes;
        if let Some(p) = stdin {
            channels.push(Channel::new(Flow::Fed, End::Std(0), End::Own(Rc::new(p))));
        }
        for (p, n) in [(stdout, 1), (stderr, 2)] {
            if let Some(p) = p {
                channels.push(Channel::new(
                    Flow::Written,
                    End::Own(Rc::new(p)),
                    End::Std(n),
                ));
            }
        }
        Ok(Relay {
            channels,
            signals: Signals::new(signals)?,
            command,
            pty,
            recording,
            end: None,
            end_told: false,
            scratch: vec![0u8; BUF],
        })
    }

    /// The descriptors the relay holds (the watchdog closes its copies: it must not keep the
    /// command's stdin open, nor the monitor waiting).
    pub fn descriptors(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        let mut fds = vec![self.signals.as_fd().as_raw_fd()];
        for c in &self.channels {
            for end in [&c.from, &c.to].into_iter().flatten() {
                if let End::Own(o) = end {
                    fds.push(o.as_raw_fd());
                }
            }
        }
        if let Some(p) = &self.pty {
            fds.extend(p.monitor.descriptors());
        }
        fds
    }

    /// What the watchdog needs to put the caller's terminal back.
    pub fn restore_point(&self) -> Option<TerminalRestore> {
        let t = &self.pty.as_ref()?.tty;
        Some(TerminalRestore {
            fd: stream::dup_cloexec(t.fd).ok()?,
            mode: t.saved.clone()?,
        })
    }

    /// `elevate.start` is logged and the command is about to start: the recording's header
    /// goes out, and the caller's terminal goes raw if jitrun is in its foreground.
    pub fn begin(&mut self) {
        if let Some(r) = self.recording.as_mut() {
            r.release();
        }
        if let Some(p) = self.pty.as_mut() {
            p.tty.settle();
        }
    }

    fn note(&mut self, end: Option<EndReason>) {
        if self.end.is_none() {
            self.end = end;
        }
    }

    /// Record what passed through a channel.
    fn record(&mut self, flow: Flow, bytes: &[u8]) {
        let Some(r) = self.recording.as_mut() else {
            return;
        };
        let end = match flow {
            Flow::Shown | Flow::Written => r.output(bytes),
            Flow::Typed | Flow::Fed if r.input => r.typed(bytes),
            Flow::Typed | Flow::Fed => None,
        };
        self.note(end);
    }

    fn wants_read(&self, c: &Channel) -> bool {
        let typing = c.flow != Flow::Typed || self.pty.as_ref().is_some_and(|p| p.tty.reading);
        c.from.is_some() && !c.eof && c.pending().is_empty() && typing
    }

    /// One read from channel `i`'s source.
    fn read_some(&mut self, i: usize, scratch: &mut [u8]) {
        let c = &mut self.channels[i];
        let Some(from) = &c.from else { return };
        let n = match stream::read(from.fd(), scratch) {
            Ok(0) => {
                c.eof = true;
                0
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                if c.flow == Flow::Typed && e.raw_os_error() == Some(libc::EIO) {
                    // Read from the background: her shell has the terminal now.
                    if let Some(p) = self.pty.as_mut() {
                        p.tty.reading = false;
                    }
                    return;
                }
                c.eof = true; // EIO on the master: every copy of the slave is closed
                0
            }
        };
        let flow = c.flow;
        if n > 0 {
            if c.to.is_some() {
                c.buf.extend_from_slice(&scratch[..n]);
            }
            self.record(flow, &scratch[..n]);
        }
        let c = &mut self.channels[i];
        if c.eof && c.flow == Flow::Fed && c.pending().is_empty() {
            c.to = None; // the command sees the end of its stdin
        }
    }

    /// One turn: wait up to `timeout` for input, output room, a signal or the monitor, and
    /// do what is ready. Some(reason) once, when the recording needs the command ended.
    pub fn wait(&mut self, timeout: Duration) -> Option<EndReason> {
        let (set, at) = self.interests();
        let ready = match stream::poll(&set, timeout) {
            Ok(r) => r,
            Err(_) => {
                std::thread::sleep(timeout.min(Duration::from_millis(100)));
                return self.take_end();
            }
        };
        drop(set);
        if ready[0].readable {
            self.on_signals();
        }
        if self.pty.is_some() && ready[1].readable {
            self.on_monitor();
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for (i, (read, write)) in at.into_iter().enumerate() {
            if write.is_some_and(|w| ready[w].writable) {
                self.channels[i].write_some();
            }
            if read.is_some_and(|r| ready[r].readable) {
                self.read_some(i, &mut scratch);
            }
        }
        self.scratch = scratch;
        self.take_end()
    }

    /// What to poll: the signals, the monitor's messages, then per channel its source (when
    /// its buffer is empty) and its sink (when it is not), with their indices in the set.
    #[allow(clippy::type_complexity)]
    fn interests(&self) -> (Vec<Interest<'_>>, Vec<(Option<usize>, Option<usize>)>) {
        let read = |fd| Interest {
            fd,
            read: true,
            write: false,
        };
        let mut set = vec![read(self.signals.as_fd())];
        if let Some(p) = &self.pty {
            set.push(read(p.monitor.status.as_fd()));
        }
        let mut at = Vec::with_capacity(self.channels.len());
        for c in &self.channels {
            let source = self.wants_read(c).then(|| {
                set.push(read(c.from.as_ref().expect("wants_read").fd()));
                set.len() - 1
            });
            let sink = c.wants_write().then(|| {
                set.push(Interest {
                    fd: c.to.as_ref().expect("wants_write").fd(),
                    read: false,
                    write: true,
                });
                set.len() - 1
            });
            at.push((source, sink));
        }
        (set, at)
    }

    fn take_end(&mut self) -> Option<EndReason> {
        if self.end_told {
            return None;
        }
        self.end_told = self.end.is_some();
        self.end
    }

    fn on_signals(&mut self) {
        while let Ok(Some(sig)) = self.signals.next() {
            match sig {
                libc::SIGCHLD => {}
                libc::SIGWINCH if self.pty.is_some() => self.sync_size(),
                libc::SIGCONT => {
                    if let Some(p) = self.pty.as_mut() {
                        p.tty.settle();
                        self.sync_size();
                    }
                }
                sig => {
                    let _ = signals::kill(self.command, sig);
                }
            }
        }
    }

    /// The caller's terminal was resized: so is the pty (its foreground group gets SIGWINCH),
    /// and the recording says so.
    fn sync_size(&mut self) {
        let Some(p) = self.pty.as_mut() else { return };
        let Ok(size) = pty::window_size(p.tty.fd) else {
            return;
        };
        if size == p.tty.size || size.cols == 0 || size.rows == 0 {
            return;
        }
        p.tty.size = size;
        let _ = pty::set_window_size(p.master.as_fd(), size);
        let end = self
            .recording
            .as_mut()
            .and_then(|r| r.resize(size.cols, size.rows));
        self.note(end);
    }

    fn on_monitor(&mut self) {
        let Some(p) = &self.pty else { return };
        for m in p.monitor.messages() {
            if let Message::Stopped(sig) = m {
                self.stop_job(sig);
            }
        }
    }

    /// The command stopped. SIGTTIN/SIGTTOU while jitrun has the caller's terminal: continue
    /// it at once. Otherwise: show what it wrote, give the terminal back as it was, stop
    /// jitrun's process group with the same signal (the shell sees the job stop), and once
    /// continued settle the terminal again and continue the command.
    fn stop_job(&mut self, sig: libc::c_int) {
        let Some(p) = self.pty.as_mut() else { return };
        if matches!(sig, libc::SIGTTIN | libc::SIGTTOU) && p.tty.foreground() {
            p.monitor.resume();
            return;
        }
        for c in self.channels.iter_mut().filter(|c| c.flow == Flow::Shown) {
            c.flush();
        }
        let p = self.pty.as_mut().expect("checked");
        p.tty.restore();
        let sig = if sig == libc::SIGSTOP {
            libc::SIGTSTP
        } else {
            sig
        };
        let pgrp = p.tty.pgrp;
        let _ = stream::with_unblocked(sig, || signals::kill(-pgrp, sig));
        p.tty.settle();
        self.sync_size();
        if let Some(p) = &self.pty {
            p.monitor.resume();
        }
    }

    /// The command has ended and everything it left was killed: read what it wrote and is
    /// still on its way (recorded); stop taking input. Waits for the end of each output (at
    /// most a few seconds without a byte, should something outside the run still hold it).
    pub fn drain(&mut self) {
        for c in self.channels.iter_mut().filter(|c| c.is_input()) {
            c.from = None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        self.drain_into(&mut scratch);
        self.scratch = scratch;
    }

    fn drain_into(&mut self, scratch: &mut [u8]) {
        loop {
            let open: Vec<usize> = (0..self.channels.len())
                .filter(|&i| {
                    let c = &self.channels[i];
                    !c.is_input() && c.from.is_some() && !c.eof
                })
                .collect();
            if open.is_empty() {
                return;
            }
            let set: Vec<Interest<'_>> = open
                .iter()
                .map(|&i| Interest {
                    fd: self.channels[i].from.as_ref().expect("open").fd(),
                    read: true,
                    write: false,
                })
                .collect();
            let ready = stream::poll(&set, Duration::from_secs(3)).unwrap_or_default();
            drop(set);
            if !ready.iter().any(|r| r.readable) {
                return; // held open by something jitrun could not end: stop waiting
            }
            for (k, &i) in open.iter().enumerate() {
                if ready[k].readable {
                    // The buffer grows here: what is left is bounded by the kernel's buffers.
                    self.read_unbounded(i, scratch);
                }
            }
        }
    }

    /// [`Relay::read_some`] without waiting for the channel's buffer to empty.
    fn read_unbounded(&mut self, i: usize, scratch: &mut [u8]) {
        let c = &mut self.channels[i];
        let Some(from) = &c.from else { return };
        match stream::read(from.fd(), scratch) {
            Ok(0) => c.eof = true,
            Ok(n) => {
                if c.to.is_some() {
                    c.buf.extend_from_slice(&scratch[..n]);
                }
                let flow = c.flow;
                self.record(flow, &scratch[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => c.eof = true,
        }
    }

    /// The recording's end: the exit status, the last chunk, the summary.
    pub fn finish_recording(&mut self, exit_status: i32) -> Option<Report> {
        self.recording.take().map(|r| r.finish(exit_status))
    }

    /// What is left once `elevate.end` is logged: the output still to show and the terminal
    /// to put back.
    pub fn into_tail(self) -> Tail {
        let Relay { channels, pty, .. } = self;
        Tail {
            channels: channels.into_iter().filter(|c| !c.is_input()).collect(),
            terminal: pty.map(|p| p.tty),
        }
    }
}

/// The end of a relayed run: output still on its way to the caller, and her terminal.
pub struct Tail {
    channels: Vec<Channel>,
    terminal: Option<CallerTerminal>,
}

impl Tail {
    /// Write what the command wrote last, then put the caller's terminal back as it was.
    pub fn finish(mut self) {
        for c in &mut self.channels {
            c.flush();
        }
        if let Some(t) = self.terminal.as_mut() {
            t.restore();
        }
    }
}
