//! Grants: listing, revocation, and the signed revocation list. Revoking by id does not need
//! the grant's row: a grant the store does not know (lost with a crash before it reached the
//! disk, or from an earlier store) is revoked by an admin, or by whoever may manage it when
//! they present its token.
use crate::auth::Caller;
use crate::broker::{Broker, Change};
use crate::error::ApiError;
use crate::model::Grant;
use crate::roles::{approves, is_admin};
use crate::store::{read, write, StoredRevocations, Tx, UnknownRevocation};
use crate::text::{check_text, quoted};
use crate::workflow::{Events, LIST_LIMIT};
use jit_audit::{Event, EventType};
use jit_grant::{format_time, Claims, KeySet, RevocationList, Revoked, TokenKind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub reason: String,
    /// The grant token, for a grant the store has no row for (its claims say who may revoke
    /// it and until when it must stay on the list).
    #[serde(default)]
    pub token: Option<String>,
}

fn can_manage(b: &Broker, c: &Caller, user: &str, rule: &str) -> bool {
    user == c.user || is_admin(b, c) || approves(b, c, rule)
}

fn can_manage_grant(b: &Broker, c: &Caller, g: &Grant) -> bool {
    can_manage(b, c, &g.user, &g.rule)
}

pub fn list_grants(
    b: &Broker,
    c: &Caller,
    mine: bool,
    active: bool,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    read(b.store.as_ref(), |tx| {
        let grants = if mine {
            tx.list_grants(Some(&c.user), None, LIST_LIMIT)?
        } else {
            let all = tx.list_grants(None, None, LIST_LIMIT * 4)?;
            all.into_iter()
                .filter(|g| can_manage_grant(b, c, g))
                .take(LIST_LIMIT as usize)
                .collect()
        };
        let list: Vec<Value> = grants
            .iter()
            .filter(|g| !active || (g.revoked_at.is_none() && g.exp > now))
            .map(|g| g.to_json(g.user == c.user))
            .collect();
        Ok(json!({"grants": list}))
    })
}

pub fn show_grant(b: &Broker, c: &Caller, id: &str) -> Result<Value, ApiError> {
    read(b.store.as_ref(), |tx| {
        let g = tx.get_grant(id)?.filter(|g| can_manage_grant(b, c, g));
        let g = g.ok_or_else(|| {
            ApiError::not_found(format!("no grant {id}; list yours with `jitctl grants`"))
        })?;
        Ok(g.to_json(g.user == c.user))
    })
}

/// Build and sign the revocation list from the store; seq+1 when its entries changed.
fn refresh_revocations(
    b: &Broker,
    tx: &mut dyn Tx,
    now: OffsetDateTime,
    force_change: bool,
) -> Result<StoredRevocations, ApiError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    // The current list first: in a write transaction on PostgreSQL this takes the list's
    // lock, so the entries read next include every revocation another replica committed
    // before it (read before the lock, they could miss one that the list it then replaces
    // holds, and the new list would drop it).
    let current = tx.revocations()?;
    let mut revoked: Vec<Revoked> = tx
        .revoked_grants(now)?
        .into_iter()
        .map(|g| Revoked {
            jti: g.id,
            exp: g.exp,
            at: g.revoked_at.unwrap_or(now),
            reason: g.revoke_reason.unwrap_or_default(),
        })
        .collect();
    revoked.extend(tx.revoked_unknown(now)?.into_iter().map(|u| Revoked {
        jti: u.jti,
        exp: u.exp,
        at: u.revoked_at,
        reason: u.reason,
    }));
    revoked.sort_by(|a, b| (a.at, &a.jti).cmp(&(b.at, &b.jti)));
    let content = serde_json::to_string(&revoked).unwrap_or_default();
    let seq = match &current {
        Some(cur) if cur.content == content && !force_change => cur.seq,
        Some(cur) => cur.seq + 1,
        None => 1,
    };
    let list = RevocationList {
        iss: b.config.id.clone(),
        iat: now,
        seq,
        revoked,
    };
    let token = list
        .sign(&b.key)
        .map_err(|e| ApiError::internal(format!("cannot sign the revocation list: {e}")))?;
    let stored = StoredRevocations {
        seq,
        iat: now,
        content,
        token,
    };
    tx.set_revocations(&stored)?;
    Ok(stored)
}

