//! Lambda bootstrap of the issuer.
fn main() {}
