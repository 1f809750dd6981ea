//! The behavioural suite every [`Store`](super::Store) implementation passes.
//!
//! Each `pub async fn` here checks one promise of the trait's documentation
//! against a live store and panics (with a message) when it is broken. The
//! functions use fresh random ids and email addresses, so they can share one
//! database and run concurrently.
//!
//! An integration test runs the whole suite, one `#[tokio::test]` per
//! behaviour, with [`store_conformance_tests!`](crate::store_conformance_tests):
//!
//! ```text
//! async fn store(test: &'static str) -> MyStore { /* ... */ }
//! issuer::store_conformance_tests!(store);
//! ```
//!
//! or all of it in one call with [`run_all`].
//!
//! Times are passed in, as the trait wants: the suite starts from the wall
//! clock (so TTL-based stores keep the items alive during the test) and
//! moves time forward by passing later values.
//!
//! Conventions this suite pins down where the trait leaves room:
//! - a refresh token or family with `expires_at == now` is expired;
//! - an account with `locked_until == now` is no longer locked;
//! - an expired token, or one whose family is revoked or past its lifetime,
//!   rotates to [`RotateOutcome::Inactive`] even if it was used: TTL may have
//!   deleted it already, and the answer must not depend on when.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use token_core::revocation::{FeedEvent, RevocationId};

use super::{
    AttemptCounter, AttemptOutcome, Family, FeedCursor, NewRefresh, NewUser, PasswordChange, PasswordProof,
    PendingSignup, REVOCATION_SETTLE_MS, ResetToken, RevocationEvent, RevocationPage, RevocationTarget, RotateOutcome,
    SignupOutcome, Store, StoreError, UserRecord, new_event_id,
};

/// Lock threshold the suite uses where it does not vary it (Cognito's 5).
pub const LOCK_AFTER: u32 = 5;
/// Longest lock the suite uses where it does not vary it (15 minutes).
pub const MAX_LOCK_SECS: u64 = 900;
/// Refresh-token lifetime used by the suite (30 days).
pub const REFRESH_TTL: u64 = 30 * 24 * 3600;
/// Family lifetime used by the suite (90 days).
pub const SESSION_MAX: u64 = 90 * 24 * 3600;
/// How many rotations of one token race in [`concurrent_rotations_one_winner`].
pub const RACERS: usize = 50;
/// How many revocations race in [`concurrent_revocations_record_once_each`].
pub const RACERS_REVOKE: usize = 20;
/// How many completions of one registration, and resets with one token,
/// race in [`concurrent_signup_completions_one_winner`] and
/// [`concurrent_resets_one_winner`].
pub const RACERS_RECOVERY: usize = 20;

/// Runs every behaviour of the suite, one after the other.
pub async fn run_all<S: Store>(store: Arc<S>) {
    user_round_trip(&store).await;
    email_taken_writes_nothing(&store).await;
    email_lookup_is_by_normalised_address(&store).await;
    unknown_records_are_none(&store).await;
    failures_lock_exponentially_and_cap(&store).await;
    lockout_threshold_and_cap_are_parameters(&store).await;
    concurrent_failures_all_count(&store).await;
    success_resets_and_rehashes(&store).await;
    success_refused_while_locked(&store).await;
    session_round_trip(&store).await;
    create_session_is_all_or_nothing(&store).await;
    rotate_once_then_already_used(&store).await;
    rotate_unknown_token_is_inactive(&store).await;
    rotate_expired_token_is_inactive(&store).await;
    rotate_in_revoked_family_is_inactive(&store).await;
    rotate_past_family_lifetime_is_inactive(&store).await;
    used_and_dead_token_is_inactive(&store).await;
    concurrent_rotations_one_winner(&store).await;
    add_to_family_only_while_active(&store).await;
    revoke_family_is_idempotent(&store).await;
    revoke_user_families_counts_new_revocations(&store).await;
    attempts_are_limited_per_window(&store).await;
    attempts_are_all_or_nothing(&store).await;
    concurrent_attempts_grant_at_most_the_limit(&store).await;
    clear_attempts_opens_the_window(&store).await;
    revocations_list_in_order_with_paging(&store).await;
    revocations_after_a_cursor_are_newer(&store).await;
    unsettled_revocations_are_listed_later(&store).await;
    expired_revocations_are_not_listed(&store).await;
    session_revocation_revokes_the_family_once(&store).await;
    subject_revocation_raises_tokens_valid_after(&store).await;
    concurrent_revocations_record_once_each(&store).await;
    signup_completes_once(&store).await;
    expired_signup_is_invalid(&store).await;
    signup_of_a_taken_address_is_used_up(&store).await;
    concurrent_signup_completions_one_winner(&store).await;
    two_signups_of_one_address_make_one_account(&store).await;
    reset_tokens_replace_each_other(&store).await;
    reset_changes_the_password_once_with_its_revocation(&store).await;
    wrong_or_expired_reset_writes_nothing(&store).await;
    concurrent_resets_one_winner(&store).await;
    change_with_the_current_hash_only(&store).await;
}

/// Generates one `#[tokio::test]` per behaviour of the suite.
///
/// `$factory` is called as `$factory("behaviour_name").await` and returns
/// the store to test (a fresh one, or a shared one: the behaviours use
/// unique ids).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@each $factory;
            user_round_trip,
            email_taken_writes_nothing,
            email_lookup_is_by_normalised_address,
            unknown_records_are_none,
            failures_lock_exponentially_and_cap,
            lockout_threshold_and_cap_are_parameters,
            concurrent_failures_all_count,
            success_resets_and_rehashes,
            success_refused_while_locked,
            session_round_trip,
            create_session_is_all_or_nothing,
            rotate_once_then_already_used,
            rotate_unknown_token_is_inactive,
            rotate_expired_token_is_inactive,
            rotate_in_revoked_family_is_inactive,
            rotate_past_family_lifetime_is_inactive,
            used_and_dead_token_is_inactive,
            concurrent_rotations_one_winner,
            add_to_family_only_while_active,
            revoke_family_is_idempotent,
            revoke_user_families_counts_new_revocations,
            attempts_are_limited_per_window,
            attempts_are_all_or_nothing,
            clear_attempts_opens_the_window,
            revocations_list_in_order_with_paging,
            revocations_after_a_cursor_are_newer,
            unsettled_revocations_are_listed_later,
            expired_revocations_are_not_listed,
            session_revocation_revokes_the_family_once,
            subject_revocation_raises_tokens_valid_after,
            concurrent_revocations_record_once_each,
            signup_completes_once,
            expired_signup_is_invalid,
            signup_of_a_taken_address_is_used_up,
            concurrent_signup_completions_one_winner,
            two_signups_of_one_address_make_one_account,
            reset_tokens_replace_each_other,
            reset_changes_the_password_once_with_its_revocation,
            wrong_or_expired_reset_writes_nothing,
            concurrent_resets_one_winner,
            change_with_the_current_hash_only,
        );
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = ::std::sync::Arc::new(($factory)(::std::stringify!($name)).await);
                $crate::store::conformance::$name(&store).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected store error: {e:?}"),
    }
}

/// A fresh random id with a readable tag.
#[must_use]
pub fn fresh_id(tag: &str) -> String {
    format!("{tag}-{:016x}{:08x}", rand::random::<u64>(), rand::random::<u32>())
}

/// The wall clock in whole seconds.
#[must_use]
pub fn wall_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        user_id: fresh_id("user"),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        scope: "openid pets:read".to_owned(),
        created_at: wall_clock(),
    }
}

fn fresh_email() -> String {
    format!("{}@example.com", fresh_id("user"))
}

async fn registered<S: Store>(store: &S) -> NewUser {
    let user = new_user(&fresh_email());
    ok(store.create_user(&user).await, "create_user");
    user
}

