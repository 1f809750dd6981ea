//! The issuer over its real local HTTP server (hyper, loopback port 0) with
//! the SQLite store in a temporary directory. One test binary, modules
//! inside: every file in tests/ is a separate binary to link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use issuer::App;
use issuer::config::{IssuerConfig, Shape};
use issuer::server::{ServerOptions, serve_with};
use issuer::store::sqlite::SqliteStore;
use serde_json::{Value, json};
use token_core::Settings;
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const COOKIE: &str = "__Secure-refresh_token";

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!("issuer-api-{tag}-{:016x}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response, read whole.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    /// The refresh token the response set.
    fn refresh_cookie(&self) -> String {
        let c = self.set_cookies();
        let first = c.first().expect("a Set-Cookie");
        let value = first.split(';').next().unwrap().split_once('=').unwrap().1;
        assert!(!value.is_empty(), "{first}");
        value.to_owned()
    }

    fn access_token(&self) -> String {
        self.json()["access_token"].as_str().unwrap().to_owned()
    }
}

/// A running issuer.
struct Server {
    base: String,
    data_dir: PathBuf,
    app: Arc<App<SqliteStore>>,
    offset: Arc<AtomicU64>,
    /// How often the app has read the clock: a handler reads it first, so a
    /// test can tell that a request has reached the app.
    clock_reads: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start(dir: &Path, extra: &[(&str, &str)]) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let data_dir = dir.to_string_lossy().into_owned();
    let mut pairs: Vec<(String, String)> = vec![
        ("ISSUER_URL".into(), base.clone()),
        ("ISSUER_AUDIENCE".into(), "api".into()),
        ("ISSUER_DATA_DIR".into(), data_dir),
        ("ISSUER_ALLOWED_ORIGINS".into(), "https://app.example.com".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(n, _)| n != k);
        pairs.push(((*k).into(), (*v).into()));
    }
    let settings = Settings::new(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    let cfg = IssuerConfig::from_settings(&settings, Shape::Local).unwrap();
    let opts = ServerOptions { drain_timeout: Duration::from_secs(2), ..ServerOptions::from_config(&cfg) };
    // The clock stands still unless a test advances it: a real clock that
    // ticks between two requests makes exact Max-Age and Retry-After checks
    // flaky (CI saw Max-Age=49 for 50 when a second boundary fell between).
    let offset = Arc::new(AtomicU64::new(0));
    let clock_reads = Arc::new(AtomicU64::new(0));
    let (clock_offset, reads) = (Arc::clone(&offset), Arc::clone(&clock_reads));
    let frozen = token_core::unix_now().as_secs();
    let app = issuer::server::local_app(cfg).unwrap().with_clock(Arc::new(move || {
        reads.fetch_add(1, Ordering::SeqCst);
        frozen + clock_offset.load(Ordering::SeqCst)
    }));
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
    Server { base, data_dir: dir.to_owned(), app, offset, clock_reads, stop: Some(tx), task: Some(task), client }
}

impl Server {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        Resp { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    async fn post_json(&self, path: &str, body: &str) -> Resp {
        self.send(Method::POST, path, &[("content-type", "application/json")], body).await
    }

    /// `POST /register` only.
    async fn register_only(&self, email: &str, password: &str) -> Resp {
        self.post_json("/register", &serde_json::json!({"email": email, "password": password}).to_string()).await
    }

    /// Registers and, when the issuer accepted it, follows the verification
    /// link from the outbox: the account exists afterwards. Returns the
    /// registration's answer.
    async fn register(&self, email: &str, password: &str) -> Resp {
        let r = self.register_only(email, password).await;
        if r.status == StatusCode::ACCEPTED {
            let token = self.mailed_token(email, "verify_email").await.expect("a verification link was mailed");
            let v = self.post_json("/verify-email", &serde_json::json!({ "token": token }).to_string()).await;
            assert_eq!(v.status, StatusCode::OK, "verification: {:?}", v.body);
        }
        r
    }

    /// The outbox's messages to `to`, newest first.
    async fn mail_to(&self, to: &str) -> Vec<issuer::mail::OutboxEntry> {
        let outbox = issuer::mail::Outbox::open(&self.data_dir.join(issuer::server::OUTBOX_DIR)).unwrap();
        outbox.list(1000).await.unwrap().into_iter().filter(|e| e.to == to).collect()
    }

    /// The token of the newest `kind` link mailed to `to`.
    async fn mailed_token(&self, to: &str, kind: &str) -> Option<String> {
        let entry = self.mail_to(to).await.into_iter().find(|e| e.kind == kind)?;
        let link = entry.links.first()?;
        Some(link.split_once("token=")?.1.to_owned())
    }

    async fn login(&self, email: &str, password: &str) -> Resp {
        self.post_json("/login", &serde_json::json!({"email": email, "password": password}).to_string()).await
    }

