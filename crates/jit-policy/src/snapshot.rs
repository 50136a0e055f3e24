//! A compiled policy snapshot: the rules of a loaded [`Policy`] as bytes, with indexes from
//! user, group and rule names to rules, so that `jitrun` can decode only the rules that can
//! matter for one run instead of parsing every TOML file on every run.
//!
//! Pure: this module encodes and decodes byte slices; reading, writing and trusting the
//! file is the caller's business (`jitrun`'s `policy_cache`). The caller hands over an
//! opaque `key` (what the snapshot was built from: file identities, versions); a
//! snapshot whose key differs is [`SnapshotError::Stale`].
//!
//! Who-matching in [`crate::decide`] compares exact names only (a rule names the caller
//! when one of its `users` equals the user name or one of its `groups` is one of the
//! caller's groups), so the indexes are exact: the rules listed under the user's name and
//! under each of their groups are exactly the rules that name them. Every decision that
//! ALLOWS only ever uses such a rule, so deciding on that subset allows exactly what the
//! full policy allows; a refusal from the subset must be re-decided on the full policy
//! for its message (another user's rule, "no rule ..." naming the closest rule).
//!
//! The file is laid out so that a reader touches a few small pieces, whatever the size of
//! the policy (integers little-endian, `str` = u32 length + UTF-8):
//!
//! ```text
//! header    "JITPSNAP" | u32 FORMAT | u32 key_len | u32 rule_count | u64 records_at
//!           | 3 × (u32 bucket_count, u64 directory_at)   (users, groups, rule names)
//!           | u64 checksum of the header and the key
//! key       key_len bytes
//! records   per rule, in load order: u32 len | u32 rule index | fields | u64 checksum
//! buckets   per table and bucket: u8 table | u32 bucket | u32 n
//!           | n × (str name, u32 k, k × (u32 rule index, u64 record_at, u32 record_len))
//!           | u64 checksum
//! directory per table: bucket_count × (u64 bucket_at, u32 bucket_len)
//! ```
//!
//! A name lives in bucket `hash(table, name) mod bucket_count`. Every bucket exists (an
//! empty one too) and names its table and number under its checksum, so a damaged
//! directory entry can never make a name look absent; each record names its rule index
//! under its checksum, so an entry can never lead to another rule. Command patterns are
//! stored as their parts and checked again on decoding, and every name is validated
//! again, so a decoded rule is one the loader could have produced.

use crate::caps::CapSet;
use crate::names::{
    env_known_safe, env_never_kept, valid_env_name, valid_host_pattern, valid_lint_id,
    valid_rule_name, valid_user_name,
};
use crate::pattern::CommandPattern;
use crate::policy::Policy;
use crate::rule::{GrantMode, Rule, RuleLines, RunAs, SourceLoc};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// Bump whenever the layout or the meaning of a field changes.
pub const FORMAT: u32 = 5;
const MAGIC: &[u8; 8] = b"JITPSNAP";
const TABLES: usize = 3;
/// Bytes of the fixed header (the key follows it).
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 8 + TABLES * (4 + 8) + 8;
/// Bytes of one directory entry.
pub const DIR_ENTRY_LEN: usize = 12;

/// The three indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users = 0,
    Groups = 1,
    RuleNames = 2,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Built from other files (or by another version): rebuild it from the policy files.
    #[error("policy snapshot is stale (built from other policy files or by another jitrun version); it is rebuilt from the policy files")]
    Stale,
    /// Damaged, truncated or not a snapshot at all.
    #[error("policy snapshot is damaged ({0}); it is rebuilt from the policy files")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

/// A 64-bit checksum that takes 8 bytes per step: `h = rotl((h ^ word) * K, 31)`, then the
/// part's length. Each step is a bijection of `h` for a given word and injective in the word
/// for a given `h`, so changing the bytes of any one word (or the length) always changes the
/// result. It detects damage; it is no defence against whoever can write the file (root).
fn checksum(parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(31);
    let mut h: u64 = 0x6a09_e667_f3bc_c908;
    for p in parts {
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = mix(h, u64::from_le_bytes(tail));
        h = mix(h, p.len() as u64);
    }
    h
}

/// Which bucket of `table` (with `count` buckets, a power of two) holds `name`.
fn bucket_of(table: Table, name: &str, count: u32) -> u32 {
    (checksum(&[&[table as u8], name.as_bytes()]) & u64::from(count - 1)) as u32
}

// ---------------------------------------------------------------- encoding

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("policy parts are far smaller than 4 GiB"));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, list: &[String]) {
        self.len(list.len());
        for s in list {
            self.str(s);
        }
    }
}

