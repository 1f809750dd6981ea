//! The issuer's request parsing: JSON bodies (register and login
//! validation, email normalisation), cookies, the CSRF rules, bearer
//! parsing, and `App::handle` over plain requests; also the Lambda adapter
//! (`issuer::lambda::handle_event`) for inputs that are API Gateway events.
//!
//! Input: either an API Gateway proxy event (JSON, starts with `{`), or a
//! request as text, easy to write seeds for:
//!
//! ```text
//! POST /prod/login
//! content-type: application/json
//! cookie: __Secure-refresh_token=...
//!
//! {"email":"a@example.com","password":"..."}
//! ```
//!
//! Requests that would hash a password (a valid register or login) are
//! checked with the pure functions only and not handed to the app: argon2 at
//! the production minimum costs tens of milliseconds, and those minimums are
//! not lowered for fuzzing.
//!
//! Invariants:
//! - `cookie_values` returns values without `;`, `refresh_token` the
//!   first of them that looks like a refresh token;
//! - `check_csrf` passes exactly with one allowed `Origin`, or with no
//!   `Origin` and a non-blank `X-Requested-With`; `check_origin_if_present`
//!   passes exactly with no `Origin` or one allowed `Origin`;
//! - accepted credentials come from an object with exactly the two string
//!   fields, the email normalised, the password 8 to 128 characters;
//! - a normalised email is a fixed point, lowercase, trimmed, bounded, with
//!   one `@`, and ASCII case does not change it;
//! - the app never answers 5xx to client input; errors are JSON
//!   `{"error": code}`; every `Set-Cookie` is the refresh cookie with
//!   `Secure; HttpOnly; SameSite=Strict` on the two cookie paths; CORS is
//!   granted only to allowed origins; `HEAD` has no body; `nosniff` always;
//!   an error never echoes input (each code keeps a few fixed descriptions).

use std::sync::LazyLock;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use issuer::App;
use issuer::config::{IssuerConfig, Shape};
use issuer::cookie::{REFRESH_COOKIE, check_csrf, check_origin_if_present, cookie_values, refresh_token};
use issuer::store::sqlite::SqliteStore;
use issuer::tokens::looks_like_refresh_token;
use issuer::validate::{MAX_EMAIL_LEN, credentials, is_json_content_type, normalize_email};
use lambda_http::RequestExt as _;
use serde_json::Value;
use token_core::{Credentials, Settings, parse_authorization};

const PREFIX: &str = "/prod";
const ALLOWED_ORIGIN: &str = "https://app.example.com";

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: App<SqliteStore>,
    allowed: Vec<String>,
}

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("auth-fuzz-issuer-{}", std::process::id()));
    let d = dir.to_string_lossy().into_owned();
    let pairs = [
        ("ISSUER_URL", "https://auth.example.com"),
        ("ISSUER_AUDIENCE", "api"),
        ("ISSUER_ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ("ISSUER_COOKIE_PATH_PREFIX", PREFIX),
        ("ISSUER_DATA_DIR", d.as_str()),
        ("ISSUER_HASH_CONCURRENCY", "1"),
    ];
    let cfg = match IssuerConfig::from_settings(&Settings::from_pairs(&pairs), Shape::Local) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let allowed = cfg.allowed_origins.clone();
    let app = match issuer::server::local_app(cfg) {
        Ok(a) => a,
        Err(e) => panic!("app: {e}"),
    };
    Fixture { rt: crate::runtime(), app, allowed }
});

/// The CSRF rules, written out independently.
fn check_headers(h: &HeaderMap, allowed: &[String]) {
    let origins: Vec<&HeaderValue> = h.get_all(header::ORIGIN).iter().collect();
    let allowed_origin =
        |v: &HeaderValue| v.to_str().is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim())));
    let custom = h.get("x-requested-with").and_then(|v| v.to_str().ok()).is_some_and(|v| !v.trim().is_empty());
    let csrf_expected = match origins.as_slice() {
        [] => custom,
        [one] => allowed_origin(one),
        _ => false,
    };
    assert_eq!(check_csrf(h, allowed).is_ok(), csrf_expected, "CSRF rule");
    let origin_expected = match origins.as_slice() {
        [] => true,
        [one] => allowed_origin(one),
        _ => false,
    };
    assert_eq!(check_origin_if_present(h, allowed).is_ok(), origin_expected, "origin rule");

    let values = cookie_values(h, REFRESH_COOKIE);
    for v in &values {
        assert!(!v.contains(';'), "{v:?}");
    }
    assert_eq!(refresh_token(h), values.iter().copied().find(|v| looks_like_refresh_token(v)));
    if let Some(t) = refresh_token(h) {
        assert_eq!(t.len(), 43);
    }

    for v in h.get_all(header::AUTHORIZATION) {
        if let Ok(text) = v.to_str()
            && let Credentials::Bearer(t) = parse_authorization(Some(text))
        {
            assert!(text.contains(t) && !t.is_empty());
        }
    }
}

