//! The steps of `jitrun COMMAND…` that `main.rs` puts in order (docs/architecture.md, "One
//! elevation, module by module"). Each returns `Result<_, Refusal>`; main.rs logs a refusal
//! with what is known by then.

use crate::audit::{self, Auditor, EndReason, Ending, Facts};
use crate::authenticate;
use crate::cli::RunArgs;
use crate::command::{self, Program};
use crate::config;
use crate::decide::{self, Approved};
use crate::env::{self, Privilege};
use crate::exec::elevate::Plan;
use crate::exec::plumbing::Want;
use crate::exec::watchdog::RevocationWatch;
use crate::exec::{self, stale_runs, Containment, Enforcement, Io, Launch, Outcome};
use crate::front::{self, Front, Role};
use crate::harden::CallerState;
use crate::identity::{self, Invoker, Target};
use crate::policy_cache;
use crate::recording::{self, Recording};
use crate::refusal::Refusal;
use crate::revocations;
use crate::system::{self, cgroup::SessionCgroup, process::WaitStatus};
use jit_audit::session_io::SessionIo;
use jit_grant::KeySet;
use jit_policy::{Policy, RunAs, Settings};
use jit_session::{Header, SessionInfo};
use std::cell::OnceCell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// Who asks (step 2), once jitrun is known to run as root.
pub fn who_asks() -> Result<Invoker, Refusal> {
    crate::harden::require_root()?;
    Invoker::current()
}

/// The host's settings, and this host's name (settings `host`, else the kernel's).
pub fn settings() -> Result<(Settings, String), Refusal> {
    let settings = config::load_settings()?;
    let host = identity::host_name(settings.host.as_deref());
    Ok((settings, host))
}

/// This run's auditor, under a fresh session id.
pub fn auditor(settings: &Settings, host: &str) -> Result<Auditor, Refusal> {
    let session =
        system::random_hex16().map_err(|e| Refusal::config("random", format!("getrandom: {e}")))?;
    Ok(Auditor::new(settings, host, session))
}

/// Where this process goes on after [`own_cgroup`].
pub enum Placed {
    /// The process the caller's shell started, with the supervisor started in the run's own
    /// cgroup: it only waits for it (`front.rs`).
    Front(Front, SessionCgroup),
    /// This process goes on with the run: the supervisor, in the run's own cgroup (born there,
    /// or moved there on a kernel without clone3's CLONE_INTO_CGROUP); `None` on a host without
    /// cgroup v2.
    Supervisor(Option<SessionCgroup>),
}

/// jitrun's own processes get out of any cgroup the caller may control (her delegated systemd
/// scope) before anything else: there she could kill or freeze them with cgroup.kill. The
/// supervisor is started in `<cgroup2>/jitrun/<session>/supervisor` (front.rs says why it is
/// not moved there); a leaf that a concurrent sweep of abandoned runs removed in between (it
/// was empty) is made again.
pub fn own_cgroup(session: &str) -> Result<Placed, Refusal> {
    let refusal = |e: std::io::Error| {
        if e.raw_os_error() == Some(libc::EMFILE) {
            Refusal::deny(
                "resource_limit",
                format!(
                    "your open-file limit is too low for jitrun ({e}); raise it (ulimit -n 1024)"
                ),
            )
        } else {
            Refusal::config(
                "supervise",
                format!("cannot start jitrun's supervisor in a cgroup of its own ({e}); on a host with cgroup v2 it does not run inside a cgroup its caller may control"),
            )
        }
    };
    let Some(cg) = SessionCgroup::for_session(session).map_err(refusal)? else {
        return Ok(Placed::Supervisor(None));
    };
    if cfg!(jitrun_ab = "move_into_cgroup") {
        // The bench's A/B build: this process moves itself into the leaf, as before.
        cg.reenter().map_err(refusal)?;
        return Ok(Placed::Supervisor(Some(cg)));
    }
    let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
    for _ in 0..5 {
        match front::split(&cg) {
            Ok(Role::Front(f)) => return Ok(Placed::Front(f, cg)),
            Ok(Role::Supervisor) => {
                cg.hand_over_removal(); // the front removes the directories
                return Ok(Placed::Supervisor(Some(cg)));
            }
            // The leaf vanished between mkdir and clone3: make it again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => last = e,
            // No clone3, or no CLONE_INTO_CGROUP (before Linux 5.7): this process moves there.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG)
                ) =>
            {
                cg.reenter().map_err(refusal)?;
                return Ok(Placed::Supervisor(Some(cg)));
            }
            Err(e) => return Err(refusal(e)),
        }
    }
    Err(refusal(last))
}

