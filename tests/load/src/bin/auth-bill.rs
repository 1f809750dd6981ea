//! Prints the day-at-70M model, its rates per hour, the counted-work inputs,
//! the monthly AWS bill beside Cognito, and the capacity at the peak, as
//! markdown, from the defaults in the crate.
//!
//! ```text
//! cargo run -p auth-load --bin auth-bill [-- --prices FILE]
//! ```
//!
//! `--prices FILE` reads another prices file (same keys as
//! docs/bench/prices.toml); the default is the committed file.

use std::io::Write;
use std::process::ExitCode;

use auth_load::model::LoadModel;
use auth_load::prices::Prices;
use auth_load::{report, work};

const USAGE: &str = "usage: auth-bill [--prices FILE]";

fn prices_from_args(args: &[String]) -> Result<Prices, String> {
    match args {
        [] => Prices::committed().map_err(|e| e.to_string()),
        [flag, path] if flag == "--prices" => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--prices {path}: {e}"))?;
            Prices::parse(&text).map_err(|e| format!("{path}: {e}"))
        }
        _ => Err(USAGE.to_owned()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prices = match prices_from_args(&args) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-bill: {e}");
            return ExitCode::from(2);
        }
    };
    let model = LoadModel::default();
    let table = match work::default_table(&model) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-bill: the work table: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = report::render(&model, &prices, &table, &work::hot_keys());
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-bill: writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert!(prices_from_args(&[]).is_ok());
        assert_eq!(prices_from_args(&["--price".into(), "x".into()]).unwrap_err(), USAGE);
        let err = prices_from_args(&["--prices".into(), "/nonexistent/prices.toml".into()]).unwrap_err();
        assert!(err.starts_with("--prices /nonexistent/prices.toml: "), "{err}");
    }
}
