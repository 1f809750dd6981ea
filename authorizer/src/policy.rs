//! The IAM policy an authorizer returns, and its evaluation.
//!
//! API Gateway caches a policy per token for the authorizer's TTL and applies
//! it to every route of the API, so the policy must be right for every route
//! the token can call, not just the `methodArn` that was asked.

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};
use token_core::VerifiedToken;

use crate::config::Route;

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

fn statement(effect: IamPolicyEffect, resource: Vec<String>) -> IamPolicyStatement {
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".into()];
    s.effect = effect;
    s.resource = resource;
    s
}

fn route_arn(stage: &str, r: &Route) -> String {
    format!("{stage}/{}/{}", r.method, r.path)
}

/// The policy for a verified token:
/// - without a required scope: Deny on the whole stage;
/// - without a route map: Allow on the whole stage (`{stage}/*/*`);
/// - with a route map: Allow for the routes the token's scopes permit, Deny
///   for the others, and routes outside the map allowed only with
///   `allow_unmapped`.
pub fn policy_for(
    stage: &str,
    token: &VerifiedToken,
    routes: &[Route],
    allow_unmapped: bool,
    required: &[String],
) -> ApiGatewayCustomAuthorizerPolicy {
    let everything = format!("{stage}/*/*");
    let mut statements = Vec::with_capacity(2);
    if !token.has_scopes(required.iter().map(String::as_str)) {
        statements.push(statement(IamPolicyEffect::Deny, vec![everything]));
    } else if routes.is_empty() {
        statements.push(statement(IamPolicyEffect::Allow, vec![everything]));
    } else {
        let mut allow = Vec::new();
        let mut deny = Vec::new();
        for r in routes {
            let arn = route_arn(stage, r);
            if token.has_scopes(r.scopes.iter().map(String::as_str)) { allow.push(arn) } else { deny.push(arn) }
        }
        if allow_unmapped {
            allow.push(everything.clone());
        }
        if !allow.is_empty() {
            statements.push(statement(IamPolicyEffect::Allow, allow));
        }
        if !deny.is_empty() {
            statements.push(statement(IamPolicyEffect::Deny, deny));
        }
        if statements.is_empty() {
            statements.push(statement(IamPolicyEffect::Deny, vec![everything]));
        }
    }
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = statements;
    policy
}

/// A Deny policy on the whole stage.
pub fn deny_all(stage: &str) -> ApiGatewayCustomAuthorizerPolicy {
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement(IamPolicyEffect::Deny, vec![format!("{stage}/*/*")])];
    policy
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