/// The verified claims of a presented grant token, which must be this broker's grant `id`.
fn presented(b: &Broker, id: &str, token: &str) -> Result<Claims, ApiError> {
    let mut keys = KeySet::new();
    keys.insert(b.key.public_key());
    let bad = |why: String| ApiError::forbidden("grant_token_invalid", format!("token: {why}"));
    let claims = jit_grant::verify(token, &keys, TokenKind::Grant)
        .map_err(|e| bad(format!("not a grant signed by this broker: {e}")))?
        .claims;
    if claims.jti != id {
        return Err(bad(format!("it is grant {}, not {id}", claims.jti)));
    }
    Ok(claims)
}

pub fn revoke(
    b: &Broker,
    c: &Caller,
    id: &str,
    body: RevokeBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    check_text("reason", &body.reason, 2000)?;
    let actor = c.actor();
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let Some(g) = tx.get_grant(id)? else {
            // No row: the token, if presented, says whose grant it is (a known grant's row
            // decides, whatever token comes along).
            let claims = match &body.token {
                Some(token) => Some(presented(b, id, token)?),
                None => None,
            };
            return revoke_unknown(
                b,
                c,
                tx,
                id,
                claims.as_ref(),
                &body.reason,
                now,
                &mut events,
            );
        };
        let mut g = Some(g)
            .filter(|g| can_manage_grant(b, c, g))
            .ok_or_else(|| ApiError::not_found(format!("no grant {id}")))?;
        if g.revoked_at.is_some() {
            return Err(ApiError::conflict(
                "already_revoked",
                format!("grant {id} is already revoked"),
            ));
        }
        if g.exp <= now {
            return Err(ApiError::conflict(
                "grant_expired",
                format!(
                    "grant {id} expired at {}; nothing to revoke",
                    format_time(g.exp)
                ),
            ));
        }
        tx.revoke_grant(id, now, &c.user, &body.reason)?;
        g.revoked_at = Some(now);
        g.revoked_by = Some(c.user.clone());
        g.revoke_reason = Some(body.reason.clone());
        let list = refresh_revocations(b, tx, now, true)?;
        let mut e = Event::new(EventType::GrantRevoke);
        e.str("jitrun.rule", g.rule.as_str())
            .str("jitrun.request.id", g.request_id.as_str())
            .str("jitrun.grant.id", g.id.as_str())
            .str("jitrun.grant.kid", b.kid.as_str())
            .str("jitrun.grant.issuer", b.config.id.as_str())
            .str("jitrun.grant.expires", format_time(g.exp))
            .bool("jitrun.grant.break_glass", g.break_glass)
            .str("jitrun.revoke_reason", body.reason.as_str());
        b.record(
            tx,
            now,
            Change {
                kind: "grant.revoke",
                actor: &actor,
                subject: &g.id,
                data: json!({"grant": g.to_json(false), "revocations_seq": list.seq}),
                syslog: Some(e),
                summary: format!(
                    "{} revoked grant {} of {} for {}: {}",
                    c.user,
                    g.id,
                    g.user,
                    g.rule,
                    quoted(&body.reason)
                ),
            },
            &mut events,
        )?;
        Ok(g.to_json(g.user == c.user))
    })?;
    Ok((value, events))
}

/// The longest a grant of this broker's workflows can live (how long a revocation of an
/// unknown grant stays on the list when no token says).
fn longest_ttl(b: &Broker) -> Duration {
    b.config
        .workflow
        .iter()
        .map(|w| w.max_ttl)
        .max()
        .unwrap_or(Duration::from_secs(24 * 3600))
}

