//! Grants: listing, revocation, and the signed revocation list.
use crate::auth::Caller;
use crate::broker::{Broker, Change};
use crate::error::ApiError;
use crate::model::Grant;
use crate::store::{read, write, StoredRevocations, Tx};
use crate::workflow::{approves, text, Events, ReasonBody, LIST_LIMIT};
use jit_audit::{Event, EventType};
use jit_grant::{format_time, RevocationList, Revoked};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn can_manage_grant(b: &Broker, c: &Caller, g: &Grant) -> bool {
    g.user == c.user || b.config.is_admin(&c.groups) || approves(b, &c.groups, &g.rule)
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
    let revoked: Vec<Revoked> = tx
        .revoked_grants(now)?
        .into_iter()
        .map(|g| Revoked {
            jti: g.id,
            exp: g.exp,
            at: g.revoked_at.unwrap_or(now),
            reason: g.revoke_reason.unwrap_or_default(),
        })
        .collect();
    let content = serde_json::to_string(&revoked).unwrap_or_default();
    let current = tx.revocations()?;
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

pub fn revoke(
    b: &Broker,
    c: &Caller,
    id: &str,
    body: ReasonBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    text("reason", &body.reason, 2000)?;
    let actor = c.actor();
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let g = tx.get_grant(id)?.filter(|g| can_manage_grant(b, c, g));
        let mut g = g.ok_or_else(|| ApiError::not_found(format!("no grant {id}")))?;
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
                    c.user, g.id, g.user, g.rule, body.reason
                ),
            },
            &mut events,
        )?;
        Ok(g.to_json(g.user == c.user))
    })?;
    Ok((value, events))
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
