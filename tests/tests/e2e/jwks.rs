//! The verifier against a real JWKS endpoint on loopback that counts fetches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::tokens::{claims, sign};
use e2e_tests::{JwksServer, Mode, wait_for};
use token_core::{Algorithm, SigningKey, Verifier, VerifierConfig, VerifyError};

const ISS: &str = "https://issuer.test";

fn config(server: &JwksServer) -> VerifierConfig {
    let mut c = VerifierConfig::for_issuer(ISS, vec!["api".into()], Some(server.url()));
    c.jwks_timeout = Duration::from_millis(500);
    c.jwks_connect_timeout = Duration::from_millis(500);
    c
}

fn token(key: &SigningKey) -> String {
    sign(key, &claims(ISS, "api", "user-1", "read", 900))
}

#[tokio::test]
async fn warm_up_fetches_once_and_tokens_verify_without_further_fetches() {
    let k = SigningKey::generate(Algorithm::RS256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    assert!(v.warm_up().await.iter().all(Result::is_ok));
    assert_eq!(server.fetches(), 1);
    for _ in 0..50 {
        v.verify(&token(&k)).await.unwrap();
    }
    assert_eq!(server.fetches(), 1);
    assert!(v.health(token_core::unix_now()).ready());
}

#[tokio::test]
async fn rotation_is_picked_up_on_the_first_token_of_the_new_key() {
    let old = SigningKey::generate(Algorithm::ES256, "2026-10").unwrap();
    let server = JwksServer::start(&[&old]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    let next = SigningKey::generate(Algorithm::ES256, "2026-11").unwrap();
    server.set_keys(&[&old, &next]);
    v.verify(&token(&next)).await.unwrap();
    assert_eq!(server.fetches(), 2, "one refetch for the unknown kid");
    v.verify(&token(&old)).await.unwrap();
    v.verify(&token(&next)).await.unwrap();
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let k = SigningKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    let mut tasks = Vec::new();
    for i in 0..500 {
        let v = Arc::clone(&v);
        let attacker = SigningKey::generate(Algorithm::EdDSA, format!("random-{i}")).unwrap();
        tasks.push(tokio::spawn(async move { v.verify(&token(&attacker)).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), VerifyError::UnknownKid);
    }
    assert_eq!(server.fetches(), 2, "warm-up plus one coalesced refetch");
    // Still within the cooldown: no more fetches, and known tokens are fine.
    let stranger = SigningKey::generate(Algorithm::EdDSA, "later").unwrap();
    assert_eq!(v.verify(&token(&stranger)).await.unwrap_err(), VerifyError::UnknownKid);
    v.verify(&token(&k)).await.unwrap();
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn cooldown_expiry_allows_the_next_refetch() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let mut cfg = config(&server);
    cfg.unknown_kid_cooldown = Duration::from_secs(2);
    let v = Verifier::new(&cfg).unwrap();
    v.warm_up().await;
    let stranger = SigningKey::generate(Algorithm::ES256, "x").unwrap();
    let _ = v.verify(&token(&stranger)).await;
    let _ = v.verify(&token(&stranger)).await;
    assert_eq!(server.fetches(), 2, "one refetch for the first unknown kid, none for the second");
    // Once the cooldown has run out, the same unknown kid refetches: ask
    // until it does (the deadline only guards against never).
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.fetches() == 2 {
        assert!(Instant::now() < deadline, "no refetch after the cooldown");
        assert_eq!(v.verify(&token(&stranger)).await.unwrap_err(), VerifyError::UnknownKid);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.fetches(), 3, "one refetch per cooldown");
}

#[tokio::test]
async fn endpoint_down_serves_stale_keys_and_health_reports_it() {
    let k = SigningKey::generate(Algorithm::RS256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    let t = token(&k);
    v.verify(&t).await.unwrap();

    for mode in [Mode::Status(500), Mode::Status(404), Mode::Garbage] {
        server.set_mode(mode);
        assert!(v.refresh_issuer(0).await.is_err(), "{mode:?}");
        // Known keys keep serving; a fresh token of the same key too.
        v.verify(&t).await.unwrap();
        v.verify(&token(&k)).await.unwrap();
        let h = v.health(token_core::unix_now());
        assert!(h.ready(), "within the max stale age");
        assert!(h.issuers[0].stale, "{mode:?}");
        assert!(h.issuers[0].last_error.is_some());
    }
    server.set_mode(Mode::Serve);
    v.refresh_issuer(0).await.unwrap();
    let h = v.health(token_core::unix_now());
    assert!(!h.issuers[0].stale);
    assert_eq!(h.issuers[0].consecutive_failures, 0);
}

#[tokio::test]
async fn hanging_endpoint_times_out_and_never_blocks_known_tokens() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;

    // A fetch that hangs for as long as the test wants (a 60 s timeout):
    // tokens of known keys verify meanwhile, all of them before it ends.
    let mut patient = config(&server);
    patient.jwks_timeout = Duration::from_secs(60);
    let v = Verifier::new(&patient).unwrap();
    v.warm_up().await;
    server.set_mode(Mode::Hang);
    let refresh = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.refresh_issuer(0).await })
    };
    wait_for("the refresh to reach the hanging endpoint", Duration::from_secs(10), || server.fetches() == 2).await;
    for _ in 0..20 {
        let verified = tokio::time::timeout(Duration::from_secs(10), v.verify(&token(&k))).await;
        verified.expect("a known token waited for the hanging fetch").unwrap();
    }
    assert!(!refresh.is_finished(), "the fetch is still hanging: the tokens did not wait for it");
    refresh.abort();

    // With the usual timeout (500 ms): the refresh fails with Timeout, and
    // an unknown kid waits for one fetch, answered UnknownKid.
    let v = Verifier::new(&config(&server)).unwrap();
    server.set_mode(Mode::Serve);
    v.warm_up().await;
    server.set_mode(Mode::Hang);
    let fetches = server.fetches();
    assert_eq!(v.refresh_issuer(0).await.unwrap_err(), token_core::FetchError::Timeout);
    assert_eq!(server.fetches(), fetches + 1);
    let stranger = SigningKey::generate(Algorithm::ES256, "x").unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), v.verify(&token(&stranger))).await;
    assert_eq!(answer.expect("the unknown kid hung").unwrap_err(), VerifyError::UnknownKid);
    assert_eq!(server.fetches(), fetches + 2, "one fetch for the unknown kid");
    v.verify(&token(&k)).await.unwrap();
}

