//! `jitbroker serve`: a tokio runtime with 2 workers, the HTTP API (TLS when `[tls]` is set),
//! the webhook delivery task and the maintenance task (pending expiry, replay-table pruning).
use crate::broker::Broker;
use crate::cli::CliError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const MAINTENANCE: Duration = Duration::from_secs(5);

async fn maintenance(b: Arc<Broker>) {
    loop {
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

pub fn serve(broker: Broker) -> Result<(), CliError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let b = Arc::new(broker);
        let listen = b.config.listen.clone();
        let listener = std::net::TcpListener::bind(&listen).map_err(|e| {
            CliError::Other(format!(
                "cannot listen on {listen} (broker.toml listen): {e}"
            ))
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CliError::Other(e.to_string()))?;
        let addr: SocketAddr = listener
            .local_addr()
            .map_err(|e| CliError::Other(e.to_string()))?;
        let app = crate::api::router(b.clone()).into_make_service();
        tokio::spawn(crate::webhooks::run(b.clone()));
        tokio::spawn(maintenance(b.clone()));
        let handle = axum_server::Handle::new();
        let h2 = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            h2.graceful_shutdown(Some(Duration::from_secs(5)));
        });
        let scheme = if b.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!(
            "jitbroker {} listening on {scheme}://{addr} (store {}, kid {})",
            b.config.id,
            b.config.store.display(),
            b.kid
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let served = match &b.config.tls {
            Some(tls) => {
                let rustls =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                        .await
                        .map_err(|e| {
                            CliError::Other(format!(
                                "TLS certificate {} / key {}: {e}",
                                tls.cert.display(),
                                tls.key.display()
                            ))
                        })?;
                axum_server::from_tcp_rustls(listener, rustls)
                    .map_err(|e| CliError::Other(e.to_string()))?
                    .handle(handle)
                    .serve(app)
                    .await
            }
            None => {
                axum_server::from_tcp(listener)
                    .map_err(|e| CliError::Other(e.to_string()))?
                    .handle(handle)
                    .serve(app)
                    .await
            }
        };
        served.map_err(|e| CliError::Other(format!("serving on {addr}: {e}")))
    })
}
