//! Credential attacks on the session core, on both stores: SQLite, and
//! DynamoDB through moto (`DYNAMODB_ENDPOINT`, started by `scripts/test.sh`;
//! without it the DynamoDB tests fail with a message, never skip).
//!
//! Everything is asserted by structure, never by time: hasher calls
//! ([`HashStats`]), store operations (a counting store around the real
//! one), and the answers. Each behaviour runs on both stores; the DynamoDB
//! store talks to moto through a proxy that forwards one request at a time,
//! the isolation DynamoDB's own transactions give and moto's lack (see
//! `issuer::store::conformance::concurrent_attempts_grant_at_most_the_limit`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::Argon2Cost;
use issuer::keys::KeyRing;
use issuer::password::{HashStats, PasswordHasher};
use issuer::session::{Credentials, Issued, RecoveryRules, SessionError, SessionRules, Sessions};
use issuer::store::dynamo::DynamoStore;
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
use issuer::store::{NewUser, Store};
use token_core::{Algorithm, Audience};

#[path = "common/fault_proxy.rs"]
#[allow(dead_code)]
mod fault_proxy;
#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

/// A time at the start of a 15-minute (and so of a one-minute) window.
const T0: u64 = 1_899_999_900;
const _: () = assert!(T0.is_multiple_of(900));
const PW: &str = "correct horse battery";
const WRONG: &str = "not the password at all";

fn addr(s: &str) -> ClientAddr {
    ClientAddr::parse(s).unwrap()
}

fn creds(email: &str, password: &str) -> Credentials {
    Credentials { email: email.into(), password: password.into() }
}

#[path = "common/counting.rs"]
#[allow(dead_code)]
mod counting;
use counting::Counting;

// ------------------------------------------------------------ fixtures

type Fixture<S> = Arc<Sessions<Counting<S>>>;

