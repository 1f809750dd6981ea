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

/// A route of the API and the scopes it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, ... or `*` for any method.
    pub method: String,
    /// The resource path with `{param}` segments turned into `*`, no leading
    /// slash (as it appears in an execute-api ARN).
    pub path: String,
    /// Scopes a token needs, all of them.
    pub scopes: Vec<String>,
}

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
    /// `AUTH_ROUTE_SCOPES`.
    pub routes: Vec<Route>,
    /// `AUTH_UNMAPPED_ROUTES=allow`.
    pub allow_unmapped: bool,
    /// `AUTH_REQUIRED_SCOPES`.
    pub required_scopes: Vec<String>,
    /// `AUTH_HTTP_API_RESPONSE`.
    pub http_api_response: HttpApiResponse,
}

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// Parses `AUTH_ROUTE_SCOPES`.
///
/// # Errors
/// The first bad entry, naming the variable.
pub fn parse_routes(spec: &str) -> Result<Vec<Route>, ConfigError> {
    let var = "AUTH_ROUTE_SCOPES";
    let mut routes = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad =
            |why: &str| ConfigError::new(var, format!("{entry:?}: {why} (expected METHOD /path=scope [scope...])"));
        let (route, scopes) = entry.split_once('=').ok_or_else(|| bad("missing '='"))?;
        let (method, path) = route.trim().split_once(' ').ok_or_else(|| bad("missing method or path"))?;
        let method = method.trim().to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) && method != "*" {
            return Err(bad("unknown method"));
        }
        let path = path.trim();
        if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains(['?', '#']) {
            return Err(bad("path must start with '/' and have no spaces or query"));
        }
        let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
        if scopes.is_empty() {
            return Err(bad("no scopes"));
        }
        let arn_path = path
            .trim_start_matches('/')
            .split('/')
            .map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "*" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = if method == "ANY" { "*".to_owned() } else { method };
        routes.push(Route { method, path: arn_path, scopes });
    }
    Ok(routes)
}

impl AuthorizerConfig {
    /// Reads every setting.
    ///
    /// # Errors
    /// The first missing or invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let verifier = VerifierConfig::from_settings(s)?;
        let routes = match s.get("AUTH_ROUTE_SCOPES") {
            Some(spec) => parse_routes(&spec)?,
            None => Vec::new(),
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
    fn parses_a_route_map() {
        let r = parse_routes("GET /pets=pets:read, POST /pets=pets:write ,delete /pets/{id}=pets:write admin,ANY /=x")
            .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], Route { method: "GET".into(), path: "pets".into(), scopes: vec!["pets:read".into()] });
        assert_eq!(r[2].method, "DELETE");
        assert_eq!(r[2].path, "pets/*");
        assert_eq!(r[2].scopes, vec!["pets:write", "admin"]);
        assert_eq!(r[3].method, "*");
        assert_eq!(r[3].path, "");
    }

    #[test]
    fn bad_route_maps_name_the_variable_and_entry() {
        for spec in ["GET /pets", "FETCH /pets=a", "GET pets=a", "GET /pets=", "/pets=a", "GET /p?x=1=a"] {
            let err = parse_routes(spec).unwrap_err();
            assert_eq!(err.var, "AUTH_ROUTE_SCOPES", "{spec}");
        }
    }

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
