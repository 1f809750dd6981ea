//! The work per request the bill multiplies: **measured where measured**.
//!
//! The issuer's request types come from `docs/bench/work.toml`, written by
//! `auth-work` (`scripts/measure-work.sh`): the DynamoDB requests each makes
//! with the units the capacity meter charged, process CPU time per request,
//! and log bytes at INFO in the Lambda's JSON format ([`measured_work`]).
//! The request types it does not measure (the authorizer's: a cached API
//! call, an authorizer run, a garbage token) and every type when the file
//! is missing fall back to the estimates of [`estimated_work`], whose
//! sources say "estimate"; [`measured_work`] returns which kinds fell back.
//!
//! CPU time is converted to Lambda's billed duration with a stated
//! assumption ([`cpu_share`]): Lambda gives a function a share of a vCPU in
//! proportion to its memory, one full vCPU at 1,769 MB, so at 1,024 MB a
//! function gets 1024/1769 = 0.579 of a vCPU and
//! `billed ms = ceil(measured CPU ms / share + store wait ms)`, taking a
//! Lambda arm64 (Graviton) vCPU to be as fast as one core of the measuring
//! machine. Store wait is not measured (moto is not DynamoDB): it is
//! [`STORE_CALL_MS`] per single-item call and [`TRANSACT_MS`] per
//! transaction, over the calls the meter counted.
//!
//! The estimates were read from the issuer's DynamoDB store and
//! `issuer/src/session.rs` at commit 16953ec, with CPU times from the README
//! and infra/README.md.

use crate::bill::{
    Function, Invocation, ItemWrite, KindWork, ReadMode, StoreOp, Stored, Table, Work, WorkError, WorkTable,
};
use crate::measured::{Measured, MeasuredTable};
use crate::model::{LoadModel, RequestKind};
use crate::prices::Arch;

/// The measured table, relative to this crate.
pub const WORK_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/bench/work.toml");

/// Memory at which Lambda gives a function one full vCPU (Lambda developer
/// guide, "Configure Lambda function memory": "at 1,769 MB, a function has
/// the equivalent of one vCPU").
pub const FULL_VCPU_MB: f64 = 1769.0;

/// The share of one vCPU a function gets at its memory size (at most 1:
/// above 1,769 MB a function gets more vCPUs, which a single request
/// mostly cannot use).
#[must_use]
pub fn cpu_share(f: Function) -> f64 {
    (f64::from(f.memory_mb) / FULL_VCPU_MB).min(1.0)
}

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

/// Bytes of the authorizer's INFO line for a refused token (about 300
/// bytes; an allowed request writes none since the EMF change).
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
        // The authorizer logs a line of its own only when it does not
        // allow (authorizer/src/metrics.rs: allowed requests are counted in
        // a per-sandbox metric line instead, a few hundred bytes a minute).
        log_lines: if authorizer_cpu_ms.is_some() && kind == RequestKind::GarbageToken {
            vec![AUTHORIZER_LINE_BYTES]
        } else {
            vec![]
        },
        source,
    }
}

/// The estimated work of one request of each kind: the fallback for the
/// kinds `auth-work` does not measure (see the module docs).
#[must_use]
pub fn estimated_work() -> Vec<Work> {
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
            "estimate: session.rs login(); hash time from infra/README.md; 0.61 ms besides the hash (README)",
        ),
        issuer(
            K::FailedLogin,
            HASH_MS_1024 + 1.0,
            vec![attempt_counters(), user_by_email(true)],
            vec![AUDIT_LINE_BYTES],
            "estimate: session.rs login(), wrong password: same hash work by design",
        ),
        issuer(
            K::StuffingChecked,
            HASH_MS_1024 + 1.0,
            vec![attempt_counters(), user_by_email(false)],
            vec![AUDIT_LINE_BYTES],
            "estimate: session.rs login(), unknown user: a dummy hash of the same cost",
        ),
        issuer(
            K::StuffingRefused,
            0.5,
            // A cancelled transaction is counted as if it wrote (not
            // re-checked against DynamoDB's billing; see the bill notes).
            vec![attempt_counters()],
            vec![AUDIT_LINE_BYTES],
            "estimate: session.rs login(), refused by a counter before any password work",
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
            "estimate: session.rs refresh(); 0.60 ms on the embedded store (README), scaled to 1024 MB",
        ),
        issuer(
            K::Register,
            HASH_MS_1024 + 1.0,
            vec![StoreOp::Transact {
                table: Table::Users,
                items: vec![ItemWrite::indexed(USER_ITEM, USER_GSI_ENTRY), ItemWrite::plain(EMAIL_MARKER)],
            }],
            vec![AUDIT_LINE_BYTES],
            "estimate: session.rs register() at 16953ec; verified sign-up (issue 16) adds a token write and a mail",
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
            "estimate: issue 16's routes are not built yet",
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
            "estimate: session.rs logout(); the transaction spans two tables (split here per table)",
        ),
        api_call(K::ApiCallCached, None, "API Gateway's cached policy: no invocation (nothing to measure)"),
        api_call(
            K::ApiCallAuthorized,
            Some(0.5),
            "estimate: README: handler 17.7 us on the RS256 path; at 128 MB (~1/14 vCPU) plus the Runtime API round trip, under 1 ms: bills 1 ms",
        ),
        api_call(K::GarbageToken, Some(0.2), "estimate: a token that fails to parse or verify: bills the 1 ms minimum"),
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
            "estimate: session.rs revocations(): one Query of the current hour after the cursor",
        ),
    ]
}

