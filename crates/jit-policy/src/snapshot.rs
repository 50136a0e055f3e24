//! A compiled policy snapshot: the rules of a loaded [`Policy`] as bytes, with an index
//! from user and group names to rules, so that `jitrun` can decode only the rules that
//! name the caller instead of parsing every TOML file on every run.
//!
//! Pure: this module encodes and decodes byte slices; reading, writing and trusting the
//! file is the caller's business (`jitrun`'s `policy_cache`). The caller hands over an
//! opaque `key` (what the snapshot was built from: file identities, versions); a
//! snapshot whose key differs is [`SnapshotError::Stale`].
//!
//! Who-matching in [`crate::decide`] compares exact names only (a rule names the caller
//! when one of its `users` equals the user name or one of its `groups` is one of the
//! caller's groups), so the index is exact: the rules listed under the user's name and
//! under each of their groups are exactly the rules that name them. Every decision that
//! ALLOWS only ever uses such a rule, so deciding on that subset allows exactly what the
//! full policy allows; a refusal from the subset must be re-decided on the full policy
//! for its message (another user's rule, "no rule ..." naming the closest rule).
//!
//! Layout (integers little-endian):
//!
//! ```text
//! header   "JITPSNAP" | u32 FORMAT | u32 key_len | u32 index_len | u32 rule_count | u64 index_hash
//! key      key_len bytes
//! index    (rule_count + 1) × u64 record offsets (absolute; the last is the end of the file)
//!          users:  u32 table_len, then u32 n, n × u32 entry offset (from the first entry),
//!                  n entries sorted by name: str name, u32 k, k × u32 rule index ascending
//!          groups: the same
//!          names:  the same, rule name → its index (names are unique)
//! records  one per rule, in load order: fields, then u64 hash of those fields
//! ```
//!
//! `str` is a u32 length and UTF-8 bytes. `index_hash` is a checksum over key and index;
//! each record carries the checksum of its own fields, so a reader checks exactly the
//! bytes it decodes (a torn or damaged file is an error, never a different policy).
//! Command patterns are stored as their words and parsed again on decoding, and every
//! name is validated again, so a decoded rule is one the loader could have produced.

use crate::caps::CapSet;
use crate::policy::{valid_env_name, valid_rule_name, valid_user_name, GrantMode, RunAs};
use crate::{CommandPattern, Policy, Rule, SourceLoc};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// Bump whenever the layout or the meaning of a field changes.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"JITPSNAP";
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 4 + 8;

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

fn encode_rule(rule: &Rule) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(256));
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
    o.u8(u8::from(rule.no_new_privs));
    o.u8(u8::from(rule.authenticate));
    o.str(&rule.source.file);
    o.u64(rule.source.line as u64);
    let h = checksum(&[&o.0]);
    o.u64(h);
    o.0
}

/// The snapshot of `policy`'s rules (its `[[test]]` tables are not kept), tagged with `key`.
pub fn encode(policy: &Policy, key: &[u8]) -> Vec<u8> {
    let mut users: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut rule_names: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (i, r) in policy.rules.iter().enumerate() {
        let i = u32::try_from(i).expect("fewer than 4 billion rules");
        rule_names.entry(&r.name).or_default().push(i);
        for u in &r.users {
            let v = users.entry(u).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
        for g in &r.groups {
            let v = groups.entry(g).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
    }
    let records: Vec<Vec<u8>> = policy.rules.iter().map(encode_rule).collect();

    let mut names = Out(Vec::new());
    for map in [&users, &groups, &rule_names] {
        // Entries sorted by name (BTreeMap order = byte order), found by binary search
        // through a table of their offsets.
        let mut entries = Out(Vec::new());
        let mut offsets = Vec::with_capacity(map.len());
        for (name, list) in map {
            offsets.push(entries.0.len());
            entries.str(name);
            entries.len(list.len());
            for &i in list {
                entries.u32(i);
            }
        }
        names.len(4 + offsets.len() * 4 + entries.0.len());
        names.len(offsets.len());
        for o in offsets {
            names.len(o);
        }
        names.0.extend_from_slice(&entries.0);
    }
    let index_len = (records.len() + 1) * 8 + names.0.len();
    let mut offset = (HEADER_LEN + key.len() + index_len) as u64;
    let mut index = Out(Vec::with_capacity(index_len));
    for r in &records {
        index.u64(offset);
        offset += r.len() as u64;
    }
    index.u64(offset);
    index.0.extend_from_slice(&names.0);

    let mut o = Out(Vec::with_capacity(offset as usize));
    o.0.extend_from_slice(MAGIC);
    o.u32(FORMAT);
    o.len(key.len());
    o.len(index.0.len());
    o.len(records.len());
    o.u64(checksum(&[key, &index.0]));
    o.0.extend_from_slice(key);
    o.0.extend_from_slice(&index.0);
    for r in &records {
        o.0.extend_from_slice(r);
    }
    o.0
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
        if n.saturating_mul(min) > self.b.len() - self.at {
            return Err(corrupt("count beyond the end"));
        }
        Ok(n)
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

/// What the fixed header says; see [`Index::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Header {
    key_len: usize,
    index_len: usize,
    rule_count: usize,
    index_hash: u64,
}

impl Header {
    /// Parse the first [`HEADER_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Header, SnapshotError> {
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        let mut r = In { b: bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(corrupt("not a policy snapshot"));
        }
        if r.u32()? != FORMAT {
            return Err(SnapshotError::Stale);
        }
        let key_len = r.u32()? as usize;
        let index_len = r.u32()? as usize;
        let rule_count = r.u32()? as usize;
        let index_hash = r.u64()?;
        if index_len < (rule_count + 1) * 8 {
            return Err(corrupt("index shorter than its offsets"));
        }
        Ok(Header {
            key_len,
            index_len,
            rule_count,
            index_hash,
        })
    }

    /// Bytes from the start of the file up to the end of the index: what [`Index::parse`] needs.
    pub fn prefix_len(&self) -> usize {
        HEADER_LEN + self.key_len + self.index_len
    }
}

/// The header, key and index of a snapshot whose key matched: where each rule's record is.
#[derive(Debug, Clone)]
pub struct Index<'a> {
    offsets: &'a [u8],
    rule_count: usize,
    prefix_len: u64,
    users: &'a [u8],
    groups: &'a [u8],
    rule_names: &'a [u8],
}

