//! The key a compiled policy snapshot ([`crate::snapshot`]) is stored under and checked
//! against: the identity of every policy file, as `fstat` reports it, without reading it.
//!
//! jitrun computes it on every run (through its checked walk of /etc/jitrun) and believes a
//! snapshot only when the key stored in it is byte for byte this one; `jitctl policy compile`
//! computes it the same way to build the snapshot ahead of time. Both write the lines through
//! this one type, so that they cannot drift apart.
//!
//! * A header names the key format, the snapshot format and the version of the tools.
//! * Then, in load order, one line per source: `policy.toml`, the `policy.d` directory itself
//!   (its times change when a file is added, removed or renamed), each `policy.d/*.toml`:
//!   device, inode, size, mtime and ctime in nanoseconds, and mode; or `absent`.
//! * Any edit changes a file's ctime, which nobody can set back; a snapshot is built only from
//!   files older than [`SETTLE`], so that two edits within one tick of the file system's clock
//!   cannot leave the times and size as they were (the "racy" case).

use std::fmt::Write as _;
use std::time::Duration;

/// Bump when the key's meaning changes.
pub const KEY_FORMAT: u32 = 2;

/// A snapshot is built only from sources whose mtime and ctime are at least this old.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What `fstat` says of one source (a regular file, or the drop-in directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Nanoseconds since the epoch (negative before it).
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    /// `st_mode`: the file type and the permission bits.
    pub mode: u32,
}

/// The key of a set of policy sources, built one source at a time in load order.
#[derive(Debug, Clone)]
pub struct SnapshotKey {
    text: String,
    newest_ns: i128,
}

impl Default for SnapshotKey {
    fn default() -> Self {
        SnapshotKey::new()
    }
}

impl SnapshotKey {
    pub fn new() -> SnapshotKey {
        SnapshotKey {
            text: format!(
                "jitrun policy cache {KEY_FORMAT}; snapshot format {}; jitrun {}\n",
                crate::snapshot::FORMAT,
                env!("CARGO_PKG_VERSION")
            ),
            newest_ns: i128::MIN,
        }
    }

    /// The next source: its absolute path (as jitrun names it) and its identity, `None` when
    /// it does not exist.
    pub fn source(&mut self, path: &str, id: Option<&SourceIdentity>) {
        match id {
            None => {
                let _ = writeln!(self.text, "{path} absent");
            }
            Some(st) => {
                let _ = writeln!(
                    self.text,
                    "{path} dev={} ino={} size={} mtime={} ctime={} mode={:o}",
                    st.dev, st.ino, st.size, st.mtime_ns, st.ctime_ns, st.mode
                );
                self.newest_ns = self.newest_ns.max(st.mtime_ns).max(st.ctime_ns);
            }
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The newest mtime or ctime of any source, in nanoseconds since the epoch.
    pub fn newest_ns(&self) -> i128 {
        self.newest_ns
    }

    /// How long after `now_ns` until every source is older than [`SETTLE`] (zero: settled).
    pub fn settles_in(&self, now_ns: i128) -> Duration {
        let settled_at = self.newest_ns.saturating_add(SETTLE.as_nanos() as i128);
        Duration::from_nanos(u64::try_from(settled_at.saturating_sub(now_ns)).unwrap_or(0))
    }
}

/// Is `name` a drop-in of `policy.d` (what jitrun loads): a `*.toml` name that is not hidden
/// and has something before the suffix. jitrun loads them in byte order of their names.
pub fn is_dropin_name(name: &str) -> bool {
    !name.starts_with('.') && name.len() > ".toml".len() && name.ends_with(".toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: i128) -> SourceIdentity {
        SourceIdentity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: t,
            ctime_ns: t + 5,
            mode: 0o100644,
        }
    }

    #[test]
    fn every_field_and_the_order_of_sources_count() {
        let key = |a: SourceIdentity, first: &str| {
            let mut k = SnapshotKey::new();
            k.source(first, Some(&a));
            k.source("/etc/jitrun/policy.d", None);
            k.bytes().to_vec()
        };
        let base = key(id(10), "/etc/jitrun/policy.toml");
        assert_eq!(base, key(id(10), "/etc/jitrun/policy.toml"));
        for changed in [
            SourceIdentity { dev: 9, ..id(10) },
            SourceIdentity { ino: 9, ..id(10) },
            SourceIdentity { size: 9, ..id(10) },
            SourceIdentity {
                mtime_ns: 9,
                ..id(10)
            },
            SourceIdentity {
                ctime_ns: 9,
                ..id(10)
            },
            SourceIdentity {
                mode: 0o100600,
                ..id(10)
            },
        ] {
            assert_ne!(base, key(changed, "/etc/jitrun/policy.toml"), "{changed:?}");
        }
        assert_ne!(base, key(id(10), "/etc/jitrun/policy.d/x.toml"));
        let text = String::from_utf8(base).unwrap();
        assert!(text.starts_with(&format!("jitrun policy cache {KEY_FORMAT}; ")));
        assert!(text.ends_with("/etc/jitrun/policy.d absent\n"), "{text}");
    }

    #[test]
    fn settled_two_seconds_after_the_newest_time() {
        let mut k = SnapshotKey::new();
        assert_eq!(
            k.settles_in(0),
            Duration::ZERO,
            "no source: nothing to wait for"
        );
        k.source("/a", Some(&id(1_000_000_000)));
        // newest is the ctime, 1 s + 5 ns
        assert_eq!(k.newest_ns(), 1_000_000_005);
        assert_eq!(k.settles_in(1_000_000_005), SETTLE);
        assert_eq!(
            k.settles_in(2_000_000_005),
            Duration::from_secs(1),
            "one second left"
        );
        assert_eq!(k.settles_in(3_000_000_005), Duration::ZERO);
        assert_eq!(k.settles_in(i128::MAX), Duration::ZERO);
    }

    #[test]
    fn dropin_names() {
        for ok in ["50-net.toml", "a.toml", "x.y.toml"] {
            assert!(is_dropin_name(ok), "{ok}");
        }
        for no in [
            ".toml",
            ".hidden.toml",
            "a.tom",
            "a.toml~",
            "a.toml.dpkg-new",
            "toml",
        ] {
            assert!(!is_dropin_name(no), "{no}");
        }
    }
}
