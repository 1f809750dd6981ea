//! The issuer's HTTP layer: a router over plain [`Request`] and [`Response`]
//! values that reads what each route needs (JSON bodies, cookies, bearer
//! tokens, CSRF and CORS headers), calls the session rules
//! ([`crate::session`]) and turns their outcomes into responses. No hyper or
//! Lambda types here: the local server ([`crate::server`]) and the Lambda
//! adapter ([`crate::lambda`]) translate.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use token_core::revocation::{FEED_PATH, MAX_PAGE};
use token_core::{Credentials, parse_authorization};
use tracing::{debug, instrument};

use crate::attempts::ClientAddr;
use crate::config::IssuerConfig;
use crate::cookie::{self, check_csrf, check_origin_if_present, origin_allowed};
use crate::error::ApiError;
use crate::keys::{KeyError, KeyRing};
use crate::mail::Mailer;
use crate::password::{HashError, PasswordHasher};
use crate::session::{Issued, SessionError, SessionRules, Sessions};
use crate::store::{FeedCursor, Store, StoreError};
use crate::validate;
pub use crate::wire::{MAX_BODY_BYTES, Request, Response};

/// Seconds since the Unix epoch. The default is the system clock; tests
/// move time with [`App::with_clock`].
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The issuer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The signing keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The password hasher could not be set up.
    #[error(transparent)]
    Hasher(#[from] HashError),
    /// The session rules or the published documents could not be set up.
    #[error("setup: {0}")]
    Setup(String),
}

impl From<SessionError> for InitError {
    fn from(e: SessionError) -> Self {
        InitError::Setup(e.to_string())
    }
}

/// What the token endpoints answer (RFC 6749 5.1).
#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Serialize)]
struct OpenIdConfiguration<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
}

/// A route: its path (after the prefix) and the methods it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Register,
    VerifyEmail,
    ForgotPassword,
    ResetPassword,
    ChangePassword,
    Login,
    Refresh,
    Logout,
    LogoutAll,
    Jwks,
    OpenIdConfig,
    Revocations,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "/register" => Route::Register,
            "/verify-email" => Route::VerifyEmail,
            "/password/forgot" => Route::ForgotPassword,
            "/password/reset" => Route::ResetPassword,
            "/password/change" => Route::ChangePassword,
            "/login" => Route::Login,
            "/refresh" => Route::Refresh,
            "/logout" => Route::Logout,
            "/logout-all" => Route::LogoutAll,
            "/.well-known/jwks.json" => Route::Jwks,
            "/.well-known/openid-configuration" => Route::OpenIdConfig,
            FEED_PATH => Route::Revocations,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::VerifyEmail => "verify_email",
            Route::ForgotPassword => "forgot_password",
            Route::ResetPassword => "reset_password",
            Route::ChangePassword => "change_password",
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Logout => "logout",
            Route::LogoutAll => "logout_all",
            Route::Jwks => "jwks",
            Route::OpenIdConfig => "openid_configuration",
            Route::Revocations => "revocations",
        }
    }

    fn is_get(self) -> bool {
        matches!(self, Route::Jwks | Route::OpenIdConfig | Route::Revocations)
    }

    fn allow(self) -> &'static str {
        if self.is_get() { "GET, HEAD, OPTIONS" } else { "POST, OPTIONS" }
    }

    fn accepts(self, m: &Method) -> bool {
        if self.is_get() { m == Method::GET || m == Method::HEAD } else { m == Method::POST }
    }
}

/// The issuer's HTTP layer over the session rules. Share it in an `Arc`.
pub struct App<S: Store> {
    cfg: IssuerConfig,
    sessions: Sessions<S>,
    jwks_json: Bytes,
    jwks_cache_control: HeaderValue,
    oidc_json: Bytes,
    clock: Clock,
}

impl<S: Store> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("issuer", &self.cfg.issuer_url)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

fn system_clock() -> u64 {
    token_core::unix_now().as_secs()
}

