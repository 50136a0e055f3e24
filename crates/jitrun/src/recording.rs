//! Step 8b, the session recording of a rule that records (`record = true`, or the settings'
//! `record.default`): the asciicast v2 file `/var/log/jitrun/sessions/<session id>.cast`, and
//! the same lines as `session.io` events through the audit path (crate `jit-session` writes
//! both; this module opens the file, feeds the recorder and says what to do when it fails).
//!
//! The file is created by root, mode 0600, `O_CREAT | O_EXCL | O_NOFOLLOW`, in a directory
//! reached through the trusted walk (every component root's, writable by root alone) that is
//! itself root's alone (0700): nobody else can read a recording, replace the file with a link
//! to one jitrun would then write into, or make jitrun append to a file of theirs. A rule
//! that records and cannot (the directory missing or not root's alone, the disk full) does
//! not run: the refusal is a `policy.error` with `jitrun.deny_code = "recording_failed"`.
//!
//! While the command runs, the relay (exec/relay.rs) hands every read to [`Recording`];
//! writing the file failing, or a `session.io` event that can be neither sent nor spooled,
//! ends the command (`record.on_failure = "end"`, the default: `recording_failed`) or is
//! only noted (`"continue"`); reaching `record.max_bytes` ends it (`recording_limit`) or
//! truncates the recording, as `record.on_max_bytes` says.

use crate::audit::EndReason;
use crate::paths;
use crate::refusal::Refusal;
use crate::system::fs;
use crate::trusted_files;
use jit_audit::session_io::SessionIo;
use jit_audit::{Event, Framer};
use jit_policy::{OnFailure, OnMaxBytes, RecordSettings};
use jit_session::{Header, OnLimit, Options, Recorder, Step, Summary};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Where a recording goes, and what it records.
pub struct Plan<'a> {
    pub header: Header,
    /// What the `session.io` events say about the session.
    pub session: SessionIo,
    pub settings: &'a RecordSettings,
    /// The audit sink's framer: chunks are sized to fit its datagrams.
    pub framer: Framer,
}

/// Sends one `session.io` event: sent, else spooled; an error when neither.
pub type Send<'a> = &'a dyn Fn(&Event) -> Result<(), String>;

/// A recording in progress.
pub struct Recording<'a> {
    rec: Option<Recorder<File>>,
    send: Send<'a>,
    /// `session.io` events made before `elevate.start` was logged (the header): sent with
    /// [`Recording::release`], so that the start comes first in the trail.
    held: Vec<Event>,
    released: bool,
    /// Whether typed input is recorded (`record_input`).
    pub input: bool,
    pub path: String,
    on_failure: OnFailure,
    on_limit: OnMaxBytes,
    started: Instant,
    /// The first failure: writing the file, or an event neither sent nor spooled.
    failure: Option<String>,
    unsent: u64,
}

/// What `elevate.end` says about a finished recording.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: String,
    pub summary: Summary,
    /// Why the recording is not whole, or its copy off the host is not, when one is not.
    pub error: Option<String>,
}

fn failed(message: String) -> Refusal {
    Refusal::config("recording_failed", message)
}

impl<'a> Recording<'a> {
    /// Create the file and write the recording's header, or refuse the run.
    pub fn start(plan: Plan<'_>, input: bool, send: Send<'a>) -> Result<Recording<'a>, Refusal> {
        let rule = plan.header.session.rule.clone();
        let why = |what: String| {
            failed(format!("rule \"{rule}\" records its sessions, and {what}; nothing runs unrecorded (ask an administrator)"))
                .with_rule(Some(rule.clone()))
        };
        let name = format!("{}.cast", plan.session.session_id);
        let path = format!("{}/{name}", paths::SESSIONS_DIR);
        let file = create(&name).map_err(&why)?;
        let options = Options {
            max_bytes: plan.settings.max_bytes,
            on_limit: match plan.settings.on_max_bytes {
                OnMaxBytes::End => OnLimit::End,
                OnMaxBytes::Truncate => OnLimit::Truncate,
            },
            framer: plan.framer,
        };
        let (rec, step) = match Recorder::start(file, &plan.header, plan.session, options) {
            Ok(r) => r,
            Err(e) => {
                remove(&name);
                return Err(why(format!("the recording {path} cannot be started: {e}")));
            }
        };
        Ok(Recording {
            rec: Some(rec),
            send,
            held: step.chunks,
            released: false,
            input,
            path,
            on_failure: plan.settings.on_failure,
            on_limit: plan.settings.on_max_bytes,
            started: Instant::now(),
            failure: None,
            unsent: 0,
        })
    }

    /// `elevate.start` is logged: send the header's event, and from now on each one at once.
    /// Times in the recording count from here (the command is about to start).
    pub fn release(&mut self) {
        self.released = true;
        self.started = Instant::now();
        for e in std::mem::take(&mut self.held) {
            self.deliver(&e);
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the command wrote. Some(reason) when the command must now end.
    pub fn output(&mut self, bytes: &[u8]) -> Option<EndReason> {
        let at = self.elapsed();
        let step = self.rec.as_mut()?.output(at, bytes);
        self.handle(step)
    }

    /// What was typed to the command (only called when the rule records input).
    pub fn typed(&mut self, bytes: &[u8]) -> Option<EndReason> {
        let at = self.elapsed();
        let step = self.rec.as_mut()?.input(at, bytes);
        self.handle(step)
    }

    /// The terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16) -> Option<EndReason> {
        let at = self.elapsed();
        let step = self.rec.as_mut()?.resize(at, cols, rows);
        self.handle(step)
    }

    fn deliver(&mut self, e: &Event) {
        if let Err(why) = (self.send)(e) {
            self.unsent += 1;
            self.failure.get_or_insert_with(|| {
                format!("a session.io event could be neither sent nor spooled: {why}")
            });
        }
    }

    fn handle(&mut self, step: Step) -> Option<EndReason> {
        if self.released {
            for e in &step.chunks {
                self.deliver(e);
            }
        } else {
            self.held.extend(step.chunks);
        }
        if let Some(e) = step.write_error {
            self.failure
                .get_or_insert_with(|| format!("writing {} failed: {e}", self.path));
        }
        if self.failure.is_some() && self.on_failure == OnFailure::End {
            return Some(EndReason::RecordingFailed);
        }
        if step.limit_reached && self.on_limit == OnMaxBytes::End {
            return Some(EndReason::RecordingLimit);
        }
        None
    }

    /// The end: the exit event (`exit_status` as jitrun exits: 128 + N for a signal), the
    /// last chunk, the file synced and closed.
    pub fn finish(mut self, exit_status: i32) -> Report {
        let at = self.elapsed();
        let rec = self.rec.take().expect("a recording is finished once");
        let done = rec.finish(at, exit_status);
        let _ = self.handle(done.step);
        if done.summary.file_complete {
            if let Err(e) = done.out.sync_data() {
                self.failure
                    .get_or_insert_with(|| format!("syncing {} failed: {e}", self.path));
            }
        }
        let error = match (self.failure.take(), self.unsent) {
            (Some(e), 0) => Some(e),
            (Some(e), n) => Some(format!(
                "{e} ({n} session.io events were neither sent nor spooled)"
            )),
            (None, _) => None,
        };
        Report {
            path: std::mem::take(&mut self.path),
            summary: done.summary,
            error,
        }
    }
}

