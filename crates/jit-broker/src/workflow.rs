//! Requests → approvals → signed grants, per the workflows of broker.toml (grants.rs:
//! revocation; hosts.rs: hosts and the audit trail).
//! Every function runs its reads and writes in one transaction and returns the syslog
//! events to send once it has committed.
use crate::auth::{Caller, Identity};
use crate::broker::{new_id, Actor, Broker, Change};
use crate::config::{in_any, Workflow};
use crate::error::ApiError;
use crate::model::{Approval, Grant, Request, State};
use crate::roles::{approves, is_admin, require_approver};
use crate::store::{read, write, RequestFilter, Tx};
use crate::text::{check_text, quoted};
use jit_audit::{Event, EventType};
use jit_grant::{format_time, valid_user_name, Claims, CmdClaim, TokenKind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

/// Syslog events of committed changes, for the sender thread.
pub type Events = Vec<crate::syslog::Pending>;

pub(crate) const LIST_LIMIT: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub rule: String,
    #[serde(default)]
    pub cmd: Option<CmdClaim>,
    #[serde(default)]
    pub ttl: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default)]
    pub run_as: Option<String>,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

fn name_like(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-*?[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "invalid_body",
            format!(
                "{field} {value:?} is not a name (letters, digits, . _ - and globs; at most 128)"
            ),
        ))
    }
}

fn find_workflow<'a>(b: &'a Broker, rule: &str) -> Result<&'a Workflow, ApiError> {
    b.config.workflow_for(rule).ok_or_else(|| {
        ApiError::forbidden(
            "no_workflow",
            format!("no workflow in broker.toml covers rule {rule:?}; ask the broker's admin to add one"),
        )
    })
}

fn can_see_request(b: &Broker, c: &Caller, r: &Request) -> bool {
    r.user == c.user || is_admin(b, c) || approves(b, c, &r.rule)
}

fn request_event(kind: EventType, r: &Request) -> Event {
    let mut e = Event::new(kind);
    e.str("jitrun.request.id", r.id.as_str())
        .str("jitrun.rule", r.rule.as_str());
    if let Some(run_as) = &r.run_as {
        e.str("jitrun.run_as", run_as.as_str());
    }
    e
}

fn grant_event(kind: EventType, b: &Broker, r: &Request, g: &Grant, claims: &Claims) -> Event {
    let mut e = request_event(kind, r);
    e.str("jitrun.grant.id", g.id.as_str())
        .str("jitrun.grant.kid", b.kid.as_str())
        .str("jitrun.grant.issuer", b.config.id.as_str())
        .str("jitrun.grant.expires", format_time(g.exp))
        .list(
            "jitrun.grant.approvers",
            claims.approvers.iter().map(String::as_str),
        )
        .str("jitrun.grant.reason", r.reason.as_str())
        .bool("jitrun.grant.break_glass", g.break_glass);
    if let Some(t) = &r.ticket {
        e.str("jitrun.grant.ticket", t.as_str());
    }
    if kind == EventType::BreakGlass {
        e.str("event.outcome", "success");
    }
    e
}

fn summary(r: &Request) -> String {
    format!(
        "{} asks for {} on {} for {}: {}{}",
        r.user,
        r.rule,
        r.hosts.join(","),
        jit_policy::format_duration(Duration::from_secs(r.ttl_secs)),
        quoted(&r.reason),
        r.ticket
            .as_ref()
            .map(|t| format!(" (ticket {})", quoted(t)))
            .unwrap_or_default()
    )
}

