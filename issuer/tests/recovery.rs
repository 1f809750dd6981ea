//! Verified sign-up, password reset and password change in the session
//! core, on both stores: SQLite, and DynamoDB through moto
//! (`DYNAMODB_ENDPOINT`, started by `scripts/test.sh`; without it the
//! DynamoDB tests fail with a message, never skip).
//!
//! Asserted by structure: the store operations of each path (a counting
//! store around the real one), the hasher's counts, the messages a recording
//! mail transport was handed, and the answers. Concurrency on DynamoDB goes
//! through the proxy that forwards one request at a time (see
//! `login_attempts.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::{Argon2Cost, RecoveryLimits};
use issuer::keys::KeyRing;
use issuer::mail::{MailError, MailTransport, Mailer, Message, MessageKind, SendFuture};
use issuer::password::PasswordHasher;
use issuer::session::{Credentials, RecoveryRules, Registration, SessionError, SessionRules, Sessions};
use issuer::store::dynamo::DynamoStore;
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
use issuer::store::{FeedCursor, Store};
use token_core::revocation::{FeedEvent, RevocationId};
use token_core::{Algorithm, Audience};

#[path = "common/counting.rs"]
#[allow(dead_code)]
mod counting;
#[path = "common/fault_proxy.rs"]
#[allow(dead_code)]
mod fault_proxy;
#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;
use counting::Counting;

/// The start of an hour (so of every recovery and login window).
const T0: u64 = 1_900_000_800;
const _: () = assert!(T0.is_multiple_of(3600));
const PW: &str = "correct horse battery";
const NEW_PW: &str = "purple elephant umbrella";

fn addr(s: &str) -> ClientAddr {
    ClientAddr::parse(s).unwrap()
}

fn here() -> ClientAddr {
    addr("192.0.2.1")
}

fn creds(email: &str, password: &str) -> Credentials {
    Credentials { email: email.into(), password: password.into() }
}

// ------------------------------------------------------------ mail

/// Records every message handed to it; fails every send while `fail` is set.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Message>>,
    fail: AtomicBool,
}

#[derive(Clone)]
struct Rec(Arc<Recorder>);

impl MailTransport for Rec {
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            if self.0.fail.load(Ordering::SeqCst) {
                return Err(MailError::Unavailable("test transport down".into()));
            }
            self.0.sent.lock().unwrap().push(msg.clone());
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "recorder"
    }
}

impl Recorder {
    fn kinds_to(&self, to: &str) -> Vec<MessageKind> {
        self.sent.lock().unwrap().iter().filter(|m| m.to == to).map(|m| m.kind).collect()
    }

    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// The token of the newest `kind` link to `to`.
    fn token(&self, to: &str, kind: MessageKind) -> String {
        let sent = self.sent.lock().unwrap();
        let m =
            sent.iter().rev().find(|m| m.to == to && m.kind == kind).unwrap_or_else(|| panic!("no {kind:?} to {to}"));
        let link = m.text.split_whitespace().find(|w| w.contains("token=")).unwrap();
        link.split_once("token=").unwrap().1.to_owned()
    }
}

// ------------------------------------------------------------ fixtures

struct Fx<S: Store> {
    s: Arc<Sessions<Counting<S>>>,
    mail: Arc<Recorder>,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl<S: Store> Fx<S> {
    fn ops(&self) -> Vec<&'static str> {
        self.s.store().take_ops()
    }

    fn argon2(&self) -> u64 {
        self.s.hasher().stats().argon2
    }

    /// Registers and verifies `email`; returns the user id.
    async fn account(&self, email: &str, password: &str) -> String {
        self.s.register(creds(email, password), here(), T0).await.unwrap();
        let token = self.mail.token(email, MessageKind::VerifyEmail);
        self.s.verify_email(&token, here(), T0).await.unwrap()
    }
}

