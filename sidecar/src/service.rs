//! The sidecar's answers: a plain async function from a request head to a
//! response. No socket in here, so tests call it directly and the dev stack
//! can mount it anywhere.
//!
//! Compatible with:
//! - nginx `auth_request` (2xx allows, 401/403 deny; any other status is a 500
//!   at nginx, which is why a malformed `Authorization` header gets 401 with
//!   `error="invalid_request"` rather than 400);
//! - Envoy `ext_authz` (HTTP service; `/verify` and `/verify/<original path>`,
//!   any method; allowed headers `x-auth-*`);
//! - Traefik `forwardAuth` (`authResponseHeaders: X-Auth-Subject, X-Auth-Issuer, ...`).
//!
//! An allowed answer always carries every header in [`IDENTITY_HEADERS`],
//! empty when the token lacks the claim, so a proxy that copies them onto
//! the upstream request always overwrites any copy the client sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use token_core::{Credentials, Decision, VerifiedToken, Verifier, VerifyError, parse_authorization, unix_now};
use tracing::debug;

/// Response body type.
pub type Body = Full<Bytes>;

/// Response header: the token's `sub`.
pub const X_AUTH_SUBJECT: &str = "x-auth-subject";
/// Response header: the token's `iss`. With several trusted issuers `sub`
/// alone is ambiguous: the pair names one principal.
pub const X_AUTH_ISSUER: &str = "x-auth-issuer";
/// Response header: the token's `scope`.
pub const X_AUTH_SCOPE: &str = "x-auth-scope";
/// Response header: the token's `client_id` (empty when it has none).
pub const X_AUTH_CLIENT_ID: &str = "x-auth-client-id";

/// Every identity header an allowed answer carries, always.
pub const IDENTITY_HEADERS: [&str; 4] = [X_AUTH_SUBJECT, X_AUTH_ISSUER, X_AUTH_SCOPE, X_AUTH_CLIENT_ID];

// The same names, parsed once: inserting by `&str` re-parses the name on
// every response (about 1,000 instructions a response of ~42,000 on the
// cached-token path, under callgrind).
static SUBJECT: HeaderName = HeaderName::from_static(X_AUTH_SUBJECT);
static ISSUER: HeaderName = HeaderName::from_static(X_AUTH_ISSUER);
static SCOPE: HeaderName = HeaderName::from_static(X_AUTH_SCOPE);
static CLIENT_ID: HeaderName = HeaderName::from_static(X_AUTH_CLIENT_ID);

/// The sidecar's state: the shared verifier.
#[derive(Debug, Clone)]
pub struct Sidecar {
    verifier: Arc<Verifier>,
    request_timeout: Duration,
}

/// The one `Authorization` value, or `Malformed` when there are several
/// or it is not visible ASCII.
fn bearer(headers: &HeaderMap) -> Credentials<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Credentials::Missing };
    if values.next().is_some() {
        return Credentials::Malformed;
    }
    match value.to_str() {
        Ok(v) => parse_authorization(Some(v)),
        Err(_) => Credentials::Malformed,
    }
}