fn expected_record(user: &NewUser, failed_logins: u32, locked_until: u64) -> UserRecord {
    UserRecord {
        user_id: user.user_id.clone(),
        email: user.email.clone(),
        password_hash: user.password_hash.clone(),
        scope: user.scope.clone(),
        failed_logins,
        locked_until,
        tokens_valid_after: 0,
        password_changed_at: 0,
    }
}

fn family(user_id: &str, created_at: u64, expires_at: u64) -> Family {
    Family { family_id: fresh_id("family"), user_id: user_id.to_owned(), created_at, expires_at, revoked_at: None }
}

fn token_in(family: &Family, issued_at: u64, expires_at: u64) -> NewRefresh {
    NewRefresh {
        // Shaped like the real thing: 43 base64url characters.
        token_hash: format!("{}{}", fresh_id("h"), "A".repeat(17)),
        family_id: family.family_id.clone(),
        user_id: family.user_id.clone(),
        issued_at,
        expires_at,
    }
}

/// A session (family with lifetime [`SESSION_MAX`] and a first token with
/// lifetime [`REFRESH_TTL`]) created at `now`.
async fn session<S: Store>(store: &S, user_id: &str, now: u64) -> (Family, NewRefresh) {
    let family = family(user_id, now, now + SESSION_MAX);
    let first = token_in(&family, now, now + REFRESH_TTL);
    ok(store.create_session(&family, &first).await, "create_session");
    (family, first)
}

async fn assert_not_stored<S: Store>(store: &S, token_hash: &str, what: &str) {
    assert!(ok(store.get_refresh(token_hash).await, "get_refresh").is_none(), "{what}: the token must not be stored");
}

async fn assert_unused<S: Store>(store: &S, token_hash: &str, what: &str) {
    let (record, _) = ok(store.get_refresh(token_hash).await, "get_refresh")
        .unwrap_or_else(|| panic!("{what}: the old token must still be stored"));
    assert_eq!(record.used_at, None, "{what}: the old token must not be marked used");
}

// ---------------------------------------------------------------- users

/// A created user reads back, by id and by email, exactly as created, with no
/// failures and no lock.
pub async fn user_round_trip<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let expected = expected_record(&user, 0, 0);
    assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(expected.clone()));
    // Just registered: DynamoDB finds it through the email marker if the
    // index has not caught up yet.
    assert_eq!(ok(store.find_user_by_email(&user.email).await, "find_user_by_email"), Some(expected));
}

/// A second registration of an address fails with `EmailTaken` and writes
/// nothing: no user item, and the address still belongs to the first user.
pub async fn email_taken_writes_nothing<S: Store>(store: &Arc<S>) {
    let first = registered(store.as_ref()).await;
    let mut second = new_user(&first.email);
    second.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNo".to_owned();
    match store.create_user(&second).await {
        Err(StoreError::EmailTaken) => {}
        other => panic!("second registration of an address: expected EmailTaken, got {other:?}"),
    }
    assert_eq!(ok(store.get_user(&second.user_id).await, "get_user"), None, "EmailTaken must leave no user behind");
    let found = ok(store.find_user_by_email(&first.email).await, "find_user_by_email");
    assert_eq!(found, Some(expected_record(&first, 0, 0)), "the address still belongs to the first user");

    // Concurrent registrations of one new address: exactly one wins.
    let email = fresh_email();
    let mut tasks = tokio::task::JoinSet::new();
    let contenders: Vec<NewUser> = (0..5).map(|_| new_user(&email)).collect();
    for user in contenders.clone() {
        let store = Arc::clone(store);
        tasks.spawn(async move { (user.user_id.clone(), store.create_user(&user).await) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (user_id, result) = joined.unwrap_or_else(|e| panic!("registration task: {e}"));
        match result {
            Ok(()) => winners.push(user_id),
            Err(StoreError::EmailTaken) => {}
            Err(e) => panic!("concurrent registration: unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent registration of an address succeeds");
    for user in &contenders {
        let stored = ok(store.get_user(&user.user_id).await, "get_user").is_some();
        assert_eq!(stored, winners.contains(&user.user_id), "only the winner's user is stored");
    }
    let found = ok(store.find_user_by_email(&email).await, "find_user_by_email");
    assert_eq!(found.map(|u| u.user_id), winners.first().cloned());
}

/// Lookups are by the normalised address the caller passes, exactly:
/// distinct normalised addresses (a `+tag`, non-ASCII, a longer domain) are
/// distinct users, and an unknown address finds nothing.
pub async fn email_lookup_is_by_normalised_address<S: Store>(store: &Arc<S>) {
    let local = fresh_id("n");
    let addresses = [
        format!("{local}@example.com"),
        format!("{local}+tag@example.com"),
        format!("{local}@example.com.au"),
        format!("{local}-jos\u{e9}@b\u{fc}cher.example"),
    ];
    let mut users = Vec::new();
    for email in &addresses {
        let user = new_user(email);
        ok(store.create_user(&user).await, "create_user");
        users.push(user);
    }
    for user in &users {
        let found = ok(store.find_user_by_email(&user.email).await, "find_user_by_email");
        assert_eq!(found, Some(expected_record(user, 0, 0)), "lookup of {}", user.email);
    }
    for missing in
        [format!("{local}@example.co"), format!("x{local}@example.com"), format!("{local}+other@example.com")]
    {
        assert_eq!(ok(store.find_user_by_email(&missing).await, "find_user_by_email"), None, "{missing}");
    }
}

/// Unknown ids, addresses and token hashes read as `None`.
pub async fn unknown_records_are_none<S: Store>(store: &Arc<S>) {
    assert_eq!(ok(store.get_user(&fresh_id("nobody")).await, "get_user"), None);
    assert_eq!(ok(store.find_user_by_email(&fresh_email()).await, "find_user_by_email"), None);
    assert_eq!(ok(store.get_refresh(&fresh_id("nothing")).await, "get_refresh"), None);
}

/// Failure `n` (n >= 5) locks until `now + min(2^(n-5), 900)`; below 5 no
/// lock. Counts far past 64 saturate instead of overflowing.
pub async fn failures_lock_exponentially_and_cap<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let start = wall_clock();
    for n in 1..=80u32 {
        let now = start + u64::from(n);
        let got = ok(store.record_login_failure(&user.user_id, now, LOCK_AFTER, MAX_LOCK_SECS).await, "failure");
        let expected_lock =
            if n < LOCK_AFTER { 0 } else { now + (1u64 << (n - LOCK_AFTER).min(20)).min(MAX_LOCK_SECS) };
        assert_eq!(got, expected_record(&user, n, expected_lock), "after failure {n}");
    }
    let stored = ok(store.get_user(&user.user_id).await, "get_user");
    assert_eq!(stored, Some(expected_record(&user, 80, start + 80 + MAX_LOCK_SECS)), "stored state");
}

/// The threshold and the cap are the caller's: threshold 3 and cap 10 give
/// 1, 2, 4, 8, 10, 10 seconds; threshold 1 locks on the first failure.
pub async fn lockout_threshold_and_cap_are_parameters<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let now = wall_clock();
    let mut locks = Vec::new();
    for _ in 0..8 {
        locks.push(ok(store.record_login_failure(&user.user_id, now, 3, 10).await, "failure").locked_until);
    }
    let secs: Vec<u64> = locks.iter().map(|l| l.saturating_sub(now)).collect();
    assert_eq!(secs, vec![0, 0, 1, 2, 4, 8, 10, 10]);

    let eager = registered(store.as_ref()).await;
    let got = ok(store.record_login_failure(&eager.user_id, now, 1, 60).await, "failure");
    assert_eq!((got.failed_logins, got.locked_until), (1, now + 1));
}

/// Concurrent failures each count once (an atomic increment, not a lost
/// update), and the final lock matches the final count.
pub async fn concurrent_failures_all_count<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let now = wall_clock();
    let racers = 12u32;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..racers {
        let store = Arc::clone(store);
        let id = user.user_id.clone();
        tasks.spawn(async move { store.record_login_failure(&id, now, LOCK_AFTER, MAX_LOCK_SECS).await });
    }
    let mut counts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let got = ok(joined.unwrap_or_else(|e| panic!("failure task: {e}")), "concurrent failure");
        counts.push(got.failed_logins);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=racers).collect::<Vec<_>>(), "every failure counted exactly once");
    let stored = ok(store.get_user(&user.user_id).await, "get_user");
    let lock = now + (1u64 << (racers - LOCK_AFTER)).min(MAX_LOCK_SECS);
    assert_eq!(stored, Some(expected_record(&user, racers, lock)));
}

