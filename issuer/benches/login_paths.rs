//! The login paths side by side, timed in one run with the samples
//! interleaved (issue 10): an attacker must not tell them apart.
//!
//! - `unknown`: an email with no account;
//! - `wrong`: a wrong password for an argon2id account;
//! - `wrong_bcrypt`: a wrong password for an account imported from bcrypt
//!   (its hash wrapped in argon2id; the deployment has such accounts, so
//!   every path also pays a bcrypt step);
//! - `refused_right` / `refused_wrong`: the right and a wrong password from
//!   a client refused by the attempt counters (no hashing at all).
//!
//! Through `Sessions::login` (the session core, as the HTTP and Lambda
//! adapters call it) on the SQLite store, or on DynamoDB when
//! `DYNAMODB_ENDPOINT` is set (moto). Each round runs every path once, in a
//! shuffled order; every granted attempt comes from a fresh client address,
//! so the counters never refuse it. Prints a Markdown table of medians and
//! ratios. Run through `scripts/bench-login-paths.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::Argon2Cost;
use issuer::keys::KeyRing;
use issuer::password::PasswordHasher;
use issuer::session::{Credentials, RecoveryRules, SessionError, SessionRules, Sessions};
use issuer::store::{NewUser, Store};
use rand::seq::SliceRandom as _;
use token_core::{Algorithm, Audience};

const PW: &str = "correct horse battery";
const WRONG: &str = "not the password at all";
const BCRYPT_COST: u32 = 10;
const PATHS: [&str; 5] = ["unknown", "wrong", "wrong_bcrypt", "refused_right", "refused_wrong"];

fn creds(email: &str, password: &str) -> Credentials {
    Credentials { email: email.into(), password: password.into() }
}

fn rules() -> SessionRules {
    SessionRules {
        issuer: "https://issuer.bench".into(),
        audience: Audience::One("api".into()),
        client_id: "web".into(),
        default_scopes: "openid".into(),
        access_ttl_secs: 900,
        refresh_ttl_secs: 30 * 86_400,
        session_max_secs: 90 * 86_400,
        reuse_grace_secs: 0,
        // The default limits, except that the per-account ceiling must not
        // slow down the `wrong` samples (one account, many addresses).
        attempt_policy: AttemptPolicy { per_account: 1_000_000, ..AttemptPolicy::default() },
        recovery: RecoveryRules { require_verified_email: false, ..RecoveryRules::default() },
    }
}

async fn run<S: Store>(store: S, samples: usize, label: &str) {
    let hasher = PasswordHasher::new(Argon2Cost::default(), 2, Duration::from_secs(60))
        .unwrap()
        .with_legacy_bcrypt(BCRYPT_COST)
        .unwrap();
    let s = Sessions::new(rules(), store, KeyRing::generate(Algorithm::RS256).unwrap(), Arc::new(hasher)).unwrap();
    let now = token_core::unix_now().as_secs();
    s.register(creds("known@example.com", PW), ClientAddr::new(Ipv4Addr::new(192, 0, 2, 200).into()), now)
        .await
        .unwrap();
    let wrapped = s.hasher().wrap_bcrypt_blocking(&bcrypt::hash(PW, BCRYPT_COST).unwrap()).unwrap();
    let imported = NewUser {
        user_id: format!("imported-{:08x}", rand::random::<u32>()),
        email: "imported@example.com".into(),
        password_hash: wrapped,
        scope: "openid".into(),
        created_at: now,
    };
    s.store().create_user(&imported).await.unwrap();
    // A client refused on the known account: five wrong attempts.
    let refused = ClientAddr::new(Ipv4Addr::new(192, 0, 2, 66).into());
    for _ in 0..AttemptPolicy::default().per_account_address {
        let _ = s.login(creds("known@example.com", WRONG), refused, now).await;
    }

    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); PATHS.len()];
    let mut order: Vec<usize> = (0..PATHS.len()).collect();
    let mut rng = rand::rng();
    let mut retried = 0u32;
    // Two warm-up rounds, not recorded.
    for round in 0..samples + 2 {
        order.shuffle(&mut rng);
        for &p in &order {
            // A fresh address per granted attempt: never refused.
            let n = (round * PATHS.len() + p) as u32;
            let fresh = ClientAddr::new(Ipv4Addr::from(0x0a00_0000 | n).into());
            let (email, pw, addr) = match PATHS[p] {
                "unknown" => (format!("nobody{round}@example.com"), WRONG, fresh),
                "wrong" => ("known@example.com".to_owned(), WRONG, fresh),
                "wrong_bcrypt" => ("imported@example.com".to_owned(), WRONG, fresh),
                "refused_right" => ("known@example.com".to_owned(), PW, refused),
                _ => ("known@example.com".to_owned(), WRONG, refused),
            };
            // moto (not DynamoDB) fails a request now and then under its
            // own threads (HTTP 500): such a sample is taken again, and
            // counted in the report.
            let (r, took) = loop {
                let start = Instant::now();
                let r = s.login(creds(&email, pw), addr, now).await;
                let took = start.elapsed().as_secs_f64() * 1e3;
                match r {
                    Err(SessionError::Store(issuer::store::StoreError::Unavailable(_))) if retried < 20 => {
                        retried += 1;
                    }
                    r => break (r, took),
                }
            };
            let expected_refusal = PATHS[p].starts_with("refused");
            match r {
                Err(SessionError::TooManyAttempts { .. }) if expected_refusal => {}
                Err(SessionError::InvalidCredentials) if !expected_refusal => {}
                other => panic!("{}: unexpected {other:?}", PATHS[p]),
            }
            if round >= 2 {
                times[p].push(took);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() / 10], v[v.len() * 9 / 10])
    };
    let stats: Vec<(f64, f64, f64)> = times.iter_mut().map(median).collect();
    let base = stats[1].0;
    println!("### {label}: {samples} interleaved rounds ({retried} samples retaken after a store error)\n");
    println!("| path | median ms | p10 ms | p90 ms | median / wrong |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (m, p10, p90)) in stats.iter().enumerate() {
        println!("| {} | {m:.2} | {p10:.2} | {p90:.2} | {:.3} |", PATHS[i], m / base);
    }
    println!(
        "\nrefused_right / refused_wrong: **{:.3}**; unknown / wrong: **{:.3}**; wrong_bcrypt / wrong: **{:.3}**\n",
        stats[3].0 / stats[4].0,
        stats[0].0 / stats[1].0,
        stats[2].0 / stats[1].0
    );
}

fn main() {
    let samples = std::env::args()
        .skip_while(|a| a != "--samples")
        .nth(1)
        .map_or(100, |v| v.parse().expect("--samples: a number"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("issuer-login-paths-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = issuer::store::sqlite::SqliteStore::open_in_dir(&dir, &Default::default()).unwrap();
        run(store, samples, "SQLite store").await;
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT") {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("t", "t", None, None, "bench"))
                .load()
                .await;
            let prefix = format!("login-paths-{:08x}", rand::random::<u32>());
            let cfg = issuer::store::dynamo::DynamoConfig {
                users_table: format!("{prefix}-Users"),
                refresh_table: format!("{prefix}-RefreshTokens"),
                endpoint: Some(endpoint),
                ..Default::default()
            };
            let store = issuer::store::dynamo::DynamoStore::new(&sdk, &cfg);
            store.create_tables().await.unwrap();
            run(store, samples, "DynamoDB store (moto on loopback)").await;
        }
    });
}