impl<'a> Index<'a> {
    /// Check magic, format, key and the index's hash. `prefix` holds at least
    /// [`Header::prefix_len`] bytes from the start of the file.
    pub fn parse(prefix: &'a [u8], key: &[u8]) -> Result<Index<'a>, SnapshotError> {
        let h = Header::parse(prefix)?;
        if prefix.len() < h.prefix_len() {
            return Err(corrupt("truncated index"));
        }
        let stored_key = &prefix[HEADER_LEN..HEADER_LEN + h.key_len];
        if stored_key != key {
            return Err(SnapshotError::Stale);
        }
        let index = &prefix[HEADER_LEN + h.key_len..h.prefix_len()];
        if checksum(&[stored_key, index]) != h.index_hash {
            return Err(corrupt("index checksum mismatch"));
        }
        let (offsets, names) = index.split_at((h.rule_count + 1) * 8);
        let mut r = In { b: names, at: 0 };
        let n = r.u32()? as usize;
        let users = r.take(n)?;
        let n = r.u32()? as usize;
        let groups = r.take(n)?;
        let n = r.u32()? as usize;
        let rule_names = r.take(n)?;
        if r.at != names.len() {
            return Err(corrupt("trailing bytes after the index"));
        }
        let idx = Index {
            offsets,
            rule_count: h.rule_count,
            prefix_len: h.prefix_len() as u64,
            users,
            groups,
            rule_names,
        };
        if idx.offset(0) != idx.prefix_len || idx.file_len() < idx.prefix_len {
            return Err(corrupt("records misplaced"));
        }
        Ok(idx)
    }

    fn offset(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.offsets[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Total size the file must have.
    pub fn file_len(&self) -> u64 {
        self.offset(self.rule_count)
    }

    /// Byte range (in the file) of rule `i`'s record.
    pub fn record_range(&self, i: usize) -> Result<Range<u64>, SnapshotError> {
        if i >= self.rule_count {
            return Err(corrupt("rule index out of range"));
        }
        let (start, end) = (self.offset(i), self.offset(i + 1));
        if start < self.prefix_len || end < start || end > self.file_len() {
            return Err(corrupt("record offsets out of order"));
        }
        Ok(start..end)
    }

    /// The index of the rule called `name`, if there is one.
    pub fn rule_named(&self, name: &str) -> Result<Option<usize>, SnapshotError> {
        Ok(lookup(self.rule_names, name, self.rule_count)?
            .first()
            .copied())
    }

    /// The indices, ascending (= load order), of the rules that name `user` or one of `groups`.
    pub fn rules_naming(&self, user: &str, groups: &[String]) -> Result<Vec<usize>, SnapshotError> {
        let mut out: Vec<usize> = lookup(self.users, user, self.rule_count)?;
        for g in groups {
            out.extend(lookup(self.groups, g, self.rule_count)?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The rule indices listed under `name` in a name table (binary search).
fn lookup(table: &[u8], name: &str, rule_count: usize) -> Result<Vec<usize>, SnapshotError> {
    let mut r = In { b: table, at: 0 };
    let n = r.count(4)?;
    let offsets = r.take(n * 4)?;
    let entries = &table[r.at..];
    let entry = |k: usize| -> Result<(In<'_>, &[u8]), SnapshotError> {
        let o = u32::from_le_bytes(offsets[k * 4..k * 4 + 4].try_into().expect("4 bytes")) as usize;
        if o > entries.len() {
            return Err(corrupt("name offset out of range"));
        }
        let mut e = In { b: entries, at: o };
        let len = e.u32()? as usize;
        let this = e.take(len)?;
        Ok((e, this))
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (mut e, this) = entry(mid)?;
        match this.cmp(name.as_bytes()) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let k = e.count(4)?;
                let mut v = Vec::with_capacity(k);
                for _ in 0..k {
                    let i = e.u32()? as usize;
                    if i >= rule_count {
                        return Err(corrupt("rule index out of range"));
                    }
                    v.push(i);
                }
                return Ok(v);
            }
        }
    }
    Ok(Vec::new())
}

fn check(ok: bool, what: &str) -> Result<(), SnapshotError> {
    if ok {
        Ok(())
    } else {
        Err(corrupt(format!("invalid {what}")))
    }
}

/// Decode one record (the bytes of [`Index::record_range`]), checking its hash and
/// validating it again as the loader would.
pub fn decode_rule(record: &[u8]) -> Result<Rule, SnapshotError> {
    if record.len() < 8 {
        return Err(corrupt("record too short"));
    }
    let (fields, hash) = record.split_at(record.len() - 8);
    if checksum(&[fields]) != u64::from_le_bytes(hash.try_into().expect("8 bytes")) {
        return Err(corrupt("record checksum mismatch"));
    }
    let mut r = In { b: fields, at: 0 };
    let name = r.str()?.to_string();
    check(valid_rule_name(&name), "rule name")?;
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
    let hosts = r.strs()?;
    check(!hosts.is_empty(), "hosts")?;
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
    let run_as = match r.u8()? {
        0 => RunAs::Invoker,
        1 => RunAs::Root,
        2 => {
            let u = r.str()?;
            check(valid_user_name(u), "run_as")?;
            RunAs::User(u.to_string())
        }
        _ => return Err(corrupt("invalid run_as")),
    };
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
    let secs = r.u64()?;
    let nanos = r.u32()?;
    check(nanos < 1_000_000_000, "max_duration")?;
    let max_duration = Duration::new(secs, nanos);
    check(!max_duration.is_zero(), "max_duration")?;
    let min_approvals = r.u32()?;
    let env_keep = r.strs()?;
    check(
        env_keep
            .iter()
            .all(|e| valid_env_name(e) && !crate::env_never_kept(e)),
        "env_keep",
    )?;
    let no_new_privs = r.bool()?;
    let authenticate = r.bool()?;
    let file = r.str()?.to_string();
    let line = usize::try_from(r.u64()?).map_err(|_| corrupt("line"))?;
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
        no_new_privs,
        authenticate,
        source: SourceLoc { file, line },
    })
}

fn decode(
    bytes: &[u8],
    key: &[u8],
    which: Option<(&str, &[String])>,
) -> Result<Policy, SnapshotError> {
    let idx = Index::parse(bytes, key)?;
    if idx.file_len() != bytes.len() as u64 {
        return Err(corrupt("length differs from the index"));
    }
    let wanted: Vec<usize> = match which {
        Some((user, groups)) => idx.rules_naming(user, groups)?,
        None => (0..idx.rule_count()).collect(),
    };
    let rules = wanted
        .into_iter()
        .map(|i| {
            let r = idx.record_range(i)?;
            decode_rule(&bytes[r.start as usize..r.end as usize])
        })
        .collect::<Result<_, _>>()?;
    Ok(Policy {
        rules,
        tests: Vec::new(),
    })
}

/// Every rule, in load order.
pub fn decode_all(bytes: &[u8], key: &[u8]) -> Result<Policy, SnapshotError> {
    decode(bytes, key, None)
}

/// Only the rules that name `user` or one of `groups`, in load order.
pub fn decode_for(
    bytes: &[u8],
    key: &[u8],
    user: &str,
    groups: &[String],
) -> Result<Policy, SnapshotError> {
    decode(bytes, key, Some((user, groups)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::names_user;
    use crate::PolicySource;

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
                t.push_str("env_keep = [\"TERM\", \"LANG\", \"_X1\"]\n");
            }
            t.push_str(&format!("no_new_privs = {}\n", rng.below(2) == 0));
            t.push_str(&format!("authenticate = {}\n", rng.below(4) == 0));
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
        // jitrun reads the header, then the prefix, then each record: the same rules.
        let p = &policies()[4];
        let bytes = encode(p, b"key");
        let h = Header::parse(&bytes[..HEADER_LEN]).unwrap();
        let idx = Index::parse(&bytes[..h.prefix_len()], b"key").unwrap();
        assert_eq!(idx.file_len(), bytes.len() as u64);
        let groups = vec!["dba".to_string()];
        let rules: Vec<Rule> = idx
            .rules_naming("bob", &groups)
            .unwrap()
            .into_iter()
            .map(|i| {
                let r = idx.record_range(i).unwrap();
                decode_rule(&bytes[r.start as usize..r.end as usize]).unwrap()
            })
            .collect();
        assert_eq!(
            rules,
            decode_for(&bytes, b"key", "bob", &groups).unwrap().rules
        );
        assert!(!rules.is_empty());
        // Rules by name.
        for (i, r) in p.rules.iter().enumerate() {
            assert_eq!(idx.rule_named(&r.name).unwrap(), Some(i));
        }
        assert_eq!(idx.rule_named("no-such-rule").unwrap(), None);
        assert_eq!(idx.rule_named("").unwrap(), None);
        // Out of range.
        assert!(idx.record_range(p.rules.len()).is_err());
    }
}
