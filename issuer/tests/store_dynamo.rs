//! The store suite and the failure behaviour of [`DynamoStore`] against a
//! DynamoDB-compatible server on `DYNAMODB_ENDPOINT` (moto, started by
//! `scripts/test.sh`). Without `DYNAMODB_ENDPOINT` these tests fail: they
//! never skip silently.
//!
//! Every test creates its own uniquely named tables. moto is not a faithful
//! DynamoDB under concurrency: it runs requests on parallel threads with no
//! isolation, and a cancelled transaction restores a snapshot of the whole
//! table taken when it started, undoing other requests' writes made in the
//! meantime. Tables per test keep tests from undoing each other; the
//! behaviours that race requests on purpose go through a loopback proxy that
//! forwards one request at a time (the isolation DynamoDB itself gives).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, ProjectionType, TimeToLiveStatus};
use issuer::store::conformance::{REFRESH_TTL, SESSION_MAX, fresh_id, wall_clock};
use issuer::store::dynamo::{DynamoConfig, DynamoStore, EMAIL_INDEX, FAMILY_USER_INDEX};
use issuer::store::{
    Family, FeedCursor, NewRefresh, NewUser, RevocationEvent, RevocationTarget, RotateOutcome, Store, StoreError,
    new_event_id,
};

use fault_proxy::{Fault, FaultProxy};

const MISSING_ENDPOINT: &str = "DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts a \
     DynamoDB-compatible server (moto), or point it at one";

/// Behaviours that race requests against one item (see the module doc).
const RACING: &[&str] = &[
    "email_taken_writes_nothing",
    "concurrent_failures_all_count",
    "concurrent_rotations_one_winner",
    "concurrent_revocations_record_once_each",
];

fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => panic!("{MISSING_ENDPOINT}"),
    }
}

/// Static credentials and region: moto accepts anything, and nothing here
/// may reach for real credentials (IMDS, profiles).
async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "issuer-tests"))
        .load()
        .await
}

