//! The Lambda adapter: API Gateway proxy events (REST API v1 and HTTP API
//! v2, through `lambda_http`) to [`App`] and back.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, RequestExt as _};

use crate::app::{App, MAX_BODY_BYTES, Request};
use crate::error::ApiError;
use crate::store::Store;

/// Translates one event, handles it, and translates the answer.
pub async fn handle_event<S: Store>(app: &App<S>, event: lambda_http::Request) -> lambda_http::Response<Body> {
    // The path as API Gateway received it, without the stage that
    // lambda_http adds to the URI (the app also strips the configured prefix).
    let path = match event.raw_http_path() {
        "" => event.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let resp = if body.len() > MAX_BODY_BYTES {
        app.error_response(ApiError::PayloadTooLarge, &parts.headers)
    } else {
        app.handle(Request { method: parts.method, path, headers: parts.headers, body }).await
    };
    let body = if resp.body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(resp.body.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let mut out = lambda_http::Response::new(body);
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}

/// Runs the Lambda runtime loop over `app` (built once, at init).
///
/// # Errors
/// When the runtime API fails.
pub async fn run<S: Store>(app: Arc<App<S>>) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(move |event: lambda_http::Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, lambda_http::Error>(handle_event(&app, event).await) }
    }))
    .await
}
