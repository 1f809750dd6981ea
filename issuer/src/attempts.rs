//! Login attempt accounting: which counters one login attempt takes, and
//! how they are keyed. HTTP-free; the session code calls
//! [`Store::take_attempt`](crate::store::Store::take_attempt) with
//! [`AttemptKeys::counters`] before any password hashing.
//!
//! Three counters per attempt, each a fixed window:
//!
//! | index | counts | default | when it is full |
//! |---|---|---|---|
//! | 0 [`ACCOUNT_ADDRESS`] | one account from one client address | 5 per 15 min | that address is locked out of that account until the window ends; a success clears it |
//! | 1 [`ADDRESS`] | one client address across all accounts (spraying) | 50 per 15 min | that address is refused for every account |
//! | 2 [`ACCOUNT`] | one account from all addresses | 20 per minute | attempts slow down to that rate: the account is never locked for long, whoever attacks it |
//!
//! Keys are HMAC-SHA256 (aws-lc-rs) under a server secret of the
//! normalised email, the address, or both, so unknown emails cost the same
//! work as known ones and the store holds no email or address. IPv6
//! addresses count per /64 (one subscriber's usual allocation).

use std::net::IpAddr;

use aws_lc_rs::hmac;

use crate::store::AttemptCounter;

/// Index of the account-and-address counter in [`AttemptKeys::counters`].
pub const ACCOUNT_ADDRESS: usize = 0;
/// Index of the per-address counter.
pub const ADDRESS: usize = 1;
/// Index of the per-account counter (the slow-down ceiling).
pub const ACCOUNT: usize = 2;

/// The client's address, as the edge saw it: the socket peer locally, API
/// Gateway's `requestContext` source IP on Lambda, a trusted proxy header
/// only where configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// An address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) counts as IPv4.
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => ClientAddr(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
            v4 => ClientAddr(v4),
        }
    }

    /// Parses an address as API Gateway or a proxy header gives it.
    pub fn parse(s: &str) -> Option<Self> {
        s.trim().parse::<IpAddr>().ok().map(Self::new)
    }

    /// The client of a local server: the socket peer, or, only when a
    /// trusted proxy header is configured (`ISSUER_CLIENT_IP_HEADER`), the
    /// address that proxy appended: the last entry of the header (a client
    /// can put anything before it). Without the header, or with garbage in
    /// it, the peer (the proxy itself) is the client.
    pub fn from_peer(peer: IpAddr, headers: &http::HeaderMap, trusted_header: Option<&http::HeaderName>) -> Self {
        trusted_header
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(Self::parse)
            .unwrap_or_else(|| Self::new(peer))
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// What is counted: the IPv4 address, or the IPv6 /64.
    fn bucket(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

/// The limits (`ISSUER_LOGIN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Attempts on one account from one address per `window_secs`.
    pub per_account_address: u32,
    /// Attempts from one address, all accounts, per `window_secs`.
    pub per_address: u32,
    /// Window of the two counters above.
    pub window_secs: u64,
    /// Attempts on one account, all addresses, per `account_window_secs`.
    pub per_account: u32,
    /// Window of the per-account counter: short, so it slows down rather
    /// than locks.
    pub account_window_secs: u64,
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        AttemptPolicy {
            per_account_address: 5,
            per_address: 50,
            window_secs: 900,
            per_account: 20,
            account_window_secs: 60,
        }
    }
}

/// The keyed hash that names counters. `Debug` never prints the key.
pub struct AttemptKeys {
    key: hmac::Key,
}

impl std::fmt::Debug for AttemptKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptKeys([redacted])")
    }
}