/// What the steps after containment work with.
pub struct Run<'a> {
    pub args: &'a RunArgs,
    pub invoker: &'a Invoker,
    pub settings: &'a Settings,
    pub host: &'a str,
    pub auditor: &'a Auditor,
    /// The run's cgroup, which jitrun entered (None without cgroup v2).
    pub own_cgroup: Option<&'a SessionCgroup>,
}

/// Steps 3–10: decide, open, authenticate, run, log the end. `executable` is set once the
/// program is located, so that a refusal names it. Returns jitrun's exit status.
pub fn elevate(
    run: &Run<'_>,
    caller: CallerState,
    executable: &mut Option<PathBuf>,
) -> Result<i32, Refusal> {
    let token = decide::read_grant(run.args, run.invoker);
    let policies = Policies::load(run, token.as_ref())?;
    let keys = config::load_keys()?;
    let revocation_list = revocations::load(&keys);
    let located =
        command::locate_for(&run.args.command[0], &run.settings.secure_path, run.invoker)?;
    *executable = Some(located.canonical.clone());
    let approved = policies.decide(decide::Inputs {
        policy: &policies.subset.policy,
        token: token.as_ref(),
        keys: &keys,
        settings: run.settings,
        invoker: run.invoker,
        host: run.host,
        program: &located,
        run: run.args,
        revocations: &revocation_list,
        now: time::OffsetDateTime::now_utc(),
    })?;
    // Opened (as root) only now that a rule allows it.
    let program = command::open(&located)?;
    let target = target_of(&approved.run_as, run.invoker)?;
    let pam_session = authorize(run, &approved, &target)?;
    let send = |e: &jit_audit::Event| run.auditor.record(e);
    let mut launch = launch_of(run, &approved, &target, program, caller, &keys)?;
    launch.io.recording = record(run, &approved, &target, &launch, &send)?;
    let facts = Facts {
        invoker: Some(run.invoker),
        host: run.host,
        command: &run.args.command,
        executable: Some(&located.canonical),
    };
    let ends = launch.enforce.expires;
    let mut outcome = supervise(run, launch, &facts, &approved, &target)?;
    let logged = log_end(run, &facts, &approved, &target, &outcome);
    // Only now: the last output, and the caller's terminal as it was.
    if let Some(tail) = outcome.tail.take() {
        tail.finish();
    }
    if let Some(session) = pam_session {
        if let Err(e) = session.close() {
            say!("jitrun: warning: closing the PAM session failed: {e}");
        }
    }
    explain_end(&outcome, &approved, ends, &keys);
    if let Err(e) = logged {
        say!("jitrun: warning: the end of this run was not logged: {e}");
    }
    Ok(outcome.exit_code)
}

/// The policy a run is decided on: usually only the rules that could allow it, from the
/// compiled snapshot (with a grant or `--rule`, the rule it names; else every rule that names
/// the caller); the whole policy only when those refuse.
struct Policies {
    subset: policy_cache::Loaded,
    whole: OnceCell<Policy>,
}

