//! Hosts (enrollment, retirement, enrollment tokens) and the audit trail, for admins.
use crate::auth::{Caller, Verified};
use crate::broker::{Actor, Broker, Change};
use crate::error::ApiError;
use crate::model::{AuditEntry, Host, HostState};
use crate::roles::require_admin;
use crate::store::{read, write, AuditFilter};
use crate::workflow::Events;
use jit_grant::{format_time, PublicKey};
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

pub fn valid_host_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "invalid_body",
            format!("{name:?} is not a host name"),
        ))
    }
}

pub fn parse_host_key(key: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_paserk(key)
        .map_err(|e| ApiError::bad("invalid_key", format!("public_key: {e}")))
}

/// Who enrolls a host.
pub enum Enrollment<'a> {
    /// An admin (API, after `require_admin`) or the local admin CLI.
    Admin,
    /// The host itself, with a one-time token and an attestation by the key being enrolled
    /// (verified, its jti not yet recorded: that happens only once the token is accepted).
    Token {
        token: &'a str,
        attestation: &'a Verified,
    },
}

/// Enroll `name` with `key`. With a token, the token is checked and consumed, and the
/// attestation recorded, in the transaction that enrolls the host: a bad token writes nothing.
pub fn add_host(
    b: &Broker,
    actor: &Actor,
    name: &str,
    key: &PublicKey,
    enrollment: Enrollment<'_>,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    valid_host_name(name)?;
    let how = match enrollment {
        Enrollment::Token { .. } => "enrollment token",
        Enrollment::Admin => "admin",
    };
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        if let Enrollment::Token { token, attestation } = &enrollment {
            let hash = crate::audit_chain::sha256_hex(token.as_bytes());
            if !tx.take_enrollment_token(&hash, name, now)? {
                return Err(ApiError::forbidden("enrollment_token_invalid", format!("the enrollment token is not valid for host {name} (unknown, used, expired, or made for another name); ask the broker's admin for a new one: jitbroker host enroll-token {name}")));
            }
            attestation.remember(tx)?;
        }
        if let Some(existing) = tx.get_host(name)? {
            return Err(ApiError::conflict("host_exists", format!("host {name} is already {} (key {}); retire it first to re-enroll under a new name, or pick another name", existing.state.as_str(), existing.kid)));
        }
        if let Some(other) = tx.host_by_kid(&key.kid())? {
            return Err(ApiError::conflict(
                "key_in_use",
                format!(
                    "key {} is already enrolled for host {}",
                    key.kid(),
                    other.name
                ),
            ));
        }
        let host = Host {
            name: name.to_string(),
            public_key: key.to_paserk(),
            kid: key.kid(),
            state: HostState::Enrolled,
            created: now,
            retired: None,
        };
        tx.insert_host(&host)?;
        b.record(
            tx,
            now,
            Change {
                kind: "host.enroll",
                actor,
                subject: name,
                data: json!({"host": host.to_json(), "how": how}),
                syslog: None,
                summary: format!("host {name} enrolled by {} ({how})", actor.user),
            },
            &mut events,
        )?;
        Ok(host.to_json())
    })?;
    Ok((value, events))
}

pub fn retire_host(
    b: &Broker,
    actor: &Actor,
    name: &str,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let mut host = tx.get_host(name)?.ok_or_else(|| {
            ApiError::not_found(format!("no host {name}; see `jitbroker host list`"))
        })?;
        if host.state == HostState::Retired {
            return Err(ApiError::conflict(
                "host_retired",
                format!("host {name} is already retired"),
            ));
        }
        tx.retire_host(name, now)?;
        host.state = HostState::Retired;
        host.retired = Some(now);
        b.record(
            tx,
            now,
            Change {
                kind: "host.retire",
                actor,
                subject: name,
                data: json!({"host": host.to_json()}),
                syslog: None,
                summary: format!("host {name} retired by {}", actor.user),
            },
            &mut events,
        )?;
        Ok(host.to_json())
    })?;
    Ok((value, events))
}

pub fn list_hosts(b: &Broker) -> Result<Vec<Host>, ApiError> {
    read(b.store.as_ref(), |tx| Ok(tx.list_hosts()?))
}

/// A one-time enrollment token for `name` (only its hash is stored).
pub fn enrollment_token(
    b: &Broker,
    actor: &Actor,
    name: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<String, ApiError> {
    valid_host_name(name)?;
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let token = format!("jitenroll-{}", crate::audit_chain::hex(&raw));
    let hash = crate::audit_chain::sha256_hex(token.as_bytes());
    let mut events = Vec::new();
    write(b.store.as_ref(), |tx| {
        if tx.get_host(name)?.is_some() {
            return Err(ApiError::conflict(
                "host_exists",
                format!("host {name} already exists"),
            ));
        }
        tx.insert_enrollment_token(&hash, name, now + ttl)?;
        b.record(
            tx,
            now,
            Change {
                kind: "host.enroll_token",
                actor,
                subject: name,
                data: json!({"expires": format_time(now + ttl)}),
                syslog: None,
                summary: format!("enrollment token for host {name} created by {}", actor.user),
            },
            &mut events,
        )?;
        Ok(())
    })?;
    Ok(token)
}

/// The audit trail, for admins (`GET /v1/audit` and the web pages' Audit page): at most 1000
/// rows matching `filter`.
pub fn audit_search(
    b: &Broker,
    c: &Caller,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, ApiError> {
    require_admin(b, c)?;
    let filter = AuditFilter {
        limit: filter.limit.clamp(1, 1000),
        ..filter.clone()
    };
    read(b.store.as_ref(), |tx| {
        if filter.is_plain_page() {
            // A page of the whole trail, oldest first (GET /v1/audit).
            return Ok(tx.list_audit(filter.after, filter.limit)?);
        }
        Ok(tx.search_audit(&filter)?)
    })
}
