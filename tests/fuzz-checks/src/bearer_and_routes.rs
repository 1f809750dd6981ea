//! `parse_authorization`, the route map (`authorizer::RouteMap`: parsing
//! and routing a request to its entry), and the IAM evaluation of the
//! answers (`policy::allows`) with fuzzed ARNs.
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
//! - a parsed route map has known methods, resources that start with `/`
//!   without blanks or queries, non-empty scopes, and survives being written
//!   out and parsed again; errors name `AUTH_ROUTE_SCOPES`;
//! - `stage_arn` of `{stage}/anything` is the stage, and is a prefix of the ARN;
//! - the entry a request is routed to (`for_path`) is the one an independent
//!   matcher picks (most specific template, then the method, then ANY), and
//!   the same as `for_resource` of that template; the answer for that
//!   resource (`resource_arn`) covers the request; a one-statement answer
//!   allows the ARN exactly when it is an Allow, and `allows` agrees with an
//!   independent glob.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::{ISS, NOW, reference_glob};
use authorizer::policy::{allows, method_and_path, resource_arn, single, stage_arn};
use authorizer::routes::Segment;
use authorizer::{Route, RouteMap};
use token_core::{Credentials, VerifiedToken, Verifier, parse_authorization};

const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";

static VERIFIER: LazyLock<Arc<Verifier>> = LazyLock::new(|| crate::verifier(true));

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

fn check_routes(spec: &str) -> RouteMap {
    let map = match RouteMap::parse(spec) {
        Ok(m) => m,
        Err(e) => {
            assert_eq!(e.var, "AUTH_ROUTE_SCOPES");
            return RouteMap::default();
        }
    };
    let entries = spec.split(',').filter(|e| !e.trim().is_empty()).count();
    assert_eq!(map.routes().len(), entries, "entries lost");
    for r in map.routes() {
        assert!(
            ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"].contains(&r.method.as_str()),
            "{r:?}"
        );
        assert!(r.resource.starts_with('/') && !r.resource.contains(char::is_whitespace), "{r:?}");
        assert!(!r.resource.contains(['?', '#', ',', '=']), "{r:?}");
        assert!(!r.scopes.is_empty() && r.scopes.iter().all(|s| !s.is_empty() && !s.contains(char::is_whitespace)));
    }
    let written: Vec<String> =
        map.routes().iter().map(|r| format!("{} {}={}", r.method, r.resource, r.scopes.join(" "))).collect();
    assert_eq!(RouteMap::parse(&written.join(",")).as_ref(), Ok(&map), "not stable when written out");
    map
}

fn verified(scope: &str) -> Option<Arc<VerifiedToken>> {
    let k = crate::keys();
    let claims = serde_json::json!({
        "iss": ISS, "sub": "user-1", "aud": "api", "exp": NOW + 900, "iat": NOW, "jti": "j", "scope": scope
    });
    let token = k.ed.sign_any(&claims).ok()?;
    VERIFIER.verify_at(&token, Duration::from_secs(NOW)).ok()
}

/// Independent routing: does the template match the path's segments?
fn matches(t: &[Segment], parts: &[&str]) -> bool {
    match (t.first(), parts.first()) {
        (None, None) => true,
        (Some(Segment::Literal(l)), Some(p)) => l == p && matches(&t[1..], &parts[1..]),
        (Some(Segment::Param), Some(p)) => !p.is_empty() && matches(&t[1..], &parts[1..]),
        (Some(Segment::Proxy), Some(_)) => parts.iter().all(|p| !p.is_empty()),
        _ => false,
    }
}

/// Independent routing: the most specific matching template (ranks as a
/// string), then the method's entry, else ANY's.
fn expected_route<'a>(map: &'a RouteMap, method: &str, path: &str) -> Option<&'a Route> {
    let rest = &path[1..];
    let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    let key = |r: &Route| -> String {
        r.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 'a',
                Segment::Param => 'b',
                Segment::Proxy => 'c',
            })
            .collect()
    };
    let best = map.routes().iter().filter(|r| matches(&r.segments, &parts)).min_by_key(|r| key(r))?;
    let same: Vec<&Route> = map.routes().iter().filter(|r| r.segments == best.segments).collect();
    same.iter().find(|r| r.method == method).or_else(|| same.iter().find(|r| r.method == "*")).copied()
}

fn check_decision(map: &RouteMap, scope: &str, required: &[String], arn: &str, allow_unmapped: bool) {
    let Some(stage) = stage_arn(arn) else { return };
    assert!(arn.starts_with(stage) && arn[stage.len()..].starts_with('/'), "{stage} of {arn}");
    let Some(token) = verified(scope) else { return };
    let Some((method, path)) = method_and_path(stage, arn) else { return };
    let route = map.for_path(method, path);
    assert_eq!(route, expected_route(map, method, path), "{method} {path}");
    if let Some(r) = route {
        assert_eq!(map.for_resource(method, &r.resource), Some(r), "by template");
        let resource = resource_arn(stage, method, &r.resource);
        assert!(reference_glob(&resource, arn), "{resource} does not cover {arn}");
    }
    let have: HashSet<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let has = |list: &[String]| list.iter().all(|s| have.contains(s.as_str()));
    let allowed = has(required)
        && (map.is_empty() || route.map_or(allow_unmapped, |r| has(&r.scopes)))
        && token.has_scopes(required.iter().map(String::as_str));
    let answer = single(allowed, arn.to_owned());
    assert_eq!(allows(&answer, arn), allowed, "single() for {arn}");
}

/// The target: one input, checked against the invariants above (a panic is a finding).
pub fn run(data: &[u8]) {
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
    check_decision(&routes, scope, &required, &arn, flags.contains('u'));
}
