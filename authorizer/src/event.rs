//! The three event shapes API Gateway sends an authorizer, read into one
//! lean struct: only the fields a decision needs are kept (headers are
//! scanned for `Authorization` without building a map).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// An authorizer event. Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    /// `TOKEN` or `REQUEST`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `2.0` for HTTP API payload 2.0, `1.0` for HTTP API payload 1.0, absent for REST.
    #[serde(default)]
    pub version: Option<String>,
    /// TOKEN events (and HTTP API 1.0): the header value.
    #[serde(default)]
    pub authorization_token: Option<String>,
    /// REST events and HTTP API 1.0.
    #[serde(default)]
    pub method_arn: Option<String>,
    /// HTTP API 2.0.
    #[serde(default)]
    pub route_arn: Option<String>,
    /// The `Authorization` header(s) found in `headers` / `multiValueHeaders`.
    #[serde(default, rename = "headers", deserialize_with = "authorization_in_headers")]
    pub header_authorization: Found,
    /// Same, from REST's `multiValueHeaders`.
    #[serde(default, rename = "multiValueHeaders", deserialize_with = "authorization_in_multi_headers")]
    pub multi_header_authorization: Found,
    /// HTTP API 2.0: the identity source values (an array); 1.0: a string.
    #[serde(default, deserialize_with = "identity_source")]
    pub identity_source: Option<String>,
}

/// Authorization header values found while scanning a header map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// The first value.
    pub value: Option<String>,
    /// How many values (several is ambiguous and refused).
    pub count: usize,
}

impl AuthorizerEvent {
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

fn authorization_in_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Found, D::Error> {
    d.deserialize_option(HeadersVisitor { multi: false })
}

fn authorization_in_multi_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Found, D::Error> {
    d.deserialize_option(HeadersVisitor { multi: true })
}

struct HeadersVisitor {
    multi: bool,
}

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a header map or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !key.eq_ignore_ascii_case("authorization") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let values: Vec<String> = if self.multi {
                map.next_value::<Option<Vec<String>>>()?.unwrap_or_default()
            } else {
                map.next_value::<Option<String>>()?.into_iter().collect()
            };
            found.count += values.len();
            if found.value.is_none() {
                found.value = values.into_iter().next();
            }
        }
        Ok(found)
    }
}

fn identity_source<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, an array of strings, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // The first identity source is the Authorization header when the
            // authorizer is configured with `$request.header.Authorization`.
            let first = seq.next_element::<String>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    d.deserialize_option(V)
}