impl AttemptKeys {
    /// Keys under `secret` (32 bytes or more of secret material: the
    /// `ISSUER_ATTEMPT_KEY` setting, or derived from the signing-key ring).
    pub fn new(secret: &[u8]) -> Self {
        AttemptKeys { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// Keys derived from other secret material (the signing-key ring's
    /// private keys, which exist on every deployment: Secrets Manager on
    /// AWS, the 0600 key file locally), under a label of their own so the
    /// derived key says nothing about the material.
    pub fn derive(material: &[u8]) -> Self {
        let k = hmac::Key::new(hmac::HMAC_SHA256, b"issuer attempt counters v1");
        Self::new(hmac::sign(&k, material).as_ref())
    }

    fn tag(&self, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            // Length-prefixed: no two part lists hash alike.
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, ctx.sign().as_ref())
    }

    /// The three counters of a login attempt on the normalised `email` from
    /// `addr`, in the order [`ACCOUNT_ADDRESS`], [`ADDRESS`], [`ACCOUNT`].
    pub fn counters(&self, policy: &AttemptPolicy, email: &str, addr: &ClientAddr) -> [AttemptCounter; 3] {
        let bucket = addr.bucket();
        [
            AttemptCounter {
                key: self.tag(&[b"account+address", email.as_bytes(), bucket.as_bytes()]),
                limit: policy.per_account_address,
                window_secs: policy.window_secs,
            },
            AttemptCounter {
                key: self.tag(&[b"address", bucket.as_bytes()]),
                limit: policy.per_address,
                window_secs: policy.window_secs,
            },
            AttemptCounter {
                key: self.tag(&[b"account", email.as_bytes()]),
                limit: policy.per_account,
                window_secs: policy.account_window_secs,
            },
        ]
    }
}

/// Index of the per-client counter in [`AttemptKeys::recovery_counters`].
pub const RECOVERY_CLIENT: usize = 0;
/// Index of the per-recipient counter in [`AttemptKeys::recovery_counters`].
pub const RECOVERY_MAIL: usize = 1;

impl AttemptKeys {
    /// The counters of a request on the recovery routes (sign-up,
    /// verification, reset request, reset) from `addr`: the client's
    /// ([`RECOVERY_CLIENT`]), and, for a request that mails `recipient`,
    /// the recipient's ([`RECOVERY_MAIL`]). Keyed like the login counters,
    /// under labels of their own.
    pub fn recovery_counters(
        &self,
        limits: &crate::config::RecoveryLimits,
        addr: &ClientAddr,
        recipient: Option<&str>,
    ) -> Vec<AttemptCounter> {
        let mut counters = vec![AttemptCounter {
            key: self.tag(&[b"recovery-client", addr.bucket().as_bytes()]),
            limit: limits.per_client,
            window_secs: limits.window_secs,
        }];
        if let Some(email) = recipient {
            counters.push(AttemptCounter {
                key: self.tag(&[b"mail-to", email.as_bytes()]),
                limit: limits.mail_per_address,
                window_secs: limits.window_secs,
            });
        }
        counters
    }

