//! The store operations of every request type, counted and pinned: the
//! inputs of the cost model (issue 15, `docs/bench/day-at-70m.md`). A code
//! change that adds, drops or reorders a store call on a path fails here,
//! and the bill's table of operations per request must follow it.
//!
//! Through the session core over the SQLite store wrapped in a counting
//! store (one name per `Store` call, in order); the DynamoDB requests each
//! call makes are listed in `issuer/src/store/dynamo/` and in the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::Argon2Cost;
use issuer::keys::KeyRing;
use issuer::mail::{MailTransport, Mailer, Message, MessageKind, SendFuture};
use issuer::password::PasswordHasher;
use issuer::session::{Credentials, RecoveryRules, SessionRules, Sessions};
use issuer::store::FeedCursor;
use issuer::store::sqlite::{SqliteOptions, SqliteStore};
use token_core::{Algorithm, Audience};

#[path = "common/counting.rs"]
#[allow(dead_code)]
mod counting;
use counting::Counting;

const T0: u64 = 1_900_000_800;
const PW: &str = "correct horse battery";
const NEW_PW: &str = "purple elephant umbrella";

#[derive(Clone, Default)]
struct Rec(Arc<Mutex<Vec<Message>>>);

impl MailTransport for Rec {
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            self.0.lock().unwrap().push(msg.clone());
            Ok(())
        })
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
}

impl Rec {
    fn token(&self, kind: MessageKind) -> String {
        let sent = self.0.lock().unwrap();
        let m = sent.iter().rev().find(|m| m.kind == kind).unwrap();
        let link = m.text.split_whitespace().find(|w| w.contains("token=")).unwrap();
        link.split_once("token=").unwrap().1.to_owned()
    }
}

fn here() -> ClientAddr {
    ClientAddr::parse("192.0.2.1").unwrap()
}

fn creds(password: &str) -> Credentials {
    Credentials { email: "ada@example.com".into(), password: password.into() }
}

#[tokio::test]
async fn store_operations_per_request_type() {
    let dir = std::env::temp_dir().join(format!("issuer-store-ops-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Counting::new(SqliteStore::open_in_dir(&dir, &SqliteOptions::default()).unwrap());
    let rules = SessionRules {
        issuer: "https://issuer.test".into(),
        audience: Audience::One("api".into()),
        client_id: "web".into(),
        default_scopes: "openid".into(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 30 * 86_400,
        session_max_secs: 90 * 86_400,
        reuse_grace_secs: 0,
        attempt_policy: AttemptPolicy::default(),
        recovery: RecoveryRules::default(),
    };
    let hasher = Arc::new(PasswordHasher::new(Argon2Cost::default(), 2, Duration::from_secs(60)).unwrap());
    let mail = Rec::default();
    let s = Sessions::new(rules, store, KeyRing::generate(Algorithm::ES256).unwrap(), hasher)
        .unwrap()
        .with_mailer(Mailer::new(mail.clone()));
    let ops = || s.store().take_ops();

    // Each request type, then its store calls in order.
    let mut table: Vec<(&str, Vec<&'static str>)> = Vec::new();
    s.register(creds(PW), here(), T0).await.unwrap();
    table.push(("register", ops()));
    s.verify_email(&mail.token(MessageKind::VerifyEmail), here(), T0).await.unwrap();
    table.push(("verify_email", ops()));
    let a = s.login(creds(PW), here(), T0).await.unwrap();
    table.push(("login", ops()));
    let _ = s.login(creds("not the password"), here(), T0).await.unwrap_err();
    table.push(("login_failed", ops()));
    let a2 = s.refresh(&a.refresh_token, T0 + 1).await.unwrap();
    table.push(("refresh", ops()));
    s.logout(Some(&a2.refresh_token), T0 + 2).await.unwrap();
    table.push(("logout", ops()));
    let b = s.login(creds(PW), here(), T0 + 3).await.unwrap();
    ops();
    s.logout_all(&b.access_token, T0 + 4).await.unwrap();
    table.push(("logout_all", ops()));
    s.revocations(Some(&FeedCursor::at(T0 * 1000)), 100, (T0 + 10) * 1000).await.unwrap();
    table.push(("revocations_page", ops()));
    s.forgot_password("ada@example.com", here(), T0 + 20).await.unwrap();
    table.push(("forgot_password", ops()));
    s.reset_password(&mail.token(MessageKind::PasswordReset), NEW_PW.into(), here(), T0 + 21).await.unwrap();
    table.push(("reset_password", ops()));
    let c = s.login(creds(NEW_PW), here(), T0 + 22).await.unwrap();
    ops();
    s.change_password(&c.access_token, NEW_PW.into(), PW.into(), here(), T0 + 23).await.unwrap();
    table.push(("change_password", ops()));

    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("register", vec!["take_attempt", "find_user_by_email", "create_signup"]),
        ("verify_email", vec!["take_attempt", "complete_signup"]),
        ("login", vec!["take_attempt", "find_user_by_email", "clear_attempts", "create_session"]),
        ("login_failed", vec!["take_attempt", "find_user_by_email"]),
        ("refresh", vec!["get_refresh", "get_user", "rotate"]),
        ("logout", vec!["get_refresh", "record_revocation"]),
        ("logout_all", vec!["get_user", "revoke_user_families", "record_revocation"]),
        ("revocations_page", vec!["revocations_after"]),
        ("forgot_password", vec!["take_attempt", "find_user_by_email", "put_reset"]),
        (
            "reset_password",
            vec!["take_attempt", "get_reset", "get_user", "take_attempt", "change_password", "revoke_user_families"],
        ),
        (
            "change_password",
            vec![
                "get_user",
                "take_attempt",
                "change_password",
                "clear_attempts",
                "revoke_user_families",
                "create_session",
            ],
        ),
    ];
    for ((name, got), (want_name, want)) in table.iter().zip(&expected) {
        assert_eq!(name, want_name);
        assert_eq!(got, want, "store calls of {name}");
    }
    assert_eq!(table.len(), expected.len());
    let _ = std::fs::remove_dir_all(&dir);
}
