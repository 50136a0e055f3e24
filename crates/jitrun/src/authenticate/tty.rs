//! The PAM conversation on the controlling terminal (`/dev/tty`).
//!
//! Secrets are read with echo off and with ISIG off, so Ctrl-C arrives as a byte that
//! cancels the prompt instead of killing jitrun with the terminal left silent. The terminal
//! state is restored before the answer is handed to PAM. Pending type-ahead is discarded
//! (TCSAFLUSH) so nothing typed before the prompt is taken as the password.

use crate::system::fs;
use crate::system::pam::{Converse, Secret};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::cell::Cell;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// Longest answer read (bytes); longer input is refused, not truncated.
const MAX_ANSWER: usize = 1024;
/// How long a prompt waits (sudo's `passwd_timeout` is 5 minutes).
const PROMPT_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Conversation {
    user: String,
    tty: Option<std::fs::File>,
    /// Set when a prompt got no answer (no terminal, end of input, Ctrl-C, time-out): modules
    /// report that in their own words (pam_unix says "Authentication token manipulation
    /// error"), so the caller learns it here.
    unanswered: Rc<Cell<bool>>,
}

fn open_tty() -> Option<std::fs::File> {
    let path = CString::new("/dev/tty").expect("no NUL");
    let fd: OwnedFd = fs::open(&path, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC).ok()?;
    Some(std::fs::File::from(fd))
}

/// Print a line on the terminal (nothing when there is none).
pub fn say(text: &str) {
    if let Some(mut t) = open_tty() {
        let _ = writeln!(t, "{text}");
    }
}

impl Conversation {
    pub fn new(user: &str, unanswered: Rc<Cell<bool>>) -> Conversation {
        Conversation {
            user: user.to_string(),
            tty: open_tty(),
            unanswered,
        }
    }

    /// pam_unix's generic "Password: " becomes a prompt that names the user, like sudo's.
    fn prompt_text(&self, pam_text: &str) -> String {
        if pam_text.trim_end() == "Password:" {
            format!("[jitrun] password for {}: ", self.user)
        } else {
            pam_text.to_string()
        }
    }
}

/// Read one line from `tty` (without the newline); `None` on end of input, time-out, Ctrl-C
/// (a byte here, ISIG being off), or an over-long answer.
fn read_line(tty: &mut std::fs::File) -> Option<Secret> {
    use std::io::Read;
    let mut buf = Secret::with_capacity(MAX_ANSWER);
    let mut byte = [0u8; 1];
    loop {
        match fs::poll_readable(tty.as_fd(), PROMPT_TIMEOUT) {
            Ok(true) => {}
            _ => return None,
        }
        match tty.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
        match byte[0] {
            b'\n' | b'\r' => return Some(buf),
            0x03 | 0x04 | 0x1a | 0x1c => return None, // ^C ^D ^Z ^\ cancel
            b => {
                if !buf.push(b) {
                    return None;
                }
            }
        }
    }
}

impl Converse for Conversation {
    fn prompt(&mut self, text: &str, echo: bool) -> Option<Secret> {
        let answer = self.ask(text, echo);
        if answer.is_none() {
            self.unanswered.set(true);
        }
        answer
    }

    fn show(&mut self, text: &str, _error: bool) {
        if let Some(t) = self.tty.as_mut() {
            let _ = writeln!(t, "{text}");
        }
    }
}

impl Conversation {
    fn ask(&mut self, text: &str, echo: bool) -> Option<Secret> {
        let prompt = self.prompt_text(text);
        let tty = self.tty.as_mut()?;
        let saved: Termios = termios::tcgetattr(tty.as_fd()).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ISIG);
        if !echo {
            quiet
                .local_flags
                .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK);
            quiet.local_flags.insert(LocalFlags::ECHONL);
        }
        termios::tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet).ok()?;
        let answer = (|| {
            tty.write_all(prompt.as_bytes()).ok()?;
            tty.flush().ok()?;
            read_line(tty)
        })();
        let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &saved);
        if answer.is_none() {
            let _ = tty.write_all(b"\n");
        }
        answer
    }
}
