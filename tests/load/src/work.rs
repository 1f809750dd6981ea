//! The counted-work INPUT table: what one request of each kind costs AWS.
//!
//! **These are inputs, not measurements.** The store operations and item
//! sizes were read from the issuer's DynamoDB store (`issuer/src/store/dynamo`)
//! and `issuer/src/session.rs` at commit 16953ec; the CPU times come from the
//! figures already in the README and infra/README.md (hand-scaled to the
//! Lambda memory sizes); the latencies of DynamoDB calls and the log line
//! sizes are estimates. The next step of issue 15 replaces each entry with a
//! figure measured by a command (handler CPU time per request type, store
//! operations counted with their item sizes, log bytes written), and asserts
//! the counted store operations in tests so a code change that adds a store
//! call shows up. Until then every bill computed from this table says so.

use crate::bill::{
    Function, Invocation, ItemWrite, KindWork, ReadMode, StoreOp, Stored, Table, Work, WorkError, WorkTable,
};
use crate::model::{LoadModel, RequestKind};
use crate::prices::Arch;

/// The issuer function as the template deploys it (`IssuerMemorySize`
/// default 1024, arm64).
pub const ISSUER: Function = Function { name: "issuer", memory_mb: 1024, arch: Arch::Arm64 };

/// The authorizer function (`AuthorizerMemorySize` default 128, arm64).
pub const AUTHORIZER: Function = Function { name: "authorizer", memory_mb: 128, arch: Arch::Arm64 };

/// Wall time of one single-item DynamoDB call from Lambda in the same
/// Region, ms (estimate: single-digit milliseconds).
pub const STORE_CALL_MS: f64 = 5.0;

/// Wall time of one TransactWriteItems, ms (estimate: two phases).
pub const TRANSACT_MS: f64 = 10.0;

/// argon2id (19 MiB, t=2, p=1) at 1024 MB, ms: infra/README.md puts a login
/// at 1024 MB at about 100-120 ms, nearly all of it the hash.
pub const HASH_MS_1024: f64 = 100.0;

/// Bytes of one JSON audit line in the issuer's log group (estimate: the
/// Lambda JSON envelope with timestamp, level, target, event and ids).
pub const AUDIT_LINE_BYTES: u32 = 300;

/// Bytes of the authorizer's one INFO line per invocation (issue 15:
/// "about 300 bytes").
pub const AUTHORIZER_LINE_BYTES: u32 = 300;

// Item sizes in bytes (attribute names and values), estimated from the
// item builders in issuer/src/store/dynamo/items.rs.
const USER_ITEM: u64 = 500; // ids, email, argon2 PHC string (~100 B), scope, counters
const USER_GSI_ENTRY: u64 = 400; // email-index INCLUDE projection of the user item
const EMAIL_MARKER: u64 = 150; // EMAIL#<email> uniqueness marker
const COUNTER_ITEM: u64 = 150; // ATTEMPT#<window key>, attempts, expiresAt
const FAMILY_ITEM: u64 = 250; // family id, user, familyUser, times, revokedAt
const FAMILY_GSI_ENTRY: u64 = 150; // family-user-index, KEYS_ONLY
const TOKEN_ITEM: u64 = 300; // TOKEN#<hash>, family, user, times, usedAt
const REVOCATION_EVENT: u64 = 200; // REVOKE#<hour> / <time>#<id>, subject, until

fn wait(ops: &[StoreOp]) -> f64 {
    ops.iter().map(|o| if o.is_transaction() { TRANSACT_MS } else { STORE_CALL_MS }).sum()
}

fn attempt_counters() -> StoreOp {
    // take_attempt: the three counters (account+address, address, account)
    // in one TransactWriteItems.
    StoreOp::Transact { table: Table::RefreshTokens, items: vec![ItemWrite::plain(COUNTER_ITEM); 3] }
}

fn user_by_email(found: bool) -> StoreOp {
    // find_user_by_email: Query on email-index (GSIs are eventually consistent).
    StoreOp::Query {
        table: Table::Users,
        items: u64::from(found),
        item_bytes: USER_GSI_ENTRY,
        mode: ReadMode::Eventual,
    }
}

