//! Step 8 (and the end of step 10): building jitrun's events and sending them.
//! The schema itself lives in `jit-audit` and docs/audit.md.

use crate::decide::Approved;
use crate::identity::{Invoker, Target};
use crate::paths;
use crate::refusal::{Logged, Refusal};
use crate::trusted_files;
use jit_audit::{
    Event, EventType, Framer, Framing, Spool, SpoolError, SyslogSink, DEFAULT_MAX_MESSAGE,
};
use jit_policy::{AuditFraming, RunAs, Settings};
use std::cell::Cell;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use time::OffsetDateTime;

pub struct Auditor {
    framer: Framer,
    socket: String,
    sink: Result<SyslogSink, String>,
    fail_closed: bool,
    /// Known to hold nothing waiting (checked once, then kept up to date by this process).
    backlog_empty: Cell<bool>,
    pub session_id: String,
}

/// What became of one event.
#[derive(Debug)]
pub enum Delivery {
    Sent,
    /// Kept in /var/lib/jitrun/spool, sent on a later run or by `jitctl audit flush`.
    Spooled,
    /// Neither sent nor kept: why.
    Lost(String),
}

fn spool_dir() -> String {
    format!("{}/spool", paths::STATE_DIR)
}

fn out_of_descriptors(e: &SpoolError) -> bool {
    matches!(e, SpoolError::Io { source, .. }
        if matches!(source.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)))
}

impl Auditor {
    pub fn new(settings: &Settings, host: &str, session_id: String) -> Auditor {
        let framer = Framer {
            framing: match settings.audit.framing {
                AuditFraming::Cee => Framing::Cee,
                AuditFraming::Rfc5424 => Framing::Rfc5424,
            },
            app_name: "jitrun".to_string(),
            hostname: host.to_string(),
            pid: std::process::id(),
            sd_id: settings.audit.sd_id.clone(),
            max_message: DEFAULT_MAX_MESSAGE,
        };
        let sink =
            SyslogSink::connect(Path::new(&settings.audit.socket)).map_err(|e| e.to_string());
        Auditor {
            framer,
            socket: settings.audit.socket.clone(),
            sink,
            fail_closed: settings.audit.fail_closed,
            backlog_empty: Cell::new(false),
            session_id,
        }
    }

    /// Send what waits in the spool, in order. True when nothing is left waiting, and also
    /// (the event then goes out at once, perhaps ahead of older ones still waiting) when another
    /// process is sending the spool right now (its lock is never waited for: a process its
    /// caller stopped could hold it forever) or when this process has no descriptor left to
    /// look at the spool with (a caller's tiny RLIMIT_NOFILE must not make events unloggable).
    fn drain_backlog(&self, sink: &SyslogSink) -> bool {
        if self.backlog_empty.get() {
            return true;
        }
        let empty = match trusted_files::walk_dir(&spool_dir()) {
            Ok(None) => true,
            Ok(Some(dir)) => {
                let spool = Spool::from_dir(dir, Path::new(&spool_dir()));
                match spool
                    .try_flush(sink)
                    .and_then(|sent| Ok((sent, spool.pending()?)))
                {
                    Ok((None, _)) => return true,
                    Ok((Some(_), waiting)) => waiting.is_empty(),
                    Err(e) if out_of_descriptors(&e) => return true,
                    Err(_) => false,
                }
            }
            Err(r) if r.code == "resource_limit" => return true,
            Err(_) => false,
        };
        self.backlog_empty.set(empty);
        empty
    }

    /// Send one event, after anything still waiting in the spool (so that order holds). When
    /// the socket is missing or full and `may_spool`, keep it in the spool instead.
    pub fn deliver(&self, event: &Event, may_spool: bool) -> Delivery {
        let datagram = self.framer.render(event, OffsetDateTime::now_utc());
        let why = match &self.sink {
            Ok(sink) if self.drain_backlog(sink) => match sink.send(&datagram) {
                Ok(()) => return Delivery::Sent,
                Err(e) => e.to_string(),
            },
            Ok(_) => format!(
                "earlier events still wait in {} for {}",
                spool_dir(),
                self.socket
            ),
            Err(e) => e.clone(),
        };
        if !may_spool {
            return Delivery::Lost(why);
        }
        let kept = trusted_files::state_dir(&spool_dir())
            .map_err(|r| r.message)
            .and_then(|dir| {
                Spool::from_dir(dir, Path::new(&spool_dir()))
                    .push(&datagram)
                    .map_err(|e| e.to_string())
            });
        match kept {
            Ok(()) => {
                self.backlog_empty.set(false);
                Delivery::Spooled
            }
            Err(e) => Delivery::Lost(format!("{why}; and it could not be spooled: {e}")),
        }
    }