/// `issuer-test-<run>-<n>-<tag>`: unique per process run and per call.
fn table_prefix(tag: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let run = RUN.get_or_init(|| format!("{:08x}", rand::random::<u32>()));
    let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(60).collect();
    format!("issuer-test-{run}-{}-{tag}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The store's configuration, with the default timeouts (the outage tests
/// check those).
fn config_for(prefix: &str, endpoint: &str) -> DynamoConfig {
    DynamoConfig {
        users_table: format!("{prefix}-Users"),
        refresh_table: format!("{prefix}-RefreshTokens"),
        revocations_table: format!("{prefix}-Revocations"),
        endpoint: Some(endpoint.to_owned()),
        ..DynamoConfig::default()
    }
}

/// As [`config_for`], with timeouts for a slow moto: on a loaded machine
/// (tests in parallel, other builds) moto answers in seconds at times, and
/// behind the serialising proxy a request also waits for those queued before
/// it. The tests using it check behaviour, not timeouts: a timeout there is
/// a false failure.
fn patient_config_for(prefix: &str, endpoint: &str) -> DynamoConfig {
    DynamoConfig {
        attempt_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(30),
        ..config_for(prefix, endpoint)
    }
}

/// A store on fresh tables, talking to moto directly.
async fn fresh_store(tag: &str) -> DynamoStore {
    let config = patient_config_for(&table_prefix(tag), &endpoint());
    let store = DynamoStore::new(&sdk_config().await, &config);
    store.create_tables().await.expect("create_tables");
    store
}

/// A store on fresh tables, talking to moto through a fault proxy.
async fn proxied_store(tag: &str, serialize: bool) -> (DynamoStore, FaultProxy) {
    let prefix = table_prefix(tag);
    let direct = DynamoStore::new(&sdk_config().await, &patient_config_for(&prefix, &endpoint()));
    direct.create_tables().await.expect("create_tables");
    let proxy = FaultProxy::start(&endpoint(), serialize).await;
    (DynamoStore::new(&sdk_config().await, &patient_config_for(&prefix, &proxy.url())), proxy)
}

/// The suite's store factory: fresh tables per behaviour; racing behaviours
/// through a serialising proxy (kept alive by leaking it: one per test).
async fn conformance_store(test: &'static str) -> DynamoStore {
    if RACING.contains(&test) {
        let (store, proxy) = proxied_store(test, true).await;
        std::mem::forget(proxy);
        store
    } else {
        fresh_store(test).await
    }
}

issuer::store_conformance_tests!(conformance_store);

// ------------------------------------------------------------ fixtures

fn new_user() -> NewUser {
    NewUser {
        user_id: fresh_id("user"),
        email: format!("{}@example.com", fresh_id("u")),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        scope: "openid".to_owned(),
        created_at: wall_clock(),
    }
}

fn new_session(now: u64) -> (Family, NewRefresh) {
    let family = Family {
        family_id: fresh_id("family"),
        user_id: fresh_id("user"),
        created_at: now,
        expires_at: now + SESSION_MAX,
        revoked_at: None,
    };
    let first = successor(&family, now);
    (family, first)
}

fn successor(family: &Family, now: u64) -> NewRefresh {
    NewRefresh {
        token_hash: fresh_id("hash"),
        family_id: family.family_id.clone(),
        user_id: family.user_id.clone(),
        issued_at: now,
        expires_at: now + REFRESH_TTL,
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

// ------------------------------------------------------------ tables

#[tokio::test]
async fn create_tables_follows_the_design_and_is_idempotent() {
    let store = fresh_store("design").await;
    store.create_tables().await.expect("second create_tables keeps the tables");
    let client = store.client();

    let users = client.describe_table().table_name(store.users_table()).send().await.unwrap();
    let users = users.table().unwrap();
    let key = users.key_schema();
    assert_eq!((key.len(), key[0].attribute_name(), key[0].key_type()), (1, "pk", &KeyType::Hash));
    let gsis = users.global_secondary_indexes();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0].index_name(), Some(EMAIL_INDEX));
    assert_eq!(gsis[0].key_schema()[0].attribute_name(), "email");
    let projection = gsis[0].projection().unwrap();
    assert_eq!(projection.projection_type(), Some(&ProjectionType::Include));
    let mut projected = projection.non_key_attributes().to_vec();
    projected.sort();
    assert_eq!(projected, ["failedLogins", "lockedUntil", "passwordHash", "scope", "tokensValidAfter", "userId"]);

    let refresh = client.describe_table().table_name(store.refresh_table()).send().await.unwrap();
    let refresh = refresh.table().unwrap();
    assert_eq!(refresh.key_schema()[0].attribute_name(), "pk");
    let gsis = refresh.global_secondary_indexes();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0].index_name(), Some(FAMILY_USER_INDEX));
    assert_eq!(gsis[0].key_schema()[0].attribute_name(), "familyUser");
    assert_eq!(gsis[0].projection().unwrap().projection_type(), Some(&ProjectionType::KeysOnly));

    let revocations = client.describe_table().table_name(store.revocations_table()).send().await.unwrap();
    let revocations = revocations.table().unwrap();
    let key: Vec<_> = revocations.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().clone())).collect();
    assert_eq!(key, [("pk", KeyType::Hash), ("sk", KeyType::Range)]);
    assert!(revocations.global_secondary_indexes().is_empty(), "no index: read by key only");

    for table in [store.refresh_table(), store.revocations_table()] {
        let ttl = client.describe_time_to_live().table_name(table).send().await.unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(ttl.attribute_name(), Some("expiresAt"), "{table}");
        assert!(
            matches!(ttl.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)),
            "{table}"
        );
    }
}

