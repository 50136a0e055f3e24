//! Revocation watches: `GET /v1/revocations?after_seq=N` held open until the list's `seq`
//! passes N (docs/broker.md, "Revocation watch").
//!
//! One task per broker follows the store's `seq`: it reads it when a revocation commits in
//! this process (a local poke), when the store announces a list stored by any replica
//! (PostgreSQL's LISTEN/NOTIFY, store/pg_listen.rs), and, whatever else happens, at least
//! every [`RECHECK`], so a revocation made by another replica on the same database wakes this
//! replica's watchers too, at once or within that second. Held requests wait on that value,
//! never on the store: a thousand watchers cost one read a second. Nothing here is state of
//! its own: the seq is the store's.
//!
//! Held requests are capped (`http.max_watches`): each holds a connection for up to
//! `http.watch_hold`, and without a cap watchers could take every connection the broker may
//! open. Past the cap a watch is answered 429 at once, with `Retry-After`.
use crate::store::{read, Announced, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// How often the store's `seq` is read while anybody watches, whatever this process does.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What watchers wait on: the newest list seen in the store (its `seq`, and the answer for
/// it, so that a thousand woken watchers do not read the store a thousand times), and
/// whether the broker is shutting down (then every held request is answered at once).
#[derive(Debug, Clone, Default)]
struct Seen {
    seq: u64,
    list: Option<Arc<Value>>,
    closing: bool,
}

pub struct Watches {
    seen: watch::Sender<Seen>,
    poke: Notify,
    slots: Arc<Semaphore>,
    limit: usize,
    /// Most held at once for callers attested from one host (`http.max_watches_per_host`).
    per_host: usize,
    by_host: Mutex<HashMap<String, usize>>,
    /// Watches answered 429 because `limit` (or the host's share) were held.
    pub refused: AtomicU64,
    /// Lists the store announced (any replica's; PostgreSQL only).
    pub announced: AtomicU64,
    /// The store's announcements are heard now (PostgreSQL's listening connection is up).
    pub listening: AtomicBool,
}

/// Why a watch was not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `http.max_watches` are held.
    Broker,
    /// The caller's host holds `http.max_watches_per_host`.
    Host,
}

/// A held watch: its slot of the broker's and of its host's, given back when dropped.
pub struct Held<'a> {
    _slot: OwnedSemaphorePermit,
    host: String,
    watches: &'a Watches,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut by_host = self
            .watches
            .by_host
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_host.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                by_host.remove(&self.host);
            }
        }
    }
}

/// Why a held request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// The store's seq passed the one the client has: the list to answer.
    Changed(Arc<Value>),
    /// `hold` elapsed with no change.
    Timeout,
    /// The broker is stopping.
    Closing,
}

impl Watches {
    pub fn new(limit: usize, per_host: usize) -> Watches {
        Watches {
            seen: watch::Sender::new(Seen::default()),
            poke: Notify::new(),
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            per_host,
            by_host: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            announced: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        }
    }

    /// What the store announced: a new list (look now), or that announcements are heard
    /// again (look now, one may have been missed) or no longer.
    pub fn on_announcement(&self, what: Announced) {
        match what {
            Announced::Stored => {
                self.announced.fetch_add(1, Ordering::Relaxed);
                self.poke();
            }
            Announced::Listening => {
                self.listening.store(true, Ordering::Relaxed);
                self.poke();
            }
            Announced::Deaf => self.listening.store(false, Ordering::Relaxed),
        }
    }

    /// The most watches held at once for one host.
    pub fn per_host(&self) -> usize {
        self.per_host
    }

    /// The most watches held at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Watches held now.
    pub fn held(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// A revocation committed in this process: read the seq now rather than at the next
    /// recheck.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Answer every held request (at shutdown).
    pub fn close(&self) {
        self.seen.send_modify(|s| s.closing = true);
    }

    /// A slot for a watch of a caller attested from `host`, unless the broker holds `limit`
    /// or that host its share (then the caller answers 429): one host's users cannot take
    /// every slot from the others.
    pub fn try_hold(&self, host: &str) -> Result<Held<'_>, Full> {
        let held = self.reserve(host);
        if held.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        held
    }

