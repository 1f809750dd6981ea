//! The hyper 1.x server around [`Sidecar`]: bounded header size, header and
//! request timeouts, a connection limit, and graceful shutdown that drains
//! in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::service::Sidecar;

/// Limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for a request head, and for an idle keep-alive
    /// connection before its next request.
    pub header_timeout: Duration,
    /// Largest request head (at least 8192); larger ones get 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16_384,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish (up to the grace period) and returns.
///
/// # Errors
/// Only if the connection limiter is closed, which does not happen.
pub async fn serve(
    listener: TcpListener,
    sidecar: Arc<Sidecar>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let sc = Arc::clone(&sidecar);
        let svc = service_fn(move |req| {
            let sc = Arc::clone(&sc);
            async move { Ok::<_, Infallible>(sc.handle(&req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(limits.shutdown_grace) => warn!("grace period over; closing the remaining connections"),
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: call it before announcing readiness, or a signal sent right
/// after start-up takes the default action and kills the process without
/// draining. Must be called within a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let listeners = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok())
    };
    async move {
        #[cfg(unix)]
        match listeners {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
                    _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