/// Sign the grant for `r` now, store it, mark the request approved.
fn issue(
    b: &Broker,
    tx: &mut dyn Tx,
    r: &mut Request,
    approvers: Vec<String>,
    actor: &Actor,
    now: OffsetDateTime,
    events: &mut Events,
) -> Result<(), ApiError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let exp = now + Duration::from_secs(r.ttl_secs);
    let cmd: Option<CmdClaim> = match &r.cmd {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            ApiError::internal(format!("request {}: stored cmd unusable: {e}", r.id))
        })?),
        None => None,
    };
    let claims = Claims {
        iss: b.config.id.clone(),
        sub: r.user.clone(),
        uid: Some(r.uid),
        hosts: r.hosts.clone(),
        jti: new_id(),
        iat: now,
        nbf: now,
        exp,
        rule: r.rule.clone(),
        caps: None,
        cmd,
        run_as: r.run_as.clone(),
        approvers,
        ticket: r.ticket.clone(),
        reason: Some(r.reason.clone()),
        max_uses: None,
        break_glass: r.break_glass,
        sealed: false,
    };
    let token = jit_grant::sign(&b.key, TokenKind::Grant, &claims)
        .map_err(|e| ApiError::internal(format!("request {}: cannot sign the grant: {e}", r.id)))?;
    let grant = Grant {
        id: claims.jti.clone(),
        request_id: r.id.clone(),
        user: r.user.clone(),
        rule: r.rule.clone(),
        hosts: r.hosts.clone(),
        iat: now,
        exp,
        token,
        break_glass: r.break_glass,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    tx.insert_grant(&grant)?;
    r.state = State::Approved;
    r.grant_id = Some(grant.id.clone());
    tx.update_request(r)?;
    b.metrics
        .grants_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = json!({"request": r.to_json(), "grant": grant.to_json(false), "approvers": claims.approvers});
    b.record(
        tx,
        now,
        Change {
            kind: "grant.issue",
            actor,
            subject: &grant.id,
            data: data.clone(),
            syslog: Some(grant_event(EventType::GrantIssue, b, r, &grant, &claims)),
            summary: format!(
                "grant {} issued to {} for {} until {}",
                grant.id,
                r.user,
                r.rule,
                format_time(exp)
            ),
        },
        events,
    )?;
    if r.break_glass {
        b.record(
            tx,
            now,
            Change {
                kind: "break_glass",
                actor,
                subject: &grant.id,
                data,
                syslog: Some(grant_event(EventType::BreakGlass, b, r, &grant, &claims)),
                summary: format!(
                    "BREAK-GLASS: {} took {} on {} without approval: {}",
                    r.user,
                    r.rule,
                    r.hosts.join(","),
                    quoted(&r.reason)
                ),
            },
            events,
        )?;
    }
    Ok(())
}

/// May a grant for `rule` under `wf` name `requested` (a host name or glob) in its `hosts`?
/// Hosts match the claim as a glob, so the broker must prove that every host the requested
/// pattern matches is one the workflow allows: the pattern must be within one of the
/// workflow's patterns (`lab-[0-9]` is within `lab-?`; `lab-*` is not). Without workflow
/// hosts, only the requesting host itself, literally.
fn check_requested_host(
    wf: &Workflow,
    rule: &str,
    c: &Caller,
    requested: &str,
) -> Result<(), ApiError> {
    let allowed = if wf.hosts.is_empty() {
        requested == c.host()
    } else {
        wf.hosts
            .iter()
            .any(|w| jit_policy::glob::glob_within(requested.as_bytes(), w.as_bytes()))
    };
    if allowed {
        return Ok(());
    }
    let glob = jit_policy::glob::has_meta(requested.as_bytes());
    Err(ApiError::forbidden(
        "host_not_allowed",
        match (wf.hosts.is_empty(), glob) {
            (true, _) => format!(
                "rule {rule} grants only for the requesting host {}, not {requested:?}",
                c.host()
            ),
            (false, false) => format!(
                "rule {rule} grants only for hosts {:?}, not {requested:?}",
                wf.hosts
            ),
            (false, true) => format!(
                "rule {rule} grants only for hosts {:?}; the pattern {requested:?} may match other hosts too: name the hosts, or a pattern that matches only hosts those patterns match",
                wf.hosts
            ),
        },
    ))
}

/// Is `c` auto-approved by `wf` at `now`? Returns the on-call group that applies.
fn auto_group(wf: &Workflow, c: &Caller, now: OffsetDateTime) -> Option<String> {
    let auto = wf.auto_approve.as_ref()?;
    let group = c.groups.iter().find(|g| auto.groups.contains(g))?;
    if auto.parsed.is_empty() || auto.parsed.iter().any(|w| w.contains(now)) {
        Some(group.clone())
    } else {
        None
    }
}

