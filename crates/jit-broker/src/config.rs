//! broker.toml (docs/broker.md): identity, listen address, store, key, workflows, webhooks.
use crate::windows::Window;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the broker settings: {source}; write one (see docs/broker.md) or run `jitbroker init`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    jit_policy::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn default_listen() -> String {
    "127.0.0.1:7443".into()
}
fn default_store() -> String {
    "/var/lib/jitbroker/broker.db".into()
}
fn default_key() -> PathBuf {
    "/var/lib/jitbroker/signing.key".into()
}
fn default_admins() -> Vec<String> {
    vec!["jitadmin".into()]
}
fn default_pending() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_refresh() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `iss` of grants and revocation lists.
    pub id: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A SQLite file (`/path` or `sqlite:/path`) or a PostgreSQL URL without a password
    /// (`postgres://user@host:port/db`); see [`StoreLocation`].
    #[serde(default = "default_store")]
    pub store: String,
    /// `store` parsed (by [`Config::parse`]).
    #[serde(skip)]
    pub store_location: StoreLocation,
    /// This process's name among the replicas sharing the store (its queued syslog events
    /// are its own); default `HOSTNAME:PORT` of `listen`.
    #[serde(default)]
    pub replica: Option<String>,
    #[serde(default)]
    pub postgres: PostgresSettings,
    /// How long a replica's claim on a batch of webhook deliveries holds: a replica that dies
    /// in the middle of a batch leaves the rest to the others after this.
    #[serde(default = "default_webhook_lease", deserialize_with = "de_duration")]
    pub webhook_lease: Duration,
    #[serde(default = "default_key")]
    pub signing_key: PathBuf,
    #[serde(default = "default_admins")]
    pub admin_groups: Vec<String>,
    #[serde(default = "default_pending", deserialize_with = "de_duration")]
    pub pending_expiry: Duration,
    /// The revocation list is re-signed (new `iat`) when older than this.
    #[serde(default = "default_refresh", deserialize_with = "de_duration")]
    pub revocations_refresh: Duration,
    /// Hosts (names or globs) from which approver and admin roles count; empty = any
    /// enrolled host. A workflow's own `approver_hosts` replaces it for its approvals.
    #[serde(default)]
    pub approver_hosts: Vec<String>,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub workflow: Vec<Workflow>,
    #[serde(default)]
    pub webhook: Vec<Webhook>,
    /// The approvers' web pages under /ui/, signed in through OpenID Connect (web.rs).
    #[serde(default)]
    pub web: Option<WebSettings>,
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`, key=value pairs after `?`), never
    /// with a password in it: that comes from `[postgres] password_file` or
    /// `$JITBROKER_STORE_PASSWORD`.
    Postgres(String),
}

impl Default for StoreLocation {
    fn default() -> Self {
        StoreLocation::Sqlite(default_store().into())
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "{}", p.display()),
            StoreLocation::Postgres(url) => f.write_str(url),
        }
    }
}

/// The environment variable that may hold the PostgreSQL password.
pub const PASSWORD_ENV: &str = "JITBROKER_STORE_PASSWORD";

impl StoreLocation {
    /// `store` as broker.toml or `jitbroker migrate` gives it. `what` names the setting in
    /// messages.
    pub fn parse(text: &str, what: &str) -> Result<StoreLocation, String> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let parsed: tokio_postgres::Config = text.parse().map_err(|e| {
                format!("{what}: not a PostgreSQL URL ({e}); e.g. postgres://jitbroker@db1.example.org:5432/jitbroker")
            })?;
            if parsed.get_password().is_some() {
                return Err(format!("{what}: the URL holds a password; remove it from the URL and put it in a file named by [postgres] password_file (mode 0600 or 0640, owned by root) or in ${PASSWORD_ENV}, so that it never shows in settings, logs or messages"));
            }
            if parsed.get_dbname().is_none() {
                return Err(format!(
                    "{what}: name the database in the URL (postgres://USER@HOST/DATABASE)"
                ));
            }
            return Ok(StoreLocation::Postgres(text.to_string()));
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        if path.is_empty() || path.contains("://") {
            return Err(format!(
                "{what}: {text:?} is neither a file path (sqlite:/var/lib/jitbroker/broker.db) nor a postgres:// URL"
            ));
        }
        Ok(StoreLocation::Sqlite(path.into()))
    }
}

/// `[postgres]`: how to reach a PostgreSQL store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// A file holding the password (one line; not readable by others).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the server with: TLS to PostgreSQL (required when set).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// How long to wait for a connection (from the pool, or a new one to the server).
    #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Hear other replicas' revocations at once (a connection of its own that LISTENs);
    /// false where LISTEN does not work (a transaction-pooling PgBouncer in between): then
    /// the once-a-second look at the store alone brings them.
    #[serde(default = "default_notifications")]
    pub notifications: bool,
}

fn default_notifications() -> bool {
    true
}

fn default_webhook_lease() -> Duration {
    Duration::from_secs(60)
}

/// The shortest `webhook_lease`: one POST (its 10 s timeout) and a margin must fit.
pub const MIN_WEBHOOK_LEASE: Duration = Duration::from_secs(20);

fn default_pool_size() -> u32 {
    16
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            password_file: None,
            ca_file: None,
            pool_size: default_pool_size(),
            connect_timeout: default_connect_timeout(),
            notifications: default_notifications(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Connection handling (`[http]`): what a client may hold and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// A request's head must arrive within this after the connection opens (or after the
    /// first byte of a later request), and its body within this after the head.
    #[serde(default = "default_header_timeout", deserialize_with = "de_duration")]
    pub header_timeout: Duration,
    /// A connection with no request in progress (keep-alive between requests, or a
    /// response the client does not read) is closed after this.
    #[serde(default = "default_idle_timeout", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once; 0 = 16384, or as many as the open-file limit allows
    /// (minus what the store, syslog and webhooks need) if that is fewer.
    #[serde(default)]
    pub max_connections: u32,
    /// Longest a revocation watch (`GET /v1/revocations?after_seq=N`) is held open before it
    /// is answered with the unchanged list; a client's `wait` may ask for less.
    #[serde(default = "default_watch_hold", deserialize_with = "de_duration")]
    pub watch_hold: Duration,
    /// Most revocation watches held at once; 0 = half the connection limit.
    #[serde(default)]
    pub max_watches: u32,
    /// Most revocation watches held at once for callers attested from one host (its watch
    /// service needs one; a restart may leave the old one held until its hold ends).
    #[serde(default = "default_watches_per_host")]
    pub max_watches_per_host: u32,
}

/// The longest `http.watch_hold` accepted.
pub const MAX_WATCH_HOLD: Duration = Duration::from_secs(300);

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(75)
}
fn default_watch_hold() -> Duration {
    Duration::from_secs(50)
}
fn default_watches_per_host() -> u32 {
    4
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: 0,
            watch_hold: default_watch_hold(),
            max_watches: 0,
            max_watches_per_host: default_watches_per_host(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// syslog socket (unix datagram); events that cannot be sent are reported on stderr
    /// (the hash-chained audit table holds every event regardless).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_framing")]
    pub framing: String,
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
}

fn default_socket() -> PathBuf {
    jit_audit::DEFAULT_SOCKET.into()
}
fn default_framing() -> String {
    "cee".into()
}
fn default_sd_id() -> String {
    jit_audit::DEFAULT_SD_ID.into()
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            socket: default_socket(),
            framing: default_framing(),
            sd_id: default_sd_id(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApprove {
    pub groups: Vec<String>,
    /// UTC windows such as "Mon-Fri 09:00-18:00"; none = always.
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(skip)]
    pub parsed: Vec<Window>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// Rule names or globs.
    pub rules: Vec<String>,
    /// Groups that may request.
    pub requesters: Vec<String>,
    /// Groups that approve.
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default = "one")]
    pub min_approvals: u32,
    #[serde(deserialize_with = "de_duration")]
    pub max_ttl: Duration,
    /// Hosts (globs) a grant may name; empty = only the requesting host.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub auto_approve: Option<AutoApprove>,
    #[serde(default)]
    pub break_glass: bool,
    /// Hosts from which this workflow's approvals and denials count (replaces the
    /// top-level `approver_hosts`).
    #[serde(default)]
    pub approver_hosts: Option<Vec<String>>,
}

/// `[web]`: the pages under /ui/ and the OpenID Connect provider people sign in with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// The broker's address as browsers reach it (`https://broker.example.com`): links in
    /// webhook payloads, the default redirect URL, the Origin that forms must come from.
    pub public_url: String,
    /// The provider's issuer URL (discovery: `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (the broker's user only: mode 0600 or stricter).
    pub client_secret_file: PathBuf,
    /// Where the provider sends the browser back; registered with the provider. Default:
    /// `{public_url}/ui/callback`. Its path must be `/ui/callback`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that names the person.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// How the Unix user name is made from that claim: `{claim}` is its value, `{local}` the part
    /// before its last `@` (then `email_domains` must name the domains after it).
    #[serde(default = "default_user_template")]
    pub user_template: String,
    /// With `{local}`: the only domains whose addresses map to user names.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Claim value → Unix user name; wins over `user_template`.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, String>,
    /// The ID token claim that lists the person's groups at the provider.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Provider group → the broker's groups (those `approvers`, `requesters` and
    /// `admin_groups` name). Provider groups not listed here give nothing.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// A session ends after this long without a page being loaded ...
    #[serde(default = "default_session_idle", deserialize_with = "de_duration")]
    pub session_idle: Duration,
    /// ... and this long after sign-in in any case.
    #[serde(default = "default_session_lifetime", deserialize_with = "de_duration")]
    pub session_lifetime: Duration,
    /// Link for tickets: `https://tracker.example.com/browse/{ticket}`.
    #[serde(default)]
    pub ticket_url: Option<String>,
    /// PEM file of CA certificates for the provider's TLS (besides the built-in roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}
