//! jitrun: run ONE command with the capabilities a signed, short-lived grant and this
//! host's policy allow; end it when the grant expires; log every step.
//!
//! This file only orders the steps of docs/architecture.md's flow (`run_mode` holds the whole
//! of one elevation); each step is a function of `pipeline` or a module: `harden` →
//! `identity` → `config` (via `trusted_files`) → `command` → `decide` (grant + policy) →
//! `authenticate` → `audit` → `exec` (fork, `elevate`, supervise, watchdog).
//!
//! `unsafe` is denied here and allowed in `system/` alone (the OS layer). Calling one of its
//! `unsafe fn`s (fork, closing descriptors nothing owns) takes an `#[allow(unsafe_code)]` on
//! that one statement and a `// SAFETY:` comment saying why the caller's side holds.
#![deny(unsafe_code)]

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
mod env;
mod exec;
mod front;
mod harden;
mod identity;
mod inherited;
mod list;
mod paths;
mod pipeline;
mod policy_cache;
mod recording;
mod refusal;
mod revocations;
#[allow(unsafe_code)]
mod system;
mod trusted_files;
mod user_files;
mod uses;

use audit::{Auditor, Facts};
use cli::{Mode, RunArgs};
use exec::stale_runs;
use harden::CallerState;
use jit_policy::Settings;
use refusal::Refusal;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let hardened = match harden::harden() {
        Ok(x) => x,
        Err(r) => return refuse(&r, None, &Facts::command(&[]), None),
    };
    let harden::Hardened { args, caller } = hardened;
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
        Mode::Run(r) => run_mode(r, caller),
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

/// `jitrun -l`: the rules that name the caller and her stored grants.
fn list_mode() -> i32 {
    match list_for_caller() {
        Ok(()) => 0,
        Err(r) => refuse(&r, None, &Facts::command(&[]), None),
    }
}

fn list_for_caller() -> Result<(), Refusal> {
    let inv = pipeline::who_asks()?;
    let (settings, host) = pipeline::settings()?;
    // The rules that name the caller are the ones -l shows: the snapshot's subset will do.
    let policy = policy_cache::load_for(&inv, None, false)?.policy;
    let keys = config::load_keys()?;
    list::print(&policy, &keys, &settings, &inv, &host);
    Ok(())
}

/// `jitrun -K`: forget the caller's cached authentications.
fn reset_auth_mode() -> i32 {
    match pipeline::who_asks().and_then(|inv| authenticate::cache::clear(inv.uid)) {
        Ok(()) => 0,
        Err(r) => refuse(&r, None, &Facts::command(&[]), None),
    }
}

/// `jitrun [OPTIONS] COMMAND…`: one elevation, step by step. A refusal is logged with what
/// is known when it happens: through the default socket until the settings are read, and
/// with the caller, the host and (once located) the program as soon as they are known.
fn run_mode(run: RunArgs, caller: CallerState) -> i32 {
    let requested = run.user.as_deref();
    let mut facts = Facts::command(&run.command);
    let invoker = match pipeline::who_asks() {
        Ok(i) => i,
        Err(r) => return refuse(&r, None, &facts, requested),
    };
    facts.invoker = Some(&invoker);
    if let Err(r) = harden::become_unsignalable() {
        return refuse(&r, None, &facts, requested);
    }
    let (settings, host) = match pipeline::settings() {
        Ok(s) => s,
        Err(r) => return refuse(&r, None, &facts, requested),
    };
    facts.host = &host;
    let auditor = match pipeline::auditor(&settings, &host) {
        Ok(a) => a,
        Err(r) => return refuse(&r, None, &facts, requested),
    };
    let own_cgroup = match pipeline::own_cgroup(&auditor.session_id) {
        Ok(pipeline::Placed::Front(front, cg)) => return front.wait(&cg),
        Ok(pipeline::Placed::Supervisor(cg)) => cg,
        Err(r) => return refuse(&r, Some(&auditor), &facts, requested),
    };
    // Runs whose supervisor and watchdog both vanished are ended (and logged) now.
    stale_runs::sweep(&auditor, &auditor.session_id);
    let steps = pipeline::Run {
        args: &run,
        invoker: &invoker,
        settings: &settings,
        host: &host,
        auditor: &auditor,
        own_cgroup: own_cgroup.as_ref(),
    };
    // The resolved program, once known, so that a refusal names it in its audit event.
    let mut executable = None;
    let code = match pipeline::elevate(&steps, caller, &mut executable) {
        Ok(code) => code,
        Err(r) => {
            facts.executable = executable.as_deref();
            refuse(&r, Some(&auditor), &facts, requested)
        }
    };
    stale_runs::remove(&auditor.session_id);
    // The front (or the watchdog) removes the run's cgroup after this process has exited.
    if let Some(cg) = own_cgroup.as_ref().filter(|cg| !cg.removal_handed_over()) {
        cg.leave();
    }
    code
}
