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
use crate::config::{IssuerConfig, RecoveryLimits};
use crate::keys::KeyRing;
use crate::mail::{Branding, MailError, Mailer, MessageKind, NoMail, compose};
use crate::password::{HashError, PasswordHasher, Verification};
use crate::store::{
    AttemptCounter, AttemptOutcome, Family, FeedCursor, NewRefresh, NewUser, PasswordChange, PasswordProof,
    PendingSignup, ResetToken, RevocationEvent, RevocationTarget, RotateOutcome, SignupOutcome, Store, StoreError,
    UserRecord, new_event_id,
};
use crate::tokens::{RandomError, hash_refresh_token, looks_like_refresh_token, new_refresh_token, random_id};
use crate::validate::password_strength;

/// The kinds of [`AttemptKeys::recovery_counters`], by index
/// ([`crate::attempts::RECOVERY_CLIENT`], [`crate::attempts::RECOVERY_MAIL`]).
const RECOVERY_LABELS: [&str; 2] = ["client", "recipient"];

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
    /// Verified sign-up and password recovery.
    pub recovery: RecoveryRules,
}

/// The rules of verified sign-up and password recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRules {
    /// A registration becomes an account only once its address is
    /// verified (`false`: at once, without a verification message).
    pub require_verified_email: bool,
    /// Lifetime of a verification link (and of an unverified registration).
    pub verify_ttl_secs: u64,
    /// Lifetime of a reset link.
    pub reset_ttl_secs: u64,
    /// The per-client and per-recipient limits.
    pub limits: RecoveryLimits,
    /// Product name and link base of messages.
    pub branding: Branding,
}

impl Default for RecoveryRules {
    /// The configuration's defaults, for an issuer at `https://localhost`.
    fn default() -> Self {
        RecoveryRules {
            require_verified_email: true,
            verify_ttl_secs: 86_400,
            reset_ttl_secs: 900,
            limits: RecoveryLimits::default(),
            branding: Branding { product: "localhost".into(), link_base: "https://localhost".into() },
        }
    }
}

