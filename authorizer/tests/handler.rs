//! The handler with real event fixtures (files) for each event kind and
//! each answer. Keys are installed directly: no network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authorizer::{Answer, Authorizer, AuthorizerConfig, AuthorizerError, AuthorizerEvent, policy};
use serde_json::{Value, json};
use token_core::{Algorithm, PublicJwks, Settings, SigningKey, Verifier};

const ISS: &str = "https://issuer.test";
const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";

struct Fx {
    key: SigningKey,
    authorizer: Authorizer,
}

fn fx(extra: &[(&str, &str)]) -> Fx {
    // The first of a name wins: extras before the defaults.
    let mut pairs = extra.to_vec();
    pairs.extend_from_slice(&[
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ("REVOCATION_FEED_URL", "off"),
    ]);
    let cfg = AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
    let verifier = Verifier::new(&cfg.verifier).unwrap();
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    verifier
        .install_jwks(ISS, &serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap())
        .unwrap();
    Fx { key, authorizer: Authorizer::new(verifier, &cfg) }
}

fn token(key: &SigningKey, scope: &str, ttl: i64) -> String {
    let now = token_core::unix_now().as_secs() as i64;
    key.sign_any(&json!({
        "iss": ISS, "sub": "user-7", "aud": "api", "exp": now + ttl, "iat": now,
        "jti": "jti-7", "scope": scope, "client_id": "mobile"
    }))
    .unwrap()
}

fn event(fixture: &str, token: &str) -> AuthorizerEvent {
    let text = match fixture {
        "token" => include_str!("fixtures/token.json"),
        "request" => include_str!("fixtures/request.json"),
        "http-v2" => include_str!("fixtures/http-v2.json"),
        "http-v1" => include_str!("fixtures/http-v1.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(&text.replace("{{TOKEN}}", token)).unwrap()
}

fn handle(f: &Fx, e: &AuthorizerEvent) -> Result<Answer, AuthorizerError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f.authorizer.handle(e))
}

fn statements(answer: &Answer) -> Vec<(String, Vec<String>)> {
    let v = serde_json::to_value(answer).unwrap();
    v["policyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Effect"].as_str().unwrap().to_owned(),
                s["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
            )
        })
        .collect()
}

#[test]
fn token_event_valid_token_allows_the_whole_stage_with_context() {
    let f = fx(&[]);
    let t = token(&f.key, "pets:read", 900);
    let answer = handle(&f, &event("token", &t)).unwrap();
    let v = serde_json::to_value(&answer).unwrap();
    assert_eq!(v["principalId"], "user-7");
    assert_eq!(v["policyDocument"]["Version"], "2012-10-17");
    assert_eq!(v["policyDocument"]["Statement"][0]["Action"], json!(["execute-api:Invoke"]));
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{STAGE}/*/*")])]);
    let ctx = &v["context"];
    assert_eq!(ctx["sub"], "user-7");
    assert_eq!(ctx["iss"], ISS, "the issuer makes the subject unambiguous");
    assert_eq!(ctx["scope"], "pets:read");
    assert_eq!(ctx["client_id"], "mobile");
    assert_eq!(ctx["jti"], "jti-7");
    assert!(ctx["exp"].is_u64(), "exp is a number: {ctx}");
    for value in ctx.as_object().unwrap().values() {
        assert!(value.is_string() || value.is_number(), "REST flattens context: {value}");
    }
}

#[test]
fn invalid_tokens_fail_with_exactly_unauthorized() {
    let f = fx(&[]);
    let other = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let cases = vec![
        ("expired", format!("Bearer {}", token(&f.key, "", -3600))),
        ("forged", format!("Bearer {}", token(&other, "", 900))),
        ("garbage", "Bearer not-a-jwt".to_owned()),
        ("no scheme", token(&f.key, "", 900)),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("empty", String::new()),
        ("malformed", "Bearer a b".to_owned()),
    ];
    for (name, value) in cases {
        let mut e = event("token", "x");
        e.authorization_token = Some(value);
        let err = handle(&f, &e).unwrap_err();
        assert!(matches!(err, AuthorizerError::Unauthorized(_)), "{name}: {err:?}");
        assert_eq!(err.to_string(), "Unauthorized");
        let d: lambda_runtime::Diagnostic = err.into();
        assert_eq!(d.error_message, "Unauthorized", "{name}");
        assert_eq!(d.error_type, "Unauthorized", "{name}");
    }
    let mut e = event("token", "x");
    e.authorization_token = None;
    assert!(matches!(handle(&f, &e).unwrap_err(), AuthorizerError::Unauthorized(_)));
}

#[test]
fn request_event_reads_the_authorization_header_in_any_case() {
    let f = fx(&[]);
    let t = token(&f.key, "pets:write", 900);
    let answer = handle(&f, &event("request", &t)).unwrap();
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{STAGE}/*/*")])]);
    let text = include_str!("fixtures/request.json")
        .replace("{{TOKEN}}", &t)
        .replace("\"Authorization\"", "\"authorization\"");
    let e: AuthorizerEvent = serde_json::from_str(&text).unwrap();
    assert!(handle(&f, &e).is_ok());
}