    fn reserve(&self, host: &str) -> Result<Held<'_>, Full> {
        let mut by_host = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        if by_host.get(host).copied().unwrap_or(0) >= self.per_host {
            return Err(Full::Host);
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Broker)?;
        *by_host.entry(host.to_string()).or_insert(0) += 1;
        Ok(Held {
            _slot: slot,
            host: host.to_string(),
            watches: self,
        })
    }

    /// Wait until the store's seq is above `after`, at most `hold`.
    pub async fn wait_past(&self, after: u64, hold: Duration) -> Woken {
        let mut rx = self.seen.subscribe();
        let passed = async {
            let s = rx
                .wait_for(|s| s.closing || (s.seq > after && s.list.is_some()))
                .await;
            match s {
                Ok(s) if !s.closing => s.list.clone().map_or(Woken::Closing, Woken::Changed),
                _ => Woken::Closing,
            }
        };
        tokio::time::timeout(hold, passed)
            .await
            .unwrap_or(Woken::Timeout)
    }

    /// The newest seq published.
    fn seq(&self) -> u64 {
        self.seen.borrow().seq
    }

    fn publish(&self, seq: u64, list: Value) {
        self.seen.send_if_modified(|s| {
            let newer = seq > s.seq;
            if newer {
                s.seq = seq;
                s.list = Some(Arc::new(list));
            }
            newer
        });
    }
}

/// Follow the store's revocation `seq` for these watchers: on a local poke or the store's
/// announcement, and every [`RECHECK`] while anybody waits. Runs until the process ends.
pub async fn follow(store: Arc<dyn Store>, watches: Arc<Watches>) {
    // The store keeps its listener for as long as it lives: it holds the watchers weakly.
    let weak = Arc::downgrade(&watches);
    store.follow_revocations(Arc::new(move |what| {
        if let Some(w) = weak.upgrade() {
            w.on_announcement(what);
        }
    }));
    loop {
        let _ = tokio::time::timeout(RECHECK, watches.poke.notified()).await;
        if watches.seen.receiver_count() == 0 {
            continue;
        }
        let (store, known) = (store.clone(), watches.seq());
        let newer = tokio::task::spawn_blocking(move || {
            read(store.as_ref(), |tx| match tx.revocation_seq()? {
                Some(seq) if seq > known => Ok(tx.revocations()?),
                _ => Ok(None),
            })
        })
        .await;
        match newer {
            Ok(Ok(Some(list))) => watches.publish(list.seq, list.to_json()),
            Ok(Ok(None)) => {}
            // A store that fails now is retried at the next recheck; requests report it.
            Ok(Err(e)) => eprintln!("jitbroker: revocation watch: {e}"),
            Err(e) => eprintln!("jitbroker: revocation watch task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn watchers_wake_on_a_newer_seq_or_at_the_hold() {
        let list = |seq: u64| serde_json::json!({ "seq": seq });
        let w = Arc::new(Watches::new(2, 2));
        w.publish(5, list(5));
        // Already past: at once, with the list.
        assert_eq!(
            w.wait_past(4, Duration::from_secs(50)).await,
            Woken::Changed(Arc::new(list(5)))
        );
        // Not past: the hold.
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            w.wait_past(5, Duration::from_secs(50)).await,
            Woken::Timeout
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(50));
        // A newer seq wakes a held watcher; an older one does not.
        let w2 = w.clone();
        let held = tokio::spawn(async move { w2.wait_past(5, Duration::from_secs(50)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.publish(3, list(3));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!held.is_finished());
        w.publish(6, list(6));
        assert_eq!(held.await.unwrap(), Woken::Changed(Arc::new(list(6))));
        // Closing answers everybody.
        let w2 = w.clone();
        let held = tokio::spawn(async move { w2.wait_past(6, Duration::from_secs(50)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.close();
        assert_eq!(held.await.unwrap(), Woken::Closing);
    }

    #[test]
    fn at_most_limit_are_held_and_each_host_its_share() {
        let w = Watches::new(3, 2);
        let a = w.try_hold("web-1").unwrap();
        let _b = w.try_hold("web-1").unwrap();
        assert_eq!(w.try_hold("web-1").err(), Some(Full::Host));
        let _c = w.try_hold("web-2").unwrap();
        assert_eq!(w.held(), 3);
        assert_eq!(w.try_hold("web-3").err(), Some(Full::Broker));
        assert_eq!(w.refused.load(Ordering::Relaxed), 2);
        drop(a);
        assert!(w.try_hold("web-1").is_ok());
        // A refusal takes nothing from the host's share.
        assert!(!w.by_host.lock().unwrap().contains_key("web-3"));
    }
}
