//! The issuer's persistence: one interface, two implementations.
//!
//! - [`sqlite`]: the embedded, file-backed store for the local stack and
//!   single-machine use (SQLite in WAL mode).
//! - [`dynamo`]: DynamoDB through the AWS SDK, for Lambda.
//!
//! Both give the same semantics and run the same behavioural test suite
//! ([`conformance`], feature `test-support`, run by `issuer/tests/store_sqlite.rs`
//! and `issuer/tests/store_dynamo.rs`). Every method that writes more than one
//! record does so atomically: a failure leaves nothing half-written.
//!
//! Times are whole seconds since the Unix epoch, passed in by the caller,
//! except the revocation feed's event times and cursors, which are
//! milliseconds.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use token_core::revocation::{FeedEvent, RevocationId};

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod dynamo;
pub mod sqlite;

/// Consecutive failures after which an account locks (as Amazon Cognito).
pub const LOCK_AFTER: u32 = 5;

/// The longest lock: 15 minutes.
pub const MAX_LOCK_SECS: u64 = 15 * 60;

/// How long an account stays locked after its `failed_logins`-th
/// consecutive failure: `2^(failed_logins - lock_after)` seconds, capped at
/// `max_lock_secs`; 0 below `lock_after`. The arithmetic every store uses in
/// [`Store::record_login_failure`].
///
/// ```
/// use issuer::store::lockout_secs;
/// assert_eq!(lockout_secs(4, 5, 900), 0);
/// assert_eq!(lockout_secs(5, 5, 900), 1);
/// assert_eq!(lockout_secs(7, 5, 900), 4);
/// assert_eq!(lockout_secs(15, 5, 900), 900);
/// ```
pub fn lockout_secs(failed_logins: u32, lock_after: u32, max_lock_secs: u64) -> u64 {
    if failed_logins < lock_after {
        return 0;
    }
    let exp = failed_logins - lock_after;
    // 2^exp overflows past 63; anything past 2^20 is above any sane cap.
    let secs = if exp >= 63 { u64::MAX } else { 1u64 << exp };
    secs.min(max_lock_secs)
}

/// A user as the login path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Opaque, random, stable id (the token's `sub`).
    pub user_id: String,
    /// Normalised email address (unique).
    pub email: String,
    /// PHC string (`$argon2id$...`) or an imported bcrypt hash (`$2b$...`).
    pub password_hash: String,
    /// Space-separated scopes granted to the user's access tokens.
    pub scope: String,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until this time (0: not locked).
    pub locked_until: u64,
    /// Access tokens of this user with `iat` below this are revoked (the
    /// `before` of the user's last subject revocation; 0: none). The issuer
    /// never mints one with a lower `iat`.
    pub tokens_valid_after: u64,
    /// When the password was last reset or changed (0: never). Refresh
    /// tokens of sessions started before it are refused. Read by
    /// [`Store::get_user`]; the DynamoDB email index does not carry it.
    pub password_changed_at: u64,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Opaque, random id.
    pub user_id: String,
    /// Normalised email address.
    pub email: String,
    /// PHC string.
    pub password_hash: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Creation time.
    pub created_at: u64,
}

/// A refresh-token family: one login session and all its rotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Random id.
    pub family_id: String,
    /// Owner.
    pub user_id: String,
    /// When the login happened.
    pub created_at: u64,
    /// Absolute end of the session, whatever the rotations.
    pub expires_at: u64,
    /// Set once revoked (logout, reuse detected, logout-all).
    pub revoked_at: Option<u64>,
}

/// A stored refresh token. Only the hash of the token is ever stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, base64url without padding.
    pub token_hash: String,
    /// The family it belongs to.
    pub family_id: String,
    /// Owner.
    pub user_id: String,
    /// Issue time.
    pub issued_at: u64,
    /// Expiry (also the DynamoDB TTL attribute: TTL deletion is late, so
    /// callers always compare this in code).
    pub expires_at: u64,
    /// Set when the token was rotated (exchanged for its successor).
    pub used_at: Option<u64>,
}