fn default_user_claim() -> String {
    "preferred_username".into()
}
fn default_user_template() -> String {
    "{claim}".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_session_idle() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_session_lifetime() -> Duration {
    Duration::from_secs(8 * 3600)
}

impl WebSettings {
    /// The redirect URL (configured, or `{public_url}/ui/callback`).
    pub fn redirect_url(&self) -> String {
        self.redirect_url
            .clone()
            .unwrap_or_else(|| format!("{}/ui/callback", self.public_url))
    }

    /// Served to browsers over https (cookies get `Secure` and the `__Host-` prefix).
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The page of request `id`.
    pub fn request_link(&self, id: &str) -> String {
        format!("{}/ui/requests/{id}", self.public_url)
    }
}

/// A URL the broker puts in links, redirects and headers: http(s), a host, no credentials, and
/// nothing that would end a link in chat text or a header (whitespace, quotes, `<>|\^`).
fn check_url(at: &str, url: &str, loopback_http: bool) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !(loopback_http && matches!(name, "127.0.0.1" | "localhost" | "[::1]")) {
            return Err(format!("{at}: {url:?} must be https:// (plain http only on 127.0.0.1, localhost or [::1], for tests)"));
        }
        r
    } else {
        return Err(format!("{at}: {url:?} is not an http(s) URL"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!(
            "{at}: {url:?} has no host, or has credentials in it"
        ));
    }
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'<>|\\^`{}".contains(*c))
    {
        return Err(format!("{at}: {url:?} contains {c:?}"));
    }
    Ok(())
}

