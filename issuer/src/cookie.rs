//! The refresh-token cookie: parsing `Cookie` headers, building `Set-Cookie`,
//! and the CSRF rules of the cookie routes.
//!
//! The cookie is `__Secure-refresh_token` with `Secure; HttpOnly;
//! SameSite=Strict` (RFC 6265bis). Its `Path` is limited to the refresh and
//! logout routes; a cookie has one path, so the same cookie is set twice,
//! once per route, and both are replaced or cleared together.

use http::{HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The cookie name. The `__Secure-` prefix makes browsers refuse it unless
/// it is `Secure` and set from a secure origin.
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";

/// The value of every `name` cookie across all `Cookie` headers, in order.
/// Tolerates several `Cookie` headers, blanks around `;` and `=`, double
/// quoted values and malformed pairs (skipped).
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for header in headers.get_all(http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((n, v)) = pair.split_once('=') else { continue };
            if n.trim() != name {
                continue;
            }
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            out.push(v);
        }
    }
    out
}

/// The refresh token sent with the request: the first `__Secure-refresh_token`
/// value shaped like a token (browsers send the most specific path first).
pub fn refresh_token(headers: &HeaderMap) -> Option<&str> {
    cookie_values(headers, REFRESH_COOKIE).into_iter().find(|v| crate::tokens::looks_like_refresh_token(v))
}

/// The route paths the cookie is scoped to, under `prefix`.
pub fn cookie_paths(prefix: &str) -> [String; 2] {
    [format!("{prefix}/refresh"), format!("{prefix}/logout")]
}

/// `Set-Cookie` values that store `token` for `max_age` seconds on both paths.
pub fn set_refresh_cookies(prefix: &str, token: &str, max_age: u64) -> Vec<HeaderValue> {
    cookie_paths(prefix)
        .iter()
        .filter_map(|path| {
            HeaderValue::from_str(&format!(
                "{REFRESH_COOKIE}={token}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
            ))
            .ok()
        })
        .collect()
}

/// `Set-Cookie` values that delete the cookie on both paths.
pub fn clear_refresh_cookies(prefix: &str) -> Vec<HeaderValue> {
    cookie_paths(prefix)
        .iter()
        .filter_map(|path| {
            HeaderValue::from_str(&format!(
                "{REFRESH_COOKIE}=; Path={path}; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
            ))
            .ok()
        })
        .collect()
}

/// The request's `Origin`, if it sent exactly one readable one.
fn origin(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all(http::header::ORIGIN).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| ApiError::CsrfRejected),
        (Some(_), Some(_)) => Err(ApiError::CsrfRejected),
    }
}

/// Is `origin` on the allowlist (compared as browsers serialise origins)?
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin.trim()))
}

/// The CSRF rule of the cookie routes (`/refresh`, `/logout`): an `Origin`
/// header, when present, must be on the allowlist (`null` never is);
/// without one, the request must carry a non-empty `X-Requested-With`, a
/// header no cross-site form can send and no cross-site script can send
/// without a CORS preflight this server does not grant.
///
/// # Errors
/// [`ApiError::CsrfRejected`].
pub fn check_csrf(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    match origin(headers)? {
        Some(o) if origin_allowed(o, allowed) => Ok(()),
        Some(_) => Err(ApiError::CsrfRejected),
        None => {
            let custom = headers.get("x-requested-with").and_then(|v| v.to_str().ok()).map(str::trim);
            if custom.is_some_and(|v| !v.is_empty()) { Ok(()) } else { Err(ApiError::CsrfRejected) }
        }
    }
}

/// The rule of the credential routes (`/register`, `/login`): a browser
/// request (one with `Origin`) must come from an allowed origin; clients
/// without `Origin` (apps, servers) are not browsers and pass.
///
/// # Errors
/// [`ApiError::CsrfRejected`].
pub fn check_origin_if_present(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    match origin(headers)? {
        Some(o) if !origin_allowed(o, allowed) => Err(ApiError::CsrfRejected),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_across_headers_spaces_and_quotes() {
        let h = headers(&[
            ("cookie", "a=1;b=2"),
            ("cookie", " theme = dark ;  __Secure-refresh_token = \"v1\" ; junk ; =x"),
            ("cookie", "__Secure-refresh_token=v2"),
        ]);
        assert_eq!(cookie_values(&h, REFRESH_COOKIE), vec!["v1", "v2"]);
        assert_eq!(cookie_values(&h, "theme"), vec!["dark"]);
        assert!(cookie_values(&h, "refresh_token").is_empty(), "prefix is part of the name");
    }

    #[test]
    fn picks_the_first_well_formed_token() {
        let h = headers(&[("cookie", &format!("{REFRESH_COOKIE}=garbage; {REFRESH_COOKIE}={TOKEN}"))]);
        assert_eq!(refresh_token(&h), Some(TOKEN));
        let h = headers(&[("cookie", &format!("{REFRESH_COOKIE}=short"))]);
        assert_eq!(refresh_token(&h), None);
        assert_eq!(refresh_token(&HeaderMap::new()), None);
    }

    #[test]
    fn set_cookie_attributes_and_paths() {
        let set = set_refresh_cookies("/prod", TOKEN, 2_592_000);
        assert_eq!(set.len(), 2);
        assert_eq!(
            set[0].to_str().unwrap(),
            format!("{REFRESH_COOKIE}={TOKEN}; Path=/prod/refresh; Max-Age=2592000; Secure; HttpOnly; SameSite=Strict")
        );
        assert!(set[1].to_str().unwrap().contains("Path=/prod/logout;"));
        let clear = clear_refresh_cookies("");
        assert!(clear[0].to_str().unwrap().starts_with(&format!("{REFRESH_COOKIE}=; Path=/refresh; Max-Age=0;")));
        assert!(clear[1].to_str().unwrap().contains("Path=/logout;"));
    }

    #[test]
    fn csrf_rules() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let ok = |h: HeaderMap| check_csrf(&h, &allowed).is_ok();
        assert!(ok(headers(&[("origin", "https://app.example.com")])));
        assert!(ok(headers(&[("origin", "https://APP.example.com")])));
        assert!(!ok(headers(&[("origin", "https://evil.example.com")])));
        assert!(!ok(headers(&[("origin", "null")])));
        assert!(!ok(headers(&[("origin", "https://app.example.com.evil.com")])));
        assert!(!ok(headers(&[("origin", "https://evil.example.com"), ("x-requested-with", "fetch")])));
        assert!(!ok(headers(&[("origin", "https://app.example.com"), ("origin", "https://app.example.com")])));
        assert!(ok(headers(&[("x-requested-with", "XMLHttpRequest")])));
        assert!(!ok(headers(&[("x-requested-with", "  ")])));
        assert!(!ok(HeaderMap::new()));
        assert!(check_csrf(&headers(&[("origin", "https://app.example.com")]), &[]).is_err());
    }

    #[test]
    fn credential_routes_check_origin_only_when_sent() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(check_origin_if_present(&HeaderMap::new(), &allowed).is_ok());
        assert!(check_origin_if_present(&headers(&[("origin", "https://app.example.com")]), &allowed).is_ok());
        assert!(check_origin_if_present(&headers(&[("origin", "https://evil.example")]), &allowed).is_err());
    }
}
