//! The open-file limit and the connection limit derived from it: every connection is a file
//! descriptor, and running out of them would also break the store (SQLite opens its WAL and
//! temporary files), the syslog socket and webhook deliveries. So the connection limit stays
//! [`RESERVED_FDS`] below `RLIMIT_NOFILE`, whose soft limit is first raised to the hard one.
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The largest request body the API and the web pages' forms read (64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Descriptors kept for everything but client connections: stdio, the listener, the store
/// (database, WAL, shared memory, temporary files), the syslog socket, webhook connections,
/// the runtime's own (epoll, eventfd), TLS files read at start.
pub const RESERVED_FDS: u64 = 256;

/// Below this many connections the broker would be unusable under any load: refuse to start.
pub const MIN_CONNECTIONS: u64 = 32;

/// The limit when `http.max_connections` is not set and the file limit allows more: ample for
/// a fleet's short calls (each a connection of its own for well under a second), and it
/// bounds the memory that held connections take (tens of KiB each).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 16384;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_nofile() -> Result<u64, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!(
                "jitbroker: cannot raise the open-file limit from {soft} to {hard}: {e}; keeping {soft}"
            );
            return Ok(soft);
        }
        return Ok(hard);
    }
    Ok(soft)
}

/// How many connections may be open at once with `nofile` descriptors; `configured` is
/// `http.max_connections` (0 = [`DEFAULT_MAX_CONNECTIONS`], or as many as fit if fewer).
pub fn connection_limit(configured: u32, nofile: u64) -> Result<usize, String> {
    let fit = nofile.saturating_sub(RESERVED_FDS);
    if fit < MIN_CONNECTIONS {
        return Err(format!(
            "the open-file limit (RLIMIT_NOFILE) is {nofile}: jitbroker keeps {RESERVED_FDS} descriptors for its store, syslog and webhooks and needs room for at least {MIN_CONNECTIONS} connections; raise it (LimitNOFILE= in the systemd unit, `ulimit -n` in a shell) to at least {}",
            RESERVED_FDS + MIN_CONNECTIONS
        ));
    }
    match u64::from(configured) {
        0 => Ok(fit.min(DEFAULT_MAX_CONNECTIONS) as usize),
        n if n > fit => Err(format!(
            "http.max_connections = {n} needs an open-file limit of at least {}, but RLIMIT_NOFILE is {nofile}; raise it (LimitNOFILE= in the systemd unit) or lower http.max_connections in broker.toml",
            n + RESERVED_FDS
        )),
        n => Ok(n as usize),
    }
}

/// How many revocation watches may be held at once with `connections` allowed;
/// `configured` is `http.max_watches` (0 = half of them). Each held watch is an open
/// connection: at least as many must stay for everything else.
pub fn watch_limit(configured: u32, connections: usize) -> Result<usize, String> {
    let half = connections / 2;
    match configured as usize {
        0 => Ok(half.max(1)),
        n if n > half => Err(format!(
            "http.max_watches = {n} would let revocation watches hold more than half of the {connections} connections the broker allows; lower it to at most {half}, or raise http.max_connections (and the open-file limit) to at least {}",
            2 * n
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_leave_half_the_connections_to_everything_else() {
        assert_eq!(watch_limit(0, 16384).unwrap(), 8192);
        assert_eq!(watch_limit(100, 16384).unwrap(), 100);
        assert_eq!(watch_limit(8192, 16384).unwrap(), 8192);
        let e = watch_limit(9000, 16384).unwrap_err();
        assert!(
            e.contains("max_watches = 9000") && e.contains("18000"),
            "{e}"
        );
    }

    #[test]
    fn the_limit_keeps_headroom_below_the_file_limit() {
        assert_eq!(connection_limit(0, 65536).unwrap(), 16384);
        assert_eq!(connection_limit(0, 1024).unwrap(), 768);
        assert_eq!(connection_limit(40000, 65536).unwrap(), 40000);
        assert_eq!(connection_limit(100, 1024).unwrap(), 100);
        let e = connection_limit(2000, 1024).unwrap_err();
        assert!(
            e.contains("max_connections = 2000") && e.contains("2256"),
            "{e}"
        );
        let e = connection_limit(0, 200).unwrap_err();
        assert!(
            e.contains("RLIMIT_NOFILE) is 200") && e.contains("LimitNOFILE"),
            "{e}"
        );
    }
}
