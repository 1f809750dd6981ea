//! The local stack: the whole system on one machine, on the embedded
//! store, with no AWS account (`cargo run -p devstack`).
//!
//! It wires the three deployables in one process without making any of them
//! depend on another:
//!
//! - the issuer (SQLite store and signing key in the data directory);
//! - the sidecar, verifying against the issuer's JWKS;
//! - a front door that plays API Gateway's part as the deploy template
//!   configures it: for each request to a protected route it builds the REST
//!   API REQUEST authorizer event, invokes the authorizer's handler, caches
//!   the returned policy per token, method and resource (the template's
//!   identity sources: `Authorization`, `$context.httpMethod`,
//!   `$context.resourcePath`) for the authorizer TTL, applies the cached
//!   policy only to requests with the same key, enforces Allow / Deny (403)
//!   / Unauthorized (401), and forwards allowed requests with the authorizer
//!   context to
//! - a demo backend that echoes what it received.
//!
//! The issuer's own routes are public at the front door, as in the deploy
//! template. The front door also serves the local mail outbox at
//! [`OUTBOX_PATH`] (dev only: there is no such route on AWS, where mail goes
//! through SES), so a walkthrough can follow the links the issuer sends.

#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authorizer::{Answer, AuthContext, Authorizer, AuthorizerConfig, AuthorizerError, AuthorizerEvent};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use issuer::config::{IssuerConfig, Shape};
use issuer::server::{ServerOptions, local_app, serve_with};
use token_core::serve::ServeOptions;
use token_core::{Settings, Verifier, VerifierConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// The route map the demo authorizer uses unless `AUTH_ROUTE_SCOPES` is set.
pub const DEMO_ROUTES: &str =
    "GET /pets=pets:read,GET /pets/{id}=pets:read,POST /pets=pets:write,DELETE /pets/{id}=admin,GET /whoami=openid";
/// Scopes new users get unless `ISSUER_DEFAULT_SCOPES` is set.
pub const DEMO_SCOPES: &str = "openid pets:read pets:write";
/// The API id and stage in the method ARNs the front door builds.
pub const DEV_ARN_PREFIX: &str = "arn:aws:execute-api:local:000000000000:devapi/dev";

const ISSUER_ROUTES: [&str; 12] = [
    "/register",
    "/verify-email",
    "/password/forgot",
    "/password/reset",
    "/password/change",
    "/login",
    "/refresh",
    "/logout",
    "/logout-all",
    "/revocations",
    "/.well-known/jwks.json",
    "/.well-known/openid-configuration",
];

/// The dev-only route listing the issuer's outbox, newest first:
/// `GET /dev/outbox?to=<address>&limit=<n>` (both optional; limit 1-100,
/// default 20).
pub const OUTBOX_PATH: &str = "/dev/outbox";

/// The front door's default authorizer cache TTL: the deploy template's
/// `AuthorizerCacheTtl` default.
pub const DEFAULT_AUTHORIZER_TTL_SECS: u64 = 60;

/// Headers the front door sets on forwarded requests (any a client sends are
/// dropped first).
pub const CONTEXT_HEADER_PREFIX: &str = "x-authorizer-";

/// Where everything listens, and the knobs of the front door.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The data directory (SQLite file and signing keys).
    pub data_dir: PathBuf,
    /// Address every server binds (loopback by default).
    pub host: IpAddr,
    /// Front door (API Gateway) port, default 8000.
    pub gateway_port: u16,
    /// Issuer port, default 8080.
    pub issuer_port: u16,
    /// Sidecar port, default 8081.
    pub sidecar_port: u16,
    /// Demo backend port, default 8090.
    pub backend_port: u16,
    /// How long the front door caches a policy per token (API Gateway's
    /// authorizer result TTL): the deploy template's `AuthorizerCacheTtl`,
    /// default 60 s; 0 turns caching off. A revoked token keeps passing the
    /// front door for up to this long plus the feed's poll interval.
    pub authorizer_ttl: Duration,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            data_dir: PathBuf::from("./data"),
            host: IpAddr::from([127, 0, 0, 1]),
            gateway_port: 8000,
            issuer_port: 8080,
            sidecar_port: 8081,
            backend_port: 8090,
            authorizer_ttl: Duration::from_secs(DEFAULT_AUTHORIZER_TTL_SECS),
        }
    }
}

/// The addresses actually bound (ports may have been 0).
#[derive(Debug, Clone, Copy)]
pub struct DevAddrs {
    /// Front door.
    pub gateway: SocketAddr,
    /// Issuer.
    pub issuer: SocketAddr,
    /// Sidecar.
    pub sidecar: SocketAddr,
    /// Demo backend.
    pub backend: SocketAddr,
}

