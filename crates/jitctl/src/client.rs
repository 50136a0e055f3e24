//! Talking to the broker: `client.toml`, the attestation every call carries, HTTP, and the
//! broker's JSON errors.
//!
//! Every call hashes its exact body (SHA-256), asks the setuid `jitrun attest` (no network)
//! to sign who is asking, from which host, for this method, path and body, and sends the
//! token as `Authorization: JitAttest <token>` (docs/broker.md).

use crate::error::{io_error, CliError, Result};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const SYSTEM_CONFIG: &str = "/etc/jitrun/client.toml";
pub const DEFAULT_JITRUN: &str = "/usr/bin/jitrun";
/// Longest answer read from the broker.
const MAX_RESPONSE: u64 = 16 << 20;

/// `client.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `http://host:port` or `https://…`, or a list of them: tried in order.
    pub broker: Option<BrokerUrls>,
    /// PEM file with the CA certificate(s) that sign the broker's TLS certificate.
    pub ca: Option<PathBuf>,
    /// The setuid jitrun that makes attestations.
    pub jitrun: Option<PathBuf>,
}

/// `broker` in client.toml: one URL or several (replicas, tried in order).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum BrokerUrls {
    One(String),
    Many(Vec<String>),
}

impl BrokerUrls {
    pub fn list(&self) -> Vec<String> {
        match self {
            BrokerUrls::One(u) => vec![u.clone()],
            BrokerUrls::Many(v) => v.clone(),
        }
    }
}

impl ClientConfig {
    pub fn parse(name: &Path, text: &str) -> Result<ClientConfig> {
        toml::from_str(text).map_err(|e| {
            CliError(format!(
                "{}: {}; it holds broker = \"https://HOST:PORT\" (or a list of them, tried in order), optionally ca = \"/path/ca.pem\" and jitrun = \"/usr/bin/jitrun\"",
                name.display(),
                e.to_string().trim_end()
            ))
        })
    }
}

/// The caller's home directory, from the user database (as jitrun finds the grant store).
pub fn home_dir() -> Result<PathBuf> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.dir),
        _ => Err(CliError(format!(
            "uid {uid} has no entry in the user database"
        ))),
    }
}

/// `~/.config/jitrun/client.toml`, else `/etc/jitrun/client.toml`; (path, config).
pub fn load_config() -> Result<(Option<PathBuf>, ClientConfig)> {
    let mut candidates = Vec::new();
    if let Ok(home) = home_dir() {
        candidates.push(home.join(".config/jitrun/client.toml"));
    }
    candidates.push(PathBuf::from(SYSTEM_CONFIG));
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((Some(path.clone()), ClientConfig::parse(&path, &text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("cannot read", &path, &e)),
        }
    }
    Ok((
        None,
        ClientConfig {
            broker: None,
            ca: None,
            jitrun: None,
        },
    ))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A string field ("" when absent or not a string).
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Ids go into URL paths: refuse anything but ULID/UUID characters.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(CliError(format!(
            "{id:?} is not a {what} id (letters, digits and '-'; `jitctl requests` and `jitctl grants` show them)"
        )));
    }
    Ok(())
}

/// How long a connection to one broker may take (resolve, connect, TLS) before the next
/// URL is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one call may take in all (a revocation watch: its hold plus this).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The brokers of client.toml (or `--broker`), in order, and how to reach them.
pub struct Broker {
    bases: Vec<String>,
    jitrun: PathBuf,
    agent: ureq::Agent,
    /// Which URL answered last: the next call starts there (a dead first URL costs its
    /// connect timeout once per process, not once per call).
    first: std::cell::Cell<usize>,
}

/// Base URL: scheme http/https, no query, no trailing slash.
fn check_base(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(hostport) if !hostport.is_empty() && !hostport.contains(['?', '#', ' ', ',']) => {
            Ok(url.to_string())
        }
        _ => Err(CliError(format!(
            "broker URL {url:?}: expected http://HOST:PORT or https://HOST:PORT"
        ))),
    }
}

/// One answer: which broker gave it, the status, the body, and `Retry-After` (seconds).
#[derive(Debug)]
pub struct Reply {
    pub base: String,
    pub status: u16,
    pub text: String,
    pub retry_after: Option<u64>,
}

/// Why a broker gave no usable answer.
enum Failure {
    /// Nothing reached it (no connection, no TLS session): any call may go to the next URL.
    NotSent(String),
    /// The call may have reached it: only a read goes to the next URL.
    Lost(String),
}

/// Errors that happen before a request is sent: connecting, resolving, TLS.
fn failure(e: ureq::Error) -> Failure {
    use std::io::ErrorKind as K;
    let text = e.to_string();
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_) => Failure::NotSent(text),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::AddrNotAvailable
            ) =>
        {
            Failure::NotSent(text)
        }
        _ => Failure::Lost(text),
    }
}

