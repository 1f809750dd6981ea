//! The one HTTP/1.1 accept loop shared by every local server: the sidecar,
//! the local issuer and the dev stack (feature `serve`).
//!
//! Bounded everywhere: at most [`ServeOptions::max_connections`] open
//! connections (the next `accept` waits for a free slot, so the rest queue in
//! the kernel backlog), request heads within
//! [`ServeOptions::header_timeout`] and [`ServeOptions::max_head_bytes`].
//! On shutdown it stops accepting, lets requests in flight finish, closes
//! idle keep-alive connections, and gives up on stragglers after
//! [`ServeOptions::drain_timeout`]. Bodies are the service's business: each
//! service bounds what it reads.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::convert::Infallible;
//! use token_core::serve::{ServeOptions, serve, shutdown_signal};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = shutdown_signal();
//! serve(listener, &ServeOptions::default(), shutdown, |_peer| {
//!     hyper::service::service_fn(|_req| async {
//!         Ok::<_, Infallible>(hyper::Response::new(String::from("hello")))
//!     })
//! })
//! .await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// Limits of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections served at once; more wait in the listen backlog.
    /// Defaults to 1024.
    pub max_connections: usize,
    /// Time allowed for a request head, and for an idle keep-alive
    /// connection before its next request. Defaults to 10 s.
    pub header_timeout: Duration,
    /// Largest request head (at least 8192); larger ones get 431.
    /// Defaults to 16 KiB.
    pub max_head_bytes: usize,
    /// How long shutdown waits for requests in flight. Defaults to 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish (at most `drain_timeout`) and
/// returns. `make_service` builds the service of one connection from the
/// peer address.
///
/// # Errors
/// Never in practice: accept errors (e.g. out of file descriptors) are
/// logged and retried after a short pause instead of spinning.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()>,
    make_service: M,
) -> std::io::Result<()>
where
    M: Fn(SocketAddr) -> S,
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_head_bytes.max(8192))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
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
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), make_service(peer)));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(opts.drain_timeout) => warn!("drain timeout over; closing the remaining connections"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn hello(
        _peer: SocketAddr,
    ) -> impl Service<
        hyper::Request<Incoming>,
        Response = hyper::Response<String>,
        Error = Infallible,
        Future = impl Future<Output = Result<hyper::Response<String>, Infallible>> + Send,
    > + Send {
        hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
            Ok::<_, Infallible>(hyper::Response::new(req.uri().path().to_owned()))
        })
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_until_shutdown_then_stops_accepting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, &ServeOptions::default(), async { rx.await.unwrap_or(()) }, hello).await
        });
        let answer = get(addr, "/ping").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("/ping"), "{answer}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed after shutdown");
    }

    #[tokio::test]
    async fn oversized_heads_get_431() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = ServeOptions { max_head_bytes: 8192, ..ServeOptions::default() };
        let server = tokio::spawn(async move { serve(listener, &opts, std::future::pending(), hello).await });
        let ok = get(addr, "/small").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "positive control: {ok}");
        let big = get(addr, &format!("/{}", "a".repeat(20_000))).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        server.abort();
    }
}