/// What a registration did. The HTTP layer answers all of them alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A verification link went to the address; the account exists once
    /// it is followed.
    VerificationSent,
    /// The account was created at once (verification not required).
    Created {
        /// The new user.
        user_id: String,
    },
    /// The address has an account: it was sent a notice, nothing changed.
    AlreadyRegistered,
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
            recovery: RecoveryRules {
                require_verified_email: cfg.require_verified_email,
                verify_ttl_secs: cfg.verify_ttl_secs,
                reset_ttl_secs: cfg.reset_ttl_secs,
                limits: cfg.recovery_limits,
                branding: cfg.branding.clone(),
            },
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
    /// Too many sign-up or recovery requests from this client or to this
    /// address: try again after `retry_after` seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until the window ends (at least 1).
        retry_after: u64,
    },
    /// A verification or reset link that is unknown, expired, used or
    /// replaced: all alike.
    #[error("invalid or expired link")]
    InvalidLink,
    /// A new password too easy to guess; says why (never the password).
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    /// The current password given for a change is wrong.
    #[error("wrong current password")]
    WrongPassword,
    /// A message could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
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
    /// Sends verification, reset and notice messages.
    mailer: Mailer,
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
        Ok(Sessions { rules, store, keys, hasher, attempt_keys, verifier, mailer: Mailer::new(NoMail) })
    }

    /// Keys the login attempt counters with `secret` (`ISSUER_ATTEMPT_KEY`)
    /// instead of a key derived from the signing keys.
    #[must_use]
    pub fn with_attempt_key(mut self, secret: &[u8]) -> Self {
        self.attempt_keys = AttemptKeys::new(secret);
        self
    }

    /// Sends mail through `mailer` (the default sends none: sign-up and
    /// recovery then fail with [`SessionError::Mail`]).
    #[must_use]
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = mailer;
        self
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
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

    /// Registers `creds.email` from client address `addr`, answering
    /// alike whether or not the address has an account.
    ///
    /// Every request takes an attempt from the recovery counters (this
    /// client, this recipient) before any hashing, then hashes the password,
    /// looks the address up and stores a pending registration, and sends one
    /// message: a verification link to a new address, a "someone tried to
    /// sign up with your address" notice to an existing account. The store
    /// work and the hash work are the same on both paths (the pending
    /// registration of a taken address is never mailed, so it can never be
    /// completed, and expires). Without required verification the account is
    /// created at once and a new address gets no message.
    ///
    /// # Errors
    /// [`SessionError::TooManyRequests`], [`SessionError::Mail`] (nothing
    /// usable was made: an unmailed registration expires), or a store or
    /// hashing failure.
    pub async fn register(&self, creds: Credentials, addr: ClientAddr, now: u64) -> Result<Registration, SessionError> {
        let recovery = &self.rules.recovery;
        let counters = self.attempt_keys.recovery_counters(&recovery.limits, &addr, Some(&creds.email));
        self.take_recovery(&counters, &RECOVERY_LABELS, "register", now).await?;
        let password_hash = self.hasher.hash(creds.password).await?;
        if !recovery.require_verified_email {
            let user = NewUser {
                user_id: random_id()?,
                email: creds.email,
                password_hash,
                scope: self.rules.default_scopes.clone(),
                created_at: now,
            };
            return match self.store.create_user(&user).await {
                Ok(()) => {
                    info!(target: "audit", event = "user_registered", user_id = %user.user_id, verified = false, "user registered");
                    Ok(Registration::Created { user_id: user.user_id })
                }
                Err(StoreError::EmailTaken) => {
                    // Best effort: a new address gets no message in this
                    // mode, so a mail outage must not make a taken one
                    // answer differently.
                    self.notify(MessageKind::SignupAttempt, &user.email).await;
                    info!(target: "audit", event = "signup_of_registered_address", "sign-up of a registered address");
                    Ok(Registration::AlreadyRegistered)
                }
                Err(e) => Err(e.into()),
            };
        }
        let existing = self.store.find_user_by_email(&creds.email).await?;
        let token = new_refresh_token()?;
        let pending = PendingSignup {
            token_hash: hash_refresh_token(&token),
            email: creds.email,
            password_hash,
            scope: self.rules.default_scopes.clone(),
            created_at: now,
            expires_at: now.saturating_add(recovery.verify_ttl_secs),
        };
        self.store.create_signup(&pending).await?;
        match existing {
            Some(user) => {
                self.send(MessageKind::SignupAttempt, &pending.email, None).await?;
                info!(target: "audit", event = "signup_of_registered_address", user_id = %user.user_id, "sign-up of a registered address");
                Ok(Registration::AlreadyRegistered)
            }
            None => {
                self.send(MessageKind::VerifyEmail, &pending.email, Some(&token)).await?;
                info!(target: "audit", event = "signup_pending", "registration waiting for verification");
                Ok(Registration::VerificationSent)
            }
        }
    }

    /// Completes the registration of a verification link's `token`,
    /// followed from client address `addr`: the account exists from now on.
    /// Returns the new user id.
    ///
    /// # Errors
    /// [`SessionError::InvalidLink`] for a token that is malformed, unknown,
    /// expired or used, or whose address got an account meanwhile, all
    /// alike; [`SessionError::TooManyRequests`]; a store failure.
    pub async fn verify_email(&self, token: &str, addr: ClientAddr, now: u64) -> Result<String, SessionError> {
        let counters = self.attempt_keys.recovery_counters(&self.rules.recovery.limits, &addr, None);
        self.take_recovery(&counters, &RECOVERY_LABELS, "verify_email", now).await?;
        if !looks_like_refresh_token(token) {
            return Err(SessionError::InvalidLink);
        }
        match self.store.complete_signup(&hash_refresh_token(token), &random_id()?, now).await? {
            SignupOutcome::Created(user) => {
                info!(target: "audit", event = "user_registered", user_id = %user.user_id, verified = true, "user registered");
                Ok(user.user_id)
            }
            SignupOutcome::EmailTaken => {
                debug!("verification of an address registered meanwhile");
                Err(SessionError::InvalidLink)
            }
            SignupOutcome::Invalid => Err(SessionError::InvalidLink),
        }
    }

    /// Starts a password reset for `email`, asked from client address
    /// `addr`, answering alike whether or not the address has an account,
    /// with the same store work: an account's address gets a reset link
    /// (replacing any earlier one), any other address a notice that it has
    /// no account (and a reset token is stored for a random id no user has).
    ///
    /// # Errors
    /// [`SessionError::TooManyRequests`], [`SessionError::Mail`] (the reset
    /// stays usable if the message went out after all; a retry replaces it),
    /// or a store failure.
    pub async fn forgot_password(&self, email: &str, addr: ClientAddr, now: u64) -> Result<(), SessionError> {
        let recovery = &self.rules.recovery;
        let counters = self.attempt_keys.recovery_counters(&recovery.limits, &addr, Some(email));
        self.take_recovery(&counters, &RECOVERY_LABELS, "forgot_password", now).await?;
        let Some(user) = self.store.find_user_by_email(email).await? else {
            // The same store work as for an account: a reset token for an
            // id no user has (it can never be used, and expires), so the
            // answer's timing does not tell whether the address has one.
            let decoy = ResetToken {
                user_id: random_id()?,
                token_hash: hash_refresh_token(&new_refresh_token()?),
                created_at: now,
                expires_at: now.saturating_add(recovery.reset_ttl_secs),
            };
            self.store.put_reset(&decoy).await?;
            self.send(MessageKind::ResetUnknownAddress, email, None).await?;
            info!(target: "audit", event = "password_reset_requested", known = false, "password reset requested");
            return Ok(());
        };
        let secret = new_refresh_token()?;
        let reset = ResetToken {
            user_id: user.user_id.clone(),
            token_hash: hash_refresh_token(&secret),
            created_at: now,
            expires_at: now.saturating_add(recovery.reset_ttl_secs),
        };
        self.store.put_reset(&reset).await?;
        let token = format!("{}.{secret}", user.user_id);
        self.send(MessageKind::PasswordReset, &user.email, Some(&token)).await?;
        info!(target: "audit", event = "password_reset_requested", known = true, user_id = %user.user_id, "password reset requested");
        Ok(())
    }

    /// Sets a new password with a reset link's `token`, from client address
    /// `addr`. The token is used up, the password replaced, and everything
    /// issued to the user revoked (a subject event on the feed, every
    /// refresh-token family), in one atomic write for the first three; of
    /// concurrent resets with one token exactly one succeeds. The user is
    /// sent a notice.
    ///
    /// # Errors
    /// [`SessionError::InvalidLink`] for a token that is malformed, unknown,
    /// wrong, expired, replaced or used, all alike;
    /// [`SessionError::WeakPassword`]; [`SessionError::TooManyRequests`]; a
    /// store or hashing failure.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: String,
        addr: ClientAddr,
        now: u64,
    ) -> Result<(), SessionError> {
        let counters = self.attempt_keys.recovery_counters(&self.rules.recovery.limits, &addr, None);
        self.take_recovery(&counters, &RECOVERY_LABELS, "reset_password", now).await?;
        let (user_id, secret) = token.split_once('.').ok_or(SessionError::InvalidLink)?;
        if !looks_like_refresh_token(secret) || user_id.is_empty() || user_id.len() > 64 {
            return Err(SessionError::InvalidLink);
        }
        let reset = self.store.get_reset(user_id).await?;
        let presented = hash_refresh_token(secret);
        let valid = reset.as_ref().is_some_and(|r| {
            r.expires_at > now
                && bool::from(subtle::ConstantTimeEq::ct_eq(r.token_hash.as_bytes(), presented.as_bytes()))
        });
        if !valid {
            return Err(SessionError::InvalidLink);
        }
        let user = self.store.get_user(user_id).await?.ok_or(SessionError::InvalidLink)?;
        password_strength(&new_password, &user.email).map_err(|w| SessionError::WeakPassword(w.reason()))?;
        // Per account too: resets of one account are bounded whoever holds
        // its links, before any hashing.
        let account = self.attempt_keys.reset_counter(&self.rules.recovery.limits, &user.email);
        self.take_recovery(std::slice::from_ref(&account), &["account"], "reset_password", now).await?;
        let new_hash = self.hasher.hash(new_password).await?;
        let change = PasswordChange {
            user_id: user.user_id.clone(),
            new_hash,
            proof: PasswordProof::ResetToken { token_hash: presented },
            event: self.subject_event(&user.user_id, now)?,
        };
        if !self.store.change_password(&change, now).await? {
            return Err(SessionError::InvalidLink);
        }
        let revoked = self.revoke_families_after_change(&user.user_id, now).await;
        info!(
            target: "audit",
            event = "password_reset",
            user_id = %user.user_id,
            revoked_sessions = revoked,
            revocation_event = %change.event.event_id,
            "password reset: every session revoked"
        );
        self.notify(MessageKind::PasswordChanged, &user.email).await;
        Ok(())
    }

    /// Changes the password of the user of `access_token` from client
    /// address `addr`, given the current password. The user's other
    /// sessions and every access token issued so far are revoked; the
    /// caller gets a fresh session.
    ///
    /// The current password is checked like a login: the login attempt
    /// counters of this account and client are taken first, so a stolen
    /// access token cannot be used to guess the password faster than a
    /// login could.
    ///
    /// # Errors
    /// [`SessionError::InvalidAccessToken`], [`SessionError::TooManyAttempts`],
    /// [`SessionError::WrongPassword`] (also when the password changed
    /// meanwhile), [`SessionError::WeakPassword`], or a store, hashing or
    /// signing failure.
    pub async fn change_password(
        &self,
        access_token: &str,
        current: String,
        new_password: String,
        addr: ClientAddr,
        now: u64,
    ) -> Result<Issued, SessionError> {
        let user = self.bearer_user(access_token, now).await?;
        let counters = self.attempt_keys.counters(&self.rules.attempt_policy, &user.email, &addr);
        if let AttemptOutcome::Refused { retry_after, .. } = self.store.take_attempt(&counters, now).await? {
            info!(target: "audit", event = "password_change_refused", user_id = %user.user_id, "password change refused: too many attempts");
            return Err(SessionError::TooManyAttempts { retry_after });
        }
        let verdict = self.hasher.verify(current, Some(user.password_hash.clone())).await?;
        if !matches!(verdict, Verification::Match { .. }) {
            info!(target: "audit", event = "password_change_failed", user_id = %user.user_id, "password change: wrong current password");
            return Err(SessionError::WrongPassword);
        }
        password_strength(&new_password, &user.email).map_err(|w| SessionError::WeakPassword(w.reason()))?;
        let new_hash = self.hasher.hash(new_password).await?;
        let change = PasswordChange {
            user_id: user.user_id.clone(),
            new_hash,
            proof: PasswordProof::CurrentHash { hash: user.password_hash.clone() },
            event: self.subject_event(&user.user_id, now)?,
        };
        if !self.store.change_password(&change, now).await? {
            return Err(SessionError::WrongPassword);
        }
        self.store.clear_attempts(&counters[ACCOUNT_ADDRESS], now).await?;
        let revoked = self.revoke_families_after_change(&user.user_id, now).await;
        let user = UserRecord {
            tokens_valid_after: user.tokens_valid_after.max(now.saturating_add(1)),
            password_changed_at: now,
            ..user
        };
        let issued = self.start_session(&user, now).await?;
        info!(
            target: "audit",
            event = "password_changed",
            user_id = %user.user_id,
            revoked_sessions = revoked,
            revocation_event = %change.event.event_id,
            "password changed: other sessions revoked"
        );
        self.notify(MessageKind::PasswordChanged, &user.email).await;
        Ok(issued)
    }

    /// Takes an attempt from the recovery `counters`, whose kinds (for the
    /// audit line) are `labels`, in the same order.
    async fn take_recovery(
        &self,
        counters: &[AttemptCounter],
        labels: &[&'static str],
        route: &'static str,
        now: u64,
    ) -> Result<(), SessionError> {
        if let AttemptOutcome::Refused { retry_after, at_limit } = self.store.take_attempt(counters, now).await? {
            let limit =
                labels.iter().enumerate().find(|(i, _)| at_limit & (1 << i) != 0).map_or("unknown", |(_, l)| *l);
            info!(target: "audit", event = "recovery_refused", route, limit, retry_after, "request refused: too many requests");
            return Err(SessionError::TooManyRequests { retry_after });
        }
        Ok(())
    }

    /// Composes and sends a message; the failure is the caller's.
    async fn send(&self, kind: MessageKind, to: &str, token: Option<&str>) -> Result<(), SessionError> {
        let msg = compose(kind, to, &self.rules.recovery.branding, token);
        self.mailer.send(&msg).await.map_err(|e| {
            warn!(kind = kind.name(), transport = self.mailer.transport_name(), error = %e, "mail not sent");
            SessionError::Mail(e)
        })
    }

    /// Sends a notice whose failure changes nothing (logged).
    async fn notify(&self, kind: MessageKind, to: &str) {
        let _ = self.send(kind, to, None).await;
    }

    /// A subject event revoking every token of `user_id` issued up to `now`.
    fn subject_event(&self, user_id: &str, now: u64) -> Result<RevocationEvent, SessionError> {
        self.revocation_event(
            RevocationTarget::Subject { user_id: user_id.to_owned(), before: now.saturating_add(1), family_id: None },
            now,
        )
    }

    /// After a password change (whose write set `password_changed_at`):
    /// revokes every family. A failure is logged, not returned: the
    /// password is changed, and [`Sessions::refresh`] refuses families
    /// started before `password_changed_at` anyway.
    async fn revoke_families_after_change(&self, user_id: &str, now: u64) -> u32 {
        match self.store.revoke_user_families(user_id, now).await {
            Ok(n) => n,
            Err(e) => {
                warn!(user_id = %user_id, error = %e, "families not revoked after a password change; refresh refuses them");
                0
            }
        }
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
        // A session started before the last password reset or change is
        // dead even if its family's revocation did not get written (the
        // change revokes every family after its own write, best effort).
        if family.created_at < user.password_changed_at {
            return Err(SessionError::InvalidRefreshToken);
        }
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
        let user = self.bearer_user(access_token, now).await?;
        let revoked = self.revoke_subject(&user.user_id, now).await?;
        info!(target: "audit", event = "logout_all", user_id = %user.user_id, revoked, "all sessions revoked");
        Ok(revoked)
    }

    /// The user of a bearer access token, read consistently. A token revoked
    /// by a subject revocation (logout-all, reuse, password change) is
    /// refused: one event per token, not one per request.
    async fn bearer_user(&self, access_token: &str, now: u64) -> Result<UserRecord, SessionError> {
        let verified = self.verifier.verify_at(access_token, Duration::from_secs(now)).map_err(|e| {
            if e.is_server_side() {
                SessionError::Keys(e.reason().to_owned())
            } else {
                debug!(reason = e.reason(), "bearer token refused");
                SessionError::InvalidAccessToken
            }
        })?;
        let user = self.store.get_user(verified.sub()).await?.ok_or(SessionError::InvalidAccessToken)?;
        if verified.iat() < user.tokens_valid_after {
            debug!("bearer token refused: revoked by a subject revocation");
            return Err(SessionError::InvalidAccessToken);
        }
        Ok(user)
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