fn encode_rule(rule: &Rule, index: u32) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(256));
    o.u32(index);
    o.str(&rule.name);
    o.strs(&rule.users);
    o.strs(&rule.groups);
    o.strs(&rule.hosts);
    o.len(rule.commands.len());
    for c in &rule.commands {
        o.str(&c.program);
        o.strs(&c.args);
        o.u8(u8::from(c.rest));
    }
    match &rule.run_as {
        RunAs::Invoker => o.u8(0),
        RunAs::Root => o.u8(1),
        RunAs::User(u) => {
            o.u8(2);
            o.str(u);
        }
    }
    o.u64(rule.capabilities.0);
    o.u8(match rule.grant {
        GrantMode::Required => 0,
        GrantMode::None => 1,
    });
    o.u64(rule.max_duration.as_secs());
    o.u32(rule.max_duration.subsec_nanos());
    o.u32(rule.min_approvals);
    o.strs(&rule.env_keep);
    o.strs(&rule.env_keep_unchecked);
    o.strs(&rule.allow_risks);
    o.u8(u8::from(rule.no_new_privs));
    o.u8(u8::from(rule.authenticate));
    o.u8(u8::from(rule.require_fresh_revocations));
    o.u8(match rule.record {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    });
    o.u8(u8::from(rule.record_input));
    o.str(&rule.source.file);
    o.u64(rule.source.line as u64);
    let l = &rule.lines;
    for line in [
        l.hosts,
        l.run_as,
        l.capabilities,
        l.grant,
        l.authenticate,
        l.record_input,
        l.env_keep_unchecked,
        l.allow_risks,
    ] {
        o.u64(line as u64);
    }
    o.len(l.commands.len());
    for line in &l.commands {
        o.u64(*line as u64);
    }
    let h = checksum(&[&o.0]);
    o.u64(h);
    let mut rec = Out(Vec::with_capacity(o.0.len() + 4));
    rec.len(o.0.len());
    rec.0.extend_from_slice(&o.0);
    rec.0
}

/// The snapshot of `policy`'s rules (its `[[test]]` tables are not kept), tagged with `key`.
pub fn encode(policy: &Policy, key: &[u8]) -> Vec<u8> {
    let maps = name_maps(policy);
    let mut body = Body {
        at: (HEADER_LEN + key.len()) as u64,
        bytes: Vec::new(),
    };
    let records_at = body.at;
    let records: Vec<(u64, u32)> = policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rec = encode_rule(r, i as u32);
            (body.push(&rec), rec.len() as u32)
        })
        .collect();
    let mut tables = [(0u32, 0u64); TABLES];
    for (t, table) in [Table::Users, Table::Groups, Table::RuleNames]
        .into_iter()
        .enumerate()
    {
        tables[t] = encode_table(table, &maps[t], &records, &mut body);
    }
    let mut o = Out(Vec::with_capacity(
        HEADER_LEN + key.len() + body.bytes.len(),
    ));
    o.0.extend_from_slice(MAGIC);
    o.u32(FORMAT);
    o.len(key.len());
    o.len(policy.rules.len());
    o.u64(records_at);
    for (count, dir_at) in tables {
        o.u32(count);
        o.u64(dir_at);
    }
    let h = checksum(&[&o.0, key]);
    o.u64(h);
    o.0.extend_from_slice(key);
    o.0.extend_from_slice(&body.bytes);
    o.0
}

/// For each table (users, groups, rule names): name -> the indexes of the rules that name
/// it, in load order, each once.
fn name_maps(policy: &Policy) -> [BTreeMap<&str, Vec<u32>>; TABLES] {
    let mut maps: [BTreeMap<&str, Vec<u32>>; TABLES] = Default::default();
    for (i, r) in policy.rules.iter().enumerate() {
        let i = u32::try_from(i).expect("fewer than 4 billion rules");
        let names = [&r.users, &r.groups];
        for (t, list) in names.into_iter().enumerate() {
            for n in list {
                let v = maps[t].entry(n).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        maps[Table::RuleNames as usize]
            .entry(&r.name)
            .or_default()
            .push(i);
    }
    maps
}

/// What follows the header and the key, as it is written: `at` is the file offset of its end.
struct Body {
    at: u64,
    bytes: Vec<u8>,
}

impl Body {
    /// Append `part`; returns its file offset.
    fn push(&mut self, part: &[u8]) -> u64 {
        let start = self.at;
        self.bytes.extend_from_slice(part);
        self.at += part.len() as u64;
        start
    }
}

/// One table's buckets (each with its checksum), then its directory; returns the bucket
/// count and the directory's offset. `records` holds each rule's record (offset, length).
fn encode_table(
    table: Table,
    map: &BTreeMap<&str, Vec<u32>>,
    records: &[(u64, u32)],
    body: &mut Body,
) -> (u32, u64) {
    let count = (map.len() / 2).max(1).next_power_of_two() as u32;
    let mut buckets: Vec<Vec<(&str, &Vec<u32>)>> = vec![Vec::new(); count as usize];
    for (name, list) in map {
        buckets[bucket_of(table, name, count) as usize].push((name, list));
    }
    let mut dir = Out(Vec::with_capacity(count as usize * DIR_ENTRY_LEN));
    for (b, entries) in buckets.iter().enumerate() {
        let mut blob = Out(Vec::new());
        blob.u8(table as u8);
        blob.u32(b as u32);
        blob.len(entries.len());
        for (name, list) in entries {
            blob.str(name);
            blob.len(list.len());
            for &i in *list {
                let (rec_at, rec_len) = records[i as usize];
                blob.u32(i);
                blob.u64(rec_at);
                blob.u32(rec_len);
            }
        }
        let h = checksum(&[&blob.0]);
        blob.u64(h);
        dir.u64(body.push(&blob.0));
        dir.len(blob.0.len());
    }
    (count, body.push(&dir.0))
}

// ---------------------------------------------------------------- decoding

struct In<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("bad flag")),
        }
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of items each at least `min` bytes long: never more than the bytes left.
    fn count(&mut self, min: usize) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.b.len().saturating_sub(self.at) {
            return Err(corrupt("count beyond the end"));
        }
        Ok(n)
    }
    fn take_str_bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("not UTF-8"))
    }
    fn strs(&mut self) -> Result<Vec<String>, SnapshotError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str().map(str::to_string)).collect()
    }
}

