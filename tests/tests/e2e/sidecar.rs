//! The sidecar binary over HTTP, as nginx, Envoy or Traefik would call it.

use std::time::{Duration, Instant};

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, Mode, Proc, run_to_exit};
use reqwest::StatusCode;
use serde_json::Value;
use token_core::{Algorithm, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://issuer.test";

fn start(jwks: &JwksServer, extra: &[(&str, &str)]) -> Proc {
    let url = jwks.url();
    let mut env = vec![
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", url.as_str()),
        ("AUTH_JWKS_TIMEOUT_MS", "1000"),
        ("SIDECAR_LISTEN", "127.0.0.1:0"),
        // issuer.test has no revocation feed; revocation is tested in revocation.rs.
        ("REVOCATION_FEED_URL", "off"),
    ];
    env.extend_from_slice(extra);
    Proc::spawn("sidecar", &[], &env)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn get(p: &Proc, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = client().get(p.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

fn www(resp: &reqwest::Response) -> String {
    resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_gets_200_with_identity_headers_and_claims() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[]);
    let mut c = claims(ISS, "api", "user-42", "pets:read pets:write", 900);
    c["client_id"] = "web".into();
    let t = sign(&k, &c);
    let resp = get(&p, "/verify", Some(&format!("Bearer {t}"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-auth-subject"], "user-42");
    assert_eq!(resp.headers()["x-auth-scope"], "pets:read pets:write");
    assert_eq!(resp.headers()["x-auth-client-id"], "web");
    assert_eq!(resp.json::<Value>().await.unwrap(), c);
    // Any method, lower-case scheme, and Envoy's path-prefix form.
    let resp = client()
        .post(p.url("/verify/api/pets?x=1"))
        .header("authorization", format!("bearer {t}"))
        .body("ignored body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client().head(p.url("/verify")).header("authorization", format!("Bearer {t}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_scopes_give_403_insufficient_scope() {
    let k = SigningKey::generate(Algorithm::ES256, "es1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[]);
    let auth = format!("Bearer {}", sign(&k, &claims(ISS, "api", "u", "pets:read", 900)));
    assert_eq!(get(&p, "/verify?scope=pets:read", Some(&auth)).await.status(), StatusCode::OK);
    let resp = get(&p, "/verify?scope=pets:read+pets:write", Some(&auth)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let challenge = www(&resp);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_get_401_with_the_right_challenge() {
    let k = SigningKey::generate(Algorithm::EdDSA, "ed1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[]);
    let expired = sign(&k, &claims(ISS, "api", "u", "", -3600));
    let wrong_aud = sign(&k, &claims(ISS, "other", "u", "", 900));
    for bad in [expired.as_str(), wrong_aud.as_str(), "not.a.jwt", "e30.e30.e30"] {
        let resp = get(&p, "/verify", Some(&format!("Bearer {bad}"))).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(www(&resp).contains(r#"error="invalid_token""#), "{}", www(&resp));
    }
    // No credentials, or another scheme: a bare challenge (RFC 6750 3.1).
    for auth in [None, Some("Basic dXNlcjpwYXNz")] {
        let resp = get(&p, "/verify", auth).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(www(&resp), "Bearer");
    }
    // Malformed: 401 with invalid_request (nginx turns a 400 into a 500).
    for auth in ["Bearer", "Bearer a b c", "Bearer \"x\""] {
        let resp = get(&p, "/verify", Some(auth)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert!(www(&resp).contains(r#"error="invalid_request""#));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[]);
    assert_eq!(get(&p, "/healthz", None).await.status(), StatusCode::OK);
    let ready = get(&p, "/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["issuers"][0]["keys"], 1);
    let t = sign(&k, &claims(ISS, "api", "u", "", 900));
    get(&p, "/verify", Some(&format!("Bearer {t}"))).await;
    get(&p, "/verify", Some(&format!("Bearer {t}"))).await;
    get(&p, "/verify", Some("Bearer x.y.z")).await;
    let metrics = get(&p, "/metrics", None).await.text().await.unwrap();
    for line in [
        r#"auth_decisions_total{outcome="allow",reason="ok"} 2"#,
        r#"auth_decisions_total{outcome="unauthorized",reason="malformed"} 1"#,
        "auth_token_cache_hits_total 1",
        r#"auth_jwks_fetches_total{issuer="https://issuer.test",result="ok"} 1"#,
        r#"auth_jwks_usable{issuer="https://issuer.test"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert_eq!(get(&p, "/nope", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_keys_load_then_ready() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    jwks.set_mode(Mode::Status(500));
    let p = start(&jwks, &[]);
    assert_eq!(get(&p, "/readyz", None).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&p, "/healthz", None).await.status(), StatusCode::OK);
    let t = sign(&k, &claims(ISS, "api", "u", "", 900));
    // No keys: a server-side condition, 503 (not the client's fault), never 500.
    let resp = get(&p, "/verify", Some(&format!("Bearer {t}"))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    jwks.set_mode(Mode::Serve);
    // The background refresh retries with backoff (1 s, 2 s, 4 s, ...): wait
    // for the retry that finds the endpoint serving again (the deadline only
    // guards against never).
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&p, "/readyz", None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&p, "/verify", Some(&format!("Bearer {t}"))).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_not_a_5xx() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[]);
    let big = format!("Bearer {}", "a".repeat(40_000));
    let resp = get(&p, "/verify", Some(&big)).await;
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // A long but acceptable header with a garbage token: 401.
    let long = format!("Bearer {}", "a".repeat(9000));
    assert_eq!(get(&p, "/verify", Some(&long)).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_after_the_header_timeout() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[("SIDECAR_HEADER_TIMEOUT_SECS", "1")]);
    // A client that sends half a request head and stalls.
    let mut slow = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    slow.write_all(b"GET /verify HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    // Control: a whole request head on a third connection is answered.
    let mut whole = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    whole.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), whole.read(&mut buf)).await.expect("answered").unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("HTTP/1.1 200"));
    // The stalled ones are closed by the sidecar. The deadline only guards
    // against a hang, and stays below the default header timeout (10 s), so
    // the configured 1 s is what closes them.
    for s in [&mut slow, &mut idle] {
        let n =
            tokio::time::timeout(Duration::from_secs(8), s.read(&mut buf)).await.expect("closed by the header timeout");
        // Closed (0) or an error response head: never left open.
        let n = n.unwrap_or(0);
        assert!(n == 0 || std::str::from_utf8(&buf[..n]).unwrap().starts_with("HTTP/1.1 408"), "{n}");
    }
}

/// One request on `stream` (kept alive), the status line of its answer.
async fn round_trip(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.expect("answered").unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_holds_extra_connections_back() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[("SIDECAR_MAX_CONNECTIONS", "2")]);
    // Two connections, each answered once: both are being served.
    let mut a = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(round_trip(&mut a, "/healthz").await, "HTTP/1.1 200 OK");
    assert_eq!(round_trip(&mut b, "/healthz").await, "HTTP/1.1 200 OK");
    // A third one sends its request, then b is answered three more times
    // (the control: the sidecar is serving) while c gets nothing.
    let mut c = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for _ in 0..3 {
        assert_eq!(round_trip(&mut b, "/healthz").await, "HTTP/1.1 200 OK");
    }
    let mut buf = [0u8; 256];
    match c.try_read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("third connection served beyond the limit: {other:?}"),
    }
    // Once a closes, c is taken in and answered.
    drop(a);
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await.expect("c answered").unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let mut p = start(&jwks, &[]);
    // A request that waits on a hanging JWKS refetch (unknown kid, 1 s timeout).
    jwks.set_mode(Mode::Hang);
    let stranger = SigningKey::generate(Algorithm::RS256, "new-kid").unwrap();
    let auth = format!("Bearer {}", sign(&stranger, &claims(ISS, "api", "u", "", 900)));
    let url = p.url("/verify");
    let fetches = jwks.fetches();
    let in_flight = tokio::spawn(async move { client().get(url).header("authorization", auth).send().await });
    // Signal once the request is in flight: its refetch has reached the
    // hanging JWKS endpoint (a fixed sleep could race a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    while jwks.fetches() == fetches {
        assert!(Instant::now() < deadline, "the request never reached the sidecar");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.signal("TERM");
    let resp = in_flight.await.unwrap().expect("in-flight request answered");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let status = tokio::task::spawn_blocking(move || {
        let s = p.wait_timeout(Duration::from_secs(20));
        (s, p)
    })
    .await
    .unwrap();
    let (status, p) = status;
    assert!(status.expect("exited").success(), "logs: {:?}", p.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_it_too() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let mut p = start(&jwks, &[]);
    p.signal("INT");
    assert!(p.wait_timeout(Duration::from_secs(20)).expect("exited").success());
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let base = [("AUTH_ISSUER", "https://a.test"), ("AUTH_AUDIENCE", "api")];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "AUTH_ISSUER"),
        (vec![base[0]], "AUTH_AUDIENCE"),
        (vec![base[0], base[1], ("AUTH_LEEWAY_SECS", "soon")], "AUTH_LEEWAY_SECS"),
        (vec![base[0], base[1], ("SIDECAR_LISTEN", "everywhere")], "SIDECAR_LISTEN"),
        (vec![base[0], base[1], ("AUTH_JWKS_URL", "http://keys.example.com/jwks")], "AUTH_JWKS_URL"),
        (vec![base[0], base[1], ("AUTH_CONFIG_FILE", "/nonexistent.json")], "AUTH_CONFIG_FILE"),
    ];
    for (env, var) in cases {
        let (code, stderr) = run_to_exit("sidecar", &[], &env);
        assert_eq!(code, Some(2), "{var}: {stderr}");
        assert!(stderr.contains(var), "{var} not named in: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    let (code, _) = run_to_exit("sidecar", &["--nope"], &base);
    assert_eq!(code, Some(2));
    let (code, _) = run_to_exit("sidecar", &["--help"], &[]);
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let p = start(&jwks, &[("RUST_LOG", "debug")]);
    let t = sign(&k, &claims(ISS, "api", "u", "", 900));
    let expired = sign(&k, &claims(ISS, "api", "u", "", -900));
    for tok in [&t, &expired] {
        get(&p, "/verify", Some(&format!("Bearer {tok}"))).await;
    }
    // Wait for the line of the second request (lines come in order): the
    // logs then hold whatever both requests logged.
    let rejected = |logs: &[String]| logs.iter().any(|l| l.contains("token rejected") && l.contains("expired"));
    e2e_tests::wait_for("the expired token's debug line", Duration::from_secs(10), || rejected(&p.logs())).await;
    let logs = p.logs().join("\n");
    for tok in [&t, &expired] {
        let sig = tok.rsplit('.').next().unwrap();
        assert!(!logs.contains(sig), "token in logs");
    }
}