/// A refresh token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefresh {
    /// SHA-256 of the token, base64url without padding.
    pub token_hash: String,
    /// The family it belongs to.
    pub family_id: String,
    /// Owner.
    pub user_id: String,
    /// Issue time.
    pub issued_at: u64,
    /// Expiry.
    pub expires_at: u64,
}

/// A registration waiting for its address to be verified. It is not an
/// account: nothing is claimed until [`Store::complete_signup`], so an
/// unverified registration neither blocks the address nor can log in, and
/// it expires by itself at `expires_at` (DynamoDB: TTL; SQLite: swept).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignup {
    /// SHA-256 of the verification token, base64url (the token is mailed,
    /// never stored).
    pub token_hash: String,
    /// Normalised email address.
    pub email: String,
    /// PHC string of the chosen password.
    pub password_hash: String,
    /// Space-separated scopes the account will get.
    pub scope: String,
    /// When it was made.
    pub created_at: u64,
    /// When the link stops working.
    pub expires_at: u64,
}

impl fmt::Debug for PendingSignup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSignup")
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What [`Store::complete_signup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupOutcome {
    /// The account exists now; the pending registration is gone.
    Created(UserRecord),
    /// No such pending registration: unknown token, expired, or used.
    Invalid,
    /// The address got an account meanwhile (another registration of it was
    /// verified first). The pending registration is gone.
    EmailTaken,
}

/// A user's password reset token. A user has at most one: a new one
/// replaces the last, so only the newest link works.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetToken {
    /// The user.
    pub user_id: String,
    /// SHA-256 of the token's secret, base64url.
    pub token_hash: String,
    /// When it was made.
    pub created_at: u64,
    /// When it stops working.
    pub expires_at: u64,
}

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetToken")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What entitles a [`PasswordChange`]. `Debug` shows the kind only.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordProof {
    /// The user's reset token (its hash), unexpired: used up by the change.
    ResetToken {
        /// SHA-256 of the token's secret.
        token_hash: String,
    },
    /// The stored hash the caller checked the current password against:
    /// the change applies only if it is still the stored one.
    CurrentHash {
        /// The PHC string read.
        hash: String,
    },
}

/// A new password for a user, with the revocation of everything issued to
/// the user so far: one atomic write ([`Store::change_password`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordChange {
    /// The user.
    pub user_id: String,
    /// The new PHC string.
    pub new_hash: String,
    /// What entitles the change.
    pub proof: PasswordProof,
    /// A [`RevocationTarget::Subject`] event of this user (no family).
    pub event: RevocationEvent,
}

impl fmt::Debug for PasswordProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasswordProof::ResetToken { .. } => "ResetToken",
            PasswordProof::CurrentHash { .. } => "CurrentHash",
        })
    }
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

/// What [`Store::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is now marked used (with `used_at = now`) and the new
    /// one is stored: both, in one transaction.
    Rotated,
    /// The old token had already been used at this time: nothing written.
    /// The caller decides whether this is reuse (revoke the family) or
    /// within the grace window.
    AlreadyUsed {
        /// When it was first used.
        used_at: u64,
    },
    /// The old token does not exist, is expired, or its family is revoked or
    /// past its absolute lifetime: nothing written.
    Inactive,
}

/// One attempt counter: a fixed window of `window_secs` seconds (aligned to
/// multiples of it since the epoch) in which at most `limit` attempts may be
/// taken. `key` is opaque to the store: the caller passes a keyed hash of
/// what it counts (an email, an address, both), never the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCounter {
    /// Keyed hash of what is counted (hex or base64url; no `#`).
    pub key: String,
    /// Attempts allowed per window (at least 1).
    pub limit: u32,
    /// Window length in seconds (at least 1).
    pub window_secs: u64,
}

