//! Input validation: JSON bodies, email addresses, password lengths.

use serde::Deserialize;

use crate::error::ApiError;

/// Longest email address accepted (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Shortest password accepted, in characters (NIST SP 800-63B: at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters: bounds the hashing input.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The body of `/register` and `/login`, exactly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    email: String,
    password: String,
}

pub use crate::session::Credentials;

/// Is the media type `application/json` (parameters such as `charset` allowed)?
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    let media = v.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

/// Parses and validates a credentials body.
///
/// # Errors
/// [`ApiError::InvalidRequest`] for anything but a JSON object with exactly
/// the string fields `email` and `password`; [`ApiError::InvalidEmail`];
/// [`ApiError::InvalidPassword`].
pub fn credentials(body: &[u8]) -> Result<Credentials, ApiError> {
    if body.is_empty() {
        return Err(ApiError::InvalidRequest("the body must be a JSON object"));
    }
    // The error text is never echoed: serde's messages can quote the input.
    let raw: RawCredentials = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::InvalidRequest("the body must be an object with string fields email and password only")
        }
        _ => ApiError::InvalidRequest("the body is not valid JSON"),
    })?;
    let email = normalize_email(&raw.email)?;
    check_password(&raw.password)?;
    Ok(Credentials { email, password: raw.password })
}

/// Trims and lowercases an email address and checks its shape: one `@`, a
/// local part of at most 64 characters without spaces, control characters
/// or specials, and a domain of dot-separated labels (letters, digits,
/// hyphens; not starting or ending with a hyphen) with at least one dot.
///
/// # Errors
/// [`ApiError::InvalidEmail`].
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(ApiError::InvalidEmail);
    }
    let (local, domain) = email.rsplit_once('@').ok_or(ApiError::InvalidEmail)?;
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"\"(),:;<>@[\\]".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    if local_ok && domain_ok { Ok(email) } else { Err(ApiError::InvalidEmail) }
}

/// A password of 8 to 128 characters (Unicode scalar values). Nothing else
/// is imposed (no composition rules, as NIST SP 800-63B advises).
///
/// # Errors
/// [`ApiError::InvalidPassword`].
pub fn check_password(p: &str) -> Result<(), ApiError> {
    // Counting stops early: a huge password is not walked to the end.
    let n = p.chars().take(MAX_PASSWORD_CHARS + 1).count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) { Ok(()) } else { Err(ApiError::InvalidPassword) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Alice.Smith+tag@Example.COM \n").unwrap(), "alice.smith+tag@example.com");
        assert_eq!(normalize_email("josé@exämple.de").unwrap(), "josé@exämple.de");
    }

    #[test]
    fn malformed_emails_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@example",
            "a@@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@-example.com",
            "a@example-.com",
            "a@example..com",
            "a@.example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a\"b@example.com",
            "a@example.com\u{0}",
            "a\u{7}@example.com",
            "a@1.2.3.4",
            "a@[127.0.0.1]",
            long_local.as_str(),
            long.as_str(),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_bounds_count_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"é".repeat(128)).is_ok(), "128 two-byte characters");
        assert!(check_password(&"a".repeat(129)).is_err());
        assert!(check_password(&"a".repeat(1_000_000)).is_err());
        assert!(check_password("        ").is_ok(), "spaces are characters");
    }

    #[test]
    fn strict_json_bodies() {
        let ok = credentials(br#"{"email":" A@Example.com","password":"hunter2hunter2"}"#).unwrap();
        assert_eq!(ok.email, "a@example.com");
        assert!(!format!("{ok:?}").contains("hunter2"));
        let cases: [(&[u8], &str); 10] = [
            (b"", "invalid_request"),
            (b"not json", "invalid_request"),
            (b"[]", "invalid_request"),
            (br#"{"email":"a@example.com"}"#, "invalid_request"),
            (br#"{"email":"a@example.com","password":"hunter2hunter2","admin":true}"#, "invalid_request"),
            (br#"{"email":"a@example.com","password":12345678}"#, "invalid_request"),
            (br#"{"email":"a@example.com","password":"x","password":"hunter2hunter2"}"#, "invalid_request"),
            (br#"{"email":"a@example.com","password":"hunter2hunter2"} trailing"#, "invalid_request"),
            (br#"{"email":"nope","password":"hunter2hunter2"}"#, "invalid_email"),
            (br#"{"email":"a@example.com","password":"short"}"#, "invalid_password"),
        ];
        for (body, code) in cases {
            let err = credentials(body).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn json_content_type() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some("Application/JSON; charset=utf-8")));
        for bad in
            [None, Some(""), Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx")]
        {
            assert!(!is_json_content_type(bad), "{bad:?}");
        }
    }
}
