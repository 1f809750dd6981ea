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
    /// `AUTH_METRICS_INTERVAL_SECS` (default 60; 0: no metric lines): how
    /// often a sandbox writes its decision counts as an EMF line
    /// ([`crate::metrics`]).
    pub metrics_interval: std::time::Duration,
    /// `AUTH_METRICS_NAMESPACE` (default `Auth/Authorizer`): the CloudWatch
    /// namespace of those metrics.
    pub metrics_namespace: String,
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
        let metrics_interval = std::time::Duration::from_secs(s.u64_in("AUTH_METRICS_INTERVAL_SECS", 60, 0..=3600)?);
        let metrics_namespace = s.get("AUTH_METRICS_NAMESPACE").unwrap_or_else(|| "Auth/Authorizer".into());
        // CloudWatch: 1-255 characters, no leading colon, letters, digits
        // and `.-_/#:` plus spaces.
        if metrics_namespace.is_empty()
            || metrics_namespace.len() > 255
            || metrics_namespace.starts_with(':')
            || !metrics_namespace.bytes().all(|b| b.is_ascii_alphanumeric() || b" .-_/#:".contains(&b))
        {
            return Err(ConfigError::new(
                "AUTH_METRICS_NAMESPACE",
                "expected 1 to 255 letters, digits, spaces and .-_/#: (not starting with :)",
            ));
        }
        Ok(AuthorizerConfig {
            verifier,
            routes,
            allow_unmapped,
            required_scopes,
            http_api_response,
            metrics_interval,
            metrics_namespace,
        })
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
        assert_eq!(c.metrics_interval, std::time::Duration::from_secs(60));
        assert_eq!(c.metrics_namespace, "Auth/Authorizer");
        for (var, bad) in [("AUTH_METRICS_INTERVAL_SECS", "7200"), ("AUTH_METRICS_NAMESPACE", "bad{name}")] {
            let pairs = [base[0], base[1], (var, bad)];
            assert_eq!(AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap_err().var, var);
        }
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
