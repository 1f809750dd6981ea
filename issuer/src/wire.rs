//! The request and response values the adapters (local server, Lambda)
//! exchange with [`crate::app::App`]: plain `http` types, no server.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;

use crate::attempts::ClientAddr;

/// Largest request body accepted (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request, as the adapters hand it over.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without query string.
    pub path: String,
    /// The query string, without `?` (`None` when absent).
    pub query: Option<String>,
    /// The client's address as the adapter determined it (API Gateway's
    /// request context, the socket peer or a trusted proxy header); `None`
    /// when unknown (all unknown clients then share one address counter).
    pub client: Option<ClientAddr>,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (adapters bound it to [`MAX_BODY_BYTES`]).
    pub body: Bytes,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), query: None, client: None, headers: HeaderMap::new(), body: Bytes::new() }
    }
}

/// A response, for the adapters to send.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers (`Set-Cookie` may repeat).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A JSON body with `status`; `None` if `value` does not serialize.
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Option<Self> {
        let body = serde_json::to_vec(value).ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Some(Response { status, headers, body: Bytes::from(body) })
    }

    /// No body.
    pub(crate) fn empty(status: StatusCode) -> Self {
        Response { status, headers: HeaderMap::new(), body: Bytes::new() }
    }

    /// `Cache-Control: no-store` (and `Pragma: no-cache`): token answers.
    #[must_use]
    pub(crate) fn no_store(mut self) -> Self {
        self.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        self
    }

    /// Appends `Set-Cookie` headers.
    #[must_use]
    pub(crate) fn with_cookies(mut self, cookies: Vec<HeaderValue>) -> Self {
        for c in cookies {
            self.headers.append(header::SET_COOKIE, c);
        }
        self
    }
}
