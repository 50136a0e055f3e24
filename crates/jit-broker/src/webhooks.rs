//! Webhook delivery from the outbox: at least once, in order of enqueueing, retried with
//! exponential backoff (per webhook: `backoff` doubling up to `max_backoff`, at most
//! `max_attempts`). Deliveries live in the store, so a restart loses none. Each POST carries
//! `X-Jitbroker-Delivery` (unique per event and webhook: receivers dedupe on it) and
//! `X-Jitbroker-Event` (the event type); JSON bodies carry the delivery id too (`delivery`).
//!
//! Several replicas share one outbox: a replica claims a batch of due deliveries (in the
//! store, `FOR UPDATE SKIP LOCKED` on PostgreSQL) by moving their next attempt to the end of a
//! lease, so no other replica takes them meanwhile; it sends one only while the lease is sure
//! to outlast the POST, records each result, and hands back what it did not try. A replica
//! killed between a receiver's 2xx and recording it leaves that one delivery to be sent again
//! after the lease: receivers dedupe on the delivery id.
use crate::broker::{now_ms, Broker};
use crate::config::Webhook;
use crate::model::Delivery;
use crate::store::bookkeeping;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How often the task looks at the outbox without being woken.
const POLL: Duration = Duration::from_millis(500);
const BATCH: u32 = 32;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Room for clock differences between replicas and for recording the result.
const MARGIN: Duration = Duration::from_secs(5);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, d: &Delivery) -> Result<(), String> {
    let resp = agent
        .post(&d.url)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            concat!("jitbroker/", env!("CARGO_PKG_VERSION")),
        )
        .header("X-Jitbroker-Delivery", &d.delivery_id)
        .header("X-Jitbroker-Event", &d.event_type)
        .header("X-Jitbroker-Event-Id", &d.event_id)
        .send(d.body.as_bytes())
        .map_err(|e| format!("{}: {e}", d.url))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{}: HTTP status {status}", d.url))
    }
}

/// Claim a batch of due deliveries until `lease_until`.
fn claim(b: &Broker, now: OffsetDateTime, lease_until: i64) -> Vec<Delivery> {
    match bookkeeping(b.store.as_ref(), |tx| {
        Ok(tx.claim_deliveries(now_ms(now), lease_until, BATCH)?)
    }) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("jitbroker: webhooks: cannot read the outbox: {e}");
            Vec::new()
        }
    }
}

/// One pass: claim what is due and deliver it. Returns how many were claimed.
pub fn deliver_due(b: &Broker, agent: &ureq::Agent) -> usize {
    let started = std::time::Instant::now();
    let now = OffsetDateTime::now_utc();
    // A POST starts only while more than TIMEOUT + MARGIN of the claim is left.
    let lease = b.config.webhook_lease;
    let lease_until = now_ms(now) + lease.as_millis() as i64;
    let due = claim(b, now, lease_until);
    let default_hook = Webhook {
        url: String::new(),
        format: crate::config::HookFormat::Json,
        events: Vec::new(),
        max_attempts: 12,
        backoff: None,
        max_backoff: None,
    };
    for (i, d) in due.iter().enumerate() {
        if started.elapsed() + TIMEOUT + MARGIN > lease {
            release(b, &due[i..], lease_until);
            break;
        }
        let hook = b
            .config
            .webhook
            .iter()
            .find(|h| h.url == d.url)
            .unwrap_or(&default_hook);
        let result = post(agent, d);
        record(b, hook, d, &result);
    }
    due.len()
}

/// Hand back claimed deliveries not attempted (due again now, for any replica).
fn release(b: &Broker, left: &[Delivery], lease_until: i64) {
    let ids: Vec<i64> = left.iter().map(|d| d.id).collect();
    let now = now_ms(OffsetDateTime::now_utc());
    if let Err(e) = bookkeeping(b.store.as_ref(), |tx| {
        Ok(tx.release_deliveries(&ids, lease_until, now)?)
    }) {
        eprintln!(
            "jitbroker: webhooks: cannot hand back {} deliveries (they are due again when their claim ends): {e}",
            ids.len()
        );
    }
}

/// Record one attempt's result (store and metrics).
fn record(b: &Broker, hook: &Webhook, d: &Delivery, result: &Result<(), String>) {
    let at = OffsetDateTime::now_utc();
    // Delivery marks are bookkeeping: losing one to a power loss repeats a delivery
    // (receivers dedupe on X-Jitbroker-Delivery).
    let stored = bookkeeping(b.store.as_ref(), |tx| {
        match result {
            Ok(()) => tx.mark_delivered(d.id, at)?,
            Err(e) => {
                let attempts = d.attempts + 1;
                let next = (attempts < hook.max_attempts)
                    .then(|| now_ms(at) + hook.delay(attempts).as_millis() as i64);
                tx.mark_attempt_failed(d.id, attempts, next, e, at)?;
            }
        }
        Ok(())
    });
    if let Err(e) = stored {
        eprintln!(
            "jitbroker: webhooks: cannot record delivery {}: {e}",
            d.delivery_id
        );
    }
    match result {
        Ok(()) => {
            b.metrics.webhook_delivered.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            b.metrics
                .webhook_attempts_failed
                .fetch_add(1, Ordering::Relaxed);
            if d.attempts + 1 >= hook.max_attempts {
                b.metrics.webhook_given_up.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "jitbroker: webhook delivery {} ({} of event {}) given up after {} attempts: {e}",
                    d.delivery_id, d.event_type, d.event_id, hook.max_attempts
                );
            } else {
                eprintln!(
                    "jitbroker: webhook delivery {} failed (will retry): {e}",
                    d.delivery_id
                );
            }
        }
    }
}

/// The delivery task: runs until the process ends.
pub async fn run(b: Arc<Broker>) {
    let agent = agent();
    loop {
        let b2 = b.clone();
        let agent2 = agent.clone();
        let n = tokio::task::spawn_blocking(move || deliver_due(&b2, &agent2))
            .await
            .unwrap_or(0);
        if n as u32 >= BATCH {
            continue;
        }
        tokio::select! {
            _ = b.outbox.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
