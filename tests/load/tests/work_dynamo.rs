//! The capacity meter against moto, and the DynamoDB requests of every
//! issuer request type pinned with their units (issue 15): a code change
//! that adds, drops or changes a DynamoDB request on a path, or makes an
//! item cross a unit boundary, fails here, and `scripts/measure-work.sh`
//! must be rerun so the bill follows.
//!
//! Needs moto: `DYNAMODB_ENDPOINT` (scripts/test.sh starts it). Without it
//! the tests fail with a message naming the variable; they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use auth_load::bill::{Table, Units};
use auth_load::measure;
use auth_load::meter::{Meter, Metered};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};

fn endpoint() -> String {
    measure::endpoint().unwrap_or_else(|e| panic!("{e}"))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn one(m: &[Metered]) -> &Metered {
    assert_eq!(m.len(), 1, "{m:?}");
    &m[0]
}

/// Each rule through the proxy, on a table shaped like the issuer's Users
/// table (key `pk`, GSI `email-index` on `email` projecting `userId`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meter_charges_moto_requests_by_the_rules() {
    let meter = Meter::start(&endpoint()).await.unwrap();
    let sdk = measure::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(meter.url()).build(),
    );
    // A fresh table per run: moto may have served earlier runs.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("meter{:08x}{nanos:08x}-Users", std::process::id());
    let key = |n: &str| KeySchemaElement::builder().attribute_name(n).key_type(KeyType::Hash).build().unwrap();
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("email"))
        .key_schema(key("pk"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("email-index")
                .key_schema(key("email"))
                .projection(
                    Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("userId").build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let _ = meter.take();

    // PutItem of a new item: pk(2) + "U1"(2) + email(5) + "a@x"(3) +
    // userId(6) + "1"(1) + pad1(4) + 1,100 x "x" = 1,123 B: 2 WRU. Its
    // email-index entry: pk 4 + email 8 + userId 7 + 100 = 119 B: 1 WRU.
    let blob = "x".repeat(1100);
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("U1"))
        .item("email", s("a@x"))
        .item("userId", s("1"))
        .item("pad1", s(&blob))
        .send()
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!((one(&m).op.as_str(), one(&m).units()), ("PutItem", Units { read: 0.0, write: 3.0 }));

    // UpdateItem of an unprojected attribute down to 1 B: billed on the
    // larger image (1,123 B): 2 WRU; the index entry is unchanged: 0.
    client
        .update_item()
        .table_name(&table)
        .key("pk", s("U1"))
        .update_expression("SET pad1 = :b")
        .expression_attribute_values(":b", s("y"))
        .send()
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!(one(&m).units(), Units { read: 0.0, write: 2.0 });

    // Moving the index key: the item goes from 24 to 25 B -> 1 WRU; the
    // old entry deleted (119 B) and the new one put (email "bb@x": 120 B):
    // 1 + 1. Total 3.
    client
        .update_item()
        .table_name(&table)
        .key("pk", s("U1"))
        .update_expression("SET email = :e")
        .expression_attribute_values(":e", s("bb@x"))
        .send()
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!(one(&m).units(), Units { read: 0.0, write: 3.0 });

    // A failed condition still costs: the existing item's size (25 B) -> 1 WRU, no index write.
    let err = client
        .update_item()
        .table_name(&table)
        .key("pk", s("U1"))
        .update_expression("SET userId = :u")
        .condition_expression("attribute_not_exists(pk)")
        .expression_attribute_values(":u", s("2"))
        .send()
        .await;
    assert!(err.is_err());
    let m = meter.take();
    assert_eq!(one(&m).error.as_deref(), Some("ConditionalCheckFailedException"));
    assert_eq!(one(&m).units(), Units { read: 0.0, write: 1.0 });

    // GetItem: strong 1 RRU (25 B < 4 KB), eventual 0.5; a missing item the same minimum.
    client.get_item().table_name(&table).key("pk", s("U1")).consistent_read(true).send().await.unwrap();
    client.get_item().table_name(&table).key("pk", s("U1")).send().await.unwrap();
    client.get_item().table_name(&table).key("pk", s("nobody")).consistent_read(true).send().await.unwrap();
    let reads: Vec<f64> = meter.take().iter().map(|m| m.units().read).collect();
    assert_eq!(reads, vec![1.0, 0.5, 1.0]);

    // Query on the GSI: one entry (pk 4 + email 9 + userId 7 + 100 = 120 B):
    // eventually consistent, 0.5 RRU.
    client
        .query()
        .table_name(&table)
        .index_name("email-index")
        .key_condition_expression("email = :e")
        .expression_attribute_values(":e", s("bb@x"))
        .send()
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!((one(&m).op.as_str(), one(&m).units().read), ("Query", 0.5));

    // TransactWriteItems: a put of a new item (pk 2 + "U2" 2 +
    // pad1 4 + 2,000 = 2,008 B: 2 KB -> 2 x 2 = 4, no email: no index entry)
    // and a ConditionCheck of U1 (25 B: 1 KB -> 2 x 1 = 2). Total 6.
    client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .item("pk", s("U2"))
                        .item("pad1", s(&"z".repeat(2000)))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&table)
                        .key("pk", s("U1"))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!(one(&m).units(), Units { read: 0.0, write: 6.0 });
    assert_eq!(one(&m).tables(), vec![Table::Users]);

    // DeleteItem of U2 (2,008 B): 2 WRU, billed on the image before.
    client.delete_item().table_name(&table).key("pk", s("U2")).send().await.unwrap();
    assert_eq!(one(&meter.take()).units(), Units { read: 0.0, write: 2.0 });
}

