//! The issuer's Lambda bootstrap (`issuer-lambda`, built by `cargo build
//! --workspace --bins`) driven through the Runtime API on loopback, as
//! Lambda drives it: API Gateway REST (v1 proxy) and HTTP API (v2) events,
//! the DynamoDB store and the signing keys in Secrets Manager, both served
//! by moto on `DYNAMODB_ENDPOINT` (scripts/test.sh starts it). Without it
//! the test fails, saying so.

use base64::Engine as _;
use e2e_tests::{Outcome, Proc, RuntimeApi};
use issuer::store::dynamo::{DynamoConfig, DynamoStore};
use serde_json::{Value, json};
use token_core::{Algorithm, SigningKey, Verifier, VerifierConfig};

use crate::trace_env::SetenvProbe;

const ISS: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/prod";
const PASSWORD: &str = "correct horse battery";
const COOKIE: &str = "__Secure-refresh_token";

fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => panic!(
            "DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts moto (DynamoDB and Secrets \
             Manager), or point it at one"
        ),
    }
}

fn unique(tag: &str) -> String {
    let id = issuer::tokens::random_id().unwrap();
    let id: String = id.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("e2e-{tag}-{id}")
}

/// Creates the secret in moto's Secrets Manager (its JSON protocol, as the
/// SDK speaks it; moto does not check signatures) and returns its ARN.
async fn create_secret(endpoint: &str, name: &str, value: &str) -> String {
    let resp = reqwest::Client::new()
        .post(endpoint)
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(json!({"Name": name, "SecretString": value}).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("Secrets Manager at {endpoint}: {e}"));
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "CreateSecret: {status} {body}");
    body["ARN"].as_str().unwrap().to_owned()
}

/// Creates a verified email identity in moto's SES v2 (its REST protocol;
/// moto does not check signatures, and counts new identities as verified).
async fn create_email_identity(endpoint: &str, address: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/v2/email/identities"))
        .header("content-type", "application/json")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(json!({ "EmailIdentity": address }).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SES at {endpoint}: {e}"));
    assert!(resp.status().is_success(), "CreateEmailIdentity: {}", resp.status());
}

/// The token of the newest link to `to` that moto's SES recorded (moto keeps
/// the HTML body: the link's `href`).
async fn ses_token(endpoint: &str, to: &str) -> String {
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let all = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    let body = all
        .iter()
        .rev()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(to))))
        })
        .find_map(|m| m["body"].as_str().filter(|b| b.contains("token=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no message with a link to {to} in moto's SES"));
    let after = body.split_once("token=").unwrap().1;
    after.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '%')).collect()
}

/// The key ring secret: a previous, an active and a next key.
fn key_ring() -> (String, [SigningKey; 3]) {
    let keys = [
        SigningKey::generate(Algorithm::RS256, "2026-10").unwrap(),
        SigningKey::generate(Algorithm::ES256, "2026-11").unwrap(),
        SigningKey::generate(Algorithm::EdDSA, "2026-12").unwrap(),
    ];
    let doc = json!({"active": "2026-11", "keys": keys.iter().map(|k| json!({
        "kid": k.kid(), "alg": k.alg().as_str(), "private_key_pem": k.to_pkcs8_pem()
    })).collect::<Vec<_>>()});
    (doc.to_string(), keys)
}

