//! Property tests of the authorizer: the route-scope map (`parse_routes`),
//! the policy for every route (a route is allowed exactly when the token has
//! its scopes, and a cached policy is right for every route), required
//! scopes, and reading any JSON value as an event. Keys are installed
//! directly: no network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use authorizer::{Answer, Authorizer, AuthorizerConfig, AuthorizerError, AuthorizerEvent, RouteMap, policy};
use proptest::prelude::*;
use serde_json::{Value, json};
use token_core::{Algorithm, PublicJwks, Settings, SigningKey, Verifier};

const ISS: &str = "https://issuer.test";
const STAGE: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod";

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate(Algorithm::EdDSA, "k1").unwrap());
static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

fn authorizer(extra: &[(&str, &str)]) -> Authorizer {
    let mut pairs = extra.to_vec();
    pairs.extend_from_slice(&[
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ("AUTH_HTTP_API_RESPONSE", "iam"),
    ]);
    let cfg = AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
    let verifier = Verifier::new(&cfg.verifier).unwrap();
    let jwks = serde_json::to_vec(&PublicJwks { keys: vec![KEY.public_jwk().clone()] }).unwrap();
    verifier.install_jwks(ISS, &jwks).unwrap();
    Authorizer::new(verifier, &cfg)
}

fn token(scope: &str) -> String {
    let now = token_core::unix_now().as_secs();
    KEY.sign_any(&json!({
        "iss": ISS, "sub": "user-1", "aud": "api", "exp": now + 900, "iat": now, "jti": "j", "scope": scope
    }))
    .unwrap()
}

fn request(method: &str, path: &str, token: &str) -> AuthorizerEvent {
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": format!("{STAGE}/{method}/{path}"),
        "headers": {"Authorization": format!("Bearer {token}")},
    }))
    .unwrap()
}

fn policy_of(a: &Authorizer, e: &AuthorizerEvent) -> aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy {
    match RT.block_on(a.handle(e)) {
        Ok(Answer::Policy(p)) => p.policy_document,
        other => panic!("{other:?}"),
    }
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// IAM ARN matching as a specification: `*` any run of characters, `?`
/// exactly one, everything else itself (dynamic programming).
fn reference_glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let mut m = vec![false; t.len() + 1];
    m[0] = true;
    for &pc in p {
        let mut next = vec![false; t.len() + 1];
        let mut any = false;
        for j in 0..=t.len() {
            next[j] = if pc == b'*' {
                any |= m[j];
                any
            } else {
                j > 0 && m[j - 1] && (pc == b'?' || pc == t[j - 1])
            };
        }
        m = next;
    }
    m[t.len()]
}

fn one_statement(allow: bool, resource: &str) -> aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy {
    use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".into()];
    s.effect = if allow { IamPolicyEffect::Allow } else { IamPolicyEffect::Deny };
    s.resource = vec![resource.to_owned()];
    let mut policy = aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy::default();
    policy.statement = vec![s];
    policy
}

