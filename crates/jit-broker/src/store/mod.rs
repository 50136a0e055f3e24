//! The store: one narrow interface ([`Store`], [`Tx`]) that the rest of the broker uses, with
//! two backends: [`SqliteStore`] (one file, WAL; one broker process) and [`PgStore`]
//! (PostgreSQL; any number of replicas on one database). Both apply numbered migrations of one
//! schema (`migrations/` and `migrations/postgres/`; docs/broker.md lists the dialect
//! differences) and give the same answers; what must happen once under concurrency (replayed
//! attestations, approvals, the audit chain, the revocation list's `seq`, webhook claims) is
//! decided in the database.
use crate::config::{Config, StoreLocation};
use crate::error::{ApiError, StoreError};
use crate::model::{Approval, AuditEntry, Delivery, Grant, Host, Request, SealedGrant, State};
use serde_json::Value;
use std::sync::Arc;
use time::OffsetDateTime;

mod diagnose;
pub mod migrate;
mod pg_listen;
mod postgres;
mod sqlite;
pub mod tables;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Open (and migrate) the store `config` names, as replica `replica`.
pub fn open(config: &Config, replica: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store_location {
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path, replica)?),
        StoreLocation::Postgres(url) => Arc::new(PgStore::open(url, &config.postgres, replica)?),
    })
}

/// Filters of a request listing.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub user: Option<String>,
    pub state: Option<State>,
    /// Only these rules (None = any).
    pub rules: Option<Vec<String>>,
    pub limit: u32,
}

/// What a new audit row says (id, hashes and event id are filled in by the store).
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub event_id: String,
    pub at: OffsetDateTime,
    pub kind: String,
    pub actor: String,
    pub host: String,
    pub subject: String,
    pub data: Value,
}

/// The current signed revocation list.
#[derive(Debug, Clone)]
pub struct StoredRevocations {
    pub seq: u64,
    pub iat: OffsetDateTime,
    pub content: String,
    pub token: String,
}

impl StoredRevocations {
    /// The API's answer for it (`GET /v1/revocations`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({"token": self.token, "seq": self.seq, "iat": jit_grant::format_time(self.iat)})
    }
}

/// A revocation of a grant the store has no row for.
#[derive(Debug, Clone)]
pub struct UnknownRevocation {
    pub jti: String,
    /// Until when it stays on the list: the token's `exp`, else the longest `max_ttl`.
    pub exp: OffsetDateTime,
    pub revoked_at: OffsetDateTime,
    pub revoked_by: String,
    pub reason: String,
    /// From the token, when the revoker presented it.
    pub user: Option<String>,
    pub rule: Option<String>,
}

/// A sign-in in progress on the web pages (until the provider sends the browser back).
#[derive(Debug, Clone)]
pub struct WebLogin {
    /// SHA-256 (hex) of the `state` sent to the provider; the browser holds the state itself.
    pub state_sha256: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The page to show after sign-in (a path under /ui/).
    pub return_to: String,
    pub expires: OffsetDateTime,
}

/// A session of someone signed in on the web pages.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// Public id (ULID): what admins list and end.
    pub id: String,
    /// SHA-256 (hex) of the cookie's token.
    pub token_sha256: String,
    /// The token every form that changes something must carry.
    pub csrf: String,
    pub user: String,
    /// The broker groups the provider's groups map to (`[web.groups]`), at sign-in.
    pub groups: Vec<String>,
    pub issuer: String,
    pub subject: String,
    pub created: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    /// Sign-in + `session_lifetime`.
    pub expires: OffsetDateTime,
    pub ended: Option<OffsetDateTime>,
    pub end_reason: Option<String>,
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Rows with id > after (oldest first), or, with `newest_first`, id < before.
    pub after: i64,
    pub before: Option<i64>,
    pub newest_first: bool,
    /// The actor, or the user of the request or grant the row is about.
    pub user: Option<String>,
    /// The rule of the request or grant the row is about.
    pub rule: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: u32,
}

impl AuditFilter {
    /// Rows after `after`, oldest first, nothing else asked for.
    pub fn is_plain_page(&self) -> bool {
        self.before.is_none()
            && !self.newest_first
            && self.user.is_none()
            && self.rule.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// What [`Store::follow_revocations`] tells the revocation watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// A process (any replica) committed a new revocation list.
    Stored,
    /// Announcements are heard (again): any made while they were not may have been missed.
    Listening,
    /// Announcements are not heard until `Listening` (the connection was lost).
    Deaf,
}

/// Whom [`Store::follow_revocations`] tells.
pub type AnnounceFn = dyn Fn(Announced) + Send + Sync;

/// How hard a write transaction's commit must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before the commit returns (SQLite `synchronous=FULL`): every state
    /// change recorded in the audit table — it is answered, signed, logged and sent on.
    Durable,
    /// May be lost with the last moments before a power loss or OS crash (`synchronous=NORMAL`,
    /// still atomic and consistent): the replay table, delivery and syslog bookkeeping, the
    /// readiness probe.
    Bookkeeping,
}

