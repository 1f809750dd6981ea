//! Configuration of the verifier, read once at start-up and validated there.
//!
//! The sidecar and the authorizer read the same variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTH_ISSUER` | the trusted issuer (`iss`) | required unless `AUTH_CONFIG_FILE` |
//! | `AUTH_AUDIENCE` | accepted audiences, comma-separated | required with `AUTH_ISSUER` |
//! | `AUTH_JWKS_URL` | the issuer's JWKS | `{AUTH_ISSUER}/.well-known/jwks.json` |
//! | `AUTH_CONFIG_FILE` | JSON file listing several issuers (see [`IssuersFile`]) | none |
//! | `AUTH_LEEWAY_SECS` | clock leeway for `exp`, `nbf`, `iat` | 60 |
//! | `AUTH_JWKS_REFRESH_SECS` | background refresh period of each JWKS | 300 |
//! | `AUTH_JWKS_MAX_STALE_SECS` | how long the last good keys serve while the JWKS endpoint fails | 21600 |
//! | `AUTH_JWKS_COOLDOWN_SECS` | at most one refetch per this period for unknown `kid`s | 30 |
//! | `AUTH_JWKS_CONNECT_TIMEOUT_MS` | connect timeout of a JWKS fetch | 2000 |
//! | `AUTH_JWKS_TIMEOUT_MS` | total timeout of a JWKS fetch | 5000 |
//! | `AUTH_JWKS_MAX_BYTES` | largest JWKS document accepted | 262144 |
//! | `AUTH_TOKEN_CACHE_BYTES` | memory bound of the verified-token cache (0: off) | 4194304 |
//! | `AUTH_MAX_TOKEN_BYTES` | longest token considered | 8192 |
//! | `REVOCATION_FEED_URL` | the issuer's revocation feed, or `off` | `{AUTH_ISSUER}/revocations`; required with several issuers |
//! | `REVOCATION_POLL_INTERVAL` | how often the feed is polled (`1s`, `500ms`, or seconds) | 1s |
//! | `REVOCATION_MAX_LAG` | the feed counts as stale past this lag; readiness fails | 30s |
//! | `REVOCATION_STALE_POLICY` | `serve` or `refuse` tokens while the feed is stale (see [`StalePolicy`]) | serve |
//! | `REVOCATION_MAX_ENTRIES` | bound on revoked sessions plus subjects held | 2000000 |
//! | `REVOCATION_TIMEOUT_MS` | total timeout of one feed page fetch | 2000 |

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A configuration value is missing or invalid. The message names the
/// variable (or flag, or file) and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable, flag or file at fault.
    pub var: String,
    /// What was wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { var: var.into(), message: message.into() }
    }
}

/// Reads typed settings from a source of named strings (the environment,
/// flags layered over it, or a map in tests) with errors that name the
/// variable. Empty values count as unset.
pub struct Settings<'a> {
    source: Box<Lookup<'a>>,
}

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl std::fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settings")
    }
}

impl<'a> Settings<'a> {
    /// Settings from any lookup function.
    pub fn new(source: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Settings { source: Box::new(source) }
    }

