//! The broker's revocation list on this host (docs/broker.md, "Revocation list"):
//! `/var/lib/jitrun/revocations`, one `jitrun:revocations:v1` token written by
//! `jitctl revocations sync` (as root), read as a trusted file and verified with the keys
//! of `/etc/jitrun/keys.d/` (the broker signs grants and lists with the same key).
//!
//! A grant on the list is refused (`revoked`); a rule with `require_fresh_revocations`
//! refuses grants while the list is missing, invalid, or older than settings
//! `revocations.max_age` (`revocations_stale`). The watchdog re-checks the list while a
//! command runs ([`Fingerprint`] says when the file changed).

use crate::paths;
use crate::refusal::Refusal;
use crate::trusted_files;
use jit_grant::{format_time, KeySet, RevocationList, Revoked};
use jit_policy::{format_duration, Rule, Settings};
use std::os::unix::fs::MetadataExt;
use time::OffsetDateTime;

/// Largest list read (a list of ~10 000 entries).
pub const MAX_LIST: usize = 4 << 20;

/// What is on disk.
#[derive(Debug, Clone)]
pub enum ListState {
    Missing,
    /// Untrusted or not verifiable: why.
    Invalid(String),
    /// There, but could not be read now (the caller's open-file limit): the refusal.
    Unreadable(Refusal),
    Valid(RevocationList),
}

/// Read and verify the list.
pub fn load(keys: &KeySet) -> ListState {
    let path = paths::REVOCATIONS;
    let bytes = match trusted_files::read(path, MAX_LIST) {
        Ok(Some(b)) => b,
        Ok(None) => return ListState::Missing,
        Err(r) if r.code == "resource_limit" => return ListState::Unreadable(r),
        Err(r) => return ListState::Invalid(r.message),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return ListState::Invalid(format!("{path}: not UTF-8 text"));
    };
    match RevocationList::verify(text.trim(), keys) {
        Ok(v) => ListState::Valid(v.list),
        Err(e) => ListState::Invalid(format!("{path}: {e}")),
    }
}

impl ListState {
    /// The entry for grant `jti`, when the list is valid and names it.
    pub fn find(&self, jti: &str) -> Option<&Revoked> {
        match self {
            ListState::Valid(l) => l.find(jti),
            _ => None,
        }
    }
}

/// How long ago `t` was, for people ("3m").
fn ago(now: OffsetDateTime, t: OffsetDateTime) -> String {
    format_duration(std::time::Duration::try_from(now - t).unwrap_or_default())
}

/// The message for a revoked grant: which, when, why, and what to do.
pub fn revoked_message(jti: &str, rule: &str, entry: &Revoked, now: OffsetDateTime) -> String {
    format!(
        "grant {jti} was revoked at {} ({} ago): {}; it can no longer be used. Request a new grant: jitctl request {rule}",
        format_time(entry.at),
        ago(now, entry.at),
        if entry.reason.is_empty() { "no reason given" } else { entry.reason.as_str() },
    )
}

/// Refuse grant `jti` (for rule `rule`) if the list names it.
pub fn check_not_revoked(
    list: &ListState,
    jti: &str,
    rule: &str,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    // Never "no list" because the caller made it unreadable: fail closed.
    if let ListState::Unreadable(r) = list {
        return Err(r.clone().with_rule(Some(rule.to_string())));
    }
    match list.find(jti) {
        Some(entry) => Err(
            Refusal::deny("revoked", revoked_message(jti, rule, entry, now))
                .with_rule(Some(rule.to_string())),
        ),
        None => Ok(()),
    }
}

