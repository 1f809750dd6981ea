//! The session rules, free of HTTP: register, login with its attempt
//! accounting, refresh-token rotation with reuse detection, logout and
//! logout-all.
//!
//! [`Sessions`] works over any [`Store`], takes the current time as an
//! argument (whole seconds since the Unix epoch), and returns typed outcomes:
//! [`Issued`] tokens or a [`SessionError`]. It knows nothing of requests,
//! headers or cookies; [`crate::app`] maps HTTP to it and its outcomes to
//! responses, in one place ([`crate::error`]).
//!
//! The rules:
//! - **Login.** Every attempt first takes an attempt from three counters
//!   ([`crate::attempts`]: this account from this client address, this
//!   address across accounts, this account across addresses), atomically
//!   and before any hashing, whether the account exists or not. A refused
//!   attempt is answered without hashing, the same for any password. Unknown
//!   emails are checked against a dummy hash, so they cost the same hashing
//!   work as known ones. A right password clears this client's
//!   account-and-address counter. A hash that is bcrypt or weaker than the
//!   configured argon2id parameters is replaced on success.
//! - **Sessions.** A login starts a token family with an absolute lifetime
//!   (`session_max_secs`) and its first refresh token. Only the SHA-256 of a
//!   refresh token is stored.
//! - **Rotation.** A refresh token is used once: refreshing marks it used and
//!   adds its successor, atomically. Presenting a used token again is reuse:
//!   the family is revoked (its newest token too), unless it is within the
//!   configured grace window of the first use, where a sibling is issued.
//! - **Logout** revokes the token's family; **logout-all** revokes every
//!   family of the access token's subject.
//! - **Revocation events** ([`crate::store::RevocationTarget`]) stop access
//!   tokens already issued, through the feed verifiers follow
//!   ([`Sessions::revocations`]): logout records a session event (the
//!   family, the tokens' `sid`) in the same write as the family's
//!   revocation; logout-all and refresh-token reuse record a subject event
//!   ([`Sessions::revoke_subject`]): every token of the user issued before
//!   `now + 1` is revoked, and the user's `tokens_valid_after` moves there,
//!   so tokens minted afterwards carry `iat >= before`.

use std::sync::Arc;
use std::time::Duration;

use token_core::revocation::FeedPage;
use token_core::{AccessClaims, Audience, Verifier, VerifierConfig};
use tracing::{debug, info, warn};

use crate::attempts::{ACCOUNT_ADDRESS, ADDRESS, AttemptKeys, AttemptPolicy, ClientAddr};
use crate::config::IssuerConfig;
use crate::keys::KeyRing;
use crate::password::{HashError, PasswordHasher, Verification};
use crate::store::{
    AttemptOutcome, Family, FeedCursor, NewRefresh, NewUser, RevocationEvent, RevocationTarget, RotateOutcome, Store,
    StoreError, UserRecord, new_event_id,
};
use crate::tokens::{RandomError, hash_refresh_token, new_refresh_token, random_id};

/// What a revocation event adds to the access-token lifetime before it can
/// be dropped: the verifiers' clock leeway (60 s by default) with room to
/// spare.
pub const REVOCATION_LEEWAY_SECS: u64 = 120;

/// The feed time of an event written at `now` (whole seconds): the last
/// millisecond of that second. Never earlier than the moment the write
/// started, which is what the feed's settle window needs (an event time
/// earlier than its write could be passed by a reader's cursor before it
/// commits).
fn event_time_ms(now: u64) -> u64 {
    now.saturating_mul(1000).saturating_add(999)
}

/// Credentials, validated by the HTTP layer ([`crate::validate`]): the
/// normalised email address and the password as sent. `Debug` never prints
/// the password.
pub struct Credentials {
    /// Normalised email address.
    pub email: String,
    /// The password as sent.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("password", &"[redacted]").finish()
    }
}

/// The lifetimes and settings the rules use, from [`IssuerConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRules {
    /// `iss` of access tokens.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: Audience,
    /// `client_id` of access tokens (RFC 9068).
    pub client_id: String,
    /// Scopes new users get.
    pub default_scopes: String,
    /// Access-token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime (capped by the family's).
    pub refresh_ttl_secs: u64,
    /// Absolute lifetime of a token family.
    pub session_max_secs: u64,
    /// Seconds after a rotation during which the used token may be
    /// presented again (0: never).
    pub reuse_grace_secs: u64,
    /// The login attempt limits.
    pub attempt_policy: AttemptPolicy,
}