    /// Settings from the process environment.
    pub fn from_env() -> Settings<'static> {
        Settings::new(|name| std::env::var(name).ok())
    }

    /// Settings from fixed pairs (tests, tools).
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Settings::new(move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    /// The value, if set and not blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.source)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A required value.
    ///
    /// # Errors
    /// When unset or blank.
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::new(var, "required but not set"))
    }

    /// A whole number, or `default` when unset.
    ///
    /// # Errors
    /// When set to anything but a whole number within `range`.
    pub fn u64_in(&self, var: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => {
                let n: u64 =
                    v.parse().map_err(|_| ConfigError::new(var, format!("expected a whole number, got {v:?}")))?;
                if !range.contains(&n) {
                    return Err(ConfigError::new(
                        var,
                        format!("{n} is out of range {}..={}", range.start(), range.end()),
                    ));
                }
                Ok(n)
            }
        }
    }

    /// Seconds, or `default` when unset.
    ///
    /// # Errors
    /// As [`Settings::u64_in`].
    pub fn secs(&self, var: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<Duration, ConfigError> {
        self.u64_in(var, default, range).map(Duration::from_secs)
    }

    /// Milliseconds, or `default` when unset.
    ///
    /// # Errors
    /// As [`Settings::u64_in`].
    pub fn millis(
        &self,
        var: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.u64_in(var, default, range).map(Duration::from_millis)
    }

    /// A duration written `500ms`, `2s` or a bare number of seconds, or
    /// `default` when unset.
    ///
    /// # Errors
    /// When set to anything else, or outside `range`.
    pub fn duration(
        &self,
        var: &str,
        default: Duration,
        range: std::ops::RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = self.get(var) else { return Ok(default) };
        let parsed = if let Some(ms) = v.strip_suffix("ms") {
            ms.trim().parse::<u64>().ok().map(Duration::from_millis)
        } else {
            v.strip_suffix('s').unwrap_or(&v).trim().parse::<u64>().ok().map(Duration::from_secs)
        };
        let d =
            parsed.ok_or_else(|| ConfigError::new(var, format!("expected a duration like 1s or 500ms, got {v:?}")))?;
        if !range.contains(&d) {
            return Err(ConfigError::new(
                var,
                format!("{d:?} is out of range {:?}..={:?}", range.start(), range.end()),
            ));
        }
        Ok(d)
    }

    /// `true`/`false`/`1`/`0`, or `default` when unset.
    ///
    /// # Errors
    /// When set to anything else.
    pub fn bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "TRUE" | "True" | "yes") => Ok(true),
            Some("0" | "false" | "FALSE" | "False" | "no") => Ok(false),
            Some(v) => Err(ConfigError::new(var, format!("expected true or false, got {v:?}"))),
        }
    }

    /// A comma-separated list, blanks dropped; empty when unset.
    pub fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// One issuer whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// Where its keys are published. Defaults to `{issuer}/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted `aud` values: a token needs at least one of them.
    pub audiences: Vec<String>,
}

impl TrustedIssuer {
    /// The JWKS URL, explicit or derived from the issuer ([`jwks_url_of`]).
    pub fn jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(u) => u.clone(),
            None => jwks_url_of(&self.issuer),
        }
    }
}

/// Command-line flags as `--name value` and `--name=value` pairs, in order;
/// `None` when help is asked for (`-h` or `--help` where a flag name is
/// expected). The binaries map the names to their settings.
///
/// # Errors
/// A message naming a flag that has no value.
///
/// ```
/// let args = ["--a", "1", "--b=2"].map(String::from);
/// let pairs = token_core::config::flag_pairs(&args).unwrap().unwrap();
/// assert_eq!(pairs, [("--a".to_owned(), "1".to_owned()), ("--b".to_owned(), "2".to_owned())]);
/// ```
pub fn flag_pairs(args: &[String]) -> Result<Option<Vec<(String, String)>>, String> {
    let mut pairs = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, v.to_owned()),
            None => (arg.as_str(), it.next().cloned().ok_or(format!("{arg} needs a value"))?),
        };
        pairs.push((name.to_owned(), value));
    }
    Ok(Some(pairs))
}

/// Where an issuer publishes its keys: `{issuer}/.well-known/jwks.json`.
/// The one derivation, shared by the issuer (what it publishes) and the
/// verifiers (where they look by default).
///
/// ```
/// assert_eq!(token_core::config::jwks_url_of("https://a.example/"), "https://a.example/.well-known/jwks.json");
/// ```
pub fn jwks_url_of(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
}

/// The file named by `AUTH_CONFIG_FILE`: several issuers.
///
/// ```json
/// {"issuers": [
///   {"issuer": "https://auth.example.com", "audiences": ["api"]},
///   {"issuer": "https://login.partner.example", "audiences": ["api", "partner-api"],
///    "jwks_url": "https://login.partner.example/keys"}
/// ]}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuersFile {
    /// The trusted issuers.
    pub issuers: Vec<TrustedIssuer>,
}

/// What verification does while the revocation feed is stale (its lag over
/// [`RevocationConfig::max_lag`], or no complete listing yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalePolicy {
    /// Keep verifying with the entries held (the default). A feed outage
    /// must not turn into an outage of every API behind the verifiers: the
    /// tokens still expire within their 15 minutes, which is the exposure
    /// there was before revocation existed, and the staleness shows in
    /// readiness and in `auth_revocation_lag_seconds`.
    Serve,
    /// Refuse every token while stale (`revocation_stale`): the sidecar
    /// answers 503, the authorizer `Unauthorized`. For APIs where a revoked
    /// token working for minutes is worse than being down.
    Refuse,
}

