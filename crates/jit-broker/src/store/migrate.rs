//! `jitbroker migrate --from sqlite:PATH --to postgres://…`: copy every table (the audit chain
//! included, ids and hashes as they are) into an empty PostgreSQL store in one transaction,
//! then read both stores back and compare them row by row, and verify the copied chain.
use super::tables::{Cell, Kind, Table, TABLES};
use super::{PgStore, SqliteStore, Store};
use crate::audit_chain;
use crate::error::StoreError;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// Rows read (and compared) at a time.
const PAGE: i64 = 5000;

/// What was copied.
#[derive(Debug, Default)]
pub struct Copied {
    /// (table, rows)
    pub tables: Vec<(&'static str, u64)>,
    pub audit_rows: usize,
    pub last_hash: Option<String>,
}

fn corrupt(target: &str, message: String) -> StoreError {
    StoreError::Corrupt {
        path: target.to_string(),
        message,
    }
}

fn sqlite_cell(v: rusqlite::types::ValueRef<'_>, kind: Kind) -> Cell {
    use rusqlite::types::ValueRef;
    match (v, kind) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Integer(i), Kind::Bool) => Cell::Bool(i != 0),
        (ValueRef::Integer(i), _) => Cell::Int(i),
        (ValueRef::Text(t), _) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Blob(b), Kind::Text) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
        (ValueRef::Blob(b), _) => Cell::Bytes(b.to_vec()),
        (ValueRef::Real(f), _) => Cell::Int(f as i64),
    }
}

fn sqlite_page(src: &SqliteStore, t: &Table, offset: i64) -> Result<Vec<Vec<Cell>>, StoreError> {
    let cols = t.column_list();
    let sql = format!(
        "SELECT {cols} FROM {} ORDER BY {} LIMIT {PAGE} OFFSET {offset}",
        t.name, t.sqlite_order
    );
    src.with_conn(|c| {
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            (0..t.columns.len())
                .map(|i| Ok(sqlite_cell(r.get_ref(i)?, t.columns[i].1)))
                .collect::<rusqlite::Result<Vec<Cell>>>()
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(|e| corrupt(&format!("sqlite table {}", t.name), e.to_string()))
}

fn pg_cell(r: &tokio_postgres::Row, i: usize, kind: Kind) -> Cell {
    let cell = match kind {
        Kind::Int => r.get::<_, Option<i64>>(i).map(Cell::Int),
        Kind::Text => r.get::<_, Option<String>>(i).map(Cell::Text),
        Kind::Bool => r.get::<_, Option<bool>>(i).map(Cell::Bool),
        Kind::Bytes => r.get::<_, Option<Vec<u8>>>(i).map(Cell::Bytes),
    };
    cell.unwrap_or(Cell::Null)
}

fn pg_page(dst: &PgStore, t: &Table, offset: i64) -> Result<Vec<Vec<Cell>>, StoreError> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT {PAGE} OFFSET {offset}",
        t.column_list(),
        t.name,
        t.postgres_order
    );
    let conn = dst.pooled()?;
    let rows = dst
        .block_on(conn.query(&sql, &[]))
        .map_err(|e| dst.map_error(e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (0..t.columns.len())
                .map(|i| pg_cell(r, i, t.columns[i].1))
                .collect()
        })
        .collect())
}

fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Int => Type::INT8,
        Kind::Text => Type::TEXT,
        Kind::Bool => Type::BOOL,
        Kind::Bytes => Type::BYTEA,
    }
}

/// A cell as a parameter of its column's type (NULL typed too).
fn param(cell: &Cell, kind: Kind) -> Box<dyn ToSql + Sync + Send> {
    match (cell, kind) {
        (Cell::Int(i), _) => Box::new(*i),
        (Cell::Text(s), _) => Box::new(s.clone()),
        (Cell::Bool(b), _) => Box::new(*b),
        (Cell::Bytes(b), _) => Box::new(b.clone()),
        (Cell::Null, Kind::Int) => Box::new(None::<i64>),
        (Cell::Null, Kind::Text) => Box::new(None::<String>),
        (Cell::Null, Kind::Bool) => Box::new(None::<bool>),
        (Cell::Null, Kind::Bytes) => Box::new(None::<Vec<u8>>),
    }
}