    /// Log an event that must precede running anything (`elevate.start`). Nothing runs
    /// unless the event is kept: with `audit.fail_closed` (the default) it must reach syslog
    /// (and is never spooled: no record may claim a run that never happened); without it, the
    /// spool is good enough. An event that can be neither sent nor spooled refuses the run.
    pub fn emit(&self, event: &Event) -> Result<(), Refusal> {
        match self.deliver(event, !self.fail_closed) {
            Delivery::Sent | Delivery::Spooled => Ok(()),
            Delivery::Lost(e) => Err(Refusal::config(
                "audit_unavailable",
                if self.fail_closed {
                    format!("cannot write the audit event ({e}); audit.fail_closed is set, so nothing runs unlogged (with audit.fail_closed = false in /etc/jitrun/jitrun.toml, events wait in the spool instead)")
                } else {
                    format!("cannot write or spool the audit event ({e}); nothing runs unlogged")
                },
            )),
        }
    }

    /// How this auditor frames its datagrams (a session recording sizes its chunks by it).
    pub fn framer(&self) -> &Framer {
        &self.framer
    }

    /// Log what already happened (`elevate.end`, a refusal): sent, else spooled.
    pub fn record(&self, event: &Event) -> Result<(), String> {
        match self.deliver(event, true) {
            Delivery::Sent | Delivery::Spooled => Ok(()),
            Delivery::Lost(e) => Err(e),
        }
    }
}

/// What is known about one invocation, for every event it produces.
pub struct Facts<'a> {
    pub invoker: Option<&'a Invoker>,
    pub host: &'a str,
    pub command: &'a [OsString],
    pub executable: Option<&'a Path>,
}