impl Policies {
    fn load(run: &Run<'_>, token: Option<&Result<String, Refusal>>) -> Result<Policies, Refusal> {
        let only: Option<Vec<String>> = match (token, &run.args.rule) {
            (Some(Ok(t)), _) => Some(decide::claimed_rule(t).into_iter().collect()),
            (Some(Err(_)), _) => Some(Vec::new()),
            (None, Some(r)) => Some(vec![r.clone()]),
            (None, None) => None,
        };
        Ok(Policies {
            subset: policy_cache::load_for(run.invoker, only.as_deref(), true)?,
            whole: OnceCell::new(),
        })
    }

    /// The subset allows exactly what the whole policy allows; a refusal is decided again on
    /// the whole policy, for the message and code a full load gives.
    fn decide<'p>(&'p self, inputs: decide::Inputs<'p>) -> Result<Approved<'p>, Refusal> {
        match decide::decide(&inputs) {
            Ok(a) => Ok(a),
            Err(_) if !self.subset.complete => {
                if self.whole.get().is_none() {
                    let _ = self.whole.set(config::load_policy()?);
                }
                let whole = self.whole.get().expect("the whole policy was just loaded");
                decide::decide(&decide::Inputs {
                    policy: whole,
                    ..inputs
                })
            }
            Err(r) => Err(r),
        }
    }
}

fn target_of(run_as: &RunAs, invoker: &Invoker) -> Result<Target, Refusal> {
    match run_as {
        RunAs::Invoker => Target::invoker(invoker),
        RunAs::Root => Target::named("root"),
        RunAs::User(u) => Target::named(u),
    }
}

/// Step 7: PAM when the rule asks for it (the session stays open around the command), then
/// one use of the grant is counted.
fn authorize(
    run: &Run<'_>,
    approved: &Approved<'_>,
    target: &Target,
) -> Result<Option<authenticate::Session>, Refusal> {
    let rule = &approved.rule.name;
    let pam_session = if approved.rule.authenticate {
        Some(authenticate::authenticate(
            run.settings,
            run.invoker,
            target,
            rule,
        )?)
    } else {
        None
    };
    if let (Some(_), Some(cg)) = (&pam_session, run.own_cgroup) {
        // A PAM session module (pam_systemd) may have moved jitrun into a session scope.
        cg.reenter().map_err(|e| {
            Refusal::config(
                "supervise",
                format!("cannot return to jitrun's cgroup after PAM: {e}"),
            )
        })?;
    }
    decide::consume_use(approved)?;
    Ok(pam_session)
}

/// Everything the command's process needs, prepared before fork.
fn launch_of<'a>(
    run: &Run<'a>,
    approved: &Approved<'_>,
    target: &Target,
    program: Program,
    caller: CallerState,
    keys: &KeySet,
) -> Result<Launch<'a>, Refusal> {
    // argv[0] is the path the rule matched, never the caller's: a multi-call program acts
    // on its name (a symlink `pkill` to a rule's pgrep would kill).
    let argv: Vec<CString> = std::iter::once(approved.matched.as_os_str())
        .chain(run.args.command[1..].iter().map(|a| a.as_os_str()))
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| Refusal::usage("NUL in an argument"))?;
    let privilege = match (approved.caps.0 == 0, target.uid == run.invoker.uid) {
        (true, true) => Privilege::Same,
        (_, as_caller) => Privilege::Elevated { as_caller },
    };
    let rule = approved.rule;
    let secure_path = &run.settings.secure_path;
    let kept = rule.kept_env();
    let records = rule.records(&run.settings.record);
    let io = Io {
        want: Want {
            record: records,
            record_input: records && rule.record_input,
            isolate: run.settings.use_pty && target.uid != run.invoker.uid,
        },
        recording: None,
    };
    Ok(Launch {
        program,
        argv,
        envp: env::build(&caller.env, target, secure_path, &kept, privilege),
        plan: Plan {
            target_name: CString::new(target.name.as_bytes())
                .map_err(|_| Refusal::config("identity", "NUL in user name"))?,
            target: target.clone(),
            run_as: approved.run_as.clone(),
            caps: approved.caps,
            no_new_privs: rule.no_new_privs,
            limits: caller.limits,
            inherited: caller.inherited,
            elevated: privilege != Privilege::Same,
        },
        enforce: Enforcement {
            // A sealed grant's command ends at most the rule's max_duration after it starts.
            expires: approved.ends_at(time::OffsetDateTime::now_utc()),
            revocation: approved.grant.as_ref().map(|g| RevocationWatch {
                jti: g.claims.jti.clone(),
                keys: keys.clone(),
            }),
            kill_grace: run.settings.kill_grace,
            session: run.own_cgroup,
        },
        io,
    })
}

