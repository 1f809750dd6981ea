//! Local issuer CLI.
//!
//! ```text
//! issuer serve [--listen ADDR] [--data-dir DIR] [--issuer-url URL] [--audience AUD]
//! ```
//!
//! The whole local system (issuer, sidecar, front door) is the `devstack`
//! binary.
//!
//! Flags override the `ISSUER_*` environment variables of the same meaning.
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use issuer::config::{IssuerConfig, Shape, StoreKind};
use issuer::mail::Mailer;
use issuer::server::{ServerOptions, serve_with, shutdown_signal};
use issuer::store::Store;
use issuer::store::dynamo::DynamoStore;
use issuer::store::sqlite::SqliteStore;
use issuer::{App, KeyRing};
use token_core::Settings;
use token_core::config::flag_pairs;

const USAGE: &str = "\
usage: issuer serve [--listen ADDR] [--data-dir DIR] [--issuer-url URL] [--audience AUD[,AUD...]]

serve: runs the issuer locally (SQLite store and keys in the data directory).
The whole system (issuer, sidecar, and a front door playing API Gateway with
the Lambda authorizer) runs with `cargo run -p devstack`.
Every setting is also read from the environment (ISSUER_URL, ISSUER_AUDIENCE,
ISSUER_LISTEN, ISSUER_DATA_DIR, ...; see issuer/README.md). Flags win.";

/// Flag name to the variable it sets.
const FLAGS: [(&str, &str); 4] = [
    ("--listen", "ISSUER_LISTEN"),
    ("--data-dir", "ISSUER_DATA_DIR"),
    ("--issuer-url", "ISSUER_URL"),
    ("--audience", "ISSUER_AUDIENCE"),
];

enum Command {
    Help,
    Serve(HashMap<&'static str, String>),
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else { return Ok(Command::Help) };
    match cmd.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "serve" => {}
        other => return Err(format!("unknown command {other:?}")),
    }
    let Some(pairs) = flag_pairs(rest)? else { return Ok(Command::Help) };
    let mut flags = HashMap::new();
    for (name, value) in pairs {
        let var = FLAGS.iter().find(|(f, _)| *f == name).map(|(_, v)| *v).ok_or(format!("unknown flag {name:?}"))?;
        flags.insert(var, value);
    }
    Ok(Command::Serve(flags))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match parse_args(&args) {
        Ok(Command::Help) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(flags)) => flags,
        Err(msg) => {
            eprintln!("issuer: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    issuer::init_tracing();
    let settings = Settings::new(move |name| flags.get(name).cloned().or_else(|| std::env::var(name).ok()));
    let cfg = match IssuerConfig::from_settings(&settings, Shape::Local) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("issuer: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("issuer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("issuer: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: IssuerConfig) -> Result<(), String> {
    match cfg.store {
        StoreKind::Sqlite => {
            let opts = cfg.sqlite_options();
            let store = SqliteStore::open_in_dir(&cfg.data_dir, &opts).map_err(|e| format!("store: {e}"))?;
            spawn_purge(store.clone());
            let keys = KeyRing::load_or_create_local(&cfg.data_dir, cfg.signing_alg).map_err(|e| e.to_string())?;
            // The outbox by default; SES (ISSUER_MAIL=ses) loads the SDK's configuration.
            let mailer = Mailer::from_config(&cfg, None).await.map_err(|e| format!("mail: {e}"))?;
            serve_app(cfg, store, keys, mailer).await
        }
        StoreKind::DynamoDb => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let store = DynamoStore::new(&sdk, &cfg.dynamo_config());
            let keys = match &cfg.signing_key_secret_arn {
                Some(arn) => {
                    let client = aws_sdk_secretsmanager::Client::new(&sdk);
                    KeyRing::from_secrets_manager(&client, arn).await
                }
                None => KeyRing::load_or_create_local(&cfg.data_dir, cfg.signing_alg),
            }
            .map_err(|e| e.to_string())?;
            let mailer = Mailer::from_config(&cfg, Some(&sdk)).await.map_err(|e| format!("mail: {e}"))?;
            serve_app(cfg, store, keys, mailer).await
        }
    }
}

async fn serve_app<S: Store>(cfg: IssuerConfig, store: S, keys: KeyRing, mailer: Mailer) -> Result<(), String> {
    let opts = ServerOptions::from_config(&cfg);
    let listen = cfg.listen;
    let app = Arc::new(App::new(cfg, store, keys).map_err(|e| e.to_string())?.with_mailer(mailer));
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("ISSUER_LISTEN: cannot bind {listen}: {e}"))?;
    let shutdown = shutdown_signal();
    tracing::info!(addr = %listen, issuer = %app.config().issuer_url, kid = app.keys().active().kid(), "issuer listening");
    serve_with(listener, app, opts, shutdown).await.map_err(|e| e.to_string())
}

/// Deletes long-expired refresh tokens once an hour (expiry is checked on
/// every read anyway; this only keeps the file small).
fn spawn_purge(store: SqliteStore) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let now = token_core::unix_now().as_secs();
            match store.purge_expired(now, 86_400).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "purged expired refresh tokens"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of expired refresh tokens failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn serve_flags_map_to_their_variables_in_both_spellings() {
        let Ok(Command::Serve(f)) = parse_args(&args("serve --listen 127.0.0.1:9 --audience=a,b")) else {
            panic!("serve expected")
        };
        assert_eq!(f["ISSUER_LISTEN"], "127.0.0.1:9");
        assert_eq!(f["ISSUER_AUDIENCE"], "a,b");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn bad_flags_are_named() {
        let err = |s: &str| match parse_args(&args(s)) {
            Err(e) => e,
            Ok(_) => panic!("{s}: expected an error"),
        };
        assert_eq!(err("serve --bogus x"), "unknown flag \"--bogus\"");
        assert_eq!(err("serve --listen"), "--listen needs a value");
        assert_eq!(err("dev"), "unknown command \"dev\"");
        assert_eq!(err("deploy"), "unknown command \"deploy\"");
    }

    #[test]
    fn help_wherever_a_flag_is_expected() {
        for s in ["", "help", "--help", "serve -h", "serve --data-dir d --help"] {
            assert!(matches!(parse_args(&args(s)), Ok(Command::Help)), "{s}");
        }
    }
}