/// A new request (`POST /v1/requests`): checked against its workflow, stored, and issued at
/// once when it is break-glass, auto-approved (on call) or needs no approval.
pub fn create(
    b: &Broker,
    c: &Caller,
    body: CreateBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    // A request is for the requester on a host: only an attestation says which uid and host.
    let Identity::Attestation {
        host: caller_host,
        uid,
    } = &c.identity
    else {
        return Err(ApiError::forbidden(
            "attestation_required",
            format!(
                "{} is signed in on the web pages; requests are made from a host: jitctl request RULE --reason …",
                c.user
            ),
        ));
    };
    check_body(&body)?;
    let wf = find_workflow(b, &body.rule)?;
    if !in_any(&c.groups, &wf.requesters) {
        return Err(ApiError::forbidden(
            "not_requester",
            format!(
                "{} is not in a group that may request {} (requesters: {}); ask to be added to one",
                c.user,
                body.rule,
                wf.requesters.join(", ")
            ),
        ));
    }
    let ttl = requested_ttl(wf, &body)?;
    let hosts = requested_hosts(wf, &body, c, caller_host)?;
    if body.break_glass && !wf.break_glass {
        return Err(ApiError::forbidden(
            "break_glass_not_allowed",
            format!(
                "rule {} has no break-glass in broker.toml; request it normally",
                body.rule
            ),
        ));
    }
    let r = Request {
        id: new_id(),
        user: c.user.clone(),
        uid: *uid,
        host: caller_host.to_string(),
        rule: body.rule.clone(),
        cmd: body
            .cmd
            .as_ref()
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
        ttl_secs: ttl.as_secs(),
        reason: body.reason.clone(),
        ticket: body.ticket.clone(),
        run_as: body.run_as.clone(),
        hosts,
        break_glass: body.break_glass,
        state: State::Pending,
        created: now,
        expires: now + b.config.pending_expiry,
        approvals: Vec::new(),
        needed_approvals: wf.min_approvals,
        needed_groups: wf.approvers.clone(),
        denied_by: None,
        deny_reason: None,
        grant_id: None,
    };
    let auto = if body.break_glass {
        None
    } else {
        auto_group(wf, c, now)
    };
    store_new(b, r, wf, auto, &c.actor(), now)
}

/// The request's own fields, before its workflow is looked at.
fn check_body(body: &CreateBody) -> Result<(), ApiError> {
    name_like("rule", &body.rule)?;
    if body.rule.bytes().any(|x| b"*?[]".contains(&x)) {
        return Err(ApiError::bad(
            "invalid_body",
            "rule must be a rule name, not a glob",
        ));
    }
    check_text("reason", &body.reason, 2000)?;
    if let Some(t) = &body.ticket {
        check_text("ticket", t, 200)?;
    }
    if let Some(cmd) = &body.cmd {
        cmd.pattern()
            .map_err(|e| ApiError::bad("invalid_cmd", format!("cmd: {e}")))?;
        crate::text::check_cmd(cmd)?;
    }
    if let Some(run_as) = &body.run_as {
        if !(run_as == "invoker" || run_as == "root" || valid_user_name(run_as)) {
            return Err(ApiError::bad(
                "invalid_body",
                format!("run_as {run_as:?} is not \"invoker\", \"root\" or a user name"),
            ));
        }
    }
    Ok(())
}

/// The grant's lifetime asked for (else the workflow's `max_ttl`): 1 s to `max_ttl`.
fn requested_ttl(wf: &Workflow, body: &CreateBody) -> Result<Duration, ApiError> {
    let ttl = match &body.ttl {
        None => wf.max_ttl,
        Some(t) => jit_policy::parse_duration(t)
            .map_err(|e| ApiError::bad("invalid_ttl", format!("ttl: {e}")))?,
    };
    if ttl < Duration::from_secs(1) {
        return Err(ApiError::forbidden(
            "ttl_too_short",
            "ttl must be at least 1s",
        ));
    }
    if ttl > wf.max_ttl {
        return Err(ApiError::forbidden(
            "ttl_too_long",
            format!(
                "ttl {} is longer than the {} that rule {} allows; ask for --ttl {} or less",
                jit_policy::format_duration(ttl),
                jit_policy::format_duration(wf.max_ttl),
                body.rule,
                jit_policy::format_duration(wf.max_ttl)
            ),
        ));
    }
    Ok(ttl)
}

/// The hosts asked for (else the caller's own): 1 to 64, each within the workflow's hosts.
fn requested_hosts(
    wf: &Workflow,
    body: &CreateBody,
    c: &Caller,
    caller_host: &str,
) -> Result<Vec<String>, ApiError> {
    let hosts = body
        .hosts
        .clone()
        .unwrap_or_else(|| vec![caller_host.to_string()]);
    if hosts.is_empty() || hosts.len() > 64 {
        return Err(ApiError::bad(
            "invalid_body",
            "hosts must name 1 to 64 hosts",
        ));
    }
    for h in &hosts {
        name_like("host", h)?;
        check_requested_host(wf, &body.rule, c, h)?;
    }
    Ok(hosts)
}

