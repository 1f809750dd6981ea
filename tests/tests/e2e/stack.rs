//! The local stack (the `devstack` binary) started as a process, with the README's
//! walkthrough run over HTTP and every answer checked, including the front
//! door's cached-policy behaviour.

use std::time::Duration;

use e2e_tests::DevStack;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn start(data_dir: &std::path::Path) -> DevStack {
    DevStack::start(data_dir, &[])
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// The refresh cookie's value from a response's Set-Cookie headers.
fn refresh_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Secure-refresh_token=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

async fn login(s: &DevStack, email: &str) -> (String, String) {
    let resp = client()
        .post(format!("{}/login", s.issuer))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = refresh_cookie(&resp).expect("refresh cookie");
    let body: Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_owned(), cookie)
}

async fn refresh(s: &DevStack, cookie: &str) -> reqwest::Response {
    client()
        .post(format!("{}/refresh", s.issuer))
        .header("cookie", cookie)
        .header("x-requested-with", "e2e")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough() {
    let dir = tempdir("walkthrough");
    let s = start(&dir);
    let c = client();

    // Register, follow the link from the outbox, log in.
    s.signup("Ada@Example.com", "correct horse battery").await;
    let resp = c
        .post(format!("{}/login", s.issuer))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for c in &cookies {
        for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(c.contains(attr), "{c}");
        }
    }
    assert!(cookies.iter().any(|c| c.contains("Path=/refresh")) && cookies.iter().any(|c| c.contains("Path=/logout")));
    let cookie = refresh_cookie(&resp).unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");

    // Through the front door: allowed, echoed with the authorizer context.
    let resp = c.get(format!("{}/pets", s.gateway)).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-dev-authorizer-cache"], "miss");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/pets");
    let sub = echo["authorizer"]["sub"].as_str().unwrap().to_owned();
    assert_eq!(echo["authorizer"]["principal-id"], sub.as_str());
    assert_eq!(echo["authorizer"]["scope"], "openid pets:read pets:write");

    // Answers are cached per token, method and resource (as API Gateway's
    // cache is keyed by the template): each route is decided for itself, and
    // a second request to the same resource is a hit.
    for (method, path, want, cache) in [
        ("POST", "/pets", StatusCode::OK, "miss"),
        ("GET", "/pets/7", StatusCode::OK, "miss"),
        ("GET", "/pets/8", StatusCode::OK, "hit"),
        ("GET", "/pets/8/owner", StatusCode::FORBIDDEN, "miss"),
        ("DELETE", "/pets/7", StatusCode::FORBIDDEN, "miss"),
        ("GET", "/whoami", StatusCode::OK, "miss"),
        ("GET", "/admin", StatusCode::FORBIDDEN, "miss"),
        ("GET", "/pets", StatusCode::OK, "hit"),
    ] {
        let resp = c
            .request(method.parse().unwrap(), format!("{}{path}", s.gateway))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{method} {path}");
        assert_eq!(resp.headers()["x-dev-authorizer-cache"], cache, "{method} {path}");
    }
    // Context headers sent by a client never reach the backend.
    let resp = c
        .get(format!("{}/pets", s.gateway))
        .header("authorization", &bearer)
        .header("x-authorizer-sub", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["authorizer"]["sub"], sub.as_str());
    // No token or a bad one: 401 from the front door.
    assert_eq!(c.get(format!("{}/pets", s.gateway)).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let bad = c.get(format!("{}/pets", s.gateway)).header("authorization", "Bearer x.y.z").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    // The issuer's routes are public through the front door too.
    let jwks = c.get(format!("{}/.well-known/jwks.json", s.gateway)).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    assert!(jwks.headers()["cache-control"].to_str().unwrap().contains("max-age"));

    // Through the sidecar.
    let resp = c.get(format!("{}/verify", s.sidecar)).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-auth-subject"], sub.as_str());
    let resp =
        c.get(format!("{}/verify?scope=admin", s.sidecar)).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Refresh rotates; the old token presented again revokes the family.
    let resp = refresh(&s, &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotated = refresh_cookie(&resp).unwrap();
    assert_ne!(rotated, cookie);
    let fresh: Value = resp.json().await.unwrap();
    let fresh_bearer = format!("Bearer {}", fresh["access_token"].as_str().unwrap());
    let resp = c.get(format!("{}/verify", s.sidecar)).header("authorization", &fresh_bearer).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(refresh(&s, &cookie).await.status(), StatusCode::UNAUTHORIZED, "reuse of the old token");
    assert_eq!(refresh(&s, &rotated).await.status(), StatusCode::UNAUTHORIZED, "the family is revoked");

    // Log out: the session ends and the cookie is cleared.
    let (_, cookie) = login(&s, "ada@example.com").await;
    let resp = c
        .post(format!("{}/logout", s.issuer))
        .header("cookie", &cookie)
        .header("x-requested-with", "e2e")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(resp.headers().get_all("set-cookie").iter().all(|v| v.to_str().unwrap().contains("Max-Age=0")));
    assert_eq!(refresh(&s, &cookie).await.status(), StatusCode::UNAUTHORIZED);
    // Refresh without the CSRF header is refused.
    let (_, cookie) = login(&s, "ada@example.com").await;
    let resp = c.post(format!("{}/refresh", s.issuer)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_everything_and_a_restart_keeps_users_and_sessions() {
    let dir = tempdir("restart");
    let mut s = start(&dir);
    s.signup("bob@example.com", "correct horse battery").await;
    let (_, cookie) = login(&s, "bob@example.com").await;
    let jwks_before: Value =
        client().get(format!("{}/.well-known/jwks.json", s.issuer)).send().await.unwrap().json().await.unwrap();
    s.proc.signal("INT");
    let (status, s) =
        tokio::task::spawn_blocking(move || (s.proc.wait_timeout(Duration::from_secs(15)), s)).await.unwrap();
    let status = status.expect("stopped");
    assert!(status.success(), "{status:?}: {:?}", s.proc.logs());
    drop(s);

    let s = start(&dir);
    login(&s, "bob@example.com").await;
    assert_eq!(refresh(&s, &cookie).await.status(), StatusCode::OK, "the session survived the restart");
    // The signing key survived too (the issuer URL changed with the port, so
    // compare the published key rather than an old token's iss).
    let jwks_after: Value =
        client().get(format!("{}/.well-known/jwks.json", s.issuer)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks_before, jwks_after);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-stack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