fn url(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() { format!("http://localhost:{}", addr.port()) } else { format!("http://{addr}") }
}

async fn bind(host: IpAddr, port: u16, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind((host, port)).await.map_err(|e| format!("{what}: cannot listen on {host}:{port}: {e}"))
}

/// Starts everything, prints the URLs and a walkthrough (through `on_ready`),
/// and serves until `shutdown` completes; then stops every server, letting
/// requests in flight finish.
///
/// Settings from `env` (the `ISSUER_*` and `AUTH_*` variables) override the
/// demo defaults; `ISSUER_URL`, listen addresses and the JWKS URL are the
/// stack's own.
///
/// # Errors
/// A message naming what could not start (a port in use, a bad setting).
pub async fn run(
    opts: DevOptions,
    env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    on_ready: impl FnOnce(DevAddrs),
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let issuer_l = bind(opts.host, opts.issuer_port, "issuer").await?;
    let gateway_l = bind(opts.host, opts.gateway_port, "front door").await?;
    let sidecar_l = bind(opts.host, opts.sidecar_port, "sidecar").await?;
    let backend_l = bind(opts.host, opts.backend_port, "demo backend").await?;
    let addrs = DevAddrs {
        gateway: gateway_l.local_addr().map_err(|e| e.to_string())?,
        issuer: issuer_l.local_addr().map_err(|e| e.to_string())?,
        sidecar: sidecar_l.local_addr().map_err(|e| e.to_string())?,
        backend: backend_l.local_addr().map_err(|e| e.to_string())?,
    };
    let issuer_url = url(addrs.issuer);
    // The verifiers fetch from the bound address, whatever name the issuer URL uses.
    let jwks_url = token_core::config::jwks_url_of(&format!("http://{}", addrs.issuer));
    let feed_url = token_core::revocation::feed_url_of(&format!("http://{}", addrs.issuer));
    let data_dir = opts.data_dir.to_string_lossy().into_owned();
    let env = Arc::new(env);

    // The issuer.
    let issuer_env = Arc::clone(&env);
    let (issuer_url2, data_dir2) = (issuer_url.clone(), data_dir.clone());
    let issuer_settings = Settings::new(move |name| match name {
        "ISSUER_URL" => Some(issuer_url2.clone()),
        "ISSUER_DATA_DIR" => Some(data_dir2.clone()),
        "ISSUER_STORE" => Some("sqlite".into()),
        "ISSUER_AUDIENCE" => issuer_env(name).or_else(|| Some("api".into())),
        "ISSUER_DEFAULT_SCOPES" => issuer_env(name).or_else(|| Some(DEMO_SCOPES.into())),
        "ISSUER_PRODUCT_NAME" => issuer_env(name).or_else(|| Some("Pets demo".into())),
        _ => issuer_env(name),
    });
    let icfg = IssuerConfig::from_settings(&issuer_settings, Shape::Local).map_err(|e| e.to_string())?;
    let audiences = icfg.audiences.join(",");
    let server_opts = ServerOptions::from_config(&icfg);
    let app = Arc::new(local_app(icfg).map_err(|e| format!("issuer: {e}"))?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve_with(issuer_l, Arc::clone(&app), server_opts, stopped(stop_rx.clone()))));

    // The verifier settings the sidecar and the authorizer share.
    let auth_env = Arc::clone(&env);
    let (iss3, aud3, jwks3) = (issuer_url.clone(), audiences.clone(), jwks_url.clone());
    let auth_settings = Settings::new(move |name| match name {
        "AUTH_ISSUER" => Some(iss3.clone()),
        "AUTH_AUDIENCE" => Some(aud3.clone()),
        "AUTH_JWKS_URL" => Some(jwks3.clone()),
        // The issuer's feed at its bound address; `off` still turns it off.
        "REVOCATION_FEED_URL" => match auth_env(name).as_deref() {
            Some("off") => Some("off".into()),
            _ => Some(feed_url.clone()),
        },
        "AUTH_CONFIG_FILE" => None,
        "AUTH_ROUTE_SCOPES" => auth_env(name).or_else(|| Some(DEMO_ROUTES.into())),
        // No CloudWatch here: the front door's authorizer writes no metric
        // lines unless asked to.
        "AUTH_METRICS_INTERVAL_SECS" => auth_env(name).or_else(|| Some("0".into())),
        _ => auth_env(name),
    });
    let acfg = AuthorizerConfig::from_settings(&auth_settings).map_err(|e| e.to_string())?;
    let vcfg: VerifierConfig = acfg.verifier.clone();

    // The sidecar.
    let sidecar_verifier = Verifier::new(&vcfg).map_err(|e| format!("sidecar: {e}"))?;
    let authorizer_verifier = Verifier::new(&vcfg).map_err(|e| format!("authorizer: {e}"))?;
    for v in [&sidecar_verifier, &authorizer_verifier] {
        for r in v.warm_up().await {
            if let Err(e) = r {
                warn!(error = %e, "JWKS not loaded yet");
            }
        }
        v.spawn_refresh();
    }
    // As deployed: the sidecar follows the feed in the background; the
    // authorizer lists it once at init and then polls from its invocations.
    match (sidecar_verifier.revocation_feed(), authorizer_verifier.revocation_feed()) {
        (Some(sidecar_feed), Some(authorizer_feed)) => {
            sidecar_feed.spawn_loop();
            if let Err(e) = authorizer_feed.poll().await {
                warn!(error = %e, "revocations not loaded yet");
            }
        }
        _ => warn!("REVOCATION_FEED_URL=off: revocation checks are OFF in the sidecar and the front door"),
    }
    let sidecar = Arc::new(sidecar::Sidecar::new(sidecar_verifier, Duration::from_secs(10)));
    tasks.push(tokio::spawn(sidecar::serve(sidecar_l, sidecar, sidecar::Limits::default(), stopped(stop_rx.clone()))));

    // The demo backend and the front door.
    tasks.push(tokio::spawn(serve_fn(backend_l, stopped(stop_rx.clone()), |req, _| async move { echo(req) })));
    let outbox = issuer::mail::Outbox::open(&opts.data_dir.join(issuer::server::OUTBOX_DIR))
        .map_err(|e| format!("mail outbox in {data_dir}: {e}"))?;
    let gateway = Arc::new(Gateway::new(
        Authorizer::new(authorizer_verifier, &acfg),
        opts.authorizer_ttl,
        format!("http://{}", addrs.issuer),
        format!("http://{}", addrs.backend),
        outbox,
    )?);
    tasks.push(tokio::spawn(serve_fn(gateway_l, stopped(stop_rx.clone()), move |req, peer| {
        let g = Arc::clone(&gateway);
        async move { g.handle(req, peer).await }
    })));

    info!(
        gateway = %addrs.gateway, issuer = %addrs.issuer, sidecar = %addrs.sidecar, backend = %addrs.backend,
        listen = %addrs.gateway, data_dir = %data_dir, authorizer_ttl_secs = opts.authorizer_ttl.as_secs(),
        "dev stack ready"
    );
    on_ready(addrs);
    shutdown.await;
    info!("stopping: letting requests in flight finish");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    info!("stopped");
    Ok(())
}