/// The header of a snapshot whose key matched.
#[derive(Debug, Clone)]
pub struct Snapshot {
    rule_count: usize,
    records_at: u64,
    file_len: u64,
    tables: [(u32, u64); TABLES],
}

/// Which rules to decode.
#[derive(Debug, Clone, Copy)]
pub enum Want<'a> {
    /// The rules that name this user or one of these groups.
    Naming { user: &'a str, groups: &'a [String] },
    /// The rules of these names (whoever they name).
    Named(&'a [String]),
}

impl Snapshot {
    /// From the first [`HEADER_LEN`] bytes: how many key bytes follow the header.
    pub fn key_len(head: &[u8]) -> Result<usize, SnapshotError> {
        if head.len() < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        let mut r = In { b: head, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(corrupt("not a policy snapshot"));
        }
        if r.u32()? != FORMAT {
            return Err(SnapshotError::Stale);
        }
        Ok(r.u32()? as usize)
    }

    /// Check magic, format, key and the header's checksum. `prefix` holds the first
    /// `HEADER_LEN + key_len` bytes of a file of `file_len` bytes.
    pub fn open(prefix: &[u8], key: &[u8], file_len: u64) -> Result<Snapshot, SnapshotError> {
        let key_len = Snapshot::key_len(prefix)?;
        if prefix.len() < HEADER_LEN + key_len {
            return Err(corrupt("truncated header"));
        }
        let stored = &prefix[HEADER_LEN..HEADER_LEN + key_len];
        if stored != key {
            return Err(SnapshotError::Stale);
        }
        let mut r = In {
            b: &prefix[..HEADER_LEN],
            at: 16,
        };
        let rule_count = r.u32()? as usize;
        let records_at = r.u64()?;
        let mut tables = [(0u32, 0u64); TABLES];
        for t in &mut tables {
            *t = (r.u32()?, r.u64()?);
        }
        let sum = r.u64()?;
        if checksum(&[&prefix[..HEADER_LEN - 8], stored]) != sum {
            return Err(corrupt("header checksum mismatch"));
        }
        if records_at != (HEADER_LEN + key_len) as u64 {
            return Err(corrupt("records misplaced"));
        }
        for &(count, dir_at) in &tables {
            let end = u64::from(count)
                .checked_mul(DIR_ENTRY_LEN as u64)
                .and_then(|n| n.checked_add(dir_at));
            if !count.is_power_of_two() || dir_at < records_at || end.is_none_or(|e| e > file_len) {
                return Err(corrupt("directory out of range"));
            }
        }
        Ok(Snapshot {
            rule_count,
            records_at,
            file_len,
            tables,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    fn range(&self, at: u64, len: u64, min: u64) -> Result<Range<u64>, SnapshotError> {
        let end = at
            .checked_add(len)
            .ok_or_else(|| corrupt("offset overflow"))?;
        if at < self.records_at || end > self.file_len || len < min {
            return Err(corrupt("offset out of range"));
        }
        Ok(at..end)
    }

    /// Where the directory entry for `name` in `table` is: (bucket number, file range).
    pub fn dir_entry(&self, table: Table, name: &str) -> (u32, Range<u64>) {
        let (count, dir_at) = self.tables[table as usize];
        let b = bucket_of(table, name, count);
        let at = dir_at + u64::from(b) * DIR_ENTRY_LEN as u64;
        (b, at..at + DIR_ENTRY_LEN as u64)
    }

    /// The bucket a directory entry points to.
    pub fn bucket_range(&self, entry: &[u8]) -> Result<Range<u64>, SnapshotError> {
        let mut r = In { b: entry, at: 0 };
        let at = r.u64()?;
        let len = u64::from(r.u32()?);
        self.range(at, len, 1 + 4 + 4 + 8)
    }

    /// The rules (index and record range) listed under `name` in bucket `bucket` of `table`.
    pub fn lookup(
        &self,
        table: Table,
        bucket: u32,
        blob: &[u8],
        name: &str,
    ) -> Result<Vec<(usize, Range<u64>)>, SnapshotError> {
        if blob.len() < 17 {
            return Err(corrupt("bucket too short"));
        }
        let (fields, sum) = blob.split_at(blob.len() - 8);
        if checksum(&[fields]) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(corrupt("bucket checksum mismatch"));
        }
        let mut r = In { b: fields, at: 0 };
        if r.u8()? != table as u8 || r.u32()? != bucket {
            return Err(corrupt("bucket misplaced"));
        }
        let n = r.count(8)?;
        for _ in 0..n {
            let this = r.take_str_bytes()?;
            let k = r.count(16)?;
            if this != name.as_bytes() {
                r.take(k * 16)?;
                continue;
            }
            let mut out = Vec::with_capacity(k);
            for _ in 0..k {
                let i = r.u32()? as usize;
                let at = r.u64()?;
                let len = u64::from(r.u32()?);
                if i >= self.rule_count {
                    return Err(corrupt("rule index out of range"));
                }
                out.push((i, self.range(at, len, 4 + 4 + 8)?));
            }
            return Ok(out);
        }
        Ok(Vec::new())
    }

    /// The wanted rules, in load order, reading the file through `read(range)`.
    pub fn read_rules(
        &self,
        want: Want<'_>,
        read: &mut dyn FnMut(Range<u64>) -> Result<Vec<u8>, SnapshotError>,
    ) -> Result<Vec<Rule>, SnapshotError> {
        let mut find =
            |table: Table, name: &str| -> Result<Vec<(usize, Range<u64>)>, SnapshotError> {
                let (bucket, entry) = self.dir_entry(table, name);
                let entry = read(entry)?;
                let blob = read(self.bucket_range(&entry)?)?;
                self.lookup(table, bucket, &blob, name)
            };
        let mut found = Vec::new();
        match want {
            Want::Naming { user, groups } => {
                found.extend(find(Table::Users, user)?);
                for g in groups {
                    found.extend(find(Table::Groups, g)?);
                }
            }
            Want::Named(names) => {
                for n in names {
                    found.extend(find(Table::RuleNames, n)?);
                }
            }
        }
        found.sort_by_key(|(i, _)| *i);
        found.dedup_by_key(|(i, _)| *i);
        let mut rules = Vec::with_capacity(found.len());
        for (i, range) in found {
            let rule = decode_record(&read(range)?, i)?;
            if let Want::Named(names) = want {
                if !names.contains(&rule.name) {
                    return Err(corrupt("rule name index disagrees with the record"));
                }
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    /// Every rule, in load order.
    pub fn read_all(&self, bytes: &[u8]) -> Result<Vec<Rule>, SnapshotError> {
        let mut r = In {
            b: bytes,
            at: self.records_at as usize,
        };
        (0..self.rule_count)
            .map(|i| {
                let start = r.at;
                let len = r.u32()? as usize;
                r.take(len)?;
                decode_record(&bytes[start..r.at], i)
            })
            .collect()
    }
}

fn check(ok: bool, what: &str) -> Result<(), SnapshotError> {
    if ok {
        Ok(())
    } else {
        Err(corrupt(format!("invalid {what}")))
    }
}

/// Decode one record (the bytes of the range an index gave for rule `index`), checking
/// its length, its checksum and its rule index, and validating it again as the loader would.
pub fn decode_record(record: &[u8], index: usize) -> Result<Rule, SnapshotError> {
    let fields = record_fields(record, index)?;
    let mut r = In { b: fields, at: 4 };
    let name = r.str()?.to_string();
    check(valid_rule_name(&name), "rule name")?;
    let (users, groups) = decode_who(&mut r)?;
    let hosts = r.strs()?;
    check(
        !hosts.is_empty() && hosts.iter().all(|h| valid_host_pattern(h)),
        "hosts",
    )?;
    let commands = decode_commands(&mut r)?;
    let run_as = decode_run_as(&mut r)?;
    let capabilities = CapSet(r.u64()?);
    check(capabilities.0 & !CapSet::all().0 == 0, "capabilities")?;
    check(
        !capabilities.is_all() || run_as == RunAs::Root,
        "capabilities",
    )?;
    let grant = match r.u8()? {
        0 => GrantMode::Required,
        1 => GrantMode::None,
        _ => return Err(corrupt("invalid grant mode")),
    };
    let max_duration = decode_max_duration(&mut r)?;
    let min_approvals = r.u32()?;
    let (env_keep, env_keep_unchecked) = decode_env(&mut r)?;
    let allow_risks = r.strs()?;
    check(
        allow_risks.iter().all(|id| valid_lint_id(id)),
        "allow_risks",
    )?;
    let (no_new_privs, authenticate, require_fresh_revocations) = (r.bool()?, r.bool()?, r.bool()?);
    let record = match r.u8()? {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return Err(corrupt("invalid record")),
    };
    let record_input = r.bool()?;
    let source = SourceLoc {
        file: r.str()?.to_string(),
        line: decode_line(&mut r)?,
    };
    let lines = decode_lines(&mut r)?;
    if r.at != fields.len() {
        return Err(corrupt("trailing bytes in a record"));
    }
    Ok(Rule {
        name,
        users,
        groups,
        hosts,
        commands,
        run_as,
        capabilities,
        grant,
        max_duration,
        min_approvals,
        env_keep,
        env_keep_unchecked,
        allow_risks,
        no_new_privs,
        authenticate,
        require_fresh_revocations,
        record,
        record_input,
        source,
        lines,
    })
}

/// A record's fields (after its length, before its checksum), once the length, the
/// checksum and the rule index (the first field) are right.
fn record_fields(record: &[u8], index: usize) -> Result<&[u8], SnapshotError> {
    if record.len() < 4 + 4 + 8 {
        return Err(corrupt("record too short"));
    }
    let (len, rest) = record.split_at(4);
    if u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize != rest.len() {
        return Err(corrupt("record length mismatch"));
    }
    let (fields, hash) = rest.split_at(rest.len() - 8);
    if checksum(&[fields]) != u64::from_le_bytes(hash.try_into().expect("8 bytes")) {
        return Err(corrupt("record checksum mismatch"));
    }
    if (In { b: fields, at: 0 }).u32()? as usize != index {
        return Err(corrupt("record of another rule"));
    }
    Ok(fields)
}

/// `users` and `groups`: valid names, at least one.
fn decode_who(r: &mut In<'_>) -> Result<(Vec<String>, Vec<String>), SnapshotError> {
    let users = r.strs()?;
    let groups = r.strs()?;
    check(
        users.iter().chain(&groups).all(|n| valid_user_name(n)),
        "user or group name",
    )?;
    check(
        !users.is_empty() || !groups.is_empty(),
        "rule without users",
    )?;
    Ok((users, groups))
}

/// The command patterns, each checked again as the loader checks it; at least one.
fn decode_commands(r: &mut In<'_>) -> Result<Vec<CommandPattern>, SnapshotError> {
    let ncmd = r.count(9)?;
    let mut commands = Vec::with_capacity(ncmd);
    for _ in 0..ncmd {
        let program = r.str()?.to_string();
        let args = r.strs()?;
        let rest = r.bool()?;
        commands.push(
            CommandPattern::from_parts(program, args, rest).map_err(|e| corrupt(e.to_string()))?,
        );
    }
    check(!commands.is_empty(), "commands")?;
    Ok(commands)
}

fn decode_run_as(r: &mut In<'_>) -> Result<RunAs, SnapshotError> {
    match r.u8()? {
        0 => Ok(RunAs::Invoker),
        1 => Ok(RunAs::Root),
        2 => {
            let u = r.str()?;
            check(valid_user_name(u), "run_as")?;
            Ok(RunAs::User(u.to_string()))
        }
        _ => Err(corrupt("invalid run_as")),
    }
}

fn decode_max_duration(r: &mut In<'_>) -> Result<Duration, SnapshotError> {
    let secs = r.u64()?;
    let nanos = r.u32()?;
    check(nanos < 1_000_000_000, "max_duration")?;
    let max_duration = Duration::new(secs, nanos);
    check(!max_duration.is_zero(), "max_duration")?;
    Ok(max_duration)
}

/// `env_keep` (known safe names only) and `env_keep_unchecked` (never a never-kept name,
/// nor a known safe one).
fn decode_env(r: &mut In<'_>) -> Result<(Vec<String>, Vec<String>), SnapshotError> {
    let env_keep = r.strs()?;
    check(
        env_keep
            .iter()
            .all(|e| valid_env_name(e) && env_known_safe(e)),
        "env_keep",
    )?;
    let env_keep_unchecked = r.strs()?;
    check(
        env_keep_unchecked
            .iter()
            .all(|e| valid_env_name(e) && !env_never_kept(e) && !env_known_safe(e)),
        "env_keep_unchecked",
    )?;
    Ok((env_keep, env_keep_unchecked))
}

fn decode_line(r: &mut In<'_>) -> Result<usize, SnapshotError> {
    usize::try_from(r.u64()?).map_err(|_| corrupt("line"))
}

/// The lines of some keys, in [`encode_rule`]'s order.
fn decode_lines(r: &mut In<'_>) -> Result<RuleLines, SnapshotError> {
    let mut lines = RuleLines {
        hosts: decode_line(r)?,
        run_as: decode_line(r)?,
        capabilities: decode_line(r)?,
        grant: decode_line(r)?,
        authenticate: decode_line(r)?,
        record_input: decode_line(r)?,
        env_keep_unchecked: decode_line(r)?,
        allow_risks: decode_line(r)?,
        commands: Vec::new(),
    };
    let n = r.count(8)?;
    lines.commands.reserve(n);
    for _ in 0..n {
        lines.commands.push(decode_line(r)?);
    }
    Ok(lines)
}

fn open_slice(bytes: &[u8], key: &[u8]) -> Result<Snapshot, SnapshotError> {
    let key_len = Snapshot::key_len(bytes)?;
    let end = HEADER_LEN
        .checked_add(key_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| corrupt("truncated header"))?;
    Snapshot::open(&bytes[..end], key, bytes.len() as u64)
}

fn slice_reader(bytes: &[u8]) -> impl FnMut(Range<u64>) -> Result<Vec<u8>, SnapshotError> + '_ {
    move |r: Range<u64>| {
        bytes
            .get(r.start as usize..r.end as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| corrupt("truncated"))
    }
}

/// Every rule, in load order; every part of the file is checked (each bucket of each index
/// too, and that nothing follows the last directory).
pub fn decode_all(bytes: &[u8], key: &[u8]) -> Result<Policy, SnapshotError> {
    let snap = open_slice(bytes, key)?;
    let rules = snap.read_all(bytes)?;
    let mut read = slice_reader(bytes);
    let mut end = 0;
    for (t, table) in [Table::Users, Table::Groups, Table::RuleNames]
        .into_iter()
        .enumerate()
    {
        let (count, dir_at) = snap.tables[t];
        for b in 0..count {
            let at = dir_at + u64::from(b) * DIR_ENTRY_LEN as u64;
            let entry = read(at..at + DIR_ENTRY_LEN as u64)?;
            let blob = read(snap.bucket_range(&entry)?)?;
            // A name that cannot occur: checks the bucket without matching anything.
            snap.lookup(table, b, &blob, "")?;
        }
        end = end.max(dir_at + u64::from(count) * DIR_ENTRY_LEN as u64);
    }
    if end != bytes.len() as u64 {
        return Err(corrupt("length differs from the layout"));
    }
    Ok(Policy { rules })
}

/// Only the rules that name `user` or one of `groups`, in load order.
pub fn decode_for(
    bytes: &[u8],
    key: &[u8],
    user: &str,
    groups: &[String],
) -> Result<Policy, SnapshotError> {
    let snap = open_slice(bytes, key)?;
    let rules = snap.read_rules(Want::Naming { user, groups }, &mut slice_reader(bytes))?;
    Ok(Policy { rules })
}

/// Only the rules of these names, in load order.
pub fn decode_named(bytes: &[u8], key: &[u8], names: &[String]) -> Result<Policy, SnapshotError> {
    let snap = open_slice(bytes, key)?;
    let rules = snap.read_rules(Want::Named(names), &mut slice_reader(bytes))?;
    Ok(Policy { rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::names_user;
    use crate::policy::PolicySource;

    /// A small deterministic generator (xorshift), so the policies vary without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    const USERS: &[&str] = &["alice", "bob", "carol", "svc-backup$", "dave_1", "e.f"];
    const GROUPS: &[&str] = &["netops", "dba", "wheel", "ops-2", "audit"];

    fn list(rng: &mut Rng, from: &[&str], max: u64) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for _ in 0..rng.below(max + 1) {
            let s = rng.pick(from).to_string();
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    }

    fn quoted(v: &[String]) -> String {
        let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", items.join(", "))
    }

    /// A policy text with `n` rules mixing every field and form.
    fn generated(seed: u64, n: usize) -> String {
        let mut rng = Rng(seed | 1);
        let mut t = String::from("# generated\n");
        for i in 0..n {
            t.push_str(&format!(
                "\n[[rule]]\nname = \"r{i}-{}\"\n",
                rng.below(1000)
            ));
            let mut users = list(&mut rng, USERS, 3);
            let groups = list(&mut rng, GROUPS, 2);
            if users.is_empty() && groups.is_empty() {
                users.push("alice".to_string());
            }
            if !users.is_empty() || rng.below(2) == 0 {
                t.push_str(&format!("users = {}\n", quoted(&users)));
            }
            if !groups.is_empty() {
                t.push_str(&format!("groups = {}\n", quoted(&groups)));
            }
            if rng.below(2) == 0 {
                let hosts = list(&mut rng, &["web-*", "db[0-9]", "*", "host.example"], 2);
                if !hosts.is_empty() {
                    t.push_str(&format!("hosts = {}\n", quoted(&hosts)));
                }
            }
            let cmds = [
                "\"/usr/sbin/ip **\"",
                "\"/usr/bin/systemctl restart *.service\"",
                "[\"/usr/bin/printf\", \"%s with spaces\\n\", \"*\"]",
                "\"/bin/true\"",
                "[\"/usr/bin/tee\", \"/etc/x y\", \"**\"]",
                "\"/usr/bin/cat path:/var/log/**/*.log\"",
            ];
            let k = 1 + rng.below(3) as usize;
            let c: Vec<&str> = (0..k).map(|_| rng.pick(&cmds)).collect();
            t.push_str(&format!("commands = [{}]\n", c.join(", ")));
            let run_as = rng.pick(&["", "invoker", "root", "postgres"]);
            if !run_as.is_empty() {
                t.push_str(&format!("run_as = \"{run_as}\"\n"));
            }
            match rng.below(4) {
                0 if run_as == "root" => t.push_str("capabilities = [\"ALL\"]\n"),
                1 => t.push_str("capabilities = [\"net_admin\", \"CAP_NET_RAW\", \"cap_chown\"]\n"),
                2 => t.push_str("capabilities = []\n"),
                _ => {}
            }
            if rng.below(3) == 0 {
                t.push_str("grant = \"none\"\n");
            }
            t.push_str(&format!(
                "max_duration = \"{}\"\n",
                rng.pick(&["1h", "90s", "1h30m", "500ms", "2d"])
            ));
            t.push_str(&format!("min_approvals = {}\n", rng.below(3)));
            if rng.below(2) == 0 {
                t.push_str("env_keep = [\"TERM\", \"LANG\"]\nenv_keep_unchecked = [\"_X1\"]\n");
            }
            if rng.below(3) == 0 {
                t.push_str("allow_risks = [\"shell-escape\", \"standing-access\"]\n");
            }
            t.push_str(&format!("no_new_privs = {}\n", rng.below(2) == 0));
            t.push_str(&format!("authenticate = {}\n", rng.below(4) == 0));
            t.push_str(&format!(
                "require_fresh_revocations = {}\n",
                rng.below(3) == 0
            ));
            match rng.below(3) {
                0 => t.push_str("record = true\nrecord_input = true\n"),
                1 => t.push_str("record = false\n"),
                _ => {}
            }
        }
        t
    }

    fn load(files: &[(&str, String)]) -> Policy {
        let sources: Vec<PolicySource> = files
            .iter()
            .map(|(n, t)| PolicySource {
                name: n.to_string(),
                text: t.clone(),
            })
            .collect();
        Policy::load(&sources).unwrap()
    }

    fn policies() -> Vec<Policy> {
        let mut out = Vec::new();
        for (seed, n) in [(1, 0), (2, 1), (3, 10), (4, 200), (0xdead_beef, 500)] {
            out.push(load(&[
                ("/etc/jitrun/policy.toml", generated(seed, n)),
                (
                    "/etc/jitrun/policy.d/20-more.toml",
                    generated(seed + 100, n / 2),
                ),
            ]));
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy-examples");
        let mut examples: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        examples.sort();
        assert!(!examples.is_empty(), "no policy examples in {dir}");
        for p in examples {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push(load(&[(p.to_str().unwrap(), text)]));
        }
        out
    }

    #[test]
    fn encode_then_decode_all_is_the_loaded_policy() {
        for p in policies() {
            let bytes = encode(&p, b"key-1");
            let back = decode_all(&bytes, b"key-1").unwrap();
            assert_eq!(back.rules, p.rules);
            // Encoding is deterministic.
            assert_eq!(encode(&back, b"key-1"), bytes);
        }
    }

    #[test]
    fn decode_for_is_exactly_the_rules_naming_the_caller_in_load_order() {
        let groups_sets: Vec<Vec<String>> = vec![
            vec![],
            vec!["netops".to_string()],
            vec![
                "dba".to_string(),
                "wheel".to_string(),
                "nobody-has-this".to_string(),
            ],
        ];
        let mut nonempty = 0;
        for p in policies() {
            let bytes = encode(&p, b"k");
            for user in USERS.iter().chain(&["zed"]) {
                for groups in &groups_sets {
                    let sub = decode_for(&bytes, b"k", user, groups).unwrap();
                    let want: Vec<Rule> = p
                        .rules
                        .iter()
                        .filter(|r| names_user(r, user, groups))
                        .cloned()
                        .collect();
                    nonempty += usize::from(!want.is_empty());
                    assert_eq!(sub.rules, want, "user {user} groups {groups:?}");
                }
            }
        }
        assert!(nonempty > 20);
    }

    #[test]
    fn another_key_is_stale_and_damage_is_detected() {
        let p = &policies()[2];
        let bytes = encode(p, b"key-1");
        assert_eq!(
            decode_all(&bytes, b"key-2").unwrap_err(),
            SnapshotError::Stale
        );
        assert_eq!(
            decode_all(&bytes, b"key-").unwrap_err(),
            SnapshotError::Stale
        );
        // Another format version is stale too.
        let mut other = bytes.clone();
        other[8] ^= 0xff;
        assert_eq!(
            decode_all(&other, b"key-1").unwrap_err(),
            SnapshotError::Stale
        );
        // Every single flipped byte, every truncation: an error, never another policy.
        assert!(p.rules.len() >= 10);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            match decode_all(&b, b"key-1") {
                Err(_) => {}
                Ok(q) => panic!("byte {i} flipped, still decoded ({} rules)", q.rules.len()),
            }
            assert!(
                decode_all(&bytes[..i], b"key-1").is_err(),
                "truncated at {i}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_all(&longer, b"key-1").is_err());
        assert!(matches!(
            decode_all(b"not a snapshot at all, no", b"key-1"),
            Err(SnapshotError::Corrupt(_))
        ));
        assert!(decode_all(&[], b"").is_err());
    }

    #[test]
    fn pieces_compose_like_decode_for() {
        // jitrun reads the header and key, then one directory entry and one bucket per
        // name, then each record: the same rules as decoding from the whole file.
        let p = &policies()[4];
        let bytes = encode(p, b"key");
        let key_len = Snapshot::key_len(&bytes[..HEADER_LEN]).unwrap();
        let snap =
            Snapshot::open(&bytes[..HEADER_LEN + key_len], b"key", bytes.len() as u64).unwrap();
        assert_eq!(snap.rule_count(), p.rules.len());
        let mut reads = 0;
        let mut read = |r: Range<u64>| {
            reads += 1;
            Ok(bytes[r.start as usize..r.end as usize].to_vec())
        };
        let groups = vec!["dba".to_string()];
        let rules = snap
            .read_rules(
                Want::Naming {
                    user: "bob",
                    groups: &groups,
                },
                &mut read,
            )
            .unwrap();
        assert!(!rules.is_empty());
        assert_eq!(reads, 2 * 2 + rules.len());
        assert_eq!(
            rules,
            decode_for(&bytes, b"key", "bob", &groups).unwrap().rules
        );
        // Rules by name: exactly that rule, in load order, whoever it names.
        for r in p.rules.iter().step_by(7) {
            let got = decode_named(&bytes, b"key", std::slice::from_ref(&r.name)).unwrap();
            assert_eq!(got.rules, vec![r.clone()]);
        }
        let two = vec![p.rules[9].name.clone(), p.rules[3].name.clone()];
        assert_eq!(
            decode_named(&bytes, b"key", &two).unwrap().rules,
            vec![p.rules[3].clone(), p.rules[9].clone()]
        );
        let none = vec!["no-such-rule".to_string(), String::new()];
        assert!(decode_named(&bytes, b"key", &none)
            .unwrap()
            .rules
            .is_empty());
        // A record read for another index is refused.
        let (_, entry) = snap.dir_entry(Table::RuleNames, &p.rules[5].name);
        let blob = snap
            .bucket_range(&bytes[entry.start as usize..entry.end as usize])
            .unwrap();
        let found = snap
            .lookup(
                Table::RuleNames,
                snap.dir_entry(Table::RuleNames, &p.rules[5].name).0,
                &bytes[blob.start as usize..blob.end as usize],
                &p.rules[5].name,
            )
            .unwrap();
        assert_eq!(found.len(), 1);
        let rec = &bytes[found[0].1.start as usize..found[0].1.end as usize];
        assert_eq!(decode_record(rec, 5).unwrap(), p.rules[5]);
        assert!(decode_record(rec, 6).is_err());
    }

    #[test]
    fn a_sealed_record_the_loader_would_refuse_is_refused() {
        // Checksums only catch damage: a record written with valid checksums (by a bug, or
        // by hand) must still hold only values the loader accepts.
        let p = &policies()[3];
        let rule = &p.rules[0];
        assert_eq!(decode_record(&encode_rule(rule, 0), 0).unwrap(), *rule);
        type Change = fn(&mut Rule);
        let changes: &[(&str, Change)] = &[
            ("rule name", |r| r.name = "bad name".into()),
            ("user or group name", |r| r.users = vec!["..".into()]),
            ("user or group name", |r| r.groups = vec!["1000".into()]),
            ("rule without users", |r| {
                r.users.clear();
                r.groups.clear();
            }),
            ("hosts", |r| r.hosts = vec!["web 1".into()]),
            ("hosts", |r| r.hosts.clear()),
            ("commands", |r| r.commands.clear()),
            ("run_as", |r| r.run_as = RunAs::User(".".into())),
            ("capabilities", |r| {
                r.run_as = RunAs::Invoker;
                r.capabilities = CapSet::all();
            }),
            ("max_duration", |r| r.max_duration = Duration::ZERO),
            ("env_keep", |r| r.env_keep = vec!["LD_PRELOAD".into()]),
            ("env_keep", |r| r.env_keep = vec!["APP_ENV".into()]),
            ("env_keep_unchecked", |r| {
                r.env_keep_unchecked = vec!["PYTHONPATH".into()]
            }),
            ("env_keep_unchecked", |r| {
                r.env_keep_unchecked = vec!["TERM".into()]
            }),
            ("allow_risks", |r| {
                r.allow_risks = vec!["Shell escape".into()]
            }),
        ];
        for (what, change) in changes {
            let mut bad = rule.clone();
            change(&mut bad);
            assert_eq!(
                decode_record(&encode_rule(&bad, 0), 0),
                Err(corrupt(format!("invalid {what}"))),
                "{bad:?}"
            );
        }
        // A command pattern is parsed again: a relative program is refused.
        let mut bad = rule.clone();
        bad.commands[0] = CommandPattern {
            program: "bin/x".into(),
            args: Vec::new(),
            rest: false,
        };
        assert!(decode_record(&encode_rule(&bad, 0), 0).is_err());
    }

    #[test]
    fn the_fuzz_seeds_are_snapshots_of_this_format() {
        // fuzz/corpus/snapshot/seed-* start the snapshot fuzz target from real snapshots; after
        // a FORMAT bump they would all be stale and the fuzzer would start from nothing.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/snapshot");
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let key = b"fuzz seed: file identities and versions go here";
            assert!(
                decode_all(&bytes, key).is_ok(),
                "{} is not a format {FORMAT} snapshot: in fuzz/, run cargo run --example snapshot_seeds -- corpus/snapshot",
                path.display()
            );
            seeds += 1;
        }
        assert!(seeds >= 3, "{seeds} seeds in {dir}");
    }
}