/// A REST API (v1 proxy) event; the path has no stage, as API Gateway sends it.
fn rest(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Vec<u8> {
    let mut h = serde_json::Map::new();
    let mut mv = serde_json::Map::new();
    for (k, v) in
        [("Host", "abc123.execute-api.us-east-1.amazonaws.com"), ("X-Forwarded-Proto", "https")].iter().chain(headers)
    {
        h.insert((*k).into(), json!(v));
        mv.insert((*k).into(), json!([v]));
    }
    serde_json::to_vec(&json!({
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": h, "multiValueHeaders": mv,
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": path.trim_start_matches('/')}, "stageVariables": null,
        "requestContext": {"accountId": "123456789012", "resourceId": "r1", "stage": "prod",
            "requestId": unique("rq"), "requestTimeEpoch": 1_583_798_639_428_u64,
            "identity": {"sourceIp": "192.0.2.1", "userAgent": "e2e"},
            "resourcePath": "/{proxy+}", "httpMethod": method, "apiId": "abc123"},
        "body": body, "isBase64Encoded": false
    }))
    .unwrap()
}

/// An HTTP API (v2) event: the stage in the raw path, cookies apart, the
/// body base64-encoded.
fn http_api(method: &str, path: &str, headers: &[(&str, &str)], cookies: &[String], body: Option<&str>) -> Vec<u8> {
    let mut h = serde_json::Map::new();
    h.insert("host".into(), json!("abc123.execute-api.us-east-1.amazonaws.com"));
    for (k, v) in headers {
        h.insert(k.to_lowercase(), json!(v));
    }
    let raw = format!("/prod{path}");
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw, "rawQueryString": "",
        "headers": h,
        "requestContext": {"accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": raw, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "e2e"},
            "requestId": unique("rq"), "routeKey": "$default", "stage": "prod",
            "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1_583_348_638_390_u64},
        "isBase64Encoded": body.is_some()
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if let Some(b) = body {
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
    }
    serde_json::to_vec(&event).unwrap()
}

/// `event` as if sent from `ip`: API Gateway's `requestContext` source
/// address (REST: `identity.sourceIp`; HTTP API: `http.sourceIp`).
fn from_ip(event: Vec<u8>, ip: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&event).unwrap();
    let ctx = &mut v["requestContext"];
    if ctx["http"].is_object() {
        ctx["http"]["sourceIp"] = json!(ip);
    } else {
        ctx["identity"]["sourceIp"] = json!(ip);
    }
    serde_json::to_vec(&v).unwrap()
}

/// A function response: status, JSON body (if any), Set-Cookie values.
#[derive(Debug)]
struct Answer {
    status: u64,
    body: Value,
    cookies: Vec<String>,
}