/// A success resets the count and the lock once the lock has passed, and
/// replaces the hash only when given one.
pub async fn success_resets_and_rehashes<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let now = wall_clock();
    for _ in 0..3 {
        ok(store.record_login_failure(&user.user_id, now, LOCK_AFTER, MAX_LOCK_SECS).await, "failure");
    }
    assert!(ok(store.record_login_success(&user.user_id, now, None).await, "success"));
    assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(expected_record(&user, 0, 0)));

    // Locked, then the lock passes: success resets count and lock.
    for _ in 0..6 {
        ok(store.record_login_failure(&user.user_id, now, LOCK_AFTER, MAX_LOCK_SECS).await, "failure");
    }
    let rehashed = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
    assert!(ok(store.record_login_success(&user.user_id, now + 2, Some(rehashed)).await, "success"));
    let mut expected = expected_record(&user, 0, 0);
    expected.password_hash = rehashed.to_owned();
    assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(expected.clone()));
    // The next success without a new hash keeps the new one.
    assert!(ok(store.record_login_success(&user.user_id, now + 3, None).await, "success"));
    assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(expected));
}

/// While `locked_until > now`, a success returns `false` and writes nothing
/// (neither the reset nor the new hash); from `locked_until` on it succeeds.
pub async fn success_refused_while_locked<S: Store>(store: &Arc<S>) {
    let user = registered(store.as_ref()).await;
    let now = wall_clock();
    let mut last = None;
    for _ in 0..7 {
        last = Some(ok(store.record_login_failure(&user.user_id, now, LOCK_AFTER, MAX_LOCK_SECS).await, "failure"));
    }
    let locked = expected_record(&user, 7, now + 4);
    assert_eq!(last, Some(locked.clone()));

    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bG9ja2Vk$bG9ja2Vk";
    for at in [now, now + 3] {
        let accepted = ok(store.record_login_success(&user.user_id, at, Some(new_hash)).await, "success");
        assert!(!accepted, "success at {at} while locked until {}", now + 4);
        assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(locked.clone()), "nothing written");
    }
    assert!(ok(store.record_login_success(&user.user_id, now + 4, None).await, "success"), "lock over at locked_until");
    assert_eq!(ok(store.get_user(&user.user_id).await, "get_user"), Some(expected_record(&user, 0, 0)));
}

// ---------------------------------------------------------------- sessions

/// A session reads back: the first token (unused) with its family.
pub async fn session_round_trip<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let user_id = fresh_id("user");
    let (family, first) = session(store.as_ref(), &user_id, now).await;
    let (record, read_family) =
        ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("token stored"));
    assert_eq!(record.token_hash, first.token_hash);
    assert_eq!(record.family_id, family.family_id);
    assert_eq!(record.user_id, user_id);
    assert_eq!((record.issued_at, record.expires_at, record.used_at), (now, now + REFRESH_TTL, None));
    assert_eq!(read_family, family);
}

/// `create_session` writes the family and its first token together or not
/// at all: when either already exists the call fails (with any error) and
/// the other is not written.
pub async fn create_session_is_all_or_nothing<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;

    // The family exists: the new token must not appear.
    let stray = token_in(&family, now + 1, now + 1 + REFRESH_TTL);
    let mut again = family.clone();
    again.expires_at += 1;
    assert!(store.create_session(&again, &stray).await.is_err(), "a second family with the same id");
    assert_not_stored(store.as_ref(), &stray.token_hash, "existing family").await;
    let (_, read) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
    assert_eq!(read, family, "the existing family is unchanged");

    // The token exists: the new family must not appear.
    let other = self::family(&family.user_id, now, now + SESSION_MAX);
    let mut clash = first.clone();
    clash.family_id = other.family_id.clone();
    assert!(store.create_session(&other, &clash).await.is_err(), "a token hash that is already stored");
    let probe = token_in(&other, now, now + REFRESH_TTL);
    assert!(!ok(store.add_to_family(&probe, now).await, "add_to_family"), "the new family must not exist");
    let (kept, read) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
    assert_eq!((kept.family_id, read), (family.family_id.clone(), family), "the existing token is unchanged");
}

/// A rotation marks the old token used at `now` and stores the new one; the
/// next rotation of the old token is `AlreadyUsed { used_at }` and writes
/// nothing; the successor rotates in turn.
pub async fn rotate_once_then_already_used<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;
    let second = token_in(&family, now + 10, now + 10 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&first.token_hash, &second, now + 10).await, "rotate"), RotateOutcome::Rotated);

    let (old, _) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("old kept"));
    assert_eq!(old.used_at, Some(now + 10), "the old token is marked used at now");
    let (new, new_family) =
        ok(store.get_refresh(&second.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("new stored"));
    assert_eq!((new.family_id.as_str(), new.user_id.as_str()), (family.family_id.as_str(), family.user_id.as_str()));
    assert_eq!((new.issued_at, new.expires_at, new.used_at), (second.issued_at, second.expires_at, None));
    assert_eq!(new_family, family);

    let third = token_in(&family, now + 20, now + 20 + REFRESH_TTL);
    let again = ok(store.rotate(&first.token_hash, &third, now + 20).await, "rotate");
    assert_eq!(again, RotateOutcome::AlreadyUsed { used_at: now + 10 });
    assert_not_stored(store.as_ref(), &third.token_hash, "AlreadyUsed").await;
    let (old, _) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("old kept"));
    assert_eq!(old.used_at, Some(now + 10), "the first use time is kept");

    assert_eq!(ok(store.rotate(&second.token_hash, &third, now + 30).await, "rotate"), RotateOutcome::Rotated);
}

/// Rotating a token that was never stored is `Inactive` and writes nothing.
pub async fn rotate_unknown_token_is_inactive<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, _) = session(store.as_ref(), &fresh_id("user"), now).await;
    let new = token_in(&family, now, now + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&fresh_id("unknown"), &new, now).await, "rotate"), RotateOutcome::Inactive);
    assert_not_stored(store.as_ref(), &new.token_hash, "Inactive").await;
}

/// A token is expired from `expires_at` on: rotating it then is `Inactive`
/// and writes nothing; a second earlier it still rotates.
pub async fn rotate_expired_token_is_inactive<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let family = family(&fresh_id("user"), now, now + SESSION_MAX);
    let short = token_in(&family, now, now + 60);
    ok(store.create_session(&family, &short).await, "create_session");
    let new = token_in(&family, now + 60, now + 60 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&short.token_hash, &new, now + 60).await, "rotate"), RotateOutcome::Inactive);
    assert_not_stored(store.as_ref(), &new.token_hash, "expired").await;
    assert_unused(store.as_ref(), &short.token_hash, "expired").await;
    assert_eq!(ok(store.rotate(&short.token_hash, &new, now + 59).await, "rotate"), RotateOutcome::Rotated);
}

/// Rotating a token of a revoked family is `Inactive` and writes nothing.
pub async fn rotate_in_revoked_family_is_inactive<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;
    ok(store.revoke_family(&family.family_id, now + 1).await, "revoke_family");
    let new = token_in(&family, now + 2, now + 2 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&first.token_hash, &new, now + 2).await, "rotate"), RotateOutcome::Inactive);
    assert_not_stored(store.as_ref(), &new.token_hash, "revoked family").await;
    assert_unused(store.as_ref(), &first.token_hash, "revoked family").await;
}

