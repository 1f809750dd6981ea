//! The local HTTP adapter: hyper 1.x (HTTP/1.1) over [`App`], on the token
//! core's shared serve loop ([`token_core::serve`]).
//!
//! Bounded everywhere: at most `max_connections` open connections (the next
//! `accept` waits for a free slot, so the rest queue in the kernel backlog),
//! request heads within `header_timeout` and 64 KiB, bodies of at most
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
use hyper::service::service_fn;
use token_core::serve::ServeOptions;
use tokio::net::TcpListener;
use tracing::debug;

use crate::app::{App, InitError};
use crate::attempts::ClientAddr;
use crate::config::IssuerConfig;
use crate::error::ApiError;
use crate::keys::KeyRing;
use crate::mail::Mailer;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::wire::{MAX_BODY_BYTES, Request, Response};

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
/// returns. The accept loop is the token core's shared one.
///
/// # Errors
/// Never in practice: accept errors are logged and retried.
pub async fn serve_with<S: Store>(
    listener: TcpListener,
    app: Arc<App<S>>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = ServeOptions {
        max_connections: opts.max_connections,
        header_timeout: opts.header_timeout,
        // Request line and headers: 64 KiB at most (bodies are bounded separately).
        max_head_bytes: 64 * 1024,
        drain_timeout: opts.drain_timeout,
    };
    let body_timeout = opts.body_timeout;
    token_core::serve::serve(listener, &limits, shutdown, |peer| {
        let app = Arc::clone(&app);
        service_fn(move |req| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(handle(&app, body_timeout, peer, req).await) }
        })
    })
    .await
}

/// The local outbox's directory inside the data directory.
pub const OUTBOX_DIR: &str = "outbox";

/// The local issuer: the SQLite store, the key ring and the mail outbox
/// ([`OUTBOX_DIR`]) in `cfg.data_dir`, created on first start. This is where the local shape picks its
/// backend; the Lambda bootstrap picks DynamoDB.
///
/// # Errors
/// [`InitError`] naming what failed; `ISSUER_MAIL=ses` is refused here
/// (this function is synchronous and SES needs the AWS SDK's
/// configuration: `issuer serve` builds it with [`Mailer::from_config`]).
pub fn local_app(cfg: IssuerConfig) -> Result<App<SqliteStore>, InitError> {
    let store = SqliteStore::open_in_dir(&cfg.data_dir, &cfg.sqlite_options())?;
    let keys = KeyRing::load_or_create_local(&cfg.data_dir, cfg.signing_alg)?;
    let mailer = Mailer::outbox_from_config(&cfg).map_err(|e| InitError::Setup(e.to_string()))?;
    Ok(App::new(cfg, store, keys)?.with_mailer(mailer))
}

async fn handle<S: Store>(
    app: &App<S>,
    body_timeout: Duration,
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
        match tokio::time::timeout(body_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
            Err(_) => Err(ApiError::RequestTimeout),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge),
            Ok(Err(_)) => Err(ApiError::InvalidRequest("the request body could not be read")),
        }
    };
    let resp = match body {
        Ok(body) => {
            let client = Some(ClientAddr::from_peer(peer.ip(), &parts.headers, app.config().client_ip_header.as_ref()));
            let query = parts.uri.query().filter(|q| !q.is_empty()).map(str::to_owned);
            let req = Request {
                method: parts.method,
                path: parts.uri.path().to_owned(),
                query,
                client,
                headers: parts.headers,
                body,
            };
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

pub use token_core::serve::shutdown_signal;