    /// The counter of password resets of one account (the normalised
    /// `email`), taken once a reset link checks out: at most
    /// `limits.mail_per_address` resets of an account per window, whoever
    /// holds its links.
    pub fn reset_counter(&self, limits: &crate::config::RecoveryLimits, email: &str) -> AttemptCounter {
        AttemptCounter {
            key: self.tag(&[b"reset-account", email.as_bytes()]),
            limit: limits.mail_per_address,
            window_secs: limits.window_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ClientAddr {
        ClientAddr::parse(s).unwrap()
    }

    #[test]
    fn counters_are_keyed_hashes_of_what_they_count() {
        let keys = AttemptKeys::new(&[7u8; 32]);
        let p = AttemptPolicy::default();
        let a = keys.counters(&p, "alice@example.com", &addr("192.0.2.1"));
        let b = keys.counters(&p, "alice@example.com", &addr("192.0.2.2"));
        let c = keys.counters(&p, "bob@example.com", &addr("192.0.2.1"));
        assert_ne!(a[ACCOUNT_ADDRESS].key, b[ACCOUNT_ADDRESS].key, "another address, another lock");
        assert_ne!(a[ADDRESS].key, b[ADDRESS].key);
        assert_eq!(a[ACCOUNT].key, b[ACCOUNT].key, "the account counter spans addresses");
        assert_eq!(a[ADDRESS].key, c[ADDRESS].key, "the address counter spans accounts");
        assert_ne!(a[ACCOUNT].key, c[ACCOUNT].key);
        for k in a.iter().chain(&c) {
            assert!(!k.key.contains("alice") && !k.key.contains("192.0.2") && !k.key.contains('#'), "{}", k.key);
            assert_eq!(k.key.len(), 43);
        }
        // Another secret, other keys.
        let other = AttemptKeys::new(&[8u8; 32]).counters(&p, "alice@example.com", &addr("192.0.2.1"));
        assert_ne!(other[ACCOUNT].key, a[ACCOUNT].key);
        assert_eq!((a[0].limit, a[1].limit, a[2].limit), (5, 50, 20));
        assert_eq!((a[0].window_secs, a[1].window_secs, a[2].window_secs), (900, 900, 60));
        assert!(!format!("{keys:?}").contains('7'));
    }

    #[test]
    fn recovery_counters_have_labels_of_their_own() {
        let keys = AttemptKeys::new(&[7u8; 32]);
        let limits = crate::config::RecoveryLimits::default();
        let a = keys.recovery_counters(&limits, &addr("192.0.2.1"), Some("alice@example.com"));
        let login = keys.counters(&AttemptPolicy::default(), "alice@example.com", &addr("192.0.2.1"));
        assert_eq!(a.len(), 2);
        assert!(login.iter().all(|l| a.iter().all(|r| r.key != l.key)), "not the login counters");
        assert_eq!((a[RECOVERY_CLIENT].limit, a[RECOVERY_MAIL].limit, a[0].window_secs), (20, 5, 3600));
        let b = keys.recovery_counters(&limits, &addr("192.0.2.2"), Some("alice@example.com"));
        assert_eq!(a[RECOVERY_MAIL].key, b[RECOVERY_MAIL].key, "the recipient counter spans clients");
        assert_ne!(a[RECOVERY_CLIENT].key, b[RECOVERY_CLIENT].key);
        assert_eq!(keys.recovery_counters(&limits, &addr("192.0.2.1"), None), a[..1].to_vec());
        let reset = keys.reset_counter(&limits, "alice@example.com");
        assert!(a.iter().all(|c| c.key != reset.key), "a label of its own");
        assert_eq!((reset.limit, reset.window_secs), (5, 3600));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let keys = AttemptKeys::derive(b"ring");
        let p = AttemptPolicy::default();
        let one = keys.counters(&p, "a@example.com", &addr("2001:db8:1:2::1"));
        let same64 = keys.counters(&p, "a@example.com", &addr("2001:db8:1:2:ffff::9"));
        let other64 = keys.counters(&p, "a@example.com", &addr("2001:db8:1:3::1"));
        assert_eq!(one[ADDRESS].key, same64[ADDRESS].key);
        assert_ne!(one[ADDRESS].key, other64[ADDRESS].key);
        assert_eq!(addr("::ffff:192.0.2.1"), addr("192.0.2.1"));
        assert!(ClientAddr::parse("not an address").is_none());
        assert!(ClientAddr::parse("").is_none());
    }

    #[test]
    fn the_proxy_header_counts_only_where_trusted_and_only_its_last_entry() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let name = http::HeaderName::from_static("x-forwarded-for");
        let mut h = http::HeaderMap::new();
        h.append(&name, "203.0.113.7, 198.51.100.1".parse().unwrap());
        // Not configured: a header any client can send is ignored.
        assert_eq!(ClientAddr::from_peer(peer, &h, None), addr("10.0.0.9"));
        assert_eq!(ClientAddr::from_peer(peer, &h, Some(&name)), addr("198.51.100.1"));
        // Several header lines: the last one is the proxy's.
        h.append(&name, "192.0.2.44".parse().unwrap());
        assert_eq!(ClientAddr::from_peer(peer, &h, Some(&name)), addr("192.0.2.44"));
        let mut bad = http::HeaderMap::new();
        bad.insert(&name, "unknown".parse().unwrap());
        assert_eq!(ClientAddr::from_peer(peer, &bad, Some(&name)), addr("10.0.0.9"));
        assert_eq!(ClientAddr::from_peer(peer, &http::HeaderMap::new(), Some(&name)), addr("10.0.0.9"));
    }
}