impl<S: Store> App<S> {
    /// An issuer over any store and key ring. Computes the dummy password
    /// hash (blocking, tens of milliseconds).
    ///
    /// # Errors
    /// [`InitError`] naming what failed.
    pub fn new(cfg: IssuerConfig, store: S, keys: KeyRing) -> Result<Self, InitError> {
        let hasher = Arc::new(PasswordHasher::from_config(&cfg)?);
        let jwks_json = keys.jwks_json().clone();
        let mut sessions = Sessions::new(SessionRules::from_config(&cfg), store, keys, hasher)?;
        if let Some(secret) = &cfg.attempt_key {
            sessions = sessions.with_attempt_key(secret);
        }
        let jwks_uri = cfg.jwks_uri();
        let oidc = OpenIdConfiguration { issuer: &cfg.issuer_url, jwks_uri: &jwks_uri };
        let oidc_json = Bytes::from(serde_json::to_vec(&oidc).map_err(|e| InitError::Setup(e.to_string()))?);
        let jwks_cache_control = HeaderValue::from_str(&format!("public, max-age={}", cfg.jwks_max_age_secs))
            .map_err(|e| InitError::Setup(e.to_string()))?;
        Ok(App { cfg, sessions, jwks_json, jwks_cache_control, oidc_json, clock: Arc::new(system_clock) })
    }