fn check_email(raw: &str) {
    let Ok(e) = normalize_email(raw) else { return };
    assert_eq!(normalize_email(&e).as_deref(), Ok(e.as_str()), "not a fixed point: {raw:?}");
    assert_eq!(normalize_email(&e.to_ascii_uppercase()).as_deref(), Ok(e.as_str()), "ASCII case matters: {raw:?}");
    assert_eq!(e.trim(), e);
    assert_eq!(e.to_lowercase(), e);
    assert!(e.len() <= MAX_EMAIL_LEN);
    assert_eq!(e.matches('@').count(), 1, "{e:?}");
    assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()), "{e:?}");
}

fn check_body(body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        check_email(text);
    }
    let Ok(c) = credentials(body) else { return };
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        panic!("credentials accepted from a body that is not an object")
    };
    assert_eq!(doc.len(), 2, "{doc:?}");
    let (Some(Value::String(email)), Some(Value::String(password))) = (doc.get("email"), doc.get("password")) else {
        panic!("credentials accepted without string email and password")
    };
    assert_eq!(&c.password, password);
    assert_eq!(normalize_email(email).as_deref(), Ok(c.email.as_str()));
    check_email(email);
    let n = c.password.chars().count();
    assert!((8..=128).contains(&n), "password of {n} characters");
}

fn strip_prefix(path: &str) -> &str {
    match path.strip_prefix(PREFIX) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Would the app hash a password for this request?
fn would_hash(method: &Method, path: &str, h: &HeaderMap, body: &[u8], allowed: &[String]) -> bool {
    method == Method::POST
        && matches!(strip_prefix(path), "/register" | "/login")
        && body.len() <= issuer::app::MAX_BODY_BYTES
        && check_origin_if_present(h, allowed).is_ok()
        && is_json_content_type(h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()))
        && credentials(body).is_ok()
}

fn check_response(status: u16, headers: &HeaderMap, body: &[u8], head: bool) {
    assert!(status < 500, "{status} for client input: {}", String::from_utf8_lossy(body));
    assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).map(HeaderValue::as_bytes), Some(&b"nosniff"[..]));
    if head {
        assert!(body.is_empty(), "a body for HEAD");
    }
    for c in headers.get_all(header::SET_COOKIE) {
        let c = c.to_str().expect("Set-Cookie is text");
        assert!(c.starts_with(&format!("{REFRESH_COOKIE}=")), "{c}");
        assert!(c.ends_with("; Secure; HttpOnly; SameSite=Strict"), "{c}");
        assert!(c.contains("; Path=/prod/refresh;") || c.contains("; Path=/prod/logout;"), "{c}");
    }
    if let Some(o) = headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let o = o.to_str().expect("ACAO is text");
        // The request's own value is echoed (HTTP parsers strip blanks
        // around it; the text format here keeps them).
        assert!(o == "*" || o.trim().eq_ignore_ascii_case(ALLOWED_ORIGIN), "CORS granted to {o}");
        if o != "*" {
            assert_eq!(
                headers.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).map(HeaderValue::as_bytes),
                Some(&b"true"[..])
            );
        }
    }
    if status >= 400 && !head {
        let v: Value = serde_json::from_slice(body).expect("error bodies are JSON");
        let code = v["error"].as_str().expect("an error code");
        assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
        // Nothing the client sent comes back in an error: each code has a
        // handful of fixed descriptions, whatever the input.
        let description = v["error_description"].as_str().unwrap_or_default().to_owned();
        DESCRIPTIONS.with(|d| {
            let mut d = d.borrow_mut();
            let seen = d.entry(code.to_owned()).or_default();
            seen.insert(description);
            // invalid_request has the most: one per body shape and rule (about
            // 25); input-dependent text would pass that in a few inputs.
            assert!(seen.len() <= 32, "error {code} has input-dependent descriptions: {seen:?}");
        });
    }
}

thread_local! {
    static DESCRIPTIONS: std::cell::RefCell<std::collections::HashMap<String, std::collections::HashSet<String>>> =
        std::cell::RefCell::default();
}

/// `METHOD PATH\nname: value\n...\n\nbody`
fn parse_text(data: &[u8]) -> Option<(Method, String, HeaderMap, Bytes)> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, path) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_bytes(value.trim_start().as_bytes()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    Some((method, path.to_owned(), headers, Bytes::copy_from_slice(body)))
}

fn direct(data: &[u8]) {
    let Some((method, path, headers, body)) = parse_text(data) else { return };
    check_headers(&headers, &FX.allowed);
    check_body(&body);
    if would_hash(&method, &path, &headers, &body, &FX.allowed) {
        return;
    }
    let head = method == Method::HEAD;
    let req = issuer::Request { method, path, query: None, client: None, headers, body };
    let resp = FX.rt.block_on(FX.app.handle(req));
    check_response(resp.status.as_u16(), &resp.headers, &resp.body, head);
}

/// A JSON document that keeps duplicate members (serde_json's `Value`
/// keeps the last; the event deserializers may take the first).
enum Doc {
    Obj(Vec<(String, Doc)>),
    Arr(Vec<Doc>),
    Str(String),
    Bool(bool),
    Other,
}

