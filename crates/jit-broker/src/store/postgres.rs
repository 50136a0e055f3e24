//! The PostgreSQL store: tokio-postgres connections in a deadpool pool, driven by a small
//! runtime of the store's own (one thread, "jitbroker-pg"). The store interface is
//! synchronous (the broker runs every transaction on tokio's blocking pool, where SQLite
//! blocks too), so each statement is `block_on` on that runtime's handle: one thread hop per
//! statement, measured in docs/broker.md ("Capacity"), instead of an async interface that
//! SQLite could not use.
//!
//! What must happen once is decided here, in the database, whatever the number of replicas:
//! - a write transaction that reads a request, grant, host or unknown-grant revocation locks
//!   its row (`FOR UPDATE`): two approvals of one request on two replicas are serialized, the
//!   second sees the first's approval (distinct approvers are counted, the grant is issued
//!   once);
//! - overdue pending requests are claimed with `FOR UPDATE SKIP LOCKED`: every replica's
//!   maintenance expires them, each request once;
//! - the audit chain: appends take a transaction-scoped advisory lock, so ids follow commit
//!   order and each row's `prev_hash` is the committed head;
//! - the revocation list is read under an advisory lock in write transactions: `seq` strictly
//!   increases across replicas;
//! - attestation jtis are a primary key (`ON CONFLICT DO NOTHING`: a replay is refused
//!   however close in time, on whichever replica);
//! - webhook deliveries are claimed with `FOR UPDATE SKIP LOCKED` (webhooks.rs).
//!
//! A durable transaction that held the audit lock commits asynchronously (the lock is
//! released without waiting for the disk, so the next writer need not wait either) and then
//! waits for the disk with a small synchronous commit of its own (`commit_barrier`), which
//! concurrent requests share (group commit). The answer is sent only after that, so "answered
//! means on disk" holds as with `synchronous_commit = on`.
use super::pg_listen::{Connector, Listener};
use super::{
    AnnounceFn, AuditFilter, Durability, NewAudit, RequestFilter, Store, StoredRevocations, Tx,
    TxResult, UnknownRevocation, WebLogin, WebSession,
};
use crate::audit_chain;
use crate::config::{PostgresSettings, PASSWORD_ENV};
use crate::error::{ApiError, StoreError};
use crate::model::{
    Approval, AuditEntry, Delivery, Grant, Host, HostState, Request, SealedGrant, SealedUse, State,
};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Migrations, the same versions as SQLite's (`migrations/NNNN_*.sql`).
pub const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_syslog_outbox_revocations_readiness.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_replicas.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_web_sessions.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_sealed_grants.sql"),
    ),
];

/// Advisory lock keys (transaction-scoped): the audit chain's head, the revocation list,
/// migrations.
const AUDIT_LOCK: i64 = 0x6a69_7462_0001;
const REVOCATIONS_LOCK: i64 = 0x6a69_7462_0002;
const MIGRATE_LOCK: i64 = 0x6a69_7462_0003;

/// The channel a new revocation list is announced on (`NOTIFY`, payload its seq).
const REVOCATIONS_CHANNEL: &str = "jitbroker_revocations";

/// Per session: a transaction left idle (a stuck replica) or a statement that runs away
/// cannot hold locks for long.
const SESSION_OPTIONS: &str =
    "-c idle_in_transaction_session_timeout=15000 -c statement_timeout=30000 -c lock_timeout=20000";

pub struct PgStore {
    pool: Pool,
    /// Drives the connections; `handle` runs statements on it.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// The URL as configured (never holds a password), for messages.
    target: String,
    replica: String,
    /// The revocation channel's listener, started by [`Store::follow_revocations`] (None:
    /// `[postgres] notifications = false`).
    listener: Option<Listener>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // May run inside the server's runtime: never block there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The password: `[postgres] password_file`, else `$JITBROKER_STORE_PASSWORD`, else none
/// (peer or certificate authentication).
fn password(settings: &PostgresSettings) -> Result<Option<String>, String> {
    if let Some(file) = &settings.password_file {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file).map_err(|e| {
            format!(
                "{}: cannot read the PostgreSQL password ([postgres] password_file): {e}",
                file.display()
            )
        })?;
        if meta.mode() & 0o007 != 0 {
            return Err(format!(
                "{}: the PostgreSQL password file is readable by others (mode {:o}); chmod 640 it (owner root, group jitbroker)",
                file.display(),
                meta.mode() & 0o777
            ));
        }
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "{}: cannot read the PostgreSQL password: {e}",
                file.display()
            )
        })?;
        let pw = text.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            return Err(format!("{}: the password file is empty", file.display()));
        }
        return Ok(Some(pw));
    }
    Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()))
}