fn rules(recovery: RecoveryRules) -> SessionRules {
    SessionRules {
        issuer: "https://issuer.test".into(),
        audience: Audience::One("api".into()),
        client_id: "web".into(),
        default_scopes: "openid".into(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 30 * 86_400,
        session_max_secs: 90 * 86_400,
        reuse_grace_secs: 0,
        // Logins are not under test: no login limit may refuse one here.
        attempt_policy: AttemptPolicy { per_address: 1_000_000, per_account: 1_000_000, ..AttemptPolicy::default() },
        recovery,
    }
}

fn recovery() -> RecoveryRules {
    RecoveryRules {
        branding: issuer::mail::Branding { product: "Pets".into(), link_base: "https://app.example.com".into() },
        ..RecoveryRules::default()
    }
}

fn fixture<S: Store>(store: S, recovery: RecoveryRules, guard: Box<dyn std::any::Any + Send + Sync>) -> Fx<S> {
    let hasher = PasswordHasher::new(Argon2Cost::default(), 8, Duration::from_secs(120)).unwrap();
    let keys = KeyRing::generate(Algorithm::ES256).unwrap();
    let mail = Arc::new(Recorder::default());
    let s = Sessions::new(rules(recovery), Counting::new(store), keys, Arc::new(hasher))
        .unwrap()
        .with_mailer(Mailer::new(Rec(Arc::clone(&mail))));
    Fx { s: Arc::new(s), mail, _guard: guard }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sqlite(tag: &str, recovery: RecoveryRules) -> Fx<SqliteStore> {
    let dir = std::env::temp_dir().join(format!("issuer-recovery-{tag}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open_in_dir(&dir, &SqliteOptions::default()).unwrap();
    fixture(store, recovery, Box::new(TempDir(dir)))
}

async fn dynamo(tag: &str, recovery: RecoveryRules) -> Fx<DynamoStore> {
    let (store, proxy) = moto::serialised_store(&format!("issuer-recovery-{:08x}-{tag}", rand::random::<u32>())).await;
    fixture(store, recovery, Box::new(proxy))
}

/// Runs a behaviour on both stores.
macro_rules! both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_store() {
                $body(super::sqlite(stringify!($name), recovery())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynamodb_store() {
                $body(super::dynamo(stringify!($name), recovery()).await).await;
            }
        }
    };
}

// ------------------------------------------------------------ sign-up

/// A new address and a taken one: the same answer, the same hashing and
/// the same store operations, one message each (a link, or a notice).
async fn register_is_the_same_work_for_new_and_taken_addresses<S: Store>(f: Fx<S>) {
    let h0 = f.argon2();
    f.ops();
    let new = f.s.register(creds("new@example.com", PW), here(), T0).await.unwrap();
    let new_ops = f.ops();
    let h1 = f.argon2();
    f.account("taken@example.com", PW).await;
    f.ops();
    let h2 = f.argon2();
    let taken = f.s.register(creds("taken@example.com", "another password"), addr("192.0.2.2"), T0).await.unwrap();
    let taken_ops = f.ops();
    let h3 = f.argon2();
    assert_eq!((new, taken), (Registration::VerificationSent, Registration::AlreadyRegistered));
    assert_eq!(new_ops, ["take_attempt", "find_user_by_email", "create_signup"]);
    assert_eq!(taken_ops, new_ops, "the same store work");
    assert_eq!((h1 - h0, h3 - h2), (1, 1), "one hash each");
    assert_eq!(f.mail.kinds_to("new@example.com"), [MessageKind::VerifyEmail]);
    assert_eq!(f.mail.kinds_to("taken@example.com"), [MessageKind::VerifyEmail, MessageKind::SignupAttempt]);
    // The notice carries no link: nothing to complete.
    let sent = f.mail.sent.lock().unwrap().clone();
    assert!(!sent.last().unwrap().text.contains("token="));
    // The taken account is untouched: its password is the first one.
    f.s.login(creds("taken@example.com", PW), here(), T0).await.unwrap();
}
both_stores!(same_work_for_new_and_taken, register_is_the_same_work_for_new_and_taken_addresses);

/// Login waits for verification; the link works once; a malformed, unknown
/// or expired link is refused alike.
async fn verification_makes_the_account_once<S: Store>(f: Fx<S>) {
    f.s.register(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let err = f.s.login(creds("ada@example.com", PW), here(), T0).await.unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials), "unverified: {err:?}");
    let token = f.mail.token("ada@example.com", MessageKind::VerifyEmail);
    let user_id = f.s.verify_email(&token, here(), T0 + 60).await.unwrap();
    let issued = f.s.login(creds("ada@example.com", PW), here(), T0 + 61).await.unwrap();
    assert_eq!(issued.user_id, user_id);
    for (what, token, at) in [
        ("used", token.as_str(), T0 + 62),
        ("malformed", "not-a-token", T0),
        ("unknown", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", T0),
    ] {
        let e = f.s.verify_email(token, here(), at).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidLink), "{what}: {e:?}");
    }
    f.s.register(creds("late@example.com", PW), here(), T0).await.unwrap();
    let late = f.mail.token("late@example.com", MessageKind::VerifyEmail);
    let e = f.s.verify_email(&late, here(), T0 + 86_400).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidLink), "expired: {e:?}");
    assert!(f.s.store().find_user_by_email("late@example.com").await.unwrap().is_none(), "no account");
}
both_stores!(verification, verification_makes_the_account_once);