    /// A login from another loopback address (the socket peer the issuer
    /// sees).
    async fn login_from(&self, local: [u8; 4], email: &str, password: &str) -> Resp {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(std::net::Ipv4Addr::from(local).into()));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let body = serde_json::json!({"email": email, "password": password}).to_string();
        let req = http::Request::post(format!("{}/login", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Resp { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    /// A JSON POST from another loopback address (the socket peer the
    /// issuer sees).
    async fn post_from(&self, local: [u8; 4], path: &str, body: &str) -> Resp {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(std::net::Ipv4Addr::from(local).into()));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let req = http::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Resp { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    async fn refresh(&self, token: &str) -> Resp {
        let cookie = format!("{COOKIE}={token}");
        self.send(Method::POST, "/refresh", &[("cookie", &cookie), ("x-requested-with", "test")], "").await
    }

    /// Registers and logs in; returns the login response.
    async fn session(&self, email: &str) -> Resp {
        assert_eq!(self.register(email, PASSWORD).await.status, StatusCode::ACCEPTED);
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r
    }

    fn advance(&self, secs: u64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.join(issuer::store::sqlite::DB_FILE)).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
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

/// A verifier for this issuer that fetches the JWKS over HTTP.
async fn http_verifier(base: &str) -> Arc<token_core::Verifier> {
    let v = token_core::Verifier::new(&token_core::VerifierConfig::for_issuer(base, vec!["api".into()], None)).unwrap();
    for r in v.warm_up().await {
        r.unwrap();
    }
    v
}

mod endpoints {
    use super::*;

    #[tokio::test]
    async fn register_answers_alike_for_new_and_taken_addresses_and_mails_either() {
        let dir = TempDir::new("register");
        let s = start(&dir.0, &[]).await;
        let first = s.register_only("Alice@Example.com ", PASSWORD).await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        assert_eq!(first.header("cache-control"), Some("no-store"));
        assert_eq!(s.count("SELECT count(*) FROM users"), 0, "no account before verification");
        assert_eq!(s.login("alice@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
        let mail = s.mail_to("alice@example.com").await;
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].kind, "verify_email");
        let token = s.mailed_token("alice@example.com", "verify_email").await.unwrap();
        assert!(!String::from_utf8_lossy(&first.body).contains(&token), "the token goes by mail only");
        let v = s.post_json("/verify-email", &serde_json::json!({ "token": token }).to_string()).await;
        assert_eq!(v.status, StatusCode::OK);
        assert_eq!(s.count("SELECT count(*) FROM users"), 1);
        let again = s.post_json("/verify-email", &serde_json::json!({ "token": token }).to_string()).await;
        assert_eq!((again.status, again.error().as_str()), (StatusCode::BAD_REQUEST, "invalid_link"), "single use");
        assert_eq!(s.login("alice@example.com", PASSWORD).await.status, StatusCode::OK);

        // The address is taken now: the same answer, byte for byte, and a
        // notice instead of a link; nothing changes.
        let taken = s.register_only("  alice@example.COM", "another password").await;
        assert_eq!((taken.status, &taken.body), (first.status, &first.body));
        let mail = s.mail_to("alice@example.com").await;
        assert_eq!(mail.len(), 2);
        assert_eq!((mail[0].kind.as_str(), mail[0].links.len()), ("signup_attempt", 0));
        assert_eq!(s.count("SELECT count(*) FROM users"), 1);
        assert_eq!(s.login("alice@example.com", "another password").await.status, StatusCode::UNAUTHORIZED);
        s.stop().await;
    }

    #[tokio::test]
    async fn weak_passwords_are_refused_at_registration_with_the_reason() {
        let dir = TempDir::new("weak");
        let s = start(&dir.0, &[]).await;
        for weak in ["password123", "Password1!", "qwertyuiop", "aaaaaaaaaaaa", "bob@example.com!"] {
            let r = s.register("bob@example.com", weak).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{weak}");
            assert_eq!(r.error(), "weak_password", "{weak}");
            assert!(!String::from_utf8_lossy(&r.body).contains(weak), "the answer echoes the password");
        }
        assert_eq!(s.count("SELECT count(*) FROM users"), 0, "nothing was stored");
        assert!(s.mail_to("bob@example.com").await.is_empty(), "nothing was mailed");
        // Positive control: a strong password for the same address is taken.
        assert_eq!(s.register("bob@example.com", PASSWORD).await.status, StatusCode::ACCEPTED);
        s.stop().await;
    }

    #[tokio::test]
    async fn input_errors_are_4xx_json() {
        let dir = TempDir::new("input");
        let s = start(&dir.0, &[]).await;
        for path in ["/register", "/login"] {
            let cases: [(&str, &str, StatusCode, &str); 9] = [
                ("application/json", "", StatusCode::BAD_REQUEST, "invalid_request"),
                ("application/json", "{", StatusCode::BAD_REQUEST, "invalid_request"),
                ("application/json", r#"{"email":"a@example.com"}"#, StatusCode::BAD_REQUEST, "invalid_request"),
                (
                    "application/json",
                    r#"{"email":"a@example.com","password":"hunter2hunter2","role":"admin"}"#,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                ),
                (
                    "application/json",
                    r#"{"email":"not-an-email","password":"hunter2hunter2"}"#,
                    StatusCode::BAD_REQUEST,
                    "invalid_email",
                ),
                (
                    "application/json",
                    r#"{"email":"a@example.com","password":"short"}"#,
                    StatusCode::BAD_REQUEST,
                    "invalid_password",
                ),
                (
                    "application/json; charset=utf-8",
                    &format!(r#"{{"email":"a@example.com","password":"{}"}}"#, "x".repeat(129)),
                    StatusCode::BAD_REQUEST,
                    "invalid_password",
                ),
                (
                    "text/plain",
                    r#"{"email":"a@example.com","password":"hunter2hunter2"}"#,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                ),
                (
                    "application/x-www-form-urlencoded",
                    "email=a@example.com&password=hunter2hunter2",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                ),
            ];
            for (ct, body, status, code) in cases {
                let r = s.send(Method::POST, path, &[("content-type", ct)], body).await;
                assert_eq!((r.status, r.error().as_str()), (status, code), "{path} {ct} {body}");
                assert!(r.json()["error_description"].is_string());
            }
            let r = s.send(Method::POST, path, &[], r#"{"email":"a@example.com","password":"hunter2hunter2"}"#).await;
            assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content type");
            let big = format!(r#"{{"email":"a@example.com","password":"{}"}}"#, "x".repeat(20_000));
            let r = s.post_json(path, &big).await;
            assert_eq!((r.status, r.error().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn garbage_never_gives_5xx() {
        let dir = TempDir::new("garbage");
        let s = start(&dir.0, &[]).await;
        let mut seed = [0u8; 512];
        aws_lc_rs::rand::fill(&mut seed).unwrap();
        let bodies: Vec<String> = vec![
            String::from_utf8_lossy(&seed).into_owned(),
            "null".into(),
            "[]".into(),
            "{\"email\":null,\"password\":null}".into(),
            "{\"email\":\"\u{0}@x.com\",\"password\":\"12345678\"}".into(),
            "{\"email\":1e999,\"password\":[]}".into(),
            format!("{{\"email\":\"{}@example.com\",\"password\":\"12345678\"}}", "a".repeat(300)),
            "\u{feff}{\"email\":\"a@example.com\",\"password\":\"12345678\"}".into(),
            "{\"email\":\"a@example.com\",\"password\":\"12345678\"}".repeat(2),
        ];
        for path in ["/register", "/login", "/refresh", "/logout", "/logout-all"] {
            for b in &bodies {
                let r = s
                    .send(
                        Method::POST,
                        path,
                        &[
                            ("content-type", "application/json"),
                            ("cookie", "__Secure-refresh_token=\"garbage\"; ;;=;"),
                            ("x-requested-with", "x"),
                            ("authorization", "Bearer a.b.c"),
                        ],
                        b,
                    )
                    .await;
                if path == "/logout" {
                    // Idempotent: an unknown cookie still ends logged out.
                    assert_eq!(r.status, StatusCode::NO_CONTENT, "{b:?}");
                    continue;
                }
                assert!(r.status.is_client_error(), "{path}: {} for {b:?}", r.status);
                assert!(r.json()["error"].is_string());
            }
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn routing_404_405_and_options() {
        let dir = TempDir::new("routing");
        let s = start(&dir.0, &[]).await;
        let r = s.send(Method::GET, "/nope", &[], "").await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "not_found"));
        let r = s.send(Method::GET, "/login", &[], "").await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
        assert!(r.header("allow").unwrap().contains("POST"));
        let r = s.send(Method::DELETE, "/.well-known/jwks.json", &[], "").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.header("allow").unwrap().contains("GET"));
        // CORS preflight from an allowed origin, and from another one.
        let pre = [("origin", "https://app.example.com"), ("access-control-request-method", "POST")];
        let r = s.send(Method::OPTIONS, "/refresh", &pre, "").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        let r = s.send(Method::OPTIONS, "/refresh", &[("origin", "https://evil.example"), pre[1]], "").await;
        assert_eq!(r.header("access-control-allow-origin"), None);
        s.stop().await;
    }

    #[tokio::test]
    async fn raw_oversized_and_chunked_bodies_are_413() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = TempDir::new("raw");
        let s = start(&dir.0, &[]).await;
        let addr = s.base.trim_start_matches("http://").to_owned();
        let declared =
            "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n";
        let mut chunked = String::from(
            "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        for _ in 0..20 {
            chunked.push_str(&format!("400\r\n{}\r\n", "x".repeat(0x400)));
        }
        chunked.push_str("0\r\n\r\n");
        for req in [declared.to_owned(), chunked] {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            tcp.write_all(req.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn jwks_and_openid_configuration() {
        let dir = TempDir::new("jwks");
        let s = start(&dir.0, &[]).await;
        let r = s.send(Method::GET, "/.well-known/jwks.json", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("cache-control").unwrap().contains("max-age=300"));
        assert!(r.header("content-type").unwrap().starts_with("application/json"));
        let jwks = r.json();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        assert!(key.get("d").is_none(), "no private material");
        let r = s.send(Method::HEAD, "/.well-known/jwks.json", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.is_empty());
        let r = s.send(Method::GET, "/.well-known/openid-configuration", &[], "").await;
        let doc = r.json();
        assert_eq!(doc["issuer"], s.base.as_str());
        assert_eq!(doc["jwks_uri"], format!("{}/.well-known/jwks.json", s.base));
        s.stop().await;
    }
}

mod login {
    use super::*;

    #[tokio::test]
    async fn success_sets_token_and_cookies_that_verify_against_served_jwks() {
        let dir = TempDir::new("login");
        let s = start(&dir.0, &[("ISSUER_COOKIE_PATH_PREFIX", "/prod")]).await;
        let r = s.session("bob@example.com").await;
        let body = r.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let cookies = r.set_cookies();
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        for (c, path) in cookies.iter().zip(["/prod/refresh", "/prod/logout"]) {
            assert!(c.starts_with(&format!("{COOKIE}=")), "{c}");
            for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Max-Age=2592000", &format!("Path={path}")] {
                assert!(c.split("; ").any(|a| a == attr), "{attr} missing in {c}");
            }
        }
        let refresh = r.refresh_cookie();
        assert_eq!(refresh.len(), 43, "256 bits, base64url");
        // Only the hash is stored.
        assert_eq!(s.count(&format!("SELECT count(*) FROM refresh_tokens WHERE token_hash = '{refresh}'")), 0);
        assert_eq!(s.count("SELECT count(*) FROM refresh_tokens"), 1);

        let token = r.access_token();
        let verifier = http_verifier(&s.base).await;
        let v = verifier.verify(&token).await.unwrap();
        assert_eq!(v.issuer(), s.base);
        assert_eq!(v.scope(), "openid");
        assert_eq!(v.exp() - v.iat(), 900);
        let user_id: String =
            s.db().query_row("SELECT user_id FROM users WHERE email = 'bob@example.com'", [], |r| r.get(0)).unwrap();
        assert_eq!(v.sub(), user_id);
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], s.app.keys().active().kid());
        // The stage prefix is accepted in front of every route too.
        let r = s.send(Method::GET, "/prod/.well-known/jwks.json", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        s.stop().await;
    }

    #[tokio::test]
    async fn unknown_email_and_wrong_password_look_the_same() {
        let dir = TempDir::new("uniform");
        let s = start(&dir.0, &[]).await;
        s.register("carol@example.com", PASSWORD).await;
        let wrong = s.login("carol@example.com", "not the password").await;
        let unknown = s.login("nobody@example.com", "not the password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.body, unknown.body, "identical bodies");
        assert_eq!(wrong.error(), "invalid_credentials");
        assert!(wrong.set_cookies().is_empty());
        // The same hash work on both paths, counted (not timed): one argon2id
        // verification each, the unknown user's against a dummy hash made
        // with the configured cost, the known user's against a stored hash
        // of that cost.
        let cost = s.app.hasher().cost();
        let phc_cost = format!("$argon2id$v=19$m={},t={},p={}$", cost.memory_kib, cost.iterations, cost.parallelism);
        let stored: String = s.db().query_row("SELECT password_hash FROM users", [], |r| r.get(0)).unwrap();
        assert!(stored.starts_with(&phc_cost), "{phc_cost} in {stored}");
        for i in 0..4 {
            let before = s.app.hasher().stats();
            let r = s.login(&format!("nobody{i}@example.com"), "not the password").await;
            assert_eq!(r.body, wrong.body);
            let unknown_work = s.app.hasher().stats();
            let r = s.login("carol@example.com", "not the password").await;
            assert_eq!(r.body, wrong.body);
            let wrong_work = s.app.hasher().stats();
            let one_argon2 = issuer::password::HashStats { argon2: 1, bcrypt: 0 };
            let diff = |a: issuer::password::HashStats, b: issuer::password::HashStats| issuer::password::HashStats {
                argon2: b.argon2 - a.argon2,
                bcrypt: b.bcrypt - a.bcrypt,
            };
            assert_eq!(diff(before, unknown_work), one_argon2, "unknown email");
            assert_eq!(diff(unknown_work, wrong_work), one_argon2, "wrong password");
        }
        // Control: the counter sees work that differs (registering a user
        // hashes once, a right password verifies once).
        let before = s.app.hasher().stats();
        s.register("dan@example.com", PASSWORD).await;
        assert_eq!(s.app.hasher().stats().argon2, before.argon2 + 1);
        s.stop().await;
    }

    #[tokio::test]
    async fn a_refused_client_gets_one_answer_for_any_password_and_other_clients_get_in() {
        let dir = TempDir::new("lockout");
        let s = start(&dir.0, &[]).await;
        s.register("dave@example.com", PASSWORD).await;
        for _ in 0..5 {
            assert_eq!(s.login("dave@example.com", "bad password").await.status, StatusCode::UNAUTHORIZED);
        }
        // This client (127.0.0.1) is refused on this account: the right and
        // a wrong password get the same bytes, and neither is checked.
        let hashes = s.app.hasher().stats();
        let wrong = s.login("dave@example.com", "bad password").await;
        let right = s.login("dave@example.com", PASSWORD).await;
        assert_eq!((right.status, right.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "account_locked"));
        let retry: u64 = right.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        let without_date = |h: &HeaderMap| {
            let mut h = h.clone();
            h.remove(http::header::DATE);
            h
        };
        assert_eq!(
            (wrong.status, without_date(&wrong.headers), &wrong.body),
            (right.status, without_date(&right.headers), &right.body),
            "byte-identical answers"
        );
        assert_eq!(s.app.hasher().stats(), hashes, "refused attempts are not hashed");
        // Another client address (the socket peer: 127.0.0.2) gets in.
        let other = s.login_from([127, 0, 0, 2], "dave@example.com", PASSWORD).await;
        assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);
        // The counters end with their window.
        s.advance(retry);
        assert_eq!(s.login("dave@example.com", PASSWORD).await.status, StatusCode::OK);
        s.stop().await;
    }

    #[tokio::test]
    async fn a_trusted_proxy_header_names_the_client_only_where_configured() {
        let dir = TempDir::new("proxy-header");
        let s = start(&dir.0, &[("ISSUER_CLIENT_IP_HEADER", "x-forwarded-for")]).await;
        s.register("erin@example.com", PASSWORD).await;
        let login_via = |ip: &'static str, pw: &'static str| {
            let body = serde_json::json!({"email": "erin@example.com", "password": pw}).to_string();
            let s = &s;
            async move {
                s.send(
                    Method::POST,
                    "/login",
                    &[("content-type", "application/json"), ("x-forwarded-for", &format!("10.9.9.9, {ip}"))],
                    &body,
                )
                .await
                .status
            }
        };
        for _ in 0..5 {
            assert_eq!(login_via("192.0.2.66", "bad password").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(login_via("192.0.2.66", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
        // The proxy's last entry is the client: another one gets in.
        assert_eq!(login_via("198.51.100.7", PASSWORD).await, StatusCode::OK);
        s.stop().await;

        // Not configured: the header is the client's to forge and counts
        // for nothing; the socket peer is the client.
        let dir = TempDir::new("no-proxy-header");
        let s = start(&dir.0, &[]).await;
        s.register("erin@example.com", PASSWORD).await;
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"] {
            let body = serde_json::json!({"email": "erin@example.com", "password": "bad password"}).to_string();
            let h = [("content-type", "application/json"), ("x-forwarded-for", ip)];
            assert_eq!(s.send(Method::POST, "/login", &h, &body).await.status, StatusCode::UNAUTHORIZED);
        }
        let h = [("content-type", "application/json"), ("x-forwarded-for", "198.51.100.7")];
        let body = serde_json::json!({"email": "erin@example.com", "password": PASSWORD}).to_string();
        assert_eq!(s.send(Method::POST, "/login", &h, &body).await.status, StatusCode::TOO_MANY_REQUESTS);
        s.stop().await;
    }

    #[tokio::test]
    async fn imported_bcrypt_hash_logs_in_and_is_upgraded() {
        use issuer::store::{NewUser, Store as _};
        let dir = TempDir::new("bcrypt");
        let s = start(&dir.0, &[]).await;
        let legacy = bcrypt::hash(PASSWORD, 4).unwrap().replacen("$2b$", "$2a$", 1);
        s.app
            .store()
            .create_user(&NewUser {
                user_id: "legacy-1".into(),
                email: "erin@example.com".into(),
                password_hash: legacy,
                scope: "openid pets:read".into(),
                created_at: 1,
            })
            .await
            .unwrap();
        assert_eq!(s.login("erin@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
        let r = s.login("erin@example.com", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK);
        let hash: String = s.db().query_row("SELECT password_hash FROM users", [], |r| r.get(0)).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(s.login("erin@example.com", PASSWORD).await.status, StatusCode::OK);
        s.stop().await;
    }

    #[tokio::test]
    async fn origin_must_be_allowed_when_a_browser_sends_one() {
        let dir = TempDir::new("login-origin");
        let s = start(&dir.0, &[]).await;
        s.register("fay@example.com", PASSWORD).await;
        let body = serde_json::json!({"email": "fay@example.com", "password": PASSWORD}).to_string();
        let h = [("content-type", "application/json"), ("origin", "https://evil.example")];
        let r = s.send(Method::POST, "/login", &h, &body).await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::FORBIDDEN, "csrf_check_failed"));
        let h = [("content-type", "application/json"), ("origin", "https://app.example.com")];
        let r = s.send(Method::POST, "/login", &h, &body).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        s.stop().await;
    }
}

mod refresh {
    use super::*;

    #[tokio::test]
    async fn rotation_and_reuse_detection_revokes_the_family() {
        let dir = TempDir::new("rotate");
        let s = start(&dir.0, &[]).await;
        let first = s.session("gus@example.com").await.refresh_cookie();
        let r = s.refresh(&first).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.json()["token_type"], "Bearer");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let second = r.refresh_cookie();
        assert_ne!(first, second);
        let third = s.refresh(&second).await.refresh_cookie();
        // The first token again: reuse. The family dies, the newest token too.
        let r = s.refresh(&first).await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"));
        assert!(r.set_cookies().iter().all(|c| c.contains("Max-Age=0")), "dead cookie cleared");
        assert_eq!(s.count("SELECT count(*) FROM families WHERE revoked_at IS NOT NULL"), 1);
        assert_eq!(s.refresh(&third).await.status, StatusCode::UNAUTHORIZED);
        s.stop().await;
    }

    #[tokio::test]
    async fn fifty_concurrent_refreshes_one_success_no_orphans() {
        let dir = TempDir::new("race");
        let s = Arc::new(start(&dir.0, &[]).await);
        let token = s.session("hal@example.com").await.refresh_cookie();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (s, token) = (Arc::clone(&s), token.clone());
            tasks.push(tokio::spawn(async move { s.refresh(&token).await.status }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::OK => ok += 1,
                StatusCode::UNAUTHORIZED => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(ok, 1, "exactly one rotation wins");
        assert_eq!(s.count("SELECT count(*) FROM families"), 1);
        assert_eq!(s.count("SELECT count(*) FROM refresh_tokens"), 2, "the old token and one successor");
        assert_eq!(s.count("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL"), 1);
        // The losers presented a used token: with no grace window that is reuse.
        assert_eq!(s.count("SELECT count(*) FROM families WHERE revoked_at IS NOT NULL"), 1);
        Arc::into_inner(s).unwrap().stop().await;
    }

    #[tokio::test]
    async fn grace_window_allows_a_racing_tab_then_reuse_is_detected() {
        let dir = TempDir::new("grace");
        let s = start(&dir.0, &[("ISSUER_REUSE_GRACE_SECS", "10")]).await;
        let first = s.session("ida@example.com").await.refresh_cookie();
        assert_eq!(s.refresh(&first).await.status, StatusCode::OK);
        s.advance(5);
        let r = s.refresh(&first).await;
        assert_eq!(r.status, StatusCode::OK, "within the grace window");
        let sibling = r.refresh_cookie();
        assert_eq!(s.count("SELECT count(*) FROM families WHERE revoked_at IS NULL"), 1);
        s.advance(5);
        assert_eq!(s.refresh(&first).await.status, StatusCode::UNAUTHORIZED, "grace over: reuse");
        assert_eq!(s.refresh(&sibling).await.status, StatusCode::UNAUTHORIZED, "family revoked");
        s.stop().await;
    }

    #[tokio::test]
    async fn expired_token_and_family_lifetime_are_refused() {
        let dir = TempDir::new("expiry");
        let s = start(&dir.0, &[("ISSUER_REFRESH_TTL_SECS", "60"), ("ISSUER_SESSION_MAX_SECS", "100")]).await;
        let t = s.session("jon@example.com").await.refresh_cookie();
        s.advance(60);
        let r = s.refresh(&t).await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"), "expired at 60 s");
        // A fresh session rotated before expiry lives until the family ends.
        let r = s.login("jon@example.com", PASSWORD).await;
        let t = r.refresh_cookie();
        s.advance(50);
        let r = s.refresh(&t).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.set_cookies()[0].contains("Max-Age=50"), "capped by the family: {:?}", r.set_cookies());
        let t = r.refresh_cookie();
        s.advance(50);
        assert_eq!(s.refresh(&t).await.status, StatusCode::UNAUTHORIZED, "family lifetime over");
        s.stop().await;
    }

    #[tokio::test]
    async fn csrf_rules_on_refresh_and_logout() {
        let dir = TempDir::new("csrf");
        let s = start(&dir.0, &[]).await;
        let t = s.session("kim@example.com").await.refresh_cookie();
        let cookie = format!("{COOKIE}={t}");
        for path in ["/refresh", "/logout"] {
            for headers in [
                vec![("cookie", cookie.as_str())],
                vec![("cookie", cookie.as_str()), ("origin", "https://evil.example")],
                vec![("cookie", cookie.as_str()), ("origin", "null"), ("x-requested-with", "x")],
            ] {
                let r = s.send(Method::POST, path, &headers, "").await;
                assert_eq!((r.status, r.error().as_str()), (StatusCode::FORBIDDEN, "csrf_check_failed"), "{path}");
            }
        }
        // An allowed Origin needs no custom header.
        let h = [("cookie", cookie.as_str()), ("origin", "https://app.example.com")];
        let r = s.send(Method::POST, "/refresh", &h, "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
        s.stop().await;
    }

    #[tokio::test]
    async fn cookie_header_variants() {
        let dir = TempDir::new("cookies");
        let s = start(&dir.0, &[]).await;
        let t = s.session("lea@example.com").await.refresh_cookie();
        let r = s.refresh("").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = s.send(Method::POST, "/refresh", &[("x-requested-with", "x")], "").await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"), "no cookie");
        let cookie = format!("theme=dark; {COOKIE}=\"{t}\" ; other=1");
        let r = s
            .send(Method::POST, "/refresh", &[("cookie", "a=b"), ("cookie", &cookie), ("x-requested-with", "x")], "")
            .await;
        assert_eq!(r.status, StatusCode::OK, "several Cookie headers, quotes, spaces");
        s.stop().await;
    }
}

mod logout {
    use super::*;

    #[tokio::test]
    async fn logout_revokes_the_family_and_clears_both_cookies() {
        let dir = TempDir::new("logout");
        let s = start(&dir.0, &[]).await;
        let t = s.session("max@example.com").await.refresh_cookie();
        let cookie = format!("{COOKIE}={t}");
        let r = s.send(Method::POST, "/logout", &[("cookie", &cookie), ("x-requested-with", "x")], "").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let cleared = r.set_cookies();
        assert_eq!(cleared.len(), 2);
        assert!(cleared.iter().all(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")));
        assert!(cleared[0].contains("Path=/refresh") && cleared[1].contains("Path=/logout"));
        assert_eq!(s.refresh(&t).await.status, StatusCode::UNAUTHORIZED);
        // Idempotent, also with no cookie at all.
        let r = s.send(Method::POST, "/logout", &[("x-requested-with", "x")], "").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        s.stop().await;
    }

    #[tokio::test]
    async fn logout_all_needs_a_valid_access_token_and_revokes_every_family() {
        let dir = TempDir::new("logout-all");
        let s = start(&dir.0, &[]).await;
        let a = s.session("ned@example.com").await;
        let b = s.login("ned@example.com", PASSWORD).await;
        let other = s.session("oli@example.com").await.refresh_cookie();

        let r = s.send(Method::POST, "/logout-all", &[], "").await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::UNAUTHORIZED, "invalid_token"));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = s.send(Method::POST, "/logout-all", &[("authorization", "Bearer not.a.token")], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
        // A well-formed token from a key the issuer does not hold.
        let foreign =
            token_core::SigningKey::generate(token_core::Algorithm::RS256, s.app.keys().active().kid()).unwrap();
        let now = token_core::unix_now().as_secs();
        let forged = foreign
            .sign(&token_core::AccessClaims {
                iss: s.base.clone(),
                sub: "x".into(),
                aud: token_core::Audience::One("api".into()),
                exp: now + 600,
                iat: now,
                nbf: None,
                jti: "j".into(),
                scope: String::new(),
                client_id: None,
                sid: None,
            })
            .unwrap();
        let auth = format!("Bearer {forged}");
        assert_eq!(
            s.send(Method::POST, "/logout-all", &[("authorization", &auth)], "").await.status,
            StatusCode::UNAUTHORIZED
        );

        let auth = format!("Bearer {}", a.access_token());
        let r = s.send(Method::POST, "/logout-all", &[("authorization", &auth)], "").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.json()["revoked_sessions"], 2);
        assert_eq!(s.refresh(&a.refresh_cookie()).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(s.refresh(&b.refresh_cookie()).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(s.refresh(&other).await.status, StatusCode::OK, "another user's session is untouched");
        // Expired access tokens are refused (15 min + 60 s leeway).
        s.advance(900 + 61);
        let r = s.send(Method::POST, "/logout-all", &[("authorization", &auth)], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        s.stop().await;
    }
}

mod durability {
    use super::*;

    #[tokio::test]
    async fn restart_keeps_users_sessions_and_keys() {
        let dir = TempDir::new("restart");
        let s = start(&dir.0, &[]).await;
        let r = s.session("pam@example.com").await;
        let refresh = r.refresh_cookie();
        let jwks_before = s.send(Method::GET, "/.well-known/jwks.json", &[], "").await.json();
        s.stop().await;

        let s = start(&dir.0, &[]).await;
        let jwks_after = s.send(Method::GET, "/.well-known/jwks.json", &[], "").await.json();
        assert_eq!(jwks_before, jwks_after, "the same key ring");
        let r = s.refresh(&refresh).await;
        assert_eq!(r.status, StatusCode::OK, "the session survived");
        let verifier = http_verifier(&s.base).await;
        verifier.verify(&r.access_token()).await.unwrap();
        assert_eq!(s.login("pam@example.com", PASSWORD).await.status, StatusCode::OK);
        s.stop().await;
    }

    #[tokio::test]
    async fn store_unavailable_is_503_with_nothing_half_written() {
        let dir = TempDir::new("unavailable");
        let s = start(&dir.0, &[("ISSUER_SQLITE_BUSY_MS", "50")]).await;
        s.register("quinn@example.com", PASSWORD).await;
        let refresh = s.login("quinn@example.com", PASSWORD).await.refresh_cookie();
        let families = s.count("SELECT count(*) FROM families");
        let tokens = s.count("SELECT count(*) FROM refresh_tokens");

        // Another process holds the write lock.
        let mut blocker = s.db();
        let tx = blocker.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive).unwrap();
        let r = s.register("rae@example.com", PASSWORD).await;
        assert_eq!((r.status, r.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        assert_eq!(r.header("retry-after"), Some("1"));
        let r = s.login("quinn@example.com", PASSWORD).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.set_cookies().is_empty());
        let r = s.refresh(&refresh).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        tx.rollback().unwrap();

        assert_eq!(s.count("SELECT count(*) FROM users WHERE email = 'rae@example.com'"), 0);
        assert_eq!(s.count("SELECT count(*) FROM families"), families);
        assert_eq!(s.count("SELECT count(*) FROM refresh_tokens"), tokens);
        assert_eq!(s.count("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL"), 0);
        // And the untouched token still rotates once the store is back.
        assert_eq!(s.refresh(&refresh).await.status, StatusCode::OK);
        s.stop().await;
    }
}

mod limits {
    use super::*;

    #[tokio::test]
    async fn saturated_hashing_is_503_not_a_queue() {
        let dir = TempDir::new("saturated");
        // Attempt limits out of the way: this is about the hashing slots.
        let s = Arc::new(
            start(
                &dir.0,
                &[
                    ("ISSUER_HASH_CONCURRENCY", "1"),
                    ("ISSUER_HASH_QUEUE_MS", "0"),
                    ("ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS", "100"),
                ],
            )
            .await,
        );
        s.register("sal@example.com", PASSWORD).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move { s.login("sal@example.com", PASSWORD).await }));
        }
        let mut refused = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                StatusCode::OK => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(r.error(), "unavailable");
                    assert_eq!(r.header("retry-after"), Some("1"));
                    refused += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert!(refused >= 1, "one slot, no queue: 8 concurrent logins cannot all be hashed");
        Arc::into_inner(s).unwrap().stop().await;
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_then_refuses() {
        let dir = TempDir::new("shutdown");
        let s = start(&dir.0, &[]).await;
        s.register("tia@example.com", PASSWORD).await;
        let base = s.base.clone();
        let client = s.client.clone();
        let body = serde_json::json!({"email": "tia@example.com", "password": PASSWORD}).to_string();
        let req = http::Request::post(format!("{base}/login"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let reads = s.clock_reads.load(Ordering::SeqCst);
        let in_flight = tokio::spawn(async move { client.request(req).await.map(|r| r.status()) });
        // Shut down once the login has reached the app (it reads the clock
        // first, then hashes for tens of milliseconds): a fixed sleep raced
        // the connection on a loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.clock_reads.load(Ordering::SeqCst) == reads {
            assert!(std::time::Instant::now() < deadline, "the login never reached the app");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        s.stop().await;
        assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
        let addr = base.trim_start_matches("http://");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    }
}

mod recovery {
    use super::*;

    #[tokio::test]
    async fn recovery_routes_refuse_bad_bodies_before_any_work() {
        let dir = TempDir::new("recovery-bodies");
        let s = start(&dir.0, &[]).await;
        for path in ["/verify-email", "/password/forgot", "/password/reset"] {
            let r = s.send(Method::POST, path, &[("content-type", "text/plain")], "{}").await;
            assert_eq!((r.status, r.error().as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
            for bad in ["", "[]", "null", "{\"extra\":1}", "not json"] {
                let r = s.post_json(path, bad).await;
                assert_eq!(
                    (r.status, r.error().as_str()),
                    (StatusCode::BAD_REQUEST, "invalid_request"),
                    "{path} {bad}"
                );
            }
            let r = s.send(Method::GET, path, &[], "").await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        }
        let token = "A".repeat(43);
        for (path, body, code) in [
            ("/verify-email", json!({"token": ""}), "invalid_link"),
            ("/verify-email", json!({"token": "x".repeat(500)}), "invalid_link"),
            ("/verify-email", json!({ "token": token }), "invalid_link"),
            ("/password/forgot", json!({"email": "not an address"}), "invalid_email"),
            ("/password/reset", json!({"token": token, "password": "short"}), "invalid_password"),
            ("/password/reset", json!({"token": format!("nobody.{token}"), "password": PASSWORD}), "invalid_link"),
        ] {
            let r = s.post_json(path, &body.to_string()).await;
            assert_eq!((r.status, r.error().as_str()), (StatusCode::BAD_REQUEST, code), "{path} {body}");
            assert!(!String::from_utf8_lossy(&r.body).contains(&token), "{path}: echoed");
        }
        let change = json!({"current_password": PASSWORD, "new_password": "purple elephant umbrella"}).to_string();
        let r = s.post_json("/password/change", &change).await;
        assert_eq!((r.status, r.header("www-authenticate")), (StatusCode::UNAUTHORIZED, Some("Bearer")));
        assert_eq!(s.count("SELECT count(*) FROM users"), 0);
        assert!(s.mail_to("not an address").await.is_empty());
        s.stop().await;
    }

    #[tokio::test]
    async fn the_recovery_limit_answers_429_and_other_clients_get_through() {
        let dir = TempDir::new("recovery-limit");
        let s = start(&dir.0, &[("ISSUER_RECOVERY_MAX_PER_CLIENT", "3")]).await;
        for i in 0..3 {
            let r = s.post_json("/password/forgot", &json!({"email": format!("u{i}@example.com")}).to_string()).await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
        }
        let refused = s.post_json("/password/forgot", &json!({"email": "u9@example.com"}).to_string()).await;
        assert_eq!((refused.status, refused.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"));
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        assert!(s.mail_to("u9@example.com").await.is_empty(), "refused: nothing mailed");
        // The same client is refused on sign-up too; another client is not.
        let r = s.register_only("v@example.com", PASSWORD).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let body = json!({"email": "u9@example.com"}).to_string();
        assert_eq!(s.post_from([127, 0, 0, 2], "/password/forgot", &body).await.status, StatusCode::ACCEPTED);
        s.stop().await;
    }

    #[tokio::test]
    async fn reset_clears_the_cookies_and_change_sets_new_ones() {
        let dir = TempDir::new("recovery-http");
        let s = start(&dir.0, &[]).await;
        let old = s.session("gil@example.com").await;
        let r = s.post_json("/password/forgot", &json!({"email": "gil@example.com"}).to_string()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let token = s.mailed_token("gil@example.com", "password_reset").await.unwrap();
        let new_pw = "purple elephant umbrella";
        let r = s.post_json("/password/reset", &json!({"token": token, "password": new_pw}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let cleared = r.set_cookies();
        assert_eq!(cleared.len(), 2, "{cleared:?}");
        assert!(cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
        assert_eq!(s.refresh(&old.refresh_cookie()).await.status, StatusCode::UNAUTHORIZED);
        let again = s.post_json("/password/reset", &json!({"token": token, "password": new_pw}).to_string()).await;
        assert_eq!((again.status, again.error().as_str()), (StatusCode::BAD_REQUEST, "invalid_link"));

        let session = s.login("gil@example.com", new_pw).await;
        assert_eq!(session.status, StatusCode::OK);
        let bearer = format!("Bearer {}", session.access_token());
        let body = |current: &str| json!({"current_password": current, "new_password": PASSWORD}).to_string();
        let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
        let wrong = s.send(Method::POST, "/password/change", &headers, &body("wrong password!")).await;
        assert_eq!((wrong.status, wrong.error().as_str()), (StatusCode::FORBIDDEN, "invalid_current_password"));
        let changed = s.send(Method::POST, "/password/change", &headers, &body(new_pw)).await;
        assert_eq!(changed.status, StatusCode::OK);
        assert_eq!(changed.json()["token_type"], "Bearer");
        let fresh = changed.refresh_cookie();
        assert_eq!(s.refresh(&session.refresh_cookie()).await.status, StatusCode::UNAUTHORIZED, "the old session");
        assert_eq!(s.refresh(&fresh).await.status, StatusCode::OK, "the new session");
        let kinds: Vec<String> = s.mail_to("gil@example.com").await.into_iter().map(|m| m.kind).collect();
        assert_eq!(kinds[..2], ["password_changed".to_owned(), "password_changed".to_owned()]);
        s.stop().await;
    }

    #[tokio::test]
    async fn recovery_routes_answer_cors_preflights_for_allowed_origins() {
        let dir = TempDir::new("recovery-cors");
        let s = start(&dir.0, &[]).await;
        for path in ["/verify-email", "/password/forgot", "/password/reset", "/password/change"] {
            let h = [("origin", "https://app.example.com"), ("access-control-request-method", "POST")];
            let r = s.send(Method::OPTIONS, path, &h, "").await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}");
            assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"), "{path}");
            assert!(r.header("access-control-allow-headers").unwrap().contains("authorization"), "{path}");
            let evil = [("origin", "https://evil.example"), ("access-control-request-method", "POST")];
            let r = s.send(Method::OPTIONS, path, &evil, "").await;
            assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
            // A cross-site POST from a foreign origin is refused.
            let r = s
                .send(
                    Method::POST,
                    path,
                    &[("origin", "https://evil.example"), ("content-type", "application/json")],
                    "{}",
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        }
        s.stop().await;
    }
}
