//! What a verified access token tells the caller.

use std::sync::Arc;

use bytes::Bytes;

use crate::revocation_set::RevocationIds;

/// A token that passed every check. Cheap to share: edges hold it in an `Arc`.
#[derive(Debug)]
pub struct VerifiedToken {
    pub(crate) issuer: Arc<str>,
    pub(crate) sub: Box<str>,
    pub(crate) jti: Box<str>,
    pub(crate) scope: Box<str>,
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    pub(crate) nbf: Option<u64>,
    pub(crate) claims: Bytes,
    /// Computed once at verification, so a cache hit pays only the lookups.
    pub(crate) revocation: RevocationIds,
}

impl VerifiedToken {
    /// `iss`: one of the configured trusted issuers.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`: the user.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `jti`: the token's unique id.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// `scope` as sent: space-separated, empty when absent.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The scopes, one by one (RFC 6749 3.3: separated by spaces).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Does the token carry every scope in `required`?
    pub fn has_scopes<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> bool {
        required.into_iter().all(|r| self.scopes().any(|s| s == r))
    }

    /// `client_id`, when present.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> u64 {
        self.exp
    }

    /// `iat`, seconds since the epoch.
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// `nbf`, when present.
    pub fn nbf(&self) -> Option<u64> {
        self.nbf
    }

    /// The claims set exactly as the token carried it (JSON).
    pub fn claims_json(&self) -> &Bytes {
        &self.claims
    }

    /// The ids the revocation set knows this token by (`sid`, `sub`).
    pub fn revocation_ids(&self) -> &RevocationIds {
        &self.revocation
    }

    /// Approximate bytes held, for bounding the cache by memory.
    pub(crate) fn weight(&self) -> u32 {
        // Struct, Arc header and the cache's own per-entry bookkeeping.
        const OVERHEAD: usize = 256;
        let n = OVERHEAD
            + self.sub.len()
            + self.jti.len()
            + self.scope.len()
            + self.client_id.as_ref().map_or(0, |c| c.len())
            + self.claims.len();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: &str) -> VerifiedToken {
        VerifiedToken {
            issuer: "i".into(),
            sub: "s".into(),
            jti: "j".into(),
            scope: scope.into(),
            client_id: None,
            exp: 0,
            iat: 0,
            nbf: None,
            claims: Bytes::new(),
            revocation: RevocationIds::of("s", None),
        }
    }

    #[test]
    fn scopes_split_on_spaces_and_ignore_repeats() {
        let t = token("read  write admin:all ");
        assert_eq!(t.scopes().collect::<Vec<_>>(), vec!["read", "write", "admin:all"]);
        assert!(t.has_scopes(["read", "admin:all"]));
        assert!(!t.has_scopes(["read", "delete"]));
        assert!(t.has_scopes([]));
    }

    #[test]
    fn scope_match_is_exact_not_prefix() {
        let t = token("read:all");
        assert!(!t.has_scopes(["read"]));
        assert!(!token("").has_scopes(["read"]));
    }
}