impl<'de> serde::Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_str<E>(self, v: &str) -> Result<Doc, E> {
                Ok(Doc::Str(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Doc, E> {
                Ok(Doc::Bool(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Doc, E> {
                Ok(Doc::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Doc, E> {
                Ok(Doc::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Doc, E> {
                Ok(Doc::Other)
            }
            fn visit_unit<E>(self) -> Result<Doc, E> {
                Ok(Doc::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Doc, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = s.next_element()? {
                    out.push(x);
                }
                Ok(Doc::Arr(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Doc, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry()? {
                    out.push(kv);
                }
                Ok(Doc::Obj(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Could API Gateway have sent this event? lambda_http (1.3.2) and
/// aws_lambda_events panic, rather than fail, on events that only API
/// Gateway writes (trusted input): a body flagged base64 that is not, or a
/// host, scheme, stage, path or query that do not make a URI. Those events
/// are not tried: the panics are upstream's, on input no client controls.
/// Conservative: every occurrence of those members, at any depth, with
/// duplicates, must be clean.
fn apigw_could_send(text: &str) -> bool {
    fn uri_safe(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b))
    }
    /// A DNS name (labels of letters, digits and `-`, the last starting
    /// with a letter, no punycode) with an optional numeric port.
    fn host_safe(s: &str) -> bool {
        let (name, port) = s.split_once(':').unwrap_or((s, "80"));
        let labels: Vec<&str> = name.split('.').collect();
        port.parse::<u16>().is_ok()
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.to_ascii_lowercase().starts_with("xn--")
            })
            && labels.last().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
    }
    fn strings(d: &Doc) -> Vec<&str> {
        match d {
            Doc::Str(s) => vec![s.as_str()],
            Doc::Arr(a) => a.iter().flat_map(strings).collect(),
            _ => Vec::new(),
        }
    }
    #[derive(Default)]
    struct Seen<'a> {
        base64: bool,
        bodies: Vec<&'a str>,
        bad: bool,
    }
    fn walk<'a>(d: &'a Doc, seen: &mut Seen<'a>) {
        match d {
            Doc::Obj(members) => {
                for (k, v) in members {
                    let k = k.to_ascii_lowercase();
                    match k.as_str() {
                        "host" | "domainname" => seen.bad |= !strings(v).into_iter().all(host_safe),
                        "x-forwarded-proto" => {
                            seen.bad |= !strings(v).into_iter().all(|p| p == "https" || p == "http");
                        }
                        // API Gateway's paths start with `/` (lambda_http
                        // glues them after the host and unwraps the parse).
                        "path" | "rawpath" => {
                            seen.bad |=
                                !strings(v).into_iter().all(|p| p.is_empty() || p.starts_with('/') && uri_safe(p));
                        }
                        "rawquerystring" => seen.bad |= !strings(v).into_iter().all(uri_safe),
                        // Stage names: letters, digits, `-` and `_`, or `$default`.
                        "stage" => {
                            seen.bad |= !strings(v).into_iter().all(|s| {
                                s == "$default"
                                    || s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                            });
                        }
                        "isbase64encoded" => seen.base64 |= matches!(v, Doc::Bool(true)),
                        "body" => seen.bodies.extend(strings(v)),
                        _ => {}
                    }
                    walk(v, seen);
                }
            }
            Doc::Arr(items) => items.iter().for_each(|x| walk(x, seen)),
            _ => {}
        }
    }
    let Ok(doc) = serde_json::from_str::<Doc>(text) else { return true };
    let mut seen = Seen::default();
    walk(&doc, &mut seen);
    let b64 = |s: &&str| base64::engine::general_purpose::STANDARD.decode(s).is_ok();
    !seen.bad && (!seen.base64 || seen.bodies.iter().all(b64))
}

fn lambda(text: &str) {
    if !apigw_could_send(text) {
        return;
    }
    let Ok(event) = lambda_http::request::from_str(text) else { return };
    let path = match event.raw_http_path() {
        "" => event.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let body: Vec<u8> = match event.body() {
        lambda_http::Body::Text(s) => s.as_bytes().to_vec(),
        lambda_http::Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let headers = event.headers().clone();
    check_headers(&headers, &FX.allowed);
    check_body(&body);
    let method = event.method().clone();
    if would_hash(&method, &path, &headers, &body, &FX.allowed) {
        return;
    }
    let resp = FX.rt.block_on(issuer::lambda::handle_event(&FX.app, event));
    let resp_body: Vec<u8> = match resp.body() {
        lambda_http::Body::Text(s) => s.as_bytes().to_vec(),
        lambda_http::Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    check_response(resp.status().as_u16(), resp.headers(), &resp_body, method == Method::HEAD);
}

/// The target: one input, checked against the invariants above (a panic is a finding).
pub fn run(data: &[u8]) {
    if data.first() == Some(&b'{') {
        if let Ok(text) = std::str::from_utf8(data) {
            lambda(text);
        }
    } else {
        direct(data);
    }
}
