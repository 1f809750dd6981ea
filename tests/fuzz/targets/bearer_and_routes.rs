//! libFuzzer entry of `auth_fuzz_checks::bearer_and_routes` (the checks and their
//! invariants are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_fuzz_checks::bearer_and_routes::run(data));
