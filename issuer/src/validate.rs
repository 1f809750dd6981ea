//! Input validation: JSON bodies, email addresses, password lengths and
//! strength.

use std::collections::HashSet;
use std::sync::LazyLock;

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

/// A body type from a JSON object only. serde's derived struct also takes
/// the sequence form (`["a@example.com", "pw"]`); this visitor takes a map
/// and hands it to the derived code, which keeps refusing unknown, missing
/// and duplicate fields.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapOnly<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for MapOnly<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(MapOnly(std::marker::PhantomData)).map(ObjectOnly)
    }
}

/// Parses a body that must be a JSON object of exactly `T`'s fields;
/// `shape` says which, for the error.
fn strict_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &'static str) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::InvalidRequest("the body must be a JSON object"));
    }
    // The error text is never echoed: serde's messages can quote the input.
    let ObjectOnly(v) = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(shape),
        _ => ApiError::InvalidRequest("the body is not valid JSON"),
    })?;
    Ok(v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    current_password: String,
    new_password: String,
}

/// Longest link token accepted (a reset token is a user id, `.` and 43
/// characters).
const MAX_LINK_TOKEN: usize = 128;

fn link_token(token: String) -> Result<String, ApiError> {
    if token.is_empty() || token.len() > MAX_LINK_TOKEN || has_control(&token) {
        return Err(ApiError::InvalidLink);
    }
    Ok(token)
}

/// The body of `/password/forgot`: `{"email"}`, normalised.
///
/// # Errors
/// [`ApiError::InvalidRequest`], [`ApiError::InvalidEmail`].
pub fn email_only(body: &[u8]) -> Result<String, ApiError> {
    let b: EmailBody = strict_body(body, "the body must be an object with the string field email only")?;
    if has_control(&b.email) {
        return Err(ApiError::InvalidRequest("email must not contain control characters"));
    }
    normalize_email(&b.email)
}

/// The body of `/verify-email`: `{"token"}`.
///
/// # Errors
/// [`ApiError::InvalidRequest`]; [`ApiError::InvalidLink`] for a token
/// that cannot be one (empty, too long, control characters).
pub fn token_only(body: &[u8]) -> Result<String, ApiError> {
    let b: TokenBody = strict_body(body, "the body must be an object with the string field token only")?;
    link_token(b.token)
}

/// The body of `/password/reset`: `{"token", "password"}`; the password
/// within the length bounds.
///
/// # Errors
/// As [`token_only`], and [`ApiError::InvalidPassword`].
pub fn reset_body(body: &[u8]) -> Result<(String, String), ApiError> {
    let b: ResetBody = strict_body(body, "the body must be an object with the string fields token and password only")?;
    if has_control(&b.password) {
        return Err(ApiError::InvalidRequest("password must not contain control characters"));
    }
    check_password(&b.password)?;
    Ok((link_token(b.token)?, b.password))
}

/// The body of `/password/change`: `{"current_password", "new_password"}`,
/// both within the length bounds.
///
/// # Errors
/// [`ApiError::InvalidRequest`], [`ApiError::InvalidPassword`].
pub fn change_body(body: &[u8]) -> Result<(String, String), ApiError> {
    let b: ChangeBody =
        strict_body(body, "the body must be an object with the string fields current_password and new_password only")?;
    if has_control(&b.current_password) || has_control(&b.new_password) {
        return Err(ApiError::InvalidRequest("passwords must not contain control characters"));
    }
    check_password(&b.current_password)?;
    check_password(&b.new_password)?;
    Ok((b.current_password, b.new_password))
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
/// the string fields `email` and `password`, or for control characters in
/// either; [`ApiError::InvalidEmail`]; [`ApiError::InvalidPassword`].
pub fn credentials(body: &[u8]) -> Result<Credentials, ApiError> {
    let raw: RawCredentials =
        strict_body(body, "the body must be an object with string fields email and password only")?;
    // Before trimming: a trailing newline is a control character too.
    if has_control(&raw.email) {
        return Err(ApiError::InvalidRequest("email must not contain control characters"));
    }
    if has_control(&raw.password) {
        return Err(ApiError::InvalidRequest("password must not contain control characters"));
    }
    let email = normalize_email(&raw.email)?;
    check_password(&raw.password)?;
    Ok(Credentials { email, password: raw.password })
}

/// Any Unicode control character (general category Cc: U+0000-U+001F,
/// U+007F-U+009F)?
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The 30,000 most common passwords, one per line, lowercase (see
/// `issuer/data/README.md` for the source and licence).
static COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS_TXT.lines().map(str::trim).filter(|l| !l.is_empty()).collect());

/// How many passwords the shipped list holds.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// Why a password is too weak to accept. The text is for the client: it
/// never contains the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// It is on the list of common (breached) passwords.
    Common,
    /// It is a common password with digits or symbols added around it, or
    /// letters swapped for look-alike digits and symbols.
    CommonVariant,
    /// It contains the email address or its local part.
    ContainsEmail,
    /// It has fewer than [`MIN_DISTINCT_CHARS`] different characters.
    Repetitive,
}

