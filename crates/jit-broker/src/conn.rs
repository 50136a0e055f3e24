//! What a connection is doing, and the watchdog that closes it when a client holds it without
//! making progress (docs/broker.md, `[http]`):
//!
//! * waiting for a request head — since the connection opened, or since the first byte of a
//!   later request arrived: closed after `header_timeout` (slowloris, silent connections, a
//!   TLS handshake that never finishes);
//! * idle — a response was handed over and no new request has begun (keep-alive, or a client
//!   that does not read its response): closed after `idle_timeout`;
//! * busy — a handler runs; it bounds its own body read by `header_timeout` (api.rs).
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

const WAITING_HEAD: u8 = 0;
const IDLE: u8 = 1;
const BUSY: u8 = 2;

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// No complete request head within `header_timeout`.
    Header,
    /// Nothing within `idle_timeout` after the last response.
    Idle,
}

struct Inner {
    origin: Instant,
    phase: AtomicU8,
    /// Milliseconds after `origin` at which the phase began.
    since_ms: AtomicU64,
    changed: Notify,
}

/// The phase of one connection, shared by its I/O, its service and its watchdog.
#[derive(Clone)]
pub struct Activity(Arc<Inner>);

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(Inner {
            origin: Instant::now(),
            phase: AtomicU8::new(WAITING_HEAD),
            since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }))
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.0.origin.elapsed().as_millis() as u64
    }

    fn set(&self, phase: u8) {
        self.0.since_ms.store(self.now_ms(), Ordering::Release);
        self.0.phase.store(phase, Ordering::Release);
        self.0.changed.notify_one();
    }

    /// A request head was parsed: the handler runs.
    pub fn busy(&self) {
        self.set(BUSY);
    }

    /// The handler answered: the connection is idle until the next request begins.
    pub fn idle(&self) {
        self.set(IDLE);
    }

    /// Bytes arrived: on an idle connection, a new request head has begun.
    fn bytes_arrived(&self) {
        if self.0.phase.load(Ordering::Acquire) == IDLE {
            self.set(WAITING_HEAD);
        }
    }

    fn snapshot(&self) -> (u8, u64) {
        (
            self.0.phase.load(Ordering::Acquire),
            self.0.since_ms.load(Ordering::Acquire),
        )
    }

    /// Resolves when the connection has stalled for longer than its phase allows.
    pub async fn watchdog(&self, header_timeout: Duration, idle_timeout: Duration) -> Stalled {
        loop {
            let changed = self.0.changed.notified();
            let (phase, since) = self.snapshot();
            let (limit, why) = match phase {
                WAITING_HEAD => (header_timeout, Stalled::Header),
                IDLE => (idle_timeout, Stalled::Idle),
                _ => {
                    changed.await;
                    continue;
                }
            };
            let deadline = self.0.origin + Duration::from_millis(since) + limit;
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if self.snapshot() == (phase, since) {
                        return why;
                    }
                }
            }
        }
    }
}

/// A stream that tells its [`Activity`] when bytes arrive.
pub struct Observed<S> {
    inner: S,
    activity: Activity,
}

impl<S> Observed<S> {
    pub fn new(inner: S, activity: Activity) -> Self {
        Observed { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        // A silent new connection: the header timeout.
        let a = Activity::default();
        let t0 = Instant::now();
        assert_eq!(a.watchdog(header, idle).await, Stalled::Header);
        assert_eq!(t0.elapsed(), header);
        // Busy never times out here; after the answer, the idle timeout runs.
        let a = Activity::default();
        a.busy();
        let dog = a.clone();
        let t0 = Instant::now();
        let watch = tokio::spawn(async move { dog.watchdog(header, idle).await });
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(!watch.is_finished());
        a.idle();
        assert_eq!(watch.await.unwrap(), Stalled::Idle);
        assert_eq!(t0.elapsed(), Duration::from_secs(300) + idle);
        // Bytes on an idle connection start a new head: the header timeout again.
        let a = Activity::default();
        a.idle();
        a.bytes_arrived();
        let t0 = Instant::now();
        assert_eq!(a.watchdog(header, idle).await, Stalled::Header);
        assert_eq!(t0.elapsed(), header);
    }
}