fn check_web(web: &mut WebSettings) -> Result<(), String> {
    web.public_url = web.public_url.trim_end_matches('/').to_string();
    check_url("web.public_url", &web.public_url, true)?;
    if web
        .public_url
        .splitn(4, '/')
        .nth(3)
        .is_some_and(|p| !p.is_empty())
    {
        return Err(format!("web.public_url: {:?} must be the broker's origin, without a path (the pages are under /ui/)", web.public_url));
    }
    web.issuer = web.issuer.trim_end_matches('/').to_string();
    check_url("web.issuer", &web.issuer, true)?;
    let redirect = web.redirect_url();
    check_url("web.redirect_url", &redirect, true)?;
    if !redirect.ends_with("/ui/callback") {
        return Err(format!("web.redirect_url: {redirect:?} must end in /ui/callback (where the broker takes the provider's answer)"));
    }
    if web.client_id.trim().is_empty() {
        return Err(
            "web.client_id is empty; give the client id registered with the provider".into(),
        );
    }
    for (key, claim) in [
        ("web.user_claim", &web.user_claim),
        ("web.groups_claim", &web.groups_claim),
    ] {
        if claim.trim().is_empty() {
            return Err(format!("{key} is empty; name an ID token claim"));
        }
    }
    if !web.user_template.contains("{claim}") && !web.user_template.contains("{local}") {
        return Err(format!(
            "web.user_template {:?} uses neither {{claim}} nor {{local}}",
            web.user_template
        ));
    }
    if web.user_template.contains("{local}") && web.email_domains.is_empty() {
        return Err("web.user_template uses {local} (the part before @): name the domains whose addresses may sign in with web.email_domains, else alice@anywhere would be alice".into());
    }
    web.email_domains = web
        .email_domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    for (claim, user) in &web.users {
        if !jit_grant::valid_user_name(user) {
            return Err(format!(
                "web.users: {claim:?} maps to {user:?}, which is not a user name"
            ));
        }
    }
    if let Some(t) = &web.ticket_url {
        if !t.contains("{ticket}") {
            return Err(format!("web.ticket_url {t:?} has no {{ticket}}"));
        }
        check_url("web.ticket_url", &t.replace("{ticket}", "T"), false)?;
    }
    let second = Duration::from_secs(1);
    if web.session_idle < second || web.session_lifetime < second {
        return Err("web.session_idle and web.session_lifetime must be at least 1s".into());
    }
    if web.session_idle > web.session_lifetime {
        return Err("web.session_idle is longer than web.session_lifetime".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFormat {
    Json,
    Slack,
}

fn default_attempts() -> u32 {
    12
}
fn default_backoff() -> Option<Duration> {
    Some(Duration::from_secs(1))
}
fn default_max_backoff() -> Option<Duration> {
    Some(Duration::from_secs(300))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default = "default_format")]
    pub format: HookFormat,
    /// Event types to send; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts before a delivery is given up (then counted as failed).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay, doubled each attempt up to `max_backoff`.
    #[serde(default = "default_backoff", deserialize_with = "de_opt_duration")]
    pub backoff: Option<Duration>,
    #[serde(default = "default_max_backoff", deserialize_with = "de_opt_duration")]
    pub max_backoff: Option<Duration>,
}

fn default_format() -> HookFormat {
    HookFormat::Json
}

impl Webhook {
    /// Without `events`, every event but sign-ins and sign-outs (`session.*`: named only).
    pub fn wants(&self, event: &str) -> bool {
        if self.events.is_empty() {
            return !event.starts_with("session.");
        }
        self.events.iter().any(|e| e == event)
    }
    /// Delay before attempt number `attempts + 1` (attempts already made ≥ 1).
    pub fn delay(&self, attempts: u32) -> Duration {
        let base = self.backoff.unwrap_or(Duration::from_secs(1));
        let max = self.max_backoff.unwrap_or(Duration::from_secs(300));
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(max)
    }
}

/// Event types a webhook may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "request.create",
    "request.approve",
    "request.deny",
    "request.cancel",
    "request.expire",
    "grant.issue",
    "grant.revoke",
    "break_glass",
    "grant.seal",
    "grant.sealed_use",
    "host.enroll",
    "host.enroll_token",
    "host.retire",
    "session.start",
    "session.end",
];

