//! Local issuer CLI.
fn main() {}