#[tokio::test]
async fn items_follow_the_design() {
    let store = fresh_store("items").await;
    let user = new_user();
    store.create_user(&user).await.unwrap();
    let now = wall_clock();
    let (family, first) = new_session(now);
    store.create_session(&family, &first).await.unwrap();
    let client = store.client();
    let get = |table: String, pk: String| async move {
        client.get_item().table_name(table).key("pk", AttributeValue::S(pk)).send().await.unwrap().item.unwrap()
    };
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: u64| AttributeValue::N(v.to_string());

    let item = get(store.users_table().to_owned(), format!("USER#{}", user.user_id)).await;
    assert_eq!(item.get("userId"), Some(&s(&user.user_id)));
    assert_eq!(item.get("email"), Some(&s(&user.email)));
    assert_eq!(item.get("passwordHash"), Some(&s(&user.password_hash)));
    assert_eq!(item.get("failedLogins"), Some(&n(0)));
    assert_eq!(item.get("createdAt"), Some(&n(user.created_at)));
    let marker = get(store.users_table().to_owned(), format!("EMAIL#{}", user.email)).await;
    assert_eq!(marker.get("userId"), Some(&s(&user.user_id)));
    assert!(!marker.contains_key("email"), "markers stay out of the email index");

    let token = get(store.refresh_table().to_owned(), format!("TOKEN#{}", first.token_hash)).await;
    assert_eq!(token.get("familyId"), Some(&s(&family.family_id)));
    assert_eq!(token.get("expiresAt"), Some(&n(first.expires_at)));
    assert!(!token.contains_key("familyUser"), "tokens stay out of the family index");
    let fam = get(store.refresh_table().to_owned(), format!("FAMILY#{}", family.family_id)).await;
    assert_eq!(fam.get("familyUser"), Some(&s(&family.user_id)));
    assert_eq!(fam.get("expiresAt"), Some(&n(family.expires_at)));
}

// ------------------------------------------------------------ revocation feed

fn subject_event(user_id: &str, time_ms: u64, until: u64) -> RevocationEvent {
    RevocationEvent {
        event_id: new_event_id().unwrap(),
        time_ms,
        until,
        target: RevocationTarget::Subject { user_id: user_id.to_owned(), before: time_ms / 1000 + 1, family_id: None },
    }
}

