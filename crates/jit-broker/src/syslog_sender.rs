//! The syslog sender thread (`jitbroker serve`): sends the events of syslog.rs in the order they
//! were committed, from its queue and, when the queue overflowed, the broker restarted or the
//! socket refused, from the store (`syslog_outbox`); records in the store what it sent.
use crate::broker::Broker;
use crate::store::{bookkeeping, read};
use crate::syslog::{Msg, QUEUE};
use jit_audit::SyslogSink;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