/// Following the issuer's revocation feed (`REVOCATION_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    /// The feed; `None` turns revocation checks off (`REVOCATION_FEED_URL=off`).
    /// From the environment it defaults to `{issuer}/revocations`
    /// ([`crate::revocation::feed_url_of`]); [`VerifierConfig::for_issuer`]
    /// leaves it off.
    pub feed_url: Option<String>,
    /// Poll period. Defaults to 1 s.
    pub poll_interval: Duration,
    /// Lag past which the feed is stale. Defaults to 30 s.
    pub max_lag: Duration,
    /// What happens while stale. Defaults to [`StalePolicy::Serve`].
    pub stale_policy: StalePolicy,
    /// Bound on entries held. Defaults to 2,000,000.
    pub max_entries: usize,
    /// Total timeout of one page fetch. Defaults to 2 s.
    pub timeout: Duration,
    /// Largest page body accepted. Defaults to 1 MiB (a full page of
    /// [`crate::revocation::MAX_PAGE`] events is about 110 KiB).
    pub max_page_bytes: usize,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            feed_url: None,
            poll_interval: Duration::from_secs(1),
            max_lag: Duration::from_secs(30),
            stale_policy: StalePolicy::Serve,
            max_entries: crate::revocation_set::DEFAULT_MAX_ENTRIES,
            timeout: Duration::from_millis(2000),
            max_page_bytes: 1024 * 1024,
        }
    }
}

impl RevocationConfig {
    /// Reads the `REVOCATION_*` variables for these issuers.
    ///
    /// # Errors
    /// The first invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>, issuers: &[TrustedIssuer]) -> Result<Self, ConfigError> {
        const VAR: &str = "REVOCATION_FEED_URL";
        let feed_url = match s.get(VAR).as_deref() {
            Some("off") => None,
            Some(url) => Some(url.to_owned()),
            None => match issuers {
                [one] => Some(crate::revocation::feed_url_of(&one.issuer)),
                _ => {
                    return Err(ConfigError::new(
                        VAR,
                        "required with several issuers: the feed of the issuer whose sessions you revoke, or off",
                    ));
                }
            },
        };
        if let Some(url) = &feed_url {
            check_jwks_url(url).map_err(|m| ConfigError::new(VAR, m.replace("keys must", "the feed must")))?;
        }
        let stale_policy = match s.get("REVOCATION_STALE_POLICY").as_deref() {
            None | Some("serve") => StalePolicy::Serve,
            Some("refuse") => StalePolicy::Refuse,
            Some(v) => {
                return Err(ConfigError::new(
                    "REVOCATION_STALE_POLICY",
                    format!("expected serve or refuse, got {v:?}"),
                ));
            }
        };
        let cfg = RevocationConfig {
            feed_url,
            poll_interval: s.duration(
                "REVOCATION_POLL_INTERVAL",
                Duration::from_secs(1),
                Duration::from_millis(100)..=Duration::from_secs(300),
            )?,
            max_lag: s.duration(
                "REVOCATION_MAX_LAG",
                Duration::from_secs(30),
                Duration::from_secs(2)..=Duration::from_secs(3600),
            )?,
            stale_policy,
            max_entries: s.u64_in(
                "REVOCATION_MAX_ENTRIES",
                crate::revocation_set::DEFAULT_MAX_ENTRIES as u64,
                1000..=50_000_000,
            )? as usize,
            timeout: s.millis("REVOCATION_TIMEOUT_MS", 2000, 10..=60_000)?,
            max_page_bytes: 1024 * 1024,
        };
        if cfg.max_lag <= cfg.poll_interval {
            return Err(ConfigError::new("REVOCATION_MAX_LAG", "must be longer than REVOCATION_POLL_INTERVAL"));
        }
        Ok(cfg)
    }
}

/// Everything the verifier needs. Field docs give the defaults.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Trusted issuers; at least one.
    pub issuers: Vec<TrustedIssuer>,
    /// Clock leeway for `exp`, `nbf` and `iat`. Defaults to 60 s.
    pub leeway: Duration,
    /// Background refresh period of each JWKS. Defaults to 300 s.
    pub jwks_refresh: Duration,
    /// How long the last good keys keep serving when refreshes fail.
    /// Defaults to 6 h. Past it, tokens of that issuer are refused as
    /// `keys_unavailable` and readiness fails.
    pub jwks_max_stale: Duration,
    /// At most one refetch per this period when a token names an unknown
    /// `kid`. Defaults to 30 s.
    pub unknown_kid_cooldown: Duration,
    /// Connect timeout of a JWKS fetch. Defaults to 2 s.
    pub jwks_connect_timeout: Duration,
    /// Total timeout of a JWKS fetch. Defaults to 5 s.
    pub jwks_timeout: Duration,
    /// Largest JWKS document accepted. Defaults to 256 KiB.
    pub jwks_max_bytes: usize,
    /// Memory bound of the verified-token cache; 0 turns it off. Defaults to 4 MiB.
    pub token_cache_bytes: u64,
    /// Longest token considered; longer ones are malformed. Defaults to 8 KiB.
    pub max_token_bytes: usize,
    /// The revocation feed. Off unless set ([`VerifierConfig::from_settings`]
    /// turns it on by default).
    pub revocation: RevocationConfig,
}