impl Workflow {
    pub fn covers(&self, rule: &str) -> bool {
        self.rules
            .iter()
            .any(|g| jit_policy::glob::glob_match(g.as_bytes(), rule.as_bytes()))
    }
}

/// Does `groups` share a member with `allowed`?
pub fn in_any(groups: &[String], allowed: &[String]) -> bool {
    groups.iter().any(|g| allowed.contains(g))
}

/// Does `host` match one of `patterns` (names or globs)? An empty list allows every host.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| jit_policy::glob::glob_match(p.as_bytes(), host.as_bytes()))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if config.id.trim().is_empty() {
            return Err(invalid("id: the broker id (iss of grants) is empty".into()));
        }
        if config.audit.framing.parse::<jit_audit::Framing>().is_err() {
            return Err(invalid(format!(
                "audit.framing: {:?} is not \"cee\" or \"rfc5424\"",
                config.audit.framing
            )));
        }
        check_http(&config.http).map_err(&invalid)?;
        if let Some(web) = &mut config.web {
            check_web(web).map_err(&invalid)?;
            if config.tls.is_some() && !web.secure() {
                return Err(invalid(format!("web.public_url {:?} must be https:// when the broker serves TLS ([tls]): browsers reach it over https, and its cookies must be Secure", web.public_url)));
            }
        }
        config.store_location = StoreLocation::parse(&config.store, "store").map_err(&invalid)?;
        if config.webhook_lease < MIN_WEBHOOK_LEASE {
            return Err(invalid(format!(
                "webhook_lease must be at least {}s (a POST may take 10s)",
                MIN_WEBHOOK_LEASE.as_secs()
            )));
        }
        if config.postgres.pool_size == 0 || config.postgres.pool_size > 1000 {
            return Err(invalid(
                "postgres.pool_size must be between 1 and 1000".into(),
            ));
        }
        if let Some(r) = &config.replica {
            if r.is_empty() || r.len() > 200 || r.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    "replica: a name of 1 to 200 printable characters".into(),
                ));
            }
        }
        check_host_patterns("approver_hosts", &config.approver_hosts).map_err(&invalid)?;
        for (i, wf) in config.workflow.iter_mut().enumerate() {
            check_workflow(i, wf).map_err(&invalid)?;
        }
        for (i, hook) in config.webhook.iter().enumerate() {
            check_webhook(i, hook).map_err(&invalid)?;
        }
        Ok(config)
    }

    /// Hosts from which approvals for `wf` count.
    pub fn approver_hosts_for<'a>(&'a self, wf: &'a Workflow) -> &'a [String] {
        wf.approver_hosts.as_deref().unwrap_or(&self.approver_hosts)
    }

    /// The first workflow covering `rule`.
    pub fn workflow_for(&self, rule: &str) -> Option<&Workflow> {
        self.workflow.iter().find(|w| w.covers(rule))
    }

    pub fn is_admin(&self, groups: &[String]) -> bool {
        in_any(groups, &self.admin_groups)
    }

    /// This process's replica name: `replica`, else `HOSTNAME:PORT` (the port of `listen`).
    pub fn replica_name(&self, hostname: &str) -> String {
        if let Some(r) = &self.replica {
            return r.clone();
        }
        let port = self.listen.rsplit(':').next().unwrap_or("");
        format!("{hostname}:{port}")
    }

    /// The public key file written next to the signing key.
    pub fn public_key_path(&self) -> PathBuf {
        self.signing_key.with_extension("pub")
    }
}

