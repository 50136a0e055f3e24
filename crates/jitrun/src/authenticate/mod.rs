//! Step 7: PAM, for rules with `authenticate = true` (docs/architecture.md, step 7).
//!
//! The invoking user authenticates (`pam_authenticate`, up to three tries, like sudo) and
//! passes the account checks (`pam_acct_mgmt`) on service `pam.service` (default `jitrun`);
//! then PAM_USER becomes the run-as user and a session is opened around the command and
//! closed after it. The person is asked on `/dev/tty`, never on stdin/stdout (they belong
//! to the command). MFA is whatever modules the admin stacks in `/etc/pam.d/jitrun`.
//!
//! With `pam.auth_cache` set, a successful authentication counts for that long for the same
//! user in the same terminal session ([`cache`]); the account checks run every time.

pub mod cache;
mod tty;

use crate::identity::{Invoker, Target};
use crate::refusal::Refusal;
use crate::system::pam::{
    self, Library, Pam, PamError, PAM_ABORT, PAM_ACCT_EXPIRED, PAM_AUTH_ERR, PAM_CONV_ERR,
    PAM_MAXTRIES, PAM_NEW_AUTHTOK_REQD, PAM_PERM_DENIED, PAM_USER_UNKNOWN,
};
use crate::system::process;
use jit_policy::{DenyCode, Settings};
use std::cell::Cell;
use std::rc::Rc;

/// Tries before refusing (sudo's `passwd_tries`).
const TRIES: u32 = 3;

/// An open PAM session; [`Session::close`] ends it after the command.
pub struct Session {
    pam: Pam,
}

impl Session {
    /// `pam_close_session` + `pam_setcred(DELETE)`; a failure is returned for a warning.
    pub fn close(mut self) -> Result<(), PamError> {
        let _root = process::real_root().map_err(|e| PamError {
            code: PAM_ABORT,
            text: format!("cannot take real uid 0 for PAM: {e}"),
        })?;
        self.pam.close_session()
    }
}

/// Authenticate `invoker` for `rule`, check the account, and open the session for `target`.
pub fn authenticate(
    settings: &Settings,
    invoker: &Invoker,
    target: &Target,
    rule: &str,
) -> Result<Session, Refusal> {
    let service = settings.pam.service.as_str();
    let deny = |code: DenyCode, message: String| {
        Refusal::deny(code.as_str(), message).with_rule(Some(rule.to_string()))
    };
    let pam_failure = |what: &str, e: PamError| {
        Refusal::config(
            "pam",
            format!("PAM service {service:?} failed at {what}: {e}; check /etc/pam.d/{service}"),
        )
        .with_rule(Some(rule.to_string()))
    };
    // libpam is loaded only now, for the first rule that needs it (system/pam.rs).
    let lib = Library::get().map_err(|e| {
        Refusal::config(
            "pam",
            format!(
                "rule {rule} asks {} to authenticate, but Linux-PAM cannot be loaded ({}: {e}); install it (Debian and Ubuntu: apt-get install libpam0g; Fedora: dnf install pam); nothing was run",
                invoker.name,
                pam::LIBRARY
            ),
        )
        .with_rule(Some(rule.to_string()))
    })?;
    // PAM modules run as full root, as under sudo (real uid 0 until this returns).
    let _root = process::real_root()
        .map_err(|e| Refusal::config("pam", format!("cannot take real uid 0 for PAM: {e}")))?;
    let unanswered = Rc::new(Cell::new(false));
    let conversation = tty::Conversation::new(&invoker.name, unanswered.clone());
    let mut pam = Pam::start(lib, service, &invoker.name, Box::new(conversation))
        .map_err(|e| pam_failure("pam_start", e))?;
    pam.set_requester(invoker.tty.as_deref(), &invoker.name)
        .map_err(|e| pam_failure("pam_set_item", e))?;

    let key = cache::Key::current();
    let ttl = settings.pam.auth_cache;
    let cached = !ttl.is_zero()
        && key
            .as_ref()
            .is_some_and(|k| cache::is_fresh(invoker.uid, k, ttl));
    if !cached {
        ask(&mut pam, &unanswered, invoker, rule, service)?;
    }
    if let Err(e) = pam.account() {
        let why = account_refusal(&e, &invoker.name);
        return Err(deny(
            DenyCode::Account,
            format!("{why} (rule {rule}, PAM service {service}); nothing was run"),
        ));
    }
    if !cached && !ttl.is_zero() {
        if let Some(k) = &key {
            if let Err(r) = cache::record(invoker.uid, k) {
                say!(
                    "jitrun: warning: the authentication was not cached: {}",
                    r.message
                );
            }
        }
    }
    pam.set_user(&target.name)
        .map_err(|e| pam_failure("pam_set_item(PAM_USER)", e))?;
    pam.open_session()
        .map_err(|e| pam_failure("pam_open_session", e))?;
    Ok(Session { pam })
}

/// PAM's authentication, with up to [`TRIES`] attempts; a refusal says why in the person's terms.
fn ask(
    pam: &mut Pam,
    unanswered: &Cell<bool>,
    invoker: &Invoker,
    rule: &str,
    service: &str,
) -> Result<(), Refusal> {
    let name = &invoker.name;
    let mut tries = 0;
    let why = loop {
        tries += 1;
        match pam.authenticate() {
            Ok(()) => return Ok(()),
            Err(e) if e.code == PAM_AUTH_ERR && tries < TRIES => {
                tty::say("Sorry, try again.");
            }
            Err(e) if e.code == PAM_CONV_ERR || unanswered.get() => break format!(
                "rule {rule} asks {name} to authenticate (PAM service {service}), and no answer came from the terminal; run jitrun from a terminal (it asks on /dev/tty) and answer the prompt"
            ),
            Err(e) if matches!(e.code, PAM_AUTH_ERR | PAM_MAXTRIES) => break format!(
                "authentication failed for {name} after {tries} attempt(s) (rule {rule}, PAM service {service}: {}); nothing was run",
                e.text
            ),
            Err(e) => break format!(
                "authentication failed for {name} (rule {rule}, PAM service {service}: {e}); nothing was run"
            ),
        }
    };
    Err(Refusal::deny(DenyCode::Authenticate.as_str(), why).with_rule(Some(rule.to_string())))
}

/// Why PAM's account check refused `name`, and what to do.
fn account_refusal(e: &PamError, name: &str) -> String {
    match e.code {
        PAM_ACCT_EXPIRED => {
            format!("the account {name} has expired; ask an administrator to renew it")
        }
        PAM_NEW_AUTHTOK_REQD => format!(
            "the password of {name} has expired; change it with `passwd`, then run jitrun again"
        ),
        PAM_PERM_DENIED | PAM_USER_UNKNOWN => {
            format!("PAM's account rules do not let {name} in ({})", e.text)
        }
        _ => format!("the account check failed for {name}: {e}"),
    }
}
