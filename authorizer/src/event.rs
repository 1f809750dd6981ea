//! The three event shapes API Gateway sends an authorizer, read into one
//! lean struct: only the fields a decision needs are kept (headers are
//! scanned for `Authorization` without building a map).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Which kind of event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// REST API TOKEN authorizer: `authorizationToken` and `methodArn`.
    Token,
    /// REST API REQUEST authorizer (and HTTP API payload 1.0): headers and `methodArn`.
    Request,
    /// HTTP API payload 2.0: headers (lower-case names), `identitySource`, `routeArn`.
    HttpApiV2,
}

/// An authorizer event. Unknown fields are ignored, and reading one never
/// fails: a member of the wrong type, or a payload that is not an object,
/// leaves the field empty and the handler answers `Unauthorized` instead of
/// the runtime reporting a deserialization error.
#[derive(Debug, Default, Clone)]
pub struct AuthorizerEvent {
    /// `TOKEN` or `REQUEST`.
    pub kind: Option<String>,
    /// `2.0` for HTTP API payload 2.0, `1.0` for HTTP API payload 1.0, absent for REST.
    pub version: Option<String>,
    /// TOKEN events (and HTTP API 1.0): the header value.
    pub authorization_token: Option<String>,
    /// REST events and HTTP API 1.0.
    pub method_arn: Option<String>,
    /// HTTP API 2.0.
    pub route_arn: Option<String>,
    /// The `Authorization` header(s) found in `headers`.
    pub header_authorization: Found,
    /// Same, from REST's `multiValueHeaders`.
    pub multi_header_authorization: Found,
    /// HTTP API 2.0: the first identity source value; 1.0: the string.
    pub identity_source: Option<String>,
    /// REST REQUEST events and HTTP API 1.0: the resource template API
    /// Gateway routed the request to, e.g. `/users/{id}`.
    pub resource: Option<String>,
    /// HTTP API 2.0: the route key, e.g. `GET /users/{id}`, `ANY /{proxy+}`
    /// or `$default`.
    pub route_key: Option<String>,
}

impl<'de> Deserialize<'de> for AuthorizerEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = AuthorizerEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an API Gateway authorizer event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthorizerEvent, A::Error> {
        let mut e = AuthorizerEvent::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "type" => e.kind = map.next_value::<Lenient>()?.0,
                "version" => e.version = map.next_value::<Lenient>()?.0,
                "authorizationToken" => e.authorization_token = map.next_value::<Lenient>()?.0,
                "methodArn" => e.method_arn = map.next_value::<Lenient>()?.0,
                "routeArn" => e.route_arn = map.next_value::<Lenient>()?.0,
                "headers" => e.header_authorization = map.next_value::<HeaderScan<false>>()?.0,
                "multiValueHeaders" => e.multi_header_authorization = map.next_value::<HeaderScan<true>>()?.0,
                "identitySource" => e.identity_source = map.next_value::<IdentitySource>()?.0,
                "resource" => e.resource = map.next_value::<Lenient>()?.0,
                "routeKey" => e.route_key = map.next_value::<Lenient>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }

    // Not an object: an event of no known shape.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AuthorizerEvent, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(AuthorizerEvent::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<AuthorizerEvent, E> {
        Ok(AuthorizerEvent::default())
    }
}