/// Store a new request with its audit row and event; in the same transaction, issue its grant
/// when it is break-glass, auto-approved by on-call group `auto`, or needs no approval.
fn store_new(
    b: &Broker,
    mut r: Request,
    wf: &Workflow,
    auto: Option<String>,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        tx.insert_request(&r)?;
        let mut e = request_event(EventType::RequestCreate, &r);
        e.str("jitrun.grant.reason", r.reason.as_str())
            .bool("jitrun.grant.break_glass", r.break_glass);
        if let Some(t) = &r.ticket {
            e.str("jitrun.grant.ticket", t.as_str());
        }
        b.record(
            tx,
            now,
            Change {
                kind: "request.create",
                actor,
                subject: &r.id,
                data: json!({"request": r.to_json()}),
                syslog: Some(e),
                summary: summary(&r),
            },
            &mut events,
        )?;
        let approvals = match &auto {
            _ if r.break_glass => Some(Vec::new()),
            Some(group) => Some(vec![format!("auto-approve:{group}")]),
            None if wf.min_approvals == 0 => Some(Vec::new()),
            None => None,
        };
        if let Some(approvals) = approvals {
            issue(b, tx, &mut r, approvals, actor, now, &mut events)?;
        }
        Ok(r.to_json())
    })?;
    Ok((value, events))
}

/// A pending request `c` may decide on (approve or deny): visible to them, not overdue, still
/// pending, not their own, and they are in one of its workflow's approving groups.
fn decidable<'b>(
    b: &'b Broker,
    c: &Caller,
    tx: &mut dyn Tx,
    id: &str,
    now: OffsetDateTime,
    verb: &str,
) -> Result<(Request, &'b Workflow), ApiError> {
    let r = load_request(tx, id)?;
    let wf = check_decidable(b, c, &r, now, verb)?;
    Ok((r, wf))
}

/// May `c` approve or deny `r` now? The one rule for the API and the web pages (which show
/// the buttons only when this says yes, and call the same approve and deny).
pub fn check_decidable<'b>(
    b: &'b Broker,
    c: &Caller,
    r: &Request,
    now: OffsetDateTime,
    verb: &str,
) -> Result<&'b Workflow, ApiError> {
    let id = &r.id;
    if !can_see_request(b, c, r) {
        // In an approving group but on a host that is not an approver host: say so.
        if let Some(wf) = b.config.workflow_for(&r.rule) {
            if in_any(&c.groups, &wf.approvers) {
                require_approver(b, c, wf, &r.rule)?;
            }
        }
        return Err(ApiError::not_found(format!("no request {id}")));
    }
    if overdue(r, now) {
        return Err(ApiError::conflict(
            "request_expired",
            format!(
                "request {id} expired unanswered at {}; the requester must ask again",
                format_time(r.expires)
            ),
        ));
    }
    if r.state != State::Pending {
        return Err(not_pending(r));
    }
    let wf = find_workflow(b, &r.rule)?;
    if r.user == c.user {
        return Err(ApiError::forbidden(
            "self_approval",
            format!(
                "{} cannot {verb} their own request {id}; someone else in {} must decide (to withdraw it: jitctl cancel {id})",
                c.user,
                wf.approvers.join(", ")
            ),
        ));
    }
    require_approver(b, c, wf, &r.rule)?;
    Ok(wf)
}

/// Has `c` approved `r` already (a second approval by the same person counts nothing)?
pub fn approved_by(r: &Request, c: &Caller) -> bool {
    r.approvals.iter().any(|a| a.user == c.user)
}

fn load_request(tx: &mut dyn Tx, id: &str) -> Result<Request, ApiError> {
    tx.get_request(id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no request {id}; list yours with `jitctl requests --mine`"
        ))
    })
}

/// Expire `r` if it is pending and overdue (recorded); true when it did.
fn expire_if_due(
    b: &Broker,
    tx: &mut dyn Tx,
    r: &mut Request,
    now: OffsetDateTime,
    events: &mut Events,
) -> Result<bool, ApiError> {
    if r.state != State::Pending || r.expires > now {
        return Ok(false);
    }
    r.state = State::Expired;
    tx.update_request(r)?;
    let actor = Actor {
        user: format!("jitbroker:{}", b.config.id),
        uid: None,
        host: String::new(),
        identity: None,
    };
    b.record(
        tx,
        now,
        Change {
            kind: "request.expire",
            actor: &actor,
            subject: &r.id,
            data: json!({"request": r.to_json()}),
            syslog: None,
            summary: format!(
                "request {} by {} for {} expired unanswered",
                r.id, r.user, r.rule
            ),
        },
        events,
    )?;
    Ok(true)
}