fn get(table: Table, bytes: u64) -> StoreOp {
    StoreOp::Get { table, item_bytes: bytes, mode: ReadMode::Strong }
}

fn issuer(kind: RequestKind, cpu_ms: f64, store: Vec<StoreOp>, log_lines: Vec<u32>, source: &'static str) -> Work {
    let wait_ms = wait(&store);
    Work {
        kind,
        api_gateway: true,
        protected_api_call: false,
        invocations: vec![Invocation { function: ISSUER, cpu_ms, wait_ms }],
        store,
        log_lines,
        source,
    }
}

fn api_call(kind: RequestKind, authorizer_cpu_ms: Option<f64>, source: &'static str) -> Work {
    Work {
        kind,
        api_gateway: true,
        protected_api_call: true,
        invocations: authorizer_cpu_ms
            .map(|cpu_ms| Invocation { function: AUTHORIZER, cpu_ms, wait_ms: 0.0 })
            .into_iter()
            .collect(),
        store: vec![],
        log_lines: if authorizer_cpu_ms.is_some() { vec![AUTHORIZER_LINE_BYTES] } else { vec![] },
        source,
    }
}

/// The work of one request of each kind (see the module docs: inputs to be
/// replaced by measured figures).
#[must_use]
pub fn default_work() -> Vec<Work> {
    use RequestKind as K;
    vec![
        issuer(
            K::Login,
            HASH_MS_1024 + 1.0,
            vec![
                attempt_counters(),
                user_by_email(true),
                // clear_attempts: DeleteItem of the account+address counter.
                StoreOp::Write { table: Table::RefreshTokens, item: ItemWrite::plain(COUNTER_ITEM) },
                // create_session: family (indexed by family-user-index) and
                // first token in one transaction.
                StoreOp::Transact {
                    table: Table::RefreshTokens,
                    items: vec![ItemWrite::indexed(FAMILY_ITEM, FAMILY_GSI_ENTRY), ItemWrite::plain(TOKEN_ITEM)],
                },
            ],
            vec![AUDIT_LINE_BYTES],
            "session.rs login(); hash time from infra/README.md; 0.61 ms besides the hash (README)",
        ),
        issuer(
            K::FailedLogin,
            HASH_MS_1024 + 1.0,
            vec![attempt_counters(), user_by_email(true)],
            vec![AUDIT_LINE_BYTES],
            "session.rs login(), wrong password: same hash work by design",
        ),
        issuer(
            K::StuffingChecked,
            HASH_MS_1024 + 1.0,
            vec![attempt_counters(), user_by_email(false)],
            vec![AUDIT_LINE_BYTES],
            "session.rs login(), unknown user: a dummy hash of the same cost",
        ),
        issuer(
            K::StuffingRefused,
            0.5,
            // A cancelled transaction is counted as if it wrote (not
            // re-checked against DynamoDB's billing; see the bill notes).
            vec![attempt_counters()],
            vec![AUDIT_LINE_BYTES],
            "session.rs login(), refused by a counter before any password work",
        ),
        issuer(
            K::Refresh,
            1.0,
            vec![
                // get_refresh: token, then its family; get_user.
                get(Table::RefreshTokens, TOKEN_ITEM),
                get(Table::RefreshTokens, FAMILY_ITEM),
                get(Table::Users, USER_ITEM),
                // rotate: mark used, put successor, check family active.
                StoreOp::Transact { table: Table::RefreshTokens, items: vec![ItemWrite::plain(TOKEN_ITEM); 3] },
            ],
            vec![],
            "session.rs refresh(); 0.60 ms on the embedded store (README), scaled to 1024 MB",
        ),
        issuer(
            K::Register,
            HASH_MS_1024 + 1.0,
            vec![StoreOp::Transact {
                table: Table::Users,
                items: vec![ItemWrite::indexed(USER_ITEM, USER_GSI_ENTRY), ItemWrite::plain(EMAIL_MARKER)],
            }],
            vec![AUDIT_LINE_BYTES],
            "session.rs register() at 16953ec; verified sign-up (issue 16) adds a token write and a mail",
        ),
        issuer(
            K::PasswordReset,
            HASH_MS_1024 + 2.0,
            vec![
                // Request: look the user up, count the attempt, store a reset token.
                user_by_email(true),
                attempt_counters(),
                StoreOp::Write { table: Table::RefreshTokens, item: ItemWrite::plain(TOKEN_ITEM) },
                // Completion: read the token, then set the new hash (the
                // email-index projection changes) and use the token up.
                get(Table::RefreshTokens, TOKEN_ITEM),
                StoreOp::Transact {
                    table: Table::Users,
                    items: vec![ItemWrite::indexed(USER_ITEM, USER_GSI_ENTRY), ItemWrite::plain(TOKEN_ITEM)],
                },
            ],
            vec![AUDIT_LINE_BYTES, AUDIT_LINE_BYTES],
            "ESTIMATE: issue 16's routes are not built yet",
        ),
        issuer(
            K::Logout,
            0.5,
            vec![
                get(Table::RefreshTokens, TOKEN_ITEM),
                get(Table::RefreshTokens, FAMILY_ITEM),
                // record_revocation_tx: revoke the family, put the feed event.
                StoreOp::Transact { table: Table::RefreshTokens, items: vec![ItemWrite::plain(FAMILY_ITEM)] },
                StoreOp::Transact { table: Table::Revocations, items: vec![ItemWrite::plain(REVOCATION_EVENT)] },
            ],
            vec![AUDIT_LINE_BYTES],
            "session.rs logout(); the transaction spans two tables (split here per table)",
        ),
        api_call(K::ApiCallCached, None, "API Gateway's cached policy: no invocation"),
        api_call(
            K::ApiCallAuthorized,
            Some(0.5),
            "README: handler 17.7 us on the RS256 path; at 128 MB (~1/14 vCPU) plus the Runtime API round trip, under 1 ms: bills 1 ms",
        ),
        api_call(K::GarbageToken, Some(0.2), "a token that fails to parse or verify: bills the 1 ms minimum"),
        issuer(
            K::FeedPoll,
            0.5,
            vec![StoreOp::Query {
                table: Table::Revocations,
                items: 2,
                item_bytes: REVOCATION_EVENT,
                mode: ReadMode::Strong,
            }],
            vec![],
            "session.rs revocations(): one Query of the current hour after the cursor",
        ),
    ]
}

