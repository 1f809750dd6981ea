//! The request and response values the adapters (local server, Lambda)
//! exchange with [`crate::app::App`]: plain `http` types, no server.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;

/// Largest request body accepted (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request, as the adapters hand it over.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without query string (decoded, as the adapters get it: a
    /// `?` in it is part of the path).
    pub path: String,
    /// The query string without the `?`, as sent (percent-encoded), if the
    /// request had one. Only `GET /revocations` reads it.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (adapters bound it to [`MAX_BODY_BYTES`]).
    pub body: Bytes,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), query: None, headers: HeaderMap::new(), body: Bytes::new() }
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