    /// Replaces the clock (tests: expiry and lockout without sleeping).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends mail through `mailer` (the default sends none: the routes
    /// that mail answer 503).
    #[must_use]
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.sessions = self.sessions.with_mailer(mailer);
        self
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        self.sessions.mailer()
    }

    /// The configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.cfg
    }

    /// The session rules this layer serves.
    pub fn sessions(&self) -> &Sessions<S> {
        &self.sessions
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.sessions.store()
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        self.sessions.keys()
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        self.sessions.hasher()
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The response for an error raised by an adapter (oversized body,
    /// body timeout), with the same headers as the handlers' errors.
    pub fn error_response(&self, err: ApiError, request_headers: &HeaderMap) -> Response {
        let mut resp = err.into_response();
        self.add_cors(None, request_headers, &mut resp);
        resp
    }

    /// Handles one request. Never panics on client input; every failure is
    /// a JSON error response.
    pub async fn handle(&self, req: Request) -> Response {
        let path = self.strip_prefix(&req.path);
        let route = Route::parse(path);
        let mut resp = match route {
            None => ApiError::NotFound.into_response(),
            Some(r) if req.method == Method::OPTIONS => self.options(r, &req.headers),
            Some(r) if !r.accepts(&req.method) => ApiError::MethodNotAllowed { allow: r.allow() }.into_response(),
            Some(r) => match self.dispatch(r, &req).await {
                Ok(resp) => resp,
                Err(e) => {
                    let dead_token = matches!(r, Route::Refresh) && e == ApiError::InvalidToken;
                    let mut resp = e.into_response();
                    if dead_token {
                        // A dead token: stop the browser from sending it.
                        resp = resp.with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix));
                    }
                    resp
                }
            },
        };
        if req.method == Method::HEAD {
            resp.body = Bytes::new();
        }
        self.add_cors(route, &req.headers, &mut resp);
        resp.headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        debug!(method = %req.method, route = route.map_or("unknown", Route::name), status = resp.status.as_u16(), "request");
        resp
    }

    /// Routes are matched with and without the configured prefix (an API
    /// Gateway stage may or may not be in the path the adapter sees).
    fn strip_prefix<'p>(&self, path: &'p str) -> &'p str {
        let prefix = &self.cfg.cookie_path_prefix;
        if !prefix.is_empty()
            && let Some(rest) = path.strip_prefix(prefix.as_str())
            && rest.starts_with('/')
        {
            return rest;
        }
        path
    }

    fn add_cors(&self, route: Option<Route>, req_headers: &HeaderMap, resp: &mut Response) {
        if route.is_some_and(Route::is_get) {
            resp.headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            return;
        }
        let Some(origin) = req_headers.get(header::ORIGIN) else { return };
        resp.headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if origin.to_str().is_ok_and(|o| origin_allowed(o, &self.cfg.allowed_origins)) {
            resp.headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            resp.headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            resp.headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
        }
    }

    /// `OPTIONS`: the CORS preflight for allowed origins, else just `Allow`.
    fn options(&self, route: Route, headers: &HeaderMap) -> Response {
        let mut resp = Response::empty(StatusCode::NO_CONTENT);
        resp.headers.insert(header::ALLOW, HeaderValue::from_static(route.allow()));
        let allowed = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| origin_allowed(o, &self.cfg.allowed_origins));
        if allowed && !route.is_get() {
            resp.headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            resp.headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, x-requested-with, authorization"),
            );
            resp.headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        resp
    }

    async fn dispatch(&self, route: Route, req: &Request) -> Result<Response, ApiError> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        match route {
            Route::Register => self.register(req).await,
            Route::VerifyEmail => self.verify_email(req).await,
            Route::ForgotPassword => self.forgot_password(req).await,
            Route::ResetPassword => self.reset_password(req).await,
            Route::ChangePassword => self.change_password(req).await,
            Route::Login => self.login(req).await,
            Route::Refresh => self.refresh(req).await,
            Route::Logout => self.logout(req).await,
            Route::LogoutAll => self.logout_all(req).await,
            Route::Jwks => {
                let mut r = Response::empty(StatusCode::OK);
                r.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r.headers.insert(header::CACHE_CONTROL, self.jwks_cache_control.clone());
                r.body = self.jwks_json.clone();
                Ok(r)
            }
            Route::OpenIdConfig => {
                let mut r = Response::empty(StatusCode::OK);
                r.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r.headers.insert(header::CACHE_CONTROL, self.jwks_cache_control.clone());
                r.body = self.oidc_json.clone();
                Ok(r)
            }
            Route::Revocations => self.revocations(req).await,
        }
    }

    /// Origin rule, content type and the strict credentials body.
    fn read_credentials(&self, req: &Request) -> Result<validate::Credentials, ApiError> {
        self.check_json_post(req)?;
        validate::credentials(&req.body)
    }

    /// Origin rule and content type of the JSON POST routes.
    fn check_json_post(&self, req: &Request) -> Result<(), ApiError> {
        check_origin_if_present(&req.headers, &self.cfg.allowed_origins)?;
        let ct = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !validate::is_json_content_type(ct) {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(())
    }

    /// The client address the adapter determined. An adapter that cannot
    /// tell (none in this crate) puts every such request behind one
    /// address counter.
    fn client(req: &Request) -> ClientAddr {
        req.client.unwrap_or(ClientAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into()))
    }

    /// 202 with `{"message"}`: the answer of the routes that must not say
    /// whether an address has an account.
    fn accepted(message: &'static str) -> Result<Response, ApiError> {
        Ok(json(StatusCode::ACCEPTED, &serde_json::json!({ "message": message }))?.no_store())
    }

    #[instrument(skip_all)]
    async fn register(&self, req: &Request) -> Result<Response, ApiError> {
        let creds = self.read_credentials(req)?;
        // Weak, common and breached passwords are refused before any work.
        validate::check_password_strength(&creds.password, &creds.email)?;
        // The outcome is not told: a taken address answers like a new one.
        self.sessions.register(creds, Self::client(req), self.now()).await?;
        Self::accepted("registration received: follow the link sent to the address to finish")
    }

    #[instrument(skip_all)]
    async fn verify_email(&self, req: &Request) -> Result<Response, ApiError> {
        self.check_json_post(req)?;
        let token = validate::token_only(&req.body)?;
        self.sessions.verify_email(&token, Self::client(req), self.now()).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({"status": "verified"}))?.no_store())
    }

    #[instrument(skip_all)]
    async fn forgot_password(&self, req: &Request) -> Result<Response, ApiError> {
        self.check_json_post(req)?;
        let email = validate::email_only(&req.body)?;
        self.sessions.forgot_password(&email, Self::client(req), self.now()).await?;
        Self::accepted("if the address has an account, a reset link is on its way to it")
    }

    #[instrument(skip_all)]
    async fn reset_password(&self, req: &Request) -> Result<Response, ApiError> {
        self.check_json_post(req)?;
        let (token, password) = validate::reset_body(&req.body)?;
        self.sessions.reset_password(&token, password, Self::client(req), self.now()).await?;
        // Every session ended: this browser's too.
        Ok(json(StatusCode::OK, &serde_json::json!({"status": "password_reset"}))?
            .no_store()
            .with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix)))
    }

    #[instrument(skip_all)]
    async fn change_password(&self, req: &Request) -> Result<Response, ApiError> {
        self.check_json_post(req)?;
        let token = bearer_token(&req.headers)?;
        let (current, new) = validate::change_body(&req.body)?;
        let issued = self.sessions.change_password(token, current, new, Self::client(req), self.now()).await?;
        self.token_response(&issued)
    }

    #[instrument(skip_all)]
    async fn login(&self, req: &Request) -> Result<Response, ApiError> {
        let creds = self.read_credentials(req)?;
        let issued = self.sessions.login(creds, Self::client(req), self.now()).await?;
        self.token_response(&issued)
    }

    /// The token answer (RFC 6749 5.1) with the refresh cookies.
    fn token_response(&self, issued: &Issued) -> Result<Response, ApiError> {
        let body =
            TokenBody { access_token: &issued.access_token, token_type: "Bearer", expires_in: issued.expires_in };
        Ok(json(StatusCode::OK, &body)?.no_store().with_cookies(cookie::set_refresh_cookies(
            &self.cfg.cookie_path_prefix,
            &issued.refresh_token,
            issued.refresh_expires_in,
        )))
    }

    #[instrument(skip_all)]
    async fn refresh(&self, req: &Request) -> Result<Response, ApiError> {
        check_csrf(&req.headers, &self.cfg.allowed_origins)?;
        let token = cookie::refresh_token(&req.headers).ok_or(ApiError::InvalidToken)?;
        let issued = self.sessions.refresh(token, self.now()).await?;
        self.token_response(&issued)
    }

    #[instrument(skip_all)]
    async fn logout(&self, req: &Request) -> Result<Response, ApiError> {
        check_csrf(&req.headers, &self.cfg.allowed_origins)?;
        self.sessions.logout(cookie::refresh_token(&req.headers), self.now()).await?;
        // Idempotent: no cookie or an unknown one still ends with no cookie.
        Ok(Response::empty(StatusCode::NO_CONTENT)
            .no_store()
            .with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix)))
    }

    #[instrument(skip_all)]
    async fn logout_all(&self, req: &Request) -> Result<Response, ApiError> {
        let token = bearer_token(&req.headers)?;
        let revoked = self.sessions.logout_all(token, self.now()).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({"revoked_sessions": revoked}))?
            .no_store()
            .with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix)))
    }
}

