//! The issuer's core: a router over plain request and response values, and
//! the handlers. No hyper or Lambda types here: the local server
//! ([`crate::server`]) and the Lambda adapter ([`crate::lambda`]) translate.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use token_core::{AccessClaims, Audience, Verifier, VerifierConfig};
use tracing::{debug, info, instrument, warn};

use crate::config::IssuerConfig;
use crate::cookie::{self, check_csrf, check_origin_if_present, origin_allowed};
use crate::error::ApiError;
use crate::keys::{KeyError, KeyRing};
use crate::password::{HashError, PasswordHasher, Verification};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    Family, LOCK_AFTER, MAX_LOCK_SECS, NewRefresh, NewUser, RotateOutcome, Store, StoreError, UserRecord,
};
use crate::tokens::{hash_refresh_token, new_refresh_token, random_id};
use crate::validate;

/// Largest request body accepted (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A request, as the adapters hand it over.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without query string.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (adapters bound it to [`MAX_BODY_BYTES`]).
    pub body: Bytes,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), headers: HeaderMap::new(), body: Bytes::new() }
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
    fn json(status: StatusCode, value: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(value).map_err(|_| ApiError::Internal)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Response { status, headers, body: Bytes::from(body) })
    }

    fn empty(status: StatusCode) -> Self {
        Response { status, headers: HeaderMap::new(), body: Bytes::new() }
    }

    fn no_store(mut self) -> Self {
        self.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        self
    }

    fn with_cookies(mut self, cookies: Vec<HeaderValue>) -> Self {
        for c in cookies {
            self.headers.append(header::SET_COOKIE, c);
        }
        self
    }
}

/// Seconds since the Unix epoch. The default is the system clock; tests
/// move time with [`App::with_clock`].
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The issuer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A setting is invalid (the message names it).
    #[error(transparent)]
    Config(#[from] token_core::ConfigError),
    /// The signing keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The password hasher could not be set up.
    #[error(transparent)]
    Hasher(#[from] HashError),
    /// The verifier for the issuer's own tokens could not be set up.
    #[error("verifier: {0}")]
    Verifier(String),
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
    Login,
    Refresh,
    Logout,
    LogoutAll,
    Jwks,
    OpenIdConfig,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "/register" => Route::Register,
            "/login" => Route::Login,
            "/refresh" => Route::Refresh,
            "/logout" => Route::Logout,
            "/logout-all" => Route::LogoutAll,
            "/.well-known/jwks.json" => Route::Jwks,
            "/.well-known/openid-configuration" => Route::OpenIdConfig,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Logout => "logout",
            Route::LogoutAll => "logout_all",
            Route::Jwks => "jwks",
            Route::OpenIdConfig => "openid_configuration",
        }
    }

    fn is_get(self) -> bool {
        matches!(self, Route::Jwks | Route::OpenIdConfig)
    }

    fn allow(self) -> &'static str {
        if self.is_get() { "GET, HEAD, OPTIONS" } else { "POST, OPTIONS" }
    }

    fn accepts(self, m: &Method) -> bool {
        if self.is_get() { m == Method::GET || m == Method::HEAD } else { m == Method::POST }
    }
}

/// The issuer: configuration, store, keys and handlers. Share it in an `Arc`.
pub struct App<S: Store> {
    cfg: IssuerConfig,
    store: S,
    keys: KeyRing,
    hasher: Arc<PasswordHasher>,
    verifier: Arc<Verifier>,
    audience: Audience,
    jwks_json: Bytes,
    jwks_cache_control: HeaderValue,
    oidc_json: Bytes,
    clock: Clock,
}

impl<S: Store> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("issuer", &self.cfg.issuer_url).field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn system_clock() -> u64 {
    token_core::unix_now().as_secs()
}