impl Drop for Recording<'_> {
    /// Not finished: the run was refused before the command started (nothing of it is left
    /// but the refusal), or the command was killed on a way out that has no status.
    fn drop(&mut self) {
        let Some(rec) = self.rec.take() else { return };
        if !self.released {
            drop(rec);
            remove(self.path.rsplit('/').next().unwrap_or_default());
            return;
        }
        let at = self.elapsed();
        let done = rec.finish(at, 128 + libc::SIGKILL);
        for e in &done.step.chunks {
            self.deliver(e);
        }
    }
}

/// The sessions directory, checked: reached through the trusted walk and root's alone (0700).
fn sessions_dir() -> Result<std::os::fd::OwnedFd, String> {
    let dir = paths::SESSIONS_DIR;
    let fd = trusted_files::walk_dir(dir)
        .map_err(|r| r.message)?
        .ok_or_else(|| format!("{dir} does not exist (the package creates it: root, mode 0700)"))?;
    let st = fs::fstat(fd.as_fd()).map_err(|e| format!("{dir}: {e}"))?;
    if st.mode & 0o077 != 0 {
        return Err(format!(
            "{dir} is mode {:04o}; recordings are root's alone: chmod 0700 {dir}",
            st.mode & 0o7777
        ));
    }
    Ok(fd)
}

/// Create `name` in the sessions directory: a new file (never an existing one, never through
/// a link), root's, mode 0600.
fn create(name: &str) -> Result<File, String> {
    let dir = sessions_dir()?;
    let path = format!("{}/{name}", paths::SESSIONS_DIR);
    let c = CString::new(name).map_err(|_| format!("{path}: NUL in the name"))?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let fd = fs::openat(dir.as_fd(), &c, flags, 0o600)
        .map_err(|e| format!("cannot create {path}: {e}"))?;
    let st = fs::fstat(fd.as_fd()).map_err(|e| format!("{path}: {e}"))?;
    if !st.is_file() || st.uid != 0 || st.nlink != 1 || st.mode & 0o077 != 0 {
        return Err(format!("{path} is not a new root-only file"));
    }
    Ok(File::from(fd))
}

/// Remove a recording that could not be started (best effort).
fn remove(name: &str) {
    if let (Ok(dir), Ok(c)) = (sessions_dir(), CString::new(name)) {
        let _ = fs::unlinkat(dir.as_fd(), &c);
    }
}

/// The recording's fields of `elevate.start`.
pub fn start_fields(ev: &mut Event, path: &str, input: bool) {
    ev.str("jitrun.recording.file", path)
        .bool("jitrun.recording.input", input);
}

/// The recording's fields of `elevate.end`: its size and SHA-256, and whether it is whole.
pub fn end_fields(ev: &mut Event, r: &Report) {
    let s = &r.summary;
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ev.str("jitrun.recording.file", r.path.as_str())
        .int("jitrun.recording.size", int(s.size))
        .str("jitrun.recording.hash.sha256", s.sha256.as_str())
        .int("jitrun.recording.chunks", int(s.chunks))
        .bool("jitrun.recording.truncated", s.truncated)
        .bool("jitrun.recording.file_complete", s.file_complete);
    if s.dropped_bytes > 0 {
        ev.int("jitrun.recording.dropped_bytes", int(s.dropped_bytes));
    }
    if let Some(e) = &r.error {
        ev.str("jitrun.recording.error", e.as_str());
    }
}