/// A JSON value of any shape.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("TOKEN"),
            Just("REQUEST"),
            Just("2.0"),
            Just("Bearer x.y.z"),
            Just("arn:aws:execute-api:r:1:a/s/GET/x")
        ]
        .prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("version".to_owned()),
            Just("authorizationToken".to_owned()),
            Just("methodArn".to_owned()),
            Just("routeArn".to_owned()),
            Just("headers".to_owned()),
            Just("multiValueHeaders".to_owned()),
            Just("identitySource".to_owned()),
            Just("Authorization".to_owned()),
            "[a-z]{1,4}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any string at all: parsing never panics, and an error names the variable.
    #[test]
    fn route_map_errors_name_the_variable(spec in ".{0,60}") {
        if let Err(e) = RouteMap::parse(&spec) {
            prop_assert_eq!(e.var, "AUTH_ROUTE_SCOPES");
        }
    }

    /// A token without every required scope is denied everywhere; with them,
    /// and no route map, allowed everywhere on the stage.
    #[test]
    fn required_scopes_gate_everything(
        required in proptest::collection::vec("[a-c]", 1..3),
        have in proptest::collection::vec("[a-c]", 0..4),
        method in proptest::sample::select(METHODS.to_vec()),
        path in "[a-z/]{0,10}",
    ) {
        let req = required.join(",");
        let a = authorizer(&[("AUTH_REQUIRED_SCOPES", req.as_str())]);
        let pol = policy_of(&a, &request(method, &path, &token(&have.join(" "))));
        let ok = required.iter().all(|r| have.contains(r));
        for arn in [format!("{STAGE}/{method}/{path}"), format!("{STAGE}/DELETE/x/y"), format!("{STAGE}/GET/")] {
            prop_assert_eq!(policy::allows(&pol, &arn), ok, "{}", arn);
        }
    }

    /// `allows` matches resources as IAM does, `*` and `?` included, also
    /// where the ARN itself holds `*` or `?` (a client chooses the path).
    #[test]
    fn allow_resources_match_like_iam(pattern in "[a/*?]{0,10}", text in "[a/*?]{0,12}") {
        prop_assert_eq!(policy::allows(&one_statement(true, &pattern), &text), reference_glob(&pattern, &text));
        prop_assert!(!policy::allows(&one_statement(false, &pattern), &text));
    }

    /// Every JSON value reads as an event, and the handler answers it
    /// (`Unauthorized` for anything that is not an event with a token);
    /// the answer does not change when asked again.
    #[test]
    fn any_json_value_is_an_event(v in json_value()) {
        static A: LazyLock<Authorizer> = LazyLock::new(|| authorizer(&[]));
        let text = v.to_string();
        let e: AuthorizerEvent = serde_json::from_str(&text).unwrap();
        let first = RT.block_on(A.handle(&e));
        prop_assert!(matches!(first, Err(AuthorizerError::Unauthorized(_))), "{text}: {first:?}");
        prop_assert_eq!(first, RT.block_on(A.handle(&e)));
    }
}

/// Found by the `bearer_and_routes` fuzz target (`policy::glob`): with a
/// literal `*` in the request path, the Deny for `DELETE /pets/{id}` was
/// missed and the HTTP API simple answer let a token without `admin`
/// delete, through the Allow for unmapped routes.
#[test]
fn a_literal_star_in_the_path_does_not_escape_a_deny() {
    let a = authorizer(&[
        ("AUTH_HTTP_API_RESPONSE", "simple"),
        ("AUTH_ROUTE_SCOPES", "GET /pets/{id}=read,DELETE /pets/{id}=admin"),
        ("AUTH_UNMAPPED_ROUTES", "allow"),
    ]);
    let t = token("read");
    let ask = |method: &str, path: &str| {
        let e: AuthorizerEvent = serde_json::from_value(json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": format!("{STAGE}/{method}/{path}"),
            "identitySource": [format!("Bearer {t}")],
        }))
        .unwrap();
        match RT.block_on(a.handle(&e)) {
            Ok(Answer::Simple(s)) => s.is_authorized,
            other => panic!("{other:?}"),
        }
    };
    assert!(!ask("DELETE", "pets/*a"));
    assert!(!ask("DELETE", "pets/*"));
    assert!(!ask("DELETE", "pets/1"));
    assert!(ask("GET", "pets/*a"));
}

// --- exact decisions: the route map's answer on every request -------------

/// A segment of a route template in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param,
    Proxy,
}