#[test]
fn request_event_with_two_different_authorization_headers_is_refused() {
    let f = fx(&[]);
    let t = token(&f.key, "", 900);
    let text = include_str!("fixtures/request.json")
        .replace(
            "\"Authorization\": [\"Bearer {{TOKEN}}\"]",
            "\"Authorization\": [\"Bearer {{TOKEN}}\", \"Bearer other\"]",
        )
        .replace("{{TOKEN}}", &t);
    let e: AuthorizerEvent = serde_json::from_str(&text).unwrap();
    assert!(matches!(handle(&f, &e).unwrap_err(), AuthorizerError::Unauthorized(_)));
}

#[test]
fn request_event_without_headers_is_unauthorized() {
    let f = fx(&[]);
    let mut v: Value = serde_json::from_str(include_str!("fixtures/request.json")).unwrap();
    v["headers"] = Value::Null;
    v["multiValueHeaders"] = Value::Null;
    let e: AuthorizerEvent = serde_json::from_value(v).unwrap();
    assert!(matches!(handle(&f, &e).unwrap_err(), AuthorizerError::Unauthorized("missing_token")));
}

#[test]
fn http_api_v2_gets_a_simple_response() {
    let f = fx(&[]);
    let t = token(&f.key, "pets:read", 900);
    let v = serde_json::to_value(handle(&f, &event("http-v2", &t)).unwrap()).unwrap();
    assert_eq!(v["isAuthorized"], true);
    assert_eq!(v["context"]["sub"], "user-7");
    assert_eq!(v["context"]["iss"], ISS);
    assert!(v.get("policyDocument").is_none());
    let expired = token(&f.key, "", -3600);
    assert!(matches!(handle(&f, &event("http-v2", &expired)).unwrap_err(), AuthorizerError::Unauthorized(_)));
}

#[test]
fn http_api_v2_can_answer_with_a_policy() {
    let f = fx(&[("AUTH_HTTP_API_RESPONSE", "iam")]);
    let t = token(&f.key, "", 900);
    let answer = handle(&f, &event("http-v2", &t)).unwrap();
    assert_eq!(
        statements(&answer),
        vec![("Allow".into(), vec!["arn:aws:execute-api:us-east-1:123456789012:h7ttp9api0/$default/*/*".to_owned()])]
    );
}

#[test]
fn http_api_v1_payload_is_a_request_event() {
    let f = fx(&[]);
    let t = token(&f.key, "", 900);
    let answer = handle(&f, &event("http-v1", &t)).unwrap();
    assert!(answer.policy().is_some());
}

const MAP: &str = "GET /pets=pets:read,POST /pets=pets:write,GET /pets/{id}=pets:read,DELETE /pets/{id}=admin";