async fn call(rt: &RuntimeApi, event: Vec<u8>) -> Answer {
    let v = match rt.invoke(event).await {
        o @ Outcome::Response(_) => o.json(),
        Outcome::Error(b) => panic!("the function failed instead of answering: {}", String::from_utf8_lossy(&b)),
    };
    let text = v["body"].as_str().unwrap_or_default();
    let text = if v["isBase64Encoded"] == true {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
    } else {
        text.to_owned()
    };
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let strings = |x: &Value| -> Vec<String> {
        match x {
            Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let mut cookies = strings(&v["cookies"]);
    if cookies.is_empty() {
        cookies = strings(&v["multiValueHeaders"]["set-cookie"]);
    }
    if cookies.is_empty() {
        cookies = strings(&v["headers"]["set-cookie"]);
    }
    Answer { status: v["statusCode"].as_u64().unwrap_or_default(), body, cookies }
}

/// The refresh token a response set (`__Secure-refresh_token=...`).
fn refresh_cookie(a: &Answer) -> String {
    let c = a.cookies.iter().find(|c| c.starts_with(&format!("{COOKIE}="))).unwrap_or_else(|| panic!("{a:?}"));
    let pair = c.split(';').next().unwrap().to_owned();
    assert!(pair.len() > COOKIE.len() + 1, "{c}");
    pair
}

/// One flow over one event kind: register, login, refresh, logout.
/// Runs the flow; returns every secret the client saw (tokens, cookies).
async fn flow(rt: &RuntimeApi, verifier: &Verifier, v2: bool, keys: &[SigningKey; 3], ses: &str) -> Vec<String> {
    let email = format!("{}@example.com", unique(if v2 { "v2" } else { "v1" }));
    let creds = json!({"email": email, "password": PASSWORD}).to_string();
    let ct = [("Content-Type", "application/json")];
    let event = |method: &str, path: &str, headers: &[(&str, &str)], cookie: Option<&str>, body: Option<&str>| {
        if v2 {
            let cookies: Vec<String> = cookie.map(str::to_owned).into_iter().collect();
            http_api(method, path, headers, &cookies, body)
        } else {
            let mut h = headers.to_vec();
            if let Some(c) = cookie {
                h.push(("Cookie", c));
            }
            rest(method, path, &h, body)
        }
    };
    let kind = if v2 { "HTTP API" } else { "REST API" };

    let first = call(rt, event("POST", "/register", &ct, None, Some(&creds))).await;
    assert_eq!(first.status, 202, "{kind} register: {first:?}");
    // The verification link went through SES (moto's).
    let token = ses_token(ses, &email).await;
    let verify = json!({ "token": token }).to_string();
    let a = call(rt, event("POST", "/verify-email", &ct, None, Some(&verify))).await;
    assert_eq!(a.status, 200, "{kind} verify: {a:?}");
    let a = call(rt, event("POST", "/register", &ct, None, Some(&creds))).await;
    assert_eq!((a.status, &a.body), (202, &first.body), "{kind} register twice: the same answer {a:?}");

    let wrong = json!({"email": email, "password": "not the password"}).to_string();
    let a = call(rt, event("POST", "/login", &ct, None, Some(&wrong))).await;
    assert_eq!(a.status, 401, "{kind} wrong password: {a:?}");
    let login = call(rt, event("POST", "/login", &ct, None, Some(&creds))).await;
    assert_eq!(login.status, 200, "{kind} login: {login:?}");
    let access = login.body["access_token"].as_str().unwrap();
    let claims = verifier.verify(access).await.unwrap_or_else(|e| panic!("{kind}: {e:?}"));
    assert!(!claims.sub().is_empty(), "{kind}");
    // Signed by the active key of the secret.
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(access.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], keys[1].kid(), "{kind}");
    let first = refresh_cookie(&login);

    let csrf = [("X-Requested-With", "e2e")];
    let a = call(rt, event("POST", "/refresh", &csrf, Some(&first), None)).await;
    assert_eq!(a.status, 200, "{kind} refresh: {a:?}");
    verifier.verify(a.body["access_token"].as_str().unwrap()).await.unwrap();
    let second = refresh_cookie(&a);
    assert_ne!(first, second, "{kind}: rotated");

    let a = call(rt, event("POST", "/logout", &csrf, Some(&second), None)).await;
    assert_eq!(a.status, 204, "{kind} logout: {a:?}");
    let a = call(rt, event("POST", "/refresh", &csrf, Some(&second), None)).await;
    assert_eq!(a.status, 401, "{kind} refresh after logout: {a:?}");
    // The control for that 401: the same request without the CSRF header
    // is refused for another reason, so the 401 above is the logout's.
    let a = call(rt, event("POST", "/refresh", &[], Some(&second), None)).await;
    assert_ne!(a.status, 200, "{kind}: {a:?}");
    let value = |cookie: &str| cookie.split_once('=').map_or(cookie, |(_, v)| v).to_owned();
    vec![access.to_owned(), value(&first), value(&second)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_lambda_serves_rest_and_http_api_events_on_dynamodb_with_keys_from_secrets_manager() {
    let endpoint = endpoint();
    let prefix = unique("issuer-lambda");
    let dynamo = DynamoConfig {
        users_table: format!("{prefix}-Users"),
        refresh_table: format!("{prefix}-RefreshTokens"),
        revocations_table: format!("{prefix}-Revocations"),
        endpoint: Some(endpoint.clone()),
        ..DynamoConfig::default()
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "e2e"))
        .load()
        .await;
    DynamoStore::new(&sdk, &dynamo).create_tables().await.expect("create the tables in moto");
    let (secret, keys) = key_ring();
    let arn = create_secret(&endpoint, &prefix, &secret).await;
    create_email_identity(&endpoint, "no-reply@example.com").await;

    let probe = SetenvProbe::build("issuer-lambda");
    let rt = RuntimeApi::start().await;
    let mut env = rt.lambda_env();
    env.extend(probe.env());
    env.extend(
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("DYNAMODB_ENDPOINT", endpoint.as_str()),
            ("ISSUER_URL", ISS),
            ("ISSUER_AUDIENCE", "api"),
            ("ISSUER_USERS_TABLE", dynamo.users_table.as_str()),
            ("ISSUER_REFRESH_TABLE", dynamo.refresh_table.as_str()),
            ("ISSUER_REVOCATIONS_TABLE", dynamo.revocations_table.as_str()),
            ("ISSUER_SIGNING_KEY_SECRET_ARN", arn.as_str()),
            // Mail goes through SES on Lambda: moto's, beside DynamoDB.
            ("ISSUER_MAIL_FROM", "no-reply@example.com"),
            ("SES_ENDPOINT", endpoint.as_str()),
            ("ISSUER_COOKIE_PATH_PREFIX", "/prod"),
            ("AWS_LAMBDA_FUNCTION_NAME", "issuer"),
            // The most verbose level: nothing secret may be logged even here.
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("RUST_LOG", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = Proc::start("issuer-lambda", &[], &env);

    // The JWKS through the function: all three keys of the secret.
    let jwks = call(&rt, rest("GET", "/.well-known/jwks.json", &[], None)).await;
    assert_eq!(jwks.status, 200, "{jwks:?}; logs: {:?}", p.logs());
    let mut kids: Vec<&str> = jwks.body["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["2026-10", "2026-11", "2026-12"]);
    assert!(rt.init_error().is_none());

    let verifier = Verifier::new(&VerifierConfig::for_issuer(ISS, vec!["api".into()], None)).unwrap();
    verifier.install_jwks(ISS, &serde_json::to_vec(&jwks.body).unwrap()).unwrap();
    let mut secrets = flow(&rt, &verifier, false, &keys, &endpoint).await;
    secrets.extend(flow(&rt, &verifier, true, &keys, &endpoint).await);

    // The login attempt counters count API Gateway's source address, never
    // a header a client can send: five wrong passwords from one address
    // refuse that address (even with the right password, and whatever
    // X-Forwarded-For says), while another address logs in.
    for v2 in [false, true] {
        let email = format!("{}@example.com", unique("attempts"));
        let body = |pw: &str| json!({"email": email, "password": pw}).to_string();
        let h = [("Content-Type", "application/json"), ("X-Forwarded-For", "198.51.100.77")];
        let login = |pw: &str, ip: &str| {
            let b = body(pw);
            from_ip(
                if v2 { http_api("POST", "/login", &h, &[], Some(&b)) } else { rest("POST", "/login", &h, Some(&b)) },
                ip,
            )
        };
        let a = call(&rt, rest("POST", "/register", &h, Some(&body(PASSWORD)))).await;
        assert_eq!(a.status, 202, "{a:?}");
        let verify = json!({ "token": ses_token(&endpoint, &email).await }).to_string();
        assert_eq!(call(&rt, rest("POST", "/verify-email", &h, Some(&verify))).await.status, 200);
        for _ in 0..5 {
            assert_eq!(call(&rt, login("not the password", "203.0.113.5")).await.status, 401);
        }
        let a = call(&rt, login(PASSWORD, "203.0.113.5")).await;
        assert_eq!((a.status, a.body["error"].as_str()), (429, Some("account_locked")), "v2={v2}: {a:?}");
        let a = call(&rt, login(PASSWORD, "198.51.100.9")).await;
        assert_eq!(a.status, 200, "v2={v2}, another source address: {a:?}");
        secrets.push(a.body["access_token"].as_str().unwrap().to_owned());
    }
    let logs = p.logs().join("\n");
    assert!(
        logs.contains("login_refused") && logs.contains("account_address"),
        "the audit line the Lockouts metric filter counts is missing"
    );

    // Bad input through the adapter: a clear 4xx, never a function error.
    let a = call(&rt, rest("POST", "/login", &[("Content-Type", "application/json")], Some("{\"email\": 5}"))).await;
    assert_eq!(a.status, 400, "{a:?}");
    let a = call(&rt, http_api("GET", "/nope", &[], &[], None)).await;
    assert_eq!(a.status, 404, "{a:?}");

    // Nothing secret in the logs at TRACE: no password, no token, no
    // refresh cookie, no private key. Positive controls: trace-level lines
    // were written, and the secrets searched for are real ones.
    let logs = p.logs().join("\n");
    assert!(logs.to_ascii_lowercase().contains("trace"), "no trace-level output: the level did not apply");
    assert!(!logs.contains(PASSWORD), "a password reached the logs");
    assert!(!logs.contains("PRIVATE KEY"), "a private key reached the logs");
    assert_eq!(secrets.len(), 8);
    for secret in &secrets {
        assert!(secret.len() >= 43, "not a token: {secret:?}");
        assert!(!logs.contains(secret.as_str()), "a token or refresh cookie reached the logs");
    }
    assert!(logs.contains("signing keys loaded"), "{logs}");
    probe.assert_no_trace_id_env(p.pid());
}
