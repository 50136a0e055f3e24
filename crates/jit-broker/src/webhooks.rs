//! Webhook delivery from the outbox: at least once, in order of enqueueing, retried with
//! exponential backoff (per webhook: `backoff` doubling up to `max_backoff`, at most
//! `max_attempts`). Deliveries live in the store, so a restart loses none. Each POST carries
//! `X-Jitbroker-Delivery` (unique per event and webhook: receivers dedupe on it) and
//! `X-Jitbroker-Event` (the event type).
use crate::broker::{now_ms, Broker};
use crate::config::Webhook;
use crate::model::Delivery;
use crate::store::{bookkeeping, read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How often the task looks at the outbox without being woken.
const POLL: Duration = Duration::from_millis(500);
const BATCH: u32 = 32;
const TIMEOUT: Duration = Duration::from_secs(10);

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

/// One pass: deliver what is due. Returns how many were attempted.
pub fn deliver_due(b: &Broker, agent: &ureq::Agent) -> usize {
    let now = OffsetDateTime::now_utc();
    let due = match read(b.store.as_ref(), |tx| {
        Ok(tx.due_deliveries(now_ms(now), BATCH)?)
    }) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("jitbroker: webhooks: cannot read the outbox: {e}");
            return 0;
        }
    };
    let default_hook = Webhook {
        url: String::new(),
        format: crate::config::HookFormat::Json,
        events: Vec::new(),
        max_attempts: 12,
        backoff: None,
        max_backoff: None,
    };
    for d in &due {
        let hook = b
            .config
            .webhook
            .iter()
            .find(|h| h.url == d.url)
            .unwrap_or(&default_hook);
        let result = post(agent, d);
        let at = OffsetDateTime::now_utc();
        // Delivery marks are bookkeeping: losing one to a power loss repeats a delivery
        // (receivers dedupe on X-Jitbroker-Delivery).
        let stored = bookkeeping(b.store.as_ref(), |tx| {
            match &result {
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
        match &result {
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
    due.len()
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