/// Fewest different characters a password must have.
pub const MIN_DISTINCT_CHARS: usize = 5;

/// Most digits, symbols or spaces taken off each end of a password to find
/// a common one inside.
const MAX_PADDING: usize = 6;

impl Weakness {
    /// A sentence for the client.
    pub fn reason(self) -> &'static str {
        match self {
            Weakness::Common => "password is one of the most common passwords; choose another",
            Weakness::CommonVariant => {
                "password is a common password with a few characters added or swapped; choose another"
            }
            Weakness::ContainsEmail => "password must not contain the email address",
            Weakness::Repetitive => "password uses too few different characters",
        }
    }
}

/// Look-alike substitutions undone before the list lookup (`p@ssw0rd`).
fn unleet(s: &str, one: char) -> String {
    s.chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '!' => one,
            '3' => 'e',
            '$' | '5' => 's',
            '7' => 't',
            c => c,
        })
        .collect()
}

/// Checks a new password's strength, offline: refused when it is on the
/// shipped list of common passwords (also after lowercasing, after taking
/// up to 6 digits, symbols or spaces off either end, and after undoing
/// look-alike substitutions), contains the email address or its local part
/// (3 characters or more), or has fewer than [`MIN_DISTINCT_CHARS`]
/// different characters. Called at registration and at any password change;
/// `email` is the normalised address. Costs microseconds; the list is
/// built on first use.
///
/// # Errors
/// The [`Weakness`] found first.
pub fn password_strength(password: &str, email: &str) -> Result<(), Weakness> {
    let lower = password.to_lowercase();
    let list = &*COMMON_PASSWORDS;
    if list.contains(lower.as_str()) {
        return Err(Weakness::Common);
    }
    let local = email.rsplit_once('@').map_or(email, |(l, _)| l);
    if lower.contains(email) || (local.chars().count() >= 3 && lower.contains(local)) {
        return Err(Weakness::ContainsEmail);
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(Weakness::Repetitive);
    }
    // Every core left after taking up to MAX_PADDING digits, symbols or
    // spaces off either end (`dragon2024!`, `anna1987` + `0`), as written
    // and with look-alikes undone.
    let chars: Vec<char> = lower.chars().collect();
    let is_pad = |c: &char| c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace();
    let lead = chars.iter().take_while(|c| is_pad(c)).count().min(MAX_PADDING);
    let trail = chars.iter().rev().take_while(|c| is_pad(c)).count().min(MAX_PADDING);
    for i in 0..=lead {
        for j in 0..=trail {
            let Some(core) = chars.get(i..chars.len().saturating_sub(j)) else { continue };
            if core.len() < 4 {
                continue;
            }
            let core: String = core.iter().collect();
            if [unleet(&core, 'i'), unleet(&core, 'l'), core].iter().any(|c| list.contains(c.as_str())) {
                return Err(Weakness::CommonVariant);
            }
        }
    }
    Ok(())
}

