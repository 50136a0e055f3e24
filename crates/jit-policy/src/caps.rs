//! Linux capability names and sets.
//!
//! Names are case-insensitive and the `CAP_` prefix is optional (`net_raw`,
//! `CAP_NET_RAW`). `ALL` means every capability the table knows. The table
//! covers capabilities 0..=40 (CAP_CHECKPOINT_RESTORE); the kernel's
//! `cap_last_cap` may be lower, and jitrun intersects with it at run time.

use crate::error::PolicyError;
use std::fmt;

/// One capability by number (as in linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(pub u8);

/// A set of capabilities as a 64-bit mask (bit N = capability N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CapSet(pub u64);

/// Canonical names, indexed by capability number (linux/capability.h).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Strip a leading `CAP_` (any case).
fn strip_cap_prefix(name: &str) -> &str {
    match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("CAP_") => &name[4..],
        _ => name,
    }
}

impl Capability {
    /// The highest capability number the table knows (CAP_CHECKPOINT_RESTORE).
    pub const LAST: u8 = 40;

    /// Parse one name: case-insensitive, `CAP_` optional. Not `ALL`.
    pub fn parse(name: &str) -> Result<Capability, PolicyError> {
        if name.is_empty() {
            return Err(PolicyError::Value(
                "empty capability name (names look like CAP_NET_ADMIN or net_admin)".to_string(),
            ));
        }
        if name.eq_ignore_ascii_case("ALL") {
            return Err(PolicyError::Value(
                "\"ALL\" is not a single capability; use it only in a list of capabilities"
                    .to_string(),
            ));
        }
        let bare = strip_cap_prefix(name);
        NAMES
            .iter()
            .position(|n| n[4..].eq_ignore_ascii_case(bare))
            .map(|i| Capability(i as u8))
            .ok_or_else(|| {
                PolicyError::Value(format!(
                    "unknown capability {} (names look like CAP_NET_ADMIN or net_admin)",
                    crate::text::quote(name)
                ))
            })
    }