/// For a rule with `require_fresh_revocations`: the list must be there, valid, and (with
/// settings `revocations.max_age`) not older than that.
pub fn check_fresh(
    list: &ListState,
    rule: &Rule,
    settings: &Settings,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    if !rule.require_fresh_revocations {
        return Ok(());
    }
    let problem = match list {
        ListState::Missing => format!("{} does not exist", paths::REVOCATIONS),
        ListState::Invalid(why) => format!("the list cannot be used: {why}"),
        ListState::Unreadable(r) => format!("the list cannot be read: {}", r.message),
        ListState::Valid(l) => match settings.revocations.max_age {
            Some(max) if l.is_older_than(now, max) => l.stale_error(now, max).to_string(),
            _ => return Ok(()),
        },
    };
    Err(Refusal::deny(
        "revocations_stale",
        format!(
            "rule {} needs an up-to-date revocation list and this host has none: {problem}; an admin runs `jitctl revocations sync` (as root) or checks its timer",
            rule.name
        ),
    )
    .with_rule(Some(rule.name.clone())))
}

/// What identifies one version of the file: a rename (atomic replace) changes the inode, an
/// in-place write the size or mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Fingerprint {
    /// None when the file does not exist (or cannot be looked at).
    pub fn now() -> Option<Fingerprint> {
        std::fs::symlink_metadata(paths::REVOCATIONS)
            .ok()
            .map(|m| Fingerprint {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_policy::{Policy, PolicySource};

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn list(iat: OffsetDateTime) -> ListState {
        ListState::Valid(RevocationList {
            iss: "broker-1".into(),
            iat,
            seq: 7,
            revoked: vec![Revoked {
                jti: "01JGRANT".into(),
                exp: t0() + time::Duration::hours(1),
                at: t0() - time::Duration::minutes(3),
                reason: "laptop stolen".into(),
            }],
        })
    }

    fn rule(fresh: bool) -> Rule {
        let text = format!(
            "[[rule]]\nname = \"db\"\nusers = [\"a\"]\ncommands = [\"/bin/true\"]\nrequire_fresh_revocations = {fresh}\n"
        );
        Policy::load(&[PolicySource {
            name: "p".into(),
            text,
        }])
        .unwrap()
        .rules
        .remove(0)
    }

    #[test]
    fn a_listed_grant_is_refused_with_when_why_and_what_next() {
        let r = check_not_revoked(&list(t0()), "01JGRANT", "db", t0()).unwrap_err();
        assert_eq!(r.code, "revoked");
        assert_eq!(r.rule.as_deref(), Some("db"));
        for part in [
            "grant 01JGRANT",
            "2025-06-15T15:03:40Z",
            "3m ago",
            "laptop stolen",
            "jitctl request db",
        ] {
            assert!(r.message.contains(part), "{part}: {}", r.message);
        }
        check_not_revoked(&list(t0()), "01JOTHER", "db", t0()).unwrap();
        check_not_revoked(&ListState::Missing, "01JGRANT", "db", t0()).unwrap();
    }

    #[test]
    fn freshness_only_for_rules_that_ask() {
        let mut settings = Settings::default();
        let now = t0();
        for state in [ListState::Missing, ListState::Invalid("bad".into())] {
            check_fresh(&state, &rule(false), &settings, now).unwrap();
            let r = check_fresh(&state, &rule(true), &settings, now).unwrap_err();
            assert_eq!(r.code, "revocations_stale");
            assert!(
                r.message.contains("jitctl revocations sync"),
                "{}",
                r.message
            );
        }
        // Without max_age any valid list is fresh.
        check_fresh(
            &list(now - time::Duration::days(30)),
            &rule(true),
            &settings,
            now,
        )
        .unwrap();
        settings.revocations.max_age = Some(std::time::Duration::from_secs(600));
        check_fresh(
            &list(now - time::Duration::minutes(10)),
            &rule(true),
            &settings,
            now,
        )
        .unwrap();
        let r = check_fresh(
            &list(now - time::Duration::minutes(11)),
            &rule(true),
            &settings,
            now,
        )
        .unwrap_err();
        assert_eq!(r.code, "revocations_stale");
        assert!(r.message.contains("rule db"), "{}", r.message);
        assert!(r.message.contains("11m ago"), "{}", r.message);
        check_fresh(
            &list(now - time::Duration::minutes(11)),
            &rule(false),
            &settings,
            now,
        )
        .unwrap();
    }
}