/// [`password_strength`] as the API error (400 `weak_password`).
///
/// # Errors
/// [`ApiError::WeakPassword`] with the reason.
pub fn check_password_strength(password: &str, email: &str) -> Result<(), ApiError> {
    password_strength(password, email).map_err(|w| ApiError::WeakPassword(w.reason()))
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
    fn only_objects_are_credentials() {
        // serde's sequence form of a struct, and other non-objects.
        for body in [
            &br#"["a@example.com","hunter2hunter2"]"#[..],
            br#"  ["a@example.com","hunter2hunter2"]"#,
            br#""a@example.com""#,
            b"42",
            b"null",
        ] {
            let err = credentials(body).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{}", String::from_utf8_lossy(body));
        }
        // Positive control: the same values as an object, with whitespace.
        assert!(credentials(b" {\n \"password\": \"hunter2hunter2\", \"email\": \"a@example.com\" } ").is_ok());
    }

    #[test]
    fn control_characters_are_refused_by_field_without_echo() {
        for (email, password, field) in [
            ("a@example.com\n", "hunter2hunter2", "email"),
            ("\ta@example.com", "hunter2hunter2", "email"),
            ("a@exam\u{0}ple.com", "hunter2hunter2", "email"),
            ("a@example.com", "hunter2\u{0}hunter2", "password"),
            ("a@example.com", "hunter2hunter2\n", "password"),
            ("a@example.com", "hunter2\u{7f}hunter2", "password"),
            ("a@example.com", "hunter2\u{85}hunter2", "password"),
            ("a@example.com", "hunter2\u{9f}hunter2", "password"),
        ] {
            let body = serde_json::json!({"email": email, "password": password}).to_string();
            let err = credentials(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{email:?} {password:?}");
            let text = err.to_string();
            assert!(text.contains(field) && text.contains("control characters"), "{text}");
            assert!(!text.contains("hunter2") && !text.contains("example"), "no echo: {text}");
        }
        // Positive control: other non-ASCII (not Cc) is fine, inner spaces too.
        let body = serde_json::json!({"email": " a@example.com ", "password": "hünter2 hunter\u{a0}2 ✓"}).to_string();
        assert!(credentials(body.as_bytes()).is_ok());
    }

    #[test]
    fn common_passwords_are_weak() {
        assert_eq!(common_password_count(), 30_000);
        for (pw, why) in [
            ("password", Weakness::Common),
            ("PASSWORD", Weakness::Common),
            ("12345678", Weakness::Common),
            ("qwertyuiop", Weakness::Common),
            ("iloveyou", Weakness::Common),
            ("password123!", Weakness::CommonVariant),
            ("!!dragon2024", Weakness::CommonVariant),
            ("P@ssw0rd", Weakness::Common),
            ("P@55w0rd!", Weakness::CommonVariant),
            ("Sunshine!!", Weakness::CommonVariant),
            ("aaaaaaaaaaaa", Weakness::Repetitive),
            ("abababab1212", Weakness::Repetitive),
            ("alice.smith-secret", Weakness::ContainsEmail),
            ("my ALICE.SMITH@example.com", Weakness::ContainsEmail),
        ] {
            assert_eq!(password_strength(pw, "alice.smith@example.com"), Err(why), "{pw}");
        }
        // Positive controls: passphrases and random strings pass.
        for ok in ["correct horse battery staple", "x7$Qm!9zLp", "hunter2hunter2 is long", "Tr0ub4dor&3-extra"] {
            assert_eq!(password_strength(ok, "alice.smith@example.com"), Ok(()), "{ok}");
        }
        // A short local part is not matched (it would refuse too much).
        assert_eq!(password_strength("al-is-my-dog-rex", "al@example.com"), Ok(()));
    }

    #[test]
    fn weak_password_error_says_why_without_the_password() {
        let err = check_password_strength("baseball", "a@example.com").unwrap_err();
        assert_eq!(err.code(), "weak_password");
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        let resp = err.into_response();
        let body = String::from_utf8_lossy(&resp.body).into_owned();
        assert!(body.contains("common"), "{body}");
        assert!(!body.contains("baseball"), "{body}");
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
