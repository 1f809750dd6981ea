//! Every error a request can end in, and its one mapping to an HTTP
//! response: status, `{"error", "error_description"}` body, headers.
//! Causes are logged where they happen; clients get a fixed answer.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::password::HashError;
use crate::session::SessionError;
use crate::store::StoreError;
use crate::wire::Response;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `invalid_request`: malformed body or request.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// 400 `invalid_email`.
    #[error("invalid email address")]
    InvalidEmail,
    /// 400 `invalid_password`: outside the length bounds.
    #[error("invalid password")]
    InvalidPassword,
    /// 400 `weak_password`: a new password that is too easy to guess; says why.
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    /// 415 `unsupported_media_type`: not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 413 `payload_too_large`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 408 `request_timeout`: the body did not arrive in time.
    #[error("request timeout")]
    RequestTimeout,
    /// 400 `invalid_link`: a verification or reset link that is unknown,
    /// expired, used or replaced, all alike.
    #[error("invalid or expired link")]
    InvalidLink,
    /// 403 `invalid_current_password`: a password change with the wrong
    /// current password.
    #[error("wrong current password")]
    WrongPassword,
    /// 429 `too_many_requests` with `Retry-After`: sign-up and recovery
    /// limits.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// 401 `invalid_credentials`: unknown email or wrong password, alike.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 429 `account_locked` with `Retry-After`.
    #[error("account locked")]
    AccountLocked {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// 401 `invalid_token`: missing, unknown, expired, revoked or reused refresh token.
    #[error("invalid refresh token")]
    InvalidToken,
    /// 401 `invalid_token` with `WWW-Authenticate: Bearer`: no bearer token.
    #[error("bearer token required")]
    BearerRequired,
    /// 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[error("invalid bearer token")]
    BearerInvalid,
    /// 403 `csrf_check_failed`.
    #[error("cross-site request refused")]
    CsrfRejected,
    /// 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed` with `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods the route accepts.
        allow: &'static str,
    },
    /// 503 `unavailable` with `Retry-After`: store down, hashing saturated.
    #[error("temporarily unavailable")]
    Unavailable {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 500 `server_error`: a bug or corrupt data; never client input.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The machine-readable code of the body's `error`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidEmail => "invalid_email",
            ApiError::InvalidPassword => "invalid_password",
            ApiError::WeakPassword(_) => "weak_password",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::InvalidLink => "invalid_link",
            ApiError::WrongPassword => "invalid_current_password",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::AccountLocked { .. } => "account_locked",
            ApiError::InvalidToken | ApiError::BearerRequired | ApiError::BearerInvalid => "invalid_token",
            ApiError::CsrfRejected => "csrf_check_failed",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidEmail
            | ApiError::InvalidPassword
            | ApiError::WeakPassword(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::InvalidLink => StatusCode::BAD_REQUEST,
            ApiError::WrongPassword => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidCredentials
            | ApiError::InvalidToken
            | ApiError::BearerRequired
            | ApiError::BearerInvalid => StatusCode::UNAUTHORIZED,
            ApiError::AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CsrfRejected => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn description(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(d) | ApiError::WeakPassword(d) => d,
            ApiError::InvalidEmail => "email must be a valid address of at most 254 characters",
            ApiError::InvalidPassword => "password must be 8 to 128 characters long",
            ApiError::UnsupportedMediaType => "Content-Type must be application/json",
            ApiError::PayloadTooLarge => "the request body is too large",
            ApiError::RequestTimeout => "the request body did not arrive in time",
            ApiError::InvalidLink => "the link is invalid, expired or already used; ask for a new one",
            ApiError::WrongPassword => "the current password is incorrect",
            ApiError::TooManyRequests { .. } => "too many requests; try again after Retry-After seconds",
            ApiError::InvalidCredentials => "the email address or password is incorrect",
            ApiError::AccountLocked { .. } => "too many login attempts; try again after Retry-After seconds",
            ApiError::InvalidToken => "the refresh token is missing, invalid, expired or revoked",
            ApiError::BearerRequired => "a bearer access token is required",
            ApiError::BearerInvalid => "the access token is invalid or expired",
            ApiError::CsrfRejected => "cross-site request refused: send an allowed Origin or X-Requested-With",
            ApiError::NotFound => "no such endpoint",
            ApiError::MethodNotAllowed { .. } => "method not allowed on this endpoint",
            ApiError::Unavailable { .. } => "the service is temporarily unavailable; retry later",
            ApiError::Internal => "internal error",
        }
    }

    /// The response: JSON body, status, and the headers the status needs.
    pub fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code(), "error_description": self.description()});
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            ApiError::AccountLocked { retry_after }
            | ApiError::Unavailable { retry_after }
            | ApiError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from((*retry_after).max(1)));
            }
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::BearerRequired => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::BearerInvalid => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer error=\"invalid_token\", error_description=\"invalid or expired\"",
                    ),
                );
            }
            _ => {}
        }
        Response { status: self.status(), headers, body: Bytes::from(body.to_string()) }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => {
                // Sessions turn this into an answer of their own; reaching
                // the edge is a bug.
                tracing::error!("email conflict reached the HTTP layer");
                ApiError::Internal
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                ApiError::Unavailable { retry_after: 1 }
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(error = %cause, "store returned a corrupt record");
                ApiError::Internal
            }
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => {
                tracing::warn!("password hashing saturated; refusing");
                ApiError::Unavailable { retry_after: 1 }
            }
            HashError::Internal(cause) => {
                tracing::error!(error = %cause, "password hashing failed");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::tokens::RandomError> for ApiError {
    fn from(_: crate::tokens::RandomError) -> Self {
        tracing::error!("system random source failed");
        ApiError::Internal
    }
}

/// The one mapping of session outcomes to HTTP errors. Server-side causes
/// are logged here; the client gets the fixed answer.
impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::TooManyRequests { retry_after } => ApiError::TooManyRequests { retry_after },
            SessionError::InvalidLink => ApiError::InvalidLink,
            SessionError::WeakPassword(why) => ApiError::WeakPassword(why),
            SessionError::WrongPassword => ApiError::WrongPassword,
            // Logged where it happened, by kind; the client may retry.
            SessionError::Mail(_) => ApiError::Unavailable { retry_after: 5 },
            SessionError::InvalidCredentials => ApiError::InvalidCredentials,
            SessionError::TooManyAttempts { retry_after } => ApiError::AccountLocked { retry_after },
            SessionError::InvalidRefreshToken => ApiError::InvalidToken,
            SessionError::InvalidAccessToken => ApiError::BearerInvalid,
            SessionError::Store(e) => e.into(),
            SessionError::Hash(e) => e.into(),
            SessionError::Random => crate::tokens::RandomError.into(),
            SessionError::Keys(cause) => {
                tracing::error!(error = %cause, "own signing keys unusable");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_code_and_description() {
        let r = ApiError::InvalidCredentials.into_response();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_credentials");
        assert!(v["error_description"].is_string());
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn recovery_errors() {
        let r = ApiError::TooManyRequests { retry_after: 30 }.into_response();
        assert_eq!((r.status, r.headers[header::RETRY_AFTER].to_str().unwrap()), (StatusCode::TOO_MANY_REQUESTS, "30"));
        assert_eq!(ApiError::InvalidLink.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::WrongPassword.status(), StatusCode::FORBIDDEN);
        let mail = ApiError::from(SessionError::Mail(crate::mail::MailError::Unavailable("timeout".into())));
        assert_eq!(mail.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = String::from_utf8(mail.into_response().body.to_vec()).unwrap();
        assert!(!body.contains("timeout"), "causes stay in the logs: {body}");
    }

    #[test]
    fn retry_after_and_allow_headers() {
        let r = ApiError::AccountLocked { retry_after: 16 }.into_response();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers[header::RETRY_AFTER], "16");
        let r = ApiError::Unavailable { retry_after: 0 }.into_response();
        assert_eq!(r.headers[header::RETRY_AFTER], "1");
        let r = ApiError::MethodNotAllowed { allow: "POST, OPTIONS" }.into_response();
        assert_eq!(r.headers[header::ALLOW], "POST, OPTIONS");
    }

    #[test]
    fn store_errors_map_to_503_500() {
        assert_eq!(ApiError::from(StoreError::Unavailable("x".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::from(StoreError::EmailTaken).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ApiError::from(StoreError::Corrupt("x".into())).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ApiError::from(HashError::Busy).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
