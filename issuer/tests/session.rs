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
use issuer::session::{Credentials, SessionError, SessionRules, Sessions};
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
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
    let user_id = f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
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
async fn a_taken_email_is_refused() {
    let f = fixture("taken", 0);
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
    let err = f.sessions.register(creds("ada@example.com", "another password"), T0).await.unwrap_err();
    assert!(matches!(err, SessionError::EmailTaken), "{err:?}");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_the_same_refusal_and_the_same_hashing() {
    let f = fixture("refusals", 0);
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
    let unknown = f.sessions.login(creds("nobody@example.com", PW), here(), T0).await.unwrap_err();
    let wrong = f.sessions.login(creds("ada@example.com", "not the password"), here(), T0).await.unwrap_err();
    assert!(matches!(unknown, SessionError::InvalidCredentials), "{unknown:?}");
    assert!(matches!(wrong, SessionError::InvalidCredentials), "{wrong:?}");
    // Both hashed once (the dummy hash for the unknown email).
    assert_eq!(f.sessions.hasher().stats().argon2, 1 + 2, "register, then one check per login");
}

#[tokio::test]
async fn refresh_rotates_and_the_used_token_is_reuse_that_revokes_the_family() {
    let f = fixture("rotate", 0);
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
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
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
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
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
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
    f.sessions.register(creds("ada@example.com", PW), T0).await.unwrap();
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
