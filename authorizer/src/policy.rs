//! The IAM policy an authorizer returns, and its evaluation.
//!
//! An IAM `*` matches any run of characters, `/` included, so no policy can
//! say "one path segment": a policy listing every route of a route map would
//! let `GET/users/*` admit `GET /users/42/payment-methods`. A policy is
//! therefore only ever made for the one method and resource API Gateway's
//! cache key pins (see the crate README): the whole stage when there is no
//! route map, else exactly `{stage}/{METHOD}/{resource}`.

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};

/// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}` of a method or
/// route ARN (`.../{stage}/{METHOD}/{path}`), or `None` if it is not one.
pub fn stage_arn(arn: &str) -> Option<&str> {
    let mut colons = arn.match_indices(':').map(|(i, _)| i);
    let fifth = colons.nth(4)?;
    if !arn.starts_with("arn:") || !arn[..fifth].contains(":execute-api:") {
        return None;
    }
    let rest = &arn[fifth + 1..];
    let mut slashes = rest.match_indices('/').map(|(i, _)| i);
    let _api = slashes.next()?;
    let stage_end = slashes.next()?;
    (stage_end > 0).then(|| &arn[..fifth + 1 + stage_end])
}

fn statement(effect: IamPolicyEffect, resource: String) -> IamPolicyStatement {
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".into()];
    s.effect = effect;
    s.resource = vec![resource];
    s
}

/// One statement: `Allow` (or `Deny`) `execute-api:Invoke` on `resource`.
pub fn single(allow: bool, resource: String) -> ApiGatewayCustomAuthorizerPolicy {
    let effect = if allow { IamPolicyEffect::Allow } else { IamPolicyEffect::Deny };
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement(effect, resource)];
    policy
}

/// The whole stage, `{stage}/*/*`.
pub fn whole_stage(stage: &str) -> String {
    format!("{stage}/*/*")
}

/// `{stage}/{METHOD}/{resource}` with each `{param}` and `{proxy+}` segment
/// as `*`: every request API Gateway routes to this method and resource, and
/// (since `*` also matches `/`) more, which is why the cache key must pin
/// the method and resource.
pub fn resource_arn(stage: &str, method: &str, resource: &str) -> String {
    let mut arn = String::with_capacity(stage.len() + method.len() + resource.len() + 2);
    arn.push_str(stage);
    arn.push('/');
    arn.push_str(method);
    for (i, seg) in resource.strip_prefix('/').unwrap_or(resource).split('/').enumerate() {
        if i > 0 || !seg.is_empty() {
            arn.push('/');
        }
        arn.push_str(if seg.starts_with('{') && seg.ends_with('}') { "*" } else { seg });
    }
    if resource.is_empty() || resource == "/" {
        arn.push('/');
    }
    arn
}

/// The method and the path (with its leading `/`) of a method or route ARN
/// whose stage ARN is `stage`.
pub fn method_and_path<'a>(stage: &str, arn: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = arn.get(stage.len()..)?.strip_prefix('/')?;
    let slash = rest.find('/')?;
    Some((&rest[..slash], &rest[slash..]))
}

/// IAM evaluation of `policy` for `execute-api:Invoke` on `arn`, as API
/// Gateway does with a cached policy: an explicit Deny wins, then an Allow,
/// otherwise denied.
pub fn allows(policy: &ApiGatewayCustomAuthorizerPolicy, arn: &str) -> bool {
    let matching = |effect: &IamPolicyEffect| {
        policy.statement.iter().filter(|s| &s.effect == effect).any(|s| {
            s.action.iter().any(|a| a == "execute-api:Invoke" || a == "execute-api:*" || a == "*")
                && s.resource.iter().any(|r| glob(r, arn))
        })
    };
    !matching(&IamPolicyEffect::Deny) && matching(&IamPolicyEffect::Allow)
}

/// IAM ARN matching: `*` any run of characters (including `/`), `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        // A `*` in the pattern is a wildcard even where the text has a `*`
        // too: matching it as a literal lost the backtracking point.
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_of_method_arns() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/42";
        assert_eq!(stage_arn(arn), Some("arn:aws:execute-api:us-east-1:123456789012:abc123/prod"));
        assert_eq!(
            stage_arn("arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/GET/"),
            Some("arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*")
        );
        assert_eq!(
            stage_arn("arn:aws-cn:execute-api:cn-north-1:1:a/$default/GET/x"),
            Some("arn:aws-cn:execute-api:cn-north-1:1:a/$default")
        );
        for bad in [
            "",
            "arn:aws:s3:::bucket/key/x",
            "arn:aws:execute-api:us-east-1:1:abc",
            "nonsense",
            "arn:aws:execute-api:r:1:/x",
        ] {
            assert_eq!(stage_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn resource_arns_turn_params_into_stars() {
        let st = "arn:aws:execute-api:r:1:a/prod";
        assert_eq!(resource_arn(st, "GET", "/users/{id}"), format!("{st}/GET/users/*"));
        assert_eq!(resource_arn(st, "PUT", "/files/{p+}"), format!("{st}/PUT/files/*"));
        assert_eq!(resource_arn(st, "GET", "/"), format!("{st}/GET/"));
        assert_eq!(resource_arn(st, "GET", "/pets"), format!("{st}/GET/pets"));
        assert_eq!(method_and_path(st, &format!("{st}/GET/users/42")), Some(("GET", "/users/42")));
        assert_eq!(method_and_path(st, &format!("{st}/GET/")), Some(("GET", "/")));
        assert_eq!(method_and_path(st, &format!("{st}/GET")), None);
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("a/*/*", "a/GET/pets/1"));
        assert!(glob("a/GET/pets", "a/GET/pets"));
        assert!(!glob("a/GET/pets", "a/GET/pets/1"));
        assert!(glob("a/GET/pets/*", "a/GET/pets/1"));
        assert!(!glob("a/GET/pets/*", "a/GET/pets"));
        assert!(glob("a/*/pets", "a/POST/pets"));
        assert!(glob("a/GE?/x", "a/GET/x"));
        assert!(!glob("a/POST/*", "a/GET/x"));
        assert!(glob("*", ""));
    }

    /// Found by the `bearer_and_routes` fuzz target: a literal `*` in the
    /// text (a client can send `DELETE /pets/*a`) was matched by the
    /// pattern's `*` as a literal, so `a/DELETE/pets/*` did not match
    /// `a/DELETE/pets/*a`: that Deny was missed and an Allow such as
    /// `a/*/pets/*` let a token without the route's scope through.
    #[test]
    fn glob_star_is_a_wildcard_over_a_literal_star() {
        assert!(glob("a/DELETE/pets/*", "a/DELETE/pets/*a"));
        assert!(glob("a/DELETE/pets/*", "a/DELETE/pets/*/x"));
        assert!(glob("a/*/*", "a/*/*/x"));
        assert!(glob("a*b*c", "a*b*xc"));
        assert!(!glob("a/GET/*", "a/POST/*"));
    }
}
