//! `devstack`: the whole system on one machine until Ctrl-C.
//!
//! ```text
//! devstack [--data-dir DIR] [--host IP] [--gateway-port N] [--issuer-port N]
//!          [--sidecar-port N] [--backend-port N] [--authorizer-ttl-secs N]
//! ```
//!
//! The `ISSUER_*`, `AUTH_*` and `REVOCATION_*` variables override the demo
//! defaults; flags win over `ISSUER_DATA_DIR` and `AUTHORIZER_CACHE_TTL`.
use std::process::ExitCode;

use devstack::{DevAddrs, DevOptions};
use token_core::config::flag_pairs;
use token_core::serve::shutdown_signal;

const USAGE: &str = "\
usage: devstack [--data-dir DIR] [--host IP] [--gateway-port 8000] [--issuer-port 8080]
                [--sidecar-port 8081] [--backend-port 8090] [--authorizer-ttl-secs 60]

Runs the whole system locally on the embedded store: the issuer, the sidecar,
and a front door that plays API Gateway with the Lambda authorizer in front of
a demo backend. The ISSUER_*, AUTH_* and REVOCATION_* variables (see
issuer/README.md and authorizer/README.md) override the demo defaults;
AUTHORIZER_CACHE_TTL (seconds) sets the front door's cache TTL like the
template's AuthorizerCacheTtl. Ctrl-C stops everything.";

enum Command {
    Help,
    Run(DevOptions),
}

fn ttl(name: &str, value: &str) -> Result<std::time::Duration, String> {
    let secs: u64 = value.parse().map_err(|_| format!("{name}: expected seconds, got {value:?}"))?;
    if secs > 3600 {
        return Err(format!("{name}: at most 3600 (API Gateway's limit)"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn parse_args(args: &[String], data_dir_env: Option<String>, ttl_env: Option<String>) -> Result<Command, String> {
    let mut o = DevOptions::default();
    if let Some(dir) = data_dir_env {
        o.data_dir = dir.into();
    }
    if let Some(v) = ttl_env.filter(|v| !v.trim().is_empty()) {
        o.authorizer_ttl = ttl("AUTHORIZER_CACHE_TTL", v.trim())?;
    }
    if args.first().is_some_and(|a| a == "help") {
        return Ok(Command::Help);
    }
    let Some(pairs) = flag_pairs(args)? else { return Ok(Command::Help) };
    for (name, value) in pairs {
        let name = name.as_str();
        let port = |v: &str| v.parse::<u16>().map_err(|_| format!("{name}: expected a port number, got {v:?}"));
        match name {
            "--data-dir" => o.data_dir = value.into(),
            "--host" => o.host = value.parse().map_err(|_| format!("{name}: expected an IP address, got {value:?}"))?,
            "--gateway-port" => o.gateway_port = port(&value)?,
            "--issuer-port" => o.issuer_port = port(&value)?,
            "--sidecar-port" => o.sidecar_port = port(&value)?,
            "--backend-port" => o.backend_port = port(&value)?,
            "--authorizer-ttl-secs" => o.authorizer_ttl = ttl(name, &value)?,
            _ => return Err(format!("unknown flag {name:?}")),
        }
    }
    Ok(Command::Run(o))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts =
        match parse_args(&args, std::env::var("ISSUER_DATA_DIR").ok(), std::env::var("AUTHORIZER_CACHE_TTL").ok()) {
            Ok(Command::Help) => {
                eprintln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Ok(Command::Run(opts)) => opts,
            Err(msg) => {
                eprintln!("devstack: {msg}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
    issuer::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devstack: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = |addrs: DevAddrs| {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", devstack::walkthrough(&addrs));
        }
    };
    // The shutdown future is made inside the runtime, before anything is
    // announced: its signal handlers exist from then on.
    let stack = async { devstack::run(opts, |name| std::env::var(name).ok(), ready, shutdown_signal()).await };
    match rt.block_on(stack) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("devstack: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_set_the_options_in_both_spellings() {
        let Ok(Command::Run(o)) = parse_args(&args("--gateway-port 9000 --authorizer-ttl-secs=60"), None, None) else {
            panic!("options expected")
        };
        assert_eq!(o.gateway_port, 9000);
        assert_eq!(o.authorizer_ttl, std::time::Duration::from_secs(60));
    }

    #[test]
    fn the_data_dir_flag_wins_over_the_variable() {
        let Ok(Command::Run(o)) = parse_args(&args(""), Some("/env".into()), None) else { panic!() };
        assert_eq!(o.data_dir, std::path::PathBuf::from("/env"));
        let Ok(Command::Run(o)) = parse_args(&args("--data-dir /flag"), Some("/env".into()), None) else { panic!() };
        assert_eq!(o.data_dir, std::path::PathBuf::from("/flag"));
    }

    #[test]
    fn bad_flags_are_named() {
        let err = |s: &str| match parse_args(&args(s), None, None) {
            Err(e) => e,
            Ok(_) => panic!("{s}: expected an error"),
        };
        assert_eq!(err("--bogus x"), "unknown flag \"--bogus\"");
        assert_eq!(err("--gateway-port"), "--gateway-port needs a value");
        assert_eq!(err("--gateway-port abc"), "--gateway-port: expected a port number, got \"abc\"");
        assert_eq!(err("--authorizer-ttl-secs 3601"), "--authorizer-ttl-secs: at most 3600 (API Gateway's limit)");
    }

    #[test]
    fn the_cache_ttl_defaults_to_the_templates_and_follows_the_variable_then_the_flag() {
        let Ok(Command::Run(o)) = parse_args(&args(""), None, None) else { panic!() };
        assert_eq!(o.authorizer_ttl, std::time::Duration::from_secs(devstack::DEFAULT_AUTHORIZER_TTL_SECS));
        let Ok(Command::Run(o)) = parse_args(&args(""), None, Some("0".into())) else { panic!() };
        assert_eq!(o.authorizer_ttl, std::time::Duration::ZERO);
        let Ok(Command::Run(o)) = parse_args(&args("--authorizer-ttl-secs 5"), None, Some("0".into())) else {
            panic!()
        };
        assert_eq!(o.authorizer_ttl, std::time::Duration::from_secs(5));
        match parse_args(&args(""), None, Some("soon".into())) {
            Err(e) => assert!(e.starts_with("AUTHORIZER_CACHE_TTL"), "{e}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn help_wherever_a_flag_is_expected() {
        for s in ["-h", "--help", "help", "--data-dir d --help"] {
            assert!(matches!(parse_args(&args(s), None, None), Ok(Command::Help)), "{s}");
        }
    }
}