pub type TxResult<T> = Result<T, StoreError>;

/// Operations inside one transaction.
pub trait Tx {
    fn insert_request(&mut self, r: &Request) -> TxResult<()>;
    fn get_request(&mut self, id: &str) -> TxResult<Option<Request>>;
    /// State, decision and grant id.
    fn update_request(&mut self, r: &Request) -> TxResult<()>;
    fn list_requests(&mut self, f: &RequestFilter) -> TxResult<Vec<Request>>;
    fn add_approval(&mut self, request_id: &str, a: &Approval) -> TxResult<()>;
    /// Pending requests whose `expires` ≤ now.
    fn overdue_pending(&mut self, now: OffsetDateTime) -> TxResult<Vec<Request>>;
    fn request_counts(&mut self) -> TxResult<Vec<(String, u64)>>;

    fn insert_grant(&mut self, g: &Grant) -> TxResult<()>;
    fn get_grant(&mut self, id: &str) -> TxResult<Option<Grant>>;
    fn list_grants(
        &mut self,
        user: Option<&str>,
        rules: Option<&[String]>,
        limit: u32,
    ) -> TxResult<Vec<Grant>>;
    fn revoke_grant(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()>;
    /// Revoked grants not yet expired at `now`.
    fn revoked_grants(&mut self, now: OffsetDateTime) -> TxResult<Vec<Grant>>;
    fn grants_issued(&mut self) -> TxResult<u64>;

    fn insert_host(&mut self, h: &Host) -> TxResult<()>;
    fn get_host(&mut self, name: &str) -> TxResult<Option<Host>>;
    fn host_by_kid(&mut self, kid: &str) -> TxResult<Option<Host>>;
    fn list_hosts(&mut self) -> TxResult<Vec<Host>>;
    fn retire_host(&mut self, name: &str, at: OffsetDateTime) -> TxResult<()>;
    fn insert_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        expires: OffsetDateTime,
    ) -> TxResult<()>;
    /// Consume a token for `name` (true when it existed, matched and had not expired).
    fn take_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> TxResult<bool>;

    /// Remember an attestation jti until `exp`; false when it was seen before.
    fn remember_attestation(&mut self, jti: &str, exp: OffsetDateTime) -> TxResult<bool>;
    fn prune_attestations(&mut self, now: OffsetDateTime) -> TxResult<usize>;

    fn revocations(&mut self) -> TxResult<Option<StoredRevocations>>;
    /// The current revocation list's `seq` alone (what revocation watches follow).
    fn revocation_seq(&mut self) -> TxResult<Option<u64>>;
    fn set_revocations(&mut self, r: &StoredRevocations) -> TxResult<()>;

    /// Append to the hash chain; returns the stored entry.
    fn append_audit(&mut self, a: &NewAudit) -> TxResult<AuditEntry>;
    fn list_audit(&mut self, after: i64, limit: u32) -> TxResult<Vec<AuditEntry>>;

    /// Queue the syslog datagram of audit row `audit_id` for this replica's sender; returns
    /// its position (ids increase in commit order). The `*_syslog` methods see only this
    /// replica's queue.
    fn enqueue_syslog(&mut self, audit_id: i64, kind: &str, datagram: &[u8]) -> TxResult<i64>;
    /// Queued syslog datagrams with id ≥ `from`, oldest first.
    fn pending_syslog(&mut self, from: i64, limit: u32) -> TxResult<Vec<(i64, Vec<u8>)>>;
    /// Drop the datagrams before `before` (sent).
    fn forget_syslog(&mut self, before: i64) -> TxResult<()>;
    /// How many datagrams with id ≥ `from` wait.
    fn syslog_backlog(&mut self, from: i64) -> TxResult<u64>;

    fn revoke_unknown(&mut self, r: &UnknownRevocation) -> TxResult<()>;
    fn get_revoked_unknown(&mut self, jti: &str) -> TxResult<Option<UnknownRevocation>>;
    /// Revocations of unknown grants not yet expired at `now`.
    fn revoked_unknown(&mut self, now: OffsetDateTime) -> TxResult<Vec<UnknownRevocation>>;

    /// The readiness probe's write.
    fn touch_readiness(&mut self, now: OffsetDateTime) -> TxResult<()>;

