//! The broker's syslog events: never sent from a request. Each event is rendered in the
//! transaction of its audit row and stored there (`syslog_outbox`, store/); after the commit
//! the request hands it to a bounded in-memory queue without waiting ([`Syslog::queue`]), and
//! one thread sends the events in the order they were committed. When the socket does not take
//! them (syslog daemon stalled or gone, a full queue on `/dev/log`), they wait in the store and
//! the thread retries with backoff; the queue overflowing, a restart or a crash lose nothing:
//! the store is read again. A sent event leaves the store (in batches), so it is repeated only
//! if the broker dies in the fraction of a second between sending and recording that.
use crate::broker::Broker;
use crate::config::Config;
use crate::store::{bookkeeping, read};
use jit_audit::{Event, Framer, SyslogSink};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Events the in-memory queue holds; past it, the thread reads them from the store.
const QUEUE: usize = 1024;
/// Events read from the store at a time.
const BATCH: u32 = 512;
/// How often the thread looks at the store without being woken (events committed by
/// `jitbroker` admin commands, which have no thread of their own).
const POLL: Duration = Duration::from_secs(2);
/// How often sent events are removed from the store while sending.
const FORGET_EVERY: Duration = Duration::from_millis(250);
/// How long a gap in the ids may wait for its event to arrive through the queue (it was
/// committed, its request is about to hand it over) before the store is read for it.
const GAP_WAIT: Duration = Duration::from_millis(50);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A committed event: its place in the store's order and its datagram.
pub struct Pending {
    pub id: i64,
    pub datagram: Vec<u8>,
}

enum Msg {
    Event(Pending),
    /// Record what was sent, then answer (shutdown).
    Persist(SyncSender<()>),
}

