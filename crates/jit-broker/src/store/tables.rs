//! Every table that holds state, column by column, as both backends name them: what
//! `jitbroker migrate` copies and then compares row by row.

/// A column's type: SQLite's affinity and PostgreSQL's type differ (INTEGER 0/1 and BOOLEAN,
/// INTEGER and BIGINT, BLOB and BYTEA), the values do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bool,
    Bytes,
}

/// One value, whichever store it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// A total order of the rows, in each dialect: the same order, so text keys compare
    /// bytewise in PostgreSQL too (`COLLATE "C"`, as SQLite's BINARY), whatever the
    /// database's collation.
    pub sqlite_order: &'static str,
    pub postgres_order: &'static str,
    /// A PostgreSQL identity column whose sequence must continue after the copied rows.
    pub identity: Option<&'static str>,
}

impl Table {
    /// The column list, quoted for PostgreSQL (`user` is a reserved word there).
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use Kind::{Bool, Bytes, Int, Text};

/// In the order they may be filled (references first).
pub const TABLES: &[Table] = &[
    Table {
        name: "requests",
        columns: &[
            ("id", Text),
            ("user", Text),
            ("uid", Int),
            ("host", Text),
            ("rule", Text),
            ("cmd", Text),
            ("ttl_secs", Int),
            ("reason", Text),
            ("ticket", Text),
            ("run_as", Text),
            ("hosts", Text),
            ("break_glass", Bool),
            ("state", Text),
            ("created", Int),
            ("expires", Int),
            ("needed_approvals", Int),
            ("needed_groups", Text),
            ("denied_by", Text),
            ("deny_reason", Text),
            ("grant_id", Text),
        ],
        sqlite_order: "id",
        postgres_order: r#"id COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "approvals",
        columns: &[
            ("request_id", Text),
            ("user", Text),
            ("host", Text),
            ("at", Int),
            ("comment", Text),
            ("source", Text),
        ],
        // Within a request, the order approvals were given in.
        sqlite_order: "request_id, at, rowid",
        postgres_order: r#"request_id COLLATE "C", at, seq"#,
        identity: Some("seq"),
    },
    Table {
        name: "grants",
        columns: &[
            ("id", Text),
            ("request_id", Text),
            ("user", Text),
            ("rule", Text),
            ("hosts", Text),
            ("iat", Int),
            ("exp", Int),
            ("token", Text),
            ("break_glass", Bool),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
        ],
        sqlite_order: "id",
        postgres_order: r#"id COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "hosts",
        columns: &[
            ("name", Text),
            ("public_key", Text),
            ("kid", Text),
            ("state", Text),
            ("created", Int),
            ("retired", Int),
        ],
        sqlite_order: "name",
        postgres_order: r#"name COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "enrollment_tokens",
        columns: &[("token_sha256", Text), ("name", Text), ("expires", Int)],
        sqlite_order: "token_sha256",
        postgres_order: r#"token_sha256 COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "seen_attestations",
        columns: &[("jti", Text), ("exp", Int)],
        sqlite_order: "jti",
        postgres_order: r#"jti COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "revocation_list",
        columns: &[
            ("id", Int),
            ("seq", Int),
            ("iat", Int),
            ("content", Text),
            ("token", Text),
        ],
        sqlite_order: "id",
        postgres_order: "id",
        identity: None,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Int),
            ("event_id", Text),
            ("at", Int),
            ("type", Text),
            ("actor", Text),
            ("host", Text),
            ("subject", Text),
            ("data", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
        sqlite_order: "id",
        postgres_order: "id",
        identity: None,
    },
    Table {
        name: "outbox",
        columns: &[
            ("id", Int),
            ("delivery_id", Text),
            ("url", Text),
            ("event_id", Text),
            ("event_type", Text),
            ("body", Text),
            ("attempts", Int),
            ("next_attempt_ms", Int),
            ("delivered_at", Int),
            ("failed_at", Int),
            ("last_error", Text),
        ],
        sqlite_order: "id",
        postgres_order: "id",
        identity: Some("id"),
    },
    Table {
        name: "syslog_outbox",
        columns: &[
            ("id", Int),
            ("audit_id", Int),
            ("type", Text),
            ("datagram", Bytes),
            ("replica", Text),
        ],
        sqlite_order: "id",
        postgres_order: "id",
        identity: Some("id"),
    },
    Table {
        name: "revoked_unknown",
        columns: &[
            ("jti", Text),
            ("exp", Int),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
            ("user", Text),
            ("rule", Text),
        ],
        sqlite_order: "jti",
        postgres_order: r#"jti COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "sealed_grants",
        columns: &[
            ("id", Text),
            ("batch", Text),
            ("user", Text),
            ("uid", Int),
            ("rule", Text),
            ("hosts", Text),
            ("iat", Int),
            ("exp", Int),
            ("reason", Text),
            ("ticket", Text),
            ("sealed_by", Text),
            ("token_sha256", Text),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
        ],
        sqlite_order: "id",
        postgres_order: r#"id COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "sealed_uses",
        columns: &[
            ("grant_id", Text),
            ("host", Text),
            ("at", Int),
            ("reported", Int),
        ],
        sqlite_order: "grant_id, host",
        postgres_order: r#"grant_id COLLATE "C", host COLLATE "C""#,
        identity: None,
    },
    Table {
        name: "web_logins",
        columns: &[
            ("state_sha256", Text),
            ("nonce", Text),
            ("pkce_verifier", Text),
            ("return_to", Text),
            ("expires", Int),
        ],
        sqlite_order: "state_sha256",
        postgres_order: "state_sha256",
        identity: None,
    },
    Table {
        name: "web_sessions",
        columns: &[
            ("id", Text),
            ("token_sha256", Text),
            ("csrf", Text),
            ("user", Text),
            ("groups", Text),
            ("issuer", Text),
            ("subject", Text),
            ("created", Int),
            ("last_seen", Int),
            ("expires", Int),
            ("ended", Int),
            ("end_reason", Text),
        ],
        sqlite_order: "id",
        postgres_order: "id",
        identity: None,
    },
];