/// A string, or `None` for any other JSON value (consumed).
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient, E> {
                Ok(Lenient(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Authorization header values found while scanning a header map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// The first value.
    pub value: Option<String>,
    /// How many values (several is ambiguous and refused).
    pub count: usize,
}

/// The key under which API Gateway caches an answer of a REST REQUEST
/// authorizer whose identity sources are the `Authorization` header,
/// `$context.httpMethod` and `$context.resourcePath` (the deploy template's):
/// a local gateway (the dev stack's front door) caches by this key for the
/// authorizer TTL to behave the same.
pub fn rest_cache_key(authorization: &str, method: &str, resource: &str) -> String {
    // `\n` cannot occur in a header value, a method or a resource path.
    let mut key = String::with_capacity(authorization.len() + method.len() + resource.len() + 2);
    key.push_str(authorization);
    key.push('\n');
    key.push_str(method);
    key.push('\n');
    key.push_str(resource);
    key
}

impl AuthorizerEvent {
    /// The REST API REQUEST event API Gateway sends for a request routed to
    /// `resource` (a template such as `/pets/{id}`), as a local gateway (the
    /// dev stack's front door) builds it: `method_arn` is
    /// `{stage}/{METHOD}/{concrete path}`.
    pub fn rest_request(method_arn: String, resource: String, authorization: String) -> Self {
        AuthorizerEvent {
            kind: Some("REQUEST".into()),
            method_arn: Some(method_arn),
            resource: Some(resource),
            header_authorization: Found { value: Some(authorization), count: 1 },
            ..AuthorizerEvent::default()
        }
    }

    /// The event's shape, or `None` for something else.
    pub fn event_kind(&self) -> Option<EventKind> {
        if self.version.as_deref() == Some("2.0") {
            return Some(EventKind::HttpApiV2);
        }
        match self.kind.as_deref() {
            Some("TOKEN") => Some(EventKind::Token),
            Some("REQUEST") => Some(EventKind::Request),
            _ => None,
        }
    }

    /// The ARN of the method or route asked about.
    pub fn resource_arn(&self) -> Option<&str> {
        self.method_arn.as_deref().or(self.route_arn.as_deref())
    }

    /// The resource template API Gateway routed the request to, when the
    /// event says: REST REQUEST and HTTP API 1.0 `resource`; HTTP API 2.0
    /// `routeKey` without its method (`None` for `$default`, which names no
    /// resource). TOKEN events carry none.
    pub fn routed_resource(&self) -> Option<&str> {
        let resource = match self.event_kind()? {
            EventKind::Token => None,
            EventKind::Request => self.resource.as_deref(),
            EventKind::HttpApiV2 => self.route_key.as_deref()?.split_once(' ').map(|(_, r)| r),
        };
        // Anything but a path (HTTP API 1.0 sends `$default`) names no resource.
        resource.filter(|r| r.starts_with('/'))
    }

    /// The `Authorization` value, or `Err(())` when several were sent.
    #[allow(clippy::result_unit_err)]
    pub fn authorization(&self) -> Result<Option<&str>, ()> {
        match self.event_kind() {
            Some(EventKind::Token) => Ok(self.authorization_token.as_deref()),
            Some(_) => {
                let h = &self.header_authorization;
                let m = &self.multi_header_authorization;
                if h.count > 1 || m.count > 1 || (h.value.is_some() && m.value.is_some() && h.value != m.value) {
                    return Err(());
                }
                Ok(h.value.as_deref().or(m.value.as_deref()).or(self.identity_source.as_deref()))
            }
            None => Ok(None),
        }
    }
}

/// Scans a header map (or multi-value map when `MULTI`) for Authorization.
struct HeaderScan<const MULTI: bool>(Found);

impl<'de, const MULTI: bool> Deserialize<'de> for HeaderScan<MULTI> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeadersVisitor::<MULTI>).map(HeaderScan)
    }
}

struct HeadersVisitor<const MULTI: bool>;

impl<'de, const MULTI: bool> Visitor<'de> for HeadersVisitor<MULTI> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !key.eq_ignore_ascii_case("authorization") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let values: Vec<String> = if MULTI {
                map.next_value::<Strings>()?.0
            } else {
                map.next_value::<Lenient>()?.0.into_iter().collect()
            };
            found.count += values.len();
            if found.value.is_none() {
                found.value = values.into_iter().next();
            }
        }
        Ok(found)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::default())
    }
}