fn rules(policy: AttemptPolicy) -> SessionRules {
    SessionRules {
        issuer: "https://issuer.test".into(),
        audience: Audience::One("api".into()),
        client_id: "web".into(),
        default_scopes: "openid".into(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 30 * 86_400,
        session_max_secs: 90 * 86_400,
        reuse_grace_secs: 0,
        attempt_policy: policy,
        recovery: RecoveryRules { require_verified_email: false, ..RecoveryRules::default() },
    }
}

/// Bcrypt cost of imported accounts in these tests (the minimum: the
/// counts, not the cost, are under test).
const BCRYPT_COST: u32 = 4;

fn sessions_over<S: Store>(store: S, policy: AttemptPolicy) -> Fixture<S> {
    // Enough hashing slots and patience that no attempt is shed with 503:
    // what is refused here is refused by the counters.
    let hasher = PasswordHasher::new(Argon2Cost::default(), 8, Duration::from_secs(120))
        .unwrap()
        .with_legacy_bcrypt(BCRYPT_COST)
        .unwrap();
    let keys = KeyRing::generate(Algorithm::ES256).unwrap();
    let counting = Counting::new(store);
    Arc::new(Sessions::new(rules(policy), counting, keys, Arc::new(hasher)).unwrap())
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sqlite(tag: &str, policy: AttemptPolicy) -> (Fixture<SqliteStore>, TempDir) {
    let dir = std::env::temp_dir().join(format!("issuer-attempts-{tag}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open_in_dir(&dir, &SqliteOptions::default()).unwrap();
    (sessions_over(store, policy), TempDir(dir))
}

/// A DynamoDB store on fresh tables, through a proxy that forwards one
/// request at a time (kept alive by the returned guard).
async fn dynamo(tag: &str, policy: AttemptPolicy) -> (Fixture<DynamoStore>, fault_proxy::FaultProxy) {
    let (store, proxy) = moto::serialised_store(&format!("issuer-attempts-{:08x}-{tag}", rand::random::<u32>())).await;
    (sessions_over(store, policy), proxy)
}

async fn register<S: Store>(s: &Fixture<S>, email: &str) {
    s.register(creds(email, PW), addr("198.51.100.200"), T0).await.unwrap();
}

/// An account imported from a bcrypt system: its hash wrapped in argon2id
/// at import (as `issuer import` does).
async fn import_bcrypt<S: Store>(s: &Fixture<S>, email: &str) {
    let bcrypt_hash = bcrypt::hash(PW, BCRYPT_COST).unwrap();
    let wrapped = s.hasher().wrap_bcrypt_blocking(&bcrypt_hash).unwrap();
    let user = NewUser {
        user_id: format!("imported-{:08x}", rand::random::<u32>()),
        email: email.into(),
        password_hash: wrapped,
        scope: "openid".into(),
        created_at: T0,
    };
    s.store().create_user(&user).await.unwrap();
}

fn work(before: HashStats, after: HashStats) -> (u64, u64) {
    (after.argon2 - before.argon2, after.bcrypt - before.bcrypt)
}

/// Per-account-and-address limit 5, per address 50, per account 20 a minute.
fn default_policy() -> AttemptPolicy {
    AttemptPolicy::default()
}

fn is_refused(r: &Result<Issued, SessionError>) -> Option<u64> {
    match r {
        Err(SessionError::TooManyAttempts { retry_after }) => Some(*retry_after),
        _ => None,
    }
}

// ------------------------------------------------------------ behaviours

/// 49 wrong passwords and the right one, all at once from one address: at
/// most the limit's worth are checked (counted hasher calls), whatever the
/// burst's size, and every refused attempt gets the same answer, right
/// password or not.
async fn a_burst_checks_at_most_the_limit<S: Store>(s: Fixture<S>) {
    const BURST: usize = 50;
    register(&s, "ada@example.com").await;
    let before = s.hasher().stats();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let s = Arc::clone(&s);
        let pw = if i == BURST / 2 { PW } else { WRONG };
        tasks.spawn(async move { (pw == PW, s.login(creds("ada@example.com", pw), addr("192.0.2.66"), T0).await) });
    }
    let (mut checked, mut refused_after) = (0u64, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let (right, r) = joined.unwrap();
        match (right, &r) {
            (_, Err(SessionError::TooManyAttempts { retry_after })) => refused_after.push(*retry_after),
            (false, Err(SessionError::InvalidCredentials)) | (true, Ok(_)) => checked += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let limit = u64::from(default_policy().per_account_address);
    assert_eq!(checked, limit, "exactly the limit's worth of attempts got through");
    assert_eq!(refused_after.len(), BURST - limit as usize);
    assert!(refused_after.iter().all(|r| *r == refused_after[0] && *r >= 1), "one answer for all: {refused_after:?}");
    let (argon2, bcrypt) = work(before, s.hasher().stats());
    assert_eq!((argon2, bcrypt), (checked, checked), "only attempts that got through were hashed");
}

/// While refused, the right password and a wrong one get the same answer
/// and do the same (no) hash work and the same store operations.
async fn refused_attempts_never_confirm_a_password<S: Store>(s: Fixture<S>) {
    register(&s, "ada@example.com").await;
    let attacker = addr("192.0.2.66");
    for _ in 0..default_policy().per_account_address {
        let r = s.login(creds("ada@example.com", WRONG), attacker, T0).await;
        assert!(matches!(r, Err(SessionError::InvalidCredentials)), "{r:?}");
    }
    s.store().take_ops();
    let before = s.hasher().stats();
    let right = s.login(creds("ada@example.com", PW), attacker, T0 + 10).await;
    let right_ops = s.store().take_ops();
    let wrong = s.login(creds("ada@example.com", WRONG), attacker, T0 + 10).await;
    let wrong_ops = s.store().take_ops();
    assert_eq!(is_refused(&right), Some(900 - 10), "{right:?}");
    assert_eq!(is_refused(&wrong), is_refused(&right));
    assert_eq!(work(before, s.hasher().stats()), (0, 0), "refused attempts are not hashed");
    assert_eq!(right_ops, wrong_ops);
    assert_eq!(right_ops, ["take_attempt"]);
}

/// An attacker's address locks only itself out of the account: the real
/// user from another address logs in; the attacker, even with the right
/// password, is refused (the control).
async fn an_attacker_address_cannot_lock_out_another<S: Store>(s: Fixture<S>) {
    register(&s, "ada@example.com").await;
    let attacker = addr("192.0.2.66");
    for i in 0..30 {
        let r = s.login(creds("ada@example.com", WRONG), attacker, T0 + i).await;
        assert!(matches!(r, Err(SessionError::InvalidCredentials | SessionError::TooManyAttempts { .. })));
    }
    let control = s.login(creds("ada@example.com", PW), attacker, T0 + 30).await;
    assert!(is_refused(&control).is_some(), "the attacker's address is refused: {control:?}");
    let user = s.login(creds("ada@example.com", PW), addr("198.51.100.7"), T0 + 30).await;
    assert!(user.is_ok(), "the real user from another address: {user:?}");
    // IPv6: another /64 is another address; the same /64 is the same.
    let v6 = s.login(creds("ada@example.com", PW), addr("2001:db8:2::1"), T0 + 31).await;
    assert!(v6.is_ok(), "{v6:?}");
}

/// One address spraying many accounts is refused after the per-address
/// limit, for every account, while another address still gets through.
async fn spraying_from_one_address_is_refused<S: Store>(s: Fixture<S>) {
    let policy = AttemptPolicy { per_address: 6, ..default_policy() };
    assert_eq!(s.rules().attempt_policy, policy);
    let sprayer = addr("203.0.113.9");
    for i in 0..policy.per_address {
        let r = s.login(creds(&format!("user{i}@example.com"), WRONG), sprayer, T0).await;
        assert!(matches!(r, Err(SessionError::InvalidCredentials)), "attempt {i}: {r:?}");
    }
    let r = s.login(creds("someone.else@example.com", WRONG), sprayer, T0).await;
    assert_eq!(is_refused(&r), Some(900), "{r:?}");
    register(&s, "ada@example.com").await;
    let r = s.login(creds("ada@example.com", PW), sprayer, T0).await;
    assert!(is_refused(&r).is_some(), "refused for every account: {r:?}");
    let other = s.login(creds("ada@example.com", PW), addr("198.51.100.7"), T0).await;
    assert!(other.is_ok(), "another address: {other:?}");
}

/// Many addresses on one account hit the per-account ceiling: attempts slow
/// down to its rate (refused until the short window ends), the account is
/// not locked, and in the next window the real user gets in.
async fn the_account_ceiling_slows_down_instead_of_locking<S: Store>(s: Fixture<S>) {
    let policy = AttemptPolicy { per_account: 4, account_window_secs: 60, ..default_policy() };
    assert_eq!(s.rules().attempt_policy, policy);
    register(&s, "ada@example.com").await;
    let t = T0;
    for i in 0..policy.per_account {
        let r = s.login(creds("ada@example.com", WRONG), addr(&format!("192.0.2.{}", 10 + i)), t).await;
        assert!(matches!(r, Err(SessionError::InvalidCredentials)), "{r:?}");
    }
    let r = s.login(creds("ada@example.com", PW), addr("198.51.100.7"), t + 15).await;
    assert_eq!(is_refused(&r), Some(45), "slowed to the ceiling's rate: {r:?}");
    let r = s.login(creds("ada@example.com", PW), addr("198.51.100.7"), t + 60).await;
    assert!(r.is_ok(), "the next window: {r:?}");
}

/// Counters end with their window: the same address may try again.
async fn counters_expire<S: Store>(s: Fixture<S>) {
    register(&s, "ada@example.com").await;
    let a = addr("192.0.2.66");
    let t = T0;
    for _ in 0..default_policy().per_account_address {
        assert!(matches!(s.login(creds("ada@example.com", WRONG), a, t).await, Err(SessionError::InvalidCredentials)));
    }
    let r = s.login(creds("ada@example.com", PW), a, t + 899).await;
    assert_eq!(is_refused(&r), Some(1), "{r:?}");
    let r = s.login(creds("ada@example.com", PW), a, t + 900).await;
    assert!(r.is_ok(), "{r:?}");
}

/// Unknown email, wrong password and an imported bcrypt account do the same
/// store operations and the same hash work (the deployment has imported
/// accounts, so every path pays the bcrypt step too); a success is the
/// control that the counting sees differences.
async fn every_failing_path_does_the_same_work<S: Store>(s: Fixture<S>) {
    register(&s, "ada@example.com").await;
    import_bcrypt(&s, "old@example.com").await;
    let a = addr("192.0.2.1");
    let mut seen = Vec::new();
    for (email, pw) in [
        ("nobody@example.com", WRONG),
        ("ada@example.com", WRONG),
        ("old@example.com", WRONG),
        ("nobody2@example.com", PW),
    ] {
        s.store().take_ops();
        let before = s.hasher().stats();
        let r = s.login(creds(email, pw), a, T0).await;
        assert!(matches!(r, Err(SessionError::InvalidCredentials)), "{email}: {r:?}");
        seen.push((email, s.store().take_ops(), work(before, s.hasher().stats())));
    }
    for (email, ops, hashes) in &seen {
        assert_eq!(ops, &["take_attempt", "find_user_by_email"], "{email}");
        assert_eq!(*hashes, (1, 1), "{email}: one argon2id and one bcrypt step");
    }
    // Control: a success does more (clears this client's counter, starts a
    // session; the imported hash is upgraded to plain argon2id).
    let r = s.login(creds("old@example.com", PW), a, T0).await;
    assert!(r.is_ok(), "{r:?}");
    let ops = s.store().take_ops();
    assert_eq!(ops, ["take_attempt", "find_user_by_email", "clear_attempts", "record_login_success", "create_session"]);
    let upgraded = s.store().find_user_by_email("old@example.com").await.unwrap().unwrap();
    assert!(upgraded.password_hash.starts_with("$argon2id$"), "upgraded on login");
    s.store().take_ops();
    let before = s.hasher().stats();
    let r = s.login(creds("old@example.com", WRONG), a, T0).await;
    assert!(matches!(r, Err(SessionError::InvalidCredentials)));
    assert_eq!(s.store().take_ops(), ["take_attempt", "find_user_by_email"]);
    assert_eq!(work(before, s.hasher().stats()), (1, 1), "the same work after the upgrade");
}

// ------------------------------------------------------------ one test per behaviour and store

macro_rules! on_both_stores {
    ($($name:ident => $policy:expr),* $(,)?) => {
        mod sqlite_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (s, _dir) = sqlite(stringify!($name), $policy);
                    super::$name(s).await;
                }
            )*
        }
        mod dynamo_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (s, _proxy) = dynamo(stringify!($name), $policy).await;
                    super::$name(s).await;
                }
            )*
        }
    };
}

on_both_stores! {
    a_burst_checks_at_most_the_limit => default_policy(),
    refused_attempts_never_confirm_a_password => default_policy(),
    an_attacker_address_cannot_lock_out_another => default_policy(),
    spraying_from_one_address_is_refused => AttemptPolicy { per_address: 6, ..default_policy() },
    the_account_ceiling_slows_down_instead_of_locking =>
        AttemptPolicy { per_account: 4, account_window_secs: 60, ..default_policy() },
    counters_expire => default_policy(),
    every_failing_path_does_the_same_work => default_policy(),
}
