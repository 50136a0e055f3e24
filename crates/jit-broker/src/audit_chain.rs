//! The hash chain of the audit table: each row stores
//! `hash = sha256(prev_hash || canonical JSON of the row)`, where the canonical JSON has
//! keys sorted at every level and no whitespace, and the first row's `prev_hash` is 64 zeros.
use crate::model::AuditEntry;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// JSON with keys sorted at every level, no whitespace (independent of serde_json features).
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The row as hashed (everything but `hash`, `prev_hash` in front).
pub fn row_json(e: &AuditEntry) -> Value {
    serde_json::json!({
        "id": e.id,
        "event_id": e.event_id,
        "at": e.at.unix_timestamp(),
        "type": e.kind,
        "actor": e.actor,
        "host": e.host,
        "subject": e.subject,
        "data": e.data,
    })
}

pub fn chain_hash(prev_hash: &str, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(&row_json(e)).as_bytes());
    hex(&h.finalize())
}

/// The first row that breaks the chain, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub id: i64,
    pub why: String,
}

/// Check rows in id order: each `prev_hash` is the previous row's `hash` (GENESIS first),
/// each `hash` is recomputed.
pub fn verify<'a>(rows: impl IntoIterator<Item = &'a AuditEntry>) -> Result<usize, Broken> {
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    for e in rows {
        if e.prev_hash != prev {
            return Err(Broken {
                id: e.id,
                why: format!(
                    "its prev_hash {} is not the hash of the row before it ({prev}): a row was removed, inserted or altered before it",
                    e.prev_hash
                ),
            });
        }
        let expected = chain_hash(&prev, e);
        if e.hash != expected {
            return Err(Broken {
                id: e.id,
                why: format!(
                    "its content does not match its hash (stored {}, computed {expected}): the row was altered",
                    e.hash
                ),
            });
        }
        prev = e.hash.clone();
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: i64, prev: &str) -> AuditEntry {
        let mut e = AuditEntry {
            id,
            event_id: format!("01J{id:023}"),
            at: time::OffsetDateTime::from_unix_timestamp(1_750_000_000 + id).unwrap(),
            kind: "request.create".into(),
            actor: "alice".into(),
            host: "web-3".into(),
            subject: "01JREQ".into(),
            data: json!({"z": 1, "a": [true, {"y": null, "b": "é\""}]}),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = chain_hash(prev, &e);
        e
    }

    #[test]
    fn canonical_sorts_keys_everywhere() {
        let v = json!({"b": {"d": 1, "c": [ {"f": 2, "e": 3} ]}, "a": "x"});
        assert_eq!(
            canonical(&v),
            r#"{"a":"x","b":{"c":[{"e":3,"f":2}],"d":1}}"#
        );
    }

    #[test]
    fn chain_verifies_and_names_the_first_broken_row() {
        let a = entry(1, GENESIS);
        let b = entry(2, &a.hash);
        let c = entry(3, &b.hash);
        assert_eq!(verify([&a, &b, &c]), Ok(3));
        let mut altered = b.clone();
        altered.actor = "mallory".into();
        assert_eq!(verify([&a, &altered, &c]).unwrap_err().id, 2);
        // Removing a row breaks the next one.
        assert_eq!(verify([&a, &c]).unwrap_err().id, 3);
        // Rehashing an altered row does not help: the next row's prev_hash no longer matches.
        altered.hash = chain_hash(&a.hash, &altered);
        assert_eq!(verify([&a, &altered, &c]).unwrap_err().id, 3);
    }
}