impl SessionRules {
    /// The rules configured in `cfg`.
    pub fn from_config(cfg: &IssuerConfig) -> Self {
        SessionRules {
            issuer: cfg.issuer_url.clone(),
            audience: match cfg.audiences.as_slice() {
                [one] => Audience::One(one.clone()),
                many => Audience::Many(many.to_vec()),
            },
            client_id: cfg.client_id.clone(),
            default_scopes: cfg.default_scopes.clone(),
            access_ttl_secs: cfg.access_ttl_secs,
            refresh_ttl_secs: cfg.refresh_ttl_secs,
            session_max_secs: cfg.session_max_secs,
            reuse_grace_secs: cfg.reuse_grace_secs,
            attempt_policy: cfg.attempt_policy,
        }
    }
}

/// Tokens issued by a login or a refresh.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The user.
    pub user_id: String,
    /// The signed access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The new refresh token (only its hash is stored).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("user_id", &self.user_id)
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[redacted]")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish()
    }
}

/// Why a session operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The email address is already registered.
    #[error("email already registered")]
    EmailTaken,
    /// Unknown email or wrong password, alike.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many login attempts from this client on this account, from this
    /// client, or on this account: try again after `retry_after` seconds.
    #[error("too many login attempts")]
    TooManyAttempts {
        /// Seconds until the lock ends (at least 1).
        retry_after: u64,
    },
    /// The refresh token is missing, unknown, expired, revoked or reused.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The access token is invalid or expired.
    #[error("invalid access token")]
    InvalidAccessToken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password hashing is saturated or failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The system random source failed.
    #[error("random source failed")]
    Random,
    /// Signing an access token failed, or the issuer's own keys are unusable.
    #[error("signing keys unusable: {0}")]
    Keys(String),
}

impl From<RandomError> for SessionError {
    fn from(_: RandomError) -> Self {
        SessionError::Random
    }
}

/// The session rules over a store, a key ring and a password hasher.
pub struct Sessions<S: Store> {
    rules: SessionRules,
    store: S,
    keys: KeyRing,
    hasher: Arc<PasswordHasher>,
    /// Keys the login attempt counters.
    attempt_keys: AttemptKeys,
    /// Verifies the issuer's own access tokens (logout-all): the key ring is
    /// installed directly, so no HTTP and no stale keys.
    verifier: Arc<Verifier>,
}

impl<S: Store> std::fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("rules", &self.rules).field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl<S: Store> Sessions<S> {
    /// The rules over `store`, signing with `keys` and hashing with `hasher`.
    ///
    /// # Errors
    /// [`SessionError::Keys`] if the key ring cannot verify its own tokens.
    pub fn new(
        rules: SessionRules,
        store: S,
        keys: KeyRing,
        hasher: Arc<PasswordHasher>,
    ) -> Result<Self, SessionError> {
        let audiences = match &rules.audience {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(many) => many.clone(),
        };
        let mut vcfg = VerifierConfig::for_issuer(rules.issuer.clone(), audiences, None);
        vcfg.jwks_max_stale = Duration::from_secs(100 * 365 * 86_400);
        vcfg.token_cache_bytes = 1024 * 1024;
        let verifier = Verifier::new(&vcfg).map_err(|e| SessionError::Keys(e.to_string()))?;
        verifier.install_jwks(&rules.issuer, keys.jwks_json()).map_err(|e| SessionError::Keys(e.to_string()))?;
        // Derived from the active signing key unless a key of its own is
        // configured (`with_attempt_key`): a rotation of the active key
        // starts fresh counter windows once.
        let attempt_keys = AttemptKeys::derive(keys.active().to_pkcs8_pem().as_bytes());
        Ok(Sessions { rules, store, keys, hasher, attempt_keys, verifier })
    }

    /// Keys the login attempt counters with `secret` (`ISSUER_ATTEMPT_KEY`)
    /// instead of a key derived from the signing keys.
    #[must_use]
    pub fn with_attempt_key(mut self, secret: &[u8]) -> Self {
        self.attempt_keys = AttemptKeys::new(secret);
        self
    }

