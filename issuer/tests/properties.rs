//! Property tests of the issuer's input rules: the refresh cookie (what we
//! set reads back, across other cookies, headers, spacing, quotes and
//! duplicates; any header is survived), email normalisation (idempotent,
//! case-insensitive, refusing what must be refused, never panicking),
//! password bounds and strict bodies. No services needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderValue, header};
use issuer::cookie::{REFRESH_COOKIE, clear_refresh_cookies, cookie_values, refresh_token, set_refresh_cookies};
use issuer::tokens::looks_like_refresh_token;
use issuer::validate::{MAX_EMAIL_LEN, check_password, credentials, normalize_email, password_strength};
use proptest::prelude::*;
use serde_json::json;

/// A refresh token as the issuer makes them: 43 base64url characters.
fn refresh_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{43}"
}

/// Another cookie a browser may send along: a name without `=`, `;` or
/// blanks, a value without `;`.
fn other_cookie() -> impl Strategy<Value = (String, String)> {
    ("[a-zA-Z][a-zA-Z0-9_-]{0,12}", "[!#-+\\--:<-~]{0,20}").prop_filter("not ours", |(n, _)| n != REFRESH_COOKIE)
}

/// The `name=value` a browser stores from a `Set-Cookie` value.
fn stored_pair(set_cookie: &HeaderValue) -> String {
    set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn headers(cookie_headers: &[String]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in cookie_headers {
        h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
    }
    h
}

/// A local part made of allowed atoms, and a domain of valid labels.
fn valid_email() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec("[a-zA-Z0-9+_-]{1,8}", 1..4),
        proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", 1..4),
        "[a-zA-Z]{2,6}",
    )
        .prop_map(|(local, labels, tld)| format!("{}@{}.{tld}", local.join("."), labels.join(".")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// The cookie we set, sent back by a browser among other cookies, in one
    /// or several `Cookie` headers, with any spacing, reads back exactly.
    #[test]
    fn the_cookie_we_set_reads_back(
        token in refresh_value(),
        prefix in prop_oneof![Just(String::new()), "/[a-z]{1,6}"],
        max_age in 0u64..100_000_000,
        before in proptest::collection::vec(other_cookie(), 0..4),
        after in proptest::collection::vec(other_cookie(), 0..4),
        spaces in 0usize..3,
        split in any::<bool>(),
        quoted in any::<bool>(),
    ) {
        let set = set_refresh_cookies(&prefix, &token, max_age);
        prop_assert_eq!(set.len(), 2);
        for (v, path) in set.iter().zip(["refresh", "logout"]) {
            let v = v.to_str().unwrap();
            let expected = format!("; Path={prefix}/{path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict");
            prop_assert!(v.ends_with(&expected), "{}", v);
        }
        let mut pair = stored_pair(&set[0]);
        prop_assert_eq!(&pair, &format!("{REFRESH_COOKIE}={token}"));
        if quoted {
            pair = format!("{REFRESH_COOKIE}=\"{token}\"");
        }
        let sep = format!(";{}", " ".repeat(spaces));
        let fmt = |list: &[(String, String)]| list.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>();
        let cookie_headers = if split {
            let mut all = fmt(&before);
            all.push(pair.clone());
            all.extend(fmt(&after));
            all
        } else {
            let mut all = fmt(&before);
            all.push(pair.clone());
            all.extend(fmt(&after));
            vec![all.join(&sep)]
        };
        let h = headers(&cookie_headers);
        prop_assert_eq!(refresh_token(&h), Some(token.as_str()));
        prop_assert_eq!(cookie_values(&h, REFRESH_COOKIE), vec![token.as_str()]);
        for (n, v) in before.iter().chain(&after) {
            prop_assert!(cookie_values(&h, n).contains(&v.trim()), "{}={}", n, v);
        }
    }

    /// With duplicates (browsers send one per matching path, most specific
    /// first), the first one shaped like a refresh token wins.
    #[test]
    fn duplicates_the_first_well_formed_wins(
        junk in proptest::collection::vec("[A-Za-z0-9_-]{0,42}|[A-Za-z0-9_-]{44,50}", 0..3),
        first in refresh_value(),
        second in refresh_value(),
    ) {
        let mut pairs: Vec<String> = junk.iter().map(|j| format!("{REFRESH_COOKIE}={j}")).collect();
        pairs.push(format!("{REFRESH_COOKIE}={first}"));
        pairs.push(format!("{REFRESH_COOKIE}={second}"));
        let h = headers(&[pairs.join("; ")]);
        prop_assert_eq!(refresh_token(&h), Some(first.as_str()));
        prop_assert_eq!(cookie_values(&h, REFRESH_COOKIE).len(), junk.len() + 2);
    }

    /// Any `Cookie` header at all (any visible ASCII, blanks, quotes,
    /// `=` and `;` anywhere, several headers): never a panic, values never
    /// span a `;`, blanks only inside quotes, and a token found is shaped
    /// like one.
    #[test]
    fn any_cookie_header_is_survived(values in proptest::collection::vec("[ -~\t]{0,80}", 0..4)) {
        let mut h = HeaderMap::new();
        for v in &values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        for name in [REFRESH_COOKIE, "a", ""] {
            for v in cookie_values(&h, name) {
                prop_assert!(!v.contains(';'));
                let quoted = h.get_all(header::COOKIE).iter().any(|x| x.as_bytes().contains(&b'"'));
                prop_assert!(v == v.trim() || quoted, "{:?}", v);
            }
        }
        if let Some(t) = refresh_token(&h) {
            prop_assert!(looks_like_refresh_token(t));
        }
    }

    /// Well-formed addresses are accepted, trimmed and lowercased; the
    /// result is a fixed point, and the ASCII case of the input does not
    /// matter (one account per address).
    #[test]
    fn emails_normalise_idempotently_and_case_insensitively(
        email in valid_email(),
        flips in proptest::collection::vec(any::<bool>(), 64),
        pad in "[ \t\n]{0,3}",
    ) {
        let normal = normalize_email(&format!("{pad}{email}{pad}")).unwrap();
        prop_assert_eq!(&normal, &email.to_lowercase());
        prop_assert_eq!(normalize_email(&normal).unwrap(), normal.clone());
        let flipped: String = email
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, f)| if *f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        prop_assert_eq!(normalize_email(&flipped).unwrap(), normal);
    }

    /// What must be refused is refused, whatever the rest looks like.
    #[test]
    fn malformed_emails_are_refused(email in valid_email(), kind in 0usize..9, junk in "[a-z]{1,8}") {
        let (local, domain) = email.rsplit_once('@').unwrap();
        let bad = match kind {
            0 => format!("{local}{domain}"),
            1 => format!("@{domain}"),
            2 => format!("{local}@"),
            3 => format!("{local} {junk}@{domain}"),
            4 => format!("{local}@{junk}"),
            5 => format!("{local}..{junk}@{domain}"),
            6 => format!("{local}@{domain}.123"),
            7 => format!("{}@{domain}", "a".repeat(65)),
            _ => format!("{local}@{}.{domain}", "b".repeat(MAX_EMAIL_LEN)),
        };
        prop_assert!(normalize_email(&bad).is_err(), "{:?}", bad);
    }

    /// Any string at all: no panic; anything accepted is a fixed point,
    /// lowercase, trimmed, bounded, with one `@` and no blanks or controls.
    #[test]
    fn any_string_as_email(raw in "\\PC{0,40}|[ -~]{0,300}") {
        if let Ok(e) = normalize_email(&raw) {
            prop_assert_eq!(normalize_email(&e).unwrap(), e.clone());
            prop_assert_eq!(e.to_lowercase(), e.clone());
            prop_assert!(e.len() <= MAX_EMAIL_LEN);
            prop_assert_eq!(e.matches('@').count(), 1);
            prop_assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    /// Passwords: 8 to 128 characters (not bytes), nothing else imposed.
    #[test]
    fn password_bounds(p in "\\PC{0,140}") {
        let n = p.chars().count();
        prop_assert_eq!(check_password(&p).is_ok(), (8..=128).contains(&n), "{} characters", n);
    }

    /// Bodies are exactly `{"email", "password"}`: any other member refuses them.
    #[test]
    fn strict_credential_bodies(email in valid_email(), password in "[ -~]{8,40}", extra in "[a-z_]{1,8}") {
        let ok = json!({"email": email, "password": password}).to_string();
        let c = credentials(ok.as_bytes()).unwrap();
        prop_assert_eq!(c.email, email.to_lowercase());
        prop_assert_eq!(c.password, password.clone());
        prop_assume!(extra != "email" && extra != "password");
        let more = json!({"email": email, "password": password, extra: true}).to_string();
        prop_assert_eq!(credentials(more.as_bytes()).unwrap_err().code(), "invalid_request");
        // serde's sequence form of the same struct is refused too.
        let seq = json!([email, password]).to_string();
        prop_assert_eq!(credentials(seq.as_bytes()).unwrap_err().code(), "invalid_request");
    }

    /// A control character (Unicode Cc) anywhere in either field is refused
    /// with a 400 naming the field, never echoing the value.
    #[test]
    fn control_characters_anywhere_are_refused(
        email in valid_email(),
        password in "[ -~]{8,40}",
        cc in prop_oneof![0u32..0x20, 0x7fu32..0xa0].prop_map(|c| char::from_u32(c).unwrap()),
        at in 0usize..64,
        in_password in any::<bool>(),
    ) {
        let insert = |s: &str| {
            let mut chars: Vec<char> = s.chars().collect();
            chars.insert(at % (chars.len() + 1), cc);
            chars.into_iter().collect::<String>()
        };
        let (e, p, field) =
            if in_password { (email.clone(), insert(&password), "password") } else { (insert(&email), password.clone(), "email") };
        let body = json!({"email": e, "password": p}).to_string();
        let err = credentials(body.as_bytes()).unwrap_err();
        prop_assert_eq!(err.code(), "invalid_request");
        let text = err.to_string();
        prop_assert!(text.contains(field) && text.contains("control"), "{}", text);
        prop_assert!(!text.contains(&password) && !text.contains(&email));
    }

    /// The strength check takes any string without panicking, and refuses
    /// every list entry whatever its case or added digits.
    #[test]
    fn strength_check_is_total_and_refuses_list_entries(
        any_pw in "\\PC{0,130}",
        rank in 0usize..30_000,
        digits in "[0-9]{0,3}",
        upper in any::<bool>(),
    ) {
        let _ = password_strength(&any_pw, "someone@example.com");
        let entry = include_str!("../data/common-passwords.txt").lines().nth(rank).unwrap();
        let mut pw = format!("{entry}{digits}");
        if upper {
            pw = pw.to_uppercase();
        }
        prop_assert!(password_strength(&pw, "someone@example.com").is_err(), "{} accepted", pw);
    }
}

#[test]
fn clearing_sets_both_paths_with_max_age_zero() {
    let clear = clear_refresh_cookies("/prod");
    assert_eq!(clear.len(), 2);
    for (v, path) in clear.iter().zip(["/prod/refresh", "/prod/logout"]) {
        assert_eq!(
            v.to_str().unwrap(),
            format!("{REFRESH_COOKIE}=; Path={path}; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
        );
    }
}
