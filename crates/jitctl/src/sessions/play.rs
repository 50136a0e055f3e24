//! `jitctl sessions play ID|FILE [--speed N] [--idle-limit S] [--follow]`: the recording's
//! output on this terminal, with its timing.
//!
//! On a terminal, keys are read while it plays (q or Ctrl-C stops, space pauses): the
//! terminal is put in a mode without echo and line editing meanwhile, and on the way out it
//! is restored and whatever arrived on it is discarded (TCSAFLUSH). A recording can hold
//! escape sequences that make a terminal answer (a size or title report); those answers land
//! in the input, and must not reach the shell that started `jitctl` as typed commands.
use super::{read_error, recording_path};
use crate::cli::SessionsPlayArgs;
use crate::error::{CliError, Result};
use jit_session::cast::{parse_event, parse_header, EventKind, TRUNCATED_MARKER};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// How long `--follow` waits between looks at a file that has not grown.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn run(args: &SessionsPlayArgs) -> Result<i32> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err("--speed must be a number above 0, e.g. 2 or 0.5".into());
    }
    if args.idle_limit.is_some_and(|l| !(l.is_finite() && l > 0.0)) {
        return Err("--idle-limit must be a number of seconds above 0".into());
    }
    let path = recording_path(&args.session, &args.dir)?;
    let file = File::open(&path).map_err(|e| read_error("cannot read", &path, &e))?;
    let mut lines = Lines {
        reader: BufReader::new(file),
        pending: Vec::new(),
        number: 0,
    };
    let mut keys = Keys::open();
    let header = loop {
        match lines
            .next()
            .map_err(|e| read_error("cannot read", &path, &e))?
        {
            Some(line) => break line,
            None if args.follow => {
                if keys.wait(FOLLOW_POLL) == Key::Quit {
                    return Ok(0);
                }
            }
            None => return Err(CliError(format!("{}: empty file", path.display()))),
        }
    };
    parse_header(&header).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    let outcome = play(&mut lines, &mut keys, args)
        .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    drop(keys);
    eprintln!("jitctl: {}", outcome.describe());
    Ok(0)
}

enum Outcome {
    Ended { status: String, truncated: bool },
    NoEnd { truncated: bool },
    Stopped,
    Removed,
}

impl Outcome {
    fn describe(&self) -> String {
        let cut = |t: &bool| {
            if *t {
                " (truncated at record.max_bytes)"
            } else {
                ""
            }
        };
        match self {
            Outcome::Ended { status, truncated } => {
                format!("end of the recording: exit status {status}{}", cut(truncated))
            }
            Outcome::NoEnd { truncated } => format!(
                "the recording has no end yet{} (still being recorded — --follow watches it — or jitrun was stopped)",
                cut(truncated)
            ),
            Outcome::Stopped => "stopped".into(),
            Outcome::Removed => "the recording was removed while it was followed".into(),
        }
    }
}

fn play(lines: &mut Lines, keys: &mut Keys, args: &SessionsPlayArgs) -> io::Result<Outcome> {
    let mut out = io::stdout().lock();
    let mut previous = 0.0;
    let mut truncated = false;
    loop {
        let Some(line) = lines.next()? else {
            if !args.follow {
                return Ok(Outcome::NoEnd { truncated });
            }
            if lines.reader.get_ref().metadata()?.nlink() == 0 {
                return Ok(Outcome::Removed);
            }
            if keys.wait(FOLLOW_POLL) == Key::Quit {
                return Ok(Outcome::Stopped);
            }
            continue;
        };
        let event = parse_event(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {e}", lines.number),
            )
        })?;
        // --follow shows what is already there at once, then each event as it arrives.
        if !args.follow {
            let mut pause = (event.time - previous).max(0.0);
            if let Some(limit) = args.idle_limit {
                pause = pause.min(limit);
            }
            if keys.wait(Duration::from_secs_f64(pause / args.speed)) == Key::Quit {
                return Ok(Outcome::Stopped);
            }
        }
        previous = event.time;
        match event.kind {
            EventKind::Output(text) => {
                let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                if let Err(e) = written {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(Outcome::Stopped);
                    }
                    return Err(e);
                }
            }
            EventKind::Marker(m) if m.starts_with(TRUNCATED_MARKER) => truncated = true,
            EventKind::Exit(status) => return Ok(Outcome::Ended { status, truncated }),
            _ => {}
        }
    }
}

/// Whole lines of a file that may still be growing: a last line without its newline waits.
struct Lines {
    reader: BufReader<File>,
    pending: Vec<u8>,
    number: usize,
}

impl Lines {
    fn next(&mut self) -> io::Result<Option<String>> {
        self.reader.read_until(b'\n', &mut self.pending)?;
        if self.pending.last() != Some(&b'\n') {
            return Ok(None);
        }
        self.pending.pop();
        self.number += 1;
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Ok(Some(line))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Key {
    Go,
    Quit,
}

/// The controlling keys, when standard input is a terminal.
struct Keys {
    saved: Option<Termios>,
    paused: bool,
}

impl Keys {
    /// On a terminal: no echo, no line editing, no signal keys (Ctrl-C is read as a key, so
    /// the terminal is always restored).
    fn open() -> Keys {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Keys {
                saved: None,
                paused: false,
            };
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(orig) = &saved {
            let mut raw = orig.clone();
            raw.local_flags
                .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        Keys {
            saved,
            paused: false,
        }
    }

    /// Let `pause` pass (longer while paused), reading keys meanwhile.
    fn wait(&mut self, pause: Duration) -> Key {
        if self.saved.is_none() {
            std::thread::sleep(pause);
            return Key::Go;
        }
        let until = Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() && !self.paused {
                return Key::Go;
            }
            let timeout = if self.paused {
                PollTimeout::NONE
            } else {
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            };
            let stdin = io::stdin();
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            if !matches!(poll(&mut fds, timeout), Ok(n) if n > 0) {
                continue;
            }
            let mut byte = [0u8; 1];
            match stdin.lock().read(&mut byte) {
                Ok(0) | Err(_) => return Key::Quit,
                Ok(_) => match byte[0] {
                    b'q' | 0x03 | 0x04 => return Key::Quit,
                    b' ' => self.paused = !self.paused,
                    _ => {}
                },
            }
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            // TCSAFLUSH: what the terminal answered to the recording's queries is discarded.
            let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSAFLUSH, orig);
        }
    }
}
