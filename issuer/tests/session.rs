//! The session rules without HTTP: `issuer::session::Sessions` over the
//! SQLite store, with time passed in. Every rule of the module docs has a
//! test here; the HTTP layer's own concerns (bodies, cookies, CSRF, CORS)
//! are tested in `api.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::Argon2Cost;
use issuer::keys::KeyRing;
use issuer::password::PasswordHasher;
use issuer::session::{Credentials, RecoveryRules, Registration, SessionError, SessionRules, Sessions};
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
use issuer::store::{FeedCursor, Store};
use token_core::revocation::{FeedEvent, MAX_PAGE, RevocationId};
use token_core::{Algorithm, Audience, Verifier, VerifierConfig};

const ISS: &str = "https://issuer.test";
const T0: u64 = 1_900_000_000;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).unwrap();
        let p = std::env::temp_dir().join(format!("issuer-session-{tag}-{:016x}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rules(reuse_grace_secs: u64) -> SessionRules {
    SessionRules {
        issuer: ISS.into(),
        audience: Audience::One("api".into()),
        client_id: "web".into(),
        default_scopes: "openid pets:read".into(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 30 * 86_400,
        session_max_secs: 90 * 86_400,
        reuse_grace_secs,
        attempt_policy: AttemptPolicy::default(),
        // Accounts at once: verified sign-up has tests of its own
        // (`recovery.rs`).
        recovery: RecoveryRules {
            require_verified_email: false,
            limits: issuer::config::RecoveryLimits { per_client: 1_000_000, ..Default::default() },
            ..RecoveryRules::default()
        },
    }
}

/// The user id of a registration made at once.
fn created(r: Registration) -> String {
    match r {
        Registration::Created { user_id } => user_id,
        other => panic!("expected an account at once, got {other:?}"),
    }
}

struct Fixture {
    sessions: Sessions<SqliteStore>,
    verifier: Arc<Verifier>,
    _dir: TempDir,
}

fn fixture(tag: &str, reuse_grace_secs: u64) -> Fixture {
    let dir = TempDir::new(tag);
    let store = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
    let keys = KeyRing::generate(Algorithm::ES256).unwrap();
    let jwks = keys.jwks_json().clone();
    let hasher = Arc::new(PasswordHasher::new(Argon2Cost::default(), 2, Duration::from_secs(30)).unwrap());
    let sessions = Sessions::new(rules(reuse_grace_secs), store, keys, hasher).unwrap();
    // Keys installed directly never go stale here: the tests' clock is not
    // the wall clock.
    let mut vcfg = VerifierConfig::for_issuer(ISS, vec!["api".into()], None);
    vcfg.jwks_max_stale = Duration::from_secs(100 * 365 * 86_400);
    let verifier = Verifier::new(&vcfg).unwrap();
    verifier.install_jwks(ISS, &jwks).unwrap();
    Fixture { sessions, verifier, _dir: dir }
}

/// The client address of every login here (the attempt limits have tests
/// of their own in `login_attempts.rs`).
fn here() -> ClientAddr {
    ClientAddr::parse("192.0.2.1").unwrap()
}

fn creds(email: &str, password: &str) -> Credentials {
    Credentials { email: email.into(), password: password.into() }
}

const PW: &str = "correct horse battery";

#[tokio::test]
async fn login_issues_a_verifiable_access_token_and_a_refresh_token() {
    let f = fixture("login", 0);
    let user_id = created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let issued = f.sessions.login(creds("ada@example.com", PW), here(), T0 + 5).await.unwrap();
    assert_eq!(issued.user_id, user_id);
    assert_eq!(issued.expires_in, 900);
    assert_eq!(issued.refresh_expires_in, 30 * 86_400);
    assert_eq!(issued.refresh_token.len(), 43);
    let t = f.verifier.verify_at(&issued.access_token, Duration::from_secs(T0 + 5)).unwrap();
    assert_eq!(t.sub(), user_id);
    assert_eq!(t.iat(), T0 + 5);
    assert_eq!(t.exp(), T0 + 5 + 900);
    assert_eq!(t.scope(), "openid pets:read");
    assert_eq!(t.client_id(), Some("web"));
    assert!(!format!("{issued:?}").contains(&issued.refresh_token), "Debug redacts the tokens");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_the_same_refusal_and_the_same_hashing() {
    let f = fixture("refusals", 0);
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let before = f.sessions.hasher().stats().argon2;
    let unknown = f.sessions.login(creds("nobody@example.com", PW), here(), T0).await.unwrap_err();
    let after_unknown = f.sessions.hasher().stats().argon2;
    let wrong = f.sessions.login(creds("ada@example.com", "not the password"), here(), T0).await.unwrap_err();
    assert!(matches!(unknown, SessionError::InvalidCredentials), "{unknown:?}");
    assert!(matches!(wrong, SessionError::InvalidCredentials), "{wrong:?}");
    // Both hashed once (the dummy hash for the unknown email).
    assert_eq!(after_unknown - before, 1, "the unknown email: one check against the dummy hash");
    assert_eq!(f.sessions.hasher().stats().argon2 - after_unknown, 1, "the wrong password: one check");
}

#[tokio::test]
async fn refresh_rotates_and_the_used_token_is_reuse_that_revokes_the_family() {
    let f = fixture("rotate", 0);
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let first = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let second = f.sessions.refresh(&first.refresh_token, T0 + 60).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.refresh_expires_in, 30 * 86_400);
    f.verifier.verify_at(&second.access_token, Duration::from_secs(T0 + 60)).unwrap();
    // The first token again: reuse. The family is revoked, the newest too.
    let e = f.sessions.refresh(&first.refresh_token, T0 + 61).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    let e = f.sessions.refresh(&second.refresh_token, T0 + 62).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
}

#[tokio::test]
async fn within_the_grace_window_a_used_token_gets_a_sibling_not_a_revocation() {
    let f = fixture("grace", 10);
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let first = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let second = f.sessions.refresh(&first.refresh_token, T0 + 1).await.unwrap();
    let sibling = f.sessions.refresh(&first.refresh_token, T0 + 5).await.unwrap();
    assert_ne!(sibling.refresh_token, second.refresh_token);
    // Both successors stay usable: the family was not revoked.
    f.sessions.refresh(&second.refresh_token, T0 + 6).await.unwrap();
    f.sessions.refresh(&sibling.refresh_token, T0 + 6).await.unwrap();
    // Past the window it is reuse.
    let e = f.sessions.refresh(&first.refresh_token, T0 + 11).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
}

#[tokio::test]
async fn expired_tokens_and_families_past_their_lifetime_are_refused() {
    let f = fixture("expiry", 0);
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let issued = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let e = f.sessions.refresh(&issued.refresh_token, T0 + 30 * 86_400).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    // A chain of refreshes cannot outlive the family: the last refresh
    // token's lifetime is capped at the family's end.
    let mut token = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap().refresh_token;
    let mut now = T0;
    for _ in 0..3 {
        now += 29 * 86_400;
        let next = f.sessions.refresh(&token, now).await.unwrap();
        assert_eq!(next.refresh_expires_in, (30 * 86_400).min(T0 + 90 * 86_400 - now));
        token = next.refresh_token;
    }
    let e = f.sessions.refresh(&token, T0 + 90 * 86_400).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    let e = f.sessions.refresh("not-a-token", now).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
}

#[tokio::test]
async fn logout_revokes_one_session_and_logout_all_every_session() {
    let f = fixture("logout", 0);
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let a = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let b = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let c = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    f.sessions.logout(Some(&a.refresh_token), T0 + 1).await.unwrap();
    let e = f.sessions.refresh(&a.refresh_token, T0 + 2).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    // The other sessions are untouched (positive control).
    let b2 = f.sessions.refresh(&b.refresh_token, T0 + 2).await.unwrap();
    // Idempotent: no token, an unknown one, the same one again.
    f.sessions.logout(None, T0 + 3).await.unwrap();
    f.sessions.logout(Some("unknown"), T0 + 3).await.unwrap();
    f.sessions.logout(Some(&a.refresh_token), T0 + 3).await.unwrap();

    let revoked = f.sessions.logout_all(&b2.access_token, T0 + 4).await.unwrap();
    assert_eq!(revoked, 2, "b's family and c's family were active");
    for token in [&b2.refresh_token, &c.refresh_token] {
        let e = f.sessions.refresh(token, T0 + 5).await.unwrap_err();
        assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    }
    // logout-all needs a valid access token of this issuer.
    let e = f.sessions.logout_all("a.b.c", T0 + 5).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidAccessToken), "{e:?}");
    let e = f.sessions.logout_all(&b2.access_token, T0 + 4 + 900 + 120).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidAccessToken), "expired: {e:?}");
}

