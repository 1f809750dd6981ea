//! Verified sign-up and password recovery on the dev stack (issue 16),
//! through the front door as a client sees it, with the mail read from the
//! dev outbox as a person would follow the link:
//! - sign-up → outbox → verify → login, with the same answers for a known
//!   and an unknown address;
//! - forgot → outbox → reset → the old sessions and access tokens are
//!   refused (refresh, sidecar, front door), the new password works;
//! - a password change keeps only the session it returns.

use e2e_tests::{DevStack, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::revocation::{WITHIN, client, start_tagged};

const PW: &str = "correct horse battery";
const NEW_PW: &str = "purple elephant umbrella";
fn start(name: &str) -> (DevStack, std::path::PathBuf) {
    start_tagged(&format!("recovery-{name}"))
}

/// POSTs JSON to an issuer route through the front door: (status, body).
async fn post(s: &DevStack, path: &str, body: Value) -> (StatusCode, Vec<u8>) {
    let resp = client().post(format!("{}{path}", s.gateway)).json(&body).send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

/// Logs in through the front door: (access token, refresh cookie).
async fn login(s: &DevStack, email: &str, password: &str) -> Result<(String, String), StatusCode> {
    let resp =
        client().post(format!("{}/login", s.gateway)).json(&json!({"email": email, "password": password})).send().await;
    let resp = resp.unwrap();
    if resp.status() != StatusCode::OK {
        return Err(resp.status());
    }
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Secure-refresh_token=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("refresh cookie");
    let body: Value = resp.json().await.unwrap();
    Ok((body["access_token"].as_str().unwrap().to_owned(), cookie))
}

async fn refresh_status(s: &DevStack, cookie: &str) -> StatusCode {
    let resp = client()
        .post(format!("{}/refresh", s.gateway))
        .header("cookie", cookie)
        .header("x-requested-with", "e2e")
        .send()
        .await
        .unwrap();
    resp.status()
}

async fn sidecar_status(s: &DevStack, token: &str) -> StatusCode {
    client().get(format!("{}/verify", s.sidecar)).bearer_auth(token).send().await.unwrap().status()
}

async fn gateway_status(s: &DevStack, token: &str) -> StatusCode {
    client().get(format!("{}/pets", s.gateway)).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_through_the_outbox_with_the_same_answers_for_known_and_unknown_addresses() {
    let (s, dir) = start("signup");
    let new = post(&s, "/register", json!({"email": "ada@example.com", "password": PW})).await;
    assert_eq!(new.0, StatusCode::ACCEPTED);
    assert_eq!(login(&s, "ada@example.com", PW).await.unwrap_err(), StatusCode::UNAUTHORIZED, "not verified yet");
    let token = s.mailed_token("ada@example.com", "verify_email").await;
    let link = s.mail_to("ada@example.com").await[0]["links"][0].as_str().unwrap().to_owned();
    assert!(link.contains("/verify-email?token="), "{link}");
    let (status, _) = post(&s, "/verify-email", json!({ "token": token })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&s, "/verify-email", json!({ "token": token })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the link works once");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], "invalid_link");
    let (token, _) = login(&s, "ada@example.com", PW).await.expect("verified: login works");
    assert_eq!(gateway_status(&s, &token).await, StatusCode::OK);

    // A taken address answers exactly like a new one; the owner gets a notice.
    let taken = post(&s, "/register", json!({"email": "ada@example.com", "password": "another password"})).await;
    assert_eq!(taken, new, "same status and body for a taken address");
    let kinds: Vec<Value> = s.mail_to("ada@example.com").await.iter().map(|m| m["kind"].clone()).collect();
    assert_eq!(kinds, [json!("signup_attempt"), json!("verify_email")]);

    // Reset requests: the same answer for an account and for no account.
    let known = post(&s, "/password/forgot", json!({"email": "ada@example.com"})).await;
    let unknown = post(&s, "/password/forgot", json!({"email": "nobody@example.com"})).await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);
    assert_eq!(s.mail_to("nobody@example.com").await[0]["kind"], "reset_unknown_address");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_ends_every_old_session_and_access_token_and_the_new_password_works() {
    let (s, dir) = start("reset");
    s.signup("bob@example.com", PW).await;
    let (a, a_cookie) = login(&s, "bob@example.com", PW).await.unwrap();
    let (b, b_cookie) = login(&s, "bob@example.com", PW).await.unwrap();
    for t in [&a, &b] {
        assert_eq!(sidecar_status(&s, t).await, StatusCode::OK, "positive control");
        assert_eq!(gateway_status(&s, t).await, StatusCode::OK, "positive control");
    }
    let (status, _) = post(&s, "/password/forgot", json!({"email": "bob@example.com"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = s.mailed_token("bob@example.com", "password_reset").await;
    let (status, body) = post(&s, "/password/reset", json!({"token": token, "password": NEW_PW})).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    for (t, cookie) in [(&a, &a_cookie), (&b, &b_cookie)] {
        assert_eq!(refresh_status(&s, cookie).await, StatusCode::UNAUTHORIZED, "old session refreshes no more");
        eventually("the sidecar to refuse an access token issued before the reset", WITHIN, || async {
            sidecar_status(&s, t).await == StatusCode::UNAUTHORIZED
        })
        .await;
        eventually("the front door to refuse an access token issued before the reset", WITHIN, || async {
            gateway_status(&s, t).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    assert_eq!(login(&s, "bob@example.com", PW).await.unwrap_err(), StatusCode::UNAUTHORIZED, "old password");
    let (fresh, _) = login(&s, "bob@example.com", NEW_PW).await.expect("the new password works");
    assert_eq!(sidecar_status(&s, &fresh).await, StatusCode::OK);
    let (status, _) = post(&s, "/password/reset", json!({"token": token, "password": "yet another passphrase"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the reset link works once");
    assert_eq!(s.mail_to("bob@example.com").await[0]["kind"], "password_changed", "the owner is told");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_keeps_only_the_session_it_returns() {
    let (s, dir) = start("change");
    s.signup("cy@example.com", PW).await;
    let (mine, _) = login(&s, "cy@example.com", PW).await.unwrap();
    let (_, other_cookie) = login(&s, "cy@example.com", PW).await.unwrap();
    let change = |current: &'static str| {
        client()
            .post(format!("{}/password/change", s.gateway))
            .bearer_auth(&mine)
            .json(&json!({"current_password": current, "new_password": NEW_PW}))
            .send()
    };
    assert_eq!(change("not the password").await.unwrap().status(), StatusCode::FORBIDDEN);
    let resp = change(PW).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Secure-refresh_token=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a fresh refresh cookie");
    let body: Value = resp.json().await.unwrap();
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh_status(&s, &other_cookie).await, StatusCode::UNAUTHORIZED, "the other session ended");
    assert_eq!(refresh_status(&s, &cookie).await, StatusCode::OK, "the returned session lives");
    assert_eq!(sidecar_status(&s, &fresh).await, StatusCode::OK);
    eventually("the sidecar to refuse the access token from before the change", WITHIN, || async {
        sidecar_status(&s, &mine).await == StatusCode::UNAUTHORIZED
    })
    .await;
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