/// Answers after which a call goes to the next broker: it is not ready (503: nothing was
/// done); for a read, also a proxy that could not reach it (502, 504) or one full of
/// revocation watches (429).
fn try_next(method: &str, status: u16) -> bool {
    status == 503 || (method == "GET" && matches!(status, 429 | 502 | 504))
}

impl Broker {
    /// From `--broker` (repeatable) or the configuration.
    pub fn from_config(broker_flags: &[String]) -> Result<Broker> {
        let (path, config) = load_config()?;
        let urls = if broker_flags.is_empty() {
            config
                .broker
                .as_ref()
                .map(BrokerUrls::list)
                .unwrap_or_default()
        } else {
            broker_flags.to_vec()
        };
        if urls.is_empty() {
            return Err(CliError(format!(
                "no broker configured: give --broker URL, or write broker = \"https://HOST:PORT\" (or a list of URLs) into ~/.config/jitrun/client.toml or {SYSTEM_CONFIG}{}",
                path.map(|p| format!(" (read {} without a broker key)", p.display())).unwrap_or_default()
            )));
        }
        let bases = urls
            .iter()
            .map(|u| check_base(u))
            .collect::<Result<Vec<_>>>()?;
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(CALL_TIMEOUT))
            .user_agent(format!("jitctl/{}", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.ca {
            builder = builder.tls_config(tls_config(ca)?);
        }
        Ok(Broker {
            bases,
            jitrun: config
                .jitrun
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JITRUN)),
            agent: builder.build().into(),
            first: std::cell::Cell::new(0),
        })
    }

    /// `jitrun attest` for this request.
    fn attest(&self, method: &str, path: &str, body: &[u8]) -> Result<String> {
        let out = Command::new(&self.jitrun)
            .args([
                "attest",
                "--method",
                method,
                "--path",
                path,
                "--body-sha256",
            ])
            .arg(sha256_hex(body))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io_error("cannot run", &self.jitrun, &e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            let err = err.strip_prefix("jitrun: ").unwrap_or(err);
            return Err(CliError(format!(
                "cannot prove who you are to the broker: {} said: {err}",
                self.jitrun.display()
            )));
        }
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !token.starts_with("v4.public.") {
            return Err(CliError(format!(
                "{} attest printed no token; is it jitrun, installed setuid root?",
                self.jitrun.display()
            )));
        }
        Ok(token)
    }

    /// One exchange with the broker at `base`; `path` may carry a query string (it is not
    /// part of the attestation, which is made for this attempt alone).
    fn send(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<std::result::Result<Reply, Failure>> {
        let bare = path.split('?').next().unwrap_or(path);
        let token = self.attest(method, bare, body.unwrap_or_default())?;
        let url = format!("{base}{path}");
        let auth = format!("JitAttest {token}");
        let sent = match method {
            "GET" => self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("Authorization", &auth)
                .call(),
            "POST" => {
                let post = self
                    .agent
                    .post(&url)
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .header("Authorization", &auth);
                match body {
                    Some(bytes) => post.header("Content-Type", "application/json").send(bytes),
                    None => post.send_empty(),
                }
            }
            other => return Err(CliError(format!("unsupported method {other}"))),
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Ok(Err(failure(e))),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = match resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(Failure::Lost(format!(
                    "reading its answer to {method} {bare}: {e}"
                ))))
            }
        };
        Ok(Ok(Reply {
            base: base.to_string(),
            status,
            text,
            retry_after,
        }))
    }

    /// The brokers in the order this call tries them: the last one that answered first.
    fn order(&self) -> Vec<usize> {
        let n = self.bases.len();
        let first = self.first.get() % n;
        (0..n).map(|i| (first + i) % n).collect()
    }

    /// Send to the brokers in order until one answers (see [`try_next`] and [`Failure`]);
    /// says on stderr which failed and which answered when it was not the first.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Reply> {
        let bytes = match body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| CliError(e.to_string()))?),
            None => None,
        };
        let mut failed: Vec<String> = Vec::new();
        let mut last: Option<Reply> = None;
        let order = self.order();
        for (attempt, &i) in order.iter().enumerate() {
            let base = &self.bases[i];
            let more = attempt + 1 < order.len();
            match self.send(base, method, path, bytes.as_deref(), timeout)? {
                Ok(reply) if more && try_next(method, reply.status) => {
                    failed.push(format!("{base} answered HTTP {}", reply.status));
                    last = Some(reply);
                }
                Ok(reply) => {
                    if !failed.is_empty() {
                        eprintln!(
                            "jitctl: {}; {} answered",
                            failed.join("; "),
                            reply.base
                        );
                    }
                    if !try_next(method, reply.status) {
                        self.first.set(i);
                    }
                    return Ok(reply);
                }
                Err(Failure::NotSent(why)) => failed.push(format!("{base}: {why}")),
                Err(Failure::Lost(why)) if method == "GET" => {
                    failed.push(format!("{base}: {why}"))
                }
                Err(Failure::Lost(why)) => {
                    return Err(CliError(format!(
                        "the broker at {base} did not answer {method} {} ({why}); it may have been done: check (e.g. `jitctl requests`) before you repeat it",
                        path.split('?').next().unwrap_or(path)
                    )))
                }
            }
        }
        if let Some(reply) = last {
            return Ok(reply);
        }
        Err(CliError(format!(
            "cannot reach the broker: {}; check `broker` in client.toml (or --broker) and that jitbroker is running",
            failed.join("; ")
        )))
    }

    /// One call, with fail-over. A 4xx/5xx answer becomes the broker's JSON error message
    /// (`jitctl: <message>`).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.exchange(method, path, body, CALL_TIMEOUT)?
            .json(method, path)
    }
}

