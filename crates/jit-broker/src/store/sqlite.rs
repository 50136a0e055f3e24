//! The SQLite store: WAL, numbered migrations (`migrations/NNNN_*.sql`) applied in order and
//! recorded in `schema_version`, one connection behind a mutex (writes are serialized anyway).
use super::diagnose;
use super::{
    AuditFilter, Durability, NewAudit, RequestFilter, Store, StoredRevocations, Tx, TxResult,
    UnknownRevocation, WebLogin, WebSession,
};
use crate::audit_chain;
use crate::error::{ApiError, StoreError};
use crate::model::{
    Approval, AuditEntry, Delivery, Grant, Host, HostState, Request, SealedGrant, SealedUse, State,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::OffsetDateTime;

/// Migrations, applied in order; `schema_version` records the last one applied.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/0002_syslog_outbox_revocations_readiness.sql"),
    ),
    (3, include_str!("../../migrations/0003_replicas.sql")),
    (4, include_str!("../../migrations/0004_web_sessions.sql")),
    (5, include_str!("../../migrations/0005_sealed_grants.sql")),
];

/// The connection and its current `synchronous` level (FULL for durable commits).
struct Db {
    conn: Connection,
    full: bool,
}

pub struct SqliteStore {
    db: Mutex<Db>,
    path: PathBuf,
    /// Whose syslog queue the `*_syslog` methods see.
    replica: String,
}

/// A store error, with what the file system says about it.
fn sqlite_error(path: &Path, source: rusqlite::Error) -> StoreError {
    let hint = diagnose::hint(path, &source)
        .map(|h| format!(": {h}"))
        .unwrap_or_default();
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
        hint,
    }
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

impl SqliteStore {
    /// Open (creating if needed) and migrate, as replica `replica` (whose queued syslog
    /// events it sends; events queued by an older broker become this one's).
    pub fn open(path: &Path, replica: &str) -> Result<SqliteStore, StoreError> {
        let err = |source| sqlite_error(path, source);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let store = SqliteStore {
            db: Mutex::new(Db { conn, full: false }),
            path: path.to_owned(),
            replica: replica.to_string(),
        };
        store.migrate()?;
        store
            .lock()
            .conn
            .execute(
                "UPDATE syslog_outbox SET replica = ?1 WHERE replica = ''",
                [replica],
            )
            .map_err(store.err())?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| sqlite_error(&self.path, source)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut db = self.lock();
        let conn = &mut db.conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(self.err())?;
        let current: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > newest {
            return Err(StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!(
                    "schema version {current} is newer than this jitbroker knows ({newest}); run the newer jitbroker"
                ),
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.execute_batch(sql).map_err(self.err())?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// The connection, for `jitbroker migrate` (which reads every table).
    pub(super) fn with_conn<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&self.lock().conn)
    }

    fn run(
        &self,
        behavior: TransactionBehavior,
        durability: Durability,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let mut db = self.lock();
        // `synchronous` cannot change inside a transaction: set it before BEGIN. Reads keep
        // whatever is set (they commit nothing).
        let full = durability == Durability::Durable;
        if matches!(behavior, TransactionBehavior::Immediate) && db.full != full {
            let level = if full { "FULL" } else { "NORMAL" };
            db.conn
                .pragma_update(None, "synchronous", level)
                .map_err(self.err())?;
            db.full = full;
        }
        let tx = db
            .conn
            .transaction_with_behavior(behavior)
            .map_err(self.err())?;
        let mut stx = SqliteTx {
            tx: &tx,
            path: &self.path,
            replica: &self.replica,
        };
        f(&mut stx)?; // dropping `tx` on error rolls back
        tx.commit().map_err(self.err())?;
        Ok(())
    }
}

impl Store for SqliteStore {
    fn write_tx(
        &self,
        durability: Durability,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        self.run(TransactionBehavior::Immediate, durability, f)
    }

    fn read_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        self.run(TransactionBehavior::Deferred, Durability::Bookkeeping, f)
    }

