//! The policy snapshot decoder (`jit_policy::snapshot`) runs inside the setuid jitrun on
//! `/var/lib/jitrun/policy.snapshot`. Whatever the bytes, decoding must not panic, hang or
//! allocate without bound, and what it accepts must be rules the loader could have made:
//! they encode again to a snapshot that decodes to the same rules, and a decision on them
//! does not panic.
//!
//! Random mutations rarely survive the checksums, so each input is decoded twice: as it is,
//! and resealed (every checksum the layout reaches recomputed), which lets mutations reach
//! the record and index decoders behind the checksums.
//!
//! Seeds (corpus/snapshot/seed-*): the snapshots of policy-examples/, written by
//! `cargo run --example snapshot_seeds -- corpus/snapshot` in fuzz/.
#![no_main]
use jit_policy::snapshot::{self, FORMAT, HEADER_LEN};
use jit_policy::{decide, Policy, PolicySource, Request};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::sync::Once;

/// Names the example policies use, so lookups in mutated snapshots hit real buckets.
const USERS: &[&str] = &["alice", "bob", "root", "postgres"];
const GROUPS: &[&str] = &[
    "backup-ops",
    "dba",
    "netops",
    "oncall",
    "sre",
    "sre-leads",
    "webops",
];
const RULES: &[&str] = &[
    "backup-read-all",
    "break-glass",
    "dba-postgres",
    "net-debug",
    "oncall-restart",
];

/// snapshot.rs's checksum (private there): `h = rotl((h ^ word) * K, 31)` per 8 bytes, then
/// the length. [`self_check`] proves at start-up that this copy still matches the encoder.
fn checksum(parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(31);
    let mut h: u64 = 0x6a09_e667_f3bc_c908;
    for p in parts {
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            h = mix(h, u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = mix(h, u64::from_le_bytes(tail));
        h = mix(h, p.len() as u64);
    }
    h
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Recompute the checksum that ends the `len` bytes at `at` over the bytes before it.
fn seal(b: &mut [u8], at: usize, len: usize) {
    let Some(end) = at.checked_add(len).filter(|&e| e <= b.len() && len >= 8) else {
        return;
    };
    let sum = checksum(&[&b[at..end - 8]]);
    b[end - 8..end].copy_from_slice(&sum.to_le_bytes());
}

/// Recompute every checksum the layout reaches: header (with the key), records, buckets.
/// Best effort: whatever does not parse is left as it is.
fn reseal(b: &mut [u8]) {
    let Some(key_len) = u32_at(b, 12) else { return };
    let Some(key_end) = HEADER_LEN
        .checked_add(key_len as usize)
        .filter(|&e| e <= b.len())
    else {
        return;
    };
    let sum = checksum(&[&b[..HEADER_LEN - 8], &b[HEADER_LEN..key_end]]);
    b[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    let (Some(rules), Some(records_at)) = (u32_at(b, 16), u64_at(b, 20)) else {
        return;
    };
    let mut at = records_at as usize;
    for _ in 0..rules.min(4096) {
        let Some(len) = u32_at(b, at) else { break };
        seal(b, at + 4, len as usize);
        at = at.saturating_add(4 + len as usize);
    }
    for t in 0..3 {
        let (Some(count), Some(dir_at)) = (u32_at(b, 28 + 12 * t), u64_at(b, 32 + 12 * t)) else {
            return;
        };
        for i in 0..u64::from(count.min(4096)) {
            let entry = (dir_at.saturating_add(i * 12)) as usize;
            if let (Some(bucket_at), Some(len)) = (u64_at(b, entry), u32_at(b, entry + 8)) {
                seal(b, bucket_at as usize, len as usize);
            }
        }
    }
}

/// The key stored in the snapshot (so that a key mismatch does not end every run early).
fn stored_key(b: &[u8]) -> Vec<u8> {
    let len = u32_at(b, 12).unwrap_or(0) as usize;
    b.get(HEADER_LEN..HEADER_LEN.saturating_add(len))
        .unwrap_or(b"fuzz")
        .to_vec()
}

/// The copy of the checksum above must seal exactly as the encoder does.
fn self_check() {
    let text = "[[rule]]\nname = \"r\"\nusers = [\"alice\"]\ngroups = [\"dba\"]\n\
                commands = [\"/usr/bin/id **\"]\ncapabilities = [\"CAP_NET_RAW\"]\n";
    let policy = Policy::load(&[PolicySource {
        name: "self-check.toml".into(),
        text: text.into(),
    }])
    .expect("the self-check policy loads");
    let encoded = snapshot::encode(&policy, b"key");
    let mut resealed = encoded.clone();
    resealed[HEADER_LEN - 8..HEADER_LEN].fill(0);
    reseal(&mut resealed);
    assert_eq!(
        resealed, encoded,
        "fuzz/fuzz_targets/snapshot.rs's checksum no longer matches snapshot.rs (FORMAT {FORMAT})"
    );
}

fn exercise(bytes: &[u8]) {
    let key = stored_key(bytes);
    let mut users: Vec<String> = USERS.iter().map(|s| s.to_string()).collect();
    let mut groups: Vec<String> = GROUPS.iter().map(|s| s.to_string()).collect();
    let mut names: Vec<String> = RULES.iter().map(|s| s.to_string()).collect();
    if let Ok(policy) = snapshot::decode_all(bytes, &key) {
        // Accepted rules are ones the encoder can write again, unchanged.
        let again = snapshot::decode_all(&snapshot::encode(&policy, &key), &key)
            .expect("a decoded policy encodes to a snapshot that decodes");
        assert_eq!(
            again.rules, policy.rules,
            "decode ∘ encode changed the rules"
        );
        for rule in &policy.rules {
            users.extend(rule.users.iter().cloned());
            groups.extend(rule.groups.iter().cloned());
            names.push(rule.name.clone());
        }
        let args = [OsStr::new("-l"), OsStr::new("x y")];
        let request = Request {
            user: "alice",
            groups: &groups,
            host: "web-1",
            program: OsStr::new("/usr/bin/ls"),
            args: &args,
            run_as: None,
            rule: None,
        };
        let _ = decide(&policy, &request, None);
    }
    for user in users.iter().take(16) {
        let _ = snapshot::decode_for(bytes, &key, user, &groups);
    }
    if let Ok(policy) = snapshot::decode_named(bytes, &key, &names) {
        assert!(
            policy.rules.iter().all(|r| names.contains(&r.name)),
            "decode_named returned a rule not asked for"
        );
    }
}

static CHECKED: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    CHECKED.call_once(self_check);
    exercise(data);
    let mut resealed = data.to_vec();
    reseal(&mut resealed);
    if resealed != data {
        exercise(&resealed);
    }
});