/// A family is over from its `expires_at` on (the absolute session
/// lifetime), however fresh its tokens: rotating then is `Inactive` and
/// writes nothing.
pub async fn rotate_past_family_lifetime_is_inactive<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let family = family(&fresh_id("user"), now, now + 100);
    let first = token_in(&family, now, now + REFRESH_TTL);
    ok(store.create_session(&family, &first).await, "create_session");
    let new = token_in(&family, now + 100, now + 100 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&first.token_hash, &new, now + 100).await, "rotate"), RotateOutcome::Inactive);
    assert_not_stored(store.as_ref(), &new.token_hash, "family past lifetime").await;
    assert_unused(store.as_ref(), &first.token_hash, "family past lifetime").await;
    assert_eq!(ok(store.rotate(&first.token_hash, &new, now + 99).await, "rotate"), RotateOutcome::Rotated);
}

/// A used token that is also expired, or whose family is revoked, is
/// `Inactive` (not `AlreadyUsed`).
pub async fn used_and_dead_token_is_inactive<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let family = family(&fresh_id("user"), now, now + SESSION_MAX);
    let first = token_in(&family, now, now + 60);
    ok(store.create_session(&family, &first).await, "create_session");
    let second = token_in(&family, now + 1, now + 1 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&first.token_hash, &second, now + 1).await, "rotate"), RotateOutcome::Rotated);

    let late = token_in(&family, now + 60, now + 60 + REFRESH_TTL);
    assert_eq!(ok(store.rotate(&first.token_hash, &late, now + 60).await, "rotate"), RotateOutcome::Inactive);
    let early = token_in(&family, now + 2, now + 2 + REFRESH_TTL);
    ok(store.revoke_family(&family.family_id, now + 2).await, "revoke_family");
    assert_eq!(ok(store.rotate(&first.token_hash, &early, now + 3).await, "rotate"), RotateOutcome::Inactive);
    assert_not_stored(store.as_ref(), &late.token_hash, "dead token").await;
    assert_not_stored(store.as_ref(), &early.token_hash, "dead token").await;
}

