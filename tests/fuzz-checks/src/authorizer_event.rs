//! Arbitrary bytes deserialized as an `AuthorizerEvent` and run through
//! `Authorizer::handle` on a current-thread runtime made once, with the
//! fixed keys installed. Two authorizers: a route map with simple HTTP API
//! answers, and IAM answers with required scopes and unmapped routes allowed.
//! The seeds are the real API Gateway events of `authorizer/tests/fixtures`
//! with valid tokens in them.
//!
//! Invariants:
//! - reading an event never fails on valid JSON (any JSON value);
//! - the answer is a policy or a simple answer, or `Unauthorized`; never
//!   `KeysUnavailable` (keys are installed and fresh);
//! - an answer only for an event of a known kind with an execute-api ARN and
//!   one bearer token that the verifier accepts; its context and principal
//!   are that token's;
//! - a simple answer only for HTTP API 2.0 events under the simple setting;
//!   every policy statement is on the event's stage;
//! - the answer is the same when repeated.

use std::sync::LazyLock;

use authorizer::{Answer, Authorizer, AuthorizerConfig, AuthorizerError, AuthorizerEvent, EventKind, policy};
use token_core::{Credentials, Settings, parse_authorization, unix_now};

struct Fixture {
    rt: tokio::runtime::Runtime,
    mapped: Authorizer,
    iam: Authorizer,
}

fn authorizer(extra: &[(&str, &str)]) -> Authorizer {
    let mut pairs = vec![
        ("AUTH_ISSUER", crate::ISS),
        ("AUTH_AUDIENCE", "api,web"),
        ("AUTH_JWKS_URL", crate::JWKS_URL),
        ("AUTH_JWKS_COOLDOWN_SECS", "3600"),
    ];
    pairs.extend_from_slice(extra);
    let cfg = match AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let verifier = match token_core::Verifier::new(&cfg.verifier) {
        Ok(v) => v,
        Err(e) => panic!("verifier: {e}"),
    };
    let k = crate::keys();
    let jwks = crate::jwks_of(&[&k.rs, &k.es, &k.ed]);
    assert!(verifier.install_jwks(crate::ISS, &jwks).is_ok());
    Authorizer::new(verifier, &cfg)
}

static FX: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    rt: crate::runtime(),
    mapped: authorizer(&[(
        "AUTH_ROUTE_SCOPES",
        "GET /pets=read,POST /pets=write,DELETE /pets/{id}=write admin,ANY /admin/{proxy+}=admin",
    )]),
    iam: authorizer(&[
        ("AUTH_HTTP_API_RESPONSE", "iam"),
        ("AUTH_REQUIRED_SCOPES", "read"),
        ("AUTH_ROUTE_SCOPES", "GET /pets=read,DELETE /pets/{id}=admin"),
        ("AUTH_UNMAPPED_ROUTES", "allow"),
    ]),
});

fn check(a: &Authorizer, event: &AuthorizerEvent, simple_setting: bool) {
    let result = FX.rt.block_on(a.handle(event));
    let again = FX.rt.block_on(a.handle(event));
    assert_eq!(result, again, "the answer changed when repeated");
    let answer = match result {
        Ok(answer) => answer,
        Err(AuthorizerError::Unauthorized(reason)) => {
            assert!(!reason.is_empty());
            return;
        }
        Err(AuthorizerError::KeysUnavailable) => panic!("KeysUnavailable with keys installed"),
    };
    let kind = event.event_kind().expect("an answer for an event of no known kind");
    let arn = event.resource_arn().expect("an answer without an ARN");
    let stage = policy::stage_arn(arn).expect("an answer for a bad ARN");
    let header = event.authorization().expect("an answer with several Authorization values");
    let Credentials::Bearer(token) = parse_authorization(header) else {
        panic!("an answer without a bearer token: {header:?}")
    };
    let verified = a.verifier().verify_at(token, unix_now()).expect("an answer for a token the verifier refuses");
    match &answer {
        Answer::Simple(s) => {
            assert!(simple_setting && kind == EventKind::HttpApiV2, "a simple answer for {kind:?}");
            assert_eq!(s.context.sub, verified.sub());
            assert_eq!(s.context.scope, verified.scope());
            assert_eq!(s.context.exp, verified.exp());
        }
        Answer::Policy(p) => {
            assert!(!(simple_setting && kind == EventKind::HttpApiV2), "a policy for a simple HTTP API");
            assert_eq!(p.principal_id.as_deref(), Some(verified.sub()));
            assert_eq!(p.context.sub, verified.sub());
            assert_eq!(p.context.jti, verified.jti());
            assert!(!p.policy_document.statement.is_empty());
            for s in &p.policy_document.statement {
                for r in &s.resource {
                    assert!(r.starts_with(stage) && r[stage.len()..].starts_with('/'), "{r} is off stage {stage}");
                }
            }
        }
    }
}

/// The target: one input, checked against the invariants above (a panic is a finding).
pub fn run(data: &[u8]) {
    let event = serde_json::from_slice::<AuthorizerEvent>(data);
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        assert!(event.is_ok(), "a JSON value that is not an event: {:?}", event.err());
    }
    let Ok(event) = event else { return };
    check(&FX.mapped, &event, true);
    check(&FX.iam, &event, false);
}
