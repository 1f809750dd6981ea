//! The store suite against the SQLite store. All behaviours share one
//! database file (as they would share one server): the suite uses unique ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use issuer::store::sqlite::{SqliteOptions, SqliteStore};

/// One database per test process, under cargo's scratch directory for
/// integration tests.
async fn shared_store(_test: &'static str) -> SqliteStore {
    static STORE: OnceLock<SqliteStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "store-suite-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&dir).expect("scratch directory");
            SqliteStore::open(&dir.join("issuer.sqlite3"), &SqliteOptions::default()).expect("open the SQLite store")
        })
        .clone()
}

issuer::store_conformance_tests!(shared_store);

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
