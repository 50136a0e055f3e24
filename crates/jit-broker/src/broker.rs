//! The broker's shared state, and how a state change is recorded: a row in the hash-chained
//! audit table, webhook deliveries in the outbox and the syslog event in its queue, all in the
//! same transaction; after the commit the syslog event goes to the sender thread (syslog_sender.rs).
use crate::config::{Config, HookFormat};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{NewAudit, Store, Tx};
use crate::syslog::{Pending, Syslog};
use jit_audit::Event;
use jit_grant::{format_time, SecretKey};
use serde_json::{json, Value};
use std::sync::Arc;
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
    /// The last readiness probe (/readyz), reused for a second.
    pub readiness: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    /// Held revocation watches and the store's seq they wait on (watch.rs).
    pub watches: Arc<crate::watch::Watches>,
}

/// Who acts (an attested caller, a person signed in on the web pages, the local admin CLI,
/// or the broker itself).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub uid: Option<u32>,
    /// The attested host; "" when no host vouches (web pages, the broker itself).
    pub host: String,
    /// How a person was identified (auth.rs `Caller::identity_json`); recorded in the audit
    /// row's `data.identity`, the syslog event's `jitrun.identity.*` and webhook payloads.
    pub identity: Option<Value>,
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
    /// Record `change` inside `tx`: audit row, outbox deliveries, the syslog event (queued in
    /// the store too, and pushed onto `after` to be handed to the sender after the commit).
    pub fn record(
        &self,
        tx: &mut dyn Tx,
        now: OffsetDateTime,
        change: Change<'_>,
        after: &mut Vec<Pending>,
    ) -> Result<(), ApiError> {
        let event_id = new_id();
        let mut data = change.data;
        if let (Some(identity), Some(map)) = (&change.actor.identity, data.as_object_mut()) {
            map.insert("identity".into(), identity.clone());
        }
        let link = self.link(&data);
        let entry = tx.append_audit(&NewAudit {
            event_id: event_id.clone(),
            at: now,
            kind: change.kind.to_string(),
            actor: change.actor.user.clone(),
            host: change.actor.host.clone(),
            subject: change.subject.to_string(),
            data: data.clone(),
        })?;
        for hook in self.config.webhook.iter().filter(|h| h.wants(change.kind)) {
            // The delivery id is the idempotency key: in the X-Jitbroker-Delivery header and,
            // for JSON webhooks, in the body.
            let delivery_id = new_id();
            let body = match hook.format {
                HookFormat::Json => {
                    let mut body = json!({
                        "id": event_id,
                        "delivery": delivery_id,
                        "type": change.kind,
                        "at": format_time(now),
                        "broker": self.config.id,
                        "actor": {"user": change.actor.user, "host": change.actor.host},
                        "subject": change.subject,
                        "data": data,
                    });
                    if let Some(link) = &link {
                        body["url"] = json!(link);
                    }
                    body
                }
                HookFormat::Slack => {
                    // The link is the broker's own URL (checked at start: no `|`, `>` or
                    // whitespace) and a ULID: nothing a requester wrote.
                    let open = link
                        .as_ref()
                        .map(|l| format!(" <{l}|open>"))
                        .unwrap_or_default();
                    json!({
                        "text": format!("[{}] {} ({}){open}", self.config.id, change.summary, change.kind),
                    })
                }
            };
            tx.enqueue(
                &delivery_id,
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
            if let Some(identity) = &change.actor.identity {
                for key in ["source", "issuer", "subject"] {
                    if let Some(v) = identity.get(key).and_then(Value::as_str) {
                        e.str(&format!("jitrun.identity.{key}"), v);
                    }
                }
            }
            let datagram = self.syslog.render(&e, now);
            let id = tx.enqueue_syslog(entry.id, e.kind.as_str(), &datagram)?;
            after.push(Pending { id, datagram });
        }
        Ok(())
    }

    /// The web page of the request an event is about (`data.request.id`, or the request of
    /// `data.grant`), when `[web]` gives the broker's public URL.
    fn link(&self, data: &Value) -> Option<String> {
        let web = self.config.web.as_ref()?;
        let id = data
            .pointer("/request/id")
            .or_else(|| data.pointer("/grant/request_id"))
            .and_then(Value::as_str)?;
        ulid::Ulid::from_string(id).ok()?;
        Some(web.request_link(id))
    }

    /// After commit: hand the syslog events to their thread, wake the webhook task. Never
    /// waits (this runs on the request's runtime thread).
    pub fn committed(&self, events: Vec<Pending>) {
        self.syslog.queue(events);
        self.outbox.notify_one();
    }
}

/// This process's replica name (`replica` in broker.toml, else HOSTNAME:PORT).
pub fn replica_name(config: &Config) -> String {
    config.replica_name(&crate::config::hostname())
}
