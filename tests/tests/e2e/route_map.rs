//! Issue 11's example through the real authorizer bootstrap and the Runtime
//! API: a route map that leaves `GET /users/{id}/payment-methods` out, and a
//! token with `pets:read profile:read`.

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, RuntimeApi};
use serde_json::{Value, json};
use token_core::{Algorithm, SigningKey};

const ISS: &str = "https://issuer.test";
const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";
const MAP: &str = "GET /pets=pets:read,POST /pets=pets:write,GET /pets/{id}=pets:read,DELETE /pets/{id}=admin,GET /users/{id}=profile:read";

/// IAM ARN matching: `*` any run of characters (`/` included), `?` one.
fn glob(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, _) => t.is_empty(),
        (Some(b'*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
        (Some(&c), Some(&d)) => (c == b'?' || c == d) && glob(&p[1..], &t[1..]),
        (Some(_), None) => false,
    }
}

/// IAM evaluation of a returned policy for `arn`, as API Gateway applies a
/// cached one: an explicit Deny wins, then an Allow, else denied.
fn allows(answer: &Value, arn: &str) -> bool {
    let statements = answer["policyDocument"]["Statement"].as_array().expect("a policy");
    let matching = |effect: &str| {
        statements.iter().filter(|s| s["Effect"] == effect).any(|s| {
            s["Resource"].as_array().unwrap().iter().any(|r| glob(r.as_str().unwrap().as_bytes(), arn.as_bytes()))
        })
    };
    !matching("Deny") && matching("Allow")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_route_deeper_than_a_mapped_one_is_denied() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let jwks = JwksServer::start(&[&k]).await;
    let rt = RuntimeApi::start().await;
    let _p = rt.start_authorizer(ISS, &jwks.url(), &[("AUTH_ROUTE_SCOPES", MAP), ("AUTH_UNMAPPED_ROUTES", "deny")]);
    let bearer = format!("Bearer {}", sign(&k, &claims(ISS, "api", "user-1", "pets:read profile:read", 900)));
    let rest = |method: &str, resource: &str, path: &str| {
        json!({
            "type": "REQUEST", "methodArn": format!("{STAGE}/{method}{path}"), "resource": resource,
            "path": path, "httpMethod": method, "headers": {"Authorization": bearer},
            "requestContext": {"resourcePath": resource, "httpMethod": method},
        })
    };
    let invoke = |event: Value| {
        let rt = &rt;
        async move { rt.invoke(serde_json::to_vec(&event).unwrap()).await.json() }
    };
    let deep = format!("{STAGE}/GET/users/42/payment-methods");

    // Asked directly: denied, on REQUEST and TOKEN events.
    let v = invoke(rest("GET", "/users/{id}/payment-methods", "/users/42/payment-methods")).await;
    assert!(!allows(&v, &deep), "REQUEST: {v}");
    let v = invoke(json!({"type": "TOKEN", "authorizationToken": bearer, "methodArn": deep})).await;
    assert!(!allows(&v, &deep), "TOKEN: {v}");

    // The mapped route itself: allowed (the positive control), with iss.
    let v = invoke(rest("GET", "/users/{id}", "/users/42")).await;
    assert!(allows(&v, &format!("{STAGE}/GET/users/42")), "{v}");
    assert_eq!(v["context"]["iss"], ISS);
    let v =
        invoke(json!({"type": "TOKEN", "authorizationToken": bearer, "methodArn": format!("{STAGE}/GET/users/42")}))
            .await;
    assert!(allows(&v, &format!("{STAGE}/GET/users/42")), "{v}");

    // The policy returned for GET /pets, whatever cache reuses it, does not
    // cover the deep route (nor any other route).
    let v = invoke(rest("GET", "/pets", "/pets")).await;
    assert!(allows(&v, &format!("{STAGE}/GET/pets")), "{v}");
    for other in [deep.as_str(), &format!("{STAGE}/GET/users/42"), &format!("{STAGE}/DELETE/pets/1")] {
        assert!(!allows(&v, other), "the GET /pets policy covers {other}: {v}");
    }
    // A scope the token lacks: denied.
    let v = invoke(rest("DELETE", "/pets/{id}", "/pets/1")).await;
    assert!(!allows(&v, &format!("{STAGE}/DELETE/pets/1")), "{v}");
}
