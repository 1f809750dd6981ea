//! The store suite against the SQLite store, one database file per
//! behaviour. They used to share one file (unique ids keep their records
//! apart), but the attempt counters are swept by time, and the behaviours
//! pass different times: one moving its clock ahead swept another's live
//! counters (seen under load). A store sees one clock in production.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use issuer::store::sqlite::{SqliteOptions, SqliteStore};

/// A database of its own for `test`, under cargo's scratch directory for
/// integration tests.
async fn own_store(test: &'static str) -> SqliteStore {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "store-suite-{test}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    SqliteStore::open(&dir.join("issuer.sqlite3"), &SqliteOptions::default()).expect("open the SQLite store")
}

issuer::store_conformance_tests!(own_store);

/// The whole suite in one call, on a store of its own: what `run_all` offers
/// other callers (e.g. a store under development).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_in_one_call() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "store-suite-all-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(&dir.join("issuer.sqlite3"), &SqliteOptions::default()).unwrap();
    issuer::store::conformance::run_all(std::sync::Arc::new(store)).await;
    std::fs::remove_dir_all(&dir).ok();
}