impl<S: Store> App<S> {
    /// `GET /revocations?after=<cursor>&limit=<n>`: one page of the
    /// revocation feed (`token_core::revocation::FeedPage`). Public (the
    /// identifiers in it are hashed), never cached.
    #[instrument(skip_all)]
    async fn revocations(&self, req: &Request) -> Result<Response, ApiError> {
        let (after, limit) = feed_query(req.query.as_deref())?;
        let now_ms = self.now().saturating_mul(1000);
        let page = self.sessions.revocations(after.as_ref(), limit, now_ms).await?;
        Ok(json(StatusCode::OK, &page)?.no_store())
    }
}

/// The longest feed query string: `after` (33) and `limit` (4) with their
/// names fit many times over.
const MAX_FEED_QUERY: usize = 128;

/// `after` and `limit` of a feed request, strictly: each at most once, no
/// other parameter, `after` exactly as the feed gave it out (its characters
/// need no percent-encoding, so none is decoded), `limit` a decimal number
/// from 1 to [`MAX_PAGE`] (default [`MAX_PAGE`]).
fn feed_query(query: Option<&str>) -> Result<(Option<FeedCursor>, usize), ApiError> {
    let (mut after, mut limit) = (None, None);
    let query = query.unwrap_or_default();
    if query.len() > MAX_FEED_QUERY {
        return Err(ApiError::InvalidRequest("query string too long"));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" if after.is_none() => {
                after = Some(value.parse::<FeedCursor>().map_err(|_| {
                    ApiError::InvalidRequest("after: not a cursor of this feed (pass back the previous page's next)")
                })?);
            }
            "limit" if limit.is_none() => {
                let n = (!value.is_empty() && value.len() <= 4 && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<usize>().ok())
                    .flatten()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or(ApiError::InvalidRequest("limit: a whole number from 1 to 1000"))?;
                limit = Some(n);
            }
            "after" | "limit" => return Err(ApiError::InvalidRequest("after and limit may each appear once")),
            _ => return Err(ApiError::InvalidRequest("unknown query parameter (the feed takes after and limit)")),
        }
    }
    Ok((after, limit.unwrap_or(MAX_PAGE)))
}

