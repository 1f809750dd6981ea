//! The authorizer as a plain async function: event in, answer or
//! `Unauthorized` out. `main.rs` only plugs it into `lambda_runtime`; the local
//! front door of the dev stack calls it directly.

use std::sync::Arc;

use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse,
};
use aws_lambda_events::event::iam::IamPolicyEffect;
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use token_core::{Credentials, Decision, StalePolicy, VerifiedToken, Verifier, VerifyError, parse_authorization};
use tracing::{debug, info, warn};

use crate::config::{AuthorizerConfig, HttpApiResponse};
use crate::event::{AuthorizerEvent, EventKind};
use crate::policy;
use crate::routes::{Route, RouteMap};

/// The context passed to the backend. Strings and numbers only: REST APIs
/// flatten it into `$context.authorizer.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    /// `sub`
    pub sub: String,
    /// `iss`: with several trusted issuers, `sub` alone is ambiguous; the
    /// pair names one principal.
    pub iss: String,
    /// `scope`, space-separated
    pub scope: String,
    /// `client_id`, when the token has one
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// `jti`
    pub jti: String,
    /// `exp`, seconds since the epoch
    pub exp: u64,
}

impl AuthContext {
    fn of(token: &VerifiedToken) -> Self {
        AuthContext {
            sub: token.sub().to_owned(),
            iss: token.issuer().to_owned(),
            scope: token.scope().to_owned(),
            client_id: token.client_id().map(str::to_owned),
            jti: token.jti().to_owned(),
            exp: token.exp(),
        }
    }
}

/// What the function returns for a valid token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// REST APIs (and HTTP APIs configured for IAM answers): a policy.
    Policy(ApiGatewayCustomAuthorizerResponse<AuthContext>),
    /// HTTP API simple response.
    Simple(ApiGatewayV2CustomAuthorizerSimpleResponse<AuthContext>),
}

impl Answer {
    /// The policy, for policy answers.
    pub fn policy(&self) -> Option<&ApiGatewayCustomAuthorizerPolicy> {
        match self {
            Answer::Policy(p) => Some(&p.policy_document),
            Answer::Simple(_) => None,
        }
    }
}