/// Event items: hour partition, time-ordered sort key, hashed id, TTL on
/// `expiresAt`; the user's `tokensValidAfter` in the same write. No user or
/// family id in clear.
#[tokio::test]
async fn revocation_items_follow_the_design() {
    let store = fresh_store("revocation-items").await;
    let user = new_user();
    store.create_user(&user).await.unwrap();
    let now = wall_clock();
    let event = subject_event(&user.user_id, now * 1000 + 999, now + 1020);
    assert!(store.record_revocation(&event, now).await.unwrap());
    let out = store.client().scan().table_name(store.revocations_table()).send().await.unwrap();
    let items = out.items();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let pk = format!("REVOKE#{}", (now * 1000 + 999) / 3_600_000);
    assert_eq!(item.get("pk"), Some(&AttributeValue::S(pk)));
    assert_eq!(item.get("sk"), Some(&AttributeValue::S(format!("{:013}#{}", now * 1000 + 999, event.event_id))));
    assert_eq!(item.get("k"), Some(&AttributeValue::S("subject".into())));
    let rid = token_core::revocation::RevocationId::subject(&user.user_id);
    assert_eq!(item.get("rid"), Some(&AttributeValue::B(rid.0.to_vec().into())));
    assert_eq!(item.get("before"), Some(&AttributeValue::N((now + 1).to_string())));
    assert_eq!(item.get("expiresAt"), Some(&AttributeValue::N((now + 1020).to_string())));
    assert!(!format!("{item:?}").contains(&user.user_id), "no user id in clear: {item:?}");
    let user_item = store
        .client()
        .get_item()
        .table_name(store.users_table())
        .key("pk", AttributeValue::S(format!("USER#{}", user.user_id)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(user_item.get("tokensValidAfter"), Some(&AttributeValue::N((now + 1).to_string())));
}

/// A page costs one `Query` per hour bucket between the cursor and
/// `as_of`: one when the cursor is in the current hour, two from the
/// previous hour, and a page cut short by `limit` stops querying. Never a
/// scan: the count is of `Query` requests, and the listing is complete.
#[tokio::test]
async fn feed_pages_cost_one_query_per_hour_bucket() {
    let store = fresh_store("feed-queries").await;
    let user = new_user();
    store.create_user(&user).await.unwrap();
    let now = wall_clock();
    // `now_ms` five minutes into an hour, so the cases below are exact.
    let now_ms = (now * 1000 / 3_600_000) * 3_600_000 + 300_000;
    let until = now + 3600;
    for t in [now_ms - 3_600_000, now_ms - 4_000, now_ms - 3_000, now_ms - 2_000] {
        assert!(store.record_revocation(&subject_event(&user.user_id, t, until), now).await.unwrap());
    }
    let queries = |before: u64| store.feed_queries() - before;

    let q = store.feed_queries();
    let page = store.revocations_after(Some(&FeedCursor::at(now_ms - 4_500)), 1000, now_ms).await.unwrap();
    assert_eq!((page.events.len(), page.more, queries(q)), (3, false, 1), "cursor in this hour: one query");

    let q = store.feed_queries();
    let from = FeedCursor::at(now_ms - 3_600_000 - 10_000);
    let page = store.revocations_after(Some(&from), 1000, now_ms).await.unwrap();
    assert_eq!((page.events.len(), page.more, queries(q)), (4, false, 2), "from the previous hour: two");

    let q = store.feed_queries();
    let page = store.revocations_after(Some(&from), 1, now_ms).await.unwrap();
    assert_eq!((page.events.len(), page.more, queries(q)), (1, true, 1), "a full page stops querying");

    let q = store.feed_queries();
    let page = store.revocations_after(Some(&page.next), 1000, now_ms).await.unwrap();
    assert_eq!((page.events.len(), page.more, queries(q)), (3, false, 2), "the rest");

    // Caught up: the next cursor is in this hour whatever happened before.
    let q = store.feed_queries();
    let page = store.revocations_after(Some(&page.next), 1000, now_ms + 1_000).await.unwrap();
    assert_eq!((page.events.len(), page.more, queries(q)), (0, false, 1), "caught up: one query");
}

// ------------------------------------------------------------ outages

/// Every call against an endpoint nobody listens on: `Unavailable`, not a
/// hang (each call is bounded by the operation timeout; the deadline below
/// only guards against a hang).
#[tokio::test]
async fn closed_endpoint_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = config_for(&table_prefix("closed"), &format!("http://127.0.0.1:{port}"));
    let store = DynamoStore::new(&sdk_config().await, &config);
    let now = wall_clock();
    let (family, first) = new_session(now);
    let calls = async {
        assert_unavailable(store.create_user(&new_user()).await, "create_user");
        assert_unavailable(store.find_user_by_email("a@example.com").await, "find_user_by_email");
        assert_unavailable(store.get_user("u").await, "get_user");
        assert_unavailable(store.record_login_failure("u", now, 5, 900).await, "record_login_failure");
        assert_unavailable(store.record_login_success("u", now, None).await, "record_login_success");
        assert_unavailable(store.create_session(&family, &first).await, "create_session");
        assert_unavailable(store.get_refresh("h").await, "get_refresh");
        assert_unavailable(store.rotate(&first.token_hash, &successor(&family, now), now).await, "rotate");
        assert_unavailable(store.add_to_family(&successor(&family, now), now).await, "add_to_family");
        assert_unavailable(store.revoke_family(&family.family_id, now).await, "revoke_family");
        assert_unavailable(store.revoke_user_families(&family.user_id, now).await, "revoke_user_families");
        assert_unavailable(store.create_tables().await, "create_tables");
    };
    tokio::time::timeout(Duration::from_secs(120), calls).await.expect("a call to a closed endpoint hung");
}

/// An endpoint that accepts connections and never answers: `Unavailable`
/// for a timeout, after a bounded number of attempts that all reached the
/// endpoint, not a hang.
#[tokio::test]
async fn silent_endpoint_times_out_as_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let config = config_for(&table_prefix("silent"), &format!("http://127.0.0.1:{port}"));
    let store = DynamoStore::new(&sdk_config().await, &config);
    let now = wall_clock();
    let (family, first) = new_session(now);
    for (what, call) in [
        (
            "get_user",
            Box::pin(async { store.get_user("u").await.map(|_| ()) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>,
        ),
        (
            "rotate",
            Box::pin(async { store.rotate(&first.token_hash, &successor(&family, now), now).await.map(|_| ()) }),
        ),
    ] {
        let before = accepted.load(Ordering::SeqCst);
        // Only a guard against a hang: the store's own timeouts end the call.
        let result = tokio::time::timeout(Duration::from_secs(30), call).await.expect("the store must not hang");
        match result {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("timed out"), "{what}: {m}"),
            other => panic!("{what}: expected Unavailable, got {other:?}"),
        }
        // Every attempt is a new connection (the silent ones are never
        // reused): at least one reached the endpoint, at most max_attempts.
        let attempts = accepted.load(Ordering::SeqCst) - before;
        let max = u64::from(config.max_attempts);
        assert!((1..=max).contains(&attempts), "{what}: {attempts} attempts, at most {max}");
    }
}

/// Throttling and 5xx answers are retried by the SDK (3 attempts), then
/// `Unavailable`; a cancelled transaction writes nothing.
#[tokio::test]
async fn throttling_and_server_errors_are_unavailable() {
    let (store, proxy) = proxied_store("throttle", false).await;
    let user = new_user();
    store.create_user(&user).await.unwrap();

    proxy.inject("GetItem", Fault::throttling(), None);
    assert_unavailable(store.get_user(&user.user_id).await, "throttled get_user");
    assert_eq!(proxy.seen("GetItem"), 3, "the SDK retries throttling, boundedly");
    proxy.clear();

    proxy.inject("UpdateItem", Fault::internal_error(), None);
    assert_unavailable(store.record_login_failure(&user.user_id, wall_clock(), 5, 900).await, "5xx");
    proxy.clear();
    assert_eq!(store.get_user(&user.user_id).await.unwrap().unwrap().failed_logins, 0);

    proxy.inject("TransactWriteItems", Fault::internal_error(), None);
    let other = new_user();
    assert_unavailable(store.create_user(&other).await, "5xx create_user");
    proxy.clear();
    assert_eq!(store.get_user(&other.user_id).await.unwrap(), None);
    assert_eq!(store.find_user_by_email(&other.email).await.unwrap(), None);

    // A transaction cancelled for throttling is Unavailable too.
    proxy.inject("TransactWriteItems", Fault::cancelled(&["ThrottlingError", "None"]), None);
    assert_unavailable(store.create_user(&other).await, "throttled transaction");
    proxy.clear();
    assert_eq!(store.get_user(&other.user_id).await.unwrap(), None);
    store.create_user(&other).await.expect("the address was not claimed");
}

/// The connection drops before a write reaches the server, on every
/// attempt: `Unavailable`, and nothing of the multi-item writes exists.
#[tokio::test]
async fn outage_before_a_write_leaves_nothing_written() {
    let (store, proxy) = proxied_store("drop-request", false).await;
    let now = wall_clock();
    let (family, first) = new_session(now);
    store.create_session(&family, &first).await.unwrap();

    proxy.inject("TransactWriteItems", Fault::DropRequest, None);
    let user = new_user();
    assert_unavailable(store.create_user(&user).await, "create_user");
    let (other_family, other_first) = new_session(now);
    assert_unavailable(store.create_session(&other_family, &other_first).await, "create_session");
    let next = successor(&family, now + 1);
    assert_unavailable(store.rotate(&first.token_hash, &next, now + 1).await, "rotate");
    let extra = successor(&family, now + 1);
    assert_unavailable(store.add_to_family(&extra, now + 1).await, "add_to_family");
    assert!(proxy.seen("TransactWriteItems") >= 4 * 3, "every attempt was dropped");
    proxy.clear();

    assert_eq!(store.get_user(&user.user_id).await.unwrap(), None);
    assert_eq!(store.find_user_by_email(&user.email).await.unwrap(), None);
    assert_eq!(store.get_refresh(&other_first.token_hash).await.unwrap(), None);
    let (old, _) = store.get_refresh(&first.token_hash).await.unwrap().unwrap();
    assert_eq!(old.used_at, None, "the old token is not marked used");
    assert_eq!(store.get_refresh(&next.token_hash).await.unwrap(), None);
    assert_eq!(store.get_refresh(&extra.token_hash).await.unwrap(), None);

    // Everything works once the store is back.
    store.create_user(&user).await.unwrap();
    assert_eq!(store.rotate(&first.token_hash, &next, now + 1).await.unwrap(), RotateOutcome::Rotated);
}

/// The server commits, then every response is lost (the SDK's retries
/// included): the caller sees `Unavailable`, and the data is whole: every
/// item of each transaction, never part of one.
#[tokio::test]
async fn outage_after_a_write_leaves_it_whole() {
    let (store, proxy) = proxied_store("drop-response", false).await;
    let now = wall_clock();
    let (family, first) = new_session(now);
    store.create_session(&family, &first).await.unwrap();

    proxy.inject("TransactWriteItems", Fault::DropResponse, None);
    let user = new_user();
    assert_unavailable(store.create_user(&user).await, "create_user");
    let (other_family, other_first) = new_session(now);
    assert_unavailable(store.create_session(&other_family, &other_first).await, "create_session");
    let next = successor(&family, now + 1);
    assert_unavailable(store.rotate(&first.token_hash, &next, now + 1).await, "rotate");
    proxy.clear();

    let user_read = store.get_user(&user.user_id).await.unwrap();
    assert!(user_read.is_some(), "the first attempt committed");
    assert_eq!(store.find_user_by_email(&user.email).await.unwrap(), user_read, "user and marker together");
    let (token, fam) = store.get_refresh(&other_first.token_hash).await.unwrap().expect("family and token together");
    assert_eq!((token.family_id, fam), (other_family.family_id.clone(), other_family));
    let (old, _) = store.get_refresh(&first.token_hash).await.unwrap().unwrap();
    assert_eq!(old.used_at, Some(now + 1), "the old token is marked used...");
    assert!(store.get_refresh(&next.token_hash).await.unwrap().is_some(), "...and its successor stored");
    // The rotation happened: presenting the old token again is reuse.
    let again = successor(&family, now + 2);
    assert_eq!(
        store.rotate(&first.token_hash, &again, now + 2).await.unwrap(),
        RotateOutcome::AlreadyUsed { used_at: now + 1 }
    );
}

/// The first response is lost and the SDK retries a transaction that had
/// committed. DynamoDB answers the retry from its idempotency token; moto
/// has none and cancels it. Either way the store reports its own write as
/// done, not as `EmailTaken` or `AlreadyUsed`.
#[tokio::test]
async fn retried_commit_is_recognised_as_our_own() {
    let (store, proxy) = proxied_store("retried-commit", false).await;
    let now = wall_clock();
    let (family, first) = new_session(now);

    proxy.inject("TransactWriteItems", Fault::DropResponse, Some(1));
    store.create_session(&family, &first).await.expect("create_session retried after its commit");
    assert_eq!(proxy.seen("TransactWriteItems"), 2, "one lost response, one retry");

    proxy.inject("TransactWriteItems", Fault::DropResponse, Some(1));
    let user = new_user();
    store.create_user(&user).await.expect("create_user retried after its commit");
    assert_eq!(proxy.seen("TransactWriteItems"), 2, "one lost response, one retry");

    proxy.inject("TransactWriteItems", Fault::DropResponse, Some(1));
    let next = successor(&family, now + 1);
    assert_eq!(store.rotate(&first.token_hash, &next, now + 1).await.unwrap(), RotateOutcome::Rotated);
    assert_eq!(proxy.seen("TransactWriteItems"), 2, "one lost response, one retry");

    proxy.inject("TransactWriteItems", Fault::DropResponse, Some(1));
    let extra = successor(&family, now + 2);
    assert!(store.add_to_family(&extra, now + 2).await.unwrap());
    assert_eq!(proxy.seen("TransactWriteItems"), 2, "one lost response, one retry");
    proxy.clear();

    // Someone else's successor is still reuse.
    let thief = successor(&family, now + 3);
    assert_eq!(
        store.rotate(&first.token_hash, &thief, now + 3).await.unwrap(),
        RotateOutcome::AlreadyUsed { used_at: now + 1 }
    );
    assert!(matches!(
        store.create_user(&NewUser { user_id: fresh_id("user"), ..user }).await,
        Err(StoreError::EmailTaken)
    ));
}

/// Transactions cancelled only by conflicts with other transactions are
/// retried; if the conflicts never end, the store gives up with
/// `Unavailable`, nothing written.
#[tokio::test]
async fn transaction_conflicts_are_retried_then_unavailable() {
    let (store, proxy) = proxied_store("conflict", false).await;
    let now = wall_clock();
    let (family, first) = new_session(now);
    store.create_session(&family, &first).await.unwrap();

    let conflict = Fault::cancelled(&["TransactionConflict", "None", "None"]);
    proxy.inject("TransactWriteItems", conflict.clone(), Some(2));
    let next = successor(&family, now + 1);
    assert_eq!(store.rotate(&first.token_hash, &next, now + 1).await.unwrap(), RotateOutcome::Rotated);
    assert_eq!(proxy.seen("TransactWriteItems"), 3);

    proxy.inject("TransactWriteItems", conflict, None);
    let after = successor(&family, now + 2);
    assert_unavailable(store.rotate(&next.token_hash, &after, now + 2).await, "endless conflicts");
    proxy.clear();
    let (old, _) = store.get_refresh(&next.token_hash).await.unwrap().unwrap();
    assert_eq!(old.used_at, None);
    assert_eq!(store.get_refresh(&after.token_hash).await.unwrap(), None);
}

/// A user just registered and not yet in the (eventually consistent) email
/// index is found through the email marker, with a consistent read.
#[tokio::test]
async fn index_lag_is_covered_by_the_email_marker() {
    let (store, proxy) = proxied_store("index-lag", false).await;
    let user = new_user();
    store.create_user(&user).await.unwrap();
    proxy.inject("Query", Fault::EmptyQuery, None);
    let found = store.find_user_by_email(&user.email).await.unwrap().expect("found through the marker");
    assert_eq!(found.user_id, user.user_id);
    assert_eq!(found, store.get_user(&user.user_id).await.unwrap().unwrap());
    assert_eq!(store.find_user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(proxy.seen("Query"), 2);
}

/// Records with missing or mistyped attributes read as `Corrupt`.
#[tokio::test]
async fn malformed_records_are_corrupt() {
    let store = fresh_store("corrupt").await;
    let client = store.client();
    let user_id = fresh_id("user");
    client
        .put_item()
        .table_name(store.users_table())
        .item("pk", AttributeValue::S(format!("USER#{user_id}")))
        .item("userId", AttributeValue::S(user_id.clone()))
        .item("email", AttributeValue::S("x@example.com".to_owned()))
        .item("passwordHash", AttributeValue::S("$argon2id$x".to_owned()))
        .item("scope", AttributeValue::S("openid".to_owned()))
        .item("failedLogins", AttributeValue::S("many".to_owned()))
        .send()
        .await
        .unwrap();
    assert!(matches!(store.get_user(&user_id).await, Err(StoreError::Corrupt(_))));

    let hash = fresh_id("hash");
    client
        .put_item()
        .table_name(store.refresh_table())
        .item("pk", AttributeValue::S(format!("TOKEN#{hash}")))
        .item("userId", AttributeValue::S(user_id))
        .item("expiresAt", AttributeValue::N("12".to_owned()))
        .send()
        .await
        .unwrap();
    assert!(matches!(store.get_refresh(&hash).await, Err(StoreError::Corrupt(_))));
}

/// The configuration reads its table names and endpoint from the
/// environment names of `docs/DESIGN.md`, with the documented defaults.
#[test]
fn config_defaults_follow_the_design() {
    let config = DynamoConfig::default();
    assert_eq!((config.users_table.as_str(), config.refresh_table.as_str()), ("Users", "RefreshTokens"));
    assert_eq!(config.endpoint, None);
    assert_eq!(config.operation_timeout, Duration::from_secs(3));
    assert_eq!(config.connect_timeout, Duration::from_secs(1));
}

// ------------------------------------------------------------ fault proxy

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