/// A JSON response, or [`ApiError::Internal`] if the value does not
/// serialize (a bug).
fn json(status: StatusCode, value: &impl Serialize) -> Result<Response, ApiError> {
    Response::json(status, value).ok_or(ApiError::Internal)
}

/// The token of the one `Authorization: Bearer <token>` header, read by
/// the token core's parser (the same rules as the authorizer and the
/// sidecar).
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(ApiError::BearerRequired);
    };
    let v = v.to_str().map_err(|_| ApiError::BearerInvalid)?;
    match parse_authorization(Some(v)) {
        Credentials::Bearer(token) => Ok(token),
        Credentials::Missing => Err(ApiError::BearerRequired),
        Credentials::Malformed => Err(ApiError::BearerInvalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(Route::parse("/login"), Some(Route::Login));
        assert_eq!(Route::parse("/login/"), None);
        assert_eq!(Route::parse("/Login"), None);
        assert!(Route::Login.accepts(&Method::POST));
        assert!(!Route::Login.accepts(&Method::GET));
        assert!(Route::Jwks.accepts(&Method::HEAD));
        assert!(!Route::Jwks.accepts(&Method::POST));
        assert_eq!(Route::parse("/revocations"), Some(Route::Revocations));
        assert!(Route::Revocations.accepts(&Method::GET) && !Route::Revocations.accepts(&Method::POST));
    }

    #[test]
    fn feed_query_is_strict() {
        assert_eq!(feed_query(None), Ok((None, MAX_PAGE)));
        assert_eq!(feed_query(Some("")), Ok((None, MAX_PAGE)));
        let c = "0000019337a1f2c0.8c1d000000000001";
        let (after, limit) = feed_query(Some(&format!("after={c}&limit=5"))).unwrap();
        assert_eq!((after.unwrap().to_string(), limit), (c.to_owned(), 5));
        assert_eq!(feed_query(Some("limit=1000&after=0000019337a1f2c0")).unwrap().1, 1000);
        for bad in [
            "after=",
            "after=x",
            "after=0000019337A1F2C0",
            "after=0000019337a1f2c0.",
            "after=0000019337a1f2c0.8c1d",
            "after=%30000019337a1f2c0",
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=+5",
            "limit=01000",
            "limit=",
            "limit",
            "limit=1&limit=2",
            "after=0000019337a1f2c0&after=0000019337a1f2c0",
            "other=1",
            &"x".repeat(MAX_FEED_QUERY + 1),
        ] {
            let e = feed_query(Some(bad)).unwrap_err();
            assert!(matches!(e, ApiError::InvalidRequest(_)), "{bad}: {e:?}");
        }
        assert_eq!(MAX_PAGE, 1000, "the limit message names 1000");
    }

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Err(ApiError::BearerRequired));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
        assert_eq!(bearer_token(&h), Ok("abc.def.ghi"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
        assert_eq!(bearer_token(&h), Err(ApiError::BearerRequired));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), Err(ApiError::BearerInvalid));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
        assert_eq!(bearer_token(&h), Err(ApiError::BearerInvalid));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(bearer_token(&h), Err(ApiError::BearerRequired));
    }
}