/// The scopes asked for with `?scope=a+b` (repeatable).
fn required_scopes(query: Option<&str>) -> Vec<String> {
    let Some(q) = query else { return Vec::new() };
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == "scope" {
            out.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
    }
    out
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn challenge(resp: &mut Response<Body>, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    } else {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl Sidecar {
    /// A sidecar over a verifier that is already warmed up (or warming).
    pub fn new(verifier: Arc<Verifier>, request_timeout: Duration) -> Self {
        Sidecar { verifier, request_timeout }
    }

    /// The shared verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Answers one request within the request timeout (503 past it: only a
    /// JWKS refetch can take that long, and that is not the client's fault).
    pub async fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        match tokio::time::timeout(self.request_timeout, self.route(req)).await {
            Ok(resp) => resp,
            Err(_) => {
                let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "timed out");
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        }
    }

    async fn route<B>(&self, req: &Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if path == "/verify" || path.starts_with("/verify/") {
            return self.verify(req).await;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => self.ready(),
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.verifier.render_prometheus(unix_now()),
            ),
            _ => json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }

    fn ready(&self) -> Response<Body> {
        let health = self.verifier.health(unix_now());
        let issuers: Vec<_> = health
            .issuers
            .iter()
            .map(|h| {
                serde_json::json!({
                    "issuer": h.issuer,
                    "keys": h.keys,
                    "age_seconds": h.age.map(|a| a.as_secs()),
                    "usable": h.usable,
                    "stale": h.stale,
                    "consecutive_failures": h.consecutive_failures,
                    "last_error": h.last_error,
                })
            })
            .collect();
        let revocation = health.revocation.as_ref().map(|r| {
            serde_json::json!({
                "lag_seconds": r.lag.map(|l| l.as_secs_f64()),
                "max_lag_seconds": r.max_lag.as_secs(),
                "stale": r.stale,
                "entries": r.entries,
                "consecutive_failures": r.consecutive_failures,
                "last_error": r.last_error,
            })
        });
        let ready = health.ready();
        let body = serde_json::json!({ "ready": ready, "issuers": issuers, "revocation": revocation }).to_string();
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        text(status, "application/json", body)
    }

    async fn verify<B>(&self, req: &Request<B>) -> Response<Body> {
        let metrics = self.verifier.metrics();
        let token = match bearer(req.headers()) {
            Credentials::Bearer(t) => t,
            Credentials::Missing => {
                metrics.record(Decision::MissingToken);
                let mut r = json_error(StatusCode::UNAUTHORIZED, "unauthorized", "a bearer token is required");
                challenge(&mut r, "Bearer".into());
                return r;
            }
            Credentials::Malformed => {
                metrics.record(Decision::InvalidRequest);
                let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_request", "malformed Authorization header");
                challenge(&mut r, r#"Bearer error="invalid_request""#.into());
                return r;
            }
        };
        let token = match self.verifier.verify(token).await {
            Ok(t) => t,
            Err(e) => return self.rejected(e),
        };
        let required = required_scopes(req.uri().query());
        if !token.has_scopes(required.iter().map(String::as_str)) {
            metrics.record(Decision::InsufficientScope);
            debug!(sub = token.sub(), "insufficient scope");
            let scope = required.join(" ");
            let mut r = json_error(StatusCode::FORBIDDEN, "insufficient_scope", "the token lacks a required scope");
            challenge(&mut r, format!(r#"Bearer error="insufficient_scope", scope="{scope}""#));
            return r;
        }
        match allowed(&token) {
            Some(r) => {
                metrics.record(Decision::Allow);
                r
            }
            None => {
                // A valid token whose sub or scope cannot travel in a header:
                // refuse rather than forward a request without an identity.
                metrics.record(Decision::Rejected(VerifyError::Malformed));
                let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_token", "claims not representable");
                challenge(&mut r, r#"Bearer error="invalid_token""#.into());
                r
            }
        }
    }

    fn rejected(&self, e: VerifyError) -> Response<Body> {
        self.verifier.metrics().record(Decision::Rejected(e));
        debug!(reason = e.reason(), "token rejected");
        if e.is_server_side() {
            // No usable keys, or the revocation list is stale under
            // REVOCATION_STALE_POLICY=refuse: ours, not the client's.
            let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", &e.to_string());
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        let description = e.to_string();
        let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_token", &description);
        challenge(&mut r, format!(r#"Bearer error="invalid_token", error_description="{description}""#));
        r
    }
}

fn allowed(token: &VerifiedToken) -> Option<Response<Body>> {
    let mut resp = Response::new(Full::new(token.claims_json().clone()));
    let h = resp.headers_mut();
    h.insert(SUBJECT.clone(), HeaderValue::from_str(token.sub()).ok()?);
    h.insert(ISSUER.clone(), HeaderValue::from_str(token.issuer()).ok()?);
    h.insert(SCOPE.clone(), HeaderValue::from_str(token.scope()).ok()?);
    // Empty rather than absent: a proxy copying the header then replaces a
    // client-sent X-Auth-Client-Id instead of passing it on.
    let client_id = match token.client_id() {
        Some(c) => HeaderValue::from_str(c).ok()?,
        None => HeaderValue::from_static(""),
    };
    h.insert(CLIENT_ID.clone(), client_id);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn one_bearer_header() {
        assert_eq!(bearer(&headers(&["bearer a.b.c"])), Credentials::Bearer("a.b.c"));
        assert_eq!(bearer(&headers(&[])), Credentials::Missing);
        assert_eq!(bearer(&headers(&["Basic dXNlcjpwYXNz"])), Credentials::Missing);
        assert_eq!(bearer(&headers(&["Bearer a b"])), Credentials::Malformed);
    }

    #[test]
    fn several_or_non_ascii_headers_are_malformed() {
        assert_eq!(bearer(&headers(&["Bearer a.b.c", "Bearer d.e.f"])), Credentials::Malformed);
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap());
        assert_eq!(bearer(&h), Credentials::Malformed);
    }

    fn sidecar() -> (Sidecar, token_core::SigningKey) {
        let iss = "https://issuer.test";
        let cfg = token_core::VerifierConfig::from_settings(&token_core::Settings::from_pairs(&[
            ("AUTH_ISSUER", iss),
            ("AUTH_AUDIENCE", "api"),
            ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ]))
        .unwrap();
        let verifier = Verifier::new(&cfg).unwrap();
        let key = token_core::SigningKey::generate(token_core::Algorithm::ES256, "k1").unwrap();
        let jwks = token_core::PublicJwks { keys: vec![key.public_jwk().clone()] };
        verifier.install_jwks(iss, &serde_json::to_vec(&jwks).unwrap()).unwrap();
        (Sidecar::new(verifier, Duration::from_secs(5)), key)
    }

    fn verify(s: &Sidecar, token: &str) -> Response<Body> {
        let req = Request::get("/verify").header(AUTHORIZATION, format!("Bearer {token}")).body(()).unwrap();
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(s.handle(&req))
    }

    /// Every identity header is always there, empty for an absent claim, so
    /// a proxy copying them always overwrites what a client sent.
    #[test]
    fn an_allowed_answer_carries_every_identity_header() {
        let (s, key) = sidecar();
        let now = unix_now().as_secs();
        let base = serde_json::json!({
            "iss": "https://issuer.test", "sub": "u1", "aud": "api", "exp": now + 600, "iat": now, "jti": "j"
        });
        let resp = verify(&s, &key.sign_any(&base).unwrap());
        assert_eq!(resp.status(), StatusCode::OK);
        for name in IDENTITY_HEADERS {
            assert_eq!(resp.headers().get_all(name).iter().count(), 1, "{name}");
        }
        assert_eq!(resp.headers()[X_AUTH_SUBJECT], "u1");
        assert_eq!(resp.headers()[X_AUTH_ISSUER], "https://issuer.test");
        assert_eq!(resp.headers()[X_AUTH_SCOPE], "");
        assert_eq!(resp.headers()[X_AUTH_CLIENT_ID], "");
        let mut full = base.clone();
        full["scope"] = "a b".into();
        full["client_id"] = "web".into();
        let resp = verify(&s, &key.sign_any(&full).unwrap());
        assert_eq!(resp.headers()[X_AUTH_SCOPE], "a b");
        assert_eq!(resp.headers()[X_AUTH_CLIENT_ID], "web");
    }

    fn sidecar_with(extra: &[(&str, &str)]) -> (Sidecar, token_core::SigningKey) {
        let iss = "https://issuer.test";
        let mut pairs =
            vec![("AUTH_ISSUER", iss), ("AUTH_AUDIENCE", "api"), ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json")];
        pairs.extend_from_slice(extra);
        let cfg = token_core::VerifierConfig::from_settings(&token_core::Settings::from_pairs(&pairs)).unwrap();
        let verifier = Verifier::new(&cfg).unwrap();
        let key = token_core::SigningKey::generate(token_core::Algorithm::ES256, "k1").unwrap();
        let jwks = token_core::PublicJwks { keys: vec![key.public_jwk().clone()] };
        verifier.install_jwks(iss, &serde_json::to_vec(&jwks).unwrap()).unwrap();
        (Sidecar::new(verifier, Duration::from_secs(5)), key)
    }

    #[test]
    fn a_revoked_token_gets_401_invalid_token_and_is_counted() {
        use token_core::revocation::{FeedEvent, RevocationId};
        let (s, key) = sidecar_with(&[("REVOCATION_FEED_URL", "http://127.0.0.1:9/revocations")]);
        let now = unix_now().as_secs();
        let claims = |sid: &str| {
            serde_json::json!({"iss": "https://issuer.test", "sub": "u1", "aud": "api", "exp": now + 600,
                "iat": now, "jti": "j", "sid": sid})
        };
        let (a, b) = (key.sign_any(&claims("fam-a")).unwrap(), key.sign_any(&claims("fam-b")).unwrap());
        assert_eq!(verify(&s, &a).status(), StatusCode::OK, "positive control");
        s.verifier()
            .revocations()
            .apply(&FeedEvent::Session { id: RevocationId::session("fam-a"), until: now + 900 }, now);
        let resp = verify(&s, &a);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let www = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(www.contains(r#"error="invalid_token""#) && www.contains("revoked"), "{www}");
        assert_eq!(verify(&s, &b).status(), StatusCode::OK, "the other session");
        let metrics = s.verifier().render_prometheus(unix_now());
        for line in [
            r#"auth_decisions_total{outcome="unauthorized",reason="revoked"} 1"#,
            "auth_revocation_revoked_total 1",
            "auth_revocation_entries 1",
            "auth_revocation_lag_seconds -1.000",
        ] {
            assert!(metrics.contains(line), "missing {line} in\n{metrics}");
        }
    }

    #[test]
    fn a_stale_feed_under_the_refuse_policy_gets_503_and_serve_keeps_serving() {
        let feed = ("REVOCATION_FEED_URL", "http://127.0.0.1:9/revocations");
        let now = unix_now().as_secs();
        let claims = serde_json::json!({"iss": "https://issuer.test", "sub": "u1", "aud": "api",
            "exp": now + 600, "iat": now, "jti": "j"});
        let (s, key) = sidecar_with(&[feed, ("REVOCATION_STALE_POLICY", "refuse")]);
        let resp = verify(&s, &key.sign_any(&claims).unwrap());
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(RETRY_AFTER));
        let (s, key) = sidecar_with(&[feed]);
        assert_eq!(verify(&s, &key.sign_any(&claims).unwrap()).status(), StatusCode::OK);
        let ready = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(s.handle(&Request::get("/readyz").body(()).unwrap()));
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "no complete listing yet: not ready");
    }

    #[test]
    fn scopes_from_the_query() {
        assert!(required_scopes(None).is_empty());
        assert_eq!(required_scopes(Some("scope=a+b")), vec!["a", "b"]);
        assert_eq!(required_scopes(Some("scope=a%20b&x=1&scope=c")), vec!["a", "b", "c"]);
        assert_eq!(required_scopes(Some("scope=")), Vec::<String>::new());
        assert_eq!(required_scopes(Some("scope=pets%3Aread")), vec!["pets:read"]);
    }
}