/// Refuse a target that already holds anything.
fn check_empty(dst: &PgStore) -> Result<(), StoreError> {
    let conn = dst.pooled()?;
    for t in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", t.name);
        let row = dst
            .block_on(conn.query_one(&sql, &[]))
            .map_err(|e| dst.map_error(e))?;
        if row.get::<_, bool>(0) {
            return Err(corrupt(
                dst.target(),
                format!("table {} already has rows: jitbroker migrate copies into an empty database only (create a new one, or drop this one's tables)", t.name),
            ));
        }
    }
    Ok(())
}

/// Copy every table in one transaction (COPY … FROM STDIN BINARY).
fn copy_all(src: &SqliteStore, dst: &PgStore) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let conn = dst.pooled()?;
    let mut counts = Vec::new();
    let copied = dst.block_on(async {
        conn.batch_execute("BEGIN").await?;
        for t in TABLES {
            let types: Vec<Type> = t.columns.iter().map(|c| pg_type(c.1)).collect();
            let sink = conn
                .copy_in(&format!(
                    "COPY {} ({}) FROM STDIN BINARY",
                    t.name,
                    t.column_list()
                ))
                .await?;
            let writer = BinaryCopyInWriter::new(sink, &types);
            tokio::pin!(writer);
            let mut n = 0u64;
            let mut offset = 0;
            loop {
                let page = match sqlite_page(src, t, offset) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                };
                for row in &page {
                    let params: Vec<Box<dyn ToSql + Sync + Send>> = row
                        .iter()
                        .zip(t.columns)
                        .map(|(c, (_, k))| param(c, *k))
                        .collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    writer.as_mut().write(&refs).await?;
                    n += 1;
                }
                if (page.len() as i64) < PAGE {
                    break;
                }
                offset += PAGE;
            }
            writer.finish().await?;
            if let Some(col) = t.identity {
                conn.batch_execute(&format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{col}'), COALESCE((SELECT MAX({col}) FROM {0}), 0) + 1, false)",
                    t.name
                ))
                .await?;
            }
            counts.push((t.name, n));
        }
        conn.batch_execute("COMMIT").await?;
        Ok::<_, tokio_postgres::Error>(Ok(()))
    });
    match copied {
        Ok(Ok(())) => Ok(counts),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(dst.map_error(e)),
    }
}

/// Read both stores back, page by page, and compare.
fn compare(src: &SqliteStore, dst: &PgStore) -> Result<(), StoreError> {
    for t in TABLES {
        let mut offset = 0;
        loop {
            let a = sqlite_page(src, t, offset)?;
            let b = pg_page(dst, t, offset)?;
            if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
                return Err(corrupt(
                    dst.target(),
                    format!(
                        "after copying, table {} differs at row {}: {:?} in SQLite, {:?} in PostgreSQL",
                        t.name,
                        offset + i as i64 + 1,
                        a.get(i),
                        b.get(i)
                    ),
                ));
            }
            if (a.len() as i64) < PAGE {
                break;
            }
            offset += PAGE;
        }
    }
    Ok(())
}

/// Copy `src` into the empty `dst` and verify it.
pub fn sqlite_to_postgres(src: &SqliteStore, dst: &PgStore) -> Result<Copied, StoreError> {
    let (from, to) = (src.schema_version()?, dst.schema_version()?);
    if from != to {
        return Err(corrupt(
            dst.target(),
            format!("schema versions differ (SQLite {from}, PostgreSQL {to})"),
        ));
    }
    check_empty(dst)?;
    let tables = copy_all(src, dst)?;
    compare(src, dst)?;
    let rows = dst.audit_rows()?;
    let n = audit_chain::verify(&rows).map_err(|broken| {
        corrupt(
            dst.target(),
            format!(
                "the copied audit chain is broken at row {}: {}",
                broken.id, broken.why
            ),
        )
    })?;
    let source_last = src.audit_rows()?.last().map(|r| r.hash.clone());
    let last_hash = rows.last().map(|r| r.hash.clone());
    if source_last != last_hash {
        return Err(corrupt(
            dst.target(),
            "the copied audit chain ends on another hash than the source's".into(),
        ));
    }
    Ok(Copied {
        tables,
        audit_rows: n,
        last_hash,
    })
}
