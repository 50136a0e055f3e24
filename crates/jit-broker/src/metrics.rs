//! `/metrics`, Prometheus text format 0.0.4.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<u16, u64>>,
    pub grants_issued: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_attempts_failed: AtomicU64,
    pub webhook_given_up: AtomicU64,
    pub syslog_sent: AtomicU64,
    pub syslog_failures: AtomicU64,
    connections_open: AtomicU64,
    connection_limit: AtomicU64,
    closed_header_timeout: AtomicU64,
    closed_idle_timeout: AtomicU64,
    web_signins: AtomicU64,
    web_signin_failures: AtomicU64,
}

/// Revocation watches at scrape time (watch.rs).
pub struct WatchGauges {
    pub held: u64,
    pub limit: u64,
    pub refused: u64,
    /// Revocation lists the store announced (PostgreSQL's NOTIFY, from any replica).
    pub announced: u64,
    /// The store's announcements are heard now.
    pub listening: bool,
}

/// Values read from the store at scrape time.
pub struct StoreGauges {
    pub requests_by_state: Vec<(String, u64)>,
    pub grants_total: u64,
    pub outbox: (u64, u64, u64),
    pub syslog_backlog: u64,
}

impl Metrics {
    pub fn http(&self, status: u16) {
        *self
            .http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn set_connection_limit(&self, limit: usize) {
        self.connection_limit.store(limit as u64, Ordering::Relaxed);
    }

    /// A connection was accepted; it counts as open until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// The watchdog closed a connection (header timeout, else idle timeout).
    pub fn connection_closed(&self, header_timeout: bool) {
        let counter = if header_timeout {
            &self.closed_header_timeout
        } else {
            &self.closed_idle_timeout
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A sign-in on the web pages finished (`ok`) or was refused.
    pub fn web_signin(&self, ok: bool) {
        let counter = if ok {
            &self.web_signins
        } else {
            &self.web_signin_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, g: &StoreGauges, w: &WatchGauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let states = ["pending", "approved", "denied", "cancelled", "expired"];
        metric(
            "jitbroker_requests",
            "gauge",
            "Requests in the store by state.",
            states
                .iter()
                .map(|s| {
                    let n = g
                        .requests_by_state
                        .iter()
                        .find(|(k, _)| k == s)
                        .map_or(0, |(_, n)| *n);
                    (format!("{{state=\"{s}\"}}"), n)
                })
                .collect(),
        );
        metric(
            "jitbroker_grants_issued_total",
            "counter",
            "Grants signed by this process since it started.",
            vec![(String::new(), self.grants_issued.load(Ordering::Relaxed))],
        );
        metric(
            "jitbroker_grants",
            "gauge",
            "Grants in the store.",
            vec![(String::new(), g.grants_total)],
        );
        metric(
            "jitbroker_webhook_deliveries_total",
            "counter",
            "Webhook deliveries accepted by their receiver (2xx).",
            vec![(
                String::new(),
                self.webhook_delivered.load(Ordering::Relaxed),
            )],
        );
        metric(
            "jitbroker_webhook_failures_total",
            "counter",
            "Webhook delivery attempts that failed (will be retried unless given up).",
            vec![(
                String::new(),
                self.webhook_attempts_failed.load(Ordering::Relaxed),
            )],
        );
        metric(
            "jitbroker_webhook_given_up_total",
            "counter",
            "Webhook deliveries given up after max_attempts.",
            vec![(String::new(), self.webhook_given_up.load(Ordering::Relaxed))],
        );
        metric(
            "jitbroker_outbox",
            "gauge",
            "Webhook deliveries in the outbox by state.",
            vec![
                ("{state=\"waiting\"}".into(), g.outbox.0),
                ("{state=\"delivered\"}".into(), g.outbox.1),
                ("{state=\"failed\"}".into(), g.outbox.2),
            ],
        );
        metric(
            "jitbroker_connections",
            "gauge",
            "Client connections open now.",
            vec![(String::new(), self.connections_open.load(Ordering::Relaxed))],
        );
        metric(
            "jitbroker_connection_limit",
            "gauge",
            "Most client connections open at once (http.max_connections, or the open-file limit minus the reserve).",
            vec![(
                String::new(),
                self.connection_limit.load(Ordering::Relaxed),
            )],
        );
        metric(
            "jitbroker_revocation_watches",
            "gauge",
            "Revocation watches (GET /v1/revocations?after_seq=N) held open now.",
            vec![(String::new(), w.held)],
        );
        metric(
            "jitbroker_revocation_watch_limit",
            "gauge",
            "Most revocation watches held at once (http.max_watches, or half the connection limit).",
            vec![(String::new(), w.limit)],
        );
        metric(
            "jitbroker_revocation_watches_refused_total",
            "counter",
            "Revocation watches answered 429 because the limit was held.",
            vec![(String::new(), w.refused)],
        );
        metric(
            "jitbroker_revocation_announcements_total",
            "counter",
            "New revocation lists announced by the store (PostgreSQL NOTIFY, from any replica), each waking this replica's watchers.",
            vec![(String::new(), w.announced)],
        );
        metric(
            "jitbroker_revocation_listener_up",
            "gauge",
            "1 while this replica hears the store's announcements of new revocation lists (PostgreSQL LISTEN); 0 on SQLite, or while the listening connection is down.",
            vec![(String::new(), u64::from(w.listening))],
        );
        metric(
            "jitbroker_connections_closed_total",
            "counter",
            "Connections the server closed because the client stalled.",
            vec![
                (
                    "{reason=\"header_timeout\"}".into(),
                    self.closed_header_timeout.load(Ordering::Relaxed),
                ),
                (
                    "{reason=\"idle_timeout\"}".into(),
                    self.closed_idle_timeout.load(Ordering::Relaxed),
                ),
            ],
        );
        metric(
            "jitbroker_syslog_backlog",
            "gauge",
            "Syslog events committed but not yet sent (they wait in the store).",
            vec![(String::new(), g.syslog_backlog)],
        );
        metric(
            "jitbroker_syslog_sent_total",
            "counter",
            "Syslog events sent by this process.",
            vec![(String::new(), self.syslog_sent.load(Ordering::Relaxed))],
        );
        metric(
            "jitbroker_syslog_failures_total",
            "counter",
            "Attempts to send a syslog event that the socket refused (retried).",
            vec![(String::new(), self.syslog_failures.load(Ordering::Relaxed))],
        );
        metric(
            "jitbroker_web_signins_total",
            "counter",
            "Sign-ins on the web pages, by outcome (refused: the provider, the state, the ID token or the claims).",
            vec![
                ("{outcome=\"ok\"}".into(), self.web_signins.load(Ordering::Relaxed)),
                (
                    "{outcome=\"refused\"}".into(),
                    self.web_signin_failures.load(Ordering::Relaxed),
                ),
            ],
        );
        let http: Vec<(String, u64)> = self
            .http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(code, n)| (format!("{{status=\"{code}\"}}"), *n))
            .collect();
        metric(
            "jitbroker_http_requests_total",
            "counter",
            "HTTP requests answered, by status.",
            http,
        );
        out
    }
}

/// An open connection, for the `jitbroker_connections` gauge.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}
