//! `parse_authorization`, `authorizer::config::parse_routes`, and the route
//! policy (`policy_for` and its evaluation `allows`) with fuzzed ARNs.
//!
//! Input, one field per line (seeds are easy to write):
//!
//! ```text
//! Bearer eyJ...            Authorization value
//! GET /pets=read,...       AUTH_ROUTE_SCOPES
//! read write               the token's scope
//! read                     required scopes
//! GET/pets/1               ARN: after the stage, or a whole ARN (arn:...)
//! u                        flags: u = unmapped routes allowed
//! ```
//!
//! Invariants:
//! - `Bearer(t)`: the scheme is `bearer` in any case, `t` ends the value and
//!   is a b64token; `Bearer t` parses back to `t`; `Missing` and `Malformed`
//!   as RFC 6750 says;
//! - a parsed route map has known methods, paths without blanks, queries or
//!   a leading slash, non-empty scopes, and survives being written out and
//!   parsed again; errors name `AUTH_ROUTE_SCOPES`;
//! - `stage_arn` of `{stage}/anything` is the stage, and is a prefix of the ARN;
//! - every resource of a policy is on its stage; `allows` agrees with an
//!   independent evaluation (Deny wins, then Allow, with a glob written
//!   separately) and is deterministic.
#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use auth_fuzz::{ISS, NOW, reference_glob};
use authorizer::Route;
use authorizer::config::parse_routes;
use authorizer::policy::{allows, policy_for, stage_arn};
use aws_lambda_events::event::iam::IamPolicyEffect;
use libfuzzer_sys::fuzz_target;
use token_core::{Credentials, VerifiedToken, Verifier, parse_authorization};

const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";

static VERIFIER: LazyLock<Arc<Verifier>> = LazyLock::new(|| auth_fuzz::verifier(true));

fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

fn check_bearer(value: &str) {
    let parsed = parse_authorization(Some(value));
    let trimmed = value.trim_matches(' ');
    let first_word = trimmed.split(' ').next().unwrap_or("");
    let scheme_is_bearer = first_word.eq_ignore_ascii_case("bearer");
    match parsed {
        Credentials::Bearer(t) => {
            assert!(scheme_is_bearer, "Bearer from scheme {first_word:?}");
            assert!(is_b64token(t), "not a b64token: {t:?}");
            assert!(trimmed.ends_with(t));
            let before = &trimmed[..trimmed.len() - t.len()];
            assert!(before.trim_end_matches(' ').eq_ignore_ascii_case("bearer"), "{before:?}");
            assert_eq!(parse_authorization(Some(&format!("Bearer {t}"))), Credentials::Bearer(t));
        }
        Credentials::Missing => assert!(trimmed.is_empty() || !scheme_is_bearer, "Missing for {value:?}"),
        Credentials::Malformed => {
            assert!(scheme_is_bearer, "Malformed for another scheme: {value:?}");
            let rest = trimmed[first_word.len()..].trim_start_matches(' ');
            assert!(!is_b64token(rest), "a b64token refused: {rest:?}");
        }
    }
}

fn check_routes(spec: &str) -> Vec<Route> {
    let routes = match parse_routes(spec) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.var, "AUTH_ROUTE_SCOPES");
            return Vec::new();
        }
    };
    let entries = spec.split(',').filter(|e| !e.trim().is_empty()).count();
    assert_eq!(routes.len(), entries, "entries lost");
    for r in &routes {
        assert!(
            ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"].contains(&r.method.as_str()),
            "{r:?}"
        );
        assert!(!r.path.starts_with('/') && !r.path.contains(char::is_whitespace), "{r:?}");
        assert!(!r.path.contains(['?', '#', ',', '=']), "{r:?}");
        assert!(!r.scopes.is_empty() && r.scopes.iter().all(|s| !s.is_empty() && !s.contains(char::is_whitespace)));
    }
    let written: Vec<String> =
        routes.iter().map(|r| format!("{} /{}={}", r.method, r.path, r.scopes.join(" "))).collect();
    assert_eq!(parse_routes(&written.join(",")).as_ref(), Ok(&routes), "not stable when written out");
    routes
}

fn verified(scope: &str) -> Option<Arc<VerifiedToken>> {
    let k = auth_fuzz::keys();
    let claims = serde_json::json!({
        "iss": ISS, "sub": "user-1", "aud": "api", "exp": NOW + 900, "iat": NOW, "jti": "j", "scope": scope
    });
    let token = k.ed.sign_any(&claims).ok()?;
    VERIFIER.verify_at(&token, Duration::from_secs(NOW)).ok()
}

fn check_policy(routes: &[Route], scope: &str, required: &[String], arn: &str, allow_unmapped: bool) {
    let Some(stage) = stage_arn(arn) else { return };
    assert!(arn.starts_with(stage) && arn[stage.len()..].starts_with('/'), "{stage} of {arn}");
    let Some(token) = verified(scope) else { return };
    let policy = policy_for(stage, &token, routes, allow_unmapped, required);
    for s in &policy.statement {
        for r in &s.resource {
            assert!(r.starts_with(stage) && r[stage.len()..].starts_with('/'), "{r} off {stage}");
        }
    }
    let allowed = allows(&policy, arn);
    assert_eq!(allowed, allows(&policy, arn), "not deterministic");

    // The same decision, computed independently from the rules.
    let have: HashSet<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let has = |list: &[String]| list.iter().all(|s| have.contains(s.as_str()));
    let everything = format!("{stage}/*/*");
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    if !has(required) {
        deny.push(everything.clone());
    } else if routes.is_empty() {
        allow.push(everything.clone());
    } else {
        for r in routes {
            let pattern = format!("{stage}/{}/{}", r.method, r.path);
            if has(&r.scopes) { allow.push(pattern) } else { deny.push(pattern) }
        }
        if allow_unmapped {
            allow.push(everything.clone());
        }
        if allow.is_empty() && deny.is_empty() {
            deny.push(everything);
        }
    }
    let matches = |patterns: &[String]| patterns.iter().any(|p| reference_glob(p, arn));
    let expected = !matches(&deny) && matches(&allow);
    assert_eq!(allowed, expected, "allows() for {arn} with allow {allow:?} deny {deny:?}");
    // And the policy says the same as the model, statement by statement.
    let listed = |effect: IamPolicyEffect| -> Vec<String> {
        policy.statement.iter().filter(|s| s.effect == effect).flat_map(|s| s.resource.clone()).collect()
    };
    assert_eq!(listed(IamPolicyEffect::Allow), allow);
    assert_eq!(listed(IamPolicyEffect::Deny), deny);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (auth, spec, scope, required, arn, flags) = (next(), next(), next(), next(), next(), next());
    check_bearer(auth);
    let routes = check_routes(spec);
    let required: Vec<String> = required.split_whitespace().map(str::to_owned).collect();
    let arn = if arn.starts_with("arn:") { arn.to_owned() } else { format!("{STAGE}/{arn}") };
    if arn.starts_with(&format!("{STAGE}/")) {
        assert_eq!(stage_arn(&arn), Some(STAGE), "{arn}");
    }
    check_policy(&routes, scope, &required, &arn, flags.contains('u'));
});
