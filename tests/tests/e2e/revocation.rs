//! Revocation of access tokens on the dev stack (issue 14): after logout-all
//! the old access token gets 401 from the sidecar and from the front door
//! within the bound, and logging out one session leaves the user's other
//! session working. Needs the issuer's feed (`GET /revocations`).

use std::time::Duration;

use e2e_tests::{DevStack, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The front door's cache TTL here: short, so the test also shows a cached
/// Allow giving way once it ages out (revocation at the gateway is bounded
/// by this TTL plus the feed's lag).
pub(crate) const GATEWAY_TTL_SECS: u64 = 2;
/// Failure guard for "revoked within the bound": the default lag bound
/// (30 s) plus the TTL. Never what a test asserts.
pub(crate) const WITHIN: Duration = Duration::from_secs(30 + GATEWAY_TTL_SECS);

/// The dev stack in a fresh data directory `e2e-<tag>-<pid>`, with the
/// front door's short cache TTL (also used by `recovery.rs`).
pub(crate) fn start_tagged(tag: &str) -> (DevStack, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ttl = GATEWAY_TTL_SECS.to_string();
    (DevStack::start(&dir, &["--authorizer-ttl-secs", &ttl]), dir)
}

fn start(name: &str) -> (DevStack, std::path::PathBuf) {
    start_tagged(&format!("revocation-{name}"))
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// Waits for the sidecar's first complete listing of the feed (its readiness).
async fn wait_ready(s: &DevStack) {
    let url = format!("{}/readyz", s.sidecar);
    eventually(
        "the sidecar's first complete listing of the issuer's revocation feed (GET /revocations on the issuer)",
        WITHIN,
        || {
            let url = url.clone();
            async move { client().get(url).send().await.is_ok_and(|r| r.status() == StatusCode::OK) }
        },
    )
    .await;
}

async fn register(s: &DevStack, email: &str) {
    s.signup(email, "correct horse battery").await;
}

/// Logs in: (access token, refresh cookie).
async fn login(s: &DevStack, email: &str) -> (String, String) {
    let resp = client()
        .post(format!("{}/login", s.issuer))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Secure-refresh_token=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("refresh cookie");
    let body: Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_owned(), cookie)
}

async fn sidecar_status(s: &DevStack, token: &str) -> StatusCode {
    client().get(format!("{}/verify", s.sidecar)).bearer_auth(token).send().await.unwrap().status()
}

async fn gateway_status(s: &DevStack, token: &str) -> StatusCode {
    client().get(format!("{}/pets", s.gateway)).bearer_auth(token).send().await.unwrap().status()
}

async fn metrics(s: &DevStack) -> String {
    client().get(format!("{}/metrics", s.sidecar)).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_revokes_old_access_tokens_at_the_sidecar_and_the_front_door() {
    let (s, dir) = start("all");
    wait_ready(&s).await;
    register(&s, "ada@example.com").await;
    let (token, _) = login(&s, "ada@example.com").await;
    let (other_session, _) = login(&s, "ada@example.com").await;
    // Positive controls: both work everywhere, and the front door caches the Allow.
    for t in [&token, &other_session] {
        assert_eq!(sidecar_status(&s, t).await, StatusCode::OK);
        assert_eq!(gateway_status(&s, t).await, StatusCode::OK);
    }

    let resp = client().post(format!("{}/logout-all", s.issuer)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "logout-all acknowledged");

    for t in [&token, &other_session] {
        eventually("the sidecar to refuse a token issued before logout-all", WITHIN, || async {
            sidecar_status(&s, t).await == StatusCode::UNAUTHORIZED
        })
        .await;
        eventually("the front door to refuse a token issued before logout-all", WITHIN, || async {
            gateway_status(&s, t).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    let resp = client().get(format!("{}/verify", s.sidecar)).bearer_auth(&token).send().await.unwrap();
    let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.contains(r#"error="invalid_token""#), "{www}");

    // A login after logout-all is not covered: its token works.
    let (fresh, _) = login(&s, "ada@example.com").await;
    assert_eq!(sidecar_status(&s, &fresh).await, StatusCode::OK);
    assert_eq!(gateway_status(&s, &fresh).await, StatusCode::OK);

    let m = metrics(&s).await;
    assert!(m.contains(r#"auth_decisions_total{outcome="unauthorized",reason="revoked"}"#), "{m}");
    assert!(!m.contains("auth_revocation_entries 0\n"), "the subject's entry is held:\n{m}");
    assert!(m.contains("auth_revocation_stale 0\n"), "{m}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_of_one_session_leaves_the_other_session_working() {
    let (s, dir) = start("one");
    wait_ready(&s).await;
    register(&s, "bob@example.com").await;
    let (gone, gone_cookie) = login(&s, "bob@example.com").await;
    let (kept, _) = login(&s, "bob@example.com").await;
    for t in [&gone, &kept] {
        assert_eq!(sidecar_status(&s, t).await, StatusCode::OK, "positive control");
    }
    let resp = client()
        .post(format!("{}/logout", s.issuer))
        .header("cookie", &gone_cookie)
        .header("x-requested-with", "e2e")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    eventually("the sidecar to refuse the logged-out session's token", WITHIN, || async {
        sidecar_status(&s, &gone).await == StatusCode::UNAUTHORIZED
    })
    .await;
    eventually("the front door to refuse the logged-out session's token", WITHIN, || async {
        gateway_status(&s, &gone).await == StatusCode::UNAUTHORIZED
    })
    .await;
    // The other session is untouched, at both.
    assert_eq!(sidecar_status(&s, &kept).await, StatusCode::OK);
    assert_eq!(gateway_status(&s, &kept).await, StatusCode::OK);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
