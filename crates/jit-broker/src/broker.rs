//! The broker's shared state, and how a state change is recorded: a row in the hash-chained
//! audit table and webhook deliveries in the outbox (same transaction), then a syslog event
//! (after commit).
use crate::config::{Config, HookFormat};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{NewAudit, Store, Tx};
use jit_audit::{Event, Framer, SyslogSink};
use jit_grant::{format_time, SecretKey};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

pub struct Broker {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub key: SecretKey,
    pub kid: String,
    pub syslog: Syslog,
    pub metrics: Metrics,
    /// Wakes the webhook delivery task.
    pub outbox: tokio::sync::Notify,
}

/// Who acts (from the attestation, or the local admin CLI).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub uid: Option<u32>,
    pub host: String,
}

/// One state change to record.
pub struct Change<'a> {
    pub kind: &'a str,
    pub actor: &'a Actor,
    pub subject: &'a str,
    pub data: Value,
    /// The syslog event, when the change has an event type of the audit schema.
    pub syslog: Option<Event>,
    /// One line for people (Slack text).
    pub summary: String,
}

pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

pub fn now_ms(now: OffsetDateTime) -> i64 {
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Broker {
    /// Record `change` inside `tx`: audit row, outbox deliveries. Its syslog event is
    /// pushed onto `after` to be sent once the transaction has committed.
    pub fn record(
        &self,
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        change: Change<'_>,
        after: &mut Vec<Event>,
    ) -> Result<(), ApiError> {
        let event_id = new_id();
        tx.append_audit(&NewAudit {
            event_id: event_id.clone(),
            at: now,
            kind: change.kind.to_string(),
            actor: change.actor.user.clone(),
            host: change.actor.host.clone(),
            subject: change.subject.to_string(),
            data: change.data.clone(),
        })?;
        for hook in self.config.webhook.iter().filter(|h| h.wants(change.kind)) {
            let body = match hook.format {
                HookFormat::Json => json!({
                    "id": event_id,
                    "type": change.kind,
                    "at": format_time(now),
                    "broker": self.config.id,
                    "actor": {"user": change.actor.user, "host": change.actor.host},
                    "subject": change.subject,
                    "data": change.data,
                }),
                HookFormat::Slack => json!({
                    "text": format!("[{}] {} ({})", self.config.id, change.summary, change.kind),
                }),
            };
            tx.enqueue(
                &new_id(),
                &hook.url,
                &event_id,
                change.kind,
                &body.to_string(),
                now_ms(now),
            )?;
        }
        if let Some(mut e) = change.syslog {
            e.str("user.name", change.actor.user.as_str());
            if let Some(uid) = change.actor.uid {
                e.str("user.id", uid.to_string());
            }
            if !change.actor.host.is_empty() {
                e.str("host.name", change.actor.host.as_str());
            }
            after.push(e);
        }
        Ok(())
    }

    /// After commit: syslog events, wake the webhook task.
    pub fn committed(&self, events: Vec<Event>) {
        for e in &events {
            self.syslog.send(e);
        }
        self.outbox.notify_one();
    }
}

/// syslog through jit-audit (app-name `jitbroker`, the configured framing). A send that
/// fails is reported on stderr: the audit table holds the event regardless.
pub struct Syslog {
    framer: Framer,
    socket: std::path::PathBuf,
    sink: Mutex<Option<SyslogSink>>,
}

impl Syslog {
    pub fn new(config: &Config) -> Syslog {
        let framing = config
            .audit
            .framing
            .parse()
            .unwrap_or(jit_audit::Framing::Cee);
        let mut framer = Framer::new(framing, "jitbroker", &hostname(), std::process::id());
        framer.sd_id = config.audit.sd_id.clone();
        Syslog {
            framer,
            socket: config.audit.socket.clone(),
            sink: Mutex::new(None),
        }
    }

    pub fn send(&self, e: &Event) {
        let datagram = self.framer.render(e, OffsetDateTime::now_utc());
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if sink.is_none() {
            match SyslogSink::connect(&self.socket) {
                Ok(s) => *sink = Some(s),
                Err(err) => {
                    eprintln!(
                        "jitbroker: audit event {} not sent to syslog: {err}",
                        e.kind
                    );
                    return;
                }
            }
        }
        if let Some(s) = sink.as_ref() {
            if let Err(err) = s.send(&datagram) {
                eprintln!(
                    "jitbroker: audit event {} not sent to syslog: {err}",
                    e.kind
                );
                *sink = None;
            }
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