/// The walkthrough printed at start-up (and shown in the README).
pub fn walkthrough(a: &DevAddrs) -> String {
    let (gw, iss, sc) = (url(a.gateway), url(a.issuer), url(a.sidecar));
    format!(
        r#"
Local stack is up (embedded store, no AWS account):
  front door (API Gateway + authorizer)  {gw}
  issuer                                 {iss}   (also through the front door)
  sidecar (forward auth)                 {sc}/verify
  JWKS                                   {iss}/.well-known/jwks.json

Try it (mail goes to the outbox: {gw}/dev/outbox):
  curl -s -X POST {iss}/register -H 'content-type: application/json' -d '{{"email":"ada@example.com","password":"correct horse battery"}}'
  curl -s '{gw}/dev/outbox?to=ada@example.com&limit=1'        # the verification link; its token=...
  curl -s -X POST {iss}/verify-email -H 'content-type: application/json' -d '{{"token":"<token from the link>"}}'
  curl -s -c jar.txt -X POST {iss}/login -H 'content-type: application/json' -d '{{"email":"ada@example.com","password":"correct horse battery"}}'
  TOKEN=...                                                   # access_token from the login answer
  curl -s {gw}/pets -H "authorization: Bearer $TOKEN"           # 200, echoed with the authorizer context
  curl -s -X DELETE {gw}/pets/1 -H "authorization: Bearer $TOKEN" # 403: needs scope admin
  curl -s -i {sc}/verify -H "authorization: Bearer $TOKEN"      # 200 with X-Auth-Subject
  curl -s -b jar.txt -c jar.txt -X POST {iss}/refresh -H 'x-requested-with: curl'   # new tokens, rotated cookie
  curl -s -b jar.txt -c jar.txt -X POST {iss}/logout -H 'x-requested-with: curl'    # revokes the session
  curl -s -i {sc}/verify -H "authorization: Bearer $TOKEN"      # 401 within seconds: its session is revoked
Forgot the password?
  curl -s -X POST {iss}/password/forgot -H 'content-type: application/json' -d '{{"email":"ada@example.com"}}'
  curl -s '{gw}/dev/outbox?to=ada@example.com&limit=1'        # the reset link (15 minutes, single use)
  curl -s -X POST {iss}/password/reset -H 'content-type: application/json' -d '{{"token":"<token>","password":"a new long passphrase"}}'
                                                              # every session and access token of ada is revoked
Ctrl-C stops everything.
"#
    )
}