impl App<SqliteStore> {
    /// The local issuer: the SQLite store and the key ring in
    /// `cfg.data_dir`, both created on first start.
    ///
    /// # Errors
    /// [`InitError`] naming what failed.
    pub fn from_config(cfg: IssuerConfig) -> Result<Self, InitError> {
        let opts = cfg.sqlite_options();
        let store = SqliteStore::open_in_dir(&cfg.data_dir, &opts)?;
        let keys = KeyRing::load_or_create_local(&cfg.data_dir, cfg.signing_alg)?;
        Self::new(cfg, store, keys)
    }
}

impl<S: Store> App<S> {
    /// An issuer over any store and key ring. Computes the dummy password
    /// hash (blocking, tens of milliseconds).
    ///
    /// # Errors
    /// [`InitError`] naming what failed.
    pub fn new(cfg: IssuerConfig, store: S, keys: KeyRing) -> Result<Self, InitError> {
        let hasher = Arc::new(PasswordHasher::new(cfg.argon2, cfg.hash_concurrency, cfg.hash_queue_wait)?);
        // The issuer verifies its own tokens (logout-all) with the key ring
        // installed directly: no HTTP, and the keys never go stale.
        let mut vcfg = VerifierConfig::for_issuer(cfg.issuer_url.clone(), cfg.audiences.clone(), None);
        vcfg.jwks_max_stale = Duration::from_secs(100 * 365 * 86_400);
        vcfg.token_cache_bytes = 1024 * 1024;
        let verifier = Verifier::new(&vcfg).map_err(|e| InitError::Verifier(e.to_string()))?;
        verifier.install_jwks(&cfg.issuer_url, keys.jwks_json()).map_err(|e| InitError::Verifier(e.to_string()))?;
        let audience = match cfg.audiences.as_slice() {
            [one] => Audience::One(one.clone()),
            many => Audience::Many(many.to_vec()),
        };
        let jwks_uri = cfg.jwks_uri();
        let oidc = OpenIdConfiguration { issuer: &cfg.issuer_url, jwks_uri: &jwks_uri };
        let oidc_json = Bytes::from(serde_json::to_vec(&oidc).map_err(|e| InitError::Verifier(e.to_string()))?);
        let jwks_cache_control = HeaderValue::from_str(&format!("public, max-age={}", cfg.jwks_max_age_secs))
            .map_err(|e| InitError::Verifier(e.to_string()))?;
        Ok(App {
            jwks_json: keys.jwks_json().clone(),
            cfg,
            store,
            keys,
            hasher,
            verifier,
            audience,
            jwks_cache_control,
            oidc_json,
            clock: Arc::new(system_clock),
        })
    }

