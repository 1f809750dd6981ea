//! The compiled authorizer bootstrap driven through the Lambda Runtime API on
//! loopback, as Lambda drives it, with a local JWKS server.

use std::time::Duration;

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, Mode, Outcome, Proc, RuntimeApi, wait_for};
use serde_json::{Value, json};
use token_core::{Algorithm, SigningKey};

const ISS: &str = "https://issuer.test";
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets";

fn start(rt: &RuntimeApi, jwks: &JwksServer, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("AWS_LAMBDA_LOG_FORMAT", "JSON")];
    env.extend_from_slice(extra);
    rt.start_authorizer(ISS, &jwks.url(), &env)
}

fn token_event(token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": ARN}))
        .unwrap()
}

fn assert_unauthorized(o: &Outcome) {
    match o {
        Outcome::Error(_) => {
            let v = o.json();
            assert_eq!(v["errorMessage"], "Unauthorized", "{v}");
            assert_eq!(v["errorType"], "Unauthorized", "{v}");
        }
        Outcome::Response(b) => panic!("expected Unauthorized, got {}", String::from_utf8_lossy(b)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_answers_a_run_of_events() {
    let k = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let p = start(
        &rt,
        &jwks,
        &[("AUTH_ROUTE_SCOPES", "GET /pets=pets:read,POST /pets=pets:write"), ("AUTH_METRICS_INTERVAL_SECS", "1")],
    );

    let reader = sign(&k, &claims(ISS, "api", "user-1", "pets:read", 900));
    let v = rt.invoke(token_event(&reader)).await.json();
    assert_eq!(jwks.fetches(), 1, "JWKS fetched once");
    assert!(jwks.fetch_log()[0].at < rt.first_poll().unwrap(), "JWKS fetched during init, before the first event");
    assert_eq!(v["principalId"], "user-1");
    assert_eq!(v["context"]["sub"], "user-1");
    let statements = v["policyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(
        statements[0]["Resource"],
        json!(["arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets"])
    );
    assert_eq!(statements.len(), 1, "an answer covers exactly the method and route asked");

    // Invalid tokens: exactly "Unauthorized", the sandbox keeps serving.
    let expired = sign(&k, &claims(ISS, "api", "user-1", "", -3600));
    let stranger = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let forged = sign(&stranger, &claims(ISS, "api", "admin", "pets:write", 900));
    for bad in [expired.as_str(), forged.as_str(), "garbage", ""] {
        assert_unauthorized(&rt.invoke(token_event(bad)).await);
    }
    for weird in [&b"[1,2,3]"[..], b"{}", b"{\"type\":\"TOKEN\",\"authorizationToken\":5}", b"null"] {
        assert_unauthorized(&rt.invoke(weird.to_vec()).await);
    }

    // REQUEST and HTTP API events.
    let req = json!({"type": "REQUEST", "methodArn": ARN.replace("GET", "POST"), "headers": {"authorization": format!("Bearer {reader}")}});
    let v = rt.invoke(serde_json::to_vec(&req).unwrap()).await.json();
    assert_eq!(v["principalId"], "user-1");
    let http = json!({"version": "2.0", "type": "REQUEST", "routeArn": "arn:aws:execute-api:us-east-1:123456789012:h7ttp9api0/$default/GET/pets",
        "identitySource": [format!("Bearer {reader}")], "headers": {"authorization": format!("Bearer {reader}")}});
    let v = rt.invoke(serde_json::to_vec(&http).unwrap()).await.json();
    assert_eq!(v["isAuthorized"], true);

    // Denials and refusals log one INFO line each with the reason (allowed
    // requests only at DEBUG: API Gateway's access log has them, and their
    // counts go out as metrics), never the token. The lines reach us
    // through a pipe, in order: one more refused event for a route of its
    // own marks the end; once its line is in, every line before it is too.
    let decisions_in = |logs: &[String]| -> Vec<Value> {
        logs.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "authorization")
            .collect()
    };
    let marker_arn = ARN.replace("/GET/pets", "/GET/end-marker");
    let marker = json!({"type": "TOKEN", "authorizationToken": "Bearer garbage", "methodArn": marker_arn});
    assert_unauthorized(&rt.invoke(serde_json::to_vec(&marker).unwrap()).await);
    let marked = |logs: &[String]| decisions_in(logs).iter().any(|d| d.to_string().contains("end-marker"));
    wait_for("the marker event's decision line", Duration::from_secs(10), || marked(&p.logs())).await;
    let logs = p.logs();
    let decisions = decisions_in(&logs);
    let outcomes: Vec<&str> = decisions.iter().map(|d| d["fields"]["decision"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "unauthorized").count(), 9, "{decisions:#?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "deny").count(), 1, "the POST without pets:write: {decisions:#?}");
    assert!(!outcomes.contains(&"allow"), "allowed requests log no INFO line: {decisions:#?}");
    assert!(decisions.iter().any(|d| d["fields"]["reason"] == "expired"), "{decisions:#?}");

    // Every decision is counted in the metric lines (EMF, one per sandbox
    // per AUTH_METRICS_INTERVAL_SECS, written by an invocation once due):
    // keep sending refused events until the counts cover the 2 allowed and
    // the 1 denied request.
    let emf_totals = |logs: &[String]| -> (u64, u64, u64) {
        logs.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Auth/Authorizer")
            .fold((0, 0, 0), |(a, d, u), v| {
                let n = |k: &str| v[k].as_u64().unwrap_or(0);
                (a + n("Allow"), d + n("Deny"), u + n("Unauthorized"))
            })
    };
    e2e_tests::eventually("the decision counts in the EMF metric lines", Duration::from_secs(20), || {
        let (rt, p, marker) = (&rt, &p, &marker);
        async move {
            assert_unauthorized(&rt.invoke(serde_json::to_vec(marker).unwrap()).await);
            let (allow, deny, unauthorized) = emf_totals(&p.logs());
            allow == 2 && deny == 1 && unauthorized >= 10
        }
    })
    .await;
    let all = logs.join("\n");
    for t in [&reader, &expired, &forged] {
        assert!(!all.contains(t.rsplit('.').next().unwrap()), "a token reached the logs");
    }
    assert!(rt.init_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_key_is_fetched_once_and_unknown_kids_wait_for_the_cooldown() {
    let k = SigningKey::generate(Algorithm::ES256, "old").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let _p = start(&rt, &jwks, &[("AUTH_JWKS_TIMEOUT_MS", "500")]);
    let t = sign(&k, &claims(ISS, "api", "u", "", 900));
    assert!(matches!(rt.invoke(token_event(&t)).await, Outcome::Response(_)));
    let next = SigningKey::generate(Algorithm::ES256, "new").unwrap();
    jwks.set_keys(&[&k, &next]);
    assert!(matches!(
        rt.invoke(token_event(&sign(&next, &claims(ISS, "api", "u", "", 900)))).await,
        Outcome::Response(_)
    ));
    assert_eq!(jwks.fetches(), 2, "one fetch for the new key (the control: unknown kids do fetch)");
    // Unknown kids within the cooldown (30 s by default): no more fetches.
    for i in 0..5 {
        let stranger = SigningKey::generate(Algorithm::ES256, format!("x{i}")).unwrap();
        assert_unauthorized(&rt.invoke(token_event(&sign(&stranger, &claims(ISS, "api", "u", "", 900)))).await);
    }
    assert_eq!(jwks.fetches(), 2);
}

/// The endpoint fails, and a fetch is made against it (an unknown kid
/// forces one: the fetch log shows it was made and how it was answered);
/// the keys fetched before keep serving. One bootstrap per kind of failure:
/// after a forced fetch the cooldown holds the next one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keys_serve_when_a_fetch_fails() {
    let k = SigningKey::generate(Algorithm::ES256, "old").unwrap();
    for (i, mode) in [Mode::Status(500), Mode::Garbage, Mode::Hang].into_iter().enumerate() {
        let jwks = JwksServer::start(&[&k]).await;
        let rt = RuntimeApi::start().await;
        let _p = start(&rt, &jwks, &[("AUTH_JWKS_TIMEOUT_MS", "500")]);
        let first = rt.invoke(token_event(&sign(&k, &claims(ISS, "api", "u", "", 900)))).await;
        assert!(matches!(first, Outcome::Response(_)), "{mode:?}: {first:?}");
        assert_eq!(jwks.fetches(), 1, "{mode:?}: fetched at init");

        jwks.set_mode(mode);
        let stranger = SigningKey::generate(Algorithm::ES256, format!("x{i}")).unwrap();
        assert_unauthorized(&rt.invoke(token_event(&sign(&stranger, &claims(ISS, "api", "u", "", 900)))).await);
        let log = jwks.fetch_log();
        assert_eq!(log.len(), 2, "{mode:?}: the unknown kid forced one fetch");
        assert_eq!(log[1].mode, mode, "{mode:?}: and it failed");

        // The old key still verifies, a fresh token of it too.
        let fresh = sign(&k, &claims(ISS, "api", &format!("u{i}"), "", 900));
        let v = match rt.invoke(token_event(&fresh)).await {
            o @ Outcome::Response(_) => o.json(),
            Outcome::Error(b) => panic!("{mode:?}: stale keys refused: {}", String::from_utf8_lossy(&b)),
        };
        assert_eq!(v["principalId"], format!("u{i}"), "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_the_init_naming_the_variable() {
    let k = SigningKey::generate(Algorithm::ES256, "k").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let mut p = start(&rt, &jwks, &[("AUTH_ROUTE_SCOPES", "FETCH /pets=x")]);
    let status = tokio::task::spawn_blocking(move || (p.wait_timeout(Duration::from_secs(10)), p)).await.unwrap();
    let (status, p) = status;
    assert!(!status.expect("exited").success());
    assert!(p.logs().join("\n").contains("AUTH_ROUTE_SCOPES"), "{:?}", p.logs());
    assert_eq!(rt.polls(), 0, "never asked for an event");
}
