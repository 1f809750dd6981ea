//! The route map (`AUTH_ROUTE_SCOPES`) and how a request finds its entry.
//!
//! A route is a method (or `ANY`) and a resource template as API Gateway
//! writes it: literal segments, `{param}` (exactly one non-empty segment) and
//! a final `{proxy+}` (one or more non-empty segments). A request finds its
//! entry in one of two ways, which agree whenever the map's templates are the
//! API's resources (`infra/check.sh` enforces that for the deploy template):
//!
//! - by template ([`RouteMap::for_resource`]): API Gateway has already routed
//!   the request and says which resource it went to (REST REQUEST events'
//!   `resource`, HTTP API `routeKey`). The template is compared segment by
//!   segment, `{param}` names ignored;
//! - by concrete path ([`RouteMap::for_path`]): only the path is known (TOKEN
//!   events' `methodArn`). The path is routed as API Gateway routes it over
//!   the map's templates: of the templates that match, the most specific
//!   wins, comparing segment by segment from the left (literal before
//!   `{param}` before `{proxy+}`).
//!
//! Either way the entry is the one for the request's method, else the `ANY`
//! one for that template, else none: the request is unmapped. A path deeper
//! than a `{param}` route does not match it.

use token_core::ConfigError;

/// One segment of a resource template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches itself.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// `{name+}`, last only: one or more non-empty segments.
    Proxy,
}

impl Segment {
    /// The segment of a template as written (`pets`, `{id}`, `{proxy+}`).
    fn of(text: &str) -> Segment {
        match text.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if name.ends_with('+') => Segment::Proxy,
            Some(_) => Segment::Param,
            None => Segment::Literal(text.to_owned()),
        }
    }

    /// Whether `text`, a segment of another template, is this one (names of
    /// parameters aside).
    fn is(&self, text: &str) -> bool {
        match (self, text.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            (Segment::Literal(l), None) => l == text,
            (Segment::Param, Some(name)) => !name.ends_with('+'),
            (Segment::Proxy, Some(name)) => name.ends_with('+'),
            _ => false,
        }
    }

    /// Lower is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param => 1,
            Segment::Proxy => 2,
        }
    }
}

/// A route of the API and the scopes it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, ... or `*` for `ANY`.
    pub method: String,
    /// The resource template as written, e.g. `/pets/{id}` (`/` for the root).
    pub resource: String,
    /// The template's segments (none for `/`).
    pub segments: Vec<Segment>,
    /// Scopes a token needs, all of them.
    pub scopes: Vec<String>,
}

impl Route {
    /// Whether the concrete `path` (with its leading `/`) matches the template.
    pub fn matches_path(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let mut parts = (!rest.is_empty()).then(|| rest.split('/')).into_iter().flatten();
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
                Segment::Param => {
                    if parts.next().is_none_or(str::is_empty) {
                        return false;
                    }
                }
                Segment::Proxy => {
                    let mut any = false;
                    for p in parts.by_ref() {
                        if p.is_empty() {
                            return false;
                        }
                        any = true;
                    }
                    return any;
                }
            }
        }
        parts.next().is_none()
    }

    /// Whether `resource`, a template as API Gateway writes it, is this
    /// route's template.
    pub fn is_resource(&self, resource: &str) -> bool {
        let rest = resource.strip_prefix('/').unwrap_or(resource);
        let mut parts = (!rest.is_empty()).then(|| rest.split('/')).into_iter().flatten();
        self.segments.iter().all(|seg| parts.next().is_some_and(|p| seg.is(p))) && parts.next().is_none()
    }

    /// Same template (parameter names aside).
    fn same_template(&self, other: &Route) -> bool {
        self.segments == other.segments
    }

    /// More specific than `other` (both matching one path).
    fn more_specific_than(&self, other: &Route) -> bool {
        let a = self.segments.iter().map(Segment::rank);
        let b = other.segments.iter().map(Segment::rank);
        a.lt(b)
    }
}

/// The route map, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMap {
    routes: Vec<Route>,
}

/// The methods a route may name (`ANY` is stored as `*`).
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

