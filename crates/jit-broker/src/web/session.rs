//! Sessions of the web pages, kept in the store: the browser holds a random token in an
//! `HttpOnly`, `SameSite=Lax` cookie (`Secure` and `__Host-` when the pages are served over
//! https), the store its SHA-256, the CSRF token its forms must carry, who signed in (user,
//! groups, issuer, subject) and when. A session ends at sign-out, when an admin ends it
//! (`jitbroker session end`), after `web.session_idle` without a page loaded, and
//! `web.session_lifetime` after sign-in in any case.
use crate::audit_chain::{hex, sha256_hex};
use crate::auth::{Caller, Identity};
use crate::broker::{new_id, Actor, Broker, Change};
use crate::config::WebSettings;
use crate::error::ApiError;
use crate::store::{bookkeeping, read, write, WebSession};
use crate::web::oidc::Person;
use crate::workflow::Events;
use jit_grant::format_time;
use serde_json::json;
use time::OffsetDateTime;

/// 256 random bits, as hex.
pub fn random_token() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(hex(&raw))
}

/// The name of the session cookie (`__Host-` over https: host-only, `Secure`, path `/`).
pub fn cookie_name(web: &WebSettings) -> &'static str {
    if web.secure() {
        "__Host-jitbroker_session"
    } else {
        "jitbroker_session"
    }
}

/// The name of the cookie that binds a sign-in in progress to its browser.
pub fn signin_cookie_name(web: &WebSettings) -> &'static str {
    if web.secure() {
        "__Host-jitbroker_signin"
    } else {
        "jitbroker_signin"
    }
}

/// `Set-Cookie` for `name=value` (`max_age` seconds; 0 deletes it).
pub fn set_cookie(web: &WebSettings, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Lax");
    if web.secure() {
        c.push_str("; Secure; Path=/");
    } else {
        c.push_str("; Path=/ui/");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Compare secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A live session and the caller it stands for.
#[derive(Debug, Clone)]
pub struct Signed {
    pub session: WebSession,
    pub caller: Caller,
}

impl Signed {
    fn new(session: WebSession) -> Signed {
        let caller = Caller {
            user: session.user.clone(),
            groups: session.groups.clone(),
            identity: Identity::Oidc {
                issuer: session.issuer.clone(),
                subject: session.subject.clone(),
            },
        };
        Signed { session, caller }
    }
}

/// Why a cookie gives no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or a token the store does not know.
    Unknown,
    /// It ended (sign-out, an admin), or ran out now (idle, lifetime).
    Ended,
}

/// The session of `token`, if it is live at `now`; marks it seen. One that has run out is
/// ended here (`idle` or `expired`).
pub fn lookup(
    b: &Broker,
    web: &WebSettings,
    token: &str,
    now: OffsetDateTime,
) -> Result<Result<Signed, NoSession>, ApiError> {
    let hash = sha256_hex(token.as_bytes());
    bookkeeping(b.store.as_ref(), |tx| {
        let Some(s) = tx.web_session_by_token(&hash)? else {
            return Ok(Err(NoSession::Unknown));
        };
        if s.ended.is_some() {
            return Ok(Err(NoSession::Ended));
        }
        let why = if now >= s.expires {
            Some("expired")
        } else if now - s.last_seen >= web.session_idle {
            Some("idle")
        } else {
            None
        };
        if let Some(why) = why {
            tx.end_web_session(&s.id, now, why)?;
            return Ok(Err(NoSession::Ended));
        }
        tx.touch_web_session(&s.id, now)?;
        Ok(Ok(Signed::new(s)))
    })
}

/// Start a session for `person` (audited as `session.start`); returns it and its token.
pub fn start(
    b: &Broker,
    web: &WebSettings,
    person: &Person,
    now: OffsetDateTime,
) -> Result<(Signed, String, Events), ApiError> {
    let token = random_token()?;
    let session = WebSession {
        id: new_id(),
        token_sha256: sha256_hex(token.as_bytes()),
        csrf: random_token()?,
        user: person.user.clone(),
        groups: person.groups.clone(),
        issuer: person.issuer.clone(),
        subject: person.subject.clone(),
        created: now,
        last_seen: now,
        expires: now + web.session_lifetime,
        ended: None,
        end_reason: None,
    };
    let signed = Signed::new(session);
    let mut events = Vec::new();
    write(b.store.as_ref(), |tx| {
        tx.insert_web_session(&signed.session)?;
        b.record(
            tx,
            now,
            Change {
                kind: "session.start",
                actor: &signed.caller.actor(),
                subject: &signed.session.id,
                data: json!({"session": session_json(&signed.session)}),
                syslog: None,
                summary: format!(
                    "{} signed in to the web pages (provider {}, subject {})",
                    person.user, person.issuer, person.subject
                ),
            },
            &mut events,
        )
    })?;
    Ok((signed, token, events))
}

/// End session `s` now, for `why` (`logout`, `ended by an admin`, …), audited as
/// `session.end` with `actor`. False when it had ended already.
pub fn end(
    b: &Broker,
    s: &WebSession,
    actor: &Actor,
    why: &str,
    now: OffsetDateTime,
) -> Result<(bool, Events), ApiError> {
    let mut events = Vec::new();
    let ended = write(b.store.as_ref(), |tx| {
        if !tx.end_web_session(&s.id, now, why)? {
            return Ok(false);
        }
        let mut s = s.clone();
        s.ended = Some(now);
        s.end_reason = Some(why.to_string());
        b.record(
            tx,
            now,
            Change {
                kind: "session.end",
                actor,
                subject: &s.id,
                data: json!({"session": session_json(&s)}),
                syslog: None,
                summary: format!("web session {} of {} ended: {why}", s.id, s.user),
            },
            &mut events,
        )?;
        Ok(true)
    })?;
    Ok((ended, events))
}

/// Sessions (newest first): `user`'s or everyone's; only open ones unless `all`.
pub fn list(b: &Broker, user: Option<&str>, all: bool) -> Result<Vec<WebSession>, ApiError> {
    read(b.store.as_ref(), |tx| Ok(tx.list_web_sessions(user, !all)?))
}

/// What the audit trail and `jitbroker session list --json` show of a session (never its
/// token or CSRF token).
pub fn session_json(s: &WebSession) -> serde_json::Value {
    json!({
        "id": s.id, "user": s.user, "groups": s.groups, "issuer": s.issuer, "subject": s.subject,
        "created": format_time(s.created), "last_seen": format_time(s.last_seen),
        "expires": format_time(s.expires), "ended": s.ended.map(format_time), "end_reason": s.end_reason,
    })
}

/// Drop sign-ins that were never finished, and sessions a day after they ended.
pub fn prune(b: &Broker, now: OffsetDateTime) -> Result<(), ApiError> {
    bookkeeping(b.store.as_ref(), |tx| {
        Ok(tx.prune_web(now, now - std::time::Duration::from_secs(24 * 3600))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(
            cookie("a=1; jitbroker_session=abc ; b=2", "jitbroker_session"),
            Some("abc")
        );
        assert_eq!(cookie("xjitbroker_session=abc", "jitbroker_session"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab") && !same_secret("", "a"));
        assert_eq!(random_token().unwrap().len(), 64);
    }
}