impl<'a> Facts<'a> {
    /// Only the command line: who asks and where are not known yet.
    pub fn command(command: &'a [OsString]) -> Facts<'a> {
        Facts {
            invoker: None,
            host: "",
            command,
            executable: None,
        }
    }
}

fn base(kind: EventType, session: &str, f: &Facts<'_>) -> Event {
    let mut ev = Event::new(kind);
    ev.str("jitrun.session_id", session)
        .str("host.name", f.host);
    if let Some(inv) = f.invoker {
        ev.str("user.name", inv.name.as_str())
            .str("user.id", inv.uid.to_string());
        if let Some(cwd) = &inv.cwd {
            ev.set(
                "process.working_directory",
                jit_audit::Value::Str(jit_audit::escape_bytes(cwd.as_os_str().as_bytes())),
            );
        }
        if let Some(tty) = &inv.tty {
            ev.str("jitrun.tty", tty.as_str());
        }
    } else {
        let uid = crate::system::process::getuid();
        ev.str("user.id", uid.to_string());
    }
    if let Some(exe) = f.executable {
        ev.set(
            "process.executable",
            jit_audit::Value::Str(jit_audit::escape_bytes(exe.as_os_str().as_bytes())),
        );
    }
    if !f.command.is_empty() {
        ev.bytes_list("process.args", f.command.iter().map(|a| a.as_bytes()));
    }
    ev
}

pub fn run_as_name(r: &RunAs) -> String {
    match r {
        RunAs::Invoker => "invoker".to_string(),
        RunAs::Root => "root".to_string(),
        RunAs::User(u) => u.clone(),
    }
}

fn approval_fields(ev: &mut Event, approved: &Approved<'_>, target: &Target) {
    ev.str("user.target.name", target.name.as_str())
        .str("user.target.id", target.uid.to_string())
        .str("jitrun.rule", approved.rule.name.as_str())
        .str("jitrun.run_as", run_as_name(&approved.run_as))
        .list(
            "process.thread.capabilities.effective",
            approved.caps.names(),
        );
    if let Some(g) = &approved.grant {
        let c = &g.claims;
        ev.str("jitrun.grant.id", c.jti.as_str())
            .str("jitrun.grant.kid", g.kid.as_str())
            .str("jitrun.grant.issuer", c.iss.as_str())
            .str(
                "jitrun.grant.expires",
                c.exp
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            )
            .list("jitrun.grant.approvers", c.approvers.iter().cloned())
            .bool("jitrun.grant.break_glass", c.break_glass);
        if let Some(t) = &c.ticket {
            ev.str("jitrun.grant.ticket", t.as_str());
        }
        if let Some(r) = &c.reason {
            ev.str("jitrun.grant.reason", r.as_str());
        }
    }
}

pub fn start(
    session: &str,
    f: &Facts<'_>,
    approved: &Approved<'_>,
    target: &Target,
    child: i32,
) -> Event {
    let mut ev = base(EventType::ElevateStart, session, f);
    ev.str("event.outcome", "success")
        .int("process.pid", child as i64);
    approval_fields(&mut ev, approved, target);
    ev
}

/// A break-glass grant was used: the same facts as `elevate.start` (its recording included,
/// its containment mode not), at alert severity, so a SIEM can page on one event type.
pub fn break_glass(start: &Event) -> Event {
    let mut ev = start.clone();
    ev.kind = EventType::BreakGlass;
    ev.str("event.action", EventType::BreakGlass.as_str());
    ev.remove("jitrun.containment");
    ev
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Exit,
    Signal,
    Expired,
    /// The grant appeared on the revocation list while the command ran.
    Revoked,
    SupervisorKilled,
    /// The session recording failed while the command ran (`record.on_failure = "end"`).
    RecordingFailed,
    /// The session recording reached `record.max_bytes` (`record.on_max_bytes = "end"`).
    RecordingLimit,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Signal => "signal",
            EndReason::Expired => "expired",
            EndReason::Revoked => "revoked",
            EndReason::SupervisorKilled => "supervisor_killed",
            EndReason::RecordingFailed => "recording_failed",
            EndReason::RecordingLimit => "recording_limit",
        }
    }
}

pub struct Ending {
    pub reason: EndReason,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

pub fn end(
    session: &str,
    f: &Facts<'_>,
    approved: &Approved<'_>,
    target: &Target,
    child: i32,
    e: &Ending,
) -> Event {
    let mut ev = base(EventType::ElevateEnd, session, f);
    ev.str(
        "event.outcome",
        if e.exit_code == Some(0) {
            "success"
        } else {
            "failure"
        },
    )
    .int("process.pid", child as i64);
    approval_fields(&mut ev, approved, target);
    ev.str("jitrun.end_reason", e.reason.as_str()).int(
        "jitrun.duration_ms",
        e.duration_ms.min(i64::MAX as u64) as i64,
    );
    if let Some(c) = e.exit_code {
        ev.int("process.exit_code", c as i64);
    }
    if let Some(s) = e.signal {
        ev.str("jitrun.signal", crate::system::signals::name(s));
    }
    if let Some(err) = &e.error {
        ev.str("jitrun.error", err.as_str());
    }
    ev
}

/// `elevate.deny` or `policy.error` for a refusal; None for what is not logged (usage errors).
pub fn refusal(
    session: &str,
    f: &Facts<'_>,
    r: &Refusal,
    requested_user: Option<&str>,
) -> Option<Event> {
    let kind = match r.logged {
        Logged::Deny => EventType::ElevateDeny,
        Logged::PolicyError => EventType::PolicyError,
        Logged::Unlogged => return None,
    };
    let mut ev = base(kind, session, f);
    ev.str("event.outcome", "failure")
        .str("jitrun.deny_code", r.code)
        .str("jitrun.deny_reason", r.message.as_str());
    if kind == EventType::PolicyError {
        ev.str("jitrun.error", r.message.as_str());
    }
    if let Some(rule) = &r.rule {
        ev.str("jitrun.rule", rule.as_str());
    }
    if let Some(u) = requested_user {
        ev.str("user.target.name", u);
    }
    Some(ev)
}
