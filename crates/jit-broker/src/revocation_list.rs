//! The signed revocation list (`jitrun:revocations:v1`, docs/broker.md): built from the
//! store's revoked grants, revocations of grants it has no row for, and revoked sealed
//! grants, each until its `exp`; `seq` grows with every change of the entries.
use crate::broker::Broker;
use crate::error::ApiError;
use crate::store::{read, write, StoredRevocations, Tx};
use jit_grant::{RevocationList, Revoked};
use serde_json::Value;
use time::OffsetDateTime;

/// Build and sign the revocation list from the store; seq+1 when its entries changed.
pub fn refresh_revocations(
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
    let revoked = entries(tx, now)?;
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

/// What the list holds at `now`: revoked grants, revocations of grants the store has no row
/// for, revoked sealed grants, each until its `exp`; in the order they were revoked.
fn entries(tx: &mut dyn Tx, now: OffsetDateTime) -> Result<Vec<Revoked>, ApiError> {
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
    revoked.extend(tx.revoked_sealed(now)?.into_iter().map(|g| Revoked {
        jti: g.id,
        exp: g.exp,
        at: g.revoked_at.unwrap_or(now),
        reason: g.revoke_reason.unwrap_or_default(),
    }));
    revoked.sort_by(|a, b| (a.at, &a.jti).cmp(&(b.at, &b.jti)));
    Ok(revoked)
}

/// Was the stored list signed with this broker's current key? After a key roll-over (or back)
/// it is re-signed at once, rather than served under a key hosts may have dropped.
fn signed_by_us(b: &Broker, list: &StoredRevocations) -> bool {
    jit_grant::decode_unverified(&list.token)
        .ok()
        .and_then(|t| t.kid)
        .is_some_and(|kid| kid == b.kid)
}

/// The current signed list, re-signed when older than `revocations_refresh`, signed with
/// another key, or when entries have expired.
pub fn revocations(b: &Broker, now: OffsetDateTime) -> Result<Value, ApiError> {
    let current = read(b.store.as_ref(), |tx| Ok(tx.revocations()?))?;
    let fresh = current.filter(|cur| {
        let age = (now - cur.iat).whole_seconds();
        age >= 0 && (age as u64) < b.config.revocations_refresh.as_secs() && signed_by_us(b, cur)
    });
    let list = match fresh {
        Some(l) => l,
        None => {
            let list = write(b.store.as_ref(), |tx| {
                refresh_revocations(b, tx, now, false)
            })?;
            // Expired entries may have left it (a new seq): watchers learn of it now.
            b.watches.poke();
            list
        }
    };
    Ok(list.to_json())
}