/// Which measured request types make up one request of each model kind
/// (a sign-up is the registration and the verification; a password reset
/// the request and the completion: one invocation each). A feed poll is a
/// page holding one event (a poll a second sees the second's few events).
#[must_use]
pub fn measured_names(kind: RequestKind) -> &'static [&'static str] {
    use RequestKind as K;
    match kind {
        K::Login => &["login"],
        K::FailedLogin => &["login_failed"],
        K::StuffingChecked => &["stuffing_checked"],
        K::StuffingRefused => &["stuffing_refused"],
        K::Refresh => &["refresh"],
        K::Register => &["register", "verify_email"],
        K::PasswordReset => &["forgot_password", "reset_password"],
        K::Logout => &["logout"],
        K::FeedPoll => &["revocations_page"],
        K::ApiCallCached | K::ApiCallAuthorized | K::GarbageToken => &[],
    }
}

/// The issuer invocation of one measured request type at [`ISSUER`]'s
/// memory: CPU scaled by [`cpu_share`], store wait by the calls counted.
#[must_use]
pub fn invocation(m: &Measured) -> Invocation {
    // A transaction over two tables is one call (two charges): count calls.
    let wait_ms: f64 = m
        .dynamo
        .iter()
        .map(|c| if c.charges.iter().any(StoreOp::is_transaction) { TRANSACT_MS } else { STORE_CALL_MS })
        .sum();
    Invocation { function: ISSUER, cpu_ms: m.cpu_ms / cpu_share(ISSUER), wait_ms }
}

/// Log lines of a measured request: its mean line count (rounded), each of
/// the mean size.
fn log_lines(ms: &[&Measured]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in ms {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small, non-negative
        let n = m.log_lines.round() as usize;
        if n > 0 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let each = (m.log_bytes / n as f64).round() as u32;
            out.extend(std::iter::repeat_n(each, n));
        }
    }
    out
}

/// The work of every kind: measured from `table` where it holds every
/// request type the kind is made of, else the estimate. Returns the work
/// and the kinds that fell back.
#[must_use]
pub fn measured_work(table: &MeasuredTable) -> (Vec<Work>, Vec<RequestKind>) {
    let mut fell_back = Vec::new();
    let work = estimated_work()
        .into_iter()
        .map(|est| {
            let names = measured_names(est.kind);
            let found: Option<Vec<&Measured>> = names.iter().map(|n| table.get(n)).collect();
            match found {
                Some(ms) if !ms.is_empty() => Work {
                    kind: est.kind,
                    api_gateway: true,
                    protected_api_call: false,
                    invocations: ms.iter().map(|m| invocation(m)).collect(),
                    store: ms.iter().flat_map(|m| m.dynamo.iter().flat_map(|c| c.charges.iter().cloned())).collect(),
                    log_lines: log_lines(&ms),
                    source: "measured: docs/bench/work.toml (auth-work); CPU / (1024/1769 vCPU) + estimated store wait",
                },
                _ => {
                    fell_back.push(est.kind);
                    est
                }
            }
        })
        .collect();
    (work, fell_back)
}

/// The measured table at [`WORK_TOML`], if present and readable.
///
/// # Errors
/// A message naming the file when it exists but does not parse.
pub fn load_measured() -> Result<Option<MeasuredTable>, String> {
    match std::fs::read_to_string(WORK_TOML) {
        Ok(text) => crate::measured::parse(&text).map(Some).map_err(|e| format!("{WORK_TOML}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{WORK_TOML}: {e}")),
    }
}

/// The work the bill uses: measured where `docs/bench/work.toml` has it,
/// estimates elsewhere (and everywhere when the file is missing or
/// unreadable: the estimates are then the whole table).
#[must_use]
pub fn current_work() -> (Vec<Work>, Vec<RequestKind>) {
    match load_measured() {
        Ok(Some(t)) => measured_work(&t),
        _ => (estimated_work(), RequestKind::ALL.to_vec()),
    }
}

/// The whole table for `model` from the current work ([`current_work`]).
///
/// # Errors
/// [`WorkError`] if the work misses a request kind (a test checks it does
/// not).
pub fn default_table(model: &LoadModel) -> Result<WorkTable, WorkError> {
    table(model, current_work().0)
}

