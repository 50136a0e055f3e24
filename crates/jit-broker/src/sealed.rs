//! Sealed break-glass grants (docs/broker.md, "Sealed break-glass grants"): for the day no
//! broker can be reached, an admin seals a batch of single-use break-glass grants in advance
//! (`jitbroker break-glass seal`), prints them (text and QR code) and keeps them offline. The
//! store keeps what was issued (not the tokens: their SHA-256), which host reported using which
//! grant (`POST /v1/sealed/used`, sent by `jitctl revocations sync`/`watch`), and revocations.
use crate::auth::Caller;
use crate::broker::{new_id, Actor, Broker, Change};
use crate::error::ApiError;
use crate::model::SealedGrant;
use crate::revocation_list::refresh_revocations;
use crate::store::{read, write, Tx};
use crate::text::{check_text, quoted};
use crate::workflow::Events;
use jit_audit::{Event, EventType};
use jit_grant::{format_time, Claims, TokenKind};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;

/// Most grants in one batch.
pub const MAX_COUNT: u32 = 100;
/// Longest validity of a sealed grant.
pub const MAX_VALIDITY: Duration = Duration::from_secs(366 * 86400);
/// Most uses one report may carry.
pub const MAX_REPORTED: usize = 500;

/// What `jitbroker break-glass seal` asks for.
pub struct SealRequest<'a> {
    pub rule: &'a str,
    pub user: &'a str,
    pub uid: Option<u32>,
    pub hosts: &'a [String],
    pub count: u32,
    pub validity: Duration,
    pub reason: &'a str,
    pub ticket: Option<&'a str>,
}

