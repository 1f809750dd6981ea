//! Random identifiers and opaque refresh tokens.
//!
//! A refresh token is 32 bytes (256 bits) from the system random source,
//! base64url without padding (43 characters). Only its SHA-256, also
//! base64url, is ever stored.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Length of an encoded refresh token.
pub const REFRESH_TOKEN_LEN: usize = 43;

/// The system random source failed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("system random source failed")]
pub struct RandomError;

/// `N` bytes from the system random source: the issuer's one helper for
/// tokens, ids, key ids and salts.
///
/// # Errors
/// [`RandomError`] if the random source fails.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| RandomError)?;
    Ok(b)
}

/// A new refresh token: 256 random bits, base64url.
///
/// # Errors
/// [`RandomError`] if the random source fails.
pub fn new_refresh_token() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// A random identifier (user, family, `jti`, key id): 128 bits, base64url.
///
/// # Errors
/// [`RandomError`] if the random source fails.
pub fn random_id() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

/// The stored form of a refresh token: SHA-256, base64url.
pub fn hash_refresh_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Could `v` be a refresh token this issuer made? (Checked before any
/// store lookup.)
pub fn looks_like_refresh_token(v: &str) -> bool {
    v.len() == REFRESH_TOKEN_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_base64url_and_unique() {
        let a = new_refresh_token().unwrap();
        let b = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(looks_like_refresh_token(&a));
        assert!(!looks_like_refresh_token(&a[1..]));
        assert!(!looks_like_refresh_token(&format!("{}=", &a[1..])));
    }

    #[test]
    fn hash_is_sha256_base64url() {
        // SHA-256("abc"), RFC 6234 test vector, base64url.
        assert_eq!(hash_refresh_token("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
