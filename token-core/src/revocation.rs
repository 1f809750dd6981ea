//! The revocation feed's contract, shared by the issuer (which writes it) and
//! every verifier (which follows it).
//!
//! An access token is revoked when its session (`sid`, the refresh-token
//! family) is revoked, or when it was issued before its subject's revocation
//! time (logout-all, refresh-token reuse, later a password change). Events
//! live only for the access-token lifetime plus leeway: after that the tokens
//! they cover have expired anyway.
//!
//! The feed names sessions and subjects by [`RevocationId`]: the first 16
//! bytes of SHA-256 over a tag and the identifier, never the identifier in
//! clear. The issuer and the verifiers compute it with the same functions
//! here.
//!
//! # Wire format
//!
//! `GET {issuer}/revocations?after={cursor}&limit={n}` answers a
//! [`FeedPage`] as JSON:
//!
//! ```json
//! {"events": [
//!    {"kind": "session", "id": "q0Wm6D3Zb8Y2q1Xj0l3b1g", "until": 1900000960},
//!    {"kind": "subject", "id": "3nQ0yQm8dF7sYh2b5bq2WA", "before": 1900000001, "until": 1900000961}
//!  ],
//!  "next": "0000019337a1f2c0.8c1d", "more": false, "as_of_ms": 1900000000000}
//! ```
//!
//! - `after` is absent on the first fetch (everything still live) and then
//!   the previous page's `next`. Cursors are opaque to verifiers.
//! - `more: true` means another page follows at once; with `more: false` the
//!   listing is complete up to `as_of_ms` (the issuer's clock), which is
//!   what the feed's lag is measured from.
//! - `until`: the entry can be dropped after this time (seconds).
//! - `before` (subject events): tokens of the subject with `iat < before`
//!   are revoked.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The path of the feed under the issuer's base URL.
pub const FEED_PATH: &str = "/revocations";

/// The largest page an issuer serves and a verifier asks for.
pub const MAX_PAGE: usize = 1000;

/// The feed URL of an issuer: `{issuer}/revocations`.
pub fn feed_url_of(issuer: &str) -> String {
    format!("{}{FEED_PATH}", issuer.trim_end_matches('/'))
}

/// A session or subject as the feed names it: 16 bytes of SHA-256 over a
/// tag and the identifier. Serialized as unpadded base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevocationId(pub [u8; 16]);

impl RevocationId {
    /// The id of session (`sid`) `sid`.
    pub fn session(sid: &str) -> Self {
        Self::tagged(b"sid", sid)
    }

    /// The id of subject (`sub`) `sub`.
    pub fn subject(sub: &str) -> Self {
        Self::tagged(b"sub", sub)
    }

    fn tagged(tag: &[u8], value: &str) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(tag);
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let d = ctx.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        Self(out)
    }
}

impl fmt::Debug for RevocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RevocationId({self})")
    }
}

impl fmt::Display for RevocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 22];
        let n = URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for RevocationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RevocationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 16];
        // 16 bytes are exactly 22 unpadded base64url characters.
        if s.len() != 22 {
            return Err(serde::de::Error::custom("revocation id: not 22 base64url characters"));
        }
        let mut buf = [0u8; 18];
        let n = URL_SAFE_NO_PAD
            .decode_slice(s.as_bytes(), &mut buf)
            .map_err(|_| serde::de::Error::custom("revocation id: not base64url"))?;
        if n != 16 {
            return Err(serde::de::Error::custom("revocation id: not 16 bytes"));
        }
        out.copy_from_slice(&buf[..16]);
        Ok(Self(out))
    }
}

/// One revocation event on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FeedEvent {
    /// Every token of one session (`sid`).
    Session {
        /// [`RevocationId::session`] of the `sid`.
        id: RevocationId,
        /// Drop the entry after this time (seconds since the epoch).
        until: u64,
    },
    /// Every token of one subject issued before `before`.
    Subject {
        /// [`RevocationId::subject`] of the `sub`.
        id: RevocationId,
        /// Tokens with `iat < before` are revoked (seconds since the epoch).
        before: u64,
        /// Drop the entry after this time (seconds since the epoch).
        until: u64,
    },
}

impl FeedEvent {
    /// When the entry can be dropped.
    pub fn until(&self) -> u64 {
        match *self {
            Self::Session { until, .. } | Self::Subject { until, .. } => until,
        }
    }
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedPage {
    /// Events after the requested cursor, oldest first.
    pub events: Vec<FeedEvent>,
    /// The cursor to ask for next (`after`).
    pub next: String,
    /// Another page follows at once.
    pub more: bool,
    /// With `more: false`, the listing is complete up to this time
    /// (milliseconds since the epoch, the issuer's clock).
    pub as_of_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_tagged_so_a_sid_never_matches_a_sub() {
        assert_ne!(RevocationId::session("x"), RevocationId::subject("x"));
        assert_eq!(RevocationId::session("x"), RevocationId::session("x"));
        assert_ne!(RevocationId::session("x"), RevocationId::session("y"));
    }

    #[test]
    fn wire_round_trip_and_strictness() {
        let page = FeedPage {
            events: vec![
                FeedEvent::Session { id: RevocationId::session("f1"), until: 10 },
                FeedEvent::Subject { id: RevocationId::subject("u1"), before: 5, until: 11 },
            ],
            next: "c".into(),
            more: false,
            as_of_ms: 7,
        };
        let json = serde_json::to_string(&page).unwrap();
        assert!(!json.contains("f1") && !json.contains("u1"), "identifiers in clear: {json}");
        assert_eq!(serde_json::from_str::<FeedPage>(&json).unwrap(), page);
        for bad in [
            r#"{"kind":"session","id":"short","until":1}"#,
            r#"{"kind":"session","id":"AAAAAAAAAAAAAAAAAAAAA!","until":1}"#,
            r#"{"kind":"other","id":"AAAAAAAAAAAAAAAAAAAAAA","until":1}"#,
            r#"{"kind":"subject","id":"AAAAAAAAAAAAAAAAAAAAAA","until":1}"#,
            r#"{"kind":"session","id":"AAAAAAAAAAAAAAAAAAAAAA","until":1,"x":2}"#,
        ] {
            assert!(serde_json::from_str::<FeedEvent>(bad).is_err(), "accepted {bad}");
        }
        let ok: FeedEvent =
            serde_json::from_str(r#"{"kind":"session","id":"AAAAAAAAAAAAAAAAAAAAAA","until":1}"#).unwrap();
        assert_eq!(ok, FeedEvent::Session { id: RevocationId([0; 16]), until: 1 });
    }

    #[test]
    fn feed_url_follows_the_issuer() {
        assert_eq!(feed_url_of("https://a.example/"), "https://a.example/revocations");
        assert_eq!(feed_url_of("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x/revocations");
    }
}