/// The whole input table for `model` (storage scales with its users).
///
/// # Errors
/// [`WorkError`] if [`default_work`] misses a request kind (a test checks it
/// does not).
pub fn default_table(model: &LoadModel) -> Result<WorkTable, WorkError> {
    let daily = model.daily();
    // Refresh tokens are kept until they expire (30 days, ISSUER_REFRESH_TTL_SECS)
    // plus DynamoDB's TTL lag; every refresh and login writes one.
    let tokens_kept = (daily.get(RequestKind::Refresh) + daily.get(RequestKind::Login)) * 30.0;
    // A family per login, kept for the session's absolute lifetime (90 days).
    let families_kept = daily.get(RequestKind::Login) * 90.0;
    let overhead = 100.0; // DynamoDB's per-item storage overhead
    #[allow(clippy::cast_precision_loss)] // small constants
    let bytes = |b: u64| b as f64 + overhead;
    Ok(WorkTable {
        work: KindWork::new(default_work())?,
        stored: vec![
            Stored {
                what: "user items with their email-index entries",
                table: Table::Users,
                items: model.registered_users,
                bytes_per_item: bytes(USER_ITEM) + bytes(USER_GSI_ENTRY),
            },
            Stored {
                what: "email uniqueness markers",
                table: Table::Users,
                items: model.registered_users,
                bytes_per_item: bytes(EMAIL_MARKER),
            },
            Stored {
                what: "refresh tokens (30 days of rotations)",
                table: Table::RefreshTokens,
                items: tokens_kept,
                bytes_per_item: bytes(TOKEN_ITEM),
            },
            Stored {
                what: "token families (90-day sessions) with index entries",
                table: Table::RefreshTokens,
                items: families_kept,
                bytes_per_item: bytes(FAMILY_ITEM) + bytes(FAMILY_GSI_ENTRY),
            },
        ],
        // The template's access-log format: a JSON line with request id, ip,
        // method, route, status, latencies and authorizer fields (estimate).
        access_log_bytes: 350.0,
        // Issuer logs are kept 365 days, the authorizer's 30 (template
        // defaults); the authorizer writes most of the bytes.
        lambda_log_retention_days: 60.0,
        access_log_retention_days: 90.0,
        log_compression: 0.15,
        // The signing-key secret and the attempt-counter key (template).
        secrets: 2.0,
        // Each issuer sandbox reads the secret once at init; sandboxes are
        // recycled every few hours: about 6 inits a day per unit of peak
        // concurrency (estimate; see the concurrency table). Fixed here at
        // 2,000 a day.
        secret_reads_per_day: 2000.0,
        kms_keys: 0.0,
        // DynamoDB SSE under the AWS managed key: about one KMS request per
        // table per 5 minutes (estimate): 3 x 288.
        kms_background_per_day: 864.0,
    })
}