type Body = Full<Bytes>;

fn json(status: StatusCode, body: serde_json::Value) -> http::Response<Body> {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A request read whole (bodies are small here; bounded at 1 MiB).
struct Incoming {
    method: Method,
    path_and_query: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Serves `f` on the shared serve loop, each request read whole first.
async fn serve_fn<F, Fut>(listener: TcpListener, shutdown: impl Future<Output = ()>, f: F) -> std::io::Result<()>
where
    F: Fn(Incoming, SocketAddr) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    token_core::serve::serve(listener, &ServeOptions::default(), shutdown, move |peer| {
        let f = f.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let f = f.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = match Limited::new(body, 1 << 20).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        return Ok::<_, Infallible>(json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            serde_json::json!({"message": "Request Too Long"}),
                        ));
                    }
                };
                let incoming = Incoming {
                    method: parts.method,
                    path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body,
                };
                Ok::<_, Infallible>(f(incoming, peer).await)
            }
        })
    })
    .await
}

/// The demo backend: echoes the request and the authorizer context.
fn echo(req: Incoming) -> http::Response<Body> {
    let mut context = serde_json::Map::new();
    for (name, value) in &req.headers {
        if let Some(key) = name.as_str().strip_prefix(CONTEXT_HEADER_PREFIX) {
            context.insert(key.to_owned(), serde_json::Value::String(value.to_str().unwrap_or("").to_owned()));
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "method": req.method.as_str(),
            "path": req.path_and_query,
            "authorizer": context,
            "body": String::from_utf8_lossy(&req.body),
        }),
    )
}

struct Gateway {
    authorizer: Authorizer,
    /// The authorizer's answer per Authorization value, method and resource
    /// (`authorizer::rest_cache_key`), for the TTL.
    cache: Option<moka::sync::Cache<String, Arc<Answer>>>,
    issuer: String,
    backend: String,
    http: reqwest::Client,
    outbox: issuer::mail::Outbox,
}