impl RouteMap {
    /// Parses `AUTH_ROUTE_SCOPES`: `METHOD /path=scope [scope...]`, comma
    /// separated.
    ///
    /// # Errors
    /// The first bad entry, naming the variable: an unknown method, a path
    /// that does not start with `/`, has an empty segment, a blank, a query,
    /// a `{proxy+}` that is not last or a malformed `{param}`, no scopes, or
    /// a route given twice.
    pub fn parse(spec: &str) -> Result<RouteMap, ConfigError> {
        let var = "AUTH_ROUTE_SCOPES";
        let mut routes: Vec<Route> = Vec::new();
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
            let rest = &path[1..];
            let texts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
            let mut segments = Vec::with_capacity(texts.len());
            for (i, t) in texts.iter().enumerate() {
                if t.is_empty() {
                    return Err(bad("empty path segment"));
                }
                let seg = Segment::of(t);
                let name_ok = match &seg {
                    Segment::Literal(l) => !l.contains(['{', '}', '*']),
                    Segment::Param => t.len() > 2 && !t[1..t.len() - 1].contains(['{', '}', '+']),
                    Segment::Proxy => t.len() > 3 && !t[1..t.len() - 2].contains(['{', '}', '+']),
                };
                if !name_ok {
                    return Err(bad("a segment is a literal without braces or '*', {name} or {name+}"));
                }
                if seg == Segment::Proxy && i + 1 != texts.len() {
                    return Err(bad("{proxy+} must be the last segment"));
                }
                segments.push(seg);
            }
            let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
            if scopes.is_empty() {
                return Err(bad("no scopes"));
            }
            let method = if method == "ANY" { "*".to_owned() } else { method };
            let route = Route { method, resource: path.to_owned(), segments, scopes };
            if routes.iter().any(|r| r.method == route.method && r.same_template(&route)) {
                return Err(bad("this method and path are already in the map"));
            }
            routes.push(route);
        }
        Ok(RouteMap { routes })
    }

    /// No routes: every valid token is allowed everywhere.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes, in the order written.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The entry for a request API Gateway routed to `resource` (a template
    /// such as `/users/{id}`) with `method`: the method's route, else the
    /// `ANY` route of that template, else `None` (unmapped).
    pub fn for_resource(&self, method: &str, resource: &str) -> Option<&Route> {
        self.pick(method, |r| r.is_resource(resource))
    }

    /// The map's template API Gateway routes the concrete `path` to: the most
    /// specific that matches, or `None`.
    pub fn resource_for_path(&self, path: &str) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        for r in &self.routes {
            if r.matches_path(path) && best.is_none_or(|b| r.more_specific_than(b)) {
                best = Some(r);
            }
        }
        best
    }

    /// The entry for a concrete request (`path` with its leading `/`):
    /// routed to the most specific template, then as [`RouteMap::for_resource`].
    pub fn for_path(&self, method: &str, path: &str) -> Option<&Route> {
        let template = self.resource_for_path(path)?;
        self.pick(method, |r| r.same_template(template))
    }

    fn pick(&self, method: &str, template: impl Fn(&Route) -> bool) -> Option<&Route> {
        let mut any = None;
        for r in &self.routes {
            if template(r) {
                if r.method == method {
                    return Some(r);
                }
                if r.method == "*" && any.is_none() {
                    any = Some(r);
                }
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(spec: &str) -> RouteMap {
        RouteMap::parse(spec).unwrap()
    }

    #[test]
    fn parses_templates() {
        let m = map("GET /pets=a, any /files/{path+}=b c ,DELETE /pets/{id}=d,GET /=e");
        let r = m.routes();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].segments, vec![Segment::Literal("pets".into())]);
        assert_eq!(r[1].method, "*");
        assert_eq!(r[1].segments, vec![Segment::Literal("files".into()), Segment::Proxy]);
        assert_eq!(r[1].scopes, vec!["b", "c"]);
        assert_eq!(r[2].segments, vec![Segment::Literal("pets".into()), Segment::Param]);
        assert!(r[3].segments.is_empty());
    }

    #[test]
    fn bad_maps_name_the_variable() {
        for spec in [
            "GET /pets",
            "FETCH /pets=a",
            "GET pets=a",
            "GET /pets=",
            "/pets=a",
            "GET /p?x=1=a",
            "GET /a/{p+}/b=a",
            "GET /a//b=a",
            "GET /a/=a",
            "GET /{}=a",
            "GET /a{b}=a",
            "GET /*=a",
            "GET /a=x,GET /a=y",
            "GET /a/{x}=x,GET /a/{y}=y",
        ] {
            assert_eq!(RouteMap::parse(spec).unwrap_err().var, "AUTH_ROUTE_SCOPES", "{spec}");
        }
    }

    #[test]
    fn a_param_is_one_non_empty_segment() {
        let m = map("GET /users/{id}=a");
        assert!(m.for_path("GET", "/users/42").is_some());
        assert!(m.for_path("GET", "/users/42/payment-methods").is_none());
        assert!(m.for_path("GET", "/users/").is_none());
        assert!(m.for_path("GET", "/users").is_none());
        assert!(m.for_path("POST", "/users/42").is_none());
    }

    #[test]
    fn proxy_is_one_or_more_segments() {
        let m = map("ANY /files/{proxy+}=a,GET /=b");
        assert!(m.for_path("PUT", "/files/a").is_some());
        assert!(m.for_path("PUT", "/files/a/b/c").is_some());
        assert!(m.for_path("PUT", "/files").is_none());
        assert!(m.for_path("PUT", "/files/").is_none());
        assert_eq!(m.for_path("GET", "/").map(|r| r.resource.as_str()), Some("/"));
        assert!(m.for_path("GET", "/x").is_none());
    }

    #[test]
    fn the_most_specific_template_wins_then_the_method_then_any() {
        let m = map("GET /users/me=me,ANY /users/{id}=any,DELETE /users/{id}=admin,GET /{proxy+}=all");
        let scope = |method: &str, path: &str| m.for_path(method, path).map(|r| r.scopes[0].as_str());
        assert_eq!(scope("GET", "/users/me"), Some("me"));
        // /users/me is routed to its own resource, which has no POST.
        assert_eq!(scope("POST", "/users/me"), None);
        assert_eq!(scope("GET", "/users/7"), Some("any"));
        assert_eq!(scope("DELETE", "/users/7"), Some("admin"));
        assert_eq!(scope("GET", "/users/7/x"), Some("all"));
        assert_eq!(scope("POST", "/users/7/x"), None);
    }

    #[test]
    fn templates_compare_without_param_names() {
        let m = map("GET /users/{id}=a,ANY /f/{p+}=b");
        assert!(m.for_resource("GET", "/users/{userId}").is_some());
        assert!(m.for_resource("GET", "/users/{id+}").is_none());
        assert!(m.for_resource("GET", "/users/{id}/payment-methods").is_none());
        assert!(m.for_resource("GET", "/users").is_none());
        assert!(m.for_resource("GET", "/users/42").is_none());
        assert!(m.for_resource("HEAD", "/f/{proxy+}").is_some());
    }
}