/// [`RACERS`] concurrent rotations of one token, each with its own
/// successor: exactly one `Rotated`, every other `AlreadyUsed` with the
/// winner's time; afterwards the old token is marked used and exactly one
/// successor (the winner's) is stored: no orphaned tokens.
pub async fn concurrent_rotations_one_winner<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;
    let at = now + 5;
    let successors: Vec<NewRefresh> = (0..RACERS).map(|_| token_in(&family, at, at + REFRESH_TTL)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for successor in successors.clone() {
        let store = Arc::clone(store);
        let old = first.token_hash.clone();
        tasks.spawn(async move { (successor.token_hash.clone(), store.rotate(&old, &successor, at).await) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (hash, result) = joined.unwrap_or_else(|e| panic!("rotation task: {e}"));
        match ok(result, "concurrent rotate") {
            RotateOutcome::Rotated => winners.push(hash),
            RotateOutcome::AlreadyUsed { used_at } => assert_eq!(used_at, at, "losers see the winner's time"),
            RotateOutcome::Inactive => panic!("a racing rotation of a live token was Inactive"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {RACERS} concurrent rotations wins");

    let (old, _) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("old kept"));
    assert_eq!(old.used_at, Some(at), "the old token is marked used");
    let mut stored = HashSet::new();
    for successor in &successors {
        if ok(store.get_refresh(&successor.token_hash).await, "get_refresh").is_some() {
            stored.insert(successor.token_hash.clone());
        }
    }
    assert_eq!(stored, winners.into_iter().collect::<HashSet<_>>(), "exactly the winner's successor is stored");
}

/// `add_to_family` stores a token in a live family, and returns `false`
/// writing nothing for a revoked family, a family past its lifetime, or an
/// unknown family.
pub async fn add_to_family_only_while_active<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;
    let extra = token_in(&family, now + 1, now + 1 + REFRESH_TTL);
    assert!(ok(store.add_to_family(&extra, now + 1).await, "add_to_family"));
    let (record, read_family) =
        ok(store.get_refresh(&extra.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("extra stored"));
    assert_eq!((record.family_id.as_str(), record.used_at), (family.family_id.as_str(), None));
    assert_eq!(read_family, family);
    assert_unused(store.as_ref(), &first.token_hash, "add_to_family leaves the others alone").await;

    let past = token_in(&family, family.expires_at, family.expires_at + 1);
    assert!(!ok(store.add_to_family(&past, family.expires_at).await, "add_to_family"), "past the family lifetime");
    assert_not_stored(store.as_ref(), &past.token_hash, "family past lifetime").await;

    let orphan = token_in(&self::family(&family.user_id, now, now + SESSION_MAX), now, now + REFRESH_TTL);
    assert!(!ok(store.add_to_family(&orphan, now).await, "add_to_family"), "unknown family");
    assert_not_stored(store.as_ref(), &orphan.token_hash, "unknown family").await;

    ok(store.revoke_family(&family.family_id, now + 2).await, "revoke_family");
    let late = token_in(&family, now + 3, now + 3 + REFRESH_TTL);
    assert!(!ok(store.add_to_family(&late, now + 3).await, "add_to_family"), "revoked family");
    assert_not_stored(store.as_ref(), &late.token_hash, "revoked family").await;
}

/// Revoking twice keeps the first time; revoking an unknown family is not an
/// error and creates nothing.
pub async fn revoke_family_is_idempotent<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now).await;
    ok(store.revoke_family(&family.family_id, now + 1).await, "revoke_family");
    ok(store.revoke_family(&family.family_id, now + 2).await, "revoke_family again");
    let (_, read_family) =
        ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("token kept"));
    assert_eq!(read_family.revoked_at, Some(now + 1), "the first revocation time is kept");

    let unknown = self::family(&fresh_id("user"), now, now + SESSION_MAX);
    ok(store.revoke_family(&unknown.family_id, now).await, "revoke_family of an unknown family");
    // Had the revocation created a (revoked) family, this would still be
    // false; a live family created now must be usable.
    let token = token_in(&unknown, now, now + REFRESH_TTL);
    ok(store.create_session(&unknown, &token).await, "create_session after revoking an unknown id");
    let (_, created) =
        ok(store.get_refresh(&token.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("stored"));
    assert_eq!(created, unknown, "revoking an unknown family left nothing behind");
}

/// `revoke_user_families` revokes every live family of the user, counts only
/// the newly revoked ones, keeps earlier revocation times and leaves other
/// users alone.
pub async fn revoke_user_families_counts_new_revocations<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let user_id = fresh_id("user");
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(session(store.as_ref(), &user_id, now).await);
    }
    let (bystander_family, bystander_token) = session(store.as_ref(), &fresh_id("user"), now).await;
    ok(store.revoke_family(&sessions[0].0.family_id, now + 1).await, "revoke_family");

    assert_eq!(ok(store.revoke_user_families(&user_id, now + 2).await, "revoke_user_families"), 3);
    for (i, (family, token)) in sessions.iter().enumerate() {
        let (_, read) = ok(store.get_refresh(&token.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
        assert_eq!(read.family_id, family.family_id);
        assert_eq!(read.revoked_at, Some(if i == 0 { now + 1 } else { now + 2 }), "family {i}");
    }
    assert_eq!(ok(store.revoke_user_families(&user_id, now + 3).await, "revoke_user_families"), 0, "nothing new");
    assert_eq!(ok(store.revoke_user_families(&fresh_id("user"), now).await, "revoke_user_families"), 0, "no families");

    let (_, read) =
        ok(store.get_refresh(&bystander_token.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
    assert_eq!(read, bystander_family, "another user's family is untouched");
}

// ------------------------------------------------------- attempt counters

fn counter(limit: u32, window_secs: u64) -> AttemptCounter {
    AttemptCounter { key: fresh_id("attempt"), limit, window_secs }
}

/// `limit` attempts per window, then refused until the window ends, with
/// the time left; the next window starts from zero (counters expire).
pub async fn attempts_are_limited_per_window<S: Store>(store: &Arc<S>) {
    let c = counter(3, 600);
    let now = wall_clock();
    let (_, end) = c.window(now);
    for i in 0..3 {
        let got = ok(store.take_attempt(std::slice::from_ref(&c), now).await, "take");
        assert_eq!(got, AttemptOutcome::Granted, "attempt {i} of 3");
    }
    let got = ok(store.take_attempt(std::slice::from_ref(&c), now).await, "take past the limit");
    assert_eq!(got, AttemptOutcome::Refused { retry_after: end - now, at_limit: 1 });
    assert!(got.refused_by(0) && !got.refused_by(1));
    // Refusals count nothing: still refused a second before the end.
    let got = ok(store.take_attempt(std::slice::from_ref(&c), end - 1).await, "take at the window's last second");
    assert_eq!(got, AttemptOutcome::Refused { retry_after: 1, at_limit: 1 });
    // The next window is fresh.
    for i in 0..3 {
        let got = ok(store.take_attempt(std::slice::from_ref(&c), end).await, "take in the next window");
        assert_eq!(got, AttemptOutcome::Granted, "attempt {i} of the next window");
    }
}

/// One counter at its limit refuses the whole take, and the others do not
/// count it.
pub async fn attempts_are_all_or_nothing<S: Store>(store: &Arc<S>) {
    let (a, b) = (counter(1, 600), counter(5, 600));
    let both = [a.clone(), b.clone()];
    let now = wall_clock();
    assert_eq!(ok(store.take_attempt(&both, now).await, "first take"), AttemptOutcome::Granted);
    for _ in 0..3 {
        let got = ok(store.take_attempt(&both, now).await, "take with a at its limit");
        assert!(got.refused_by(0) && !got.refused_by(1), "{got:?}");
    }
    // b counted only the granted take: 4 more fit, the 5th does not.
    for i in 0..4 {
        let got = ok(store.take_attempt(std::slice::from_ref(&b), now).await, "take on b");
        assert_eq!(got, AttemptOutcome::Granted, "b attempt {} of 5", i + 2);
    }
    let got = ok(store.take_attempt(std::slice::from_ref(&b), now).await, "b past its limit");
    assert!(got.refused_by(0), "{got:?}");
}

/// A burst of concurrent takes on one counter is granted at most `limit`
/// times (exactly `limit` when the store reported no error).
///
/// Run by [`run_all`] (the SQLite tests) but left out of
/// [`store_conformance_tests!`]: the DynamoDB tests run against moto, whose
/// `TransactWriteItems` checks conditions and writes without a lock (and
/// rolls back by restoring a deep copy), so concurrent transactions are not
/// serialisable there (20 of 50 granted against a limit of 5, seen once in
/// three runs). DynamoDB's own transactions are serialisable; run this
/// against it with `run_all` or by name.
pub async fn concurrent_attempts_grant_at_most_the_limit<S: Store>(store: &Arc<S>) {
    const LIMIT: u32 = 5;
    let c = counter(LIMIT, 600);
    let per_caller = counter(1000, 600);
    let now = wall_clock();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (store, counters) = (Arc::clone(store), [per_caller.clone(), c.clone()]);
        tasks.spawn(async move { store.take_attempt(&counters, now).await });
    }
    let (mut granted, mut refused, mut errors) = (0u32, 0u32, 0u32);
    while let Some(r) = tasks.join_next().await {
        let Ok(r) = r else { panic!("a take_attempt task panicked") };
        match r {
            Ok(AttemptOutcome::Granted) => granted += 1,
            Ok(got @ AttemptOutcome::Refused { .. }) => {
                assert!(got.refused_by(1) && !got.refused_by(0), "{got:?}");
                refused += 1;
            }
            Err(StoreError::Unavailable(_)) => errors += 1,
            Err(e) => panic!("unexpected store error: {e:?}"),
        }
    }
    assert!(granted <= LIMIT, "{granted} of {RACERS} concurrent takes granted, limit {LIMIT}");
    if errors == 0 {
        assert_eq!(granted, LIMIT, "no errors: exactly the limit is granted ({refused} refused)");
    }
    assert!(granted >= 1, "none of {RACERS} granted ({errors} errors)");
}

/// Clearing a counter's window lets attempts through again; clearing an
/// unknown counter is fine.
pub async fn clear_attempts_opens_the_window<S: Store>(store: &Arc<S>) {
    let c = counter(2, 600);
    let now = wall_clock();
    for _ in 0..2 {
        ok(store.take_attempt(std::slice::from_ref(&c), now).await, "take");
    }
    assert!(ok(store.take_attempt(std::slice::from_ref(&c), now).await, "take").refused_by(0));
    ok(store.clear_attempts(&c, now).await, "clear");
    assert_eq!(
        ok(store.take_attempt(std::slice::from_ref(&c), now).await, "take after clear"),
        AttemptOutcome::Granted
    );
    ok(store.clear_attempts(&counter(1, 60), now).await, "clear of an unknown counter");
}

// ------------------------------------------------------ revocation feed

fn subject_event(user_id: &str, time_ms: u64, before: u64, until: u64) -> RevocationEvent {
    RevocationEvent {
        event_id: ok(new_event_id(), "new_event_id"),
        time_ms,
        until,
        target: RevocationTarget::Subject { user_id: user_id.to_owned(), before, family_id: None },
    }
}

fn session_event(family_id: &str, time_ms: u64, until: u64) -> RevocationEvent {
    RevocationEvent {
        event_id: ok(new_event_id(), "new_event_id"),
        time_ms,
        until,
        target: RevocationTarget::Session { family_id: family_id.to_owned() },
    }
}

/// Everything the feed lists after `after` at `now_ms`, following `more`
/// page by page; checks that pages are at most `limit` long and that
/// cursors only move forward. Returns the events and the last page.
async fn read_feed<S: Store>(
    store: &S,
    after: Option<FeedCursor>,
    limit: usize,
    now_ms: u64,
) -> (Vec<FeedEvent>, RevocationPage) {
    let mut events = Vec::new();
    let mut cursor = after;
    for _ in 0..10_000 {
        let page = ok(store.revocations_after(cursor.as_ref(), limit, now_ms).await, "revocations_after");
        assert!(page.events.len() <= limit, "a page of {} events for limit {limit}", page.events.len());
        if let Some(c) = &cursor {
            assert!(page.next >= *c, "the cursor went back: {c} -> {}", page.next);
        }
        events.extend(page.events.iter().copied());
        if !page.more {
            return (events, page);
        }
        cursor = Some(page.next.clone());
    }
    panic!("the feed never said more: false");
}

/// The `before` values of the subject events of `user_id`, in feed order.
fn befores_of(events: &[FeedEvent], user_id: &str) -> Vec<u64> {
    let id = RevocationId::subject(user_id);
    events
        .iter()
        .filter_map(|e| match *e {
            FeedEvent::Subject { id: i, before, .. } if i == id => Some(before),
            _ => None,
        })
        .collect()
}

/// Events are listed in `(time_ms, event_id)` order, across hour buckets,
/// page by page, each exactly once, whatever the order they were written
/// in; an event exactly at `as_of_ms` is listed.
pub async fn revocations_list_in_order_with_paging<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let base = now_ms - 2 * 3_600_000 - 17;
    let user = registered(store.as_ref()).await;
    let times = [
        base,
        base + 1,
        base + 1,
        base + 3_600_000,
        base + 3_600_005,
        now_ms - 5000,
        now_ms - 5000,
        now_ms - 2000,
        now_ms - REVOCATION_SETTLE_MS,
    ];
    // `before` numbers the events; written in reverse order.
    let mut written: Vec<RevocationEvent> =
        times.iter().enumerate().map(|(i, t)| subject_event(&user.user_id, *t, i as u64, now + 1000)).collect();
    for e in written.iter().rev() {
        assert!(ok(store.record_revocation(e, now).await, "record_revocation"), "recorded");
    }
    written.sort_by(|a, b| (a.time_ms, &a.event_id).cmp(&(b.time_ms, &b.event_id)));
    let expected: Vec<u64> = written
        .iter()
        .map(|e| match e.target {
            RevocationTarget::Subject { before, .. } => before,
            RevocationTarget::Session { .. } => unreachable!(),
        })
        .collect();

    for limit in [1, 2, 4, 1000] {
        let (events, last) = read_feed(store.as_ref(), Some(FeedCursor::at(base)), limit, now_ms).await;
        assert_eq!(befores_of(&events, &user.user_id), expected, "limit {limit}: every event once, in order");
        assert_eq!(last.as_of_ms, now_ms - REVOCATION_SETTLE_MS);
        assert_eq!(last.next, FeedCursor::at(now_ms - REVOCATION_SETTLE_MS + 1), "limit {limit}");
    }
    // From the start (no cursor): the same.
    let (events, _) = read_feed(store.as_ref(), None, 3, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id), expected, "no cursor");
    // The feed names the user hashed, never in clear.
    assert!(events.iter().all(|e| !format!("{e:?}").contains(&user.user_id)));
}

/// After a cursor the feed lists only what comes after it: from the middle
/// of the listing, and from the end of a complete listing (nothing, then
/// what was written since).
pub async fn revocations_after_a_cursor_are_newer<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    for (i, t) in [now_ms - 9000, now_ms - 8000, now_ms - 7000].into_iter().enumerate() {
        ok(store.record_revocation(&subject_event(&user.user_id, t, i as u64, now + 1000), now).await, "record");
    }
    let from = Some(FeedCursor::at(now_ms - 10_000));
    let first = ok(store.revocations_after(from.as_ref(), 1, now_ms).await, "revocations_after");
    assert_eq!(befores_of(&first.events, &user.user_id), vec![0]);
    assert!(first.more);
    let (rest, end) = read_feed(store.as_ref(), Some(first.next.clone()), 1000, now_ms).await;
    assert_eq!(befores_of(&rest, &user.user_id), vec![1, 2], "only the events after the cursor");

    let (nothing, again) = read_feed(store.as_ref(), Some(end.next.clone()), 1000, now_ms).await;
    assert_eq!(befores_of(&nothing, &user.user_id), Vec::<u64>::new(), "nothing new");
    assert_eq!(again.next, end.next);
    let later = now_ms + 500;
    ok(store.record_revocation(&subject_event(&user.user_id, later, 3, now + 1000), now).await, "record");
    let (new, _) = read_feed(store.as_ref(), Some(end.next), 1000, later + REVOCATION_SETTLE_MS).await;
    assert_eq!(befores_of(&new, &user.user_id), vec![3], "exactly the new event");
}