/// While the endpoint hangs, a token with an unknown kid waits for one fetch
/// at most, never for a chain of them: not for the fetch in flight and then
/// one of its own once the cooldown has run out meanwhile, nor for the fetch
/// in flight and then the ones queued before it. Chained, the waits reached
/// the sidecar's request timeout (twice the JWKS timeout by default) and the
/// answer was a 503 (found by scripts/chaos-sidecar.sh).
///
/// Checked by what happened, not by how long it took: which fetches were
/// made, and whether the answer came before the queued fetch had ended.
#[tokio::test]
async fn unknown_kid_waits_for_one_hanging_fetch_at_most() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let mut cfg = config(&server);
    cfg.jwks_timeout = Duration::from_secs(1);
    cfg.unknown_kid_cooldown = Duration::from_millis(300); // over before the hanging fetch is
    let v = Verifier::new(&cfg).unwrap();
    v.warm_up().await;
    server.set_mode(Mode::Hang);
    let stranger = SigningKey::generate(Algorithm::ES256, "x").unwrap();

    // An unknown kid starts a refetch that hangs; another one comes while
    // it does, and makes no fetch of its own after it.
    let first = {
        let (v, t) = (Arc::clone(&v), token(&stranger));
        tokio::spawn(async move { v.verify(&t).await })
    };
    wait_for("the first refetch to reach the endpoint", Duration::from_secs(10), || server.fetches() == 2).await;
    let second = tokio::time::timeout(Duration::from_secs(10), v.verify(&token(&stranger))).await;
    assert_eq!(second.expect("the second unknown kid hung").unwrap_err(), VerifyError::UnknownKid);
    assert_eq!(first.await.unwrap().unwrap_err(), VerifyError::UnknownKid);
    assert_eq!(server.fetches(), 2, "the second caller waited for the first fetch, not for one of its own");

    // A refresh in flight and another queued behind it (background
    // refreshes): the unknown kid is answered before the queued one ends.
    let r1 = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.refresh_issuer(0).await })
    };
    wait_for("the first refresh to reach the endpoint", Duration::from_secs(10), || server.fetches() == 3).await;
    let r2 = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.refresh_issuer(0).await })
    };
    // Let r2 queue for the fetch lock before the token does (this runtime
    // has one thread: r2 runs to its first wait when this task yields).
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), v.verify(&token(&stranger))).await;
    assert_eq!(answer.expect("the unknown kid hung").unwrap_err(), VerifyError::UnknownKid);
    assert!(!r2.is_finished(), "the unknown kid waited for the queued refresh too");
    assert!(r1.await.unwrap().is_err());
    assert!(r2.await.unwrap().is_err());
    assert_eq!(server.fetches(), 4, "one fetch per refresh, none for the unknown kid");
    // Known keys were never affected.
    v.verify(&token(&k)).await.unwrap();
}