impl AttemptCounter {
    /// The window `now` falls in: its number and its end.
    pub fn window(&self, now: u64) -> (u64, u64) {
        let len = self.window_secs.max(1);
        let id = now / len;
        (id, id.saturating_add(1).saturating_mul(len))
    }

    /// The stored key of this counter's window at `now`.
    pub fn window_key(&self, now: u64) -> String {
        format!("{}#{}", self.key, self.window(now).0)
    }
}

/// What [`Store::take_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Every counter was below its limit; each now counts one more.
    Granted,
    /// At least one counter was at its limit: nothing was counted.
    Refused {
        /// Seconds until the latest refusing window ends (at least 1).
        retry_after: u64,
        /// Indexes (into the counters passed) of the counters at their limit.
        at_limit: u8,
    },
}

impl AttemptOutcome {
    /// Refused because of the counter at `index`?
    pub fn refused_by(&self, index: usize) -> bool {
        matches!(self, AttemptOutcome::Refused { at_limit, .. } if index < 8 && at_limit & (1 << index) != 0)
    }
}

/// The feed lists an event only once it is this old (milliseconds): every
/// write started before `now - REVOCATION_SETTLE_MS` has committed by now,
/// so a reader's cursor never passes an event that commits late (concurrent
/// writers, several issuer instances). See [`Store::revocations_after`].
pub const REVOCATION_SETTLE_MS: u64 = 1000;

/// How far back the stores look for live revocation events at most: the
/// longest access-token lifetime the issuer accepts
/// (`ISSUER_ACCESS_TTL_SECS` <= 86400) plus the verifiers' leeway allowance.
/// Anything older has expired; this bounds the work of a first fetch or of
/// a stale cursor.
pub const REVOCATION_MAX_LIFE_SECS: u64 = 86_400 + 120;

/// What a revocation event revokes, with the identifiers in clear: the
/// store writes the state change (family revoked, `tokens_valid_after`
/// raised) in the same atomic write as the event, and stores only the
/// hashed [`RevocationId`] in the event itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationTarget {
    /// One session (logout): the family is revoked and the event recorded,
    /// both or neither, and only if the family exists and was not revoked
    /// yet (a repeated logout records nothing).
    Session {
        /// The family (the access tokens' `sid`).
        family_id: String,
    },
    /// Every token of a user issued before `before` (logout-all, refresh
    /// token reuse, later a password change): the event is recorded and the
    /// user's `tokens_valid_after` raised to `before` (never lowered).
    Subject {
        /// The user (the access tokens' `sub`).
        user_id: String,
        /// Tokens with `iat < before` are revoked.
        before: u64,
        /// A family revoked in the same write (reuse detection); the event
        /// is then recorded only if this call revoked it.
        family_id: Option<String>,
    },
}

/// A revocation event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Random, 16 lowercase hex digits ([`new_event_id`]); no personal data.
    pub event_id: String,
    /// When it was written (milliseconds since the epoch, the writer's
    /// clock, never earlier than the moment the write started).
    pub time_ms: u64,
    /// The entry can be dropped after this time (seconds): the revocation
    /// time plus the access-token lifetime plus the verifiers' leeway.
    pub until: u64,
    /// What it revokes.
    pub target: RevocationTarget,
}

impl RevocationEvent {
    /// The event as the feed shows it: identifiers hashed.
    pub fn feed_event(&self) -> FeedEvent {
        match &self.target {
            RevocationTarget::Session { family_id } => {
                FeedEvent::Session { id: RevocationId::session(family_id), until: self.until }
            }
            RevocationTarget::Subject { user_id, before, .. } => {
                FeedEvent::Subject { id: RevocationId::subject(user_id), before: *before, until: self.until }
            }
        }
    }

    /// Its position in the feed.
    pub fn cursor(&self) -> FeedCursor {
        FeedCursor { time_ms: self.time_ms, event_id: Some(self.event_id.clone()) }
    }
}