/// Events younger than [`REVOCATION_SETTLE_MS`] are not listed yet and
/// `as_of_ms` stays before them; a writer that races the reader (its event
/// time just after the reader's `as_of_ms`, committed after the read) is
/// listed by the next read from the cursor the first one returned.
pub async fn unsettled_revocations_are_listed_later<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let as_of = now_ms - REVOCATION_SETTLE_MS;
    ok(store.record_revocation(&subject_event(&user.user_id, as_of, 0, now + 1000), now).await, "record");
    ok(store.record_revocation(&subject_event(&user.user_id, as_of + 1, 1, now + 1000), now).await, "record");
    let (events, page) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 10_000)), 1000, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id), vec![0], "settled: listed; younger: not yet");
    assert_eq!(page.as_of_ms, as_of, "as_of_ms does not pass the unsettled event");
    assert!(page.next < FeedCursor::at(as_of + 1) || page.next == FeedCursor::at(as_of + 1));

    // The racing writer: started after the reader's cutoff, committed now.
    ok(store.record_revocation(&subject_event(&user.user_id, as_of + 1, 2, now + 1000), now).await, "record");
    let (later, _) = read_feed(store.as_ref(), Some(page.next), 1000, now_ms + REVOCATION_SETTLE_MS).await;
    let mut got = befores_of(&later, &user.user_id);
    got.sort_unstable();
    assert_eq!(got, vec![1, 2], "both later events, the first one not again");
}

/// An event whose `until` has passed is not listed (TTL deletion is late);
/// one second before, it is.
pub async fn expired_revocations_are_not_listed<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000 + 500;
    let user = registered(store.as_ref()).await;
    // Written a while ago (so no sweep at write time), expiring now.
    let then = now - 60;
    ok(store.record_revocation(&subject_event(&user.user_id, then * 1000, 0, now), then).await, "record");
    ok(store.record_revocation(&subject_event(&user.user_id, then * 1000 + 1, 1, now + 1), then).await, "record");
    for limit in [1, 1000] {
        let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(then * 1000 - 1)), limit, now_ms).await;
        assert_eq!(befores_of(&events, &user.user_id), vec![1], "limit {limit}: the expired event is left out");
    }
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(then * 1000 - 1)), 1000, now_ms - 1000).await;
    assert_eq!(befores_of(&events, &user.user_id), vec![0, 1], "a second earlier both are live (control)");
}

/// A session event revokes its family in the same write, once: again, for
/// an unknown family or a revoked one, nothing is recorded. The feed names
/// the family hashed.
pub async fn session_revocation_revokes_the_family_once<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let (family, first) = session(store.as_ref(), &fresh_id("user"), now - 10).await;
    let e = session_event(&family.family_id, now_ms - 5000, now + 1000);
    assert!(ok(store.record_revocation(&e, now - 5).await, "record_revocation"), "first logout records");
    let (_, read) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
    assert_eq!(read.revoked_at, Some(now - 5), "the family is revoked in the same write");
    let again = session_event(&family.family_id, now_ms - 4000, now + 1000);
    assert!(!ok(store.record_revocation(&again, now - 4).await, "record_revocation"), "second logout: nothing");
    let unknown = session_event(&fresh_id("family"), now_ms - 3000, now + 1000);
    assert!(!ok(store.record_revocation(&unknown, now - 3).await, "record_revocation"), "unknown family: nothing");

    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 6000)), 1000, now_ms).await;
    let id = RevocationId::session(&family.family_id);
    let mine: Vec<_> = events.iter().filter(|e| matches!(e, FeedEvent::Session { id: i, .. } if *i == id)).collect();
    assert_eq!(mine, vec![&FeedEvent::Session { id, until: now + 1000 }], "one event, hashed id");
    let unknown_id = match unknown.target {
        RevocationTarget::Session { family_id } => RevocationId::session(&family_id),
        RevocationTarget::Subject { .. } => unreachable!(),
    };
    assert!(!events.iter().any(|e| matches!(e, FeedEvent::Session { id: i, .. } if *i == unknown_id)));
    assert!(!events.iter().any(|e| format!("{e:?}").contains(&family.family_id)), "never in clear");
}

/// A subject event raises the user's `tokens_valid_after` to `before`,
/// never lowers it; with a family (reuse detection) it also revokes it,
/// once.
pub async fn subject_revocation_raises_tokens_valid_after<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let read_tva = |u: Option<UserRecord>| u.map(|u| u.tokens_valid_after).unwrap_or_else(|| panic!("user kept"));
    assert_eq!(read_tva(ok(store.get_user(&user.user_id).await, "get_user")), 0, "none yet");
    ok(store.record_revocation(&subject_event(&user.user_id, now_ms - 5000, now + 1, now + 1000), now).await, "r");
    assert_eq!(read_tva(ok(store.get_user(&user.user_id).await, "get_user")), now + 1);
    let older = subject_event(&user.user_id, now_ms - 4000, now - 100, now + 1000);
    assert!(ok(store.record_revocation(&older, now).await, "record_revocation"), "recorded all the same");
    assert_eq!(read_tva(ok(store.get_user(&user.user_id).await, "get_user")), now + 1, "never lowered");
    let found = ok(store.find_user_by_email(&user.email).await, "find_user_by_email");
    assert_eq!(found.map(|u| u.tokens_valid_after), Some(now + 1), "by email too");

    let (family, first) = session(store.as_ref(), &user.user_id, now - 10).await;
    let reuse = RevocationEvent {
        target: RevocationTarget::Subject {
            user_id: user.user_id.clone(),
            before: now + 2,
            family_id: Some(family.family_id.clone()),
        },
        ..subject_event(&user.user_id, now_ms - 3000, 0, now + 1000)
    };
    assert!(ok(store.record_revocation(&reuse, now).await, "record_revocation"), "reuse records");
    let (_, read) = ok(store.get_refresh(&first.token_hash).await, "get_refresh").unwrap_or_else(|| panic!("kept"));
    assert_eq!(read.revoked_at, Some(now), "the family is revoked in the same write");
    assert_eq!(read_tva(ok(store.get_user(&user.user_id).await, "get_user")), now + 2);
    let again = RevocationEvent { event_id: ok(new_event_id(), "id"), time_ms: now_ms - 2000, ..reuse.clone() };
    assert!(!ok(store.record_revocation(&again, now).await, "record_revocation"), "the family was revoked already");
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 6000)), 1000, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id), vec![now + 1, now - 100, now + 2], "three events, in order");
}

