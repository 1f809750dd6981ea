//! The sidecar's configuration: environment variables, with flags layered on
//! top for a person running it by hand. Validated once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use token_core::{ConfigError, Settings, VerifierConfig};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the sidecar needs. Field docs give the variable and default.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// `SIDECAR_LISTEN`, default `127.0.0.1:8081`. Loopback unless you mean it.
    pub listen: SocketAddr,
    /// The `AUTH_*` variables (see `token_core::config`).
    pub verifier: VerifierConfig,
    /// `SIDECAR_MAX_CONNECTIONS`, default 1024: further connections wait in
    /// the listen backlog.
    pub max_connections: usize,
    /// `SIDECAR_HEADER_TIMEOUT_SECS`, default 10: the whole request head must
    /// arrive within this time. hyper also applies it to a keep-alive
    /// connection waiting for its next request, so it is the idle timeout too.
    pub header_timeout: Duration,
    /// `SIDECAR_REQUEST_TIMEOUT_SECS`, default 10: longest time spent
    /// answering one request (only a JWKS refetch can take long).
    pub request_timeout: Duration,
    /// `SIDECAR_MAX_HEADER_BYTES`, default 16384 (minimum 8192): larger
    /// request heads get 431.
    pub max_header_bytes: usize,
    /// `SIDECAR_SHUTDOWN_GRACE_SECS`, default 10: how long in-flight
    /// requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// `SIDECAR_WORKERS`, default: the CPUs this process may run on.
    pub workers: Option<usize>,
    /// `LOG_FORMAT` (`text` or `json`), default text. Level from `RUST_LOG`.
    pub log_format: LogFormat,
}

/// Flags and the variables they set.
pub const FLAGS: &[(&str, &str, &str)] = &[
    ("--listen", "SIDECAR_LISTEN", "address to listen on (127.0.0.1:8081)"),
    ("--issuer", "AUTH_ISSUER", "trusted issuer (iss)"),
    ("--audience", "AUTH_AUDIENCE", "accepted audiences, comma-separated"),
    ("--jwks-url", "AUTH_JWKS_URL", "JWKS URL (default {issuer}/.well-known/jwks.json)"),
    ("--leeway-secs", "AUTH_LEEWAY_SECS", "clock leeway in seconds (60)"),
    ("--config", "AUTH_CONFIG_FILE", "JSON file listing several issuers"),
    ("--max-connections", "SIDECAR_MAX_CONNECTIONS", "connection limit (1024)"),
    ("--workers", "SIDECAR_WORKERS", "worker threads (CPUs available)"),
    ("--log-format", "LOG_FORMAT", "text or json"),
];

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Run with this configuration.
    Run(Box<SidecarConfig>),
    /// Print usage.
    Help,
}

/// Usage text.
pub fn usage() -> String {
    let mut s = String::from(
        "sidecar: verifies access tokens for nginx auth_request, Envoy ext_authz and Traefik forwardAuth\n\n\
         usage: sidecar [--flag value]...\n\nEvery flag has an environment variable; flags win.\n\n",
    );
    for (flag, var, help) in FLAGS {
        s.push_str(&format!("  {flag:<18} {var:<26} {help}\n"));
    }
    s.push_str(
        "\nMore variables (AUTH_JWKS_*, AUTH_TOKEN_CACHE_BYTES, SIDECAR_*_TIMEOUT_SECS, REVOCATION_FEED_URL,\n\
         REVOCATION_STALE_POLICY, REVOCATION_MAX_LAG, ...) are in the README.\n",
    );
    s
}

impl SidecarConfig {
    /// Parses flags (`--name value` or `--name=value`) over `env`.
    ///
    /// # Errors
    /// An unknown flag, a flag without a value, or any invalid setting, by name.
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Command, ConfigError> {
        let mut flags: HashMap<&'static str, String> = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(Command::Help);
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let Some((_, var, _)) = FLAGS.iter().find(|(f, _, _)| *f == name) else {
                return Err(ConfigError::new(arg, "unknown flag (see --help)"));
            };
            let value = match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| ConfigError::new(name.clone(), "needs a value"))?,
            };
            flags.insert(var, value);
        }
        let settings = Settings::new(|name| flags.get(name).cloned().or_else(|| env(name)));
        Self::from_settings(&settings).map(|c| Command::Run(Box::new(c)))
    }

    /// Reads every setting.
    ///
    /// # Errors
    /// The first missing or invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let listen = match s.get("SIDECAR_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8081)),
            Some(v) => {
                v.parse().map_err(|_| ConfigError::new("SIDECAR_LISTEN", format!("expected host:port, got {v:?}")))?
            }
        };
        let log_format = match s.get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(v) => return Err(ConfigError::new("LOG_FORMAT", format!("expected text or json, got {v:?}"))),
        };
        let workers = match s.u64_in("SIDECAR_WORKERS", 0, 0..=256)? {
            0 => None,
            n => Some(n as usize),
        };
        Ok(SidecarConfig {
            listen,
            verifier: VerifierConfig::from_settings(s)?,
            max_connections: s.u64_in("SIDECAR_MAX_CONNECTIONS", 1024, 1..=1_000_000)? as usize,
            header_timeout: s.secs("SIDECAR_HEADER_TIMEOUT_SECS", 10, 1..=3600)?,
            request_timeout: s.secs("SIDECAR_REQUEST_TIMEOUT_SECS", 10, 1..=3600)?,
            max_header_bytes: s.u64_in("SIDECAR_MAX_HEADER_BYTES", 16_384, 8192..=1_048_576)? as usize,
            shutdown_grace: s.secs("SIDECAR_SHUTDOWN_GRACE_SECS", 10, 0..=3600)?,
            workers,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        SidecarConfig::from_args(args.iter().map(|s| (*s).to_owned()), move |n| {
            env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> SidecarConfig {
        match parse(args, env).unwrap() {
            Command::Run(c) => *c,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_bind_loopback_8081() {
        let c = run(&[], &[("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api")]);
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8081)));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn flags_override_env() {
        let c = run(
            &["--listen", "127.0.0.1:9999", "--audience=web", "--leeway-secs", "5"],
            &[("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api"), ("SIDECAR_LISTEN", "127.0.0.1:1")],
        );
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.verifier.issuers[0].audiences, vec!["web"]);
        assert_eq!(c.verifier.leeway, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let base = [("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api")];
        let err = parse(&[], &[base[0], base[1], ("SIDECAR_LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(err.var, "SIDECAR_LISTEN");
        let err = parse(&["--leeway-secs", "x"], &base).unwrap_err();
        assert_eq!(err.var, "AUTH_LEEWAY_SECS");
        assert_eq!(parse(&["--bogus", "1"], &base).unwrap_err().var, "--bogus");
        assert_eq!(parse(&["--listen"], &base).unwrap_err().var, "--listen");
        assert_eq!(parse(&[], &[base[0], base[1], ("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
        assert_eq!(
            parse(&[], &[base[0], base[1], ("SIDECAR_MAX_HEADER_BYTES", "100")]).unwrap_err().var,
            "SIDECAR_MAX_HEADER_BYTES"
        );
        assert_eq!(parse(&[], &[]).unwrap_err().var, "AUTH_ISSUER");
    }

    #[test]
    fn help() {
        assert!(matches!(parse(&["--help"], &[]).unwrap(), Command::Help));
        assert!(usage().contains("--issuer"));
    }
}
