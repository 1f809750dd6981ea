//! The authorizer's configuration, read once at init from the environment.
//!
//! The `AUTH_*` verifier variables are the sidecar's (see `token_core::config`).
//! Authorizer-only variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTH_ROUTE_SCOPES` | route-to-scope map, e.g. `GET /pets=pets:read,POST /pets=pets:write,DELETE /pets/{id}=pets:write admin` (space: all of these scopes) | none: every route allowed to any valid token |
//! | `AUTH_UNMAPPED_ROUTES` | with a route map: `deny` or `allow` routes not in the map | `deny` |
//! | `AUTH_REQUIRED_SCOPES` | scopes every token needs, space or comma separated | none |
//! | `AUTH_HTTP_API_RESPONSE` | HTTP API (payload 2.0) answer: `simple` (`isAuthorized`) or `iam` (policy) | `simple` |

use token_core::{ConfigError, Settings, VerifierConfig};

use crate::routes::RouteMap;

/// How HTTP API (payload 2.0) events are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpApiResponse {
    /// `{"isAuthorized": bool, "context": {...}}`.
    Simple,
    /// An IAM policy, as for REST APIs.
    Iam,
}

/// Everything the authorizer needs.
#[derive(Debug, Clone)]
pub struct AuthorizerConfig {
    /// Token verification.
    pub verifier: VerifierConfig,
    /// `AUTH_ROUTE_SCOPES` (empty: no route map).
    pub routes: RouteMap,
    /// `AUTH_UNMAPPED_ROUTES=allow`.
    pub allow_unmapped: bool,
    /// `AUTH_REQUIRED_SCOPES`.
    pub required_scopes: Vec<String>,
    /// `AUTH_HTTP_API_RESPONSE`.
    pub http_api_response: HttpApiResponse,
}

impl AuthorizerConfig {
    /// Reads every setting.
    ///
    /// # Errors
    /// The first missing or invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let verifier = VerifierConfig::from_settings(s)?;
        let routes = match s.get("AUTH_ROUTE_SCOPES") {
            Some(spec) => RouteMap::parse(&spec)?,
            None => RouteMap::default(),
        };
        let allow_unmapped = match s.get("AUTH_UNMAPPED_ROUTES").as_deref() {
            None | Some("deny") => false,
            Some("allow") => true,
            Some(v) => {
                return Err(ConfigError::new("AUTH_UNMAPPED_ROUTES", format!("expected allow or deny, got {v:?}")));
            }
        };
        let required_scopes = s
            .get("AUTH_REQUIRED_SCOPES")
            .map(|v| v.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let http_api_response = match s.get("AUTH_HTTP_API_RESPONSE").as_deref() {
            None | Some("simple") => HttpApiResponse::Simple,
            Some("iam") => HttpApiResponse::Iam,
            Some(v) => {
                return Err(ConfigError::new("AUTH_HTTP_API_RESPONSE", format!("expected simple or iam, got {v:?}")));
            }
        };
        Ok(AuthorizerConfig { verifier, routes, allow_unmapped, required_scopes, http_api_response })
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// The first missing or invalid variable, by name.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_env())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let base = [("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api")];
        let c = AuthorizerConfig::from_settings(&Settings::from_pairs(&base)).unwrap();
        assert!(c.routes.is_empty());
        assert_eq!(c.http_api_response, HttpApiResponse::Simple);
        let pairs = [base[0], base[1], ("AUTH_REQUIRED_SCOPES", "a, b c"), ("AUTH_HTTP_API_RESPONSE", "iam")];
        let c = AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
        assert_eq!(c.required_scopes, vec!["a", "b", "c"]);
        assert_eq!(c.http_api_response, HttpApiResponse::Iam);
        let pairs = [base[0], base[1], ("AUTH_HTTP_API_RESPONSE", "fancy")];
        assert_eq!(
            AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap_err().var,
            "AUTH_HTTP_API_RESPONSE"
        );
        let pairs = [base[0], base[1], ("AUTH_UNMAPPED_ROUTES", "maybe")];
        assert_eq!(
            AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap_err().var,
            "AUTH_UNMAPPED_ROUTES"
        );
    }
}