/// A fresh random event id: 64 random bits as 16 lowercase hex digits.
///
/// # Errors
/// [`StoreError::Unavailable`] if the system random source fails.
pub fn new_event_id() -> Result<String, StoreError> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| StoreError::Unavailable("random source failed".into()))?;
    Ok(format!("{:016x}", u64::from_be_bytes(b)))
}

/// Length of an event id and of a cursor's time part (hex digits).
const HEX_LEN: usize = 16;

fn is_lower_hex(s: &str) -> bool {
    s.len() == HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A position in the feed: events are ordered by `(time_ms, event_id)`, and
/// a page lists the events strictly after its cursor. Without an event id
/// the position is before every event of `time_ms` (so `(t, None)` means
/// "everything before `t` has been listed").
///
/// On the wire (opaque to verifiers) it is `<time_ms as 16 hex digits>`
/// optionally followed by `.<event id>`; [`FromStr`] accepts exactly that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// The last event listed at `time_ms`, if any.
    pub event_id: Option<String>,
}

impl FeedCursor {
    /// The position before every event at or after `time_ms`.
    pub fn at(time_ms: u64) -> Self {
        FeedCursor { time_ms, event_id: None }
    }

    /// Is the event `(time_ms, event_id)` after this position?
    pub fn precedes(&self, time_ms: u64, event_id: &str) -> bool {
        match self.time_ms.cmp(&time_ms) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => self.event_id.as_deref().is_none_or(|id| id < event_id),
        }
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.time_ms)?;
        if let Some(id) = &self.event_id {
            write!(f, ".{id}")?;
        }
        Ok(())
    }
}

/// A cursor that is not one the feed gave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a feed cursor: expected 16 hex digits, optionally followed by '.' and 16 hex digits")]
pub struct CursorError;

impl FromStr for FeedCursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, CursorError> {
        let (time, id) = match s.split_once('.') {
            Some((time, id)) => (time, Some(id)),
            None => (s, None),
        };
        if !is_lower_hex(time) || id.is_some_and(|id| !is_lower_hex(id)) {
            return Err(CursorError);
        }
        let time_ms = u64::from_str_radix(time, 16).map_err(|_| CursorError)?;
        Ok(FeedCursor { time_ms, event_id: id.map(str::to_owned) })
    }
}

/// One page of [`Store::revocations_after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPage {
    /// Live events after the cursor, in feed order.
    pub events: Vec<FeedEvent>,
    /// Where the next page starts.
    pub next: FeedCursor,
    /// Another page may follow at once.
    pub more: bool,
    /// With `more: false`, every event up to this time (ms) has been listed:
    /// `now_ms - REVOCATION_SETTLE_MS`.
    pub as_of_ms: u64,
}

/// The bounds of a feed read at `now_ms`, shared by the stores: where the
/// listing starts (`after`, moved up to the oldest position that can still
/// hold a live event), the last time it may list (`as_of_ms`), and the page
/// size (1 to [`token_core::revocation::MAX_PAGE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedWindow {
    pub start: FeedCursor,
    pub as_of_ms: u64,
    pub now_s: u64,
    pub limit: usize,
}

impl FeedWindow {
    pub(crate) fn new(after: Option<&FeedCursor>, limit: usize, now_ms: u64) -> Self {
        let horizon = FeedCursor::at(now_ms.saturating_sub(REVOCATION_MAX_LIFE_SECS.saturating_mul(1000)));
        let start = match after {
            Some(a) if *a > horizon => a.clone(),
            _ => horizon,
        };
        FeedWindow {
            start,
            as_of_ms: now_ms.saturating_sub(REVOCATION_SETTLE_MS),
            now_s: now_ms / 1000,
            limit: limit.clamp(1, token_core::revocation::MAX_PAGE),
        }
    }