/// One method at one template of the API (`in_api`), and its entry in the
/// route map (`scopes`, `None`: not in the map).
#[derive(Debug, Clone)]
struct ModelRoute {
    method: &'static str,
    template: usize,
    in_api: bool,
    scopes: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct Model {
    templates: Vec<Vec<Seg>>,
    routes: Vec<ModelRoute>,
    allow_unmapped: bool,
    have: Vec<&'static str>,
}

/// Writes a template with the given parameter names (the map and the API
/// name parameters differently: names do not matter).
fn written(t: &[Seg], param: &str) -> String {
    if t.is_empty() {
        return "/".into();
    }
    t.iter()
        .map(|s| match s {
            Seg::Lit(l) => format!("/{l}"),
            Seg::Param => format!("/{{{param}}}"),
            Seg::Proxy => format!("/{{{param}+}}"),
        })
        .collect()
}

/// Does the template match these path segments? (Recursive, independent of
/// the authorizer's iterator walk.)
fn model_matches(t: &[Seg], parts: &[&str]) -> bool {
    match (t.first(), parts.first()) {
        (None, None) => true,
        (Some(Seg::Lit(l)), Some(p)) => l == p && model_matches(&t[1..], &parts[1..]),
        (Some(Seg::Param), Some(p)) => !p.is_empty() && model_matches(&t[1..], &parts[1..]),
        (Some(Seg::Proxy), Some(_)) => parts.iter().all(|p| !p.is_empty()),
        _ => false,
    }
}

fn segments_of(path: &str) -> Vec<&str> {
    let rest = &path[1..];
    if rest.is_empty() { Vec::new() } else { rest.split('/').collect() }
}

impl Model {
    /// API Gateway's routing over the given templates: of those that match,
    /// the most specific (ranks compared as strings, literal `a` < param `b`
    /// < proxy `c`).
    fn route(&self, candidates: &[usize], path: &str) -> Option<usize> {
        let parts = segments_of(path);
        let key = |t: &Vec<Seg>| -> String {
            t.iter()
                .map(|s| match s {
                    Seg::Lit(_) => 'a',
                    Seg::Param => 'b',
                    Seg::Proxy => 'c',
                })
                .collect()
        };
        candidates
            .iter()
            .copied()
            .filter(|&i| model_matches(&self.templates[i], &parts))
            .min_by_key(|&i| key(&self.templates[i]))
    }

