//! Loading the signing key ring from Secrets Manager, as the Lambda does at
//! init, against moto on `DYNAMODB_ENDPOINT` (scripts/test.sh starts it; it
//! serves Secrets Manager on the same port). Without it these tests fail,
//! saying so.
//!
//! The ring of a rotation in progress: the previous key (still published,
//! its tokens still valid), the active key (the only one that signs) and
//! the next key (published ahead of its turn).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::primitives::Blob;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use issuer::config::{IssuerConfig, Shape};
use issuer::keys::KeyError;
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
use issuer::{App, KeyRing};
use token_core::{Algorithm, Settings, SigningKey, Verifier, VerifierConfig, VerifyError};

const ISS: &str = "https://issuer.example.com";

fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => panic!(
            "DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts moto (it serves Secrets Manager \
             too), or point it at one"
        ),
    }
}

async fn client() -> aws_sdk_secretsmanager::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "issuer-tests"))
        .endpoint_url(endpoint())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&sdk)
}

fn unique(tag: &str) -> String {
    let id: String =
        issuer::tokens::random_id().unwrap().chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("issuer-test-{tag}-{id}")
}

async fn secret_string(client: &aws_sdk_secretsmanager::Client, tag: &str, value: &str) -> String {
    let out = client.create_secret().name(unique(tag)).secret_string(value).send().await.expect("CreateSecret");
    out.arn().unwrap().to_owned()
}

struct Rotation {
    previous: SigningKey,
    active: SigningKey,
    next: SigningKey,
}

fn rotation() -> Rotation {
    Rotation {
        previous: SigningKey::generate(Algorithm::RS256, "2026-10").unwrap(),
        active: SigningKey::generate(Algorithm::ES256, "2026-11").unwrap(),
        next: SigningKey::generate(Algorithm::EdDSA, "2026-12").unwrap(),
    }
}

fn document(r: &Rotation, active: &str) -> String {
    let key = |k: &SigningKey| serde_json::json!({"kid": k.kid(), "alg": k.alg().as_str(), "private_key_pem": k.to_pkcs8_pem()});
    serde_json::json!({"active": active, "keys": [key(&r.previous), key(&r.active), key(&r.next)]}).to_string()
}

fn verifier_of(ring: &KeyRing) -> Arc<Verifier> {
    let v = Verifier::new(&VerifierConfig::for_issuer(ISS, vec!["api".into()], None)).unwrap();
    v.install_jwks(ISS, ring.jwks_json()).unwrap();
    v
}

fn token(key: &SigningKey) -> String {
    let now = token_core::unix_now().as_secs();
    let claims = serde_json::json!({"iss": ISS, "sub": "u", "aud": "api", "exp": now + 600, "iat": now,
        "jti": issuer::tokens::random_id().unwrap(), "scope": "openid", "client_id": "first-party"});
    key.sign_any(&claims).unwrap()
}