#[tokio::test]
async fn without_required_verification_the_account_is_made_at_once() {
    let f = sqlite("at-once", RecoveryRules { require_verified_email: false, ..recovery() });
    let r = f.s.register(creds("ada@example.com", PW), here(), T0).await.unwrap();
    assert!(matches!(r, Registration::Created { .. }), "{r:?}");
    assert_eq!(f.mail.count(), 0, "no verification message");
    f.s.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let again = f.s.register(creds("ada@example.com", "another password"), here(), T0).await.unwrap();
    assert_eq!(again, Registration::AlreadyRegistered);
    assert_eq!(f.mail.kinds_to("ada@example.com"), [MessageKind::SignupAttempt]);
    // A new address gets no message here, so a mail outage must not make a
    // taken one answer differently: the notice is best effort.
    f.mail.fail.store(true, Ordering::SeqCst);
    let down = f.s.register(creds("ada@example.com", "another password"), here(), T0).await.unwrap();
    assert_eq!(down, Registration::AlreadyRegistered);
    let new = f.s.register(creds("bea@example.com", PW), here(), T0).await.unwrap();
    assert!(matches!(new, Registration::Created { .. }), "{new:?}");
}

/// A mail failure leaves no account and no claim on the address; a retry
/// works.
#[tokio::test]
async fn a_mail_failure_leaves_nothing_half_made_and_a_retry_works() {
    let f = sqlite("mail-down", recovery());
    f.mail.fail.store(true, Ordering::SeqCst);
    let e = f.s.register(creds("ada@example.com", PW), here(), T0).await.unwrap_err();
    assert!(matches!(e, SessionError::Mail(MailError::Unavailable(_))), "{e:?}");
    assert!(f.s.store().find_user_by_email("ada@example.com").await.unwrap().is_none());
    f.mail.fail.store(false, Ordering::SeqCst);
    f.account("ada@example.com", PW).await;

    f.mail.fail.store(true, Ordering::SeqCst);
    let e = f.s.forgot_password("ada@example.com", here(), T0).await.unwrap_err();
    assert!(matches!(e, SessionError::Mail(_)), "{e:?}");
    f.mail.fail.store(false, Ordering::SeqCst);
    f.s.forgot_password("ada@example.com", here(), T0).await.unwrap();
    let token = f.mail.token("ada@example.com", MessageKind::PasswordReset);
    f.s.reset_password(&token, NEW_PW.into(), here(), T0).await.unwrap();
    f.s.login(creds("ada@example.com", NEW_PW), here(), T0).await.unwrap();
}

// ------------------------------------------------------------ reset