/// The string members of an array (other members are counted as values but
/// dropped); `[]` for anything else.
struct Strings(Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut out = Vec::new();
                while let Some(Lenient(v)) = seq.next_element::<Lenient>()? {
                    // A non-string value still counts: two values are ambiguous.
                    out.push(v.unwrap_or_default());
                }
                Ok(Strings(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings(vec![v.to_owned()]))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strings, E> {
                Ok(Strings(Vec::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strings, E> {
                Ok(Strings(Vec::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strings, E> {
                Ok(Strings(Vec::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strings, E> {
                Ok(Strings(Vec::new()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Strings, E> {
                Ok(Strings(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strings, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Strings(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// HTTP API 2.0 sends an array (the first value is the Authorization header
/// when that is the identity source); 1.0 sends a string.
struct IdentitySource(Option<String>);

impl<'de> Deserialize<'de> for IdentitySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Strings(values) = Strings::deserialize(d)?;
        Ok(IdentitySource(values.into_iter().next().filter(|v| !v.is_empty())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_that_is_json_reads_without_error() {
        for text in [
            "[]",
            "5",
            "null",
            "\"x\"",
            "{}",
            r#"{"type":5,"headers":[1],"multiValueHeaders":{"authorization":7},"identitySource":{"a":1}}"#,
        ] {
            let e: AuthorizerEvent = serde_json::from_str(text).unwrap();
            assert_eq!(e.event_kind(), None, "{text}");
        }
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let e: AuthorizerEvent =
            serde_json::from_str(r#"{"type":"REQUEST","headers":{"AUTHORIZATION":"Bearer x"}}"#).unwrap();
        assert_eq!(e.authorization(), Ok(Some("Bearer x")));
    }

    #[test]
    fn several_authorization_values_are_ambiguous() {
        let e: AuthorizerEvent = serde_json::from_str(
            r#"{"type":"REQUEST","headers":{"Authorization":"Bearer a","authorization":"Bearer b"}}"#,
        )
        .unwrap();
        assert_eq!(e.authorization(), Err(()));
        let e: AuthorizerEvent =
            serde_json::from_str(r#"{"type":"REQUEST","multiValueHeaders":{"Authorization":["Bearer a", 5]}}"#)
                .unwrap();
        assert_eq!(e.authorization(), Err(()));
    }

    #[test]
    fn local_gateways_build_request_events_and_cache_keys() {
        let e = AuthorizerEvent::rest_request("arn:x/prod/GET/pets/1".into(), "/pets/{id}".into(), "Bearer t".into());
        assert_eq!(e.event_kind(), Some(EventKind::Request));
        assert_eq!(e.authorization(), Ok(Some("Bearer t")));
        assert_eq!(e.routed_resource(), Some("/pets/{id}"));
        assert_ne!(rest_cache_key("Bearer t", "GET", "/pets/{id}"), rest_cache_key("Bearer t", "GET", "/pets"));
        assert_ne!(rest_cache_key("a", "GET", "/x"), rest_cache_key("a\nGET", "", "/x"));
    }

    #[test]
    fn routed_resources() {
        let e: AuthorizerEvent =
            serde_json::from_str(r#"{"type":"REQUEST","resource":"/users/{id}","routeKey":"GET /x"}"#).unwrap();
        assert_eq!(e.routed_resource(), Some("/users/{id}"));
        let e: AuthorizerEvent = serde_json::from_str(
            r#"{"version":"2.0","type":"REQUEST","resource":"/x","routeKey":"ANY /files/{proxy+}"}"#,
        )
        .unwrap();
        assert_eq!(e.routed_resource(), Some("/files/{proxy+}"));
        let e: AuthorizerEvent = serde_json::from_str(r#"{"version":"2.0","routeKey":"$default"}"#).unwrap();
        assert_eq!(e.routed_resource(), None);
        let e: AuthorizerEvent = serde_json::from_str(r#"{"type":"TOKEN","resource":"/x"}"#).unwrap();
        assert_eq!(e.routed_resource(), None);
        let e: AuthorizerEvent =
            serde_json::from_str(r#"{"version":"1.0","type":"REQUEST","resource":"$default"}"#).unwrap();
        assert_eq!(e.routed_resource(), None);
    }

    #[test]
    fn identity_source_forms() {
        let v2: AuthorizerEvent =
            serde_json::from_str(r#"{"version":"2.0","type":"REQUEST","identitySource":["Bearer a"]}"#).unwrap();
        assert_eq!(v2.authorization(), Ok(Some("Bearer a")));
        let v1: AuthorizerEvent =
            serde_json::from_str(r#"{"version":"1.0","type":"REQUEST","identitySource":"Bearer b"}"#).unwrap();
        assert_eq!(v1.authorization(), Ok(Some("Bearer b")));
    }
}