/// `[[workflow]]` number `i` (from 0): the message of its first mistake.
fn check_workflow(i: usize, wf: &mut Workflow) -> Result<(), String> {
    let at = format!("workflow #{} (rules {:?})", i + 1, wf.rules);
    if wf.rules.is_empty() {
        return Err(format!("{at}: rules is empty"));
    }
    if wf.requesters.is_empty() {
        return Err(format!(
            "{at}: requesters is empty; name the groups that may request"
        ));
    }
    if wf.min_approvals > 0 && wf.approvers.is_empty() {
        return Err(format!(
            "{at}: min_approvals is {} but approvers is empty; name the approving groups",
            wf.min_approvals
        ));
    }
    if wf.max_ttl.is_zero() {
        return Err(format!("{at}: max_ttl must be positive"));
    }
    check_host_patterns(&format!("{at}: hosts"), &wf.hosts)?;
    if let Some(hosts) = &wf.approver_hosts {
        if hosts.is_empty() {
            return Err(format!("{at}: approver_hosts is empty: nobody could approve; name the approvers' hosts or leave it out"));
        }
        check_host_patterns(&format!("{at}: approver_hosts"), hosts)?;
    }
    if let Some(auto) = &mut wf.auto_approve {
        if auto.groups.is_empty() {
            return Err(format!("{at}: auto_approve.groups is empty"));
        }
        auto.parsed = auto
            .windows
            .iter()
            .map(|w| Window::parse(w).map_err(|e| format!("{at}: auto_approve.windows: {e}")))
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// `[[webhook]]` number `i` (from 0): the message of its first mistake.
fn check_webhook(i: usize, hook: &Webhook) -> Result<(), String> {
    let at = format!("webhook #{} ({})", i + 1, hook.url);
    if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
        return Err(format!("{at}: url must start with http:// or https://"));
    }
    if let Some(bad) = hook
        .events
        .iter()
        .find(|e| !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(format!(
            "{at}: unknown event {bad:?}; known: {}",
            EVENT_TYPES.join(", ")
        ));
    }
    if hook.max_attempts == 0 {
        return Err(format!("{at}: max_attempts must be at least 1"));
    }
    Ok(())
}

fn check_http(http: &HttpSettings) -> Result<(), String> {
    let second = Duration::from_secs(1);
    if http.header_timeout < second {
        return Err("http.header_timeout must be at least 1s".into());
    }
    if http.idle_timeout < second {
        return Err("http.idle_timeout must be at least 1s".into());
    }
    if http.max_watches_per_host == 0 {
        return Err("http.max_watches_per_host must be at least 1".into());
    }
    if http.watch_hold < second || http.watch_hold > MAX_WATCH_HOLD {
        return Err(format!(
            "http.watch_hold must be between 1s and {}",
            jit_policy::format_duration(MAX_WATCH_HOLD)
        ));
    }
    Ok(())
}

/// Host names or globs (letters, digits, `.`, `_`, `-`, `*`, `?`, `[...]`).
fn check_host_patterns(at: &str, patterns: &[String]) -> Result<(), String> {
    for p in patterns {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-*?[]!".contains(&b));
        if !ok {
            return Err(format!(
                "{at}: {p:?} is not a host name or glob (letters, digits, . _ - * ? [ ])"
            ));
        }
    }
    Ok(())
}

/// A first broker.toml, written by `jitbroker init` when none exists.
pub fn default_config_text(id: &str) -> String {
    format!(
        r#"# jitbroker settings: see docs/broker.md
id = "{id}"
listen = "127.0.0.1:7443"
store = "/var/lib/jitbroker/broker.db"
signing_key = "/var/lib/jitbroker/signing.key"
admin_groups = ["jitadmin"]
pending_expiry = "24h"

# [[workflow]]
# rules = ["net-*"]
# requesters = ["netops"]
# approvers = ["netleads"]
# min_approvals = 1
# max_ttl = "1h"
"#
    )
}

/// This machine's name (the kernel's), or "localhost".
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = r#"
id = "broker-1"
listen = "127.0.0.1:7443"
store = "/var/lib/jitbroker/broker.db"
signing_key = "/var/lib/jitbroker/signing.key"
admin_groups = ["jitadmin"]
pending_expiry = "24h"

[tls]
cert = "/etc/jitbroker/tls.crt"
key = "/etc/jitbroker/tls.key"

[[workflow]]
rules = ["net-*"]
requesters = ["netops"]
approvers = ["netleads"]
min_approvals = 1
max_ttl = "1h"
hosts = ["web*"]
auto_approve = { groups = ["oncall"], windows = ["Mon-Fri 09:00-18:00"] }
break_glass = false

[[webhook]]
url = "http://127.0.0.1:9000/hook"
format = "json"
events = ["request.create", "request.approve", "grant.issue", "grant.revoke", "break_glass"]
"#;
        let c = Config::parse(text, Path::new("broker.toml")).unwrap();
        assert_eq!(c.id, "broker-1");
        assert_eq!(c.workflow[0].max_ttl, Duration::from_secs(3600));
        assert_eq!(c.workflow[0].auto_approve.as_ref().unwrap().parsed.len(), 1);
        assert!(c.workflow_for("net-debug").is_some());
        assert!(c.workflow_for("db-admin").is_none());
        assert_eq!(c.webhook[0].format, HookFormat::Json);
        assert_eq!(c.webhook[0].delay(1), Duration::from_secs(1));
        assert_eq!(c.webhook[0].delay(3), Duration::from_secs(4));
        assert_eq!(c.webhook[0].delay(30), Duration::from_secs(300));
    }

    #[test]
    fn errors_name_the_place() {
        let e = Config::parse("id = \"b\"\nbogus = 1\n", Path::new("/x/broker.toml")).unwrap_err();
        assert!(
            e.to_string().contains("/x/broker.toml") && e.to_string().contains("bogus"),
            "{e}"
        );
        let e = Config::parse(
            "id = \"b\"\n[[workflow]]\nrules=[\"a\"]\nrequesters=[\"g\"]\nmax_ttl=\"1h\"\n",
            Path::new("b.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("approvers is empty"), "{e}");
        let e = Config::parse(
            "id = \"b\"\n[[webhook]]\nurl=\"http://x\"\nevents=[\"nope\"]\n",
            Path::new("b.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown event \"nope\""), "{e}");
    }

    #[test]
    fn store_locations() {
        let parse = |s| StoreLocation::parse(s, "store");
        assert_eq!(
            parse("/var/lib/jitbroker/broker.db"),
            Ok(StoreLocation::Sqlite("/var/lib/jitbroker/broker.db".into()))
        );
        assert_eq!(
            parse("sqlite:/x/b.db"),
            Ok(StoreLocation::Sqlite("/x/b.db".into()))
        );
        assert_eq!(
            parse("postgres://jb@db1:5432/jitbroker"),
            Ok(StoreLocation::Postgres(
                "postgres://jb@db1:5432/jitbroker".into()
            ))
        );
        let e = parse("postgres://jb:s3cret@db1/jitbroker").unwrap_err();
        assert!(e.contains("password_file") && !e.contains("s3cret"), "{e}");
        assert!(parse("postgres://jb@db1").unwrap_err().contains("database"));
        assert!(parse("mysql://x/y").is_err());
        let c = Config::parse(
            "id = \"b\"\nlisten = \"0.0.0.0:7443\"\nstore = \"postgres://jb@db1/j\"\n[postgres]\npassword_file = \"/etc/jitbroker/pg\"\n",
            Path::new("b.toml"),
        )
        .unwrap();
        assert!(matches!(c.store_location, StoreLocation::Postgres(_)));
        assert_eq!(c.replica_name("h1"), "h1:7443");
        assert!(
            c.postgres.notifications,
            "replicas hear each other's revocations by default"
        );
        let c = Config::parse(
            "id = \"b\"\nstore = \"postgres://jb@db1/j\"\n[postgres]\nnotifications = false\n",
            Path::new("b.toml"),
        )
        .unwrap();
        assert!(!c.postgres.notifications);
    }
}