/// A reset request answers alike for any address, with the same store
/// work: a link to an account, a notice to any other address.
async fn forgot_answers_alike<S: Store>(f: Fx<S>) {
    f.account("ada@example.com", PW).await;
    f.ops();
    f.s.forgot_password("ada@example.com", here(), T0).await.unwrap();
    let known = f.ops();
    f.s.forgot_password("nobody@example.com", here(), T0).await.unwrap();
    let unknown = f.ops();
    assert_eq!(known, ["take_attempt", "find_user_by_email", "put_reset"]);
    assert_eq!(unknown, known, "the same store work for an unknown address");
    assert_eq!(f.mail.kinds_to("ada@example.com").last(), Some(&MessageKind::PasswordReset));
    assert_eq!(f.mail.kinds_to("nobody@example.com"), [MessageKind::ResetUnknownAddress]);
}
both_stores!(forgot, forgot_answers_alike);

/// A reset replaces the password, ends every session and access token
/// issued so far (a subject event on the feed), and works once.
async fn reset_revokes_everything_and_works_once<S: Store>(f: Fx<S>) {
    let user_id = f.account("ada@example.com", PW).await;
    let a = f.s.login(creds("ada@example.com", PW), here(), T0 + 1).await.unwrap();
    let b = f.s.login(creds("ada@example.com", PW), addr("192.0.2.9"), T0 + 2).await.unwrap();
    f.s.forgot_password("ada@example.com", here(), T0 + 10).await.unwrap();
    let token = f.mail.token("ada@example.com", MessageKind::PasswordReset);
    assert!(token.starts_with(&format!("{user_id}.")));
    f.s.reset_password(&token, NEW_PW.into(), here(), T0 + 20).await.unwrap();

    for old in [&a, &b] {
        let e = f.s.refresh(&old.refresh_token, T0 + 30).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidRefreshToken), "old session: {e:?}");
        let e = f.s.logout_all(&old.access_token, T0 + 30).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidAccessToken), "old access token: {e:?}");
    }
    let page = f.s.revocations(Some(&FeedCursor::at((T0 + 19) * 1000)), 100, (T0 + 30) * 1000).await.unwrap();
    let rid = RevocationId::subject(&user_id);
    let befores: Vec<u64> = page
        .events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Subject { id, before, .. } if *id == rid => Some(*before),
            _ => None,
        })
        .collect();
    assert_eq!(befores, [T0 + 21], "the reset is a revocation event");
    let e = f.s.login(creds("ada@example.com", PW), here(), T0 + 30).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidCredentials), "old password: {e:?}");
    let fresh = f.s.login(creds("ada@example.com", NEW_PW), here(), T0 + 31).await.unwrap();
    f.s.refresh(&fresh.refresh_token, T0 + 32).await.expect("a session after the reset refreshes");
    let e = f.s.reset_password(&token, "another fine passphrase".into(), here(), T0 + 40).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidLink), "used: {e:?}");
    assert_eq!(f.mail.kinds_to("ada@example.com").last(), Some(&MessageKind::PasswordChanged));
}
both_stores!(reset, reset_revokes_everything_and_works_once);

/// Wrong, expired and replaced tokens are refused alike, before any
/// hashing; a weak password is refused and leaves the token usable.
#[tokio::test]
async fn bad_reset_tokens_are_refused_alike_before_hashing() {
    let f = sqlite("bad-reset", recovery());
    let user_id = f.account("ada@example.com", PW).await;
    f.s.forgot_password("ada@example.com", here(), T0).await.unwrap();
    let first = f.mail.token("ada@example.com", MessageKind::PasswordReset);
    f.s.forgot_password("ada@example.com", here(), T0 + 1).await.unwrap();
    let token = f.mail.token("ada@example.com", MessageKind::PasswordReset);
    let wrong = format!("{user_id}.{}", "A".repeat(43));
    let hashes = f.argon2();
    for (what, t, at) in [
        ("replaced", first.as_str(), T0 + 2),
        ("wrong secret", wrong.as_str(), T0 + 2),
        ("expired", token.as_str(), T0 + 1 + 900),
        ("no user part", "A", T0 + 2),
        ("unknown user", &format!("nobody.{}", "A".repeat(43)), T0 + 2),
    ] {
        let e = f.s.reset_password(t, NEW_PW.into(), here(), at).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidLink), "{what}: {e:?}");
    }
    assert_eq!(f.argon2(), hashes, "no hashing for a bad token");
    let e = f.s.reset_password(&token, "password123".into(), here(), T0 + 2).await.unwrap_err();
    assert!(matches!(e, SessionError::WeakPassword(_)), "{e:?}");
    // Control: the token still works, a second before it expires.
    f.s.reset_password(&token, NEW_PW.into(), here(), T0 + 900).await.unwrap();
}