/// One DynamoDB request as pinned: operation (with the error DynamoDB
/// answers, if any), the tables it touches, read and write units.
type Pin = (&'static str, &'static [&'static str], f64, f64);

fn pinned() -> Vec<(&'static str, Vec<Pin>)> {
    const RT: &[&str] = &["RefreshTokens"];
    const U: &[&str] = &["Users"];
    const RV: &[&str] = &["Revocations"];
    vec![
        (
            // Recovery counter (client address, recipient) in one transaction;
            // is the address taken (email-index, then the marker); the pending
            // sign-up with its verification token.
            "register",
            vec![
                ("TransactWriteItems", RT, 0.0, 4.0),
                ("Query", U, 0.5, 0.0),
                ("GetItem", U, 1.0, 0.0),
                ("PutItem", RT, 0.0, 1.0),
            ],
        ),
        (
            // Counter; the pending sign-up; the user (with its email-index
            // entry) and the email marker created, the sign-up used up, in one
            // transaction over two tables: 2 + 2 x 2 + 1 (index) = 7; the user
            // read back.
            "verify_email",
            vec![
                ("TransactWriteItems", RT, 0.0, 2.0),
                ("GetItem", RT, 1.0, 0.0),
                ("TransactWriteItems", &["RefreshTokens", "Users"], 0.0, 7.0),
                ("GetItem", U, 1.0, 0.0),
            ],
        ),
        (
            // Three attempt counters; the user by email; the account+address
            // counter cleared; the family (with its family-user-index entry:
            // 2 + 1) and first token (2).
            "login",
            vec![
                ("TransactWriteItems", RT, 0.0, 6.0),
                ("Query", U, 0.5, 0.0),
                ("DeleteItem", RT, 0.0, 1.0),
                ("TransactWriteItems", RT, 0.0, 5.0),
            ],
        ),
        ("login_failed", vec![("TransactWriteItems", RT, 0.0, 6.0), ("Query", U, 0.5, 0.0)]),
        (
            // An unknown address: the email-index Query finds nothing, then
            // the marker is read (strongly) before the dummy hash.
            "stuffing_checked",
            vec![("TransactWriteItems", RT, 0.0, 6.0), ("Query", U, 0.5, 0.0), ("GetItem", U, 1.0, 0.0)],
        ),
        (
            // Token, family, user; rotation: mark used, put successor,
            // check the family (3 x 2).
            "refresh",
            vec![
                ("GetItem", RT, 1.0, 0.0),
                ("GetItem", RT, 1.0, 0.0),
                ("GetItem", U, 1.0, 0.0),
                ("TransactWriteItems", RT, 0.0, 6.0),
            ],
        ),
        (
            "logout",
            vec![
                ("GetItem", RT, 1.0, 0.0),
                ("GetItem", RT, 1.0, 0.0),
                ("TransactWriteItems", &["RefreshTokens", "Revocations"], 0.0, 4.0),
            ],
        ),
        ("revocations_page", vec![("Query", RV, 1.0, 0.0)]),
        (
            // The user; its families (family-user-index); each family revoked
            // (the one the logout above revoked fails its condition and still
            // costs 1); the subject event and the user's tokensValidAfter
            // (projected: its email-index entry rewritten, +1).
            "logout_all",
            vec![
                ("GetItem", U, 1.0, 0.0),
                ("Query", RT, 0.5, 0.0),
                ("UpdateItem", RT, 0.0, 1.0),
                ("UpdateItem(ConditionalCheckFailedException)", RT, 0.0, 1.0),
                ("TransactWriteItems", &["Revocations", "Users"], 0.0, 5.0),
            ],
        ),
        (
            "forgot_password",
            vec![("TransactWriteItems", RT, 0.0, 4.0), ("Query", U, 0.5, 0.0), ("PutItem", RT, 0.0, 1.0)],
        ),
        (
            // Counter; the reset token; the user; the account's reset counter;
            // the new hash (email-index entry rewritten) with the token used
            // up and the subject event; the families, all revoked already.
            "reset_password",
            vec![
                ("TransactWriteItems", RT, 0.0, 2.0),
                ("GetItem", RT, 1.0, 0.0),
                ("GetItem", U, 1.0, 0.0),
                ("TransactWriteItems", RT, 0.0, 2.0),
                ("TransactWriteItems", &["RefreshTokens", "Users", "Revocations"], 0.0, 7.0),
                ("Query", RT, 0.5, 0.0),
                ("UpdateItem(ConditionalCheckFailedException)", RT, 0.0, 1.0),
                ("UpdateItem(ConditionalCheckFailedException)", RT, 0.0, 1.0),
            ],
        ),
        (
            "change_password",
            vec![
                ("GetItem", U, 1.0, 0.0),
                ("TransactWriteItems", RT, 0.0, 6.0),
                ("TransactWriteItems", &["Users", "Revocations"], 0.0, 5.0),
                ("DeleteItem", RT, 0.0, 1.0),
                ("Query", RT, 0.5, 0.0),
                ("UpdateItem", RT, 0.0, 1.0),
                ("UpdateItem(ConditionalCheckFailedException)", RT, 0.0, 1.0),
                ("UpdateItem(ConditionalCheckFailedException)", RT, 0.0, 1.0),
                ("TransactWriteItems", RT, 0.0, 5.0),
            ],
        ),
        (
            // The counters' transaction is cancelled (the account+address
            // counter is full) and still costs 3 x 2.
            "stuffing_refused",
            vec![("TransactWriteItems(TransactionCanceledException)", RT, 0.0, 6.0)],
        ),
        ("revocations_page_empty", vec![("Query", RV, 1.0, 0.0)]),
    ]
}

/// A request as compared: operation (with error), tables, RRU, WRU.
type Seen = (String, Vec<String>, f64, f64);

fn brief(m: &Metered) -> Seen {
    let op = match &m.error {
        Some(e) => format!("{}({e})", m.op),
        None => m.op.clone(),
    };
    let u = m.units();
    (op, m.tables().iter().map(|t| t.name().to_owned()).collect(), u.read, u.write)
}

/// Sorted, so concurrent calls (families revoked in parallel) compare in
/// any order; the order of the other calls is checked by the ordered
/// comparison of operation names below.
fn sorted<T: Clone + PartialOrd>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_requests_of_every_request_type_are_pinned() {
    let endpoint = endpoint();
    let dir = std::env::temp_dir().join(format!("auth-work-pins-{}", std::process::id()));
    let samples = measure::metered_dynamo(&endpoint, &dir, 1).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let got: HashMap<&str, Vec<Seen>> =
        samples.iter().map(|s| (s.name, s.dynamo.iter().map(brief).collect())).collect();
    assert_eq!(samples.len(), measure::REQUEST_TYPES.len());
    for (name, want) in pinned() {
        let want: Vec<Seen> = want
            .into_iter()
            .map(|(op, tables, r, w)| (op.to_owned(), tables.iter().map(|t| (*t).to_owned()).collect(), r, w))
            .collect();
        let have = &got[name];
        assert_eq!(sorted(have), sorted(&want), "DynamoDB requests of {name}: got {have:#?}");
        let ops =
            |v: &[Seen]| v.iter().map(|x| x.0.split('(').next().unwrap_or_default().to_owned()).collect::<Vec<_>>();
        assert_eq!(ops(have), ops(&want), "order of the DynamoDB requests of {name}");
        // Every request the issuer made is one the meter prices.
        for s in samples.iter().filter(|s| s.name == name) {
            assert!(s.dynamo.iter().all(|m| m.priced), "{name}: {:?}", s.dynamo);
        }
    }
    assert_eq!(pinned().len(), measure::REQUEST_TYPES.len());
}
