//! Replays every committed seed of `tests/fuzz/corpus/<target>/` through its
//! target's checks, once each, in one process per target (as libFuzzer does
//! when given files): a seed that panics fails the test, naming the seed.
//! A target without seeds, a corpus directory without a target and a
//! structured seed that no longer decodes fail too, so nothing passes by
//! running nothing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use auth_fuzz_checks as checks;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The seeds of one target, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir().join(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => panic!("no seed directory {}: {e}", dir.display()),
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match std::fs::read(e.path()) {
                Ok(bytes) => (name, bytes),
                Err(err) => panic!("cannot read seed {target}/{name}: {err}"),
            }
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs `run` on every seed of `target`; fails naming each seed that panicked.
fn replay(target: &str, run: impl Fn(&[u8])) {
    let seeds = seeds(target);
    let failed: Vec<&str> = seeds
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| run(bytes))).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{target}: {} of {} seeds failed: {failed:?}", failed.len(), seeds.len());
    eprintln!("{target}: {} seeds pass", seeds.len());
}

const TARGETS: [&str; 6] = [
    "authorizer_event",
    "bearer_and_routes",
    "issuer_request",
    "jwks_parse",
    "token_verify",
    "token_verify_structured",
];

#[test]
fn every_corpus_directory_has_a_target() {
    let mut dirs: Vec<String> = match std::fs::read_dir(corpus_dir()) {
        Ok(e) => e
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => panic!("no corpus directory {}: {e}", corpus_dir().display()),
    };
    dirs.sort();
    assert_eq!(dirs, TARGETS, "corpus directories and replayed targets differ");
}

#[test]
fn authorizer_event() {
    replay("authorizer_event", checks::authorizer_event::run);
}

#[test]
fn bearer_and_routes() {
    replay("bearer_and_routes", checks::bearer_and_routes::run);
}

#[test]
fn issuer_request() {
    replay("issuer_request", checks::issuer_request::run);
}

#[test]
fn jwks_parse() {
    replay("jwks_parse", checks::jwks_parse::run);
}

#[test]
fn token_verify() {
    replay("token_verify", checks::token_verify::run);
}

#[test]
fn token_verify_structured() {
    replay("token_verify_structured", |bytes| match checks::token_verify_structured::decode(bytes) {
        Some(input) => checks::token_verify_structured::check(input),
        None => panic!("the seed no longer decodes as an Input (it tests nothing)"),
    });
}

#[test]
fn reference_glob_basics() {
    use auth_fuzz_checks::reference_glob;
    assert!(reference_glob("a/*/*", "a/GET/pets/1"));
    assert!(!reference_glob("a/GET/pets", "a/GET/pets/1"));
    assert!(reference_glob("a/GE?/x", "a/GET/x"));
    assert!(reference_glob("*", ""));
    assert!(!reference_glob("?", ""));
}