/// Keys that take a known share of some kinds' traffic: the per-partition
/// limits apply to them whatever the table's size.
#[must_use]
pub fn hot_keys() -> Vec<crate::bill::HotKey> {
    let work = default_work();
    let on = |k: RequestKind, t: Table| work.iter().find(|w| w.kind == k).map(|w| w.units_on(t)).unwrap_or_default();
    vec![crate::bill::HotKey {
        what: "Revocations: the current hour's partition REVOKE#<hour> (every feed event, every poll)",
        load: vec![
            (RequestKind::Logout, 1.0, on(RequestKind::Logout, Table::Revocations)),
            (RequestKind::FeedPoll, 1.0, on(RequestKind::FeedPoll, Table::Revocations)),
        ],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_kind_has_one_work_entry() {
        let work = default_work();
        for k in RequestKind::ALL {
            assert_eq!(work.iter().filter(|w| w.kind == k).count(), 1, "{k}");
        }
        assert_eq!(work.len(), RequestKind::ALL.len());
        assert!(default_table(&LoadModel::default()).is_ok());
        let mut short = default_work();
        short.pop();
        assert_eq!(KindWork::new(short).unwrap_err(), WorkError::Missing(RequestKind::FeedPoll));
        let mut twice = default_work();
        twice.push(twice[0].clone());
        assert_eq!(KindWork::new(twice).unwrap_err(), WorkError::Duplicate(RequestKind::Login));
    }

    #[test]
    fn the_input_units_per_request_by_hand() {
        let t = default_table(&LoadModel::default()).unwrap();
        let u = |k| t.of(k).units();
        // Login: counters 3 x 2 = 6; Query 0.5; delete 1; session: family 2 +
        // its index entry 1 + token 2 = 5. Writes 12, reads 0.5.
        assert_eq!(u(RequestKind::Login).write, 12.0);
        assert_eq!(u(RequestKind::Login).read, 0.5);
        // Refresh: three strong gets of < 4 KB = 3; rotation 3 x 2 = 6.
        assert_eq!(u(RequestKind::Refresh).read, 3.0);
        assert_eq!(u(RequestKind::Refresh).write, 6.0);
        // Register: user 2 + index 1 + marker 2 = 5.
        assert_eq!(u(RequestKind::Register).write, 5.0);
        // Logout: 2 gets; family 2 + event 2 = 4.
        assert_eq!(u(RequestKind::Logout).read, 2.0);
        assert_eq!(u(RequestKind::Logout).write, 4.0);
        // A cached API call costs the store nothing.
        assert_eq!(u(RequestKind::ApiCallCached), crate::bill::Units::default());
        // Login waits: two transactions (20 ms) and two single calls (10 ms).
        assert_eq!(t.of(RequestKind::Login).invocations[0].wait_ms, 30.0);
    }
}
