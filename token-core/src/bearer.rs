//! Reading `Authorization: Bearer <token>` (RFC 6750 2.1), shared by every
//! edge so they agree on what a credential is.

/// What an `Authorization` value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// A syntactically valid bearer token (not yet verified).
    Bearer(&'a str),
    /// No value, or another scheme: the request has no bearer credentials
    /// (answer with a bare `Bearer` challenge, RFC 6750 3.1).
    Missing,
    /// The Bearer scheme with no token, or characters a token cannot have.
    Malformed,
}

/// The characters of a `b64token` (RFC 6750 2.1) before its `=` padding: a
/// table, since every request's token is scanned byte by byte.
const B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    t
};

/// Parses one `Authorization` header value. The scheme is matched
/// case-insensitively (RFC 9110 11.1); the token must be a `b64token`.
///
/// ```
/// use token_core::{Credentials, parse_authorization};
/// assert_eq!(parse_authorization(Some("bearer abc.def.ghi")), Credentials::Bearer("abc.def.ghi"));
/// assert_eq!(parse_authorization(Some("Basic dXNlcjpw")), Credentials::Missing);
/// assert_eq!(parse_authorization(Some("Bearer a b")), Credentials::Malformed);
/// ```
pub fn parse_authorization(value: Option<&str>) -> Credentials<'_> {
    let Some(value) = value else { return Credentials::Missing };
    let value = value.trim_matches(' ');
    if value.is_empty() {
        return Credentials::Missing;
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Missing;
    }
    let token = rest.trim_start_matches(' ');
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)]);
    if valid { Credentials::Bearer(token) } else { Credentials::Malformed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive() {
        for v in ["Bearer a.b.c", "bearer a.b.c", "BEARER a.b.c", "Bearer   a.b.c", " Bearer a.b.c "] {
            assert_eq!(parse_authorization(Some(v)), Credentials::Bearer("a.b.c"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_nothing_are_missing() {
        for v in [None, Some(""), Some("   "), Some("Basic dXNlcjpwYXNz"), Some("Bearerx a.b.c"), Some("Token abc")] {
            assert_eq!(parse_authorization(v), Credentials::Missing, "{v:?}");
        }
    }

    #[test]
    fn malformed_bearer_values() {
        for v in ["Bearer", "Bearer a b", "Bearer a,b", "Bearer ==", "Bearer a\"b", "Bearer a\tb", "Bearer é"] {
            assert_eq!(parse_authorization(Some(v)), Credentials::Malformed, "{v:?}");
        }
    }

    #[test]
    fn padding_is_allowed_at_the_end_only() {
        assert_eq!(parse_authorization(Some("Bearer abc==")), Credentials::Bearer("abc=="));
        assert_eq!(parse_authorization(Some("Bearer a=bc")), Credentials::Malformed);
    }
}
