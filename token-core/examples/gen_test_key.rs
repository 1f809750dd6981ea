//! Prints a fresh PKCS#8 PEM key: `gen_test_key RS256`. For test fixtures.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
fn main() {
    let alg: token_core::Algorithm = std::env::args().nth(1).unwrap_or_else(|| "RS256".into()).parse().unwrap();
    print!("{}", token_core::SigningKey::generate(alg, "k").unwrap().to_pkcs8_pem());
}
