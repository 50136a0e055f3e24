//! The broker's syslog events: never sent from a request. Each event is rendered in the
//! transaction of its audit row and stored there (`syslog_outbox`, store/); after the commit
//! the request hands it to a bounded in-memory queue without waiting ([`Syslog::queue`]), and
//! one thread sends the events in the order they were committed. When the socket does not take
//! them (syslog daemon stalled or gone, a full queue on `/dev/log`), they wait in the store and
//! the thread retries with backoff; the queue overflowing, a restart or a crash lose nothing:
//! the store is read again. A sent event leaves the store (in batches), so it is repeated only
//! if the broker dies in the fraction of a second between sending and recording that.
use crate::config::Config;
use jit_audit::{Event, Framer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Events the in-memory queue holds; past it, the sender reads them from the store.
pub(crate) const QUEUE: usize = 1024;

/// A committed event: its place in the store's order and its datagram.
pub struct Pending {
    pub id: i64,
    pub datagram: Vec<u8>,
}

pub(crate) enum Msg {
    Event(Pending),
    /// Record what was sent, then answer (shutdown).
    Persist(SyncSender<()>),
}

/// Renders events (app-name `jitbroker`, the configured framing) and queues them.
pub struct Syslog {
    framer: Framer,
    pub(crate) socket: PathBuf,
    pub(crate) queue: Mutex<Option<SyncSender<Msg>>>,
    /// The queue was full: the thread must read the store.
    pub(crate) overflowed: AtomicBool,
    /// The first event id not yet sent (for the backlog gauge).
    pub next: AtomicI64,
}

impl Syslog {
    pub fn new(config: &Config) -> Syslog {
        let framing = config
            .audit
            .framing
            .parse()
            .unwrap_or(jit_audit::Framing::Cee);
        let mut framer = Framer::new(
            framing,
            "jitbroker",
            &crate::config::hostname(),
            std::process::id(),
        );
        framer.sd_id = config.audit.sd_id.clone();
        Syslog {
            framer,
            socket: config.audit.socket.clone(),
            queue: Mutex::new(None),
            overflowed: AtomicBool::new(false),
            next: AtomicI64::new(0),
        }
    }

    /// The datagram for `e`, stamped with the time of its change.
    pub fn render(&self, e: &Event, at: OffsetDateTime) -> Vec<u8> {
        self.framer.render(e, at)
    }

    /// After commit: hand the events to the sender thread, never waiting. Without a thread
    /// (the admin commands) they stay in the store for the server to send.
    pub fn queue(&self, events: Vec<Pending>) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = queue.as_ref() else { return };
        for e in events {
            match tx.try_send(Msg::Event(e)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.overflowed.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Record what has been sent (at shutdown), waiting at most `wait`.
    pub fn persist(&self, wait: Duration) {
        let (ack, done) = sync_channel(1);
        let sent = {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue
                .as_ref()
                .is_some_and(|tx| tx.send(Msg::Persist(ack)).is_ok())
        };
        if sent {
            let _ = done.recv_timeout(wait);
        }
    }
}
