//! jitrun: run ONE command with the capabilities a signed, short-lived grant and this
//! host's policy allow; end it when the grant expires; log every step.
//!
//! This file only orders the steps of docs/architecture.md's flow; each step is a module:
//! `harden` → `identity` → `config` (via `trusted_files`) → `command` → `decide`
//! (grant + policy) → `audit` → `supervise` (fork, `elevate`, wait).

/// Write a line to stderr. Unlike `eprintln!` it never panics (a closed or full stderr
/// must not stop the supervisor before it logs `elevate.end`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Write a line to stdout, never panicking (`jitrun -l | head`).
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod attest;
mod audit;
mod authenticate;
mod cli;
mod command;
mod config;
mod decide;
mod elevate;
mod env;
mod harden;
mod identity;
mod inherited;
mod list;
mod paths;
mod policy_cache;
mod refusal;
mod revocations;
mod stale_runs;
mod supervise;
mod system;
mod trusted_files;
mod user_files;
mod uses;
mod watchdog;

use audit::{Auditor, Ending, Facts};
use cli::{Mode, RunArgs};
use env::Privilege;
use identity::{Invoker, Target};
use inherited::Inherited;
use jit_policy::{RunAs, Settings};
use refusal::Refusal;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use supervise::Containment;
use system::cgroup::SessionCgroup;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let hardened = match harden::harden() {
        Ok(x) => x,
        Err(r) => {
            return refuse(
                &r,
                None,
                &Facts {
                    invoker: None,
                    host: "",
                    command: &[],
                    executable: None,
                },
                None,
            )
        }
    };
    let harden::Hardened {
        args,
        env,
        limits,
        inherited,
    } = hardened;
    let mode = match cli::parse(args.into_iter().skip(1).collect()) {
        Ok(m) => m,
        Err(r) => {
            say!("jitrun: {}", r.message);
            return r.exit;
        }
    };
    match mode {
        Mode::Help => {
            show!("{}\n\n{}", cli::USAGE, cli::HELP);
            0
        }
        Mode::Version => {
            show!("jitrun {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Mode::List => list_mode(),
        Mode::ResetAuth => reset_auth_mode(),
        Mode::Attest(a) => match attest::attest(&a) {
            Ok(token) => {
                show!("{token}");
                0
            }
            Err(r) => {
                // Not logged (see attest.rs): printed for the caller, with the fix.
                say!("jitrun: attest: {}", r.message.replace('\n', " "));
                r.exit
            }
        },
        Mode::Run(r) => run_mode(r, env, limits, inherited),
    }
}

/// Log the refusal (best effort when no auditor is set up yet), print it as ONE line, and
/// return the exit status. A refusal that could not be logged says so on the same line.
fn refuse(
    r: &Refusal,
    auditor: Option<&Auditor>,
    facts: &Facts<'_>,
    requested_user: Option<&str>,
) -> i32 {
    // Settings were not loaded: the default socket, and the kernel's host name.
    let fallback;
    let fallback_facts;
    let host = identity::host_name(None);
    let (auditor, facts) = match auditor {
        Some(a) => (a, facts),
        None => {
            fallback = Auditor::new(
                &Settings::default(),
                &host,
                system::random_hex16().unwrap_or_default(),
            );
            fallback_facts = Facts {
                host: &host,
                ..*facts
            };
            (&fallback, &fallback_facts)
        }
    };
    let mut line = r.message.replace('\n', " ");
    if let Some(ev) = audit::refusal(&auditor.session_id, facts, r, requested_user) {
        if let Err(e) = auditor.record(&ev) {
            if r.code != "audit_unavailable" {
                line.push_str(&format!(" (this refusal was not logged: {e})"));
            }
        }
    }
    say!("jitrun: {line}");
    r.exit
}

fn list_mode() -> i32 {
    let facts = Facts {
        invoker: None,
        host: "",
        command: &[],
        executable: None,
    };
    let loaded = (|| -> Result<_, Refusal> {
        harden::require_root()?;
        let inv = Invoker::current()?;
        let settings = config::load_settings()?;
        // The rules that name the caller are the ones -l shows: the snapshot's subset will do.
        let policy = policy_cache::load_for(&inv, None, false)?.policy;
        let keys = config::load_keys()?;
        Ok((inv, settings, policy, keys))
    })();
    match loaded {
        Ok((inv, settings, policy, keys)) => {
            let host = identity::host_name(settings.host.as_deref());
            list::print(&policy, &keys, &settings, &inv, &host);
            0
        }
        Err(r) => refuse(&r, None, &facts, None),
    }
}

fn reset_auth_mode() -> i32 {
    let facts = Facts {
        invoker: None,
        host: "",
        command: &[],
        executable: None,
    };
    let done = (|| -> Result<(), Refusal> {
        harden::require_root()?;
        let inv = Invoker::current()?;
        authenticate::cache::clear(inv.uid)
    })();
    match done {
        Ok(()) => 0,
        Err(r) => refuse(&r, None, &facts, None),
    }
}

/// jitrun's own processes leave any cgroup the caller may control (her delegated systemd
/// scope) before anything else: there she could kill or freeze them with cgroup.kill.
fn enter_own_cgroup(session: &str) -> Result<Option<SessionCgroup>, Refusal> {
    SessionCgroup::enter(session).map_err(|e| {
        if e.raw_os_error() == Some(libc::EMFILE) {
            Refusal::deny(
                "resource_limit",
                format!("your open-file limit is too low for jitrun ({e}); raise it (ulimit -n 1024)"),
            )
        } else {
            Refusal::config(
                "supervise",
                format!("cannot move jitrun into a cgroup of its own ({e}); on a host with cgroup v2 it does not run inside a cgroup its caller may control"),
            )
        }
    })
}

fn run_mode(
    run: RunArgs,
    env: harden::EnvSnapshot,
    limits: harden::SavedLimits,
    inherited: Inherited,
) -> i32 {
    let mut facts = Facts {
        invoker: None,
        host: "",
        command: &run.command,
        executable: None,
    };
    let requested = run.user.as_deref();
    if let Err(r) = harden::require_root() {
        return refuse(&r, None, &facts, requested);
    }
    let invoker = match Invoker::current() {
        Ok(i) => i,
        Err(r) => return refuse(&r, None, &facts, requested),
    };
    facts.invoker = Some(&invoker);
    if let Err(r) = harden::become_unsignalable() {
        return refuse(&r, None, &facts, requested);
    }
    let settings = match config::load_settings() {
        Ok(s) => s,
        Err(r) => return refuse(&r, None, &facts, requested),
    };
    let host = identity::host_name(settings.host.as_deref());
    facts.host = &host;
    let session = match system::random_hex16() {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                &Refusal::config("random", format!("getrandom: {e}")),
                None,
                &facts,
                requested,
            )
        }
    };
    let auditor = Auditor::new(&settings, &host, session);
    let own_cgroup = match enter_own_cgroup(&auditor.session_id) {
        Ok(c) => c,
        Err(r) => return refuse(&r, Some(&auditor), &facts, requested),
    };
    // Runs whose supervisor and watchdog both vanished are ended (and logged) now.
    stale_runs::sweep(&auditor, &auditor.session_id);

    // The resolved program, once known, so that a refusal names it in its audit event.
    let mut executable: Option<std::path::PathBuf> = None;
    let result = (|| -> Result<i32, Refusal> {
        // Usually only the rules that could allow this run, from the compiled snapshot: with
        // a grant (or --rule), the rule it names; else every rule that names the caller.
        let token = decide::read_grant(&run, &invoker);
        let only: Option<Vec<String>> = match (&token, &run.rule) {
            (Some(Ok(t)), _) => Some(decide::claimed_rule(t).into_iter().collect()),
            (Some(Err(_)), _) => Some(Vec::new()),
            (None, Some(r)) => Some(vec![r.clone()]),
            (None, None) => None,
        };
        let loaded = policy_cache::load_for(&invoker, only.as_deref(), true)?;
        let full_policy: jit_policy::Policy;
        let keys = config::load_keys()?;
        let revocation_list = revocations::load(&keys);
        let located = command::locate_for(&run.command[0], &settings.secure_path, &invoker)?;
        executable = Some(located.canonical.clone());
        let facts = Facts {
            invoker: Some(&invoker),
            host: &host,
            command: &run.command,
            executable: Some(&located.canonical),
        };
        let inputs = decide::Inputs {
            policy: &loaded.policy,
            token: token.as_ref(),
            keys: &keys,
            settings: &settings,
            invoker: &invoker,
            host: &host,
            program: &located,
            run: &run,
            revocations: &revocation_list,
            now: time::OffsetDateTime::now_utc(),
        };
        let approved = match decide::decide(&inputs) {
            Ok(a) => a,
            // The subset allows exactly what the whole policy allows; a refusal is decided
            // again on the whole policy, for the message and code a full load gives.
            Err(_) if !loaded.complete => {
                full_policy = config::load_policy()?;
                decide::decide(&decide::Inputs {
                    policy: &full_policy,
                    ..inputs
                })?
            }
            Err(r) => return Err(r),
        };
        // Opened (as root) only now that a rule allows it.
        let program = command::open(&located)?;
        let target = match &approved.run_as {
            RunAs::Invoker => Target::invoker(&invoker)?,
            RunAs::Root => Target::named("root")?,
            RunAs::User(u) => Target::named(u)?,
        };
        // Step 7: PAM when the rule asks for it; the session stays open around the command.
        let pam_session = if approved.rule.authenticate {
            Some(authenticate::authenticate(
                &settings,
                &invoker,
                &target,
                &approved.rule.name,
            )?)
        } else {
            None
        };
        if let (Some(_), Some(cg)) = (&pam_session, &own_cgroup) {
            // A PAM session module (pam_systemd) may have moved jitrun into a session scope.
            cg.reenter().map_err(|e| {
                Refusal::config(
                    "supervise",
                    format!("cannot return to jitrun's cgroup after PAM: {e}"),
                )
            })?;
        }
        decide::consume_use(&approved)?;
        let ends = approved.ends_at(time::OffsetDateTime::now_utc());
        // argv[0] is the path the rule matched, never the caller's: a multi-call program acts
        // on its name (a symlink `pkill` to a rule's pgrep would kill).
        let argv: Vec<CString> = std::iter::once(approved.matched.as_os_str())
            .chain(run.command[1..].iter().map(|a| a.as_os_str()))
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| Refusal::usage("NUL in an argument"))?;
        let privilege = match (approved.caps.0 == 0, target.uid == invoker.uid) {
            (true, true) => Privilege::Same,
            (_, as_caller) => Privilege::Elevated { as_caller },
        };
        let launch = supervise::Launch {
            program,
            argv,
            envp: env::build(
                &env,
                &target,
                &settings.secure_path,
                &approved.rule.kept_env(),
                privilege,
            ),
            plan: elevate::Plan {
                target_name: CString::new(target.name.as_bytes())
                    .map_err(|_| Refusal::config("identity", "NUL in user name"))?,
                target: target.clone(),
                run_as: approved.run_as.clone(),
                caps: approved.caps,
                no_new_privs: approved.rule.no_new_privs,
                limits: limits.clone(),
                inherited: inherited.clone(),
                elevated: privilege != Privilege::Same,
            },
            expires: ends,
            revocation: approved.grant.as_ref().map(|g| watchdog::RevocationWatch {
                jti: g.claims.jti.clone(),
                keys: keys.clone(),
            }),
            kill_grace: settings.kill_grace,
            session: own_cgroup.as_ref(),
        };
        let session = auditor.session_id.as_str();
        let outcome = supervise::run(
            launch,
            |pid, containment| {
                if containment == Containment::Cgroup {
                    // What the next jitrun logs if supervisor and watchdog both vanish.
                    let lost = Ending {
                        reason: audit::EndReason::SupervisorKilled,
                        exit_code: None,
                        signal: None,
                        duration_ms: 0,
                        error: None,
                    };
                    let end = audit::end(session, &facts, &approved, &target, pid, &lost);
                    stale_runs::write(session, &end)?;
                }
                let mut start = audit::start(session, &facts, &approved, &target, pid);
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
                    // The run is logged as started: the alert follows it like any record of
                    // what already happened (sent, else spooled), never refusing the run.
                    let alert = audit::break_glass(session, &facts, &approved, &target, pid);
                    if let Err(e) = auditor.record(&alert) {
                        say!("jitrun: warning: the break-glass alert was not logged: {e}");
                    }
                }
                Ok(())
            },
            |pid, elapsed| {
                let ending = Ending {
                    reason: audit::EndReason::SupervisorKilled,
                    exit_code: None,
                    signal: None,
                    duration_ms: elapsed.as_millis() as u64,
                    error: Some(
                        "the supervisor ended unexpectedly; the watchdog killed the command"
                            .to_string(),
                    ),
                };
                let _ = auditor.record(&audit::end(
                    session, &facts, &approved, &target, pid, &ending,
                ));
                stale_runs::remove(session);
            },
        )?;
        // The end event first: nothing printed to a broken terminal may come before it.
        let ending = Ending {
            reason: outcome.reason,
            exit_code: match outcome.status {
                system::process::WaitStatus::Exited(c) => Some(c),
                _ => None,
            },
            signal: match outcome.status {
                system::process::WaitStatus::Signaled(s) => Some(s),
                _ => None,
            },
            duration_ms: outcome.duration.as_millis() as u64,
            error: outcome.error.clone(),
        };
        let logged = auditor.record(&audit::end(
            session,
            &facts,
            &approved,
            &target,
            outcome.pid,
            &ending,
        ));
        if let Some(session) = pam_session {
            if let Err(e) = session.close() {
                say!("jitrun: warning: closing the PAM session failed: {e}");
            }
        }
        if let Some(err) = &outcome.error {
            say!("jitrun: {err}");
        }
        if let (audit::EndReason::Expired, Some(g), Some(ended)) =
            (outcome.reason, &approved.grant, ends)
        {
            say!("jitrun: {}", decide::expiry_message(g, ended));
        }
        if let (audit::EndReason::Revoked, Some(g)) = (outcome.reason, &approved.grant) {
            match revocations::load(&keys).find(&g.claims.jti) {
                Some(entry) => say!(
                    "jitrun: grant {} was revoked at {}: {}; the command was ended. Request a new grant: jitctl request {}",
                    g.claims.jti,
                    jit_grant::format_time(entry.at),
                    entry.reason,
                    g.claims.rule
                ),
                None => say!(
                    "jitrun: grant {} was revoked; the command was ended. Request a new grant: jitctl request {}",
                    g.claims.jti,
                    g.claims.rule
                ),
            }
        }
        if let Err(e) = logged {
            say!("jitrun: warning: the end of this run was not logged: {e}");
        }
        Ok(outcome.exit_code)
    })();
    let code = match result {
        Ok(code) => code,
        Err(r) => {
            let facts = Facts {
                invoker: Some(&invoker),
                host: &host,
                command: &run.command,
                executable: executable.as_deref(),
            };
            refuse(&r, Some(&auditor), &facts, requested)
        }
    };
    stale_runs::remove(&auditor.session_id);
    if let Some(cg) = &own_cgroup {
        cg.leave();
    }
    code
}