    /// The page: `last` is the position of the last event read (listed or
    /// skipped as expired) when the read stopped at `limit`, `None` when it
    /// reached `as_of_ms`.
    pub(crate) fn page(&self, events: Vec<FeedEvent>, last: Option<FeedCursor>) -> RevocationPage {
        match last {
            Some(next) => RevocationPage { events, next, more: true, as_of_ms: self.as_of_ms },
            None => {
                let settled = FeedCursor::at(self.as_of_ms.saturating_add(1));
                let next = if self.start > settled { self.start.clone() } else { settled };
                RevocationPage { events, next, more: false, as_of_ms: self.as_of_ms }
            }
        }
    }
}

/// Store failures. `Unavailable` maps to 503 at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// [`Store::create_user`]: the email address is already registered.
    #[error("email already registered")]
    EmailTaken,
    /// The backend cannot be reached or refused the operation for reasons
    /// of its own (throttling, timeout, I/O). Nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be read back (missing attribute, bad type).
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The issuer's persistence. Implementations are cheap to share (`Arc`).
pub trait Store: Send + Sync + 'static {
    /// Creates the user and claims the email address in one transaction
    /// (DynamoDB: a conditional put of an email marker item beside the user).
    ///
    /// # Errors
    /// [`StoreError::EmailTaken`] if the address is registered.
    fn create_user(&self, user: &NewUser) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finds a user by normalised email (DynamoDB: the Users table's email
    /// GSI; a just-registered user missing from the eventually consistent
    /// index is found through the email marker with a consistent read).
    fn find_user_by_email(&self, email: &str) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// Reads a user by id, consistently.
    fn get_user(&self, user_id: &str) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;

    /// Counts one failed login atomically and returns the new count. When
    /// the count reaches `lock_after`, sets `locked_until` to
    /// `now + min(2^(count - lock_after), max_lock_secs)` in the same write.
    fn record_login_failure(
        &self,
        user_id: &str,
        now: u64,
        lock_after: u32,
        max_lock_secs: u64,
    ) -> impl Future<Output = Result<UserRecord, StoreError>> + Send;

    /// Resets the failure count and lock after a successful login, and
    /// replaces the password hash when `new_hash` is given (re-hash on login).
    /// Returns `false`, writing nothing, if the user is locked at `now`
    /// (another sandbox locked it since it was read).
    fn record_login_success(
        &self,
        user_id: &str,
        now: u64,
        new_hash: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates a family with its first refresh token, atomically.
    fn create_session(
        &self,
        family: &Family,
        first: &NewRefresh,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a refresh token and its family, consistently.
    fn get_refresh(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<(RefreshRecord, Family)>, StoreError>> + Send;

    /// Rotates: marks `old_hash` used and stores `new` in one transaction,
    /// on the conditions that the old token exists, is unused, is not
    /// expired at `now`, and its family is neither revoked nor past its
    /// absolute lifetime. Of any number of concurrent calls with the same
    /// `old_hash`, exactly one returns [`RotateOutcome::Rotated`].
    fn rotate(
        &self,
        old_hash: &str,
        new: &NewRefresh,
        now: u64,
    ) -> impl Future<Output = Result<RotateOutcome, StoreError>> + Send;

    /// Stores one more token in an existing family without rotating anything
    /// (the reuse grace window: a token used moments ago is presented again
    /// by a racing tab). Returns `false`, writing nothing, if the family is
    /// revoked or past its absolute lifetime at `now`.
    fn add_to_family(&self, new: &NewRefresh, now: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes a family (idempotent; the first revocation time is kept).
    fn revoke_family(&self, family_id: &str, now: u64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Revokes every family of a user; returns how many were newly revoked.
    fn revoke_user_families(&self, user_id: &str, now: u64) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Takes one attempt against every counter (at most 8), atomically: if
    /// each is below its limit in its window at `now`, all of them count one
    /// more; if any is at its limit, none changes and the answer says which
    /// and until when. Of N concurrent calls on a counter with room for k,
    /// exactly k are granted. Windows end by themselves (DynamoDB: TTL on
    /// the counter items; SQLite: swept as it goes).
    fn take_attempt(
        &self,
        counters: &[AttemptCounter],
        now: u64,
    ) -> impl Future<Output = Result<AttemptOutcome, StoreError>> + Send;

    /// Forgets the current window of `counter` (a successful login clears
    /// its account-and-address counter). Idempotent.
    fn clear_attempts(&self, counter: &AttemptCounter, now: u64)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a revocation event, with its state change in the same atomic
    /// write (see [`RevocationTarget`]). Returns `false`, writing nothing,
    /// when the event names a family that does not exist or is revoked
    /// already. Concurrent calls each record their own event (ids are
    /// random); of concurrent calls revoking one family, exactly one records.
    /// SQLite also drops events whose `until` has passed at `now` (seconds).
    fn record_revocation(
        &self,
        event: &RevocationEvent,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a pending registration.
    fn create_signup(&self, signup: &PendingSignup) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Turns the pending registration of `token_hash` into the account
    /// `user_id`, atomically: the pending item is used up, the user is
    /// created and the address claimed, all or nothing, only if the pending
    /// registration exists and `expires_at > now`. Of concurrent calls with
    /// one token, exactly one returns [`SignupOutcome::Created`].
    fn complete_signup(
        &self,
        token_hash: &str,
        user_id: &str,
        now: u64,
    ) -> impl Future<Output = Result<SignupOutcome, StoreError>> + Send;

    /// Stores a reset token, replacing the user's previous one.
    fn put_reset(&self, reset: &ResetToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's reset token, consistently (expired ones included: the
    /// caller compares `expires_at`).
    fn get_reset(&self, user_id: &str) -> impl Future<Output = Result<Option<ResetToken>, StoreError>> + Send;

    /// Sets a new password, atomically with its proof and its revocation:
    /// the proof is checked (a reset token must be the user's current one
    /// with `expires_at > now`, and is deleted; a current hash must still be
    /// stored), the hash replaced, `password_changed_at` set to `now`,
    /// `tokens_valid_after` raised to the
    /// event's `before` (never lowered) and the event recorded, all or
    /// nothing. Returns `false`, writing nothing, when the proof fails or
    /// the user does not exist. Of concurrent calls with one reset token,
    /// exactly one returns `true`.
    fn change_password(
        &self,
        change: &PasswordChange,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The feed: up to `limit` live events (`until > now_ms / 1000`) strictly
    /// after `after` (`None`: from the oldest live one), in
    /// `(time_ms, event_id)` order, listing only events with
    /// `time_ms <= now_ms - REVOCATION_SETTLE_MS`. Positions older than
    /// [`REVOCATION_MAX_LIFE_SECS`] before `now_ms` are skipped (expired).
    /// `more` says another page may follow at once; otherwise `next` is the
    /// position after `as_of_ms` (or `after`, if that is later), so a reader
    /// passing `next` back gets every event exactly once, in order.
    /// DynamoDB: consistent reads, one `Query` per hour bucket walked.
    fn revocations_after(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> impl Future<Output = Result<RevocationPage, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lock_below_the_threshold() {
        for n in 0..LOCK_AFTER {
            assert_eq!(lockout_secs(n, LOCK_AFTER, MAX_LOCK_SECS), 0, "{n}");
        }
    }

    #[test]
    fn lock_doubles_from_one_second() {
        let got: Vec<u64> = (5..=14).map(|n| lockout_secs(n, LOCK_AFTER, MAX_LOCK_SECS)).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    }

    #[test]
    fn lock_is_capped_at_fifteen_minutes_without_overflow() {
        assert_eq!(lockout_secs(15, LOCK_AFTER, MAX_LOCK_SECS), 900);
        assert_eq!(lockout_secs(68, LOCK_AFTER, MAX_LOCK_SECS), 900);
        assert_eq!(lockout_secs(69, LOCK_AFTER, MAX_LOCK_SECS), 900);
        assert_eq!(lockout_secs(u32::MAX, LOCK_AFTER, MAX_LOCK_SECS), 900);
        assert_eq!(lockout_secs(u32::MAX, 0, u64::MAX), u64::MAX);
    }
}