/// Concurrent revocations: 20 subject events (logout-alls) each record one
/// event; 20 session events for one family (racing logouts) record exactly
/// one, and the 20 distinct families' events all record.
pub async fn concurrent_revocations_record_once_each<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let (family, _) = session(store.as_ref(), &user.user_id, now - 10).await;
    let mut others = Vec::new();
    for _ in 0..RACERS_REVOKE {
        others.push(session(store.as_ref(), &user.user_id, now - 10).await.0);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, other) in others.iter().enumerate() {
        let s = Arc::clone(store);
        let subject = subject_event(&user.user_id, now_ms - 3000 + i as u64, now + 1, now + 1000);
        let same = session_event(&family.family_id, now_ms - 3000, now + 1000);
        let other = session_event(&other.family_id, now_ms - 2000, now + 1000);
        tasks.spawn(async move {
            let (a, b, c) = tokio::join!(
                s.record_revocation(&subject, now),
                s.record_revocation(&same, now),
                s.record_revocation(&other, now)
            );
            (ok(a, "subject"), ok(b, "same family"), ok(c, "other family"))
        });
    }
    let (mut subjects, mut same, mut other) = (0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (a, b, c) = joined.unwrap_or_else(|e| panic!("task: {e}"));
        subjects += usize::from(a);
        same += usize::from(b);
        other += usize::from(c);
    }
    assert_eq!((subjects, same, other), (RACERS_REVOKE, 1, RACERS_REVOKE));
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 4000)), 7, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id).len(), RACERS_REVOKE, "one subject event each");
    let id = RevocationId::session(&family.family_id);
    let count = events.iter().filter(|e| matches!(e, FeedEvent::Session { id: i, .. } if *i == id)).count();
    assert_eq!(count, 1, "one event for the family");
    let ids: HashSet<RevocationId> = others.iter().map(|f| RevocationId::session(&f.family_id)).collect();
    let count = events.iter().filter(|e| matches!(e, FeedEvent::Session { id, .. } if ids.contains(id))).count();
    assert_eq!(count, RACERS_REVOKE, "one event per other family");
}

// ------------------------------------------------- sign-up and recovery

const OTHER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$bmV3aGFzaG5ld2hhc2g";

fn pending(email: &str, now: u64, expires_at: u64) -> PendingSignup {
    PendingSignup {
        token_hash: fresh_id("signup"),
        email: email.to_owned(),
        password_hash: new_user(email).password_hash,
        scope: "openid pets:read".to_owned(),
        created_at: now,
        expires_at,
    }
}

fn reset_change(user_id: &str, token_hash: &str, new_hash: &str, now: u64) -> PasswordChange {
    PasswordChange {
        user_id: user_id.to_owned(),
        new_hash: new_hash.to_owned(),
        proof: PasswordProof::ResetToken { token_hash: token_hash.to_owned() },
        event: subject_event(user_id, now * 1000 - 2000, now + 1, now + 1000),
    }
}

async fn user_of<S: Store>(store: &S, user_id: &str) -> UserRecord {
    ok(store.get_user(user_id).await, "get_user").unwrap_or_else(|| panic!("user {user_id} missing"))
}

/// A pending registration becomes an account once, with what it holds; the
/// address was not claimed before.
pub async fn signup_completes_once<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let email = fresh_email();
    let p = pending(&email, now, now + 3600);
    ok(store.create_signup(&p).await, "create_signup");
    assert_eq!(ok(store.find_user_by_email(&email).await, "find"), None, "pending is not an account");
    let id = fresh_id("user");
    let created = ok(store.complete_signup(&p.token_hash, &id, now + 10).await, "complete_signup");
    let SignupOutcome::Created(user) = created else { panic!("expected Created, got {created:?}") };
    assert_eq!((user.user_id.as_str(), user.email.as_str()), (id.as_str(), email.as_str()));
    assert_eq!((user.password_hash.as_str(), user.scope.as_str()), (p.password_hash.as_str(), p.scope.as_str()));
    let found = ok(store.find_user_by_email(&email).await, "find").map(|u| u.user_id);
    assert_eq!(found.as_deref(), Some(id.as_str()));
    let again = ok(store.complete_signup(&p.token_hash, &fresh_id("user"), now + 11).await, "again");
    assert_eq!(again, SignupOutcome::Invalid, "single use");
    let unknown = ok(store.complete_signup(&fresh_id("nope"), &fresh_id("user"), now).await, "unknown");
    assert_eq!(unknown, SignupOutcome::Invalid);
}

/// An expired registration (`expires_at == now` included) makes nothing.
pub async fn expired_signup_is_invalid<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let email = fresh_email();
    let p = pending(&email, now - 100, now);
    ok(store.create_signup(&p).await, "create_signup");
    let out = ok(store.complete_signup(&p.token_hash, &fresh_id("user"), now).await, "complete_signup");
    assert_eq!(out, SignupOutcome::Invalid);
    assert_eq!(ok(store.find_user_by_email(&email).await, "find"), None, "no account");
    // Control: the same registration a second earlier would have worked.
    let live = pending(&email, now - 100, now + 1);
    ok(store.create_signup(&live).await, "create_signup");
    let out = ok(store.complete_signup(&live.token_hash, &fresh_id("user"), now).await, "complete_signup");
    assert!(matches!(out, SignupOutcome::Created(_)), "{out:?}");
}

/// Completing a registration of an address that has an account changes
/// nothing of the account and uses the registration up.
pub async fn signup_of_a_taken_address_is_used_up<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let user = registered(store.as_ref()).await;
    let p = pending(&user.email, now, now + 3600);
    ok(store.create_signup(&p).await, "create_signup");
    let out = ok(store.complete_signup(&p.token_hash, &fresh_id("user"), now).await, "complete_signup");
    assert_eq!(out, SignupOutcome::EmailTaken);
    let again = ok(store.complete_signup(&p.token_hash, &fresh_id("user"), now).await, "again");
    assert_eq!(again, SignupOutcome::Invalid, "used up");
    let found = ok(store.find_user_by_email(&user.email).await, "find").map(|u| u.user_id);
    assert_eq!(found, Some(user.user_id.clone()), "the account is untouched");
}