/// Why there is no answer. The invocation fails with this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    /// Missing, malformed, expired or otherwise invalid token, or an event
    /// we cannot read: the message is exactly `Unauthorized`, which API
    /// Gateway turns into 401. The reason is for our logs only.
    #[error("Unauthorized")]
    Unauthorized(&'static str),
    /// No usable signing keys (JWKS endpoint down past the max stale age):
    /// our failure, not the client's; API Gateway answers 500.
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl From<AuthorizerError> for Diagnostic {
    fn from(e: AuthorizerError) -> Diagnostic {
        match e {
            AuthorizerError::Unauthorized(_) => {
                Diagnostic { error_type: "Unauthorized".into(), error_message: "Unauthorized".into() }
            }
            AuthorizerError::KeysUnavailable => {
                Diagnostic { error_type: "KeysUnavailable".into(), error_message: e.to_string() }
            }
        }
    }
}

/// The authorizer: a verifier and the policy rules.
#[derive(Debug)]
pub struct Authorizer {
    verifier: Arc<Verifier>,
    routes: RouteMap,
    allow_unmapped: bool,
    required: Vec<String>,
    http_api_response: HttpApiResponse,
    /// Decision counts as EMF lines (`None`: interval 0).
    emf: Option<crate::metrics::EmfReporter>,
}

impl Authorizer {
    /// An authorizer over a (warmed) verifier.
    pub fn new(verifier: Arc<Verifier>, config: &AuthorizerConfig) -> Self {
        Authorizer {
            verifier,
            routes: config.routes.clone(),
            allow_unmapped: config.allow_unmapped,
            required: config.required_scopes.clone(),
            http_api_response: config.http_api_response,
            emf: (!config.metrics_interval.is_zero()).then(|| {
                crate::metrics::EmfReporter::new(
                    config.metrics_namespace.clone(),
                    config.metrics_interval,
                    std::time::Instant::now(),
                )
            }),
        }
    }

    /// The shared verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The route map (`AUTH_ROUTE_SCOPES`; empty without one).
    pub fn routes(&self) -> &RouteMap {
        &self.routes
    }

    /// The resource (template, e.g. `/pets/{id}`) API Gateway routes the
    /// concrete `path` to when the API's resources are the route map's, as
    /// `infra/check.sh` requires of the deploy template. For a local gateway
    /// (the dev stack's front door): with [`crate::rest_cache_key`] and
    /// [`AuthorizerEvent::rest_request`] it caches answers as API Gateway
    /// does. `None` without a route map or when no template matches (use the
    /// path itself then: the answer is the unmapped one).
    pub fn resource_for(&self, path: &str) -> Option<&str> {
        self.routes.resource_for_path(path).map(|r| r.resource.as_str())
    }

    /// Decides one event and logs one line with the outcome and reason
    /// (never the token).
    ///
    /// # Errors
    /// [`AuthorizerError::Unauthorized`] for anything wrong with the token or
    /// the event; [`AuthorizerError::KeysUnavailable`] when keys cannot be had.
    pub async fn handle(&self, event: &AuthorizerEvent) -> Result<Answer, AuthorizerError> {
        self.follow_revocations().await;
        let arn = event.resource_arn().unwrap_or("");
        let result = self.decide(event).await;
        let metrics = self.verifier.metrics();
        match &result {
            Ok((answer, token)) => {
                let allowed = match answer {
                    Answer::Policy(p) => p.policy_document.statement.iter().all(|s| s.effect == IamPolicyEffect::Allow),
                    Answer::Simple(s) => s.is_authorized,
                };
                let decision = if allowed { Decision::Allow } else { Decision::InsufficientScope };
                metrics.record(decision);
                // Allowed requests are counted (EMF, below) and logged by
                // API Gateway's access log; their own line is DEBUG
                // (`crate::metrics` has the cost). Denials stay INFO.
                if allowed {
                    debug!(
                        decision = decision.outcome(),
                        reason = decision.reason(),
                        sub = token.sub(),
                        arn,
                        "authorization"
                    );
                } else {
                    info!(
                        decision = decision.outcome(),
                        reason = decision.reason(),
                        sub = token.sub(),
                        arn,
                        "authorization"
                    );
                }
            }
            Err((e, decision)) => {
                metrics.record(*decision);
                let reason = decision.reason();
                match e {
                    AuthorizerError::KeysUnavailable => warn!(decision = "error", reason, arn, "authorization"),
                    AuthorizerError::Unauthorized(_) => info!(decision = "unauthorized", reason, arn, "authorization"),
                }
            }
        }
        if let Some(emf) = &self.emf {
            let now_ms = u64::try_from(token_core::unix_now().as_millis()).unwrap_or(u64::MAX);
            if let Some(line) = emf.tick(metrics, std::time::Instant::now(), now_ms) {
                // Its own line on stdout, where Lambda's log capture makes
                // it a metric.
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
        result.map(|(a, _)| a).map_err(|(e, _)| e)
    }

    /// The revocation feed, without a network wait on ordinary invocations:
    /// when a poll is due and none is in flight, start one on the runtime
    /// and go on (Lambda freezes the sandbox between invocations; the poll
    /// carries on at the next thaw, and one frozen mid-fetch runs into its
    /// timeout and is retried). Only when the feed is stale and the policy
    /// is refuse does the invocation wait, for one poll bounded by the
    /// fetch timeout.
    async fn follow_revocations(&self) {
        let Some(feed) = self.verifier.revocation_feed() else { return };
        let now_ms = token_core::unix_now().as_millis() as u64;
        if feed.config().stale_policy == StalePolicy::Refuse && feed.is_stale(now_ms) {
            if !feed.wait_fresh(feed.config().timeout).await {
                warn!("revocation feed stale; refusing tokens (REVOCATION_STALE_POLICY=refuse)");
            }
        } else {
            feed.spawn_if_due();
        }
    }

    #[allow(clippy::type_complexity)]
    async fn decide(
        &self,
        event: &AuthorizerEvent,
    ) -> Result<(Answer, Arc<VerifiedToken>), (AuthorizerError, Decision)> {
        let unauthorized = |reason: &'static str, d: Decision| (AuthorizerError::Unauthorized(reason), d);
        let Some(kind) = event.event_kind() else {
            return Err(unauthorized("unknown_event", Decision::InvalidRequest));
        };
        let arn = event.resource_arn().ok_or(unauthorized("no_method_arn", Decision::InvalidRequest))?;
        let stage = policy::stage_arn(arn).ok_or(unauthorized("bad_method_arn", Decision::InvalidRequest))?;
        let header = event
            .authorization()
            .map_err(|()| unauthorized("several_authorization_headers", Decision::InvalidRequest))?;
        let token = match parse_authorization(header) {
            Credentials::Bearer(t) => t,
            Credentials::Missing => return Err(unauthorized("missing_token", Decision::MissingToken)),
            Credentials::Malformed => return Err(unauthorized("invalid_request", Decision::InvalidRequest)),
        };
        let verified = match self.verifier.verify(token).await {
            Ok(v) => v,
            Err(VerifyError::KeysUnavailable) => {
                return Err((AuthorizerError::KeysUnavailable, Decision::Rejected(VerifyError::KeysUnavailable)));
            }
            Err(e) => return Err(unauthorized(e.reason(), Decision::Rejected(e))),
        };
        let (allowed, resource) = self.judge(event, kind, stage, arn, &verified)?;
        let context = AuthContext::of(&verified);
        let answer = match (kind, self.http_api_response) {
            (EventKind::HttpApiV2, HttpApiResponse::Simple) => {
                let mut simple = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
                simple.is_authorized = allowed;
                simple.context = context;
                Answer::Simple(simple)
            }
            _ => {
                let mut resp = ApiGatewayCustomAuthorizerResponse::default();
                resp.principal_id = Some(verified.sub().to_owned());
                resp.policy_document = policy::single(allowed, resource);
                resp.context = context;
                Answer::Policy(resp)
            }
        };
        Ok((answer, verified))
    }

    /// Whether the verified token may make this request, and the one
    /// resource the answer covers (see the README: the cache key pins it):
    /// - a required scope missing: denied, on the whole stage;
    /// - no route map: allowed, on the whole stage;
    /// - the event names the resource API Gateway routed to (REST REQUEST,
    ///   HTTP API `routeKey`): that resource's entry, on
    ///   `{stage}/{METHOD}/{resource}`;
    /// - HTTP API `$default`: unmapped, on `{stage}/{METHOD}/*`;
    /// - otherwise (TOKEN events): the concrete path's entry, on exactly the
    ///   `methodArn` (TOKEN authorizers need TTL 0 with a route map).
    #[allow(clippy::type_complexity)]
    fn judge(
        &self,
        event: &AuthorizerEvent,
        kind: EventKind,
        stage: &str,
        arn: &str,
        token: &VerifiedToken,
    ) -> Result<(bool, String), (AuthorizerError, Decision)> {
        if !token.has_scopes(self.required.iter().map(String::as_str)) {
            return Ok((false, policy::whole_stage(stage)));
        }
        if self.routes.is_empty() {
            return Ok((true, policy::whole_stage(stage)));
        }
        let Some((method, path)) = policy::method_and_path(stage, arn) else {
            return Err((AuthorizerError::Unauthorized("bad_method_arn"), Decision::InvalidRequest));
        };
        Ok(match event.routed_resource() {
            Some(resource) => {
                let route = self.routes.for_resource(method, resource);
                (self.permits(route, token), policy::resource_arn(stage, method, resource))
            }
            None if kind == EventKind::HttpApiV2 && event.route_key.is_some() => {
                (self.permits(None, token), format!("{stage}/{method}/*"))
            }
            None => (self.permits(self.routes.for_path(method, path), token), arn.to_owned()),
        })
    }

    /// The map's answer for a request whose entry is `route` (`None`: unmapped).
    fn permits(&self, route: Option<&Route>, token: &VerifiedToken) -> bool {
        match route {
            Some(r) => token.has_scopes(r.scopes.iter().map(String::as_str)),
            None => self.allow_unmapped,
        }
    }
}