    fn ready(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        let probe = super::bookkeeping(self, |tx| Ok(tx.touch_readiness(now)?));
        if let Err(e) = probe {
            return Err(StoreError::NotReady {
                path: self.path.display().to_string(),
                message: e.message,
            });
        }
        match diagnose::space_problem(&self.path) {
            Some(message) => Err(StoreError::NotReady {
                path: self.path.display().to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// One broker process per SQLite file: its own revocations wake its watchers directly
    /// (watch.rs); a SQLite file has no way to announce another process's.
    fn follow_revocations(&self, _announce: std::sync::Arc<super::AnnounceFn>) -> bool {
        false
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        self.lock()
            .conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(self.err())
    }

    fn audit_rows(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let db = self.lock();
        let mut stmt = db
            .conn
            .prepare("SELECT id, event_id, at, type, actor, host, subject, data, prev_hash, hash FROM audit ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], audit_row)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
    replica: &'a str,
}

const REQUEST_COLS: &str = "id, user, uid, host, rule, cmd, ttl_secs, reason, ticket, run_as, hosts, break_glass, state, created, expires, needed_approvals, needed_groups, denied_by, deny_reason, grant_id";
const GRANT_COLS: &str = "id, request_id, user, rule, hosts, iat, exp, token, break_glass, revoked_at, revoked_by, revoke_reason";
const HOST_COLS: &str = "name, public_key, kid, state, created, retired";

fn request_row(r: &Row<'_>) -> rusqlite::Result<Request> {
    let cmd: Option<String> = r.get(5)?;
    let state: String = r.get(12)?;
    Ok(Request {
        id: r.get(0)?,
        user: r.get(1)?,
        uid: r.get(2)?,
        host: r.get(3)?,
        rule: r.get(4)?,
        cmd: cmd.and_then(|c| serde_json::from_str(&c).ok()),
        ttl_secs: r.get::<_, i64>(6)? as u64,
        reason: r.get(7)?,
        ticket: r.get(8)?,
        run_as: r.get(9)?,
        hosts: parse_list(&r.get::<_, String>(10)?),
        break_glass: r.get(11)?,
        state: State::parse(&state).unwrap_or(State::Expired),
        created: from_ts(r.get(13)?),
        expires: from_ts(r.get(14)?),
        approvals: Vec::new(),
        needed_approvals: r.get(15)?,
        needed_groups: parse_list(&r.get::<_, String>(16)?),
        denied_by: r.get(17)?,
        deny_reason: r.get(18)?,
        grant_id: r.get(19)?,
    })
}

fn grant_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: r.get(0)?,
        request_id: r.get(1)?,
        user: r.get(2)?,
        rule: r.get(3)?,
        hosts: parse_list(&r.get::<_, String>(4)?),
        iat: from_ts(r.get(5)?),
        exp: from_ts(r.get(6)?),
        token: r.get(7)?,
        break_glass: r.get(8)?,
        revoked_at: r.get::<_, Option<i64>>(9)?.map(from_ts),
        revoked_by: r.get(10)?,
        revoke_reason: r.get(11)?,
    })
}

fn host_row(r: &Row<'_>) -> rusqlite::Result<Host> {
    let state: String = r.get(3)?;
    Ok(Host {
        name: r.get(0)?,
        public_key: r.get(1)?,
        kid: r.get(2)?,
        state: if state == "enrolled" {
            HostState::Enrolled
        } else {
            HostState::Retired
        },
        created: from_ts(r.get(4)?),
        retired: r.get::<_, Option<i64>>(5)?.map(from_ts),
    })
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let data: String = r.get(7)?;
    Ok(AuditEntry {
        id: r.get(0)?,
        event_id: r.get(1)?,
        at: from_ts(r.get(2)?),
        kind: r.get(3)?,
        actor: r.get(4)?,
        host: r.get(5)?,
        subject: r.get(6)?,
        // A row whose data is not JSON keeps its text, so verification reports it.
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

/// `?` placeholders for an IN list.
fn placeholders(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| format!("?{}", first + i))
        .collect::<Vec<_>>()
        .join(",")
}

impl SqliteTx<'_> {
    fn e(&self, source: rusqlite::Error) -> StoreError {
        sqlite_error(self.path, source)
    }

    fn approvals(&self, request_id: &str) -> TxResult<Vec<Approval>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT user, host, at, comment, source FROM approvals WHERE request_id = ?1 ORDER BY at, rowid")
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map([request_id], |r| {
                Ok(Approval {
                    user: r.get(0)?,
                    host: r.get(1)?,
                    at: from_ts(r.get(2)?),
                    comment: r.get(3)?,
                    source: r.get(4)?,
                })
            })
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn requests_where(
        &self,
        sql_where: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> TxResult<Vec<Request>> {
        let sql = format!("SELECT {REQUEST_COLS} FROM requests {sql_where}");
        let mut stmt = self.tx.prepare_cached(&sql).map_err(|e| self.e(e))?;
        let mut rows = stmt
            .query_map(args, request_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        for r in &mut rows {
            r.approvals = self.approvals(&r.id)?;
        }
        Ok(rows)
    }
}

impl Tx for SqliteTx<'_> {
    fn insert_request(&mut self, r: &Request) -> TxResult<()> {
        self.tx
            .execute(
                &format!("INSERT INTO requests ({REQUEST_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)"),
                params![
                    r.id,
                    r.user,
                    r.uid,
                    r.host,
                    r.rule,
                    r.cmd.as_ref().map(|c| c.to_string()),
                    r.ttl_secs as i64,
                    r.reason,
                    r.ticket,
                    r.run_as,
                    json_list(&r.hosts),
                    r.break_glass,
                    r.state.as_str(),
                    ts(r.created),
                    ts(r.expires),
                    r.needed_approvals,
                    json_list(&r.needed_groups),
                    r.denied_by,
                    r.deny_reason,
                    r.grant_id,
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn get_request(&mut self, id: &str) -> TxResult<Option<Request>> {
        Ok(self
            .requests_where("WHERE id = ?1", &[&id])?
            .into_iter()
            .next())
    }

    fn update_request(&mut self, r: &Request) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE requests SET state = ?2, denied_by = ?3, deny_reason = ?4, grant_id = ?5 WHERE id = ?1",
                params![r.id, r.state.as_str(), r.denied_by, r.deny_reason, r.grant_id],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn list_requests(&mut self, f: &RequestFilter) -> TxResult<Vec<Request>> {
        let mut clauses = Vec::new();
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(user) = &f.user {
            args.push(Box::new(user.clone()));
            clauses.push(format!("user = ?{}", args.len()));
        }
        if let Some(state) = f.state {
            args.push(Box::new(state.as_str()));
            clauses.push(format!("state = ?{}", args.len()));
        }
        if let Some(rules) = &f.rules {
            if rules.is_empty() {
                return Ok(Vec::new());
            }
            let first = args.len() + 1;
            for r in rules {
                args.push(Box::new(r.clone()));
            }
            clauses.push(format!("rule IN ({})", placeholders(rules.len(), first)));
        }
        let mut sql = String::new();
        if !clauses.is_empty() {
            sql = format!("WHERE {}", clauses.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY created DESC, id DESC LIMIT {}",
            f.limit.max(1)
        ));
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
        self.requests_where(&sql, &refs)
    }

    fn add_approval(&mut self, request_id: &str, a: &Approval) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO approvals (request_id, user, host, at, comment, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![request_id, a.user, a.host, ts(a.at), a.comment, a.source],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn overdue_pending(&mut self, now: OffsetDateTime) -> TxResult<Vec<Request>> {
        self.requests_where("WHERE state = 'pending' AND expires <= ?1", &[&ts(now)])
    }

    fn request_counts(&mut self) -> TxResult<Vec<(String, u64)>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT state, COUNT(*) FROM requests GROUP BY state ORDER BY state")
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn insert_grant(&mut self, g: &Grant) -> TxResult<()> {
        self.tx
            .execute(
                &format!("INSERT INTO grants ({GRANT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"),
                params![
                    g.id,
                    g.request_id,
                    g.user,
                    g.rule,
                    json_list(&g.hosts),
                    ts(g.iat),
                    ts(g.exp),
                    g.token,
                    g.break_glass,
                    g.revoked_at.map(ts),
                    g.revoked_by,
                    g.revoke_reason
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn get_grant(&mut self, id: &str) -> TxResult<Option<Grant>> {
        self.tx
            .query_row(
                &format!("SELECT {GRANT_COLS} FROM grants WHERE id = ?1"),
                [id],
                grant_row,
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn list_grants(
        &mut self,
        user: Option<&str>,
        rules: Option<&[String]>,
        limit: u32,
    ) -> TxResult<Vec<Grant>> {
        let mut args: Vec<String> = Vec::new();
        let mut clauses = Vec::new();
        if let Some(u) = user {
            args.push(u.to_string());
            clauses.push("user = ?1".to_string());
        }
        if let Some(rules) = rules {
            if rules.is_empty() {
                return Ok(Vec::new());
            }
            let first = args.len() + 1;
            args.extend(rules.iter().cloned());
            clauses.push(format!("rule IN ({})", placeholders(rules.len(), first)));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {GRANT_COLS} FROM grants {filter} ORDER BY iat DESC, id DESC LIMIT {}",
            limit.max(1)
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), grant_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn revoke_grant(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE grants SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1",
                params![id, ts(at), by, reason],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn revoked_grants(&mut self, now: OffsetDateTime) -> TxResult<Vec<Grant>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!("SELECT {GRANT_COLS} FROM grants WHERE revoked_at IS NOT NULL AND exp > ?1 ORDER BY revoked_at, id"))
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map([ts(now)], grant_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn grants_issued(&mut self) -> TxResult<u64> {
        self.tx
            .query_row("SELECT COUNT(*) FROM grants", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.e(e))
    }

    fn insert_host(&mut self, h: &Host) -> TxResult<()> {
        self.tx
            .execute(
                &format!("INSERT INTO hosts ({HOST_COLS}) VALUES (?1,?2,?3,?4,?5,?6)"),
                params![
                    h.name,
                    h.public_key,
                    h.kid,
                    h.state.as_str(),
                    ts(h.created),
                    h.retired.map(ts)
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn get_host(&mut self, name: &str) -> TxResult<Option<Host>> {
        self.tx
            .query_row(
                &format!("SELECT {HOST_COLS} FROM hosts WHERE name = ?1"),
                [name],
                host_row,
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn host_by_kid(&mut self, kid: &str) -> TxResult<Option<Host>> {
        self.tx
            .query_row(
                &format!("SELECT {HOST_COLS} FROM hosts WHERE kid = ?1"),
                [kid],
                host_row,
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn list_hosts(&mut self) -> TxResult<Vec<Host>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!("SELECT {HOST_COLS} FROM hosts ORDER BY name"))
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map([], host_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn retire_host(&mut self, name: &str, at: OffsetDateTime) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE hosts SET state = 'retired', retired = ?2 WHERE name = ?1",
                params![name, ts(at)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn insert_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        expires: OffsetDateTime,
    ) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO enrollment_tokens (token_sha256, name, expires) VALUES (?1, ?2, ?3)",
                params![token_sha256, name, ts(expires)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn take_enrollment_token(
        &mut self,
        token_sha256: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> TxResult<bool> {
        let n = self
            .tx
            .execute(
                "DELETE FROM enrollment_tokens WHERE token_sha256 = ?1 AND name = ?2 AND expires > ?3",
                params![token_sha256, name, ts(now)],
            )
            .map_err(|e| self.e(e))?;
        Ok(n == 1)
    }

    fn remember_attestation(&mut self, jti: &str, exp: OffsetDateTime) -> TxResult<bool> {
        let n = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO seen_attestations (jti, exp) VALUES (?1, ?2)",
                params![jti, ts(exp)],
            )
            .map_err(|e| self.e(e))?;
        Ok(n == 1)
    }

    fn prune_attestations(&mut self, now: OffsetDateTime) -> TxResult<usize> {
        self.tx
            .execute("DELETE FROM seen_attestations WHERE exp < ?1", [ts(now)])
            .map_err(|e| self.e(e))
    }

    fn revocations(&mut self) -> TxResult<Option<StoredRevocations>> {
        self.tx
            .query_row(
                "SELECT seq, iat, content, token FROM revocation_list WHERE id = 1",
                [],
                |r| {
                    Ok(StoredRevocations {
                        seq: r.get::<_, i64>(0)? as u64,
                        iat: from_ts(r.get(1)?),
                        content: r.get(2)?,
                        token: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn revocation_seq(&mut self) -> TxResult<Option<u64>> {
        self.tx
            .query_row("SELECT seq FROM revocation_list WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|seq| seq.map(|s| s as u64))
            .map_err(|e| self.e(e))
    }

    fn set_revocations(&mut self, r: &StoredRevocations) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO revocation_list (id, seq, iat, content, token) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET seq = ?1, iat = ?2, content = ?3, token = ?4",
                params![r.seq as i64, ts(r.iat), r.content, r.token],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn append_audit(&mut self, a: &NewAudit) -> TxResult<AuditEntry> {
        let last: Option<(i64, String)> = self
            .tx
            .query_row(
                "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.e(e))?;
        let (id, prev_hash) = match last {
            Some((id, hash)) => (id + 1, hash),
            None => (1, audit_chain::GENESIS.to_string()),
        };
        let mut entry = AuditEntry {
            id,
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
        self.tx
            .execute(
                "INSERT INTO audit (id, event_id, at, type, actor, host, subject, data, prev_hash, hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                params![
                    entry.id,
                    entry.event_id,
                    ts(entry.at),
                    entry.kind,
                    entry.actor,
                    entry.host,
                    entry.subject,
                    entry.data.to_string(),
                    entry.prev_hash,
                    entry.hash
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(entry)
    }

    fn list_audit(&mut self, after: i64, limit: u32) -> TxResult<Vec<AuditEntry>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, event_id, at, type, actor, host, subject, data, prev_hash, hash FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(params![after, limit.max(1)], audit_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
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
        self.tx
            .execute(
                "INSERT INTO outbox (delivery_id, url, event_id, event_type, body, next_attempt_ms) VALUES (?1,?2,?3,?4,?5,?6)",
                params![delivery_id, url, event_id, event_type, body, now_ms],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn claim_deliveries(
        &mut self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> TxResult<Vec<Delivery>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "UPDATE outbox SET next_attempt_ms = ?2 WHERE id IN (
                   SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL
                   AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?3)
                 RETURNING id, delivery_id, url, event_id, event_type, body, attempts",
            )
            .map_err(|e| self.e(e))?;
        let mut rows = stmt
            .query_map(params![now_ms, lease_until_ms, limit], delivery_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        rows.sort_by_key(|d| d.id);
        Ok(rows)
    }

    fn release_deliveries(
        &mut self,
        ids: &[i64],
        lease_until_ms: i64,
        now_ms: i64,
    ) -> TxResult<()> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "UPDATE outbox SET next_attempt_ms = ?3 WHERE id = ?1 AND next_attempt_ms = ?2
                 AND delivered_at IS NULL AND failed_at IS NULL",
            )
            .map_err(|e| self.e(e))?;
        for id in ids {
            stmt.execute(params![id, lease_until_ms, now_ms])
                .map_err(|e| self.e(e))?;
        }
        Ok(())
    }

    fn mark_delivered(&mut self, id: i64, now: OffsetDateTime) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1 WHERE id = ?1",
                params![id, ts(now)],
            )
            .map_err(|e| self.e(e))?;
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
        let (next, failed) = match next_ms {
            Some(ms) => (Some(ms), None),
            None => (None, Some(ts(now))),
        };
        self.tx
            .execute(
                "UPDATE outbox SET attempts = ?2, next_attempt_ms = COALESCE(?3, next_attempt_ms), failed_at = ?4, last_error = ?5 WHERE id = ?1",
                params![id, attempts, next, failed, error],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn outbox_counts(&mut self) -> TxResult<(u64, u64, u64)> {
        self.tx
            .query_row(
                "SELECT
                   COALESCE(SUM(delivered_at IS NULL AND failed_at IS NULL), 0),
                   COALESCE(SUM(delivered_at IS NOT NULL), 0),
                   COALESCE(SUM(failed_at IS NOT NULL), 0) FROM outbox",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                    ))
                },
            )
            .map_err(|e| self.e(e))
    }

    fn enqueue_syslog(&mut self, audit_id: i64, kind: &str, datagram: &[u8]) -> TxResult<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO syslog_outbox (audit_id, type, datagram, replica) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| stmt.insert(params![audit_id, kind, datagram, self.replica]))
            .map_err(|e| self.e(e))
    }

    fn pending_syslog(&mut self, from: i64, limit: u32) -> TxResult<Vec<(i64, Vec<u8>)>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT id, datagram FROM syslog_outbox WHERE replica = ?3 AND id >= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(params![from, limit.max(1), self.replica], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn forget_syslog(&mut self, before: i64) -> TxResult<()> {
        self.tx
            .execute(
                "DELETE FROM syslog_outbox WHERE replica = ?2 AND id < ?1",
                params![before, self.replica],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn syslog_backlog(&mut self, from: i64) -> TxResult<u64> {
        self.tx
            .query_row(
                "SELECT COUNT(*) FROM syslog_outbox WHERE replica = ?2 AND id >= ?1",
                params![from, self.replica],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.e(e))
    }

    fn revoke_unknown(&mut self, r: &UnknownRevocation) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO revoked_unknown (jti, exp, revoked_at, revoked_by, revoke_reason, user, rule) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![r.jti, ts(r.exp), ts(r.revoked_at), r.revoked_by, r.reason, r.user, r.rule],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn get_revoked_unknown(&mut self, jti: &str) -> TxResult<Option<UnknownRevocation>> {
        self.tx
            .query_row(
                &format!("SELECT {UNKNOWN_COLS} FROM revoked_unknown WHERE jti = ?1"),
                [jti],
                unknown_row,
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn revoked_unknown(&mut self, now: OffsetDateTime) -> TxResult<Vec<UnknownRevocation>> {
        let mut stmt = self
            .tx
            .prepare_cached(&format!(
                "SELECT {UNKNOWN_COLS} FROM revoked_unknown WHERE exp > ?1 ORDER BY revoked_at, jti"
            ))
            .map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map([ts(now)], unknown_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn insert_sealed(&mut self, g: &SealedGrant) -> TxResult<()> {
        self.tx
            .execute(
                &format!("INSERT INTO sealed_grants ({SEALED_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"),
                params![
                    g.id,
                    g.batch,
                    g.user,
                    g.uid,
                    g.rule,
                    json_list(&g.hosts),
                    ts(g.iat),
                    ts(g.exp),
                    g.reason,
                    g.ticket,
                    g.sealed_by,
                    g.token_sha256,
                    g.revoked_at.map(ts),
                    g.revoked_by,
                    g.revoke_reason,
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn get_sealed(&mut self, id: &str) -> TxResult<Option<SealedGrant>> {
        Ok(self
            .sealed_where("WHERE id = ?1", &[&id])?
            .into_iter()
            .next())
    }

    fn list_sealed(&mut self, batch: Option<&str>) -> TxResult<Vec<SealedGrant>> {
        match batch {
            Some(b) => self.sealed_where("WHERE batch = ?1 ORDER BY id", &[&b]),
            None => self.sealed_where("ORDER BY batch, id", &[]),
        }
    }

    fn revoke_sealed(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        by: &str,
        reason: &str,
    ) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE sealed_grants SET revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, ts(at), by, reason],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn revoked_sealed(&mut self, now: OffsetDateTime) -> TxResult<Vec<SealedGrant>> {
        self.sealed_where(
            "WHERE revoked_at IS NOT NULL AND exp > ?1 ORDER BY revoked_at, id",
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
        let n = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO sealed_uses (grant_id, host, at, reported) VALUES (?1, ?2, ?3, ?4)",
                params![id, host, ts(at), ts(reported)],
            )
            .map_err(|e| self.e(e))?;
        Ok(n == 1)
    }

    fn touch_readiness(&mut self, now: OffsetDateTime) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO readiness (id, at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET at = ?1",
                [ts(now)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn search_audit(&mut self, f: &AuditFilter) -> TxResult<Vec<AuditEntry>> {
        let mut clauses = vec!["id > ?1".to_string()];
        let mut args: Vec<rusqlite::types::Value> = vec![f.after.into()];
        let arg = |v: rusqlite::types::Value, args: &mut Vec<_>| {
            args.push(v);
            format!("?{}", args.len())
        };
        if let Some(before) = f.before {
            let p = arg(before.into(), &mut args);
            clauses.push(format!("id < {p}"));
        }
        if let Some(user) = &f.user {
            let p = arg(user.clone().into(), &mut args);
            clauses.push(format!(
                "(actor = {p} OR json_extract(data, '$.request.user') = {p} OR json_extract(data, '$.grant.user') = {p})"
            ));
        }
        if let Some(rule) = &f.rule {
            let p = arg(rule.clone().into(), &mut args);
            clauses.push(format!(
                "(json_extract(data, '$.request.rule') = {p} OR json_extract(data, '$.grant.rule') = {p})"
            ));
        }
        if let Some(since) = f.since {
            let p = arg(ts(since).into(), &mut args);
            clauses.push(format!("at >= {p}"));
        }
        if let Some(until) = f.until {
            let p = arg(ts(until).into(), &mut args);
            clauses.push(format!("at <= {p}"));
        }
        let order = if f.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT id, event_id, at, type, actor, host, subject, data, prev_hash, hash FROM audit WHERE {} ORDER BY id {order} LIMIT {}",
            clauses.join(" AND "),
            f.limit.max(1)
        );
        let mut stmt = self.tx.prepare(&sql).map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), audit_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn audit_about(&mut self, subjects: &[String], limit: u32) -> TxResult<Vec<AuditEntry>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, event_id, at, type, actor, host, subject, data, prev_hash, hash FROM audit WHERE subject IN ({}) ORDER BY id LIMIT {}",
            placeholders(subjects.len(), 1),
            limit.max(1)
        );
        let mut stmt = self.tx.prepare(&sql).map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(subjects.iter()), audit_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn insert_web_login(&mut self, l: &WebLogin) -> TxResult<()> {
        self.tx
            .execute(
                "INSERT INTO web_logins (state_sha256, nonce, pkce_verifier, return_to, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![l.state_sha256, l.nonce, l.pkce_verifier, l.return_to, ts(l.expires)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn take_web_login(
        &mut self,
        state_sha256: &str,
        now: OffsetDateTime,
    ) -> TxResult<Option<WebLogin>> {
        let login = self
            .tx
            .query_row(
                "DELETE FROM web_logins WHERE state_sha256 = ?1 RETURNING state_sha256, nonce, pkce_verifier, return_to, expires",
                [state_sha256],
                |r| {
                    Ok(WebLogin {
                        state_sha256: r.get(0)?,
                        nonce: r.get(1)?,
                        pkce_verifier: r.get(2)?,
                        return_to: r.get(3)?,
                        expires: from_ts(r.get(4)?),
                    })
                },
            )
            .optional()
            .map_err(|e| self.e(e))?;
        Ok(login.filter(|l| l.expires > now))
    }

    fn count_web_logins(&mut self, now: OffsetDateTime) -> TxResult<u64> {
        self.tx
            .query_row(
                "SELECT COUNT(*) FROM web_logins WHERE expires > ?1",
                [ts(now)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.e(e))
    }

    fn insert_web_session(&mut self, w: &WebSession) -> TxResult<()> {
        self.tx
            .execute(
                &format!("INSERT INTO web_sessions ({SESSION_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"),
                params![
                    w.id,
                    w.token_sha256,
                    w.csrf,
                    w.user,
                    json_list(&w.groups),
                    w.issuer,
                    w.subject,
                    ts(w.created),
                    ts(w.last_seen),
                    ts(w.expires),
                    w.ended.map(ts),
                    w.end_reason
                ],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn web_session_by_token(&mut self, token_sha256: &str) -> TxResult<Option<WebSession>> {
        self.tx
            .query_row(
                &format!("SELECT {SESSION_COLS} FROM web_sessions WHERE token_sha256 = ?1"),
                [token_sha256],
                session_row,
            )
            .optional()
            .map_err(|e| self.e(e))
    }

    fn touch_web_session(&mut self, id: &str, at: OffsetDateTime) -> TxResult<()> {
        self.tx
            .execute(
                "UPDATE web_sessions SET last_seen = MAX(last_seen, ?2) WHERE id = ?1 AND ended IS NULL",
                params![id, ts(at)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }

    fn end_web_session(&mut self, id: &str, at: OffsetDateTime, reason: &str) -> TxResult<bool> {
        let n = self
            .tx
            .execute(
                "UPDATE web_sessions SET ended = ?2, end_reason = ?3 WHERE id = ?1 AND ended IS NULL",
                params![id, ts(at), reason],
            )
            .map_err(|e| self.e(e))?;
        Ok(n == 1)
    }

    fn list_web_sessions(&mut self, user: Option<&str>, open: bool) -> TxResult<Vec<WebSession>> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM web_sessions WHERE (?1 IS NULL OR user = ?1) AND (?2 = 0 OR ended IS NULL) ORDER BY created DESC, id DESC LIMIT 1000"
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(|e| self.e(e))?;
        let rows = stmt
            .query_map(params![user, open], session_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        Ok(rows)
    }

    fn prune_web(&mut self, now: OffsetDateTime, forget_before: OffsetDateTime) -> TxResult<()> {
        self.tx
            .execute("DELETE FROM web_logins WHERE expires <= ?1", [ts(now)])
            .map_err(|e| self.e(e))?;
        self.tx
            .execute(
                "DELETE FROM web_sessions WHERE COALESCE(ended, expires) < ?1",
                [ts(forget_before)],
            )
            .map_err(|e| self.e(e))?;
        Ok(())
    }
}

const SESSION_COLS: &str = "id, token_sha256, csrf, user, groups, issuer, subject, created, last_seen, expires, ended, end_reason";

fn session_row(r: &Row<'_>) -> rusqlite::Result<WebSession> {
    Ok(WebSession {
        id: r.get(0)?,
        token_sha256: r.get(1)?,
        csrf: r.get(2)?,
        user: r.get(3)?,
        groups: parse_list(&r.get::<_, String>(4)?),
        issuer: r.get(5)?,
        subject: r.get(6)?,
        created: from_ts(r.get(7)?),
        last_seen: from_ts(r.get(8)?),
        expires: from_ts(r.get(9)?),
        ended: r.get::<_, Option<i64>>(10)?.map(from_ts),
        end_reason: r.get(11)?,
    })
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        delivery_id: r.get(1)?,
        url: r.get(2)?,
        event_id: r.get(3)?,
        event_type: r.get(4)?,
        body: r.get(5)?,
        attempts: r.get(6)?,
    })
}

const SEALED_COLS: &str = "id, batch, user, uid, rule, hosts, iat, exp, reason, ticket, sealed_by, token_sha256, revoked_at, revoked_by, revoke_reason";

fn sealed_row(r: &Row<'_>) -> rusqlite::Result<SealedGrant> {
    Ok(SealedGrant {
        id: r.get(0)?,
        batch: r.get(1)?,
        user: r.get(2)?,
        uid: r.get(3)?,
        rule: r.get(4)?,
        hosts: parse_list(&r.get::<_, String>(5)?),
        iat: from_ts(r.get(6)?),
        exp: from_ts(r.get(7)?),
        reason: r.get(8)?,
        ticket: r.get(9)?,
        sealed_by: r.get(10)?,
        token_sha256: r.get(11)?,
        revoked_at: r.get::<_, Option<i64>>(12)?.map(from_ts),
        revoked_by: r.get(13)?,
        revoke_reason: r.get(14)?,
        uses: Vec::new(),
    })
}

impl SqliteTx<'_> {
    fn sealed_where(
        &self,
        sql_where: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> TxResult<Vec<SealedGrant>> {
        let sql = format!("SELECT {SEALED_COLS} FROM sealed_grants {sql_where}");
        let mut stmt = self.tx.prepare_cached(&sql).map_err(|e| self.e(e))?;
        let mut rows = stmt
            .query_map(args, sealed_row)
            .map_err(|e| self.e(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.e(e))?;
        let mut uses = self
            .tx
            .prepare_cached(
                "SELECT host, at, reported FROM sealed_uses WHERE grant_id = ?1 ORDER BY at, host",
            )
            .map_err(|e| self.e(e))?;
        for g in &mut rows {
            g.uses = uses
                .query_map([&g.id], |r| {
                    Ok(SealedUse {
                        host: r.get(0)?,
                        at: from_ts(r.get(1)?),
                        reported: from_ts(r.get(2)?),
                    })
                })
                .map_err(|e| self.e(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.e(e))?;
        }
        Ok(rows)
    }
}

const UNKNOWN_COLS: &str = "jti, exp, revoked_at, revoked_by, revoke_reason, user, rule";

fn unknown_row(r: &Row<'_>) -> rusqlite::Result<UnknownRevocation> {
    Ok(UnknownRevocation {
        jti: r.get(0)?,
        exp: from_ts(r.get(1)?),
        revoked_at: from_ts(r.get(2)?),
        revoked_by: r.get(3)?,
        reason: r.get(4)?,
        user: r.get(5)?,
        rule: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::write;

    #[test]
    fn migrations_apply_once_and_wal_is_on() {
        let dir = std::env::temp_dir().join(format!("jitbroker-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.db");
        let _ = std::fs::remove_file(&path);
        let s = SqliteStore::open(&path, "r1").unwrap();
        assert_eq!(s.schema_version().unwrap(), 5);
        drop(s);
        let s = SqliteStore::open(&path, "r1").unwrap();
        assert_eq!(s.schema_version().unwrap(), 5);
        let mode: String = s
            .lock()
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Append-only audit table.
        let e = write(&s, |tx| {
            tx.append_audit(&NewAudit {
                event_id: "01J0".into(),
                at: OffsetDateTime::now_utc(),
                kind: "host.add".into(),
                actor: "root".into(),
                host: "-".into(),
                subject: "web-1".into(),
                data: serde_json::json!({}),
            })
            .map_err(ApiError::from)
        })
        .unwrap();
        assert_eq!(e.id, 1);
        assert!(s
            .lock()
            .conn
            .execute("UPDATE audit SET actor = 'x'", [])
            .is_err());
        assert!(s.lock().conn.execute("DELETE FROM audit", []).is_err());
        assert_eq!(audit_chain::verify(&s.audit_rows().unwrap()), Ok(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