    fn api_templates(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.routes.iter().filter(|r| r.in_api).map(|r| r.template).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn map_templates(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.routes.iter().filter(|r| r.scopes.is_some()).map(|r| r.template).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The map's answer for `method` at template `t`: its entry for the
    /// method, else its ANY entry, else unmapped.
    fn answer_at(&self, method: &str, t: Option<usize>) -> bool {
        let entry = |m: &str| {
            self.routes.iter().find(|r| Some(r.template) == t && r.method == m).and_then(|r| r.scopes.as_ref())
        };
        match entry(method).or_else(|| entry("ANY")) {
            Some(scopes) => scopes.iter().all(|s| self.have.contains(s)),
            None => self.allow_unmapped,
        }
    }

    /// The API route a request reaches: its template and the API method
    /// (the method itself or ANY), or `None` (API Gateway answers without
    /// the authorizer).
    fn api_route(&self, method: &str, path: &str) -> Option<(usize, &'static str)> {
        let t = self.route(&self.api_templates(), path)?;
        let has = |m: &str| self.routes.iter().find(|r| r.in_api && r.template == t && r.method == m);
        has(method).or_else(|| has("ANY")).map(|r| (t, r.method))
    }

    fn spec(&self) -> String {
        self.routes
            .iter()
            .filter_map(|r| {
                let scopes = r.scopes.as_ref()?;
                Some(format!("{} {}={}", r.method, written(&self.templates[r.template], "id"), scopes.join(" ")))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

const LITERALS: [&str; 3] = ["a", "b", "users"];
const ROUTE_METHODS: [&str; 4] = ["GET", "POST", "DELETE", "ANY"];
const SCOPES: [&str; 3] = ["s1", "s2", "s3"];

fn model() -> impl Strategy<Value = Model> {
    let seg = prop_oneof![3 => proptest::sample::select(LITERALS.to_vec()).prop_map(Seg::Lit), 2 => Just(Seg::Param)];
    let template = (proptest::collection::vec(seg, 0..4), proptest::bool::weighted(0.25)).prop_map(|(mut t, proxy)| {
        if proxy {
            t.push(Seg::Proxy);
        }
        t
    });
    let scopes = proptest::option::weighted(0.75, proptest::sample::subsequence(SCOPES.to_vec(), 1..3));
    let route = (proptest::sample::select(ROUTE_METHODS.to_vec()), 0..6usize, proptest::bool::weighted(0.85), scopes);
    (
        proptest::collection::vec(template, 1..6),
        proptest::collection::vec(route, 1..12),
        any::<bool>(),
        proptest::sample::subsequence(SCOPES.to_vec(), 0..4),
    )
        .prop_map(|(all, routes, allow_unmapped, have)| {
            let mut templates: Vec<Vec<Seg>> = Vec::new();
            for t in all {
                if !templates.contains(&t) {
                    templates.push(t);
                }
            }
            let mut out: Vec<ModelRoute> = Vec::new();
            for (method, t, in_api, scopes) in routes {
                let template = t % templates.len();
                let same = |r: &ModelRoute| r.method == method && templates[r.template] == templates[template];
                if !out.iter().any(same) {
                    out.push(ModelRoute { method, template, in_api, scopes });
                }
            }
            Model { templates, routes: out, allow_unmapped, have }
        })
}

/// Concrete paths: a template instantiated (parameter values that may equal
/// literals), sometimes with more segments (deeper than the route), and
/// paths of no route at all.
fn requests() -> impl Strategy<Value = Vec<(&'static str, usize, Vec<&'static str>, usize)>> {
    let values = proptest::collection::vec(proptest::sample::select(vec!["a", "b", "users", "42", "x"]), 1..3);
    proptest::collection::vec(
        (
            proptest::sample::select(vec!["GET", "POST", "DELETE", "PUT"]),
            0..6usize,
            values,
            prop_oneof![4 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize), 1 => Just(3usize)],
        ),
        1..10,
    )
}

fn instantiate(t: &[Seg], values: &[&str], extra: usize) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for (i, s) in t.iter().enumerate() {
        match s {
            Seg::Lit(l) => parts.push(l),
            Seg::Param => parts.push(values[i % values.len()]),
            Seg::Proxy => parts.extend_from_slice(values),
        }
    }
    match extra {
        1 => parts.push("payment-methods"),
        2 => parts.extend_from_slice(&["x", "y"]),
        // A path of no route: an empty segment, or the values alone.
        3 if values.len() == 1 => parts.push(""),
        3 => parts = values.to_vec(),
        _ => {}
    }
    format!("/{}", parts.join("/"))
}

fn decision(answer: &Answer, arn: &str) -> bool {
    match answer {
        Answer::Policy(p) => policy::allows(&p.policy_document, arn),
        Answer::Simple(s) => s.is_authorized,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// For random route tables (literal, `{param}` and `{proxy+}` segments,
    /// ANY), random scopes and random requests (including paths no route
    /// matches and paths deeper than a route), the answer equals the route
    /// map's, computed by the model above:
    /// - REST REQUEST events (resource template given): the decision for the
    ///   request, and the policy returned for any other request with the same
    ///   cache key (token, method, resource) applied to this one under IAM
    ///   matching (`policy::allows`);
    /// - HTTP API 2.0 simple responses (cache key: token, routeKey, method);
    /// - TOKEN events (concrete path only) when the map's templates are the
    ///   API's, as the deploy check requires: the decision, and a policy that
    ///   covers no other request (TOKEN authorizers run with TTL 0).
    #[test]
    fn every_request_gets_the_route_maps_answer(m in model(), reqs in requests()) {
        let spec = m.spec();
        let mut extra = vec![("AUTH_HTTP_API_RESPONSE", "simple")];
        if !spec.is_empty() {
            extra.push(("AUTH_ROUTE_SCOPES", spec.as_str()));
        }
        if m.allow_unmapped {
            extra.push(("AUTH_UNMAPPED_ROUTES", "allow"));
        }
        let a = authorizer(&extra);
        let t = token(&m.have.join(" "));
        let bearer = format!("Bearer {t}");
        let covering = m.map_templates() == m.api_templates();
        let no_map = spec.is_empty();

        // (method, path, arn, answer, cache key, REQUEST answer)
        let mut asked = Vec::new();
        for (method, ti, values, extra) in reqs {
            let path = instantiate(&m.templates[ti % m.templates.len()], &values, extra);
            let arn = format!("{STAGE}/{method}{path}");
            let truth = |t: Option<usize>| no_map || m.answer_at(method, t);

            if covering || no_map {
                let e: AuthorizerEvent = serde_json::from_value(json!({
                    "type": "TOKEN", "authorizationToken": bearer, "methodArn": arn,
                }))
                .unwrap();
                let answer = RT.block_on(a.handle(&e)).unwrap();
                let expected = truth(m.route(&m.map_templates(), &path));
                prop_assert_eq!(decision(&answer, &arn), expected, "TOKEN {} {} map {}", method, path, spec);
                asked.push((arn.clone(), answer, None, expected));
            }

            let Some((t_api, api_method)) = m.api_route(method, &path) else { continue };
            let expected = truth(Some(t_api));
            let resource = written(&m.templates[t_api], "p");
            let e: AuthorizerEvent = serde_json::from_value(json!({
                "type": "REQUEST", "methodArn": arn, "resource": resource, "path": path, "httpMethod": method,
                "headers": {"Authorization": bearer},
            }))
            .unwrap();
            let answer = RT.block_on(a.handle(&e)).unwrap();
            prop_assert_eq!(decision(&answer, &arn), expected, "REQUEST {} {} ({}) map {}", method, path, resource, spec);
            asked.push((arn.clone(), answer, Some((method, t_api)), expected));

            let route_key = format!("{api_method} {resource}");
            let e: AuthorizerEvent = serde_json::from_value(json!({
                "version": "2.0", "type": "REQUEST", "routeArn": arn, "routeKey": route_key,
                "identitySource": [bearer], "headers": {"authorization": bearer},
            }))
            .unwrap();
            let answer = RT.block_on(a.handle(&e)).unwrap();
            prop_assert_eq!(decision(&answer, &arn), expected, "HTTP API {} {} ({}) map {}", method, path, route_key, spec);
        }

        // Cached answers: a REQUEST policy applied to every request with the
        // same cache key; a TOKEN policy (no map: the whole stage, cacheable;
        // with a map: TTL 0) to nothing but its own request.
        for (arn, answer, key, _) in &asked {
            for (arn2, _, key2, expected2) in &asked {
                let applied = decision(answer, arn2);
                match (key, key2) {
                    (Some(k), Some(k2)) if k == k2 => {
                        prop_assert_eq!(applied, *expected2, "policy for {} cached, applied to {}", arn, arn2);
                    }
                    (None, _) if no_map => prop_assert_eq!(applied, *expected2, "{} applied to {}", arn, arn2),
                    (None, _) if arn2 != arn => prop_assert!(!applied, "TOKEN policy for {} allows {}", arn, arn2),
                    _ => {}
                }
            }
        }
    }
}

/// The example, on REQUEST and TOKEN events: a token with
/// `pets:read profile:read` gets `GET /users/42` and not
/// `GET /users/42/payment-methods` (an API route missing from the map), and
/// no answer for another route covers it.
#[test]
fn a_route_deeper_than_a_param_route_is_unmapped() {
    let a = authorizer(&[
        (
            "AUTH_ROUTE_SCOPES",
            "GET /pets=pets:read,POST /pets=pets:write,GET /pets/{id}=pets:read,DELETE /pets/{id}=admin,GET /users/{id}=profile:read",
        ),
        ("AUTH_UNMAPPED_ROUTES", "deny"),
    ]);
    let bearer = format!("Bearer {}", token("pets:read profile:read"));
    let deep = format!("{STAGE}/GET/users/42/payment-methods");
    let ask = |method: &str, resource: &str, path: &str| {
        let e: AuthorizerEvent = serde_json::from_value(json!({
            "type": "REQUEST", "methodArn": format!("{STAGE}/{method}{path}"), "resource": resource,
            "path": path, "httpMethod": method, "headers": {"Authorization": bearer},
        }))
        .unwrap();
        policy_of(&a, &e)
    };
    let p = ask("GET", "/users/{id}/payment-methods", "/users/42/payment-methods");
    assert!(!policy::allows(&p, &deep));
    let token_event: AuthorizerEvent =
        serde_json::from_value(json!({"type": "TOKEN", "authorizationToken": bearer, "methodArn": deep})).unwrap();
    assert!(!policy::allows(&policy_of(&a, &token_event), &deep));
    // Positive controls, and no other answer covers the deep route.
    for (method, resource, path) in [("GET", "/users/{id}", "/users/42"), ("GET", "/pets", "/pets")] {
        let p = ask(method, resource, path);
        assert!(policy::allows(&p, &format!("{STAGE}/{method}{path}")), "{method} {path}");
        if resource == "/pets" {
            assert!(!policy::allows(&p, &deep), "the policy for GET /pets covers {deep}");
        }
    }
}
