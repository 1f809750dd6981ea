//! `GET /revocations` over the issuer's real local HTTP server (hyper,
//! loopback port 0, SQLite store in a temporary directory) and through the
//! Lambda adapter: paging, strict parameters, headers, and no identifier in
//! clear. Time is a frozen clock the tests move.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::App;
use issuer::config::{IssuerConfig, Shape};
use issuer::server::{ServerOptions, serve_with};
use issuer::session::Credentials;
use issuer::store::sqlite::SqliteStore;
use token_core::Settings;
use token_core::revocation::{FeedEvent, FeedPage, RevocationId};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const REST: &str = include_str!("fixtures/apigw_rest_request.json");
const HTTP_API: &str = include_str!("fixtures/apigw_v2_request.json");

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("issuer-feed-{tag}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn page(&self) -> FeedPage {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A running issuer with a frozen clock.
struct Server {
    base: String,
    app: Arc<App<SqliteStore>>,
    offset: Arc<AtomicU64>,
    frozen: u64,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start(dir: &TempDir) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pairs: Vec<(String, String)> = vec![
        ("ISSUER_URL".into(), base.clone()),
        ("ISSUER_AUDIENCE".into(), "api".into()),
        ("ISSUER_DATA_DIR".into(), dir.0.to_string_lossy().into_owned()),
        ("ISSUER_REQUIRE_VERIFIED_EMAIL".into(), "false".into()),
    ];
    let settings = Settings::new(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    let cfg = IssuerConfig::from_settings(&settings, Shape::Local).unwrap();
    let opts = ServerOptions { drain_timeout: Duration::from_secs(2), ..ServerOptions::from_config(&cfg) };
    let offset = Arc::new(AtomicU64::new(0));
    let frozen = token_core::unix_now().as_secs();
    let clock_offset = Arc::clone(&offset);
    let app = issuer::server::local_app(cfg)
        .unwrap()
        .with_clock(Arc::new(move || frozen + clock_offset.load(Ordering::SeqCst)));
    let app = Arc::new(app);
    let (tx, rx) = oneshot::channel::<()>();
    let served = Arc::clone(&app);
    let task = tokio::spawn(async move {
        serve_with(listener, served, opts, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Server { base, app, offset, frozen, stop: Some(tx), task: Some(task), client }
}

impl Server {
    fn now(&self) -> u64 {
        self.frozen + self.offset.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    async fn send(&self, method: Method, path_and_query: &str) -> Resp {
        let req = http::Request::builder().method(method).uri(format!("{}{path_and_query}", self.base));
        let resp = self.client.request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        Resp { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    async fn get(&self, path_and_query: &str) -> Resp {
        self.send(Method::GET, path_and_query).await
    }

    /// Every page from the start, `limit` at a time; returns the events and
    /// how many pages it took.
    async fn follow(&self, limit: usize) -> (Vec<FeedEvent>, usize) {
        let mut events = Vec::new();
        let mut query = format!("?limit={limit}");
        for pages in 1..=1000 {
            let page = self.get(&format!("/revocations{query}")).await.page();
            assert!(page.events.len() <= limit);
            events.extend(page.events);
            if !page.more {
                return (events, pages);
            }
            query = format!("?after={}&limit={limit}", page.next);
        }
        panic!("the feed never said more: false");
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

fn creds(email: &str) -> Credentials {
    Credentials { email: email.into(), password: PASSWORD.into() }
}

/// Registers `n` users, logs each in twice, logs out one session of each
/// and logs out everywhere the even ones: `n` session events and `n / 2`
/// subject events. Returns every user id and session id involved.
async fn revoke_some<S: issuer::store::Store>(app: &App<S>, tag: &str, n: usize, now: u64) -> Vec<String> {
    let mut clear = Vec::new();
    for i in 0..n {
        let email = format!("{tag}{i}@example.com");
        let registered =
            app.sessions().register(creds(&email), issuer::attempts::ClientAddr::parse("192.0.2.9").unwrap(), now);
        let issuer::session::Registration::Created { user_id } = registered.await.unwrap() else {
            panic!("accounts are made at once here")
        };
        let a = app
            .sessions()
            .login(creds(&email), issuer::attempts::ClientAddr::parse("192.0.2.1").unwrap(), now)
            .await
            .unwrap();
        let b = app
            .sessions()
            .login(creds(&email), issuer::attempts::ClientAddr::parse("192.0.2.1").unwrap(), now)
            .await
            .unwrap();
        app.sessions().logout(Some(&a.refresh_token), now).await.unwrap();
        if i % 2 == 0 {
            app.sessions().logout_all(&b.access_token, now).await.unwrap();
        }
        clear.push(user_id);
        for t in [&a, &b] {
            clear.push(sid_of(&t.access_token));
        }
    }
    clear
}

fn sid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_feed_pages_over_http_without_identifiers_in_clear() {
    let dir = TempDir::new("paging");
    let s = start(&dir).await;
    let clear = revoke_some(&s.app, "first", 4, s.now()).await;

    // Just written: not settled yet, the page is empty and says as of when.
    let r = s.get("/revocations").await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let page = r.page();
    assert_eq!((page.events.len(), page.more), (0, false));
    assert_eq!(page.as_of_ms, s.now() * 1000 - 1000);

    s.advance(2);
    let r = s.get("/revocations").await;
    let body = r.text();
    for id in &clear {
        assert!(!body.contains(id.as_str()), "identifier in clear in {body}");
    }
    let all = r.page();
    assert_eq!(all.events.len(), 6, "4 session events and 2 subject events: {body}");
    assert!(!all.more);
    for limit in [1, 2, 5] {
        let (events, pages) = s.follow(limit).await;
        assert_eq!(events, all.events, "limit {limit}: the same events, in order, once");
        assert_eq!(pages, 6usize.div_ceil(limit), "limit {limit}: the last page is full and says more: false");
    }
    // The first user's logout is in the feed under the hashed sid.
    let first_sid = RevocationId::session(&clear[1]);
    assert!(all.events.iter().any(|e| matches!(e, FeedEvent::Session { id, .. } if *id == first_sid)));

    // From the last cursor: nothing, then exactly what happens next.
    let r = s.get(&format!("/revocations?after={}", all.next)).await.page();
    assert!(r.events.is_empty() && !r.more);
    let more = revoke_some(&s.app, "second", 1, s.now()).await;
    s.advance(2);
    let r = s.get(&format!("/revocations?after={}", r.next)).await.page();
    assert_eq!(r.events.len(), 2, "a logout and a logout-all: {r:?}");
    let body = serde_json::to_string(&r).unwrap();
    assert!(more.iter().all(|id| !body.contains(id.as_str())), "identifier in clear in {body}");
    // HEAD: the same headers, no body.
    let r = s.send(Method::HEAD, "/revocations").await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    s.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_invalid_request() {
    let dir = TempDir::new("bad");
    let s = start(&dir).await;
    for query in [
        "?after=",
        "?after=nope",
        "?after=0000019337a1f2c0.zz",
        "?after=0000019337A1F2C0",
        "?after=%30000019337a1f2c0",
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?limit=1&limit=2",
        "?since=0000019337a1f2c0",
    ] {
        let r = s.get(&format!("/revocations{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text());
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_request", "{query}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains("after") || description.contains("limit"), "{query}: {description}");
    }
    let long = format!("/revocations?after={}", "0".repeat(200));
    assert_eq!(s.get(&long).await.status, StatusCode::BAD_REQUEST);
    // Positive controls: a well-formed cursor and the largest limit.
    assert_eq!(s.get("/revocations?after=0000019337a1f2c0.0123456789abcdef&limit=1000").await.status, StatusCode::OK);
    assert_eq!(s.get("/revocations?limit=1").await.status, StatusCode::OK);
    // Other methods: 405 with Allow.
    let r = s.send(Method::POST, "/revocations").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    s.stop().await;
}

#[tokio::test]
async fn the_feed_is_not_in_the_discovery_document() {
    let dir = TempDir::new("discovery");
    let s = start(&dir).await;
    let r = s.get("/.well-known/openid-configuration").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text().contains("revocations"), "{}", r.text());
    s.stop().await;
}

/// The Lambda adapter passes the query string through: REST API (v1,
/// `queryStringParameters`) and HTTP API (v2, `rawQueryString`).
#[tokio::test]
async fn the_feed_pages_through_the_lambda_adapter() {
    let dir = TempDir::new("lambda");
    let pairs = [
        ("ISSUER_URL", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"),
        ("ISSUER_AUDIENCE", "api"),
        ("ISSUER_COOKIE_PATH_PREFIX", "/prod"),
        ("ISSUER_REQUIRE_VERIFIED_EMAIL", "false"),
    ];
    let d = dir.0.to_string_lossy().into_owned();
    let mut pairs = pairs.to_vec();
    pairs.push(("ISSUER_DATA_DIR", d.as_str()));
    let cfg = IssuerConfig::from_settings(&Settings::from_pairs(&pairs), Shape::Local).unwrap();
    let frozen = token_core::unix_now().as_secs();
    let offset = Arc::new(AtomicU64::new(0));
    let o = Arc::clone(&offset);
    let app = issuer::server::local_app(cfg).unwrap().with_clock(Arc::new(move || frozen + o.load(Ordering::SeqCst)));
    revoke_some(&app, "user", 2, frozen).await;
    offset.store(2, Ordering::SeqCst);

    let rest = |query: Option<(&str, &str)>| {
        let params = match query {
            None => "null".to_owned(),
            Some((k, v)) => format!("{{\"{k}\": \"{v}\"}}"),
        };
        let multi = match query {
            None => "null".to_owned(),
            Some((k, v)) => format!("{{\"{k}\": [\"{v}\"]}}"),
        };
        REST.replace("\"path\": \"/register\"", "\"path\": \"/revocations\"")
            .replace("\"httpMethod\": \"POST\"", "\"httpMethod\": \"GET\"")
            .replace("\"queryStringParameters\": null", &format!("\"queryStringParameters\": {params}"))
            .replace(
                "\"multiValueQueryStringParameters\": null",
                &format!("\"multiValueQueryStringParameters\": {multi}"),
            )
    };
    let call = |text: String| {
        let app = &app;
        async move {
            let event = lambda_http::request::from_str(&text).unwrap();
            let resp = issuer::lambda::handle_event(app, event).await;
            let status = resp.status();
            let body = match resp.body() {
                lambda_http::Body::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            };
            (status, body)
        }
    };
    let (status, body) = call(rest(None)).await;
    assert_eq!(status, 200, "{body}");
    let all: FeedPage = serde_json::from_str(&body).unwrap();
    assert_eq!(all.events.len(), 3, "{body}");

    let (status, body) = call(rest(Some(("limit", "1")))).await;
    assert_eq!(status, 200, "{body}");
    let first: FeedPage = serde_json::from_str(&body).unwrap();
    assert_eq!((first.events.len(), first.more), (1, true), "the limit reached the handler");
    let (status, body) = call(rest(Some(("after", &first.next)))).await;
    assert_eq!(status, 200, "{body}");
    let rest_page: FeedPage = serde_json::from_str(&body).unwrap();
    assert_eq!(rest_page.events, all.events[1..], "the cursor reached the handler");
    let (status, body) = call(rest(Some(("after", "bad")))).await;
    assert_eq!(status, 400, "{body}");

    // HTTP API: the raw query string.
    let v2 = HTTP_API
        .replace("\"rawPath\": \"/prod/login\"", "\"rawPath\": \"/prod/revocations\"")
        .replace("\"rawQueryString\": \"\"", "\"rawQueryString\": \"limit=2\"")
        .replace("\"method\": \"POST\"", "\"method\": \"GET\"")
        .replace("\"path\": \"/prod/login\"", "\"path\": \"/prod/revocations\"");
    let (status, body) = call(v2).await;
    assert_eq!(status, 200, "{body}");
    let page: FeedPage = serde_json::from_str(&body).unwrap();
    assert_eq!((page.events.len(), page.more), (2, true), "{body}");
}