/// 20 resets with one token at once: exactly one sets its password.
#[tokio::test]
async fn racing_resets_with_one_token_one_wins() {
    // Room for all 20 in the per-account reset limit: the race is the
    // store's to settle.
    let limits = RecoveryLimits { mail_per_address: 100, ..RecoveryLimits::default() };
    let f = sqlite("race-reset", RecoveryRules { limits, ..recovery() });
    f.account("ada@example.com", PW).await;
    f.s.forgot_password("ada@example.com", here(), T0).await.unwrap();
    let token = f.mail.token("ada@example.com", MessageKind::PasswordReset);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (s, token) = (Arc::clone(&f.s), token.clone());
        tasks.spawn(async move {
            let pw = format!("racing zebra number {i}");
            (s.reset_password(&token, pw.clone(), addr(&format!("198.51.100.{i}")), T0 + 5).await, pw)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (Ok(()), pw) => winners.push(pw),
            (Err(SessionError::InvalidLink), _) => {}
            (Err(e), _) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    f.s.login(creds("ada@example.com", &winners[0]), here(), T0 + 6).await.expect("the winner's password");
}

// ------------------------------------------------------------ change

/// A change needs the current password; afterwards only the session it
/// returns lives.
async fn change_needs_the_current_password_and_keeps_only_the_new_session<S: Store>(f: Fx<S>) {
    f.account("ada@example.com", PW).await;
    let mine = f.s.login(creds("ada@example.com", PW), here(), T0 + 1).await.unwrap();
    let other = f.s.login(creds("ada@example.com", PW), addr("192.0.2.9"), T0 + 2).await.unwrap();
    let e = f.s.change_password(&mine.access_token, "wrong password!".into(), NEW_PW.into(), here(), T0 + 3);
    assert!(matches!(e.await.unwrap_err(), SessionError::WrongPassword));
    let e = f.s.change_password("not.a.token", PW.into(), NEW_PW.into(), here(), T0 + 3).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidAccessToken), "{e:?}");
    let e = f.s.change_password(&mine.access_token, PW.into(), "password123".into(), here(), T0 + 3).await;
    assert!(matches!(e.unwrap_err(), SessionError::WeakPassword(_)));
    let fresh = f.s.change_password(&mine.access_token, PW.into(), NEW_PW.into(), here(), T0 + 4).await.unwrap();
    for old in [&mine, &other] {
        let e = f.s.refresh(&old.refresh_token, T0 + 5).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    }
    let e = f.s.change_password(&other.access_token, PW.into(), NEW_PW.into(), here(), T0 + 5).await;
    assert!(matches!(e.unwrap_err(), SessionError::InvalidAccessToken), "old access tokens are revoked");
    f.s.refresh(&fresh.refresh_token, T0 + 5).await.expect("the new session refreshes");
    f.s.login(creds("ada@example.com", NEW_PW), here(), T0 + 6).await.unwrap();
    assert!(f.s.login(creds("ada@example.com", PW), here(), T0 + 6).await.is_err());
    assert_eq!(f.mail.kinds_to("ada@example.com").last(), Some(&MessageKind::PasswordChanged));
}
both_stores!(change, change_needs_the_current_password_and_keeps_only_the_new_session);

/// The current password is guessed no faster than a login: the login
/// counters of this account and client refuse the sixth wrong guess
/// without hashing.
#[tokio::test]
async fn change_guesses_take_login_attempts() {
    let f = sqlite("change-guess", recovery());
    f.account("ada@example.com", PW).await;
    let mine = f.s.login(creds("ada@example.com", PW), here(), T0 + 1).await.unwrap();
    for i in 0..5 {
        let e = f.s.change_password(&mine.access_token, format!("guess number {i}"), NEW_PW.into(), here(), T0 + 2);
        assert!(matches!(e.await.unwrap_err(), SessionError::WrongPassword));
    }
    let hashes = f.argon2();
    let e = f.s.change_password(&mine.access_token, PW.into(), NEW_PW.into(), here(), T0 + 2).await.unwrap_err();
    assert!(matches!(e, SessionError::TooManyAttempts { .. }), "{e:?}");
    assert_eq!(f.argon2(), hashes, "refused before hashing");
}