/// Pending past its expiry (the maintenance task records it as expired within seconds;
/// until then it can no longer be decided or cancelled).
fn overdue(r: &Request, now: OffsetDateTime) -> bool {
    r.state == State::Pending && r.expires <= now
}

/// Mark overdue pending requests expired (the maintenance task).
pub fn expire_overdue(b: &Broker, now: OffsetDateTime) -> Result<Events, ApiError> {
    let mut events = Vec::new();
    write(b.store.as_ref(), |tx| {
        for mut r in tx.overdue_pending(now)? {
            expire_if_due(b, tx, &mut r, now, &mut events)?;
        }
        tx.prune_attestations(now)?;
        Ok(())
    })?;
    Ok(events)
}

fn not_pending(r: &Request) -> ApiError {
    ApiError::conflict(
        "not_pending",
        format!(
            "request {} is {}, not pending; nothing to decide{}",
            r.id,
            r.state.as_str(),
            r.grant_id
                .as_ref()
                .map(|g| format!(" (grant {g})"))
                .unwrap_or_default()
        ),
    )
}

pub fn approve(
    b: &Broker,
    c: &Caller,
    id: &str,
    body: ApproveBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    if let Some(comment) = &body.comment {
        check_text("comment", comment, 2000)?;
    }
    let actor = c.actor();
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let (mut r, _) = decidable(b, c, tx, id, now, "approve")?;
        if approved_by(&r, c) {
            return Err(ApiError::conflict(
                "already_approved",
                format!(
                    "{} already approved request {id}; it needs approvals from other people",
                    c.user
                ),
            ));
        }
        let approval = Approval {
            user: c.user.clone(),
            host: c.host().to_string(),
            at: now,
            comment: body.comment.clone(),
            source: c.identity.source().to_string(),
        };
        tx.add_approval(&r.id, &approval)?;
        r.approvals.push(approval);
        b.record(
            tx,
            now,
            Change {
                kind: "request.approve",
                actor: &actor,
                subject: &r.id,
                data: json!({"request": r.to_json(), "comment": body.comment}),
                syslog: Some(request_event(EventType::RequestApprove, &r)),
                summary: format!(
                    "{} approved request {} by {} for {} ({}/{})",
                    c.user,
                    r.id,
                    r.user,
                    r.rule,
                    r.approvals.len(),
                    r.needed_approvals
                ),
            },
            &mut events,
        )?;
        if r.approvals.len() as u32 >= r.needed_approvals {
            let approvers = r.approvals.iter().map(|a| a.user.clone()).collect();
            issue(b, tx, &mut r, approvers, &actor, now, &mut events)?;
        }
        Ok(r.to_json())
    })?;
    Ok((value, events))
}

pub fn deny(
    b: &Broker,
    c: &Caller,
    id: &str,
    body: ReasonBody,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    check_text("reason", &body.reason, 2000)?;
    let actor = c.actor();
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let (mut r, _) = decidable(b, c, tx, id, now, "deny")?;
        r.state = State::Denied;
        r.denied_by = Some(c.user.clone());
        r.deny_reason = Some(body.reason.clone());
        tx.update_request(&r)?;
        let mut e = request_event(EventType::RequestDeny, &r);
        e.str("jitrun.deny_reason", body.reason.as_str());
        b.record(
            tx,
            now,
            Change {
                kind: "request.deny",
                actor: &actor,
                subject: &r.id,
                data: json!({"request": r.to_json()}),
                syslog: Some(e),
                summary: format!(
                    "{} denied request {} by {} for {}: {}",
                    c.user,
                    r.id,
                    r.user,
                    r.rule,
                    quoted(&body.reason)
                ),
            },
            &mut events,
        )?;
        Ok(r.to_json())
    })?;
    Ok((value, events))
}