    /// Replaces the clock (tests: expiry and lockout without sleeping).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &IssuerConfig {
        &self.cfg
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
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
        }
    }

    /// Origin rule, content type and the strict credentials body.
    fn read_credentials(&self, req: &Request) -> Result<validate::Credentials, ApiError> {
        check_origin_if_present(&req.headers, &self.cfg.allowed_origins)?;
        let ct = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !validate::is_json_content_type(ct) {
            return Err(ApiError::UnsupportedMediaType);
        }
        validate::credentials(&req.body)
    }

    #[instrument(skip_all)]
    async fn register(&self, req: &Request) -> Result<Response, ApiError> {
        let creds = self.read_credentials(req)?;
        let password_hash = self.hasher.hash(creds.password).await?;
        let user = NewUser {
            user_id: random_id()?,
            email: creds.email,
            password_hash,
            scope: self.cfg.default_scopes.clone(),
            created_at: self.now(),
        };
        self.store.create_user(&user).await?;
        info!(target: "audit", event = "user_registered", user_id = %user.user_id, "user registered");
        Ok(Response::json(StatusCode::CREATED, &serde_json::json!({"user_id": user.user_id}))?.no_store())
    }

    #[instrument(skip_all)]
    async fn login(&self, req: &Request) -> Result<Response, ApiError> {
        let creds = self.read_credentials(req)?;
        let now = self.now();
        let user = self.store.find_user_by_email(&creds.email).await?;
        if let Some(u) = &user
            && u.locked_until > now
        {
            info!(target: "audit", event = "login_refused_locked", user_id = %u.user_id, "login refused: locked");
            return Err(ApiError::AccountLocked { retry_after: u.locked_until - now });
        }
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verdict = self.hasher.verify(creds.password, stored).await?;
        let Some(user) = user else {
            info!(target: "audit", event = "login_failed", reason = "unknown_user", "login failed");
            return Err(ApiError::InvalidCredentials);
        };
        match verdict {
            Verification::Mismatch => {
                let after = self.store.record_login_failure(&user.user_id, now, LOCK_AFTER, MAX_LOCK_SECS).await?;
                info!(
                    target: "audit",
                    event = "login_failed",
                    reason = "bad_password",
                    user_id = %user.user_id,
                    failed_logins = after.failed_logins,
                    locked_until = after.locked_until,
                    "login failed"
                );
                Err(ApiError::InvalidCredentials)
            }
            Verification::Match { rehash } => {
                let upgraded = rehash.is_some();
                if !self.store.record_login_success(&user.user_id, now, rehash.as_deref()).await? {
                    // Locked by a concurrent failure since it was read.
                    let locked_until = self.store.get_user(&user.user_id).await?.map_or(now + 1, |u| u.locked_until);
                    return Err(ApiError::AccountLocked { retry_after: locked_until.saturating_sub(now) });
                }
                let resp = self.start_session(&user, now).await?;
                info!(target: "audit", event = "login_succeeded", user_id = %user.user_id, rehashed = upgraded, "login succeeded");
                Ok(resp)
            }
        }
    }

    /// A new family with its first refresh token, and the token response.
    async fn start_session(&self, user: &UserRecord, now: u64) -> Result<Response, ApiError> {
        let family = Family {
            family_id: random_id()?,
            user_id: user.user_id.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.cfg.session_max_secs),
            revoked_at: None,
        };
        let token = new_refresh_token()?;
        let first = self.new_refresh_record(&token, &family, now);
        self.store.create_session(&family, &first).await?;
        self.token_response(user, &token, first.expires_at, now)
    }

    /// A refresh token of `family`: its lifetime, capped by the family's.
    fn new_refresh_record(&self, token: &str, family: &Family, now: u64) -> NewRefresh {
        NewRefresh {
            token_hash: hash_refresh_token(token),
            family_id: family.family_id.clone(),
            user_id: family.user_id.clone(),
            issued_at: now,
            expires_at: now.saturating_add(self.cfg.refresh_ttl_secs).min(family.expires_at),
        }
    }

    /// Signs an access token and answers with it and the refresh cookies.
    fn token_response(
        &self,
        user: &UserRecord,
        refresh_token: &str,
        refresh_expires_at: u64,
        now: u64,
    ) -> Result<Response, ApiError> {
        let claims = AccessClaims {
            iss: self.cfg.issuer_url.clone(),
            sub: user.user_id.clone(),
            aud: self.audience.clone(),
            exp: now.saturating_add(self.cfg.access_ttl_secs),
            iat: now,
            nbf: None,
            jti: random_id()?,
            scope: user.scope.clone(),
            client_id: Some(self.cfg.client_id.clone()),
        };
        let access_token = self.keys.active().sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            ApiError::Internal
        })?;
        let body =
            TokenBody { access_token: &access_token, token_type: "Bearer", expires_in: self.cfg.access_ttl_secs };
        let max_age = refresh_expires_at.saturating_sub(now);
        Ok(Response::json(StatusCode::OK, &body)?.no_store().with_cookies(cookie::set_refresh_cookies(
            &self.cfg.cookie_path_prefix,
            refresh_token,
            max_age,
        )))
    }

    #[instrument(skip_all)]
    async fn refresh(&self, req: &Request) -> Result<Response, ApiError> {
        check_csrf(&req.headers, &self.cfg.allowed_origins)?;
        let token = cookie::refresh_token(&req.headers).ok_or(ApiError::InvalidToken)?;
        let old_hash = hash_refresh_token(token);
        let now = self.now();
        let (record, family) = self.store.get_refresh(&old_hash).await?.ok_or(ApiError::InvalidToken)?;
        // TTL deletion is late: expiry is always checked here.
        if record.expires_at <= now || family.revoked_at.is_some() || family.expires_at <= now {
            return Err(ApiError::InvalidToken);
        }
        let user = self.store.get_user(&record.user_id).await?.ok_or(ApiError::InvalidToken)?;
        let new_token = new_refresh_token()?;
        let new = self.new_refresh_record(&new_token, &family, now);
        let outcome = match record.used_at {
            Some(used_at) => RotateOutcome::AlreadyUsed { used_at },
            None => self.store.rotate(&old_hash, &new, now).await?,
        };
        match outcome {
            RotateOutcome::Rotated => self.token_response(&user, &new_token, new.expires_at, now),
            RotateOutcome::Inactive => Err(ApiError::InvalidToken),
            RotateOutcome::AlreadyUsed { used_at } => {
                let grace = self.cfg.reuse_grace_secs;
                if grace > 0 && now < used_at.saturating_add(grace) {
                    if self.store.add_to_family(&new, now).await? {
                        debug!(family_id = %family.family_id, "used token presented within the grace window");
                        return self.token_response(&user, &new_token, new.expires_at, now);
                    }
                    return Err(ApiError::InvalidToken);
                }
                self.store.revoke_family(&family.family_id, now).await?;
                warn!(
                    target: "audit",
                    event = "refresh_token_reuse",
                    user_id = %family.user_id,
                    family_id = %family.family_id,
                    used_at,
                    now,
                    "refresh token reuse: family revoked"
                );
                Err(ApiError::InvalidToken)
            }
        }
    }

    #[instrument(skip_all)]
    async fn logout(&self, req: &Request) -> Result<Response, ApiError> {
        check_csrf(&req.headers, &self.cfg.allowed_origins)?;
        if let Some(token) = cookie::refresh_token(&req.headers) {
            let now = self.now();
            if let Some((_, family)) = self.store.get_refresh(&hash_refresh_token(token)).await? {
                self.store.revoke_family(&family.family_id, now).await?;
                info!(target: "audit", event = "logout", user_id = %family.user_id, family_id = %family.family_id, "logout");
            }
        }
        // Idempotent: no cookie or an unknown one still ends with no cookie.
        Ok(Response::empty(StatusCode::NO_CONTENT)
            .no_store()
            .with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix)))
    }

    #[instrument(skip_all)]
    async fn logout_all(&self, req: &Request) -> Result<Response, ApiError> {
        let token = bearer_token(&req.headers)?;
        let now = self.now();
        let verified = self.verifier.verify_at(token, Duration::from_secs(now)).map_err(|e| {
            if e.is_server_side() {
                tracing::error!(reason = e.reason(), "own keys unusable");
                ApiError::Internal
            } else {
                debug!(reason = e.reason(), "bearer token refused");
                ApiError::BearerInvalid
            }
        })?;
        let revoked = self.store.revoke_user_families(verified.sub(), now).await?;
        info!(target: "audit", event = "logout_all", user_id = %verified.sub(), revoked, "all sessions revoked");
        Ok(Response::json(StatusCode::OK, &serde_json::json!({"revoked_sessions": revoked}))?
            .no_store()
            .with_cookies(cookie::clear_refresh_cookies(&self.cfg.cookie_path_prefix)))
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(ApiError::BearerRequired);
    };
    let v = v.to_str().map_err(|_| ApiError::BearerInvalid)?;
    let (scheme, token) = v.split_once(' ').ok_or(ApiError::BearerRequired)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::BearerRequired);
    }
    let token = token.trim();
    if token.is_empty() { Err(ApiError::BearerRequired) } else { Ok(token) }
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
        assert_eq!(bearer_token(&h), Err(ApiError::BearerRequired));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(bearer_token(&h), Err(ApiError::BearerRequired));
    }
}
