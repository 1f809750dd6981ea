//! No secret in any log at any level (issue 11): every entry point runs at
//! its most verbose level (`RUST_LOG=trace`, and `AWS_LAMBDA_LOG_LEVEL=TRACE`
//! for the Lambda bootstrap), is sent requests carrying a known password, a
//! cookie and a bearer token, and its whole output is searched for them.
//! Positive controls: each output holds the TRACE/DEBUG lines expected from
//! that run (the Runtime API request ids, the events' arrival, the
//! decisions), so a silent process cannot pass.

use std::time::{Duration, Instant};

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, Proc, RuntimeApi};
use serde_json::{Value, json};
use token_core::{Algorithm, SigningKey};

const ISS: &str = "https://issuer.test";
const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";
const PASSWORD: &str = "pw-Tr4ce-S3cret-horse-battery";
const COOKIE: &str = "ck-Tr4ce-S3cret-cookie-value";
const NEW_PASSWORD: &str = "pw-Tr4ce-N3w-purple-elephant";
const CHANGED_PASSWORD: &str = "pw-Tr4ce-Ch4nged-zebra-umbrella";

/// Waits until `ready` holds for the logs, failing with them after 20 s.
async fn wait_for(p: &Proc, what: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = p.logs();
        if ready(&logs) {
            return logs;
        }
        assert!(Instant::now() < deadline, "no {what} in the logs:\n{}", logs.join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// None of `secrets` (nor the signature part of a JWT among them) is in `logs`.
fn assert_no_secret(who: &str, logs: &[String], secrets: &[&str]) {
    assert!(!logs.is_empty(), "{who}: no output at all");
    let all = logs.join("\n");
    for s in secrets {
        let needle = s.rsplit('.').next().unwrap();
        assert!(!all.contains(needle), "{who} logged a secret ({needle:.12}...):\n{all}");
    }
}

fn count(logs: &[String], text: &str) -> usize {
    logs.iter().filter(|l| l.contains(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_bootstrap_at_trace_logs_no_secret() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let p = rt.start_authorizer(
        ISS,
        &jwks.url(),
        &[
            ("AUTH_ROUTE_SCOPES", "GET /pets=pets:read"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("RUST_LOG", "trace"),
        ],
    );
    let token = sign(&k, &claims(ISS, "api", "user-1", "pets:read", 900));
    let bearer = format!("Bearer {token}");
    let cookie = format!("__Secure-refresh_token={COOKIE}");
    let body = json!({"email": "a@example.com", "password": PASSWORD}).to_string();
    let events = [
        json!({"type": "TOKEN", "authorizationToken": bearer, "methodArn": format!("{STAGE}/GET/pets")}),
        json!({"type": "REQUEST", "methodArn": format!("{STAGE}/GET/pets"), "resource": "/pets",
            "headers": {"Authorization": bearer, "Cookie": cookie},
            "multiValueHeaders": {"Authorization": [bearer], "Cookie": [cookie]}, "body": body}),
        json!({"version": "2.0", "type": "REQUEST", "routeKey": "GET /pets",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:h7ttp9api0/$default/GET/pets",
            "identitySource": [bearer], "cookies": [cookie], "body": body,
            "headers": {"authorization": bearer, "cookie": cookie}}),
    ];
    for e in &events {
        let v = rt.invoke(serde_json::to_vec(e).unwrap()).await.json();
        assert!(v["policyDocument"].is_object() || v["isAuthorized"] == true, "{v}");
    }
    let logs = wait_for(&p, "three decisions", |l| count(l, "\"message\":\"authorization\"") >= 3).await;
    // Positive controls: TRACE lines from the runtime for each event, and
    // the request ids the Runtime API gave the invocations.
    assert!(count(&logs, "JSON event received from Lambda") >= 3, "{}", logs.join("\n"));
    assert!(count(&logs, "req-") >= 3, "{}", logs.join("\n"));
    assert_no_secret("authorizer", &logs, &[&token, COOKIE, PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_at_trace_logs_no_secret() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let url = jwks.url();
    let env = [
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", url.as_str()),
        ("SIDECAR_LISTEN", "127.0.0.1:0"),
        ("RUST_LOG", "trace"),
    ];
    let p = Proc::spawn("sidecar", &[], &env);
    let token = sign(&k, &claims(ISS, "api", "user-1", "pets:read", 900));
    let expired = sign(&k, &claims(ISS, "api", "user-1", "pets:read", -3600));
    let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for (t, status) in [(&token, 200), (&expired, 401)] {
        let resp = c
            .post(p.url("/verify/login?scope=pets:read"))
            .header("authorization", format!("Bearer {t}"))
            .header("cookie", format!("__Secure-refresh_token={COOKIE}"))
            .body(json!({"password": PASSWORD}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
    }
    // Positive control: the DEBUG line of the rejected token, and the
    // dependencies' TRACE lines around the requests.
    let logs = wait_for(&p, "the rejected token's debug line", |l| count(l, "token rejected") >= 1).await;
    assert!(count(&logs, "TRACE") >= 1, "no TRACE line: {}", logs.join("\n"));
    assert_no_secret("sidecar", &logs, &[&token, &expired, COOKIE, PASSWORD]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_at_trace_logs_no_secret() {
    let dir = std::env::temp_dir().join(format!("e2e-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let args =
        ["serve", "--listen", &listen, "--data-dir", dir.to_str().unwrap(), "--issuer-url", &base, "--audience", "api"];
    let p = Proc::start("issuer", &args, &[("RUST_LOG", "trace")]);
    wait_for(&p, "the listening line", |l| count(l, "issuer listening") >= 1).await;
    let c = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let creds = json!({"email": "trace@example.com", "password": PASSWORD});
    let resp = c.post(format!("{base}/register")).json(&creds).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    // The verification link, read from the local outbox as the dev stack does.
    let outbox = issuer::mail::Outbox::open(&dir.join(issuer::server::OUTBOX_DIR)).unwrap();
    let mailed_token = |kind: &'static str| {
        let outbox = outbox.clone();
        async move {
            let all = outbox.list(100).await.unwrap();
            let m = all.into_iter().find(|m| m.kind == kind).unwrap_or_else(|| panic!("no {kind} message"));
            m.links[0].split_once("token=").unwrap().1.to_owned()
        }
    };
    let verify_token = mailed_token("verify_email").await;
    let resp = c.post(format!("{base}/verify-email")).json(&json!({ "token": verify_token })).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = c.post(format!("{base}/login")).json(&creds).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Secure-refresh_token="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("refresh cookie");
    let refresh_value = cookie.split_once('=').unwrap().1.to_owned();
    let body: Value = resp.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let resp = c
        .post(format!("{base}/refresh"))
        .header("cookie", &cookie)
        .header("x-requested-with", "e2e")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = c.post(format!("{base}/logout-all")).bearer_auth(&access).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    // A wrong password and a client's own cookie too.
    let wrong = json!({"email": "trace@example.com", "password": format!("{PASSWORD}-wrong")});
    let resp =
        c.post(format!("{base}/login")).header("cookie", format!("other={COOKIE}")).json(&wrong).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A password reset, with a new password, and a change back.
    let resp = c.post(format!("{base}/password/forgot")).json(&json!({"email": "trace@example.com"})).send().await;
    assert_eq!(resp.unwrap().status().as_u16(), 202);
    let reset_token = mailed_token("password_reset").await;
    // The user id before the dot is no secret (audit lines name it).
    let reset_secret = reset_token.split_once('.').unwrap().1;
    let reset = json!({"token": reset_token, "password": NEW_PASSWORD});
    let resp = c.post(format!("{base}/password/reset")).json(&reset).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let creds = json!({"email": "trace@example.com", "password": NEW_PASSWORD});
    let resp = c.post(format!("{base}/login")).json(&creds).send().await.unwrap();
    let fresh: Value = resp.json().await.unwrap();
    let change = json!({"current_password": NEW_PASSWORD, "new_password": CHANGED_PASSWORD});
    let resp = c
        .post(format!("{base}/password/change"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let logs = wait_for(&p, "the password change", |l| l.iter().any(|x| x.contains("password changed"))).await;
    assert!(count(&logs, "TRACE") + count(&logs, "DEBUG") >= 1, "no TRACE/DEBUG line: {}", logs.join("\n"));
    assert!(count(&logs, "login failed") >= 1, "the failed login is logged: {}", logs.join("\n"));
    assert_no_secret(
        "issuer",
        &logs,
        &[&access, &refresh_value, COOKIE, PASSWORD, &verify_token, reset_secret, NEW_PASSWORD, CHANGED_PASSWORD],
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