pub fn cancel(
    b: &Broker,
    c: &Caller,
    id: &str,
    now: OffsetDateTime,
) -> Result<(Value, Events), ApiError> {
    let actor = c.actor();
    let mut events = Vec::new();
    let value = write(b.store.as_ref(), |tx| {
        let mut r = load_request(tx, id)?;
        if !can_see_request(b, c, &r) {
            return Err(ApiError::not_found(format!("no request {id}")));
        }
        if r.user != c.user {
            return Err(ApiError::forbidden(
                "not_requester",
                format!(
                    "only {} can cancel request {id}; approvers deny instead",
                    r.user
                ),
            ));
        }
        if overdue(&r, now) {
            return Err(ApiError::conflict(
                "request_expired",
                format!(
                    "request {id} expired at {}; nothing to cancel",
                    format_time(r.expires)
                ),
            ));
        }
        if r.state != State::Pending {
            return Err(not_pending(&r));
        }
        r.state = State::Cancelled;
        tx.update_request(&r)?;
        b.record(
            tx,
            now,
            Change {
                kind: "request.cancel",
                actor: &actor,
                subject: &r.id,
                data: json!({"request": r.to_json()}),
                syslog: None,
                summary: format!("{} cancelled request {} for {}", c.user, r.id, r.rule),
            },
            &mut events,
        )?;
        Ok(r.to_json())
    })?;
    Ok((value, events))
}

pub fn show_request(b: &Broker, c: &Caller, id: &str) -> Result<Value, ApiError> {
    request_for(b, c, id).map(|r| r.to_json())
}

/// Request `id`, if `c` may see it (else 404, as if it did not exist).
pub fn request_for(b: &Broker, c: &Caller, id: &str) -> Result<Request, ApiError> {
    read(b.store.as_ref(), |tx| visible_request(b, c, tx, id))
}

fn visible_request(b: &Broker, c: &Caller, tx: &mut dyn Tx, id: &str) -> Result<Request, ApiError> {
    let r = load_request(tx, id)?;
    if !can_see_request(b, c, &r) {
        return Err(ApiError::not_found(format!("no request {id}")));
    }
    Ok(r)
}

/// Request `id` (if `c` may see it) and its history: the audit rows about it and its grant.
pub fn history(
    b: &Broker,
    c: &Caller,
    id: &str,
) -> Result<(Request, Vec<crate::model::AuditEntry>), ApiError> {
    read(b.store.as_ref(), |tx| {
        let r = visible_request(b, c, tx, id)?;
        let mut subjects = vec![r.id.clone()];
        subjects.extend(r.grant_id.clone());
        let rows = tx.audit_about(&subjects, 200)?;
        Ok((r, rows))
    })
}

/// Rules the caller approves for, as a filter (None = all: admins).
fn visible_rules(
    b: &Broker,
    c: &Caller,
    known: impl Iterator<Item = String>,
) -> Option<Vec<String>> {
    if is_admin(b, c) {
        return None;
    }
    Some(known.filter(|rule| approves(b, c, rule)).collect())
}

/// What a listing of requests asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing {
    /// Only the caller's own.
    pub mine: bool,
    /// Only pending ones.
    pub pending: bool,
    /// Only those waiting for the caller: pending, not overdue, that they may decide now
    /// ([`check_decidable`]) and have not approved yet.
    pub decidable: bool,
}

pub fn list_requests(
    b: &Broker,
    c: &Caller,
    listing: Listing,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let out = requests_for(b, c, listing, now)?;
    Ok(json!({"requests": out.iter().map(Request::to_json).collect::<Vec<_>>()}))
}

/// The requests `c` sees with `listing`, newest first (`GET /v1/requests` and the pages).
pub fn requests_for(
    b: &Broker,
    c: &Caller,
    listing: Listing,
    now: OffsetDateTime,
) -> Result<Vec<Request>, ApiError> {
    let Listing {
        mine,
        pending,
        decidable,
    } = listing;
    read(b.store.as_ref(), |tx| {
        let state = (pending || decidable).then_some(State::Pending);
        let mut out = if mine {
            tx.list_requests(&RequestFilter {
                user: Some(c.user.clone()),
                state,
                rules: None,
                limit: LIST_LIMIT,
            })?
        } else {
            let all = tx.list_requests(&RequestFilter {
                user: None,
                state,
                rules: None,
                limit: LIST_LIMIT * 4,
            })?;
            let rules = visible_rules(b, c, all.iter().map(|r| r.rule.clone()));
            all.into_iter()
                .filter(|r| {
                    r.user == c.user || rules.as_ref().is_none_or(|rs| rs.contains(&r.rule))
                })
                .take(LIST_LIMIT as usize)
                .collect()
        };
        if decidable {
            out.retain(|r| !approved_by(r, c) && check_decidable(b, c, r, now, "approve").is_ok());
        }
        out.truncate(LIST_LIMIT as usize);
        Ok(out)
    })
}