impl VerifierConfig {
    /// A configuration for one issuer with every default.
    pub fn for_issuer(issuer: impl Into<String>, audiences: Vec<String>, jwks_url: Option<String>) -> Self {
        VerifierConfig {
            issuers: vec![TrustedIssuer { issuer: issuer.into(), jwks_url, audiences }],
            leeway: Duration::from_secs(60),
            jwks_refresh: Duration::from_secs(300),
            jwks_max_stale: Duration::from_secs(6 * 3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            jwks_connect_timeout: Duration::from_millis(2000),
            jwks_timeout: Duration::from_millis(5000),
            jwks_max_bytes: 256 * 1024,
            token_cache_bytes: 4 * 1024 * 1024,
            max_token_bytes: 8192,
            revocation: RevocationConfig::default(),
        }
    }

    /// Reads the `AUTH_*` variables (table in the module docs).
    ///
    /// # Errors
    /// The first missing or invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let issuers = match (s.get("AUTH_CONFIG_FILE"), s.get("AUTH_ISSUER")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "AUTH_CONFIG_FILE",
                    "set either AUTH_CONFIG_FILE or AUTH_ISSUER, not both",
                ));
            }
            (Some(path), None) => {
                for var in ["AUTH_AUDIENCE", "AUTH_JWKS_URL"] {
                    if s.get(var).is_some() {
                        return Err(ConfigError::new(
                            var,
                            "not used with AUTH_CONFIG_FILE: list audiences in the file",
                        ));
                    }
                }
                read_issuers_file(Path::new(&path))?.issuers
            }
            (None, Some(issuer)) => {
                let audiences = s.list("AUTH_AUDIENCE");
                if audiences.is_empty() {
                    return Err(ConfigError::new(
                        "AUTH_AUDIENCE",
                        "required: the audiences this service accepts, comma-separated",
                    ));
                }
                vec![TrustedIssuer { issuer, jwks_url: s.get("AUTH_JWKS_URL"), audiences }]
            }
            (None, None) => {
                return Err(ConfigError::new("AUTH_ISSUER", "required (or AUTH_CONFIG_FILE for several issuers)"));
            }
        };
        let mut cfg = VerifierConfig::for_issuer("", Vec::new(), None);
        cfg.issuers = issuers;
        cfg.leeway = s.secs("AUTH_LEEWAY_SECS", 60, 0..=600)?;
        cfg.jwks_refresh = s.secs("AUTH_JWKS_REFRESH_SECS", 300, 10..=86_400)?;
        cfg.jwks_max_stale = s.secs("AUTH_JWKS_MAX_STALE_SECS", 6 * 3600, 60..=7 * 86_400)?;
        cfg.unknown_kid_cooldown = s.secs("AUTH_JWKS_COOLDOWN_SECS", 30, 1..=3600)?;
        cfg.jwks_connect_timeout = s.millis("AUTH_JWKS_CONNECT_TIMEOUT_MS", 2000, 10..=60_000)?;
        cfg.jwks_timeout = s.millis("AUTH_JWKS_TIMEOUT_MS", 5000, 10..=120_000)?;
        cfg.jwks_max_bytes = s.u64_in("AUTH_JWKS_MAX_BYTES", 256 * 1024, 1024..=16 * 1024 * 1024)? as usize;
        cfg.token_cache_bytes = s.u64_in("AUTH_TOKEN_CACHE_BYTES", 4 * 1024 * 1024, 0..=4 * 1024 * 1024 * 1024)?;
        cfg.max_token_bytes = s.u64_in("AUTH_MAX_TOKEN_BYTES", 8192, 256..=65_536)? as usize;
        if cfg.jwks_max_stale < cfg.jwks_refresh {
            return Err(ConfigError::new("AUTH_JWKS_MAX_STALE_SECS", "must be at least AUTH_JWKS_REFRESH_SECS"));
        }
        cfg.validate()?;
        cfg.revocation = RevocationConfig::from_settings(s, &cfg.issuers)?;
        Ok(cfg)
    }

    /// Reads the process environment. See [`VerifierConfig::from_settings`].
    ///
    /// # Errors
    /// The first missing or invalid variable, by name.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_env())
    }

    /// Checks issuers, audiences and JWKS URLs.
    ///
    /// # Errors
    /// The first problem found, naming the variable it most likely came from.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::new("AUTH_ISSUER", "at least one trusted issuer is required"));
        }
        for (i, iss) in self.issuers.iter().enumerate() {
            if iss.issuer.trim().is_empty() {
                return Err(ConfigError::new("AUTH_ISSUER", "must not be empty"));
            }
            if self.issuers[..i].iter().any(|o| o.issuer == iss.issuer) {
                return Err(ConfigError::new("AUTH_CONFIG_FILE", format!("issuer {:?} is listed twice", iss.issuer)));
            }
            if iss.audiences.is_empty() || iss.audiences.iter().any(|a| a.trim().is_empty()) {
                return Err(ConfigError::new(
                    "AUTH_AUDIENCE",
                    format!("issuer {:?} needs at least one non-empty audience", iss.issuer),
                ));
            }
            let var = if iss.jwks_url.is_some() { "AUTH_JWKS_URL" } else { "AUTH_ISSUER" };
            check_jwks_url(&iss.jwks_url()).map_err(|m| ConfigError::new(var, m))?;
        }
        Ok(())
    }
}