/// The whole table for `model` with `work` (storage scales with its users;
/// stored item sizes are the estimates above).
///
/// # Errors
/// [`WorkError`] if `work` misses a request kind.
pub fn table(model: &LoadModel, work: Vec<Work>) -> Result<WorkTable, WorkError> {
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
        work: KindWork::new(work)?,
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
    let work = current_work().0;
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
        let work = estimated_work();
        for k in RequestKind::ALL {
            assert_eq!(work.iter().filter(|w| w.kind == k).count(), 1, "{k}");
        }
        assert_eq!(work.len(), RequestKind::ALL.len());
        assert!(default_table(&LoadModel::default()).is_ok());
        let mut short = estimated_work();
        short.pop();
        assert_eq!(KindWork::new(short).unwrap_err(), WorkError::Missing(RequestKind::FeedPoll));
        let mut twice = estimated_work();
        twice.push(twice[0].clone());
        assert_eq!(KindWork::new(twice).unwrap_err(), WorkError::Duplicate(RequestKind::Login));
    }

    #[test]
    fn the_estimated_units_per_request_by_hand() {
        let t = table(&LoadModel::default(), estimated_work()).unwrap();
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

    fn one(name: &str, cpu_ms: f64, dynamo: Vec<crate::measured::Call>) -> Measured {
        Measured { name: name.into(), reps: 1, cpu_ms, cpu_ms_sqlite: cpu_ms, log_bytes: 300.0, log_lines: 1.0, dynamo }
    }

    #[test]
    fn measured_work_replaces_the_estimates_it_covers() {
        use crate::measured::Call;
        let get = Call {
            op: "GetItem".into(),
            error: None,
            charges: vec![StoreOp::Get { table: Table::Users, item_bytes: 500, mode: ReadMode::Strong }],
        };
        let tx = Call {
            op: "TransactWriteItems".into(),
            error: None,
            charges: vec![
                StoreOp::Transact { table: Table::RefreshTokens, items: vec![ItemWrite::plain(300)] },
                StoreOp::Transact { table: Table::Revocations, items: vec![ItemWrite::plain(200)] },
            ],
        };
        let t = MeasuredTable {
            date: "d".into(),
            commit: "c".into(),
            machine: "m".into(),
            profile: "release".into(),
            requests: vec![one("logout", 1.769, vec![get.clone(), tx]), one("refresh", 0.5, vec![get])],
        };
        let (work, fell_back) = measured_work(&t);
        let w = |k| work.iter().find(|w| w.kind == k).unwrap();
        let logout = w(RequestKind::Logout);
        // CPU 1.769 ms on the measuring machine / (1024/1769) = 3.056 ms at
        // 1024 MB; waits: one GetItem 5 ms + one transaction (two tables,
        // one call) 10 ms = 15; billed ceil(18.056) = 19 ms.
        assert!((logout.invocations[0].cpu_ms - 1.769 * 1769.0 / 1024.0).abs() < 1e-9);
        assert_eq!(logout.invocations[0].wait_ms, 15.0);
        assert_eq!(logout.invocations[0].billed_ms(), 19.0);
        // Units: Get 1 RRU; the transaction 2 + 2 = 4 WRU, 2 of them on Revocations.
        assert_eq!(logout.units(), crate::bill::Units { read: 1.0, write: 4.0 });
        assert_eq!(logout.units_on(Table::Revocations).write, 2.0);
        assert_eq!(logout.log_lines, vec![300]);
        assert!(logout.source.starts_with("measured"));
        // Not measured: everything else, with the estimates' sources.
        assert!(fell_back.contains(&RequestKind::Login) && fell_back.contains(&RequestKind::ApiCallAuthorized));
        assert!(!fell_back.contains(&RequestKind::Logout) && !fell_back.contains(&RequestKind::Refresh));
        assert!(w(RequestKind::Login).source.starts_with("estimate"));
        // A kind made of two request types needs both (register + verify_email).
        assert!(fell_back.contains(&RequestKind::Register));
        assert!(table(&LoadModel::default(), work).is_ok());
    }

    #[test]
    fn cpu_share_by_memory() {
        // 1024 MB: 1024/1769 = 0.5789 of a vCPU; 1769 MB and above: one.
        assert!((cpu_share(ISSUER) - 0.578_858).abs() < 1e-6);
        assert_eq!(cpu_share(Function { name: "x", memory_mb: 3008, arch: Arch::Arm64 }), 1.0);
    }

    #[test]
    fn the_committed_work_toml_covers_every_issuer_kind() {
        // The bill must not fall back silently: the committed table parses
        // and measures every kind the issuer serves.
        let t = load_measured().unwrap().expect("docs/bench/work.toml is committed (scripts/measure-work.sh)");
        for name in crate::measure::REQUEST_TYPES {
            assert!(t.get(name).is_some(), "{name} measured");
        }
        let (_, fell_back) = measured_work(&t);
        assert_eq!(
            fell_back,
            vec![RequestKind::ApiCallCached, RequestKind::ApiCallAuthorized, RequestKind::GarbageToken],
            "only the authorizer's kinds are estimates"
        );
    }
}
