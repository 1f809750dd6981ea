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

use std::sync::Arc;
use std::time::Duration;

use token_core::{AccessClaims, Audience, Verifier, VerifierConfig};
use tracing::{debug, info, warn};

use crate::attempts::{ACCOUNT_ADDRESS, ADDRESS, AttemptKeys, AttemptPolicy, ClientAddr};
use crate::config::IssuerConfig;
use crate::keys::KeyRing;
use crate::password::{HashError, PasswordHasher, Verification};
use crate::store::{AttemptOutcome, Family, NewRefresh, NewUser, RotateOutcome, Store, StoreError, UserRecord};
use crate::tokens::{RandomError, hash_refresh_token, new_refresh_token, random_id};

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
                self.store.revoke_family(&family.family_id, now).await?;
                warn!(
                    target: "audit",
                    event = "refresh_token_reuse",
                    user_id = %family.user_id,
                    family_id = %family.family_id,
                    used_at,
                    now,
                    "refresh token reuse: family revoked"
                );
                Err(SessionError::InvalidRefreshToken)
            }
        }
    }

    /// Revokes the session (token family) of `refresh_token`, if it is one.
    /// Idempotent: no token or an unknown one is not an error.
    ///
    /// # Errors
    /// A store failure.
    pub async fn logout(&self, refresh_token: Option<&str>, now: u64) -> Result<(), SessionError> {
        if let Some(token) = refresh_token
            && let Some((_, family)) = self.store.get_refresh(&hash_refresh_token(token)).await?
        {
            self.store.revoke_family(&family.family_id, now).await?;
            info!(target: "audit", event = "logout", user_id = %family.user_id, family_id = %family.family_id, "logout");
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
        let revoked = self.store.revoke_user_families(verified.sub(), now).await?;
        info!(target: "audit", event = "logout_all", user_id = %verified.sub(), revoked, "all sessions revoked");
        Ok(revoked)
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
            iat: now,
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