/// The session recording of a rule that records: its file created and its header written
/// now, before anything starts (a rule that records and cannot does not run).
fn record<'a>(
    run: &Run<'a>,
    approved: &Approved<'_>,
    target: &Target,
    launch: &Launch<'_>,
    send: recording::Send<'a>,
) -> Result<Option<Recording<'a>>, Refusal> {
    let rule = approved.rule;
    if !launch.io.want.record {
        return Ok(None);
    }
    // TERM and SHELL as the command gets them (checked and built by env.rs).
    let env = |name: &str| {
        launch.envp.iter().find_map(|e| {
            let v = e
                .to_bytes()
                .strip_prefix(name.as_bytes())?
                .strip_prefix(b"=")?;
            Some(String::from_utf8_lossy(v).into_owned())
        })
    };
    let size = exec::plumbing::terminal_size();
    let session = run.auditor.session_id.clone();
    let argv: Vec<&[u8]> = launch.argv.iter().map(|a| a.to_bytes()).collect();
    let header = Header {
        width: size.cols,
        height: size.rows,
        timestamp: time::OffsetDateTime::now_utc().unix_timestamp(),
        command: jit_session::command_line(&argv),
        term: env("TERM"),
        shell: env("SHELL"),
        session: SessionInfo {
            id: session.clone(),
            host: run.host.to_string(),
            user: run.invoker.name.clone(),
            uid: run.invoker.uid,
            run_as: target.name.clone(),
            rule: rule.name.clone(),
            input: launch.io.want.record_input,
        },
    };
    let plan = recording::Plan {
        header,
        session: SessionIo {
            session_id: session,
            host: run.host.to_string(),
            user: run.invoker.name.clone(),
        },
        settings: &run.settings.record,
        framer: run.auditor.framer().clone(),
    };
    Recording::start(plan, launch.io.want.record_input, send).map(Some)
}

/// Steps 8–10: the command runs only once `elevate.start` is logged; should the supervisor
/// and the watchdog both vanish, the next jitrun logs the end kept for it in
/// `/var/lib/jitrun/runs/`; should the supervisor alone vanish, the watchdog logs it.
fn supervise(
    run: &Run<'_>,
    launch: Launch<'_>,
    facts: &Facts<'_>,
    approved: &Approved<'_>,
    target: &Target,
) -> Result<Outcome, Refusal> {
    let auditor = run.auditor;
    let session = auditor.session_id.as_str();
    let recorded = launch
        .io
        .recording
        .as_ref()
        .map(|r| (r.path.clone(), r.input));
    // An end logged by someone else than the supervisor names the recording, which did not
    // end properly (no final chunk).
    let lost_end = |pid, lost: &Ending| {
        let mut end = audit::end(session, facts, approved, target, pid, lost);
        if let Some((path, _)) = &recorded {
            end.str("jitrun.recording.file", path.as_str()).str(
                "jitrun.recording.error",
                "the recording did not end: its supervisor vanished",
            );
        }
        end
    };
    let started = |pid, containment| {
        if containment == Containment::Cgroup {
            // What the next jitrun logs if supervisor and watchdog both vanish.
            let lost = ending(EndReason::SupervisorKilled, None, Duration::ZERO, None);
            stale_runs::write(session, &lost_end(pid, &lost))?;
        }
        let mut start = audit::start(session, facts, approved, target, pid);
        if let Some((path, input)) = &recorded {
            recording::start_fields(&mut start, path, *input);
        }
        log_start(auditor, start, approved, containment)
    };
    let supervisor_lost = |pid, elapsed| {
        let why = "the supervisor ended unexpectedly; the watchdog killed the command";
        let lost = ending(EndReason::SupervisorKilled, None, elapsed, Some(why.into()));
        let _ = auditor.record(&lost_end(pid, &lost));
        stale_runs::remove(session);
    };
    exec::run(launch, started, supervisor_lost)
}