/// The claims of a JWT, decoded without verification (the test reads what
/// the issuer put there).
fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn sid_of(jwt: &str) -> String {
    claims(jwt)["sid"].as_str().expect("sid claim").to_owned()
}

/// Every event of the feed at `now` (seconds), following `more`.
async fn feed_at(f: &Fixture, now: u64) -> Vec<FeedEvent> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = f.sessions.revocations(after.as_ref(), MAX_PAGE, now * 1000).await.unwrap();
        events.extend(page.events);
        if !page.more {
            return events;
        }
        after = Some(page.next.parse::<FeedCursor>().unwrap());
    }
}

#[tokio::test]
async fn logout_records_one_session_event_for_that_session_only() {
    let f = fixture("logout-event", 0);
    let user_id = created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let a = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let b = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let (sid_a, sid_b) = (sid_of(&a.access_token), sid_of(&b.access_token));
    assert_ne!(sid_a, sid_b, "each login is its own session");
    f.sessions.logout(Some(&a.refresh_token), T0 + 10).await.unwrap();
    // Again: the session is revoked already, nothing more is recorded.
    f.sessions.logout(Some(&a.refresh_token), T0 + 11).await.unwrap();

    // Not listed before it settles, listed after.
    assert!(feed_at(&f, T0 + 10).await.is_empty(), "younger than the settle window");
    let events = feed_at(&f, T0 + 12).await;
    let until = T0 + 10 + 900 + 120;
    assert_eq!(events, vec![FeedEvent::Session { id: RevocationId::session(&sid_a), until }]);
    let json = serde_json::to_string(&events).unwrap();
    for clear in [&sid_a, &sid_b, &user_id] {
        assert!(!json.contains(clear.as_str()), "identifier in clear: {json}");
    }
    // The other session goes on (positive control) and is not in the feed.
    f.sessions.refresh(&b.refresh_token, T0 + 12).await.unwrap();
    assert!(!events.iter().any(|e| matches!(e, FeedEvent::Session { id, .. } if *id == RevocationId::session(&sid_b))));
    // Once its tokens have expired, the event is gone from the feed.
    assert!(feed_at(&f, until).await.is_empty(), "expired");
    assert_eq!(feed_at(&f, until - 1).await.len(), 1, "one second earlier it is listed (control)");
}