/// A sealed grant and its token (printed once, never stored).
pub struct Sealed {
    pub grant: SealedGrant,
    pub token: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The workflow must allow break-glass for the rule, and the hosts be within its `hosts`
/// (without workflow hosts: host names, no globs).
fn check_seal(b: &Broker, r: &SealRequest<'_>) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad("invalid_body", m);
    let wf = b.config.workflow_for(r.rule).ok_or_else(|| {
        ApiError::forbidden(
            "no_workflow",
            format!("no workflow in broker.toml covers rule {:?}", r.rule),
        )
    })?;
    if !wf.break_glass {
        return Err(ApiError::forbidden(
            "break_glass_not_allowed",
            format!(
                "the workflow for rule {} does not allow break-glass; set break_glass = true in its [[workflow]] to seal grants for it",
                r.rule
            ),
        ));
    }
    if !jit_grant::valid_user_name(r.user) {
        return Err(bad(format!("--user {:?} is not a user name", r.user)));
    }
    if r.count == 0 || r.count > MAX_COUNT {
        return Err(bad(format!("--count must be 1 to {MAX_COUNT}")));
    }
    if r.validity.is_zero() || r.validity > MAX_VALIDITY {
        return Err(bad(format!(
            "--validity must be longer than zero and at most {}",
            jit_policy::format_duration(MAX_VALIDITY)
        )));
    }
    if r.hosts.is_empty() {
        return Err(bad("name the hosts the grants are for (--hosts)".into()));
    }
    for h in r.hosts {
        let glob = jit_policy::glob::has_meta(h.as_bytes());
        let ok = if wf.hosts.is_empty() {
            !glob && !h.is_empty()
        } else {
            wf.hosts
                .iter()
                .any(|w| jit_policy::glob::glob_within(h.as_bytes(), w.as_bytes()))
        };
        if !ok {
            return Err(ApiError::forbidden(
                "host_not_allowed",
                if wf.hosts.is_empty() {
                    format!("{h:?}: the workflow for rule {} names no hosts, so sealed grants name hosts one by one (no globs)", r.rule)
                } else {
                    format!(
                        "{h:?} is not within the hosts of the workflow for rule {} ({:?})",
                        r.rule, wf.hosts
                    )
                },
            ));
        }
    }
    check_text("reason", r.reason, 2000)?;
    if let Some(t) = r.ticket {
        check_text("ticket", t, 200)?;
    }
    Ok(())
}

fn sign_one(
    b: &Broker,
    r: &SealRequest<'_>,
    batch: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Sealed, ApiError> {
    let claims = Claims {
        iss: b.config.id.clone(),
        sub: r.user.to_string(),
        uid: r.uid,
        hosts: r.hosts.to_vec(),
        jti: new_id(),
        iat: now,
        nbf: now,
        exp: now + r.validity,
        rule: r.rule.to_string(),
        caps: None,
        cmd: None,
        run_as: None,
        approvers: Vec::new(),
        ticket: r.ticket.map(str::to_string),
        reason: Some(r.reason.to_string()),
        max_uses: Some(1),
        break_glass: true,
        sealed: true,
    };
    let token = jit_grant::sign(&b.key, TokenKind::Grant, &claims)
        .map_err(|e| ApiError::internal(format!("cannot sign a sealed grant: {e}")))?;
    let grant = SealedGrant {
        id: claims.jti,
        batch: batch.to_string(),
        user: claims.sub,
        uid: claims.uid,
        rule: claims.rule,
        hosts: claims.hosts,
        iat: now,
        exp: claims.exp,
        reason: r.reason.to_string(),
        ticket: claims.ticket,
        sealed_by: actor.user.clone(),
        token_sha256: sha256_hex(token.as_bytes()),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        uses: Vec::new(),
    };
    Ok(Sealed { grant, token })
}

fn grant_event(kind: EventType, b: &Broker, g: &SealedGrant) -> Event {
    let mut e = Event::new(kind);
    e.str("jitrun.rule", g.rule.as_str())
        .str("jitrun.grant.id", g.id.as_str())
        .str("jitrun.grant.kid", b.kid.as_str())
        .str("jitrun.grant.issuer", b.config.id.as_str())
        .str("jitrun.grant.expires", format_time(g.exp))
        .list("jitrun.grant.approvers", std::iter::empty::<&str>())
        .str("jitrun.grant.reason", g.reason.as_str())
        .bool("jitrun.grant.break_glass", true);
    if let Some(t) = &g.ticket {
        e.str("jitrun.grant.ticket", t.as_str());
    }
    e
}

/// Seal a batch: sign `count` grants, record each (`grant.issue`, syslog too) and the batch
/// (`grant.seal`) in one transaction. The tokens are returned once and never stored.
pub fn seal(
    b: &Broker,
    actor: &Actor,
    r: &SealRequest<'_>,
    now: OffsetDateTime,
) -> Result<(Vec<Sealed>, Events), ApiError> {
    check_seal(b, r)?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let batch = new_id();
    let sealed = (0..r.count)
        .map(|_| sign_one(b, r, &batch, actor, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = Vec::new();
    write(b.store.as_ref(), |tx| {
        for s in &sealed {
            let g = &s.grant;
            tx.insert_sealed(g)?;
            b.record(
                tx,
                now,
                Change {
                    kind: "grant.issue",
                    actor,
                    subject: &g.id,
                    data: json!({"grant": g.to_json(), "sealed": true}),
                    syslog: Some(grant_event(EventType::GrantIssue, b, g)),
                    summary: format!(
                        "sealed break-glass grant {} for {} on {} sealed for {} until {}",
                        g.id,
                        g.rule,
                        g.hosts.join(","),
                        g.user,
                        format_time(g.exp)
                    ),
                },
                &mut events,
            )?;
        }
        b.record(
            tx,
            now,
            Change {
                kind: "grant.seal",
                actor,
                subject: &batch,
                data: json!({
                    "batch": batch, "rule": r.rule, "user": r.user, "hosts": r.hosts,
                    "count": r.count, "exp": format_time(now + r.validity), "reason": r.reason,
                    "ticket": r.ticket, "grants": sealed.iter().map(|s| &s.grant.id).collect::<Vec<_>>(),
                }),
                syslog: None,
                summary: format!(
                    "{} sealed {} break-glass grants for {} on {} (batch {batch}, for {}): {}",
                    actor.user,
                    r.count,
                    r.rule,
                    r.hosts.join(","),
                    r.user,
                    quoted(r.reason)
                ),
            },
            &mut events,
        )?;
        Ok(())
    })?;
    Ok((sealed, events))
}

/// Sealed grants of one batch (or every batch).
pub fn list(b: &Broker, batch: Option<&str>) -> Result<Vec<SealedGrant>, ApiError> {
    read(b.store.as_ref(), |tx| Ok(tx.list_sealed(batch)?))
}

/// Revoke `grants` (not yet revoked, not expired) inside `tx`: each a `grant.revoke`, then one
/// new revocation list. Returns those revoked.
pub fn revoke_in(
    b: &Broker,
    tx: &mut dyn Tx,
    actor: &Actor,
    grants: Vec<SealedGrant>,
    reason: &str,
    now: OffsetDateTime,
    events: &mut Events,
) -> Result<Vec<SealedGrant>, ApiError> {
    let live: Vec<SealedGrant> = grants
        .into_iter()
        .filter(|g| g.revoked_at.is_none() && g.exp > now)
        .collect();
    if live.is_empty() {
        return Ok(live);
    }
    let mut revoked = Vec::with_capacity(live.len());
    for mut g in live {
        tx.revoke_sealed(&g.id, now, &actor.user, reason)?;
        g.revoked_at = Some(now);
        g.revoked_by = Some(actor.user.clone());
        g.revoke_reason = Some(reason.to_string());
        revoked.push(g);
    }
    let list = refresh_revocations(b, tx, now, true)?;
    for g in &revoked {
        let mut e = grant_event(EventType::GrantRevoke, b, g);
        e.str("jitrun.revoke_reason", reason);
        b.record(
            tx,
            now,
            Change {
                kind: "grant.revoke",
                actor,
                subject: &g.id,
                data: json!({"grant": g.to_json(), "sealed": true, "revocations_seq": list.seq}),
                syslog: Some(e),
                summary: format!(
                    "{} revoked sealed break-glass grant {} (batch {}, {} for {}): {}",
                    actor.user,
                    g.id,
                    g.batch,
                    g.rule,
                    g.user,
                    quoted(reason)
                ),
            },
            events,
        )?;
    }
    Ok(revoked)
}

/// `jitbroker break-glass revoke WHICH`: a batch id (every live grant of it), or one grant id.
pub fn revoke(
    b: &Broker,
    actor: &Actor,
    which: &str,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(Vec<SealedGrant>, Events), ApiError> {
    check_text("reason", reason, 2000)?;
    let mut events = Vec::new();
    let revoked = write(b.store.as_ref(), |tx| {
        let mut grants = tx.list_sealed(Some(which))?;
        if grants.is_empty() {
            grants.extend(tx.get_sealed(which)?);
        }
        if grants.is_empty() {
            return Err(ApiError::not_found(format!(
                "no sealed batch or sealed grant {which}; `jitbroker break-glass list` shows them"
            )));
        }
        revoke_in(b, tx, actor, grants, reason, now, &mut events)
    })?;
    Ok((revoked, events))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsesBody {
    pub uses: Vec<ReportedUse>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedUse {
    pub id: String,
    #[serde(with = "jit_grant::claims::rfc3339_utc")]
    pub at: OffsetDateTime,
}

/// `POST /v1/sealed/used`: root on an enrolled host reports the grants its use counters hold;
/// those that are sealed grants for that host are recorded once (`grant.sealed_use`), the
/// others (ordinary `max_uses` grants, other hosts' grants) ignored.
pub fn record_uses(
    b: &Broker,
    c: &Caller,
    body: UsesBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    if c.uid() != Some(0) {
        return Err(ApiError::forbidden(
            "not_root",
            format!(
                "{} (uid {}) is not root on {}: uses of sealed grants are reported by the host (jitctl revocations sync, as root)",
                c.user,
                c.uid().map_or_else(|| "none".to_string(), |u| u.to_string()),
                c.host()
            ),
        ));
    }
    if body.uses.len() > MAX_REPORTED {
        return Err(ApiError::bad(
            "invalid_body",
            format!("at most {MAX_REPORTED} uses per report"),
        ));
    }
    let actor = c.actor();
    let mut events = Vec::new();
    // Each grant once (its first report), in id order: with several replicas, the rows are
    // locked in that order before anything else (the audit chain's lock), as a revocation of
    // a batch locks them, so concurrent reports and revocations wait instead of deadlocking.
    let mut uses: Vec<&ReportedUse> = body.uses.iter().collect();
    uses.sort_by(|a, b| a.id.cmp(&b.id));
    uses.dedup_by(|a, b| a.id == b.id);
    let recorded = write(b.store.as_ref(), |tx| {
        let mut known = Vec::new();
        for u in &uses {
            if let Some(g) = tx.get_sealed(&u.id)? {
                known.push((g, u.at));
            }
        }
        let mut recorded = Vec::new();
        for (g, reported_at) in known {
            let for_host = g
                .hosts
                .iter()
                .any(|h| jit_policy::glob::glob_match(h.as_bytes(), c.host().as_bytes()));
            // A host's clock may be off: the use lies within the grant's life, not after now.
            let at = reported_at.clamp(g.iat, now.max(g.iat));
            if !for_host || !tx.record_sealed_use(&g.id, c.host(), at, now)? {
                continue;
            }
            b.record(
                tx,
                now,
                Change {
                    kind: "grant.sealed_use",
                    actor: &actor,
                    subject: &g.id,
                    data: json!({"grant": g.to_json(), "sealed": true, "host": c.host(), "at": format_time(at)}),
                    syslog: None,
                    summary: format!(
                        "sealed break-glass grant {} ({} for {}, batch {}) was used on {} at {}",
                        g.id,
                        g.rule,
                        g.user,
                        g.batch,
                        c.host(),
                        format_time(at)
                    ),
                },
                &mut events,
            )?;
            recorded.push(g.id.clone());
        }
        Ok(recorded)
    })?;
    Ok((json!({ "recorded": recorded }), events))
}

/// A QR code of `token` in Unicode half blocks (two module rows per line; dark modules are
/// full blocks, for paper), with its quiet zone.
pub fn qr_text(token: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(token.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| format!("cannot make a QR code of the token: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// The same as SVG (for printing).
pub fn qr_svg(token: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(token.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| format!("cannot make a QR code of the token: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(400, 400)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_fits_a_qr_code() {
        let token = format!("v4.public.{}", "A".repeat(700));
        let text = qr_text(&token).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Square: as many columns as module rows, two rows per line.
        let width = lines[0].chars().count();
        assert!(width > 60, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(qr_svg(&token).unwrap().starts_with("<?xml"));
    }
}