fn ending(
    reason: EndReason,
    status: Option<WaitStatus>,
    duration: Duration,
    error: Option<String>,
) -> Ending {
    Ending {
        reason,
        exit_code: match status {
            Some(WaitStatus::Exited(c)) => Some(c),
            _ => None,
        },
        signal: match status {
            Some(WaitStatus::Signaled(s)) => Some(s),
            _ => None,
        },
        duration_ms: duration.as_millis() as u64,
        error,
    }
}

/// `elevate.start` (it must be kept, or nothing runs), then the break-glass alert.
fn log_start(
    auditor: &Auditor,
    mut start: jit_audit::Event,
    approved: &Approved<'_>,
    containment: Containment,
) -> Result<(), Refusal> {
    let session = auditor.session_id.as_str();
    start.str("jitrun.containment", containment.as_str());
    if let Err(r) = auditor.emit(&start) {
        stale_runs::remove(session);
        return Err(r);
    }
    if approved
        .grant
        .as_ref()
        .is_some_and(|g| g.claims.break_glass)
    {
        // The run is logged as started: the alert follows it like any record of what
        // already happened (sent, else spooled), never refusing the run.
        let alert = audit::break_glass(&start);
        if let Err(e) = auditor.record(&alert) {
            say!("jitrun: warning: the break-glass alert was not logged: {e}");
        }
    }
    Ok(())
}

/// `elevate.end`, first: nothing printed to a broken terminal may come before it.
fn log_end(
    run: &Run<'_>,
    facts: &Facts<'_>,
    approved: &Approved<'_>,
    target: &Target,
    outcome: &Outcome,
) -> Result<(), String> {
    let session = run.auditor.session_id.as_str();
    let e = ending(
        outcome.reason,
        Some(outcome.status),
        outcome.duration,
        outcome.error.clone(),
    );
    let mut end = audit::end(session, facts, approved, target, outcome.pid, &e);
    if let Some(r) = &outcome.recording {
        recording::end_fields(&mut end, r);
    }
    run.auditor.record(&end)
}

/// Tell the person why the command ended when jitrun ended it, and what to do next (`ends`:
/// when the grant's time ended the command).
fn explain_end(
    outcome: &Outcome,
    approved: &Approved<'_>,
    ends: Option<time::OffsetDateTime>,
    keys: &KeySet,
) {
    if let Some(err) = &outcome.error {
        say!("jitrun: {err}");
    }
    let Some(g) = &approved.grant else { return };
    let (jti, rule) = (&g.claims.jti, &g.claims.rule);
    match outcome.reason {
        EndReason::Expired => {
            if let Some(ended) = ends {
                say!("jitrun: {}", decide::expiry_message(g, ended));
            }
        }
        EndReason::Revoked => match revocations::load(keys).find(jti) {
            Some(entry) => say!(
                "jitrun: grant {jti} was revoked at {}: {}; the command was ended. Request a new grant: jitctl request {rule}",
                jit_grant::format_time(entry.at),
                entry.reason,
            ),
            None => say!(
                "jitrun: grant {jti} was revoked; the command was ended. Request a new grant: jitctl request {rule}"
            ),
        },
        _ => {}
    }
}