#[tokio::test]
async fn logout_all_records_a_subject_event_and_later_tokens_are_not_covered() {
    let f = fixture("logout-all-event", 0);
    let user_id = created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let a = f.sessions.login(creds("ada@example.com", PW), here(), T0 + 100).await.unwrap();
    assert_eq!(claims(&a.access_token)["iat"], T0 + 100);
    let revoked = f.sessions.logout_all(&a.access_token, T0 + 100).await.unwrap();
    assert_eq!(revoked, 1);
    let before = T0 + 101;
    let events = feed_at(&f, T0 + 102).await;
    assert_eq!(
        events,
        vec![FeedEvent::Subject { id: RevocationId::subject(&user_id), before, until: T0 + 100 + 900 + 120 }]
    );
    assert!(!serde_json::to_string(&events).unwrap().contains(&user_id), "user id in clear");
    // The old token is covered (iat < before); a login in the same second
    // mints iat = before, which is not, and verifies (iat within leeway).
    assert!(claims(&a.access_token)["iat"].as_u64().unwrap() < before);
    let b = f.sessions.login(creds("ada@example.com", PW), here(), T0 + 100).await.unwrap();
    let iat = claims(&b.access_token)["iat"].as_u64().unwrap();
    assert!(iat >= before, "iat {iat} must not be below before {before}");
    f.verifier.verify_at(&b.access_token, Duration::from_secs(T0 + 100)).unwrap();
    // And a refresh of the new session too.
    let c = f.sessions.refresh(&b.refresh_token, T0 + 100).await.unwrap();
    assert!(claims(&c.access_token)["iat"].as_u64().unwrap() >= before);
    // Later logins simply use the clock.
    let d = f.sessions.login(creds("ada@example.com", PW), here(), T0 + 200).await.unwrap();
    assert_eq!(claims(&d.access_token)["iat"], T0 + 200);

    // The revoked token cannot ask for another logout-all (one event per
    // token, not per request); a token minted after it can.
    let e = f.sessions.logout_all(&a.access_token, T0 + 150).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidAccessToken), "{e:?}");
    assert_eq!(feed_at(&f, T0 + 152).await.len(), 1, "no second event");
    f.sessions.logout_all(&d.access_token, T0 + 200).await.unwrap();
    assert_eq!(feed_at(&f, T0 + 202).await.len(), 2);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_family_and_the_users_access_tokens() {
    let f = fixture("reuse-event", 0);
    let user_id = created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let stolen = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    let other = f.sessions.login(creds("ada@example.com", PW), here(), T0).await.unwrap();
    f.sessions.refresh(&stolen.refresh_token, T0 + 10).await.unwrap();
    let e = f.sessions.refresh(&stolen.refresh_token, T0 + 20).await.unwrap_err();
    assert!(matches!(e, SessionError::InvalidRefreshToken), "{e:?}");
    // Presented again: the family is revoked already, nothing more.
    f.sessions.refresh(&stolen.refresh_token, T0 + 21).await.unwrap_err();
    let events = feed_at(&f, T0 + 30).await;
    assert_eq!(
        events,
        vec![FeedEvent::Subject { id: RevocationId::subject(&user_id), before: T0 + 21, until: T0 + 20 + 1020 }]
    );
    // The user's other session refreshes into a token the event does not
    // cover.
    let renewed = f.sessions.refresh(&other.refresh_token, T0 + 20).await.unwrap();
    assert!(claims(&renewed.access_token)["iat"].as_u64().unwrap() >= T0 + 21);
}