/// With a route map a REQUEST answer covers exactly the method and resource
/// asked: API Gateway's cache key (Authorization, method, resource) pins
/// them, and an IAM `*` cannot say "one segment".
#[test]
fn route_map_request_answer_covers_exactly_the_method_and_resource() {
    let f = fx(&[("AUTH_ROUTE_SCOPES", MAP)]);
    let reader = token(&f.key, "pets:read", 900);
    // The fixture asks for POST /pets.
    let answer = handle(&f, &event("request", &reader)).unwrap();
    assert_eq!(statements(&answer), vec![("Deny".into(), vec![format!("{STAGE}/POST/pets")])]);
    let writer = token(&f.key, "pets:write", 900);
    let answer = handle(&f, &event("request", &writer)).unwrap();
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{STAGE}/POST/pets")])]);
    let p = answer.policy().unwrap();
    assert!(!policy::allows(p, &format!("{STAGE}/GET/pets")), "covers another method");
    assert!(!policy::allows(p, &format!("{STAGE}/POST/pets/1")), "covers a deeper path");
    // A parameter becomes `*`, whatever its name.
    let text = include_str!("fixtures/request.json")
        .replace("{{TOKEN}}", &reader)
        .replace("/POST/pets", "/GET/pets/42")
        .replace("\"resource\": \"/pets\"", "\"resource\": \"/pets/{petId}\"");
    let e: AuthorizerEvent = serde_json::from_str(&text).unwrap();
    let answer = handle(&f, &e).unwrap();
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{STAGE}/GET/pets/*")])]);
}

/// TOKEN events carry only the concrete path: the decision is the route
/// map's for that path, on exactly that `methodArn` (TOKEN authorizers need
/// TTL 0 with a route map: nothing else may reuse the answer).
#[test]
fn route_map_token_answer_covers_exactly_the_method_arn() {
    let f = fx(&[("AUTH_ROUTE_SCOPES", MAP)]);
    let reader = token(&f.key, "pets:read", 900);
    let answer = handle(&f, &event("token", &reader)).unwrap();
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{STAGE}/GET/pets")])]);
    for (arn, allowed) in
        [("DELETE/pets/42", false), ("GET/pets/42", true), ("GET/pets/42/toys", false), ("GET/admin", false)]
    {
        let mut e = event("token", &reader);
        e.method_arn = Some(format!("{STAGE}/{arn}"));
        let answer = handle(&f, &e).unwrap();
        let effect = if allowed { "Allow" } else { "Deny" };
        assert_eq!(statements(&answer), vec![(effect.into(), vec![format!("{STAGE}/{arn}")])], "{arn}");
    }
}

#[test]
fn unmapped_routes_can_be_allowed() {
    let f = fx(&[("AUTH_ROUTE_SCOPES", "POST /pets=pets:write"), ("AUTH_UNMAPPED_ROUTES", "allow")]);
    let reader = token(&f.key, "pets:read", 900);
    let answer = handle(&f, &event("token", &reader)).unwrap();
    assert!(policy::allows(answer.policy().unwrap(), &format!("{STAGE}/GET/pets")));
    let answer = handle(&f, &event("request", &reader)).unwrap();
    assert_eq!(
        statements(&answer),
        vec![("Deny".into(), vec![format!("{STAGE}/POST/pets")])],
        "mapped: needs its scope"
    );
}

/// HTTP API `$default` names no resource: unmapped, on every path of the
/// method (the cache key is the route key and the method).
#[test]
fn http_api_default_route_is_unmapped() {
    let f = fx(&[("AUTH_ROUTE_SCOPES", "GET /pets=pets:read"), ("AUTH_HTTP_API_RESPONSE", "iam")]);
    let t = token(&f.key, "pets:read", 900);
    let text = include_str!("fixtures/http-v2.json").replace("{{TOKEN}}", &t);
    let stage = "arn:aws:execute-api:us-east-1:123456789012:h7ttp9api0/$default";
    let answer = handle(&f, &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(statements(&answer), vec![("Allow".into(), vec![format!("{stage}/GET/pets")])]);
    let text = text.replace("\"GET /pets\"", "\"$default\"");
    let answer = handle(&f, &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(statements(&answer), vec![("Deny".into(), vec![format!("{stage}/GET/*")])]);
}

#[test]
fn missing_required_scope_is_a_deny_policy() {
    let f = fx(&[("AUTH_REQUIRED_SCOPES", "api:access")]);
    let answer = handle(&f, &event("token", &token(&f.key, "pets:read", 900))).unwrap();
    assert_eq!(statements(&answer), vec![("Deny".into(), vec![format!("{STAGE}/*/*")])]);
    let ok = handle(&f, &event("token", &token(&f.key, "api:access", 900))).unwrap();
    assert_eq!(statements(&ok)[0].0, "Allow");
}

