//! What the broker keeps: requests, approvals, grants, hosts, audit entries, outbox items.
use jit_grant::format_time;
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Denied,
            State::Cancelled,
            State::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub user: String,
    /// The approver's attested host; "" for an approval on the web pages.
    pub host: String,
    #[serde(with = "jit_grant::claims::rfc3339_utc")]
    pub at: OffsetDateTime,
    pub comment: Option<String>,
    /// How the approver was identified: `attestation` or `oidc` (auth.rs `Identity`).
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub user: String,
    pub uid: u32,
    pub host: String,
    pub rule: String,
    /// The `cmd` narrowing as given (string or array), JSON.
    pub cmd: Option<Value>,
    pub ttl_secs: u64,
    pub reason: String,
    pub ticket: Option<String>,
    pub run_as: Option<String>,
    pub hosts: Vec<String>,
    pub break_glass: bool,
    pub state: State,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub approvals: Vec<Approval>,
    pub needed_approvals: u32,
    pub needed_groups: Vec<String>,
    pub denied_by: Option<String>,
    pub deny_reason: Option<String>,
    pub grant_id: Option<String>,
}

impl Request {
    /// The API's request object (docs/broker.md).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user": self.user,
            "uid": self.uid,
            "host": self.host,
            "rule": self.rule,
            "cmd": self.cmd,
            "ttl": jit_policy::format_duration(std::time::Duration::from_secs(self.ttl_secs)),
            "reason": self.reason,
            "ticket": self.ticket,
            "run_as": self.run_as,
            "hosts": self.hosts,
            "break_glass": self.break_glass,
            "state": self.state.as_str(),
            "created": format_time(self.created),
            "expires": format_time(self.expires),
            "approvals": self.approvals,
            "needed": {"approvals": self.needed_approvals, "groups": self.needed_groups},
            "denied_by": self.denied_by,
            "deny_reason": self.deny_reason,
            "grant_id": self.grant_id,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub request_id: String,
    pub user: String,
    pub rule: String,
    pub hosts: Vec<String>,
    pub iat: OffsetDateTime,
    pub exp: OffsetDateTime,
    pub token: String,
    pub break_glass: bool,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

impl Grant {
    /// The API's grant object; the token only for its owner.
    pub fn to_json(&self, with_token: bool) -> Value {
        json!({
            "id": self.id,
            "request_id": self.request_id,
            "user": self.user,
            "rule": self.rule,
            "hosts": self.hosts,
            "iat": format_time(self.iat),
            "exp": format_time(self.exp),
            "token": if with_token { Some(&self.token) } else { None },
            "break_glass": self.break_glass,
            "revoked": self.revoked_at.is_some(),
            "revoked_at": self.revoked_at.map(format_time),
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        })
    }
}

/// A sealed break-glass grant (sealed.rs): its token was printed once and is not kept.
#[derive(Debug, Clone)]
pub struct SealedGrant {
    pub id: String,
    pub batch: String,
    pub user: String,
    pub uid: Option<u32>,
    pub rule: String,
    pub hosts: Vec<String>,
    pub iat: OffsetDateTime,
    pub exp: OffsetDateTime,
    pub reason: String,
    pub ticket: Option<String>,
    pub sealed_by: String,
    pub token_sha256: String,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    /// The hosts that reported using it.
    pub uses: Vec<SealedUse>,
}

/// A host's use of a sealed grant, as the host reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedUse {
    pub host: String,
    /// When the host used it (its use counter's time).
    #[serde(with = "jit_grant::claims::rfc3339_utc")]
    pub at: OffsetDateTime,
    /// When the broker heard of it.
    #[serde(with = "jit_grant::claims::rfc3339_utc")]
    pub reported: OffsetDateTime,
}

impl SealedGrant {
    /// `jitbroker break-glass list --json` and the audit rows.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "batch": self.batch,
            "user": self.user,
            "uid": self.uid,
            "rule": self.rule,
            "hosts": self.hosts,
            "iat": format_time(self.iat),
            "exp": format_time(self.exp),
            "reason": self.reason,
            "ticket": self.ticket,
            "sealed_by": self.sealed_by,
            "token_sha256": self.token_sha256,
            "revoked": self.revoked_at.is_some(),
            "revoked_at": self.revoked_at.map(format_time),
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
            "uses": self.uses,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    Enrolled,
    Retired,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Enrolled => "enrolled",
            HostState::Retired => "retired",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub public_key: String,
    pub kid: String,
    pub state: HostState,
    pub created: OffsetDateTime,
    pub retired: Option<OffsetDateTime>,
}

impl Host {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "public_key": self.public_key,
            "kid": self.kid,
            "state": self.state.as_str(),
            "created": format_time(self.created),
            "retired": self.retired.map(format_time),
        })
    }
}

/// One row of the hash-chained audit table.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    /// ULID of the event (also what webhooks carry).
    pub event_id: String,
    pub at: OffsetDateTime,
    pub kind: String,
    pub actor: String,
    pub host: String,
    pub subject: String,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "event_id": self.event_id,
            "at": format_time(self.at),
            "type": self.kind,
            "actor": self.actor,
            "host": self.host,
            "subject": self.subject,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// A webhook delivery waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub delivery_id: String,
    pub url: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: u32,
}