    /// Canonical upper-case name with prefix, e.g. `CAP_NET_ADMIN`.
    ///
    /// A number beyond the table (which [`Capability::parse`] never produces) gives `CAP_UNKNOWN`.
    pub fn name(self) -> &'static str {
        NAMES.get(self.0 as usize).copied().unwrap_or("CAP_UNKNOWN")
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (self.0 as usize) < NAMES.len() {
            f.write_str(self.name())
        } else {
            write!(f, "CAP_{}", self.0)
        }
    }
}

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Every capability of the table (0..=LAST).
    pub fn all() -> CapSet {
        CapSet((1u64 << (Capability::LAST as u32 + 1)) - 1)
    }

    /// Parse a list of names; `ALL` (any case) alone or among others means [`CapSet::all`].
    /// Errors name the offending entry.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<CapSet, PolicyError> {
        let mut set = CapSet::EMPTY;
        let mut all = false;
        for name in names {
            let name = name.as_ref();
            if name.eq_ignore_ascii_case("ALL") {
                all = true;
                continue;
            }
            let cap = Capability::parse(name)?;
            set.0 |= 1u64 << cap.0;
        }
        Ok(if all { CapSet::all() } else { set })
    }

    /// The set holding exactly `c`.
    pub fn of(c: Capability) -> CapSet {
        if c.0 < 64 {
            CapSet(1u64 << c.0)
        } else {
            CapSet::EMPTY
        }
    }

    pub fn contains(self, c: Capability) -> bool {
        c.0 < 64 && self.0 & (1u64 << c.0) != 0
    }

    pub fn is_subset(self, other: CapSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn intersect(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    /// Capabilities in `self` but not in `other`.
    pub fn difference(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_all(self) -> bool {
        let all = CapSet::all().0;
        self.0 & all == all
    }

    /// Canonical names in numeric order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Capability::name).collect()
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        (0u8..64)
            .filter(move |b| self.0 & (1u64 << b) != 0)
            .map(Capability)
    }
}

impl fmt::Display for CapSet {
    /// Comma-separated canonical names (`CAP_NET_ADMIN, CAP_NET_RAW`), `ALL` for the whole
    /// table, `no capabilities` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no capabilities");
        }
        if *self == CapSet::all() {
            return f.write_str("ALL");
        }
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_numbers_match_linux_capability_h() {
        let expected = [
            (0, "CAP_CHOWN"),
            (1, "CAP_DAC_OVERRIDE"),
            (2, "CAP_DAC_READ_SEARCH"),
            (3, "CAP_FOWNER"),
            (4, "CAP_FSETID"),
            (5, "CAP_KILL"),
            (6, "CAP_SETGID"),
            (7, "CAP_SETUID"),
            (8, "CAP_SETPCAP"),
            (9, "CAP_LINUX_IMMUTABLE"),
            (10, "CAP_NET_BIND_SERVICE"),
            (11, "CAP_NET_BROADCAST"),
            (12, "CAP_NET_ADMIN"),
            (13, "CAP_NET_RAW"),
            (14, "CAP_IPC_LOCK"),
            (15, "CAP_IPC_OWNER"),
            (16, "CAP_SYS_MODULE"),
            (17, "CAP_SYS_RAWIO"),
            (18, "CAP_SYS_CHROOT"),
            (19, "CAP_SYS_PTRACE"),
            (20, "CAP_SYS_PACCT"),
            (21, "CAP_SYS_ADMIN"),
            (22, "CAP_SYS_BOOT"),
            (23, "CAP_SYS_NICE"),
            (24, "CAP_SYS_RESOURCE"),
            (25, "CAP_SYS_TIME"),
            (26, "CAP_SYS_TTY_CONFIG"),
            (27, "CAP_MKNOD"),
            (28, "CAP_LEASE"),
            (29, "CAP_AUDIT_WRITE"),
            (30, "CAP_AUDIT_CONTROL"),
            (31, "CAP_SETFCAP"),
            (32, "CAP_MAC_OVERRIDE"),
            (33, "CAP_MAC_ADMIN"),
            (34, "CAP_SYSLOG"),
            (35, "CAP_WAKE_ALARM"),
            (36, "CAP_BLOCK_SUSPEND"),
            (37, "CAP_AUDIT_READ"),
            (38, "CAP_PERFMON"),
            (39, "CAP_BPF"),
            (40, "CAP_CHECKPOINT_RESTORE"),
        ];
        for (n, name) in expected {
            assert_eq!(Capability::parse(name), Ok(Capability(n)), "{name}");
            assert_eq!(Capability(n).name(), name);
            // Every spelling: bare, lower case, mixed case with prefix.
            let bare = &name[4..];
            assert_eq!(Capability::parse(bare), Ok(Capability(n)), "{bare}");
            assert_eq!(Capability::parse(&bare.to_lowercase()), Ok(Capability(n)));
            assert_eq!(Capability::parse(&name.to_lowercase()), Ok(Capability(n)));
            assert_eq!(
                Capability::parse(&format!("Cap_{}", bare.to_lowercase())),
                Ok(Capability(n))
            );
        }
        assert_eq!(Capability(41).name(), "CAP_UNKNOWN");
        assert_eq!(Capability(41).to_string(), "CAP_41");
    }

    #[test]
    fn unknown_names_are_refused_with_a_hint() {
        let e = Capability::parse("CAP_NET_FOO").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown capability \"CAP_NET_FOO\" (names look like CAP_NET_ADMIN or net_admin)"
        );
        assert!(Capability::parse("").is_err());
        assert!(Capability::parse("CAP_").is_err());
        assert!(Capability::parse(" net_raw").is_err());
        assert!(Capability::parse("CAPNET_RAW").is_err());
        assert!(Capability::parse("all")
            .unwrap_err()
            .to_string()
            .contains("not a single capability"));
        assert!(Capability::parse("ALL").is_err());
    }

    #[test]
    fn all_and_lists() {
        let all = CapSet::all();
        assert_eq!(all.0, (1u64 << 41) - 1);
        assert!(all.is_all());
        assert_eq!(all.names().len(), 41);
        assert_eq!(all.names()[40], "CAP_CHECKPOINT_RESTORE");
        assert_eq!(CapSet::parse_list(&["ALL"]), Ok(all));
        assert_eq!(CapSet::parse_list(&["all"]), Ok(all));
        assert_eq!(CapSet::parse_list(&["net_raw", "All"]), Ok(all));
        // An error anywhere in the list is reported even when ALL is present.
        let e = CapSet::parse_list(&["ALL", "bogus"]).unwrap_err();
        assert!(e.to_string().contains("\"bogus\""), "{e}");
        let e = CapSet::parse_list(&["net_admin", "CAP_NET_FOO", "net_raw"]).unwrap_err();
        assert!(e.to_string().contains("\"CAP_NET_FOO\""), "{e}");

        let s = CapSet::parse_list(&["net_raw", "CAP_NET_ADMIN", "cap_net_raw"]).unwrap();
        assert_eq!(s.names(), vec!["CAP_NET_ADMIN", "CAP_NET_RAW"]);
        assert!(!s.is_all());
        assert!(!s.is_empty());
        assert_eq!(s.to_string(), "CAP_NET_ADMIN, CAP_NET_RAW");
        assert_eq!(CapSet::parse_list::<&str>(&[]), Ok(CapSet::EMPTY));
        assert!(CapSet::EMPTY.is_empty());
        assert_eq!(CapSet::EMPTY.to_string(), "no capabilities");
        assert_eq!(all.to_string(), "ALL");
    }

    #[test]
    fn set_operations() {
        let admin = Capability::parse("net_admin").unwrap();
        let raw = Capability::parse("net_raw").unwrap();
        let sys = Capability::parse("sys_admin").unwrap();
        let net = CapSet::parse_list(&["net_admin", "net_raw"]).unwrap();
        let one = CapSet::of(admin);
        assert!(net.contains(admin) && net.contains(raw) && !net.contains(sys));
        assert!(!net.contains(Capability(200)));
        assert!(one.is_subset(net));
        assert!(!net.is_subset(one));
        assert!(CapSet::EMPTY.is_subset(CapSet::EMPTY));
        assert!(net.is_subset(CapSet::all()));
        assert_eq!(net.intersect(CapSet::of(sys)), CapSet::EMPTY);
        assert_eq!(net.intersect(one), one);
        assert_eq!(net.difference(one), CapSet::of(raw));
        assert_eq!(net.iter().collect::<Vec<_>>(), vec![admin, raw]);
        // A mask with bits beyond the table still counts as "all".
        assert!(CapSet(u64::MAX).is_all());
        assert!(!CapSet(CapSet::all().0 & !1).is_all());
    }
}