#[tokio::test]
async fn revoke_subject_without_sessions_still_revokes_the_access_tokens() {
    let f = fixture("revoke-subject", 0);
    let user_id = created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    assert_eq!(f.sessions.revoke_subject(&user_id, T0 + 5).await.unwrap(), 0);
    let user = f.sessions.store().get_user(&user_id).await.unwrap().unwrap();
    assert_eq!(user.tokens_valid_after, T0 + 6);
    assert_eq!(feed_at(&f, T0 + 7).await.len(), 1);
}

/// 20 logout-alls at once, of 20 users: one subject event each. Of one
/// user (20 sessions): each call that succeeds records exactly one event and
/// every family is revoked exactly once; a call whose token another call
/// revoked first is refused and records nothing.
#[tokio::test]
async fn concurrent_logout_alls_record_one_event_each() {
    let f = Arc::new(fixture("concurrent-logout-all", 0));
    let mut users = Vec::new();
    for i in 0..20 {
        let email = format!("u{i}@example.com");
        let id = created(f.sessions.register(creds(&email, PW), here(), T0).await.unwrap());
        users.push((id, f.sessions.login(creds(&email, PW), here(), T0).await.unwrap()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (_, t) in &users {
        let (f, token) = (Arc::clone(&f), t.access_token.clone());
        tasks.spawn(async move { f.sessions.logout_all(&token, T0 + 1).await.unwrap() });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), 1);
    }
    let events = feed_at(&f, T0 + 3).await;
    assert_eq!(events.len(), 20);
    for (id, _) in &users {
        let rid = RevocationId::subject(id);
        let n = events.iter().filter(|e| matches!(e, FeedEvent::Subject { id, .. } if *id == rid)).count();
        assert_eq!(n, 1, "one event for each user");
    }

    // One user, 20 sessions, 20 logout-alls and 20 logouts at once.
    created(f.sessions.register(creds("ada@example.com", PW), here(), T0).await.unwrap());
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(f.sessions.login(creds("ada@example.com", PW), here(), T0 + 10).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for t in tokens {
        let f = Arc::clone(&f);
        tasks.spawn(async move {
            let all = f.sessions.logout_all(&t.access_token, T0 + 11).await;
            f.sessions.logout(Some(&t.refresh_token), T0 + 11).await.unwrap();
            all
        });
    }
    let (mut succeeded, mut revoked) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(n) => {
                succeeded += 1;
                revoked += n;
            }
            Err(SessionError::InvalidAccessToken) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(succeeded >= 1);
    let events = feed_at(&f, T0 + 13).await;
    let subjects = events.iter().filter(|e| matches!(e, FeedEvent::Subject { before, .. } if *before == T0 + 12));
    assert_eq!(subjects.count(), succeeded, "one subject event per successful logout-all");
    let sessions = events.iter().filter(|e| matches!(e, FeedEvent::Session { .. })).count();
    assert_eq!(revoked as usize + sessions, 20, "each family revoked once: by a logout-all or by its logout");
}
