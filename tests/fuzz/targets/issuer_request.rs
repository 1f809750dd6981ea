//! libFuzzer entry of `auth_fuzz_checks::issuer_request` (the checks and their
//! invariants are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_fuzz_checks::issuer_request::run(data));