fn rustls_config(ca_file: &Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let at = |e: &dyn std::fmt::Display| {
        format!(
            "{}: PostgreSQL CA certificates ([postgres] ca_file): {e}",
            ca_file.display()
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| at(&e))? {
        roots.add(cert.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
    }
    if roots.is_empty() {
        return Err(at(&"no PEM certificate in it"));
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Is this error PostgreSQL being away (down, restarting, refusing connections) rather than
/// the statement?
fn unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") // connection exception
                || c.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || c.starts_with("53") // insufficient resources
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION // a standby, during fail-over
        }
        // No SQLSTATE: I/O, connect, TLS, timeouts.
        None => true,
    }
}

/// A row's integer column as u64 (stored as BIGINT).
fn u64_of(r: &Row, i: usize) -> u64 {
    r.get::<_, i64>(i).max(0) as u64
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl PgStore {
    /// Connect to `url` (no password in it: see [`password`]), migrate, and adopt syslog
    /// events queued before version 3 as `replica`'s.
    pub fn open(
        url: &str,
        settings: &PostgresSettings,
        replica: &str,
    ) -> Result<PgStore, StoreError> {
        let target = url.to_string();
        let fail = |message: String| StoreError::Postgres {
            target: target.clone(),
            message,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| fail(format!("not a PostgreSQL URL: {e}")))?;
        if let Some(pw) = password(settings).map_err(fail)? {
            config.password(pw);
        }
        config.connect_timeout(settings.connect_timeout);
        config.application_name(format!("jitbroker {replica}"));
        let options = config.get_options().map(str::to_string);
        config.options(&match options {
            Some(o) => format!("{o} {SESSION_OPTIONS}"),
            None => SESSION_OPTIONS.to_string(),
        });
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let connector = match &settings.ca_file {
            Some(ca) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                Connector::Tls(tokio_postgres_rustls::MakeRustlsConnect::new(
                    rustls_config(ca).map_err(fail)?,
                ))
            }
            None => Connector::Plain,
        };
        let listener = settings.notifications.then(|| Listener {
            config: config.clone(),
            connector: connector.clone(),
            channel: REVOCATIONS_CHANNEL,
            target: target.clone(),
        });
        let manager = match connector {
            Connector::Tls(tls) => Manager::from_config(config, tls, manager_config),
            Connector::Plain => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jitbroker-pg")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the store's runtime: {e}")))?;
        let wait = settings.connect_timeout;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size as usize)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| fail(format!("cannot make the connection pool: {e}")))?;
        let store = PgStore {
            pool,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            target,
            replica: replica.to_string(),
            listener,
        };
        store.migrate()?;
        let replica = store.replica.clone();
        store.on_connection(|c| async move {
            c.execute(
                "UPDATE syslog_outbox SET replica = $1 WHERE replica = ''",
                &[&replica],
            )
            .await
            .map(|_| ())
        })?;
        Ok(store)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    fn error(&self, e: tokio_postgres::Error) -> StoreError {
        // tokio-postgres's messages name the server's error, never the connection settings.
        let message = match e.as_db_error() {
            Some(db) => format!(
                "{} ({}){}",
                db.message(),
                db.code().code(),
                db.detail().map(|d| format!(": {d}")).unwrap_or_default()
            ),
            None => {
                use std::error::Error;
                let mut text = e.to_string();
                if let Some(source) = e.source() {
                    text = format!("{text}: {source}");
                }
                if text.contains("password missing") {
                    text.push_str(&format!(
                        " (PostgreSQL asks for a password: name a file holding it in [postgres] password_file, or set ${PASSWORD_ENV})"
                    ));
                }
                text
            }
        };
        let target = self.target.clone();
        if unavailable(&e) {
            StoreError::Unavailable { target, message }
        } else if matches!(
            e.code(),
            Some(&SqlState::UNIQUE_VIOLATION)
                | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                | Some(&SqlState::T_R_DEADLOCK_DETECTED)
        ) {
            StoreError::Conflict { target, message }
        } else {
            StoreError::Postgres { target, message }
        }
    }

    fn pool_error(&self, e: deadpool_postgres::PoolError) -> StoreError {
        let message = match e {
            deadpool_postgres::PoolError::Backend(e) => return self.error(e),
            deadpool_postgres::PoolError::Timeout(_) => {
                "no connection to PostgreSQL within the connect timeout ([postgres] connect_timeout; the server is down, unreachable or has no free connection, or every pooled connection is busy)".to_string()
            }
            other => other.to_string(),
        };
        StoreError::Unavailable {
            target: self.target.clone(),
            message,
        }
    }

    fn connection(&self) -> Result<Object, StoreError> {
        self.handle
            .block_on(self.pool.get())
            .map_err(|e| self.pool_error(e))
    }

    /// Run `f` on a pooled connection (outside any transaction of ours).
    fn on_connection<R, F, Fut>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(Object) -> Fut,
        Fut: std::future::Future<Output = Result<R, tokio_postgres::Error>>,
    {
        let conn = self.connection()?;
        self.handle.block_on(f(conn)).map_err(|e| self.error(e))
    }

    /// Apply the migrations not yet applied, in one transaction under an advisory lock
    /// (replicas starting at once migrate once).
    fn migrate(&self) -> Result<(), StoreError> {
        let current = self.on_connection(|mut c| async move {
            let tx = c.transaction().await?;
            tx.batch_execute(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATE_LOCK});
                 CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
            ))
            .await?;
            let current: i64 = tx
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .await?
                .get(0);
            let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
            if current > i64::from(newest) {
                return Ok(Err(current));
            }
            for (version, sql) in MIGRATIONS.iter().filter(|m| i64::from(m.0) > current) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&i64::from(*version)],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(Ok(()))
        })?;
        current.map_err(|v| StoreError::Corrupt {
            path: self.target.clone(),
            message: format!(
                "schema version {v} is newer than this jitbroker knows ({}); run the newer jitbroker",
                MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
            ),
        })
    }

    fn run(
        &self,
        write: Option<Durability>,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let conn = self.connection()?;
        let mut tx = PgTx {
            store: self,
            conn: Some(conn),
            write: write.is_some(),
            begin: match write {
                Some(Durability::Durable) => Some("BEGIN"),
                Some(Durability::Bookkeeping) => Some("BEGIN; SET LOCAL synchronous_commit TO OFF"),
                None => None,
            },
            durable: write == Some(Durability::Durable),
            chain_head: None,
            barrier: false,
            open: false,
        };
        let result = f(&mut tx);
        match result {
            Ok(()) => tx.commit().map_err(ApiError::from),
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// `jitbroker migrate`: the pool's connection, for a transaction of its own.
    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    pub(super) fn pooled(&self) -> Result<Object, StoreError> {
        self.connection()
    }

    pub(super) fn map_error(&self, e: tokio_postgres::Error) -> StoreError {
        self.error(e)
    }
}

impl Store for PgStore {
    fn write_tx(
        &self,
        durability: Durability,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        self.run(Some(durability), f)
    }

    /// Reads run as single statements (each its own snapshot), with no BEGIN/COMMIT round
    /// trips.
    fn read_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        self.run(None, f)
    }

    fn audit_rows(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self.on_connection(|c| async move {
            c.query(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id"), &[])
                .await
        })?;
        Ok(rows.iter().map(audit_row).collect())
    }

    fn ready(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        super::bookkeeping(self, |tx| Ok(tx.touch_readiness(now)?)).map_err(|e| {
            StoreError::NotReady {
                path: self.target.clone(),
                message: e.message,
            }
        })
    }

    /// LISTEN on the channel every new revocation list is announced on (pg_listen.rs),
    /// unless `[postgres] notifications = false`.
    fn follow_revocations(&self, announce: Arc<AnnounceFn>) -> bool {
        match &self.listener {
            Some(listener) => {
                self.handle.spawn(listener.clone().run(announce));
                true
            }
            None => false,
        }
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let v: i64 = self
            .on_connection(|c| async move {
                c.query_one("SELECT MAX(version) FROM schema_version", &[])
                    .await
            })?
            .get(0);
        Ok(v as u32)
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

struct PgTx<'a> {
    store: &'a PgStore,
    /// None once the connection was given up (a failed rollback: never reused).
    conn: Option<Object>,
    write: bool,
    /// BEGIN not yet sent: it goes out with the first statement (one round trip).
    begin: Option<&'static str>,
    durable: bool,
    /// The audit chain's head once this transaction holds the audit lock.
    chain_head: Option<(i64, String)>,
    /// Commit without waiting for the disk, then wait in `commit_barrier`.
    barrier: bool,
    /// A BEGIN was sent.
    open: bool,
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        // Never hand a connection with an open transaction back to the pool (a panic in the
        // closure): drop it, the server rolls back.
        if self.open {
            if let Some(conn) = self.conn.take() {
                let _ = Object::take(conn);
            }
        }
    }
}

impl PgTx<'_> {
    fn conn(&self) -> Result<&Object, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Unavailable {
            target: self.store.target.clone(),
            message: "the connection was lost in this transaction".into(),
        })
    }

    /// Statements to send first (`pre`, simple protocol), the pending BEGIN before them.
    fn preamble(&mut self, pre: Option<&str>) -> Option<String> {
        let begin = self.begin.take();
        if begin.is_some() {
            self.open = true;
        }
        match (begin, pre) {
            (Some(b), Some(p)) => Some(format!("{b}; {p}")),
            (Some(b), None) => Some(b.to_string()),
            (None, Some(p)) => Some(p.to_string()),
            (None, None) => None,
        }
    }

    /// Run `sql` (prepared once per connection), after `pre` and a pending BEGIN, pipelined.
    fn query_after(
        &mut self,
        pre: Option<&str>,
        sql: &str,
        params: Params<'_>,
    ) -> TxResult<Vec<Row>> {
        let pre = self.preamble(pre);
        let conn = self.conn()?;
        let out = self.store.handle.block_on(async {
            let stmt = conn.prepare_cached(sql).await?;
            match &pre {
                Some(p) => {
                    let (a, b) = tokio::join!(conn.batch_execute(p), conn.query(&stmt, params));
                    a?;
                    b
                }
                None => conn.query(&stmt, params).await,
            }
        });
        out.map_err(|e| self.store.error(e))
    }

    fn query(&mut self, sql: &str, params: Params<'_>) -> TxResult<Vec<Row>> {
        self.query_after(None, sql, params)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> TxResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> TxResult<u64> {
        let pre = self.preamble(None);
        let conn = self.conn()?;
        let out = self.store.handle.block_on(async {
            let stmt = conn.prepare_cached(sql).await?;
            match &pre {
                Some(p) => {
                    let (a, b) = tokio::join!(conn.batch_execute(p), conn.execute(&stmt, params));
                    a?;
                    b
                }
                None => conn.execute(&stmt, params).await,
            }
        });
        out.map_err(|e| self.store.error(e))
    }

    /// `FOR UPDATE` in write transactions: the row stays ours until commit.
    fn locking(&self) -> &'static str {
        if self.write {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    fn commit(mut self) -> Result<(), StoreError> {
        if !self.open {
            return Ok(());
        }
        let conn = self.conn()?;
        let barrier = self.barrier;
        let out = self.store.handle.block_on(async {
            conn.batch_execute("COMMIT").await?;
            if barrier {
                // A synchronous commit that wrote WAL: when it returns, everything before it
                // (our asynchronous commit included) is on disk.
                conn.execute(
                    "INSERT INTO commit_barrier (pid, n) VALUES (pg_backend_pid(), 1)
                     ON CONFLICT (pid) DO UPDATE SET n = commit_barrier.n + 1",
                    &[],
                )
                .await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        });
        self.open = false;
        out.map_err(|e| self.store.error(e))
    }

    fn rollback(mut self) {
        if !self.open {
            return;
        }
        let rolled_back = match self.conn.as_ref() {
            Some(conn) => self
                .store
                .handle
                .block_on(conn.batch_execute("ROLLBACK"))
                .is_ok(),
            None => false,
        };
        if rolled_back {
            self.open = false;
        }
        // Otherwise Drop detaches the connection.
    }

    fn approvals_of(&mut self, ids: &[String]) -> TxResult<HashMap<String, Vec<Approval>>> {
        let mut out: HashMap<String, Vec<Approval>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows = self.query(
            r#"SELECT request_id, "user", host, at, comment, source FROM approvals
               WHERE request_id = ANY($1) ORDER BY at, seq"#,
            &[&ids],
        )?;
        for r in rows {
            out.entry(r.get(0)).or_default().push(Approval {
                user: r.get(1),
                host: r.get(2),
                at: from_ts(r.get(3)),
                comment: r.get(4),
                source: r.get(5),
            });
        }
        Ok(out)
    }

    /// Sealed grants `sql_where` selects, each with the uses hosts reported (one more query).
    fn sealed_where(&mut self, sql_where: &str, params: Params<'_>) -> TxResult<Vec<SealedGrant>> {
        let sql = format!("SELECT {SEALED_COLS} FROM sealed_grants {sql_where}");
        let mut grants: Vec<SealedGrant> =
            self.query(&sql, params)?.iter().map(sealed_row).collect();
        if grants.is_empty() {
            return Ok(grants);
        }
        let ids: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
        let rows = self.query(
            "SELECT grant_id, host, at, reported FROM sealed_uses WHERE grant_id = ANY($1)
             ORDER BY at, host",
            &[&ids],
        )?;
        let mut uses: HashMap<String, Vec<SealedUse>> = HashMap::new();
        for r in rows {
            uses.entry(r.get(0)).or_default().push(SealedUse {
                host: r.get(1),
                at: from_ts(r.get(2)),
                reported: from_ts(r.get(3)),
            });
        }
        for g in &mut grants {
            g.uses = uses.remove(&g.id).unwrap_or_default();
        }
        Ok(grants)
    }

    fn requests_where(&mut self, sql_where: &str, params: Params<'_>) -> TxResult<Vec<Request>> {
        let sql = format!("SELECT {REQUEST_COLS} FROM requests {sql_where}");
        let mut rows: Vec<Request> = self.query(&sql, params)?.iter().map(request_row).collect();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut approvals = self.approvals_of(&ids)?;
        for r in &mut rows {
            r.approvals = approvals.remove(&r.id).unwrap_or_default();
        }
        Ok(rows)
    }
}

const REQUEST_COLS: &str = r#"id, "user", uid, host, rule, cmd, ttl_secs, reason, ticket, run_as, hosts, break_glass, state, created, expires, needed_approvals, needed_groups, denied_by, deny_reason, grant_id"#;
const GRANT_COLS: &str = r#"id, request_id, "user", rule, hosts, iat, exp, token, break_glass, revoked_at, revoked_by, revoke_reason"#;
const HOST_COLS: &str = "name, public_key, kid, state, created, retired";
const AUDIT_COLS: &str = "id, event_id, at, type, actor, host, subject, data, prev_hash, hash";
const UNKNOWN_COLS: &str = r#"jti, exp, revoked_at, revoked_by, revoke_reason, "user", rule"#;
const DELIVERY_COLS: &str = "id, delivery_id, url, event_id, event_type, body, attempts";
const SESSION_COLS: &str = r#"id, token_sha256, csrf, "user", groups, issuer, subject, created, last_seen, expires, ended, end_reason"#;
const SEALED_COLS: &str = r#"id, batch, "user", uid, rule, hosts, iat, exp, reason, ticket, sealed_by, token_sha256, revoked_at, revoked_by, revoke_reason"#;

fn request_row(r: &Row) -> Request {
    let cmd: Option<String> = r.get(5);
    let state: String = r.get(12);
    Request {
        id: r.get(0),
        user: r.get(1),
        uid: u64_of(r, 2) as u32,
        host: r.get(3),
        rule: r.get(4),
        cmd: cmd.and_then(|c| serde_json::from_str(&c).ok()),
        ttl_secs: u64_of(r, 6),
        reason: r.get(7),
        ticket: r.get(8),
        run_as: r.get(9),
        hosts: parse_list(r.get(10)),
        break_glass: r.get(11),
        state: State::parse(&state).unwrap_or(State::Expired),
        created: from_ts(r.get(13)),
        expires: from_ts(r.get(14)),
        approvals: Vec::new(),
        needed_approvals: u64_of(r, 15) as u32,
        needed_groups: parse_list(r.get(16)),
        denied_by: r.get(17),
        deny_reason: r.get(18),
        grant_id: r.get(19),
    }
}

fn grant_row(r: &Row) -> Grant {
    Grant {
        id: r.get(0),
        request_id: r.get(1),
        user: r.get(2),
        rule: r.get(3),
        hosts: parse_list(r.get(4)),
        iat: from_ts(r.get(5)),
        exp: from_ts(r.get(6)),
        token: r.get(7),
        break_glass: r.get(8),
        revoked_at: r.get::<_, Option<i64>>(9).map(from_ts),
        revoked_by: r.get(10),
        revoke_reason: r.get(11),
    }
}

fn host_row(r: &Row) -> Host {
    let state: String = r.get(3);
    Host {
        name: r.get(0),
        public_key: r.get(1),
        kid: r.get(2),
        state: if state == "enrolled" {
            HostState::Enrolled
        } else {
            HostState::Retired
        },
        created: from_ts(r.get(4)),
        retired: r.get::<_, Option<i64>>(5).map(from_ts),
    }
}

fn audit_row(r: &Row) -> AuditEntry {
    let data: String = r.get(7);
    AuditEntry {
        id: r.get(0),
        event_id: r.get(1),
        at: from_ts(r.get(2)),
        kind: r.get(3),
        actor: r.get(4),
        host: r.get(5),
        subject: r.get(6),
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

fn unknown_row(r: &Row) -> UnknownRevocation {
    UnknownRevocation {
        jti: r.get(0),
        exp: from_ts(r.get(1)),
        revoked_at: from_ts(r.get(2)),
        revoked_by: r.get(3),
        reason: r.get(4),
        user: r.get(5),
        rule: r.get(6),
    }
}

fn session_row(r: &Row) -> WebSession {
    WebSession {
        id: r.get(0),
        token_sha256: r.get(1),
        csrf: r.get(2),
        user: r.get(3),
        groups: parse_list(r.get(4)),
        issuer: r.get(5),
        subject: r.get(6),
        created: from_ts(r.get(7)),
        last_seen: from_ts(r.get(8)),
        expires: from_ts(r.get(9)),
        ended: r.get::<_, Option<i64>>(10).map(from_ts),
        end_reason: r.get(11),
    }
}

fn sealed_row(r: &Row) -> SealedGrant {
    SealedGrant {
        id: r.get(0),
        batch: r.get(1),
        user: r.get(2),
        uid: r.get::<_, Option<i64>>(3).map(|u| u as u32),
        rule: r.get(4),
        hosts: parse_list(r.get(5)),
        iat: from_ts(r.get(6)),
        exp: from_ts(r.get(7)),
        reason: r.get(8),
        ticket: r.get(9),
        sealed_by: r.get(10),
        token_sha256: r.get(11),
        revoked_at: r.get::<_, Option<i64>>(12).map(from_ts),
        revoked_by: r.get(13),
        revoke_reason: r.get(14),
        uses: Vec::new(),
    }
}

fn delivery_row(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        delivery_id: r.get(1),
        url: r.get(2),
        event_id: r.get(3),
        event_type: r.get(4),
        body: r.get(5),
        attempts: u64_of(r, 6) as u32,
    }
}

impl Tx for PgTx<'_> {
    fn insert_request(&mut self, r: &Request) -> TxResult<()> {
        let cmd = r.cmd.as_ref().map(|c| c.to_string());
        self.execute(
            &format!("INSERT INTO requests ({REQUEST_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)"),
            &[
                &r.id,
                &r.user,
                &i64::from(r.uid),
                &r.host,
                &r.rule,
                &cmd,
                &(r.ttl_secs as i64),
                &r.reason,
                &r.ticket,
                &r.run_as,
                &json_list(&r.hosts),
                &r.break_glass,
                &r.state.as_str(),
                &ts(r.created),
                &ts(r.expires),
                &i64::from(r.needed_approvals),
                &json_list(&r.needed_groups),
                &r.denied_by,
                &r.deny_reason,
                &r.grant_id,
            ],
        )?;
        Ok(())
    }

    fn get_request(&mut self, id: &str) -> TxResult<Option<Request>> {
        let sql = format!("WHERE id = $1{}", self.locking());
        Ok(self.requests_where(&sql, &[&id])?.into_iter().next())
    }

    fn update_request(&mut self, r: &Request) -> TxResult<()> {
        self.execute(
            "UPDATE requests SET state = $2, denied_by = $3, deny_reason = $4, grant_id = $5 WHERE id = $1",
            &[&r.id, &r.state.as_str(), &r.denied_by, &r.deny_reason, &r.grant_id],
        )?;
        Ok(())
    }

    fn list_requests(&mut self, f: &RequestFilter) -> TxResult<Vec<Request>> {
        if f.rules.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(Vec::new());
        }
        let state = f.state.map(|s| s.as_str());
        let limit = i64::from(f.limit.max(1));
        self.requests_where(
            r#"WHERE ($1::TEXT IS NULL OR "user" = $1) AND ($2::TEXT IS NULL OR state = $2)
               AND ($3::TEXT[] IS NULL OR rule = ANY($3))
               ORDER BY created DESC, id DESC LIMIT $4"#,
            &[&f.user, &state, &f.rules, &limit],
        )
    }

    fn add_approval(&mut self, request_id: &str, a: &Approval) -> TxResult<()> {
        self.execute(
            r#"INSERT INTO approvals (request_id, "user", host, at, comment, source) VALUES ($1, $2, $3, $4, $5, $6)"#,
            &[&request_id, &a.user, &a.host, &ts(a.at), &a.comment, &a.source],
        )?;
        Ok(())
    }

    fn overdue_pending(&mut self, now: OffsetDateTime) -> TxResult<Vec<Request>> {
        // Every replica's maintenance runs this: each takes the rows no other holds.
        let lock = if self.write {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        self.requests_where(
            &format!("WHERE state = 'pending' AND expires <= $1 ORDER BY id LIMIT 500{lock}"),
            &[&ts(now)],
        )
    }

    fn request_counts(&mut self) -> TxResult<Vec<(String, u64)>> {
        let rows = self.query(
            "SELECT state, COUNT(*) FROM requests GROUP BY state ORDER BY state",
            &[],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), u64_of(r, 1))).collect())
    }

    fn insert_grant(&mut self, g: &Grant) -> TxResult<()> {
        self.execute(
            &format!(
                "INSERT INTO grants ({GRANT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
            ),
            &[
                &g.id,
                &g.request_id,
                &g.user,
                &g.rule,
                &json_list(&g.hosts),
                &ts(g.iat),
                &ts(g.exp),
                &g.token,
                &g.break_glass,
                &g.revoked_at.map(ts),
                &g.revoked_by,
                &g.revoke_reason,
            ],
        )?;
        Ok(())
    }

    fn get_grant(&mut self, id: &str) -> TxResult<Option<Grant>> {
        let sql = format!(
            "SELECT {GRANT_COLS} FROM grants WHERE id = $1{}",
            self.locking()
        );
        Ok(self.query_opt(&sql, &[&id])?.as_ref().map(grant_row))
    }

    fn list_grants(
        &mut self,
        user: Option<&str>,
        rules: Option<&[String]>,
        limit: u32,
    ) -> TxResult<Vec<Grant>> {
        if rules.is_some_and(|r| r.is_empty()) {
            return Ok(Vec::new());
        }
        let rules: Option<Vec<String>> = rules.map(|r| r.to_vec());
        let limit = i64::from(limit.max(1));
        let rows = self.query(
            &format!(
                r#"SELECT {GRANT_COLS} FROM grants WHERE ($1::TEXT IS NULL OR "user" = $1)
                   AND ($2::TEXT[] IS NULL OR rule = ANY($2)) ORDER BY iat DESC, id DESC LIMIT $3"#
            ),
            &[&user, &rules, &limit],
        )?;
        Ok(rows.iter().map(grant_row).collect())
    }

    fn revoke_grant(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()> {
        self.execute(
            "UPDATE grants SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 WHERE id = $1",
            &[&id, &ts(at), &by, &reason],
        )?;
        Ok(())
    }

    fn revoked_grants(&mut self, now: OffsetDateTime) -> TxResult<Vec<Grant>> {
        let rows = self.query(
            &format!("SELECT {GRANT_COLS} FROM grants WHERE revoked_at IS NOT NULL AND exp > $1 ORDER BY revoked_at, id"),
            &[&ts(now)],
        )?;
        Ok(rows.iter().map(grant_row).collect())
    }

    fn grants_issued(&mut self) -> TxResult<u64> {
        let rows = self.query("SELECT COUNT(*) FROM grants", &[])?;
        Ok(rows.first().map(|r| u64_of(r, 0)).unwrap_or(0))
    }

    fn insert_host(&mut self, h: &Host) -> TxResult<()> {
        self.execute(
            &format!("INSERT INTO hosts ({HOST_COLS}) VALUES ($1,$2,$3,$4,$5,$6)"),
            &[
                &h.name,
                &h.public_key,
                &h.kid,
                &h.state.as_str(),
                &ts(h.created),
                &h.retired.map(ts),
            ],
        )?;
        Ok(())
    }

    fn get_host(&mut self, name: &str) -> TxResult<Option<Host>> {
        let sql = format!(
            "SELECT {HOST_COLS} FROM hosts WHERE name = $1{}",
            self.locking()
        );
        Ok(self.query_opt(&sql, &[&name])?.as_ref().map(host_row))
    }

    fn host_by_kid(&mut self, kid: &str) -> TxResult<Option<Host>> {
        let sql = format!("SELECT {HOST_COLS} FROM hosts WHERE kid = $1");
        Ok(self.query_opt(&sql, &[&kid])?.as_ref().map(host_row))
    }

    fn list_hosts(&mut self) -> TxResult<Vec<Host>> {
        let rows = self.query(&format!("SELECT {HOST_COLS} FROM hosts ORDER BY name"), &[])?;
        Ok(rows.iter().map(host_row).collect())
    }

    fn retire_host(&mut self, name: &str, at: OffsetDateTime) -> TxResult<()> {
        self.execute(
            "UPDATE hosts SET state = 'retired', retired = $2 WHERE name = $1",
            &[&name, &ts(at)],
        )?;
        Ok(())
    }

    fn insert_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        expires: OffsetDateTime,
    ) -> TxResult<()> {
        self.execute(
            "INSERT INTO enrollment_tokens (token_sha256, name, expires) VALUES ($1, $2, $3)",
            &[&token_sha256, &name, &ts(expires)],
        )?;
        Ok(())
    }

    fn take_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> TxResult<bool> {
        let n = self.execute(
            "DELETE FROM enrollment_tokens WHERE token_sha256 = $1 AND name = $2 AND expires > $3",
            &[&token_sha256, &name, &ts(now)],
        )?;
        Ok(n == 1)
    }

    fn remember_attestation(&mut self, jti: &str, exp: OffsetDateTime) -> TxResult<bool> {
        // A concurrent insert of the same jti waits for the other transaction, then does
        // nothing: exactly one of them gets 1.
        let n = self.execute(
            "INSERT INTO seen_attestations (jti, exp) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            &[&jti, &ts(exp)],
        )?;
        Ok(n == 1)
    }

    fn prune_attestations(&mut self, now: OffsetDateTime) -> TxResult<usize> {
        let n = self.execute("DELETE FROM seen_attestations WHERE exp < $1", &[&ts(now)])?;
        Ok(n as usize)
    }

    fn revocations(&mut self) -> TxResult<Option<StoredRevocations>> {
        let sql = "SELECT seq, iat, content, token FROM revocation_list WHERE id = 1";
        let pre = format!("SELECT pg_advisory_xact_lock({REVOCATIONS_LOCK})");
        let rows = if self.write {
            // The next list is built from this one: one writer at a time.
            self.query_after(Some(&pre), sql, &[])?
        } else {
            self.query(sql, &[])?
        };
        Ok(rows.first().map(|r| StoredRevocations {
            seq: u64_of(r, 0),
            iat: from_ts(r.get(1)),
            content: r.get(2),
            token: r.get(3),
        }))
    }

    fn revocation_seq(&mut self) -> TxResult<Option<u64>> {
        let row = self.query_opt("SELECT seq FROM revocation_list WHERE id = 1", &[])?;
        Ok(row.map(|r| u64_of(&r, 0)))
    }

    fn set_revocations(&mut self, r: &StoredRevocations) -> TxResult<()> {
        self.execute(
            "INSERT INTO revocation_list (id, seq, iat, content, token) VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, iat = EXCLUDED.iat,
               content = EXCLUDED.content, token = EXCLUDED.token",
            &[&(r.seq as i64), &ts(r.iat), &r.content, &r.token],
        )?;
        // Delivered to every replica's listener when (and only if) this transaction commits:
        // their revocation watches wake at once (watch.rs).
        self.execute(
            &format!("SELECT pg_notify('{REVOCATIONS_CHANNEL}', $1)"),
            &[&r.seq.to_string()],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, a: &NewAudit) -> TxResult<AuditEntry> {
        let (last_id, prev_hash) = match self.chain_head.take() {
            Some(head) => head,
            None => {
                // The lock is held until commit: the head read here is the committed one,
                // and no other transaction appends before this one commits.
                let mut pre = format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK})");
                if self.durable {
                    pre.push_str("; SET LOCAL synchronous_commit TO OFF");
                    self.barrier = true;
                }
                let rows = self.query_after(
                    Some(&pre),
                    "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
                    &[],
                )?;
                match rows.first() {
                    Some(r) => (r.get(0), r.get(1)),
                    None => (0, audit_chain::GENESIS.to_string()),
                }
            }
        };
        let mut entry = AuditEntry {
            id: last_id + 1,
            event_id: a.event_id.clone(),
            at: a.at,
            kind: a.kind.clone(),
            actor: a.actor.clone(),
            host: a.host.clone(),
            subject: a.subject.clone(),
            data: a.data.clone(),
            prev_hash,
            hash: String::new(),
        };
        entry.hash = audit_chain::chain_hash(&entry.prev_hash, &entry);
        self.execute(
            &format!("INSERT INTO audit ({AUDIT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"),
            &[
                &entry.id,
                &entry.event_id,
                &ts(entry.at),
                &entry.kind,
                &entry.actor,
                &entry.host,
                &entry.subject,
                &entry.data.to_string(),
                &entry.prev_hash,
                &entry.hash,
            ],
        )?;
        self.chain_head = Some((entry.id, entry.hash.clone()));
        Ok(entry)
    }

    fn list_audit(&mut self, after: i64, limit: u32) -> TxResult<Vec<AuditEntry>> {
        let rows = self.query(
            &format!("SELECT {AUDIT_COLS} FROM audit WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &i64::from(limit.max(1))],
        )?;
        Ok(rows.iter().map(audit_row).collect())
    }

    fn enqueue_syslog(&mut self, audit_id: i64, kind: &str, datagram: &[u8]) -> TxResult<i64> {
        let rows = self.query(
            "INSERT INTO syslog_outbox (audit_id, type, datagram, replica) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&audit_id, &kind, &datagram, &self.store.replica],
        )?;
        Ok(rows.first().map(|r| r.get(0)).unwrap_or(0))
    }

    fn pending_syslog(&mut self, from: i64, limit: u32) -> TxResult<Vec<(i64, Vec<u8>)>> {
        let replica = self.store.replica.clone();
        let rows = self.query(
            "SELECT id, datagram FROM syslog_outbox WHERE replica = $3 AND id >= $1 ORDER BY id LIMIT $2",
            &[&from, &i64::from(limit.max(1)), &replica],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn forget_syslog(&mut self, before: i64) -> TxResult<()> {
        let replica = self.store.replica.clone();
        self.execute(
            "DELETE FROM syslog_outbox WHERE replica = $2 AND id < $1",
            &[&before, &replica],
        )?;
        Ok(())
    }

    fn syslog_backlog(&mut self, from: i64) -> TxResult<u64> {
        let replica = self.store.replica.clone();
        let rows = self.query(
            "SELECT COUNT(*) FROM syslog_outbox WHERE replica = $2 AND id >= $1",
            &[&from, &replica],
        )?;
        Ok(rows.first().map(|r| u64_of(r, 0)).unwrap_or(0))
    }

    fn revoke_unknown(&mut self, r: &UnknownRevocation) -> TxResult<()> {
        self.execute(
            &format!("INSERT INTO revoked_unknown ({UNKNOWN_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7)"),
            &[
                &r.jti,
                &ts(r.exp),
                &ts(r.revoked_at),
                &r.revoked_by,
                &r.reason,
                &r.user,
                &r.rule,
            ],
        )?;
        Ok(())
    }

    fn get_revoked_unknown(&mut self, jti: &str) -> TxResult<Option<UnknownRevocation>> {
        let sql = format!(
            "SELECT {UNKNOWN_COLS} FROM revoked_unknown WHERE jti = $1{}",
            self.locking()
        );
        Ok(self.query_opt(&sql, &[&jti])?.as_ref().map(unknown_row))
    }

    fn revoked_unknown(&mut self, now: OffsetDateTime) -> TxResult<Vec<UnknownRevocation>> {
        let rows = self.query(
            &format!("SELECT {UNKNOWN_COLS} FROM revoked_unknown WHERE exp > $1 ORDER BY revoked_at, jti"),
            &[&ts(now)],
        )?;
        Ok(rows.iter().map(unknown_row).collect())
    }

    fn insert_sealed(&mut self, g: &SealedGrant) -> TxResult<()> {
        self.execute(
            &format!("INSERT INTO sealed_grants ({SEALED_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"),
            &[
                &g.id,
                &g.batch,
                &g.user,
                &g.uid.map(i64::from),
                &g.rule,
                &json_list(&g.hosts),
                &ts(g.iat),
                &ts(g.exp),
                &g.reason,
                &g.ticket,
                &g.sealed_by,
                &g.token_sha256,
                &g.revoked_at.map(ts),
                &g.revoked_by,
                &g.revoke_reason,
            ],
        )?;
        Ok(())
    }

    fn get_sealed(&mut self, id: &str) -> TxResult<Option<SealedGrant>> {
        let sql = format!("WHERE id = $1{}", self.locking());
        Ok(self.sealed_where(&sql, &[&id])?.into_iter().next())
    }

    fn list_sealed(&mut self, batch: Option<&str>) -> TxResult<Vec<SealedGrant>> {
        // In id order, also the order rows are locked in (a revocation of a batch): two
        // revocations of overlapping grants wait for each other instead of deadlocking.
        let sql = match batch {
            Some(_) => format!("WHERE batch = $1 ORDER BY id{}", self.locking()),
            None => format!("ORDER BY batch, id{}", self.locking()),
        };
        match batch {
            Some(b) => self.sealed_where(&sql, &[&b]),
            None => self.sealed_where(&sql, &[]),
        }
    }

    fn revoke_sealed(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()> {
        self.execute(
            "UPDATE sealed_grants SET revoked_at = $2, revoked_by = $3, revoke_reason = $4
             WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &ts(at), &by, &reason],
        )?;
        Ok(())
    }

    fn revoked_sealed(&mut self, now: OffsetDateTime) -> TxResult<Vec<SealedGrant>> {
        self.sealed_where(
            "WHERE revoked_at IS NOT NULL AND exp > $1 ORDER BY revoked_at, id",
            &[&ts(now)],
        )
    }

    fn record_sealed_use(
        &mut self,
        id: &str,
        host: &str,
        at: OffsetDateTime,
        reported: OffsetDateTime,
    ) -> TxResult<bool> {
        // The same use reported to two replicas at once: the second insert waits for the
        // first and does nothing, so exactly one records it.
        let n = self.execute(
            "INSERT INTO sealed_uses (grant_id, host, at, reported) VALUES ($1, $2, $3, $4)
             ON CONFLICT (grant_id, host) DO NOTHING",
            &[&id, &host, &ts(at), &ts(reported)],
        )?;
        Ok(n == 1)
    }

    fn touch_readiness(&mut self, now: OffsetDateTime) -> TxResult<()> {
        self.execute(
            "INSERT INTO readiness (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
            &[&ts(now)],
        )?;
        Ok(())
    }

    fn enqueue(
        &mut self,
        delivery_id: &str,
        url: &str,
        event_id: &str,
        event_type: &str,
        body: &str,
        now_ms: i64,
    ) -> TxResult<()> {
        self.execute(
            "INSERT INTO outbox (delivery_id, url, event_id, event_type, body, next_attempt_ms) VALUES ($1,$2,$3,$4,$5,$6)",
            &[&delivery_id, &url, &event_id, &event_type, &body, &now_ms],
        )?;
        Ok(())
    }

    fn claim_deliveries(
        &mut self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> TxResult<Vec<Delivery>> {
        // SKIP LOCKED: replicas claiming at the same moment take different rows.
        let rows = self.query(
            &format!(
                "UPDATE outbox SET next_attempt_ms = $2 WHERE id IN (
                   SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL
                   AND next_attempt_ms <= $1 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING {DELIVERY_COLS}"
            ),
            &[&now_ms, &lease_until_ms, &i64::from(limit)],
        )?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery_row).collect();
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    fn release_deliveries(
        &mut self,
        ids: &[i64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> TxResult<()> {
        self.execute(
            "UPDATE outbox SET next_attempt_ms = $3 WHERE id = ANY($1) AND next_attempt_ms = $2
             AND delivered_at IS NULL AND failed_at IS NULL",
            &[&ids, &lease_until_ms, &now_ms],
        )?;
        Ok(())
    }

    fn mark_delivered(&mut self, id: i64, now: OffsetDateTime) -> TxResult<()> {
        self.execute(
            "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1 WHERE id = $1",
            &[&id, &ts(now)],
        )?;
        Ok(())
    }

    fn mark_attempt_failed(
        &mut self,
        id: i64,
        attempts: u32,
        next_ms: Option<i64>,
        error: &str,
        now: OffsetDateTime,
    ) -> TxResult<()> {
        let failed = next_ms.is_none().then_some(ts(now));
        self.execute(
            "UPDATE outbox SET attempts = $2, next_attempt_ms = COALESCE($3, next_attempt_ms), failed_at = $4, last_error = $5 WHERE id = $1",
            &[&id, &i64::from(attempts), &next_ms, &failed, &error],
        )?;
        Ok(())
    }

    fn outbox_counts(&mut self) -> TxResult<(u64, u64, u64)> {
        let rows = self.query(
            "SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL),
                    COUNT(*) FILTER (WHERE delivered_at IS NOT NULL),
                    COUNT(*) FILTER (WHERE failed_at IS NOT NULL) FROM outbox",
            &[],
        )?;
        Ok(rows
            .first()
            .map(|r| (u64_of(r, 0), u64_of(r, 1), u64_of(r, 2)))
            .unwrap_or((0, 0, 0)))
    }

    fn search_audit(&mut self, f: &AuditFilter) -> TxResult<Vec<AuditEntry>> {
        // One statement per order (so that each can walk the primary key); a filter left
        // out is a NULL parameter. `data` holds JSON text, as in SQLite.
        let order = if f.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            r#"SELECT {AUDIT_COLS} FROM audit WHERE id > $1 AND ($2::BIGINT IS NULL OR id < $2)
               AND ($3::TEXT IS NULL OR actor = $3 OR data::jsonb #>> '{{request,user}}' = $3
                    OR data::jsonb #>> '{{grant,user}}' = $3)
               AND ($4::TEXT IS NULL OR data::jsonb #>> '{{request,rule}}' = $4
                    OR data::jsonb #>> '{{grant,rule}}' = $4)
               AND ($5::BIGINT IS NULL OR at >= $5) AND ($6::BIGINT IS NULL OR at <= $6)
               ORDER BY id {order} LIMIT $7"#
        );
        let rows = self.query(
            &sql,
            &[
                &f.after,
                &f.before,
                &f.user,
                &f.rule,
                &f.since.map(ts),
                &f.until.map(ts),
                &i64::from(f.limit.max(1)),
            ],
        )?;
        Ok(rows.iter().map(audit_row).collect())
    }

    fn audit_about(&mut self, subjects: &[String], limit: u32) -> TxResult<Vec<AuditEntry>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.query(
            &format!("SELECT {AUDIT_COLS} FROM audit WHERE subject = ANY($1) ORDER BY id LIMIT $2"),
            &[&subjects, &i64::from(limit.max(1))],
        )?;
        Ok(rows.iter().map(audit_row).collect())
    }

    fn insert_web_login(&mut self, l: &WebLogin) -> TxResult<()> {
        self.execute(
            "INSERT INTO web_logins (state_sha256, nonce, pkce_verifier, return_to, expires) VALUES ($1, $2, $3, $4, $5)",
            &[&l.state_sha256, &l.nonce, &l.pkce_verifier, &l.return_to, &ts(l.expires)],
        )?;
        Ok(())
    }

    fn take_web_login(
        &mut self,
        state_sha256: &str,
        now: OffsetDateTime,
    ) -> TxResult<Option<WebLogin>> {
        // DELETE … RETURNING: of two replicas that the same callback reaches at once, one
        // gets the row (the other waits for its commit, then finds none).
        let row = self.query_opt(
            "DELETE FROM web_logins WHERE state_sha256 = $1 RETURNING state_sha256, nonce, pkce_verifier, return_to, expires",
            &[&state_sha256],
        )?;
        let login = row.map(|r| WebLogin {
            state_sha256: r.get(0),
            nonce: r.get(1),
            pkce_verifier: r.get(2),
            return_to: r.get(3),
            expires: from_ts(r.get(4)),
        });
        Ok(login.filter(|l| l.expires > now))
    }

    fn count_web_logins(&mut self, now: OffsetDateTime) -> TxResult<u64> {
        let rows = self.query(
            "SELECT COUNT(*) FROM web_logins WHERE expires > $1",
            &[&ts(now)],
        )?;
        Ok(rows.first().map(|r| u64_of(r, 0)).unwrap_or(0))
    }

    fn insert_web_session(&mut self, w: &WebSession) -> TxResult<()> {
        self.execute(
            &format!("INSERT INTO web_sessions ({SESSION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"),
            &[
                &w.id,
                &w.token_sha256,
                &w.csrf,
                &w.user,
                &json_list(&w.groups),
                &w.issuer,
                &w.subject,
                &ts(w.created),
                &ts(w.last_seen),
                &ts(w.expires),
                &w.ended.map(ts),
                &w.end_reason,
            ],
        )?;
        Ok(())
    }

    fn web_session_by_token(&mut self, token_sha256: &str) -> TxResult<Option<WebSession>> {
        // Locked in write transactions: a page load on one replica and a sign-out (or an
        // admin's end) on another are serialized, so no page is served after the end commits.
        let sql = format!(
            "SELECT {SESSION_COLS} FROM web_sessions WHERE token_sha256 = $1{}",
            self.locking()
        );
        Ok(self
            .query_opt(&sql, &[&token_sha256])?
            .as_ref()
            .map(session_row))
    }

    fn touch_web_session(&mut self, id: &str, at: OffsetDateTime) -> TxResult<()> {
        self.execute(
            "UPDATE web_sessions SET last_seen = GREATEST(last_seen, $2) WHERE id = $1 AND ended IS NULL",
            &[&id, &ts(at)],
        )?;
        Ok(())
    }

    fn end_web_session(&mut self, id: &str, at: OffsetDateTime, reason: &str) -> TxResult<bool> {
        let n = self.execute(
            "UPDATE web_sessions SET ended = $2, end_reason = $3 WHERE id = $1 AND ended IS NULL",
            &[&id, &ts(at), &reason],
        )?;
        Ok(n == 1)
    }

    fn list_web_sessions(&mut self, user: Option<&str>, open: bool) -> TxResult<Vec<WebSession>> {
        let rows = self.query(
            &format!(
                r#"SELECT {SESSION_COLS} FROM web_sessions WHERE ($1::TEXT IS NULL OR "user" = $1)
                   AND (NOT $2 OR ended IS NULL) ORDER BY created DESC, id DESC LIMIT 1000"#
            ),
            &[&user, &open],
        )?;
        Ok(rows.iter().map(session_row).collect())
    }

    fn prune_web(&mut self, now: OffsetDateTime, forget_before: OffsetDateTime) -> TxResult<()> {
        self.execute("DELETE FROM web_logins WHERE expires <= $1", &[&ts(now)])?;
        self.execute(
            "DELETE FROM web_sessions WHERE COALESCE(ended, expires) < $1",
            &[&ts(forget_before)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn settings(file: &Path) -> PostgresSettings {
        PostgresSettings {
            password_file: Some(file.to_path_buf()),
            ..PostgresSettings::default()
        }
    }

    #[test]
    fn the_password_file_must_be_private_and_not_empty() {
        let dir = std::env::temp_dir().join(format!("jitbroker-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cret-pw\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            password(&settings(&file)).unwrap().as_deref(),
            Some("s3cret-pw")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = password(&settings(&file)).unwrap_err();
        assert!(
            e.contains("readable by others") && !e.contains("s3cret"),
            "{e}"
        );
        std::fs::write(&file, "\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(password(&settings(&file)).unwrap_err().contains("empty"));
        let e = password(&settings(&dir.join("missing"))).unwrap_err();
        assert!(e.contains("password_file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migrations_have_the_sqlite_versions() {
        let pg: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
        let lite: Vec<u32> = super::super::sqlite::MIGRATIONS
            .iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(pg, lite);
    }
}