    /// Store a sealed grant (its `uses` are ignored).
    fn insert_sealed(&mut self, g: &SealedGrant) -> TxResult<()>;
    /// A sealed grant, with its uses.
    fn get_sealed(&mut self, id: &str) -> TxResult<Option<SealedGrant>>;
    /// Sealed grants (of one batch, or all), oldest batch first, with their uses.
    fn list_sealed(&mut self, batch: Option<&str>) -> TxResult<Vec<SealedGrant>>;
    fn revoke_sealed(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()>;
    /// Revoked sealed grants not yet expired at `now` (for the revocation list).
    fn revoked_sealed(&mut self, now: OffsetDateTime) -> TxResult<Vec<SealedGrant>>;
    /// Record that `host` used sealed grant `id` at `at`; false when it was recorded before.
    fn record_sealed_use(
        &mut self,
        id: &str,
        host: &str,
        at: OffsetDateTime,
        reported: OffsetDateTime,
    ) -> TxResult<bool>;

    fn enqueue(
        &mut self,
        delivery_id: &str,
        url: &str,
        event_id: &str,
        event_type: &str,
        body: &str,
        now_ms: i64,
    ) -> TxResult<()>;
    /// Claim up to `limit` due deliveries, oldest first: they are not due again (for any
    /// replica) before `lease_until_ms`, unless released or marked.
    fn claim_deliveries(
        &mut self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> TxResult<Vec<Delivery>>;
    /// Make claimed deliveries that were not attempted due at `now_ms` again (those still
    /// under the claim `lease_until_ms`).
    fn release_deliveries(&mut self, ids: &[i64], lease_until_ms: i64, now_ms: i64)
        -> TxResult<()>;
    fn mark_delivered(&mut self, id: i64, now: OffsetDateTime) -> TxResult<()>;
    /// Record a failed attempt; `next_ms` None = given up.
    fn mark_attempt_failed(
        &mut self,
        id: i64,
        attempts: u32,
        next_ms: Option<i64>,
        error: &str,
        now: OffsetDateTime,
    ) -> TxResult<()>;
    /// (waiting, delivered, failed)
    fn outbox_counts(&mut self) -> TxResult<(u64, u64, u64)>;

    /// Audit rows matching `f`, in the order it asks for.
    fn search_audit(&mut self, f: &AuditFilter) -> TxResult<Vec<AuditEntry>>;
    /// Audit rows about any of `subjects` (request, grant ids), oldest first.
    fn audit_about(&mut self, subjects: &[String], limit: u32) -> TxResult<Vec<AuditEntry>>;

    fn insert_web_login(&mut self, l: &WebLogin) -> TxResult<()>;
    /// Remove and return the sign-in whose state hashes to `state_sha256`, if not expired.
    fn take_web_login(
        &mut self,
        state_sha256: &str,
        now: OffsetDateTime,
    ) -> TxResult<Option<WebLogin>>;
    /// Sign-ins in progress (not expired).
    fn count_web_logins(&mut self, now: OffsetDateTime) -> TxResult<u64>;
    fn insert_web_session(&mut self, s: &WebSession) -> TxResult<()>;
    fn web_session_by_token(&mut self, token_sha256: &str) -> TxResult<Option<WebSession>>;
    fn touch_web_session(&mut self, id: &str, at: OffsetDateTime) -> TxResult<()>;
    /// End session `id` (true when it had not ended already).
    fn end_web_session(&mut self, id: &str, at: OffsetDateTime, reason: &str) -> TxResult<bool>;
    /// Sessions, newest first: of `user` (None: everyone's); only those not ended with `open`.
    fn list_web_sessions(&mut self, user: Option<&str>, open: bool) -> TxResult<Vec<WebSession>>;
    /// Drop expired sign-ins, and sessions that ended or expired before `forget_before`.
    fn prune_web(&mut self, now: OffsetDateTime, forget_before: OffsetDateTime) -> TxResult<()>;
}

/// A store: runs closures in transactions (writes are serialized).
pub trait Store: Send + Sync {
    fn write_tx(
        &self,
        durability: Durability,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError>;
    fn read_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError>;
    /// Every audit row, in order (for `jitbroker audit verify`).
    fn audit_rows(&self) -> Result<Vec<AuditEntry>, StoreError>;
    /// Readiness: a write commits, and the file system has room for more.
    fn ready(&self, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Tell `announce` whenever any process stores a new revocation list, for as long as
    /// the store lives (PostgreSQL: LISTEN/NOTIFY, [`Announced`]); false when this backend
    /// cannot (SQLite), so that only the watchers' own once-a-second look notices.
    fn follow_revocations(&self, announce: Arc<AnnounceFn>) -> bool;
    /// The newest migration applied.
    fn schema_version(&self) -> Result<u32, StoreError>;
}

/// Run `f` in a durable write transaction and return its value.
pub fn write<R>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    write_with(store, Durability::Durable, f)
}

/// Run `f` in a bookkeeping write transaction (see [`Durability::Bookkeeping`]).
pub fn bookkeeping<R>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    write_with(store, Durability::Bookkeeping, f)
}

fn write_with<R>(
    store: &dyn Store,
    durability: Durability,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let mut f = Some(f);
    let mut out = None;
    store.write_tx(durability, &mut |tx| {
        let f = f.take().expect("a transaction closure runs once");
        out = Some(f(tx)?);
        Ok(())
    })?;
    Ok(out.expect("the closure ran"))
}

/// Run `f` in a read transaction and return its value.
pub fn read<R>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn Tx) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let mut f = Some(f);
    let mut out = None;
    store.read_tx(&mut |tx| {
        let f = f.take().expect("a transaction closure runs once");
        out = Some(f(tx)?);
        Ok(())
    })?;
    Ok(out.expect("the closure ran"))
}