impl Reply {
    /// The JSON of a 2xx answer, else the broker's error message.
    pub fn json(&self, method: &str, path: &str) -> Result<Value> {
        let bare = path.split('?').next().unwrap_or(path);
        let (status, text) = (self.status, &self.text);
        let json: Option<Value> = serde_json::from_str(text).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                CliError(format!(
                    "the broker at {} answered {method} {bare} with HTTP {status} but not JSON: {}",
                    self.base,
                    text.chars().take(200).collect::<String>()
                ))
            });
        }
        let err = json.as_ref().and_then(|j| j.get("error"));
        let field = |k: &str| {
            err.and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Err(CliError(match (field("message"), field("code")) {
            (Some(m), _) => m,
            (None, Some(code)) => {
                format!("the broker refused {method} {bare}: {code} (HTTP {status})")
            }
            (None, None) => format!(
                "the broker at {} answered {method} {bare} with HTTP {status}: {}",
                self.base,
                text.chars().take(200).collect::<String>()
            ),
        }))
    }
}

/// Trust the CA certificates of `ca` (PEM) for the broker's TLS certificate.
fn tls_config(ca: &Path) -> Result<ureq::tls::TlsConfig> {
    let pem = std::fs::read(ca).map_err(|e| io_error("cannot read the CA file", ca, &e))?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CliError(format!(
            "{}: no PEM certificate found (ca = in client.toml names the CA that signed the broker's certificate)",
            ca.display()
        )));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_answers_send_a_call_to_the_next_broker() {
        // Not ready: nothing was done, whatever the method.
        assert!(try_next("GET", 503) && try_next("POST", 503));
        // A proxy's 502/504, or a broker full of watches: reads only.
        for status in [429, 502, 504] {
            assert!(try_next("GET", status) && !try_next("POST", status));
        }
        for status in [200, 201, 400, 401, 403, 404, 409, 500] {
            assert!(!try_next("GET", status) && !try_next("POST", status));
        }
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        check_id("request", "01JABCDEF0123456789ABCDEFG").unwrap();
        check_id("grant", "0190f1a2-7c3d-7e4f-8a5b-6c7d8e9f0a1b").unwrap();
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(check_id("request", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_of_the_empty_body() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn config_is_strict() {
        let p = Path::new("/etc/jitrun/client.toml");
        let c = ClientConfig::parse(p, "broker = \"http://127.0.0.1:7443\"\n").unwrap();
        assert_eq!(
            c.broker.map(|b| b.list()),
            Some(vec!["http://127.0.0.1:7443".to_string()])
        );
        let c = ClientConfig::parse(p, "broker = [\"https://b1:7443\", \"https://b2:7443\"]\n")
            .unwrap();
        assert_eq!(
            c.broker.map(|b| b.list()),
            Some(vec![
                "https://b1:7443".to_string(),
                "https://b2:7443".to_string()
            ])
        );
        assert_eq!(c.jitrun, None);
        let e = ClientConfig::parse(p, "borker = \"x\"\n").unwrap_err().0;
        assert!(
            e.contains("/etc/jitrun/client.toml") && e.contains("borker"),
            "{e}"
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base("http://127.0.0.1:7443/").unwrap(),
            "http://127.0.0.1:7443"
        );
        assert!(check_base("https://broker.example:443").is_ok());
        for bad in [
            "127.0.0.1:7443",
            "ftp://x",
            "http://",
            "http://x?y=1",
            "http://a:1,http://b:2",
        ] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }
}