impl Gateway {
    fn new(
        authorizer: Authorizer,
        ttl: Duration,
        issuer: String,
        backend: String,
        outbox: issuer::mail::Outbox,
    ) -> Result<Self, String> {
        let cache =
            (!ttl.is_zero()).then(|| moka::sync::Cache::builder().max_capacity(10_000).time_to_live(ttl).build());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(29))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("front door: {e}"))?;
        Ok(Gateway { authorizer, cache, issuer, backend, http, outbox })
    }

    async fn handle(&self, req: Incoming, peer: SocketAddr) -> http::Response<Body> {
        if ISSUER_ROUTES.contains(&req.path.as_str()) {
            return self.forward(&self.issuer, req, peer, None, None).await;
        }
        if req.path == OUTBOX_PATH {
            return self.outbox(&req).await;
        }
        // TOKEN authorizer with identity source method.request.header.Authorization:
        // API Gateway answers 401 itself when it is missing or empty.
        let Some(header) = req.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return json(StatusCode::UNAUTHORIZED, serde_json::json!({"message": "Unauthorized"}));
        };
        if header.trim().is_empty() {
            return json(StatusCode::UNAUTHORIZED, serde_json::json!({"message": "Unauthorized"}));
        }
        let header = header.to_owned();
        let method_arn = format!("{DEV_ARN_PREFIX}/{}{}", req.method.as_str(), req.path);
        // As the deploy template configures API Gateway: a REQUEST authorizer
        // whose cache key is the token, the method and the resource (the
        // route map's template the path is routed to), for the TTL.
        let resource = self.authorizer.resource_for(&req.path).unwrap_or(&req.path).to_owned();
        let key = authorizer::rest_cache_key(&header, req.method.as_str(), &resource);
        let (answer, cache_state) = match self.cache.as_ref().and_then(|c| c.get(&key)) {
            Some(hit) => (hit, "hit"),
            None => {
                let event = AuthorizerEvent::rest_request(method_arn.clone(), resource, header);
                match self.authorizer.handle(&event).await {
                    Ok(answer) => {
                        let answer = Arc::new(answer);
                        if let Some(c) = &self.cache {
                            c.insert(key, Arc::clone(&answer));
                        }
                        (answer, "miss")
                    }
                    Err(AuthorizerError::Unauthorized(_)) => {
                        return json(StatusCode::UNAUTHORIZED, serde_json::json!({"message": "Unauthorized"}));
                    }
                    Err(AuthorizerError::KeysUnavailable) => {
                        return json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({"message": null}));
                    }
                }
            }
        };
        let (allowed, context, principal) = match &*answer {
            Answer::Policy(p) => {
                (authorizer::policy::allows(&p.policy_document, &method_arn), &p.context, p.principal_id.as_deref())
            }
            Answer::Simple(s) => (s.is_authorized, &s.context, None),
        };
        if !allowed {
            let mut r = json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"Message": "User is not authorized to access this resource with an explicit deny"}),
            );
            r.headers_mut().insert("x-dev-authorizer-cache", HeaderValue::from_static(cache_state));
            return r;
        }
        let mut r = self.forward(&self.backend, req, peer, Some(context), principal).await;
        r.headers_mut().insert("x-dev-authorizer-cache", HeaderValue::from_static(cache_state));
        r
    }

    /// `GET /dev/outbox`: the messages the issuer "sent", newest first.
    async fn outbox(&self, req: &Incoming) -> http::Response<Body> {
        if req.method != Method::GET {
            let mut r = json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"error": "method_not_allowed"}));
            r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        let query = req.path_and_query.split_once('?').map_or("", |(_, q)| q);
        let (mut to, mut limit) = (None, 20usize);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "to" => to = Some(v.trim().to_lowercase()),
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=100).contains(&n) => limit = n,
                    _ => {
                        return json(
                            StatusCode::BAD_REQUEST,
                            serde_json::json!({"error": "invalid_request", "error_description": "limit: 1 to 100"}),
                        );
                    }
                },
                _ => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "invalid_request", "error_description": "the outbox takes to and limit"}),
                    );
                }
            }
        }
        match self.outbox.list(issuer::mail::OUTBOX_MAX).await {
            Ok(all) => {
                let messages: Vec<_> =
                    all.into_iter().filter(|m| to.as_ref().is_none_or(|t| &m.to == t)).take(limit).collect();
                let mut r = json(StatusCode::OK, serde_json::json!({ "messages": messages }));
                r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": e.to_string()})),
        }
    }

    async fn forward(
        &self,
        base: &str,
        req: Incoming,
        peer: SocketAddr,
        context: Option<&AuthContext>,
        principal: Option<&str>,
    ) -> http::Response<Body> {
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 8);
        for (name, value) in &req.headers {
            // Hop-by-hop headers stay here; context headers only come from us.
            let n = name.as_str();
            if n.starts_with(CONTEXT_HEADER_PREFIX)
                || matches!(
                    n,
                    "connection"
                        | "keep-alive"
                        | "transfer-encoding"
                        | "upgrade"
                        | "te"
                        | "trailer"
                        | "proxy-connection"
                )
                || name == HOST
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert("x-forwarded-for", v);
        }
        if let Some(ctx) = context {
            let mut put = |k: &'static str, v: &str| {
                if let Ok(v) = HeaderValue::from_str(v) {
                    headers.insert(k, v);
                }
            };
            put("x-authorizer-principal-id", principal.unwrap_or(&ctx.sub));
            put("x-authorizer-sub", &ctx.sub);
            put("x-authorizer-iss", &ctx.iss);
            put("x-authorizer-scope", &ctx.scope);
            put("x-authorizer-jti", &ctx.jti);
            put("x-authorizer-exp", &ctx.exp.to_string());
            if let Some(c) = &ctx.client_id {
                put("x-authorizer-client-id", c);
            }
        }
        let url = format!("{base}{}", req.path_and_query);
        let sent = self.http.request(req.method, url).headers(headers).body(req.body).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "front door: backend unreachable");
                return json(StatusCode::BAD_GATEWAY, serde_json::json!({"message": "Bad Gateway"}));
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        let mut out = http::Response::new(Full::new(body));
        *out.status_mut() = status;
        for (name, value) in &headers {
            if !matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length") {
                out.headers_mut().append(name.clone(), value.clone());
            }
        }
        out
    }
}
