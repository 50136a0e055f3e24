//! Revocation lists announced across replicas on PostgreSQL: a transaction that stores a new
//! list also sends `NOTIFY jitbroker_revocations` (delivered when it commits), and each
//! serving replica keeps one connection of its own, outside the pool, that `LISTEN`s on that
//! channel and tells its revocation watchers. So a watch held on one replica is answered as
//! soon as a revocation commits on any other, not at that replica's next look at the store.
//!
//! An announcement is only a hint: the watchers' task reads the list from the store either
//! way and still looks once a second (watch.rs), so one lost while the listening connection
//! was down costs at most that second. After every (re)connection the watchers are told to
//! look, for anything announced while nobody listened.
use super::{AnnounceFn, Announced};
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Connection};

/// How the pool's connections are made, for the listening one.
#[derive(Clone)]
pub(super) enum Connector {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// What a listening connection needs: the pool's settings and the channel.
#[derive(Clone)]
pub(super) struct Listener {
    pub config: tokio_postgres::Config,
    pub connector: Connector,
    pub channel: &'static str,
    /// The store's URL as configured (no password), for messages.
    pub target: String,
}

/// The first wait before connecting again, doubled up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Listener {
    /// Listen until the process ends, connecting again whenever the connection is lost.
    pub async fn run(mut self, announce: Arc<AnnounceFn>) {
        // A server that vanishes without closing the connection (a network partition, a
        // fail-over) is noticed within about half a minute.
        self.config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let mut backoff = BACKOFF;
        // Said on stderr that it does not listen, and not yet that it does again.
        let mut said_deaf = false;
        loop {
            let mut heard = false;
            let why = self
                .listen_once(&*announce, &mut heard, &mut said_deaf)
                .await;
            if heard {
                announce(Announced::Deaf);
                backoff = BACKOFF;
            }
            if !said_deaf {
                eprintln!(
                    "jitbroker: not listening for revocations on {}: {why}; other replicas' revocations reach this replica's watchers at its once-a-second look at the store until it listens again",
                    self.target
                );
                said_deaf = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: connect, LISTEN, then pass announcements on until it ends (`heard`:
    /// LISTEN succeeded); why it ended.
    async fn listen_once(
        &self,
        announce: &AnnounceFn,
        heard: &mut bool,
        said_deaf: &mut bool,
    ) -> String {
        let ended = match &self.connector {
            Connector::Plain => match self.config.connect(tokio_postgres::NoTls).await {
                Ok((client, conn)) => self.serve(client, conn, announce, heard, said_deaf).await,
                Err(e) => Err(e),
            },
            Connector::Tls(tls) => match self.config.connect(tls.clone()).await {
                Ok((client, conn)) => self.serve(client, conn, announce, heard, said_deaf).await,
                Err(e) => Err(e),
            },
        };
        match ended {
            Ok(()) => "the server closed the connection".into(),
            Err(e) => error_text(&e),
        }
    }

    async fn serve<S, T>(
        &self,
        client: Client,
        mut conn: Connection<S, T>,
        announce: &AnnounceFn,
        heard: &mut bool,
        said_deaf: &mut bool,
    ) -> Result<(), tokio_postgres::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        // The connection is driven here (poll_message) while the client sends LISTEN.
        let listen = async {
            client
                .batch_execute(&format!("LISTEN {}", self.channel))
                .await?;
            *heard = true;
            if std::mem::take(said_deaf) {
                eprintln!(
                    "jitbroker: listening for revocations on {} again",
                    self.target
                );
            }
            announce(Announced::Listening);
            // Keep the client (and so the connection) until the connection ends.
            std::future::pending::<Result<(), tokio_postgres::Error>>().await
        };
        let messages = async {
            loop {
                match poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => announce(Announced::Stored),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        };
        tokio::select! {
            r = listen => r,
            r = messages => r,
        }
    }
}

fn error_text(e: &tokio_postgres::Error) -> String {
    use std::error::Error;
    match (e.as_db_error(), e.source()) {
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    }
}