// ------------------------------------------------------------ limits

/// A burst of sign-ups from one client: exactly the limit gets through,
/// the rest are refused before hashing and mail; another client is not
/// affected.
async fn recovery_limits_hold_under_a_burst<S: Store>(f: Fx<S>) {
    let limit = RecoveryLimits::default().per_client as usize;
    let hashes = f.argon2();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..limit + 10 {
        let s = Arc::clone(&f.s);
        tasks.spawn(async move { s.register(creds(&format!("u{i}@example.com"), PW), here(), T0).await });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(_) => ok += 1,
            Err(SessionError::TooManyRequests { retry_after }) => {
                assert_eq!(retry_after, 3600);
                refused += 1;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((ok, refused), (limit, 10));
    assert_eq!(f.argon2() - hashes, limit as u64, "refused sign-ups hash nothing");
    assert_eq!(f.mail.count(), limit, "and mail nothing");
    // Control: another client signs up.
    f.s.register(creds("other@example.com", PW), addr("192.0.2.77"), T0).await.unwrap();

    // One recipient, many clients: the recipient's limit holds.
    let per_recipient = RecoveryLimits::default().mail_per_address as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..per_recipient + 3 {
        let s = Arc::clone(&f.s);
        tasks.spawn(async move { s.forgot_password("victim@example.com", addr(&format!("203.0.113.{i}")), T0).await });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(()) => ok += 1,
            Err(SessionError::TooManyRequests { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, per_recipient, "at most {per_recipient} messages to one address");
    assert_eq!(f.mail.kinds_to("victim@example.com").len(), per_recipient);
    // Control: the same clients reach another address.
    f.s.forgot_password("someone@example.com", addr("203.0.113.1"), T0).await.unwrap();
    // And the window ends.
    f.s.forgot_password("victim@example.com", addr("203.0.113.1"), T0 + 3600).await.unwrap();
}
both_stores!(limits, recovery_limits_hold_under_a_burst);

/// A reset link made directly in the store (past the reset-request limit).
async fn direct_link<S: Store>(f: &Fx<S>, user_id: &str, created_at: u64) -> String {
    let secret = issuer::tokens::new_refresh_token().unwrap();
    let reset = issuer::store::ResetToken {
        user_id: user_id.to_owned(),
        token_hash: issuer::tokens::hash_refresh_token(&secret),
        created_at,
        expires_at: created_at + 900,
    };
    f.s.store().put_reset(&reset).await.unwrap();
    format!("{user_id}.{secret}")
}

/// Resets of one account are bounded per window whoever holds its links,
/// and refused before hashing.
#[tokio::test]
async fn resets_of_one_account_are_bounded() {
    let f = sqlite("reset-bound", recovery());
    let user_id = f.account("ada@example.com", PW).await;
    let per_account = RecoveryLimits::default().mail_per_address;
    for n in 0..per_account {
        let token = direct_link(&f, &user_id, T0).await;
        let pw = format!("new passphrase number {n}");
        f.s.reset_password(&token, pw, addr(&format!("198.51.100.{n}")), T0 + 10).await.unwrap();
    }
    let token = direct_link(&f, &user_id, T0).await;
    let hashes = f.argon2();
    let e = f.s.reset_password(&token, NEW_PW.into(), addr("198.51.100.99"), T0 + 10).await.unwrap_err();
    assert!(matches!(e, SessionError::TooManyRequests { .. }), "{e:?}");
    assert_eq!(f.argon2(), hashes, "refused before hashing");
    // Control: in the next window a fresh link works.
    let token = direct_link(&f, &user_id, T0 + 3600).await;
    f.s.reset_password(&token, NEW_PW.into(), addr("198.51.100.99"), T0 + 3601).await.unwrap();
}