/// Of concurrent completions of one registration exactly one creates the
/// account.
pub async fn concurrent_signup_completions_one_winner<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let email = fresh_email();
    let p = pending(&email, now, now + 3600);
    ok(store.create_signup(&p).await, "create_signup");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RACERS_RECOVERY {
        let (s, hash) = (Arc::clone(store), p.token_hash.clone());
        tasks.spawn(async move {
            let id = fresh_id("user");
            (ok(s.complete_signup(&hash, &id, now).await, "complete_signup"), id)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (out, id) = joined.unwrap_or_else(|e| panic!("task: {e}"));
        match out {
            SignupOutcome::Created(u) => winners.push((u.user_id, id)),
            SignupOutcome::Invalid => {}
            SignupOutcome::EmailTaken => panic!("one registration cannot find its own address taken"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(winners[0].0, winners[0].1);
    let found = ok(store.find_user_by_email(&email).await, "find").map(|u| u.user_id);
    assert_eq!(found.as_ref(), Some(&winners[0].0), "the winner owns the address");
}

/// Two registrations of one address completed at once: one account.
pub async fn two_signups_of_one_address_make_one_account<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let email = fresh_email();
    let (a, b) = (pending(&email, now, now + 3600), pending(&email, now, now + 3600));
    ok(store.create_signup(&a).await, "create_signup");
    ok(store.create_signup(&b).await, "create_signup");
    let (ida, idb) = (fresh_id("user"), fresh_id("user"));
    let (ra, rb) =
        tokio::join!(store.complete_signup(&a.token_hash, &ida, now), store.complete_signup(&b.token_hash, &idb, now));
    let outs = [ok(ra, "a"), ok(rb, "b")];
    let created = outs.iter().filter(|o| matches!(o, SignupOutcome::Created(_))).count();
    let taken = outs.iter().filter(|o| matches!(o, SignupOutcome::EmailTaken)).count();
    assert_eq!((created, taken), (1, 1), "{outs:?}");
}

/// A user has one reset token: a new one replaces the last.
pub async fn reset_tokens_replace_each_other<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let user = registered(store.as_ref()).await;
    assert_eq!(ok(store.get_reset(&user.user_id).await, "get_reset"), None);
    let first = ResetToken {
        user_id: user.user_id.clone(),
        token_hash: fresh_id("reset"),
        created_at: now,
        expires_at: now + 900,
    };
    ok(store.put_reset(&first).await, "put_reset");
    assert_eq!(ok(store.get_reset(&user.user_id).await, "get_reset"), Some(first.clone()));
    let second = ResetToken { token_hash: fresh_id("reset"), created_at: now + 1, ..first.clone() };
    ok(store.put_reset(&second).await, "put_reset");
    assert_eq!(ok(store.get_reset(&user.user_id).await, "get_reset"), Some(second.clone()));
    let stale = reset_change(&user.user_id, &first.token_hash, OTHER_HASH, now + 2);
    assert!(!ok(store.change_password(&stale, now + 2).await, "change_password"), "the replaced token is dead");
    assert_eq!(user_of(store.as_ref(), &user.user_id).await.password_hash, user.password_hash);
    let fresh = reset_change(&user.user_id, &second.token_hash, OTHER_HASH, now + 2);
    assert!(ok(store.change_password(&fresh, now + 2).await, "change_password"), "control: the newest works");
}

/// A reset sets the hash, raises `tokens_valid_after`, records its event
/// and uses the token up, in one write; a second use writes nothing.
pub async fn reset_changes_the_password_once_with_its_revocation<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let token_hash = fresh_id("reset");
    let reset = ResetToken {
        user_id: user.user_id.clone(),
        token_hash: token_hash.clone(),
        created_at: now,
        expires_at: now + 900,
    };
    ok(store.put_reset(&reset).await, "put_reset");
    let change = reset_change(&user.user_id, &token_hash, OTHER_HASH, now);
    assert!(ok(store.change_password(&change, now).await, "change_password"));
    let after = user_of(store.as_ref(), &user.user_id).await;
    assert_eq!((after.password_hash.as_str(), after.tokens_valid_after), (OTHER_HASH, now + 1));
    assert_eq!(after.password_changed_at, now);
    assert_eq!(ok(store.get_reset(&user.user_id).await, "get_reset"), None, "used up");
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 3000)), 1000, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id), vec![now + 1], "the reset is a revocation event");
    let again = reset_change(&user.user_id, &token_hash, &user.password_hash, now);
    assert!(!ok(store.change_password(&again, now).await, "again"), "single use");
    assert_eq!(user_of(store.as_ref(), &user.user_id).await.password_hash, OTHER_HASH);
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 3000)), 1000, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id).len(), 1, "a refused change records no event");
}

/// A wrong or expired reset token, or an unknown user, writes nothing.
pub async fn wrong_or_expired_reset_writes_nothing<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let token_hash = fresh_id("reset");
    let reset = ResetToken {
        user_id: user.user_id.clone(),
        token_hash: token_hash.clone(),
        created_at: now - 900,
        expires_at: now,
    };
    ok(store.put_reset(&reset).await, "put_reset");
    for (what, change) in [
        ("wrong token", reset_change(&user.user_id, &fresh_id("guess"), OTHER_HASH, now - 1)),
        ("expired token", reset_change(&user.user_id, &token_hash, OTHER_HASH, now)),
        ("unknown user", reset_change(&fresh_id("user"), &token_hash, OTHER_HASH, now - 1)),
    ] {
        let at = if what == "expired token" { now } else { now - 1 };
        assert!(!ok(store.change_password(&change, at).await, what), "{what}");
    }
    let after = user_of(store.as_ref(), &user.user_id).await;
    assert_eq!((after.password_hash.as_str(), after.tokens_valid_after), (user.password_hash.as_str(), 0));
    assert_eq!(after.password_changed_at, 0);
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 5000)), 1000, now_ms).await;
    assert!(befores_of(&events, &user.user_id).is_empty(), "no event");
    // Control: the right token a second before expiry works.
    let change = reset_change(&user.user_id, &token_hash, OTHER_HASH, now - 1);
    assert!(ok(store.change_password(&change, now - 1).await, "control"));
}

/// Of concurrent resets with one token exactly one changes the password,
/// and only its event is recorded.
pub async fn concurrent_resets_one_winner<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let now_ms = now * 1000;
    let user = registered(store.as_ref()).await;
    let token_hash = fresh_id("reset");
    let reset = ResetToken {
        user_id: user.user_id.clone(),
        token_hash: token_hash.clone(),
        created_at: now,
        expires_at: now + 900,
    };
    ok(store.put_reset(&reset).await, "put_reset");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS_RECOVERY {
        let s = Arc::clone(store);
        let change = reset_change(&user.user_id, &token_hash, &format!("{OTHER_HASH}{i}"), now);
        tasks.spawn(async move { (ok(s.change_password(&change, now).await, "change_password"), change.new_hash) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (won, hash) = joined.unwrap_or_else(|e| panic!("task: {e}"));
        if won {
            winners.push(hash);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of {RACERS_RECOVERY} resets wins: {}", winners.len());
    assert_eq!(user_of(store.as_ref(), &user.user_id).await.password_hash, winners[0], "the winner's password");
    let (events, _) = read_feed(store.as_ref(), Some(FeedCursor::at(now_ms - 3000)), 1000, now_ms).await;
    assert_eq!(befores_of(&events, &user.user_id).len(), 1, "one event");
}

/// A change proven by the current hash applies only while that hash is
/// stored.
pub async fn change_with_the_current_hash_only<S: Store>(store: &Arc<S>) {
    let now = wall_clock();
    let user = registered(store.as_ref()).await;
    let mut change = reset_change(&user.user_id, "", OTHER_HASH, now);
    change.proof = PasswordProof::CurrentHash { hash: OTHER_HASH.to_owned() };
    assert!(!ok(store.change_password(&change, now).await, "stale hash"), "not the stored hash");
    assert_eq!(user_of(store.as_ref(), &user.user_id).await.password_hash, user.password_hash);
    change.proof = PasswordProof::CurrentHash { hash: user.password_hash.clone() };
    change.event = subject_event(&user.user_id, now * 1000 - 2000, now + 1, now + 1000);
    assert!(ok(store.change_password(&change, now).await, "current hash"));
    let after = user_of(store.as_ref(), &user.user_id).await;
    assert_eq!((after.password_hash.as_str(), after.tokens_valid_after), (OTHER_HASH, now + 1));
    // Again with the old hash: it is no longer stored.
    change.event = subject_event(&user.user_id, now * 1000 - 1000, now + 1, now + 1000);
    assert!(!ok(store.change_password(&change, now).await, "old hash again"));
}
