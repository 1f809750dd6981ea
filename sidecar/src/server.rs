//! The hyper adapter around [`Sidecar`]: the shared, bounded serve loop of
//! the token core ([`token_core::serve`]) with this service plugged in.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::TcpListener;

pub use token_core::serve::{ServeOptions as Limits, shutdown_signal};

use crate::service::Sidecar;

/// Serves until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish (up to the drain timeout) and returns.
///
/// # Errors
/// Never in practice: accept errors are logged and retried.
pub async fn serve(
    listener: TcpListener,
    sidecar: Arc<Sidecar>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    token_core::serve::serve(listener, &limits, shutdown, |_peer| {
        let sc = Arc::clone(&sidecar);
        service_fn(move |req| {
            let sc = Arc::clone(&sc);
            async move { Ok::<_, Infallible>(sc.handle(&req).await) }
        })
    })
    .await
}