#[tokio::test]
async fn stale_keys_stop_serving_after_the_max_stale_age() {
    let k = SigningKey::generate(Algorithm::EdDSA, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    server.set_mode(Mode::Status(503));
    let now = token_core::unix_now();
    let max_stale = config(&server).jwks_max_stale;
    let t = token(&k);
    assert!(v.verify_at(&t, now).is_ok());
    let later = now + max_stale + Duration::from_secs(2);
    assert_eq!(v.verify_at(&t, later).unwrap_err(), VerifyError::KeysUnavailable);
    assert!(!v.health(later).ready());
}

#[tokio::test]
async fn removed_key_voids_its_cached_tokens() {
    let a = SigningKey::generate(Algorithm::RS256, "a").unwrap();
    let b = SigningKey::generate(Algorithm::RS256, "b").unwrap();
    let server = JwksServer::start(&[&a, &b]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    let ta = token(&a);
    let tb = token(&b);
    v.verify(&ta).await.unwrap();
    v.verify(&tb).await.unwrap();
    server.set_keys(&[&b]);
    v.refresh_issuer(0).await.unwrap();
    assert_eq!(v.verify_at(&ta, token_core::unix_now()).unwrap_err(), VerifyError::UnknownKid);
    let hits = v.metrics().cache_hits();
    v.verify(&tb).await.unwrap();
    assert_eq!(v.metrics().cache_hits(), hits + 1, "b's tokens stay cached");
}

#[tokio::test]
async fn a_jwks_without_usable_keys_keeps_the_last_good_set() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let v = Verifier::new(&config(&server)).unwrap();
    v.warm_up().await;
    server.set_keys(&[]);
    assert_eq!(v.refresh_issuer(0).await.unwrap_err(), token_core::FetchError::NoUsableKeys);
    v.verify(&token(&k)).await.unwrap();
}

#[tokio::test]
async fn background_refresh_runs_before_the_keys_age_out() {
    let k = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    let mut cfg = config(&server);
    cfg.jwks_refresh = Duration::from_millis(400);
    let v = Verifier::new(&cfg).unwrap();
    v.warm_up().await;
    v.spawn_refresh();
    let next = SigningKey::generate(Algorithm::ES256, "k2").unwrap();
    server.set_keys(&[&k, &next]);
    // The new key arrives in the background: wait until it is installed.
    wait_for("a background refresh to install the new key", Duration::from_secs(20), || {
        v.health(token_core::unix_now()).issuers[0].keys == 2
    })
    .await;
    assert!(server.fetches() >= 2, "warm-up plus a background refresh");
    // From now on every fetch fails: a token of the new key can only
    // verify with the key fetched in the background, not by a fetch on
    // demand.
    server.set_mode(Mode::Status(500));
    v.verify(&token(&next)).await.unwrap();
    // Control: a kid the verifier does not hold is refused now, as a fetch
    // on demand cannot get it.
    let stranger = SigningKey::generate(Algorithm::ES256, "k3").unwrap();
    assert_eq!(v.verify(&token(&stranger)).await.unwrap_err(), VerifyError::UnknownKid);
}

#[tokio::test]
async fn no_keys_at_start_are_fetched_on_first_use() {
    let k = SigningKey::generate(Algorithm::RS256, "k1").unwrap();
    let server = JwksServer::start(&[&k]).await;
    server.set_mode(Mode::Status(500));
    let v = Verifier::new(&config(&server)).unwrap();
    assert!(v.warm_up().await[0].is_err());
    assert!(!v.health(token_core::unix_now()).ready());
    server.set_mode(Mode::Serve);
    // The warm-up failure did not start a cooldown: the first token fetches.
    v.verify(&token(&k)).await.unwrap();
    assert!(v.health(token_core::unix_now()).ready());
}
