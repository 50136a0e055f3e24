//! Linux capability names and sets.
//!
//! Names are case-insensitive and the `CAP_` prefix is optional (`net_raw`,
//! `CAP_NET_RAW`). `ALL` means every capability the table knows. The table
//! covers capabilities 0..=40 (CAP_CHECKPOINT_RESTORE); the kernel's
//! `cap_last_cap` may be lower, and jitrun intersects with it at run time.

/// One capability by number (as in linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(pub u8);

/// A set of capabilities as a 64-bit mask (bit N = capability N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CapSet(pub u64);

impl Capability {
    /// Parse one name: case-insensitive, `CAP_` optional. Not `ALL`.
    pub fn parse(name: &str) -> Result<Capability, crate::PolicyError> { todo!() }
    /// Canonical upper-case name with prefix, e.g. `CAP_NET_ADMIN`.
    pub fn name(self) -> &'static str { todo!() }
}

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);
    /// Every capability of the table (0..=LAST).
    pub fn all() -> CapSet { todo!() }
    /// Parse a list of names; `ALL` (any case) alone or among others means [`CapSet::all`].
    /// Errors name the offending entry.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<CapSet, crate::PolicyError> { todo!() }
    pub fn contains(self, c: Capability) -> bool { todo!() }
    pub fn is_subset(self, other: CapSet) -> bool { todo!() }
    pub fn intersect(self, other: CapSet) -> CapSet { todo!() }
    pub fn is_empty(self) -> bool { todo!() }
    pub fn is_all(self) -> bool { todo!() }
    /// Canonical names in numeric order.
    pub fn names(self) -> Vec<&'static str> { todo!() }
    pub fn iter(self) -> impl Iterator<Item = Capability> { (0u8..64).filter(move |b| self.0 & (1u64 << b) != 0).map(Capability) }
}