/// Revoke grant `id`, which the store has no row for: with its token, whoever may manage it;
/// without, an admin (it stays on the list for the longest `max_ttl`).
#[allow(clippy::too_many_arguments)]
fn revoke_unknown(
    b: &Broker,
    c: &Caller,
    tx: &mut dyn Tx,
    id: &str,
    claims: Option<&Claims>,
    reason: &str,
    now: OffsetDateTime,
    events: &mut Events,
) -> Result<Value, ApiError> {
    let allowed = match claims {
        Some(cl) => can_manage(b, c, &cl.sub, &cl.rule),
        None => is_admin(b, c) && ulid::Ulid::from_string(id).is_ok(),
    };
    if !allowed {
        return Err(ApiError::not_found(format!(
            "no grant {id}; to revoke a grant the broker has no record of, an admin revokes it by id, or its user or an approver presents its token (jitctl revoke does when the grant is in your grant store)"
        )));
    }
    if tx.get_revoked_unknown(id)?.is_some() {
        return Err(ApiError::conflict(
            "already_revoked",
            format!("grant {id} is already revoked"),
        ));
    }
    let exp = claims.map_or(now + longest_ttl(b), |cl| cl.exp);
    if exp <= now {
        return Err(ApiError::conflict(
            "grant_expired",
            format!(
                "grant {id} expired at {}; nothing to revoke",
                format_time(exp)
            ),
        ));
    }
    let entry = UnknownRevocation {
        jti: id.to_string(),
        exp,
        revoked_at: now,
        revoked_by: c.user.clone(),
        reason: reason.to_string(),
        user: claims.map(|cl| cl.sub.clone()),
        rule: claims.map(|cl| cl.rule.clone()),
    };
    tx.revoke_unknown(&entry)?;
    let list = refresh_revocations(b, tx, now, true)?;
    let grant = json!({
        "id": id, "request_id": null, "user": entry.user, "rule": entry.rule,
        "hosts": claims.map_or(Vec::new(), |cl| cl.hosts.clone()),
        "iat": claims.map(|cl| format_time(cl.iat)), "exp": format_time(exp), "token": null,
        "break_glass": claims.is_some_and(|cl| cl.break_glass), "revoked": true,
        "revoked_at": format_time(now), "revoked_by": c.user, "revoke_reason": reason,
    });
    let mut e = Event::new(EventType::GrantRevoke);
    e.str("jitrun.grant.id", id)
        .str("jitrun.grant.kid", b.kid.as_str())
        .str("jitrun.grant.issuer", b.config.id.as_str())
        .str("jitrun.grant.expires", format_time(exp))
        .bool(
            "jitrun.grant.break_glass",
            claims.is_some_and(|cl| cl.break_glass),
        )
        .str("jitrun.revoke_reason", reason);
    if let Some(cl) = claims {
        e.str("jitrun.rule", cl.rule.as_str());
    }
    b.record(
        tx,
        now,
        Change {
            kind: "grant.revoke",
            actor: &c.actor(),
            subject: id,
            data: json!({"grant": grant, "revocations_seq": list.seq, "unknown_grant": true}),
            syslog: Some(e),
            summary: format!(
                "{} revoked grant {id} (not in the broker's store{}): {}",
                c.user,
                entry
                    .user
                    .as_ref()
                    .map(|u| format!("; user {u}"))
                    .unwrap_or_default(),
                quoted(reason)
            ),
        },
        events,
    )?;
    Ok(grant)
}

/// The current signed list, re-signed when older than `revocations_refresh` (or when
/// entries have expired).
pub fn revocations(b: &Broker, now: OffsetDateTime) -> Result<Value, ApiError> {
    let current = read(b.store.as_ref(), |tx| Ok(tx.revocations()?))?;
    let fresh = current.filter(|cur| {
        let age = (now - cur.iat).whole_seconds();
        age >= 0 && (age as u64) < b.config.revocations_refresh.as_secs()
    });
    let list = match fresh {
        Some(l) => l,
        None => write(b.store.as_ref(), |tx| {
            refresh_revocations(b, tx, now, false)
        })?,
    };
    Ok(json!({"token": list.token, "seq": list.seq, "iat": format_time(list.iat)}))
}