    /// The rules.
    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// Registers a user with the default scopes; returns the new user id.
    ///
    /// # Errors
    /// [`SessionError::EmailTaken`], or a store or hashing failure.
    pub async fn register(&self, creds: Credentials, now: u64) -> Result<String, SessionError> {
        let password_hash = self.hasher.hash(creds.password).await?;
        let user = NewUser {
            user_id: random_id()?,
            email: creds.email,
            password_hash,
            scope: self.rules.default_scopes.clone(),
            created_at: now,
        };
        self.store.create_user(&user).await.map_err(|e| match e {
            StoreError::EmailTaken => SessionError::EmailTaken,
            other => SessionError::Store(other),
        })?;
        info!(target: "audit", event = "user_registered", user_id = %user.user_id, "user registered");
        Ok(user.user_id)
    }

    /// Checks the credentials from client address `addr` and starts a
    /// session.
    ///
    /// Every attempt first takes an attempt from its three counters
    /// ([`crate::attempts`]), atomically, whether the account exists or not;
    /// only an attempt that got through is hashed. So a burst of any size
    /// checks at most the counters' room in passwords, a refused attempt
    /// answers the same whatever the password, and every path up to the
    /// verdict does the same store operations and the same hash work.
    ///
    /// # Errors
    /// [`SessionError::InvalidCredentials`] (unknown email or wrong password),
    /// [`SessionError::TooManyAttempts`], or a store, hashing or signing failure.
    pub async fn login(&self, creds: Credentials, addr: ClientAddr, now: u64) -> Result<Issued, SessionError> {
        let counters = self.attempt_keys.counters(&self.rules.attempt_policy, &creds.email, &addr);
        let outcome = self.store.take_attempt(&counters, now).await?;
        if let AttemptOutcome::Refused { retry_after, .. } = outcome {
            // Which limit: the Lockouts and RefusedLogins alarms count these.
            let limit = if outcome.refused_by(ACCOUNT_ADDRESS) {
                "account_address"
            } else if outcome.refused_by(ADDRESS) {
                "address"
            } else {
                "account"
            };
            info!(target: "audit", event = "login_refused", limit, retry_after, "login refused: too many attempts");
            return Err(SessionError::TooManyAttempts { retry_after });
        }
        let user = self.store.find_user_by_email(&creds.email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verdict = self.hasher.verify(creds.password, stored).await?;
        let user = match (user, verdict) {
            (Some(user), Verification::Match { rehash }) => {
                // The account-and-address lock of this client opens again;
                // the other two counters keep counting.
                self.store.clear_attempts(&counters[ACCOUNT_ADDRESS], now).await?;
                if let Some(hash) = rehash.as_deref() {
                    // Best effort: a failed upgrade is retried next login.
                    if !self.store.record_login_success(&user.user_id, now, Some(hash)).await? {
                        debug!(user_id = %user.user_id, "password hash upgrade skipped");
                    }
                }
                let issued = self.start_session(&user, now).await?;
                info!(target: "audit", event = "login_succeeded", user_id = %user.user_id, rehashed = rehash.is_some(), "login succeeded");
                return Ok(issued);
            }
            (user, _) => user,
        };
        match user {
            Some(u) => {
                info!(target: "audit", event = "login_failed", reason = "bad_password", user_id = %u.user_id, "login failed")
            }
            None => info!(target: "audit", event = "login_failed", reason = "unknown_user", "login failed"),
        }
        Err(SessionError::InvalidCredentials)
    }

    /// Rotates a refresh token: the presented one is used up, a successor in
    /// the same family is issued with a new access token.
    ///
    /// # Errors
    /// [`SessionError::InvalidRefreshToken`] for an unknown, expired, revoked
    /// or reused token (reuse outside the grace window revokes the family),
    /// or a store or signing failure.
    pub async fn refresh(&self, token: &str, now: u64) -> Result<Issued, SessionError> {
        let old_hash = hash_refresh_token(token);
        let (record, family) = self.store.get_refresh(&old_hash).await?.ok_or(SessionError::InvalidRefreshToken)?;
        // TTL deletion is late: expiry is always checked here.
        if record.expires_at <= now || family.revoked_at.is_some() || family.expires_at <= now {
            return Err(SessionError::InvalidRefreshToken);
        }
        let user = self.store.get_user(&record.user_id).await?.ok_or(SessionError::InvalidRefreshToken)?;
        let new_token = new_refresh_token()?;
        let new = self.new_refresh_record(&new_token, &family, now);
        let outcome = match record.used_at {
            Some(used_at) => RotateOutcome::AlreadyUsed { used_at },
            None => self.store.rotate(&old_hash, &new, now).await?,
        };
        match outcome {
            RotateOutcome::Rotated => self.issue(&user, &family.family_id, new_token, new.expires_at, now),
            RotateOutcome::Inactive => Err(SessionError::InvalidRefreshToken),
            RotateOutcome::AlreadyUsed { used_at } => {
                let grace = self.rules.reuse_grace_secs;
                if grace > 0 && now < used_at.saturating_add(grace) {
                    if self.store.add_to_family(&new, now).await? {
                        debug!(family_id = %family.family_id, "used token presented within the grace window");
                        return self.issue(&user, &family.family_id, new_token, new.expires_at, now);
                    }
                    return Err(SessionError::InvalidRefreshToken);
                }
                // The family is revoked, and with it every access token of
                // the user issued so far (a stolen token may have been used
                // elsewhere too), in one write; of concurrent presentations
                // one records. The user's other sessions refresh into tokens
                // that are not revoked.
                let event = self.revocation_event(
                    RevocationTarget::Subject {
                        user_id: family.user_id.clone(),
                        before: now.saturating_add(1),
                        family_id: Some(family.family_id.clone()),
                    },
                    now,
                )?;
                let recorded = self.store.record_revocation(&event, now).await?;
                warn!(
                    target: "audit",
                    event = "refresh_token_reuse",
                    user_id = %family.user_id,
                    family_id = %family.family_id,
                    used_at,
                    now,
                    revocation_event = recorded.then_some(event.event_id.as_str()),
                    "refresh token reuse: family and access tokens revoked"
                );
                Err(SessionError::InvalidRefreshToken)
            }
        }
    }

    /// Revokes the session (token family) of `refresh_token`, if it is one,
    /// and records a session event for its access tokens in the same write.
    /// Idempotent: no token, an unknown one or an already revoked session is
    /// not an error (and records nothing).
    ///
    /// # Errors
    /// A store failure.
    pub async fn logout(&self, refresh_token: Option<&str>, now: u64) -> Result<(), SessionError> {
        if let Some(token) = refresh_token
            && let Some((_, family)) = self.store.get_refresh(&hash_refresh_token(token)).await?
        {
            let event =
                self.revocation_event(RevocationTarget::Session { family_id: family.family_id.clone() }, now)?;
            if self.store.record_revocation(&event, now).await? {
                info!(
                    target: "audit",
                    event = "logout",
                    user_id = %family.user_id,
                    family_id = %family.family_id,
                    revocation_event = %event.event_id,
                    "logout"
                );
            } else {
                debug!(family_id = %family.family_id, "logout of a session already revoked");
            }
        }
        Ok(())
    }

    /// Revokes every session of the subject of `access_token`; returns how
    /// many were active.
    ///
    /// # Errors
    /// [`SessionError::InvalidAccessToken`], or a store failure.
    pub async fn logout_all(&self, access_token: &str, now: u64) -> Result<u32, SessionError> {
        let verified = self.verifier.verify_at(access_token, Duration::from_secs(now)).map_err(|e| {
            if e.is_server_side() {
                SessionError::Keys(e.reason().to_owned())
            } else {
                debug!(reason = e.reason(), "bearer token refused");
                SessionError::InvalidAccessToken
            }
        })?;
        // A token revoked by an earlier subject revocation cannot ask for
        // another one (one event per token, not one per request).
        let user = self.store.get_user(verified.sub()).await?.ok_or(SessionError::InvalidAccessToken)?;
        if verified.iat() < user.tokens_valid_after {
            debug!("bearer token refused: revoked by an earlier logout-all");
            return Err(SessionError::InvalidAccessToken);
        }
        let revoked = self.revoke_subject(&user.user_id, now).await?;
        info!(target: "audit", event = "logout_all", user_id = %user.user_id, revoked, "all sessions revoked");
        Ok(revoked)
    }

    /// Revokes everything of a user: every refresh-token family, then every
    /// access token issued up to `now` (a subject event with
    /// `before = now + 1`, and `tokens_valid_after` raised to it in the same
    /// write). Logout-all calls it; a password change or an account disable
    /// will too. Returns how many families were active.
    ///
    /// The order matters: with the families revoked first, no refresh can
    /// mint a token after the event that the event does not cover. Both
    /// steps are idempotent, so a retry after a failure finishes the job.
    ///
    /// # Errors
    /// A store failure (some families may be revoked already; retry).
    pub async fn revoke_subject(&self, user_id: &str, now: u64) -> Result<u32, SessionError> {
        let revoked = self.store.revoke_user_families(user_id, now).await?;
        let event = self.revocation_event(
            RevocationTarget::Subject { user_id: user_id.to_owned(), before: now.saturating_add(1), family_id: None },
            now,
        )?;
        self.store.record_revocation(&event, now).await?;
        info!(
            target: "audit",
            event = "subject_revoked",
            user_id = %user_id,
            revoked_sessions = revoked,
            revocation_event = %event.event_id,
            "access tokens revoked"
        );
        Ok(revoked)
    }

    /// How long an event lives: the access-token lifetime plus
    /// [`REVOCATION_LEEWAY_SECS`].
    pub fn revocation_life_secs(&self) -> u64 {
        self.rules.access_ttl_secs.saturating_add(REVOCATION_LEEWAY_SECS)
    }

    /// A revocation event written at `now`.
    fn revocation_event(&self, target: RevocationTarget, now: u64) -> Result<RevocationEvent, SessionError> {
        Ok(RevocationEvent {
            event_id: new_event_id().map_err(|_| SessionError::Random)?,
            time_ms: event_time_ms(now),
            until: now.saturating_add(self.revocation_life_secs()),
            target,
        })
    }

    /// One page of the revocation feed at `now_ms` (milliseconds): live
    /// events after `after` (`None`: every live event), at most `limit`.
    /// Positions older than one event lifetime hold only expired events and
    /// are skipped, so a first fetch or a stale cursor reads no dead events.
    ///
    /// `now_ms` must not be ahead of the real time (a clock in whole seconds
    /// times 1000 is fine): the feed's settle window counts from it.
    ///
    /// # Errors
    /// A store failure.
    pub async fn revocations(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> Result<FeedPage, SessionError> {
        // Events written before this position have expired at `now_ms`.
        let horizon = FeedCursor::at(now_ms.saturating_sub(self.revocation_life_secs().saturating_mul(1000)));
        let start = match after {
            Some(a) if *a > horizon => a.clone(),
            _ => horizon,
        };
        let page = self.store.revocations_after(Some(&start), limit, now_ms).await?;
        Ok(FeedPage { events: page.events, next: page.next.to_string(), more: page.more, as_of_ms: page.as_of_ms })
    }

    /// A new family with its first refresh token, and the tokens.
    async fn start_session(&self, user: &UserRecord, now: u64) -> Result<Issued, SessionError> {
        let family = Family {
            family_id: random_id()?,
            user_id: user.user_id.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.rules.session_max_secs),
            revoked_at: None,
        };
        let token = new_refresh_token()?;
        let first = self.new_refresh_record(&token, &family, now);
        self.store.create_session(&family, &first).await?;
        self.issue(user, &family.family_id, token, first.expires_at, now)
    }

    /// A refresh token of `family`: its lifetime, capped by the family's.
    fn new_refresh_record(&self, token: &str, family: &Family, now: u64) -> NewRefresh {
        NewRefresh {
            token_hash: hash_refresh_token(token),
            family_id: family.family_id.clone(),
            user_id: family.user_id.clone(),
            issued_at: now,
            expires_at: now.saturating_add(self.rules.refresh_ttl_secs).min(family.expires_at),
        }
    }

    /// Signs an access token for `user` in session `sid` (the refresh-token
    /// family) and pairs it with the refresh token.
    fn issue(
        &self,
        user: &UserRecord,
        sid: &str,
        refresh_token: String,
        refresh_expires_at: u64,
        now: u64,
    ) -> Result<Issued, SessionError> {
        let claims = AccessClaims {
            iss: self.rules.issuer.clone(),
            sub: user.user_id.clone(),
            aud: self.rules.audience.clone(),
            exp: now.saturating_add(self.rules.access_ttl_secs),
            // Never below the user's last subject revocation (`now + 1` of
            // a logout-all in this very second): verifiers accept an `iat`
            // up to their leeway ahead.
            iat: now.max(user.tokens_valid_after),
            nbf: None,
            jti: random_id()?,
            scope: user.scope.clone(),
            client_id: Some(self.rules.client_id.clone()),
            sid: Some(sid.to_owned()),
        };
        let access_token = self.keys.active().sign(&claims).map_err(|e| SessionError::Keys(e.to_string()))?;
        Ok(Issued {
            user_id: user.user_id.clone(),
            access_token,
            expires_in: self.rules.access_ttl_secs,
            refresh_token,
            refresh_expires_in: refresh_expires_at.saturating_sub(now),
        })
    }
}