/// A JWKS must come over https; plain http only from this machine.
fn check_jwks_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!("{url:?}: keys must be fetched over https (http only for loopback)"))
            }
        }
        other => Err(format!("{url:?}: unsupported scheme {other:?}")),
    }
}

fn read_issuers_file(path: &Path) -> Result<IssuersFile, ConfigError> {
    let var = "AUTH_CONFIG_FILE";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(var, format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| ConfigError::new(var, format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<VerifierConfig, ConfigError> {
        VerifierConfig::from_settings(&Settings::from_pairs(pairs))
    }

    #[test]
    fn minimal_env_gets_defaults() {
        let c = load(&[("AUTH_ISSUER", "https://auth.example.com/"), ("AUTH_AUDIENCE", "api, web")]).unwrap();
        assert_eq!(c.issuers[0].audiences, vec!["api", "web"]);
        assert_eq!(c.issuers[0].jwks_url(), "https://auth.example.com/.well-known/jwks.json");
        assert_eq!(c.leeway, Duration::from_secs(60));
        assert_eq!(c.unknown_kid_cooldown, Duration::from_secs(30));
    }

    #[test]
    fn missing_issuer_names_the_variable() {
        assert_eq!(load(&[]).unwrap_err().var, "AUTH_ISSUER");
        assert_eq!(load(&[("AUTH_ISSUER", "https://a")]).unwrap_err().var, "AUTH_AUDIENCE");
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let base = [("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api")];
        let err = load(&[base[0], base[1], ("AUTH_LEEWAY_SECS", "sixty")]).unwrap_err();
        assert_eq!(err.var, "AUTH_LEEWAY_SECS");
        assert!(err.to_string().contains("sixty"));
        assert_eq!(load(&[base[0], base[1], ("AUTH_LEEWAY_SECS", "-1")]).unwrap_err().var, "AUTH_LEEWAY_SECS");
        assert_eq!(load(&[base[0], base[1], ("AUTH_LEEWAY_SECS", "100000")]).unwrap_err().var, "AUTH_LEEWAY_SECS");
    }

    #[test]
    fn plain_http_jwks_only_on_loopback() {
        let base = [("AUTH_ISSUER", "https://a"), ("AUTH_AUDIENCE", "api")];
        assert!(load(&[base[0], base[1], ("AUTH_JWKS_URL", "http://127.0.0.1:9000/jwks.json")]).is_ok());
        assert!(load(&[base[0], base[1], ("AUTH_JWKS_URL", "http://localhost/jwks.json")]).is_ok());
        let err = load(&[base[0], base[1], ("AUTH_JWKS_URL", "http://keys.example.com/jwks.json")]).unwrap_err();
        assert_eq!(err.var, "AUTH_JWKS_URL");
        assert_eq!(load(&[base[0], base[1], ("AUTH_JWKS_URL", "not a url")]).unwrap_err().var, "AUTH_JWKS_URL");
        // The derived URL is checked too, and the error names AUTH_ISSUER.
        assert_eq!(load(&[("AUTH_ISSUER", "issuer-without-scheme"), base[1]]).unwrap_err().var, "AUTH_ISSUER");
    }

    #[test]
    fn config_file_lists_several_issuers() {
        let dir = std::env::temp_dir().join(format!("token-core-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issuers.json");
        std::fs::write(
            &path,
            r#"{"issuers":[{"issuer":"https://a","audiences":["api"]},
                {"issuer":"https://b","audiences":["x","y"],"jwks_url":"https://b/keys"}]}"#,
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = load(&[("AUTH_CONFIG_FILE", p), ("REVOCATION_FEED_URL", "off")]).unwrap();
        assert_eq!(c.issuers.len(), 2);
        assert_eq!(c.issuers[1].jwks_url(), "https://b/keys");
        assert_eq!(load(&[("AUTH_CONFIG_FILE", p), ("AUTH_ISSUER", "https://a")]).unwrap_err().var, "AUTH_CONFIG_FILE");

        std::fs::write(&path, r#"{"issuers":[{"issuer":"https://a","audience":["api"]}]}"#).unwrap();
        let err = load(&[("AUTH_CONFIG_FILE", p)]).unwrap_err();
        assert_eq!(err.var, "AUTH_CONFIG_FILE");
        assert!(err.message.contains("unknown field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn revocation_settings_default_to_the_issuers_feed_and_name_bad_values() {
        let base = [("AUTH_ISSUER", "https://a.example/"), ("AUTH_AUDIENCE", "api")];
        let c = load(&base).unwrap().revocation;
        assert_eq!(c.feed_url.as_deref(), Some("https://a.example/revocations"));
        assert_eq!(c.poll_interval, Duration::from_secs(1));
        assert_eq!(c.max_lag, Duration::from_secs(30));
        assert_eq!(c.stale_policy, StalePolicy::Serve);
        let c = load(&[
            base[0],
            base[1],
            ("REVOCATION_FEED_URL", "off"),
            ("REVOCATION_POLL_INTERVAL", "500ms"),
            ("REVOCATION_MAX_LAG", "10s"),
            ("REVOCATION_STALE_POLICY", "refuse"),
        ])
        .unwrap()
        .revocation;
        assert_eq!(c.feed_url, None);
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.max_lag, Duration::from_secs(10));
        assert_eq!(c.stale_policy, StalePolicy::Refuse);
        for (var, bad) in [
            ("REVOCATION_FEED_URL", "http://feed.example.com/revocations"),
            ("REVOCATION_FEED_URL", "nope"),
            ("REVOCATION_POLL_INTERVAL", "fast"),
            ("REVOCATION_POLL_INTERVAL", "1ms"),
            ("REVOCATION_MAX_LAG", "1s"),
            ("REVOCATION_STALE_POLICY", "maybe"),
            ("REVOCATION_MAX_ENTRIES", "10"),
            ("REVOCATION_TIMEOUT_MS", "x"),
        ] {
            let err = load(&[base[0], base[1], (var, bad)]).unwrap_err();
            assert_eq!(err.var, var, "{bad}: {err}");
        }
        let err = load(&[base[0], base[1], ("REVOCATION_POLL_INTERVAL", "60s")]).unwrap_err();
        assert_eq!(err.var, "REVOCATION_MAX_LAG", "the lag bound must exceed the poll interval");
    }

    #[test]
    fn several_issuers_need_an_explicit_feed() {
        let dir = std::env::temp_dir().join(format!("token-core-rev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issuers.json");
        std::fs::write(
            &path,
            r#"{"issuers":[{"issuer":"https://a","audiences":["api"]},{"issuer":"https://b","audiences":["x"]}]}"#,
        )
        .unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(load(&[("AUTH_CONFIG_FILE", p)]).unwrap_err().var, "REVOCATION_FEED_URL");
        let c = load(&[("AUTH_CONFIG_FILE", p), ("REVOCATION_FEED_URL", "https://a/revocations")]).unwrap();
        assert_eq!(c.revocation.feed_url.as_deref(), Some("https://a/revocations"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_age_below_refresh_is_refused() {
        let err = load(&[
            ("AUTH_ISSUER", "https://a"),
            ("AUTH_AUDIENCE", "api"),
            ("AUTH_JWKS_REFRESH_SECS", "600"),
            ("AUTH_JWKS_MAX_STALE_SECS", "300"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "AUTH_JWKS_MAX_STALE_SECS");
    }
}
