//! The local HTTP server: hyper 1.x (HTTP/1.1) over [`App`].
//!
//! Bounded everywhere: at most `max_connections` open connections (the next
//! `accept` waits for a free slot, so the rest queue in the kernel backlog),
//! request headers within `header_timeout`, bodies of at most
//! [`MAX_BODY_BYTES`] within `body_timeout`. On shutdown it stops
//! accepting, lets requests in flight finish, closes idle keep-alive
//! connections, and gives up on stragglers after `drain_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use crate::app::{App, MAX_BODY_BYTES, Request, Response};
use crate::config::IssuerConfig;
use crate::error::ApiError;
use crate::store::Store;

/// Limits of the local server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Open connections at most. Defaults to 1024.
    pub max_connections: usize,
    /// Time to receive a request's headers (and idle time between
    /// keep-alive requests). Defaults to 10 s.
    pub header_timeout: Duration,
    /// Time to receive a request's body. Defaults to 10 s.
    pub body_timeout: Duration,
    /// How long shutdown waits for requests in flight. Defaults to 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerOptions {
    /// The limits configured in `cfg`.
    pub fn from_config(cfg: &IssuerConfig) -> Self {
        ServerOptions {
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
            body_timeout: cfg.body_timeout,
            ..ServerOptions::default()
        }
    }
}

/// Serves `app` on `listener` with default limits until `shutdown`
/// resolves, then drains. See [`serve_with`].
///
/// # Errors
/// Never in practice: accept errors (e.g. out of file descriptors) are
/// logged and retried.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, app, ServerOptions::default(), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, finishes requests in flight (at most `drain_timeout`), and
/// returns.
///
/// # Errors
/// Never in practice: accept errors are logged and retried.
pub async fn serve_with<S: Store>(
    listener: TcpListener,
    app: Arc<App<S>>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = opts.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = Arc::new(opts);
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
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let opts = Arc::clone(&opts);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc_opts = Arc::clone(&opts);
            let svc = service_fn(move |req| {
                let app = Arc::clone(&app);
                let opts = Arc::clone(&svc_opts);
                async move { Ok::<_, Infallible>(handle(&app, &opts, peer, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(opts.header_timeout)
                // Request line and headers: 64 KiB at most (bodies are bounded separately).
                .max_buf_size(64 * 1024)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot: all slots back means all done.
    let drained = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(opts.drain_timeout, slots.acquire_many(drained)).await {
        Ok(_) => info!("server stopped"),
        Err(_) => warn!("server stopped with connections still open after the drain timeout"),
    }
    Ok(())
}

async fn handle<S: Store>(
    app: &App<S>,
    opts: &ServerOptions,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        Err(ApiError::PayloadTooLarge)
    } else {
        match tokio::time::timeout(opts.body_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
            Err(_) => Err(ApiError::RequestTimeout),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge),
            Ok(Err(_)) => Err(ApiError::InvalidRequest("the request body could not be read")),
        }
    };
    let resp = match body {
        Ok(body) => {
            let req = Request { method: parts.method, path: parts.uri.path().to_owned(), headers: parts.headers, body };
            app.handle(req).await
        }
        Err(e) => {
            debug!(%peer, error = %e, "request body refused");
            let mut r = app.error_response(e, &parts.headers);
            // The rest of the body is unread: do not reuse the connection.
            r.headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            r
        }
    };
    to_hyper(resp)
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(resp.body));
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}

/// Completes on SIGTERM or SIGINT; the handlers are installed when it is
/// called (see [`sidecar::shutdown_signal`]).
pub use sidecar::shutdown_signal;