/// Renders events (app-name `jitbroker`, the configured framing) and queues them.
pub struct Syslog {
    framer: Framer,
    socket: PathBuf,
    queue: Mutex<Option<SyncSender<Msg>>>,
    /// The queue was full: the thread must read the store.
    overflowed: AtomicBool,
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
            &crate::broker::hostname(),
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

/// Start the sender thread (`jitbroker serve`).
pub fn start(b: Arc<Broker>) {
    let (tx, rx) = sync_channel(QUEUE);
    *b.syslog.queue.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    let spawned = std::thread::Builder::new()
        .name("jitbroker-syslog".into())
        .spawn(move || Sender::new(b).run(rx));
    if let Err(e) = spawned {
        eprintln!("jitbroker: cannot start the syslog thread: {e}; events wait in the store");
    }
}

struct Sender {
    b: Arc<Broker>,
    sink: Option<SyslogSink>,
    /// Events known to be committed and not yet sent, by id.
    ready: BTreeMap<i64, Vec<u8>>,
    /// The first id not yet sent.
    next: i64,
    /// Read the store before sending (start, overflow, a gap, the poll).
    reread: bool,
    /// Sent since the store last recorded it.
    unrecorded: bool,
    recorded_at: Instant,
    /// Since when the socket refuses, and the current retry delay.
    stalled: Option<(Instant, Duration)>,
    /// Since when the first id in `ready` is not the next one.
    gap_since: Option<Instant>,
}

impl Sender {
    fn new(b: Arc<Broker>) -> Sender {
        Sender {
            b,
            sink: None,
            ready: BTreeMap::new(),
            next: 0,
            reread: true,
            unrecorded: false,
            recorded_at: Instant::now(),
            stalled: None,
            gap_since: None,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match self.stalled {
                // While the socket refuses, wait before trying again; new events wait in the
                // queue (and, past it, in the store).
                Some((_, delay)) => std::thread::sleep(delay),
                None => match rx.recv_timeout(if self.gap_since.is_some() {
                    GAP_WAIT
                } else {
                    POLL
                }) {
                    Ok(msg) => {
                        self.take(msg);
                        while let Ok(msg) = rx.try_recv() {
                            self.take(msg);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => self.reread = true,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            }
            if self.b.syslog.overflowed.swap(false, Ordering::AcqRel) {
                self.reread = true;
            }
            self.send_ready();
            if self.unrecorded
                && (self.ready.is_empty() || self.recorded_at.elapsed() >= FORGET_EVERY)
            {
                self.record();
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Event(p) if p.id >= self.next && self.ready.len() < QUEUE * 4 => {
                self.ready.insert(p.id, p.datagram);
            }
            Msg::Event(p) if p.id >= self.next => self.reread = true,
            Msg::Event(_) => {}
            Msg::Persist(ack) => {
                self.record();
                let _ = ack.send(());
            }
        }
    }

    /// Every event committed before any one in `ready` is in the store (writes are
    /// serialized, ids increase in commit order): read it when something is missing.
    fn fill_from_store(&mut self) {
        let next = self.next;
        match read(self.b.store.as_ref(), |tx| {
            Ok(tx.pending_syslog(next, BATCH)?)
        }) {
            Ok(rows) => {
                if let Some((first, _)) = rows.first() {
                    // Ids below the first unsent one were sent (or never committed).
                    self.next = self.next.max(*first);
                }
                self.ready.extend(rows);
                self.reread = false;
            }
            Err(e) => eprintln!("jitbroker: syslog: cannot read queued events from the store: {e}"),
        }
    }

    fn send_ready(&mut self) {
        loop {
            let gap = self.ready.keys().next().is_some_and(|&id| id != self.next);
            if gap && !self.reread {
                // Requests hand over their events in any order: wait a moment for the
                // missing one before reading the store (which the requests also need).
                let since = *self.gap_since.get_or_insert_with(Instant::now);
                if since.elapsed() < GAP_WAIT {
                    return;
                }
            }
            self.gap_since = None;
            if self.reread || gap {
                self.fill_from_store();
                if self.reread {
                    return; // the store could not be read; try again later
                }
            }
            self.ready.retain(|&id, _| id >= self.next);
            let Some((id, datagram)) = self.ready.pop_first() else {
                return;
            };
            // (Still a gap after reading the store: those ids do not exist.)
            self.next = id;
            match self.send(&datagram) {
                Ok(()) => {
                    self.next = id + 1;
                    self.b.syslog.next.store(self.next, Ordering::Release);
                    self.b.metrics.syslog_sent.fetch_add(1, Ordering::Relaxed);
                    self.unrecorded = true;
                    self.recovered();
                }
                Err(e) => {
                    self.ready.insert(id, datagram);
                    self.failed(&e);
                    return;
                }
            }
        }
    }

    fn send(&mut self, datagram: &[u8]) -> Result<(), jit_audit::AuditError> {
        if self.sink.is_none() {
            self.sink = Some(SyslogSink::connect(&self.b.syslog.socket)?);
        }
        let sent = self.sink.as_ref().map_or(Ok(()), |s| s.send(datagram));
        if sent.is_err() {
            self.sink = None;
        }
        sent
    }

    fn failed(&mut self, e: &jit_audit::AuditError) {
        self.b
            .metrics
            .syslog_failures
            .fetch_add(1, Ordering::Relaxed);
        self.stalled = Some(match self.stalled {
            None => {
                eprintln!(
                    "jitbroker: syslog socket {} does not take events ({e}); they wait in the store and go out in order once it does (the jitbroker_syslog_backlog metric counts them); check the syslog daemon, or [audit] socket in broker.toml",
                    self.b.syslog.socket.display()
                );
                (Instant::now(), FIRST_RETRY)
            }
            Some((since, delay)) => (since, (delay * 2).min(MAX_RETRY)),
        });
    }

    fn recovered(&mut self) {
        if let Some((since, _)) = self.stalled.take() {
            eprintln!(
                "jitbroker: syslog socket {} takes events again (after {}s); sending the queued ones",
                self.b.syslog.socket.display(),
                since.elapsed().as_secs()
            );
        }
    }

    /// Remove sent events from the store.
    fn record(&mut self) {
        let before = self.next;
        match bookkeeping(self.b.store.as_ref(), |tx| Ok(tx.forget_syslog(before)?)) {
            Ok(()) => {
                self.unrecorded = false;
                self.recorded_at = Instant::now();
            }
            Err(e) => eprintln!("jitbroker: syslog: cannot record sent events in the store: {e}"),
        }
    }
}
