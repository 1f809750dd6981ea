//! The authorizer as a plain async function: event in, answer or
//! `Unauthorized` out. `main.rs` only plugs it into `lambda_runtime`; the local
//! front door of the dev stack calls it directly.

use std::sync::Arc;

use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse,
};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use token_core::{Credentials, Decision, VerifiedToken, Verifier, VerifyError, parse_authorization};
use tracing::{info, warn};

use crate::config::{AuthorizerConfig, HttpApiResponse, Route};
use crate::event::{AuthorizerEvent, EventKind};
use crate::policy;

/// The context passed to the backend. Strings and numbers only: REST APIs
/// flatten it into `$context.authorizer.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    /// `sub`
    pub sub: String,
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
    routes: Vec<Route>,
    allow_unmapped: bool,
    required: Vec<String>,
    http_api_response: HttpApiResponse,
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
        }
    }

    /// The shared verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Decides one event and logs one line with the outcome and reason
    /// (never the token).
    ///
    /// # Errors
    /// [`AuthorizerError::Unauthorized`] for anything wrong with the token or
    /// the event; [`AuthorizerError::KeysUnavailable`] when keys cannot be had.
    pub async fn handle(&self, event: &AuthorizerEvent) -> Result<Answer, AuthorizerError> {
        let arn = event.resource_arn().unwrap_or("");
        let result = self.decide(event).await;
        let metrics = self.verifier.metrics();
        match &result {
            Ok((answer, token)) => {
                let allowed = match answer {
                    Answer::Policy(p) => policy::allows(&p.policy_document, arn),
                    Answer::Simple(s) => s.is_authorized,
                };
                let decision = if allowed { Decision::Allow } else { Decision::InsufficientScope };
                metrics.record(decision);
                info!(
                    decision = decision.outcome(),
                    reason = decision.reason(),
                    sub = token.sub(),
                    arn,
                    "authorization"
                );
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
        result.map(|(a, _)| a).map_err(|(e, _)| e)
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
        let context = AuthContext::of(&verified);
        let answer = match (kind, self.http_api_response) {
            (EventKind::HttpApiV2, HttpApiResponse::Simple) => {
                // Only right for the route asked: with a route map, turn the
                // HTTP API authorizer cache off or use the IAM answer.
                let policy = policy::policy_for(stage, &verified, &self.routes, self.allow_unmapped, &self.required);
                let mut simple = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
                simple.is_authorized = policy::allows(&policy, arn);
                simple.context = context;
                Answer::Simple(simple)
            }
            _ => {
                let mut resp = ApiGatewayCustomAuthorizerResponse::default();
                resp.principal_id = Some(verified.sub().to_owned());
                resp.policy_document =
                    policy::policy_for(stage, &verified, &self.routes, self.allow_unmapped, &self.required);
                resp.context = context;
                Answer::Policy(resp)
            }
        };
        Ok((answer, verified))
    }
}
