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
    /// `http://host:port` or `https://…`.
    pub broker: Option<String>,
    /// PEM file with the CA certificate(s) that sign the broker's TLS certificate.
    pub ca: Option<PathBuf>,
    /// The setuid jitrun that makes attestations.
    pub jitrun: Option<PathBuf>,
}

impl ClientConfig {
    pub fn parse(name: &Path, text: &str) -> Result<ClientConfig> {
        toml::from_str(text).map_err(|e| {
            CliError(format!(
                "{}: {}; it holds broker = \"http://HOST:PORT\", optionally ca = \"/path/ca.pem\" and jitrun = \"/usr/bin/jitrun\"",
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

pub struct Broker {
    base: String,
    jitrun: PathBuf,
    agent: ureq::Agent,
}

/// Base URL: scheme http/https, no query, no trailing slash.
fn check_base(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(hostport) if !hostport.is_empty() && !hostport.contains(['?', '#', ' ']) => {
            Ok(url.to_string())
        }
        _ => Err(CliError(format!(
            "broker URL {url:?}: expected http://HOST:PORT or https://HOST:PORT"
        ))),
    }
}

impl Broker {
    /// From `--broker` or the configuration.
    pub fn from_config(broker_flag: Option<&str>) -> Result<Broker> {
        let (path, config) = load_config()?;
        let url = broker_flag.map(str::to_string).or(config.broker.clone()).ok_or_else(|| {
            CliError(format!(
                "no broker configured: give --broker URL, or write broker = \"http://HOST:PORT\" into ~/.config/jitrun/client.toml or {SYSTEM_CONFIG}{}",
                path.map(|p| format!(" (read {} without a broker key)", p.display())).unwrap_or_default()
            ))
        })?;
        let base = check_base(&url)?;
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(format!("jitctl/{}", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.ca {
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
            builder = builder.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Broker {
            base,
            jitrun: config
                .jitrun
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JITRUN)),
            agent: builder.build().into(),
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

    /// One call. `path` may carry a query string (it is not part of the attestation).
    /// A 4xx/5xx answer becomes the broker's JSON error message (`jitctl: <message>`).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let bytes = match body {
            Some(v) => serde_json::to_vec(v).map_err(|e| CliError(e.to_string()))?,
            None => Vec::new(),
        };
        let bare = path.split('?').next().unwrap_or(path);
        let token = self.attest(method, bare, &bytes)?;
        let url = format!("{}{path}", self.base);
        let auth = format!("JitAttest {token}");
        let sent = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "POST" => {
                let req = self.agent.post(&url).header("Authorization", &auth);
                if body.is_some() {
                    req.header("Content-Type", "application/json")
                        .send(&bytes[..])
                } else {
                    req.send_empty()
                }
            }
            other => return Err(CliError(format!("unsupported method {other}"))),
        };
        let mut resp = sent.map_err(|e| {
            CliError(format!(
                "cannot reach the broker at {}: {e}; check `broker` in client.toml (or --broker) and that jitbroker is running",
                self.base
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| {
                CliError(format!(
                    "reading the broker's answer to {method} {bare}: {e}"
                ))
            })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                CliError(format!(
                    "the broker answered {method} {bare} with HTTP {status} but not JSON: {}",
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
                "the broker answered {method} {bare} with HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.broker.as_deref(), Some("http://127.0.0.1:7443"));
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
        for bad in ["127.0.0.1:7443", "ftp://x", "http://", "http://x?y=1"] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }
}