/// A temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The issuer app with `ring` and an SQLite store.
fn app(ring: KeyRing) -> (App<SqliteStore>, TempDir) {
    let dir = TempDir(std::env::temp_dir().join(unique("keys-app")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.to_string_lossy().into_owned();
    // Accounts at once: signing is under test, not sign-up.
    let pairs = [
        ("ISSUER_URL", ISS),
        ("ISSUER_AUDIENCE", "api"),
        ("ISSUER_DATA_DIR", d.as_str()),
        ("ISSUER_REQUIRE_VERIFIED_EMAIL", "false"),
    ];
    let cfg = IssuerConfig::from_settings(&Settings::from_pairs(&pairs), Shape::Local).unwrap();
    let store = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
    (App::new(cfg, store, ring).unwrap(), dir)
}

async fn post(app: &App<SqliteStore>, path: &str, body: &str) -> issuer::Response {
    let mut req = issuer::Request::new(Method::POST, path);
    req.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req.body = Bytes::from(body.to_owned());
    app.handle(req).await
}

#[tokio::test]
async fn previous_active_and_next_keys_are_published_and_only_the_active_one_signs() {
    let client = client().await;
    let r = rotation();
    let arn = secret_string(&client, "rotation", &document(&r, "2026-11")).await;
    let ring = KeyRing::from_secrets_manager(&client, &arn).await.expect("the ring loads");

    assert_eq!(ring.active().kid(), "2026-11");
    assert_eq!(ring.active().alg(), Algorithm::ES256);
    let mut kids: Vec<&str> = ring.jwks().keys.iter().map(|k| k.kid.as_str()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["2026-10", "2026-11", "2026-12"], "all three published");
    let published: serde_json::Value = serde_json::from_slice(ring.jwks_json()).unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 3);
    assert!(!String::from_utf8_lossy(ring.jwks_json()).contains("PRIVATE"), "public keys only");

    // Tokens of every published key verify: the previous key's (issued
    // before the rotation) and the next key's (after the next one).
    let v = verifier_of(&ring);
    for k in [&r.previous, &r.active, &r.next] {
        v.verify(&token(k)).await.unwrap_or_else(|e| panic!("{}: {e:?}", k.kid()));
    }
    // Control: a key outside the ring does not.
    let stranger = SigningKey::generate(Algorithm::ES256, "2027-01").unwrap();
    assert_eq!(v.verify_at(&token(&stranger), token_core::unix_now()).unwrap_err(), VerifyError::UnknownKid);

    // The issuer signs with the active key only.
    let (app, _dir) = app(ring);
    let creds = r#"{"email": "rotation@example.com", "password": "correct horse battery"}"#;
    assert_eq!(post(&app, "/register", creds).await.status, StatusCode::ACCEPTED);
    for _ in 0..3 {
        let resp = post(&app, "/login", creds).await;
        assert_eq!(resp.status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let access = body["access_token"].as_str().unwrap();
        let header = access.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
        )
        .unwrap();
        assert_eq!((header["kid"].as_str(), header["alg"].as_str()), (Some("2026-11"), Some("ES256")));
        v.verify(access).await.unwrap();
    }
}

#[tokio::test]
async fn promoting_the_next_key_is_a_new_secret_version() {
    let client = client().await;
    let r = rotation();
    let arn = secret_string(&client, "promote", &document(&r, "2026-11")).await;
    let before = KeyRing::from_secrets_manager(&client, &arn).await.unwrap();
    client.put_secret_value().secret_id(&arn).secret_string(document(&r, "2026-12")).send().await.unwrap();
    let after = KeyRing::from_secrets_manager(&client, &arn).await.unwrap();
    assert_eq!(before.active().kid(), "2026-11");
    assert_eq!(after.active().kid(), "2026-12");
    assert_eq!(before.jwks(), after.jwks(), "the same keys published");
    // Tokens signed before the promotion still verify after it.
    let v = verifier_of(&after);
    v.verify(&token(&r.active)).await.unwrap();
}

#[tokio::test]
async fn unreadable_secrets_are_errors_that_name_no_key_material() {
    let client = client().await;
    let r = rotation();

    // No such secret.
    let missing = KeyRing::from_secrets_manager(&client, &unique("missing")).await.unwrap_err();
    assert!(matches!(missing, KeyError::Secrets(_)), "{missing:?}");

    // A binary secret (no SecretString).
    let name = unique("binary");
    let out = client.create_secret().name(&name).secret_binary(Blob::new(b"\x00\x01".to_vec())).send().await.unwrap();
    let err = KeyRing::from_secrets_manager(&client, out.arn().unwrap()).await.unwrap_err();
    assert!(matches!(err, KeyError::Secrets(ref m) if m.contains("SecretString")), "{err:?}");

    // Not the document format, with key material inside: refused without echoing it.
    let pem = r.active.to_pkcs8_pem().to_owned();
    let cases = [
        format!("{{\"active\": \"{pem}"),
        serde_json::json!({"active": "2027-01", "keys": [{"kid": "2026-11", "alg": "ES256", "private_key_pem": pem}]})
            .to_string(),
        serde_json::json!({"active": "2026-11", "keys": [{"kid": "2026-11", "alg": "RS256", "private_key_pem": pem}]})
            .to_string(),
    ];
    for (i, doc) in cases.iter().enumerate() {
        let arn = secret_string(&client, &format!("bad{i}"), doc).await;
        let err = KeyRing::from_secrets_manager(&client, &arn).await.unwrap_err();
        assert!(matches!(err, KeyError::Format(_) | KeyError::Invalid(_)), "{i}: {err:?}");
        let text = err.to_string();
        assert!(!text.contains("PRIVATE KEY") && !text.contains(&pem[30..60]), "{i}: {text}");
    }
    // Control: the same client reads a good document.
    let arn = secret_string(&client, "good", &document(&r, "2026-10")).await;
    assert_eq!(KeyRing::from_secrets_manager(&client, &arn).await.unwrap().active().kid(), "2026-10");
}