#[test]
fn http_api_simple_answer_with_missing_scope_is_not_authorized() {
    let f = fx(&[("AUTH_ROUTE_SCOPES", "GET /pets=pets:read")]);
    let v = serde_json::to_value(handle(&f, &event("http-v2", &token(&f.key, "other", 900))).unwrap()).unwrap();
    assert_eq!(v["isAuthorized"], false);
    let v = serde_json::to_value(handle(&f, &event("http-v2", &token(&f.key, "pets:read", 900))).unwrap()).unwrap();
    assert_eq!(v["isAuthorized"], true);
}

#[test]
fn unknown_event_shapes_and_bad_arns_are_unauthorized() {
    let f = fx(&[]);
    let t = token(&f.key, "", 900);
    for v in [
        json!({}),
        json!({"type": "OTHER", "authorizationToken": format!("Bearer {t}"), "methodArn": format!("{STAGE}/GET/x")}),
        json!({"type": "TOKEN", "authorizationToken": format!("Bearer {t}")}),
        json!({"type": "TOKEN", "authorizationToken": format!("Bearer {t}"), "methodArn": "arn:aws:s3:::bucket"}),
    ] {
        let e: AuthorizerEvent = serde_json::from_value(v.clone()).unwrap();
        assert!(matches!(handle(&f, &e).unwrap_err(), AuthorizerError::Unauthorized(_)), "{v}");
    }
}

#[test]
fn no_keys_is_not_the_clients_fault() {
    let cfg = AuthorizerConfig::from_settings(&Settings::from_pairs(&[
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ("AUTH_JWKS_CONNECT_TIMEOUT_MS", "100"),
    ]))
    .unwrap();
    let f = Fx {
        key: SigningKey::generate(Algorithm::ES256, "k1").unwrap(),
        authorizer: Authorizer::new(Verifier::new(&cfg.verifier).unwrap(), &cfg),
    };
    let err = handle(&f, &event("token", &token(&f.key, "", 900))).unwrap_err();
    assert_eq!(err, AuthorizerError::KeysUnavailable);
    let d: lambda_runtime::Diagnostic = err.into();
    assert_ne!(d.error_message, "Unauthorized");
}

#[test]
fn aws_sdk_fixture_shapes_parse() {
    // The aws_lambda_events crate's own fixtures: our lean event reads them.
    let token_fixture = r#"{"type":"TOKEN","authorizationToken":"allow","methodArn":"arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/GET/"}"#;
    let e: AuthorizerEvent = serde_json::from_str(token_fixture).unwrap();
    assert_eq!(e.event_kind(), Some(authorizer::EventKind::Token));
}

/// A feed that accepts connections and never answers, counting them.
async fn silent_feed() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/revocations", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = std::sync::Arc::clone(&count);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, count)
}

/// An ordinary invocation never waits for the feed: it starts one poll in
/// the background (the feed here never answers) and answers at once;
/// invocations while it is in flight start no other.
#[tokio::test]
async fn invocations_start_a_background_poll_and_never_wait_for_it() {
    let (url, connections) = silent_feed().await;
    let f = fx(&[("REVOCATION_FEED_URL", &url), ("REVOCATION_TIMEOUT_MS", "60000")]);
    let t = token(&f.key, "", 900);
    for _ in 0..20 {
        assert!(f.authorizer.handle(&event("token", &t)).await.is_ok(), "answered while the poll hangs");
    }
    let feed = f.authorizer.verifier().revocation_feed().unwrap();
    assert!(feed.in_flight(), "the poll is still in flight");
    token_core_wait(|| connections.load(std::sync::atomic::Ordering::SeqCst) == 1).await;
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "one poll for twenty invocations");
}

/// Stale and refuse: the invocation waits for one poll, bounded by the
/// fetch timeout, then refuses (the feed never answers).
#[tokio::test]
async fn stale_with_the_refuse_policy_waits_for_one_bounded_poll_then_refuses() {
    let (url, connections) = silent_feed().await;
    let f =
        fx(&[("REVOCATION_FEED_URL", &url), ("REVOCATION_STALE_POLICY", "refuse"), ("REVOCATION_TIMEOUT_MS", "200")]);
    let t = token(&f.key, "", 900);
    let err = f.authorizer.handle(&event("token", &t)).await.unwrap_err();
    assert_eq!(err, AuthorizerError::Unauthorized("revocation_stale"));
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

async fn token_core_wait(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
