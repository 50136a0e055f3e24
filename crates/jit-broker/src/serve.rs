//! `jitbroker serve`: a tokio runtime with 2 workers, the HTTP/1.1 API (TLS when `[tls]` is
//! set), the webhook delivery task, the syslog sender thread and the maintenance task (pending
//! expiry, replay-table pruning).
//!
//! Connections: at most `limit` at once (derived from `RLIMIT_NOFILE`, limits.rs); at the limit
//! the server stops accepting (new clients wait in the kernel's backlog) instead of running out
//! of descriptors. Each connection is watched (conn.rs): no request head within
//! `header_timeout`, or idle for `idle_timeout`, and it is closed.
use crate::broker::Broker;
use crate::conn::{Activity, Observed, Stalled};
use crate::error::CliError;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

const MAINTENANCE: Duration = Duration::from_secs(5);
const LISTEN_BACKLOG: u32 = 1024;
/// How long in-flight connections may finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

async fn maintenance(b: Arc<Broker>) {
    let mut rounds: u64 = 0;
    loop {
        rounds += 1;
        if b.config.web.is_some() && rounds % 12 == 1 {
            // Every minute: sign-ins never finished, sessions long ended.
            let b2 = b.clone();
            let pruned = tokio::task::spawn_blocking(move || {
                crate::web::session::prune(&b2, time::OffsetDateTime::now_utc())
            })
            .await;
            if let Ok(Err(e)) = pruned {
                eprintln!("jitbroker: maintenance: web sessions: {e}");
            }
        }
        let b2 = b.clone();
        let events = tokio::task::spawn_blocking(move || {
            crate::workflow::expire_overdue(&b2, time::OffsetDateTime::now_utc())
        })
        .await;
        match events {
            Ok(Ok(events)) if !events.is_empty() => b.committed(events),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("jitbroker: maintenance: {e}"),
            Err(e) => eprintln!("jitbroker: maintenance task failed: {e}"),
        }
        tokio::time::sleep(MAINTENANCE).await;
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

/// Bind `listen` (host:port; the first address that binds) with a backlog for bursts.
fn bind(listen: &str) -> Result<TcpListener, CliError> {
    use std::net::ToSocketAddrs;
    let fail = |e: &dyn std::fmt::Display| {
        CliError::Other(format!(
            "cannot listen on {listen} (broker.toml listen): {e}"
        ))
    };
    let addrs = listen.to_socket_addrs().map_err(|e| fail(&e))?;
    let mut last: Option<std::io::Error> = None;
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(
        &last.map_or("no address".to_string(), |e| e.to_string()),
    ))
}

/// The TLS acceptor for `[tls]` (HTTP/1.1 only).
fn tls_acceptor(tls: &crate::config::Tls) -> Result<TlsAcceptor, CliError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            other(format!(
                "TLS certificate {} (broker.toml tls.cert): {e}",
                tls.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(other(format!(
            "TLS certificate {} (broker.toml tls.cert) holds no PEM certificate",
            tls.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        other(format!(
            "TLS key {} (broker.toml tls.key): {e}",
            tls.key.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            other(format!(
                "TLS certificate {} / key {}: {e}",
                tls.cert.display(),
                tls.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every connection task needs.
#[derive(Clone)]
struct ConnContext {
    app: Router,
    broker: Arc<Broker>,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
}

/// Serve HTTP/1.1 on `io` until the client leaves, an error, or shutdown (graceful: the
/// request in progress is answered).
async fn serve_http<I>(io: I, ctx: &ConnContext, activity: &Activity)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = ctx.app.clone();
    let act = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        use tower::Service;
        act.busy();
        let mut app = app.clone();
        let act = act.clone();
        async move {
            let resp = app.call(req.map(axum::body::Body::new)).await;
            act.idle();
            resp
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut shutdown = ctx.shutdown.clone();
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = shutdown.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// One connection: TLS handshake if configured, then HTTP, under the watchdog.
async fn connection(stream: TcpStream, ctx: ConnContext, permit: OwnedSemaphorePermit) {
    let _open = ctx.broker.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let activity = Activity::default();
    let io = Observed::new(stream, activity.clone());
    let http = &ctx.broker.config.http;
    let work = async {
        match &ctx.tls {
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(io).await {
                    serve_http(tls, &ctx, &activity).await;
                }
            }
            None => serve_http(io, &ctx, &activity).await,
        }
    };
    tokio::select! {
        _ = work => {}
        stalled = activity.watchdog(http.header_timeout, http.idle_timeout) => {
            ctx.broker.metrics.connection_closed(stalled == Stalled::Header);
        }
    }
    drop(permit);
}

/// Accept until shutdown, never holding more than the semaphore's connections.
async fn accept_loop(listener: TcpListener, slots: Arc<Semaphore>, ctx: ConnContext) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(connection(stream, ctx.clone(), permit));
            }
            Err(e) => {
                // Out of descriptors or memory despite the limit (another part of the
                // process, or the system): back off instead of spinning.
                eprintln!("jitbroker: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub fn serve(mut broker: Broker) -> Result<(), CliError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nofile = crate::limits::raise_nofile().map_err(other)?;
    let limit = crate::limits::connection_limit(broker.config.http.max_connections, nofile)
        .map_err(other)?;
    let watches =
        crate::limits::watch_limit(broker.config.http.max_watches, limit).map_err(other)?;
    broker.watches = Arc::new(crate::watch::Watches::new(
        watches,
        broker.config.http.max_watches_per_host as usize,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let b = Arc::new(broker);
        let listener = bind(&b.config.listen)?;
        let addr = listener.local_addr().map_err(other)?;
        let tls = b.config.tls.as_ref().map(tls_acceptor).transpose()?;
        let web = crate::web::Web::from_config(&b).map_err(other)?;
        let slots = Arc::new(Semaphore::new(limit));
        b.metrics.set_connection_limit(limit);
        crate::syslog_sender::start(b.clone());
        tokio::spawn(crate::webhooks::run(b.clone()));
        tokio::spawn(maintenance(b.clone()));
        tokio::spawn(crate::watch::follow(b.store.clone(), b.watches.clone()));
        let (stop, shutdown) = watch::channel(false);
        let ctx = ConnContext {
            app: crate::api::router(b.clone(), web),
            broker: b.clone(),
            tls,
            shutdown,
        };
        let scheme = if b.config.tls.is_some() { "https" } else { "http" };
        let http = &b.config.http;
        println!(
            "jitbroker {} listening on {scheme}://{addr} (store {}, replica {}, kid {}); at most {limit} connections (open-file limit {nofile}), header timeout {}, idle timeout {}; revocation watches held up to {}, at most {watches}",
            b.config.id,
            b.config.store_location,
            crate::broker::replica_name(&b.config),
            b.kid,
            jit_policy::format_duration(http.header_timeout),
            jit_policy::format_duration(http.idle_timeout),
            jit_policy::format_duration(http.watch_hold),
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let accepting = tokio::spawn(accept_loop(listener, slots.clone(), ctx));
        shutdown_signal().await;
        let _ = stop.send(true);
        b.watches.close();
        let _ = accepting.await;
        // Wait for the connections to finish their requests (every permit back), at most GRACE.
        let _ = tokio::time::timeout(GRACE, slots.acquire_many(limit as u32)).await;
        let b2 = b.clone();
        let _ = tokio::task::spawn_blocking(move || b2.syslog.persist(Duration::from_secs(1))).await;
        Ok(())
    })
}
