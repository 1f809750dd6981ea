//! libFuzzer entry of `auth_fuzz_checks::token_verify_structured` (the
//! checks and their invariants are documented there).
#![no_main]

use auth_fuzz_checks::token_verify_structured::{Input, check};

libfuzzer_sys::fuzz_target!(|input: Input| check(input));
