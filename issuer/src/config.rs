//! The issuer's configuration: read once at start-up, validated there.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ISSUER_URL` | required | `iss` of issued tokens and base of the JWKS URL (https, or http on loopback) |
//! | `ISSUER_AUDIENCE` | required | `aud` of issued tokens, comma-separated |
//! | `ISSUER_STORE` | `sqlite` (local), `dynamodb` (Lambda) | which store |
//! | `ISSUER_DATA_DIR` | `./data` | SQLite file and locally generated keys |
//! | `ISSUER_USERS_TABLE` / `ISSUER_REFRESH_TABLE` / `ISSUER_REVOCATIONS_TABLE` | `Users` / `RefreshTokens` / `Revocations` | DynamoDB tables |
//! | `DYNAMODB_ENDPOINT` | unset | DynamoDB endpoint override |
//! | `ISSUER_SIGNING_KEY_SECRET_ARN` | unset | Secrets Manager secret with the key ring (required on Lambda) |
//! | `ISSUER_SIGNING_ALG` | `RS256` | algorithm of locally generated keys |
//! | `ISSUER_DEFAULT_SCOPES` | `openid` | scopes of new users, space or comma separated |
//! | `ISSUER_CLIENT_ID` | `first-party` | `client_id` of issued access tokens (RFC 9068 requires one): the first-party app that logs users in |
//! | `ISSUER_ACCESS_TTL_SECS` | 900 | access-token lifetime (60..=86400) |
//! | `ISSUER_REFRESH_TTL_SECS` | 2592000 | refresh-token lifetime (60..=31536000) |
//! | `ISSUER_SESSION_MAX_SECS` | 7776000 | absolute lifetime of a token family (60..=63072000) |
//! | `ISSUER_REUSE_GRACE_SECS` | 0 | grace for presenting a just-rotated token (0: off; ..=300) |
//! | `ISSUER_ALLOWED_ORIGINS` | empty | Origins allowed on the POST routes (CSRF) and by CORS |
//! | `ISSUER_COOKIE_PATH_PREFIX` | empty | prefix of the cookie paths and routes (e.g. `/prod`) |
//! | `ISSUER_LISTEN` | `127.0.0.1:8080` | local server address |
//! | `ISSUER_ARGON2_MEMORY_KIB` | 19456 | argon2id memory (at least 19456) |
//! | `ISSUER_ARGON2_ITERATIONS` | 2 | argon2id passes (at least 2) |
//! | `ISSUER_ARGON2_PARALLELISM` | 1 | argon2id lanes |
//! | `ISSUER_HASH_CONCURRENCY` | CPUs | password hashes computed at once |
//! | `ISSUER_HASH_QUEUE_MS` | 1000 | longest wait for a hashing slot before 503 |
//! | `ISSUER_JWKS_MAX_AGE_SECS` | 300 | `Cache-Control: max-age` of the JWKS |
//! | `ISSUER_MAX_CONNECTIONS` | 1024 | local server: open connections |
//! | `ISSUER_HEADER_TIMEOUT_MS` | 10000 | local server: time to read request headers |
//! | `ISSUER_BODY_TIMEOUT_MS` | 10000 | local server: time to read a request body |
//! | `ISSUER_SQLITE_SYNC` | `normal` | `normal` (survives a killed process) or `full` (survives power loss) |
//! | `ISSUER_SQLITE_BUSY_MS` | 2000 | SQLite busy timeout |
//! | `ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS` | 5 | login attempts on one account from one client address per window |
//! | `ISSUER_LOGIN_MAX_PER_ADDRESS` | 50 | login attempts from one client address (IPv6: /64), all accounts, per window |
//! | `ISSUER_LOGIN_WINDOW_SECS` | 900 | window of the two counters above |
//! | `ISSUER_LOGIN_MAX_PER_ACCOUNT` | 20 | login attempts on one account, all addresses, per account window (the slow-down ceiling) |
//! | `ISSUER_LOGIN_ACCOUNT_WINDOW_SECS` | 60 | window of the per-account counter |
//! | `ISSUER_ATTEMPT_KEY` | derived from the signing keys | base64url secret (32+ bytes) keying the attempt counters |
//! | `ISSUER_CLIENT_IP_HEADER` | unset | local server behind a trusted proxy: the header carrying the client address (else the socket peer) |
//! | `ISSUER_REQUIRE_VERIFIED_EMAIL` | `true` | a registration becomes an account only once its address is verified (`false`: at once, no verification mail; for tests and migrations) |
//! | `ISSUER_VERIFY_TTL_SECS` | 86400 | lifetime of a verification link (600..=604800); an unverified registration expires with it |
//! | `ISSUER_RESET_TTL_SECS` | 900 | lifetime of a password reset link (60..=86400) |
//! | `ISSUER_RECOVERY_MAX_PER_CLIENT` | 20 | sign-ups, reset requests, verifications and resets from one client address (IPv6: /64) per recovery window |
//! | `ISSUER_MAIL_MAX_PER_ADDRESS` | 5 | messages sent to one email address (sign-up and reset requests) per recovery window |
//! | `ISSUER_RECOVERY_WINDOW_SECS` | 3600 | window of the two counters above |
//! | `ISSUER_PRODUCT_NAME` | the host of `ISSUER_URL` | product name in messages (1 to 64 characters) |
//! | `ISSUER_LINK_BASE` | `ISSUER_URL` | base URL of the pages that mail links open (`/verify-email`, `/reset-password`) |
//! | `ISSUER_MAIL` | `outbox` (local), `ses` (Lambda) | mail transport: `outbox` (JSON files in `<data dir>/outbox`) or `ses` (Amazon SES v2) |
//! | `ISSUER_MAIL_FROM` | required with `ses` | sender: `addr@example.com` or `Name <addr@example.com>`; the address must belong to a verified SES identity |
//! | `ISSUER_SES_CONFIGURATION_SET` | unset | SES configuration set of every message (event publishing, suppression) |
//! | `ISSUER_MAIL_TIMEOUT_MS` | 3000 | longest SES send, retries included (100..=30000) |
//! | `SES_ENDPOINT` | unset | SES endpoint override (tests: moto); the SDK also honours `AWS_ENDPOINT_URL` |
//! | `ISSUER_LEGACY_BCRYPT_COST` | unset | the store holds imported bcrypt hashes of this cost (4..=31): every login then does one bcrypt at this cost too, so imported accounts cost the same to check as the others |

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use token_core::{Algorithm, ConfigError, Settings};

use crate::store::sqlite::Synchronous;

/// Which store backs the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite file.
    Sqlite,
    /// DynamoDB.
    DynamoDb,
}

/// Where the issuer runs: decides defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The local server (`issuer serve`).
    Local,
    /// The Lambda function.
    Lambda,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB. At least 19456 (OWASP).
    pub memory_kib: u32,
    /// Passes. At least 2.
    pub iterations: u32,
    /// Lanes. At least 1.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Argon2Cost { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// Everything the issuer reads from the environment. Field docs give defaults.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// `iss` of issued tokens (`ISSUER_URL`), exactly as configured.
    pub issuer_url: String,
    /// `aud` of issued tokens (`ISSUER_AUDIENCE`), at least one.
    pub audiences: Vec<String>,
    /// `ISSUER_STORE`: SQLite locally, DynamoDB on Lambda by default.
    pub store: StoreKind,
    /// `ISSUER_DATA_DIR`: `./data`.
    pub data_dir: PathBuf,
    /// `ISSUER_USERS_TABLE`: `Users`.
    pub users_table: String,
    /// `ISSUER_REFRESH_TABLE`: `RefreshTokens`.
    pub refresh_table: String,
    /// `ISSUER_REVOCATIONS_TABLE`: `Revocations`.
    pub revocations_table: String,
    /// `DYNAMODB_ENDPOINT`: unset.
    pub dynamodb_endpoint: Option<String>,
    /// `ISSUER_SIGNING_KEY_SECRET_ARN`: required on Lambda.
    pub signing_key_secret_arn: Option<String>,
    /// `ISSUER_SIGNING_ALG`: RS256.
    pub signing_alg: Algorithm,
    /// `ISSUER_DEFAULT_SCOPES`: `openid`, normalised to space-separated.
    pub default_scopes: String,
    /// `ISSUER_CLIENT_ID`: `first-party`.
    pub client_id: String,
    /// `ISSUER_ACCESS_TTL_SECS`: 900.
    pub access_ttl_secs: u64,
    /// `ISSUER_REFRESH_TTL_SECS`: 30 days.
    pub refresh_ttl_secs: u64,
    /// `ISSUER_SESSION_MAX_SECS`: 90 days.
    pub session_max_secs: u64,
    /// `ISSUER_REUSE_GRACE_SECS`: 0 (off).
    pub reuse_grace_secs: u64,
    /// `ISSUER_ALLOWED_ORIGINS`: normalised (`scheme://host[:port]`, lowercase).
    pub allowed_origins: Vec<String>,
    /// `ISSUER_COOKIE_PATH_PREFIX`: empty, or `/stage` (no trailing slash).
    pub cookie_path_prefix: String,
    /// `ISSUER_LISTEN`: 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// `ISSUER_ARGON2_*`.
    pub argon2: Argon2Cost,
    /// `ISSUER_HASH_CONCURRENCY`: the number of CPUs.
    pub hash_concurrency: usize,
    /// `ISSUER_HASH_QUEUE_MS`: 1 s.
    pub hash_queue_wait: Duration,
    /// `ISSUER_JWKS_MAX_AGE_SECS`: 300.
    pub jwks_max_age_secs: u64,
    /// `ISSUER_MAX_CONNECTIONS`: 1024.
    pub max_connections: usize,
    /// `ISSUER_HEADER_TIMEOUT_MS`: 10 s.
    pub header_timeout: Duration,
    /// `ISSUER_BODY_TIMEOUT_MS`: 10 s.
    pub body_timeout: Duration,
    /// `ISSUER_SQLITE_SYNC`: normal.
    pub sqlite_synchronous: Synchronous,
    /// `ISSUER_SQLITE_BUSY_MS`: 2 s.
    pub sqlite_busy_timeout: Duration,
    /// `ISSUER_LEGACY_BCRYPT_COST`: unset (no imported bcrypt hashes).
    pub legacy_bcrypt_cost: Option<u32>,
    /// `ISSUER_LOGIN_*`: the attempt counters' limits and windows.
    pub attempt_policy: crate::attempts::AttemptPolicy,
    /// `ISSUER_ATTEMPT_KEY`: unset (derived from the signing-key ring).
    pub attempt_key: Option<Vec<u8>>,
    /// `ISSUER_CLIENT_IP_HEADER`: unset (the socket peer is the client).
    pub client_ip_header: Option<http::HeaderName>,
    /// `ISSUER_REQUIRE_VERIFIED_EMAIL`: true.
    pub require_verified_email: bool,
    /// `ISSUER_VERIFY_TTL_SECS`: 24 h.
    pub verify_ttl_secs: u64,
    /// `ISSUER_RESET_TTL_SECS`: 15 min.
    pub reset_ttl_secs: u64,
    /// `ISSUER_RECOVERY_*`, `ISSUER_MAIL_MAX_PER_ADDRESS`.
    pub recovery_limits: RecoveryLimits,
    /// `ISSUER_PRODUCT_NAME`, `ISSUER_LINK_BASE`.
    pub branding: crate::mail::Branding,
    /// `ISSUER_MAIL` and its settings: the outbox locally, SES on Lambda.
    pub mail: MailTransportConfig,
}

/// Which transport sends mail (`ISSUER_MAIL`), with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransportConfig {
    /// `outbox`: JSON files in `<data dir>/outbox` (the default locally).
    Outbox,
    /// `ses`: Amazon SES v2 `SendEmail` (the default on Lambda).
    Ses {
        /// `ISSUER_MAIL_FROM` (required): the sender, `addr` or
        /// `Name <addr>`, normalised as sent (see [`crate::mail::Sender`]).
        from: String,
        /// `ISSUER_SES_CONFIGURATION_SET`: unset.
        configuration_set: Option<String>,
        /// `SES_ENDPOINT`: unset (the regional endpoint, or
        /// `AWS_ENDPOINT_URL` through the SDK).
        endpoint: Option<String>,
        /// `ISSUER_MAIL_TIMEOUT_MS`: 3 s per send, retries included.
        timeout: Duration,
    },
}

/// Limits on the account-recovery routes (sign-up, verification, reset
/// request, reset), counted in one window per client address and per
/// recipient address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryLimits {
    /// Requests from one client address (IPv6: /64) per window.
    pub per_client: u32,
    /// Messages to one email address per window.
    pub mail_per_address: u32,
    /// The window in seconds.
    pub window_secs: u64,
}

impl Default for RecoveryLimits {
    fn default() -> Self {
        RecoveryLimits { per_client: 20, mail_per_address: 5, window_secs: 3600 }
    }
}

impl IssuerConfig {
    /// Reads and validates every `ISSUER_*` setting.
    ///
    /// # Errors
    /// The first missing or invalid setting, by name.
    pub fn from_settings(s: &Settings<'_>, shape: Shape) -> Result<Self, ConfigError> {
        let issuer_url = s.required("ISSUER_URL")?;
        check_issuer_url(&issuer_url).map_err(|m| ConfigError::new("ISSUER_URL", m))?;
        let audiences = s.list("ISSUER_AUDIENCE");
        if audiences.is_empty() {
            return Err(ConfigError::new(
                "ISSUER_AUDIENCE",
                "required: the audiences of issued tokens, comma-separated",
            ));
        }
        let store = match s.get("ISSUER_STORE").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => match shape {
                Shape::Local => StoreKind::Sqlite,
                Shape::Lambda => StoreKind::DynamoDb,
            },
            Some("sqlite") => StoreKind::Sqlite,
            Some("dynamodb") => StoreKind::DynamoDb,
            Some(other) => {
                return Err(ConfigError::new("ISSUER_STORE", format!("expected sqlite or dynamodb, got {other:?}")));
            }
        };
        let signing_alg = match s.get("ISSUER_SIGNING_ALG") {
            None => Algorithm::RS256,
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new("ISSUER_SIGNING_ALG", format!("expected RS256, ES256 or EdDSA, got {v:?}"))
            })?,
        };
        let signing_key_secret_arn = s.get("ISSUER_SIGNING_KEY_SECRET_ARN");
        if shape == Shape::Lambda && signing_key_secret_arn.is_none() {
            return Err(ConfigError::new(
                "ISSUER_SIGNING_KEY_SECRET_ARN",
                "required on Lambda: the Secrets Manager secret holding the signing keys",
            ));
        }
        let default_scopes = parse_scopes(&s.get("ISSUER_DEFAULT_SCOPES").unwrap_or_else(|| "openid".into()))
            .map_err(|m| ConfigError::new("ISSUER_DEFAULT_SCOPES", m))?;
        let mut allowed_origins = Vec::new();
        for o in s.list("ISSUER_ALLOWED_ORIGINS") {
            allowed_origins.push(normalize_origin(&o).map_err(|m| ConfigError::new("ISSUER_ALLOWED_ORIGINS", m))?);
        }
        let cookie_path_prefix = s.get("ISSUER_COOKIE_PATH_PREFIX").unwrap_or_default();
        check_path_prefix(&cookie_path_prefix).map_err(|m| ConfigError::new("ISSUER_COOKIE_PATH_PREFIX", m))?;
        let listen = match s.get("ISSUER_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new("ISSUER_LISTEN", format!("expected host:port (e.g. 127.0.0.1:8080), got {v:?}"))
            })?,
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as u64;
        let u32_in = |var: &str, default: u64, range| -> Result<u32, ConfigError> {
            s.u64_in(var, default, range).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let sqlite_synchronous = match s.get("ISSUER_SQLITE_SYNC").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("normal") => Synchronous::Normal,
            Some("full") => Synchronous::Full,
            Some(other) => {
                return Err(ConfigError::new("ISSUER_SQLITE_SYNC", format!("expected normal or full, got {other:?}")));
            }
        };
        let cfg = IssuerConfig {
            issuer_url,
            audiences,
            store,
            data_dir: PathBuf::from(s.get("ISSUER_DATA_DIR").unwrap_or_else(|| "./data".into())),
            users_table: s.get("ISSUER_USERS_TABLE").unwrap_or_else(|| "Users".into()),
            refresh_table: s.get("ISSUER_REFRESH_TABLE").unwrap_or_else(|| "RefreshTokens".into()),
            revocations_table: s.get("ISSUER_REVOCATIONS_TABLE").unwrap_or_else(|| "Revocations".into()),
            dynamodb_endpoint: s.get("DYNAMODB_ENDPOINT"),
            signing_key_secret_arn,
            signing_alg,
            default_scopes,
            client_id: {
                let c = s.get("ISSUER_CLIENT_ID").unwrap_or_else(|| "first-party".into());
                if c.len() > 128 || !c.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::new("ISSUER_CLIENT_ID", "expected up to 128 visible ASCII characters"));
                }
                c
            },
            access_ttl_secs: s.u64_in("ISSUER_ACCESS_TTL_SECS", 900, 60..=86_400)?,
            refresh_ttl_secs: s.u64_in("ISSUER_REFRESH_TTL_SECS", 2_592_000, 60..=31_536_000)?,
            session_max_secs: s.u64_in("ISSUER_SESSION_MAX_SECS", 7_776_000, 60..=63_072_000)?,
            reuse_grace_secs: s.u64_in("ISSUER_REUSE_GRACE_SECS", 0, 0..=300)?,
            allowed_origins,
            cookie_path_prefix,
            listen,
            argon2: Argon2Cost {
                memory_kib: u32_in("ISSUER_ARGON2_MEMORY_KIB", 19_456, 19_456..=4 * 1024 * 1024)?,
                iterations: u32_in("ISSUER_ARGON2_ITERATIONS", 2, 2..=64)?,
                parallelism: u32_in("ISSUER_ARGON2_PARALLELISM", 1, 1..=16)?,
            },
            hash_concurrency: s.u64_in("ISSUER_HASH_CONCURRENCY", cpus.clamp(1, 64), 1..=256)? as usize,
            hash_queue_wait: s.millis("ISSUER_HASH_QUEUE_MS", 1000, 0..=60_000)?,
            jwks_max_age_secs: s.u64_in("ISSUER_JWKS_MAX_AGE_SECS", 300, 0..=86_400)?,
            max_connections: s.u64_in("ISSUER_MAX_CONNECTIONS", 1024, 1..=65_536)? as usize,
            header_timeout: s.millis("ISSUER_HEADER_TIMEOUT_MS", 10_000, 100..=300_000)?,
            body_timeout: s.millis("ISSUER_BODY_TIMEOUT_MS", 10_000, 100..=300_000)?,
            sqlite_synchronous,
            sqlite_busy_timeout: s.millis("ISSUER_SQLITE_BUSY_MS", 2000, 0..=60_000)?,
            legacy_bcrypt_cost: match s.get("ISSUER_LEGACY_BCRYPT_COST") {
                None => None,
                Some(_) => Some(u32_in("ISSUER_LEGACY_BCRYPT_COST", 10, 4..=31)?),
            },
            attempt_policy: crate::attempts::AttemptPolicy {
                per_account_address: u32_in("ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS", 5, 1..=1000)?,
                per_address: u32_in("ISSUER_LOGIN_MAX_PER_ADDRESS", 50, 1..=1_000_000)?,
                window_secs: s.u64_in("ISSUER_LOGIN_WINDOW_SECS", 900, 1..=86_400)?,
                per_account: u32_in("ISSUER_LOGIN_MAX_PER_ACCOUNT", 20, 1..=1_000_000)?,
                account_window_secs: s.u64_in("ISSUER_LOGIN_ACCOUNT_WINDOW_SECS", 60, 1..=86_400)?,
            },
            attempt_key: match s.get("ISSUER_ATTEMPT_KEY") {
                None => None,
                Some(v) => {
                    let key = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.trim())
                        .ok()
                        .filter(|k| k.len() >= 32)
                        .ok_or_else(|| {
                            ConfigError::new(
                                "ISSUER_ATTEMPT_KEY",
                                "expected at least 32 bytes, base64url without padding",
                            )
                        })?;
                    Some(key)
                }
            },
            client_ip_header: match s.get("ISSUER_CLIENT_IP_HEADER") {
                None => None,
                Some(v) => {
                    Some(http::HeaderName::try_from(v.trim()).map_err(|_| {
                        ConfigError::new("ISSUER_CLIENT_IP_HEADER", format!("{v:?} is not a header name"))
                    })?)
                }
            },
            require_verified_email: match s
                .get("ISSUER_REQUIRE_VERIFIED_EMAIL")
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(ConfigError::new(
                        "ISSUER_REQUIRE_VERIFIED_EMAIL",
                        format!("expected true or false, got {other:?}"),
                    ));
                }
            },
            verify_ttl_secs: s.u64_in("ISSUER_VERIFY_TTL_SECS", 86_400, 600..=604_800)?,
            reset_ttl_secs: s.u64_in("ISSUER_RESET_TTL_SECS", 900, 60..=86_400)?,
            recovery_limits: RecoveryLimits {
                per_client: u32_in("ISSUER_RECOVERY_MAX_PER_CLIENT", 20, 1..=1_000_000)?,
                mail_per_address: u32_in("ISSUER_MAIL_MAX_PER_ADDRESS", 5, 1..=1000)?,
                window_secs: s.u64_in("ISSUER_RECOVERY_WINDOW_SECS", 3600, 1..=86_400)?,
            },
            branding: crate::mail::Branding { product: String::new(), link_base: String::new() },
            mail: mail_transport(s, shape)?,
        };
        let mut cfg = cfg;
        cfg.branding = crate::mail::Branding {
            product: match s.get("ISSUER_PRODUCT_NAME") {
                None => cfg
                    .issuer_url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_owned))
                    .unwrap_or_else(|| "the service".to_owned()),
                Some(p) if !p.trim().is_empty() && p.chars().count() <= 64 && !p.chars().any(char::is_control) => {
                    p.trim().to_owned()
                }
                Some(_) => {
                    return Err(ConfigError::new(
                        "ISSUER_PRODUCT_NAME",
                        "expected 1 to 64 characters without control characters",
                    ));
                }
            },
            link_base: match s.get("ISSUER_LINK_BASE") {
                None => cfg.issuer_url.trim_end_matches('/').to_owned(),
                Some(v) => {
                    check_issuer_url(&v).map_err(|m| ConfigError::new("ISSUER_LINK_BASE", m))?;
                    v.trim_end_matches('/').to_owned()
                }
            },
        };
        Ok(cfg)
    }

    /// Reads the process environment. See [`IssuerConfig::from_settings`].
    ///
    /// # Errors
    /// The first missing or invalid variable, by name.
    pub fn from_env(shape: Shape) -> Result<Self, ConfigError> {
        Self::from_settings(&Settings::from_env(), shape)
    }

    /// A local configuration with every default, for tests and tools.
    ///
    /// # Errors
    /// When `issuer_url` is not acceptable.
    pub fn local(issuer_url: &str, audience: &str, data_dir: PathBuf) -> Result<Self, ConfigError> {
        let dir = data_dir.to_string_lossy().into_owned();
        let pairs = [("ISSUER_URL", issuer_url), ("ISSUER_AUDIENCE", audience), ("ISSUER_DATA_DIR", dir.as_str())];
        Self::from_settings(
            &Settings::new(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())),
            Shape::Local,
        )
    }

    /// The SQLite store's options from this configuration.
    pub fn sqlite_options(&self) -> crate::store::sqlite::SqliteOptions {
        crate::store::sqlite::SqliteOptions {
            busy_timeout: self.sqlite_busy_timeout,
            synchronous: self.sqlite_synchronous,
        }
    }

    /// The DynamoDB store's settings from this configuration (tables,
    /// endpoint override; default timeouts and retries).
    pub fn dynamo_config(&self) -> crate::store::dynamo::DynamoConfig {
        crate::store::dynamo::DynamoConfig {
            users_table: self.users_table.clone(),
            refresh_table: self.refresh_table.clone(),
            revocations_table: self.revocations_table.clone(),
            endpoint: self.dynamodb_endpoint.clone(),
            ..crate::store::dynamo::DynamoConfig::default()
        }
    }

    /// The SES transport's settings from this configuration (sender,
    /// configuration set, endpoint, timeouts), if `ISSUER_MAIL=ses`.
    pub fn ses_config(&self) -> Option<crate::mail::SesConfig> {
        match &self.mail {
            MailTransportConfig::Outbox => None,
            MailTransportConfig::Ses { from, configuration_set, endpoint, timeout } => Some(
                crate::mail::SesConfig {
                    configuration_set: configuration_set.clone(),
                    endpoint: endpoint.clone(),
                    ..crate::mail::SesConfig::new(from.clone())
                }
                .with_timeout(*timeout),
            ),
        }
    }

    /// `{ISSUER_URL}/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        token_core::config::jwks_url_of(&self.issuer_url)
    }
}

/// `ISSUER_MAIL` and the settings of the chosen transport.
fn mail_transport(s: &Settings<'_>, shape: Shape) -> Result<MailTransportConfig, ConfigError> {
    let timeout = s.millis("ISSUER_MAIL_TIMEOUT_MS", 3000, 100..=30_000)?;
    let ses = match s.get("ISSUER_MAIL").as_deref().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => shape == Shape::Lambda,
        Some("outbox") => false,
        Some("ses") => true,
        Some(other) => {
            return Err(ConfigError::new("ISSUER_MAIL", format!("expected outbox or ses, got {other:?}")));
        }
    };
    if !ses {
        return Ok(MailTransportConfig::Outbox);
    }
    let from = match s.get("ISSUER_MAIL_FROM") {
        None => {
            return Err(ConfigError::new(
                "ISSUER_MAIL_FROM",
                "required with ISSUER_MAIL=ses: the sender, e.g. no-reply@example.com or `Name <no-reply@example.com>`",
            ));
        }
        Some(v) => crate::mail::Sender::parse(&v).map_err(|m| ConfigError::new("ISSUER_MAIL_FROM", m))?.header(),
    };
    let configuration_set = match s.get("ISSUER_SES_CONFIGURATION_SET") {
        None => None,
        Some(v) if v.trim().is_empty() => None,
        Some(v) => {
            let v = v.trim();
            if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ConfigError::new(
                    "ISSUER_SES_CONFIGURATION_SET",
                    "expected a configuration set name: up to 64 letters, digits, - and _",
                ));
            }
            Some(v.to_owned())
        }
    };
    let endpoint = match s.get("SES_ENDPOINT") {
        None => None,
        Some(v) if v.trim().is_empty() => None,
        Some(v) => {
            let v = v.trim();
            let ok = v
                .parse::<http::Uri>()
                .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
            if !ok {
                return Err(ConfigError::new("SES_ENDPOINT", format!("{v:?} is not an http(s) URL")));
            }
            Some(v.to_owned())
        }
    };
    Ok(MailTransportConfig::Ses { from, configuration_set, endpoint, timeout })
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `iss` must be an https URL (plain http only on loopback), without query
/// or fragment: verifiers derive the JWKS URL from it.
fn check_issuer_url(v: &str) -> Result<(), String> {
    let uri: http::Uri = v.parse().map_err(|_| format!("{v:?} is not a URL"))?;
    let host = uri.host().ok_or_else(|| format!("{v:?} has no host"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback_host(host) => {}
        Some("http") => return Err(format!("{v:?}: must be https (http only for loopback)")),
        _ => return Err(format!("{v:?}: expected an https URL")),
    }
    if uri.query().is_some() || v.contains('#') {
        return Err(format!("{v:?}: no query or fragment allowed"));
    }
    Ok(())
}

/// An origin as browsers send it: `scheme://host[:port]`, lowercase.
///
/// # Errors
/// When `v` is not an http(s) origin.
pub fn normalize_origin(v: &str) -> Result<String, String> {
    let uri: http::Uri = v.parse().map_err(|_| format!("{v:?} is not an origin"))?;
    let scheme = uri.scheme_str().ok_or_else(|| format!("{v:?}: missing scheme"))?;
    if scheme != "https" && scheme != "http" {
        return Err(format!("{v:?}: expected http or https"));
    }
    let authority = uri.authority().ok_or_else(|| format!("{v:?}: missing host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{v:?}: no user info allowed"));
    }
    let path_ok = matches!(uri.path_and_query().map(|p| p.as_str()), None | Some("/") | Some(""));
    if !path_ok || v.ends_with('/') {
        return Err(format!("{v:?}: an origin has no path (not even a trailing /)"));
    }
    Ok(format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()))
}

fn check_path_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if !p.starts_with('/') || p.ends_with('/') {
        return Err(format!("{p:?}: must start with / and not end with / (e.g. /prod)"));
    }
    if !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)) {
        return Err(format!("{p:?}: only letters, digits and -._~/ are allowed"));
    }
    Ok(())
}

/// Scopes separated by spaces or commas; each an RFC 6749 scope-token.
fn parse_scopes(v: &str) -> Result<String, String> {
    let scopes: Vec<&str> = v.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    for s in &scopes {
        if !s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(format!("{s:?} is not a valid scope"));
        }
    }
    Ok(scopes.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)], shape: Shape) -> Result<IssuerConfig, ConfigError> {
        IssuerConfig::from_settings(&Settings::from_pairs(pairs), shape)
    }

    const BASE: [(&str, &str); 2] = [("ISSUER_URL", "https://auth.example.com"), ("ISSUER_AUDIENCE", "api")];

    fn with(extra: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.push(extra);
        v
    }

    #[test]
    fn defaults() {
        let c = load(&BASE, Shape::Local).unwrap();
        assert_eq!(c.store, StoreKind::Sqlite);
        assert_eq!(c.access_ttl_secs, 900);
        assert_eq!(c.refresh_ttl_secs, 2_592_000);
        assert_eq!(c.session_max_secs, 7_776_000);
        assert_eq!(c.reuse_grace_secs, 0);
        assert_eq!(c.signing_alg, Algorithm::RS256);
        assert_eq!(c.default_scopes, "openid");
        assert_eq!(c.argon2, Argon2Cost::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.jwks_uri(), "https://auth.example.com/.well-known/jwks.json");
        assert_eq!(c.legacy_bcrypt_cost, None);
        let c = load(&with(("ISSUER_LEGACY_BCRYPT_COST", "12")), Shape::Local).unwrap();
        assert_eq!(c.legacy_bcrypt_cost, Some(12));
        let c = load(&BASE, Shape::Local).unwrap();
        assert_eq!(c.attempt_policy, crate::attempts::AttemptPolicy::default());
        assert_eq!((c.attempt_key.clone(), c.client_ip_header.clone()), (None, None));
        let key = "A".repeat(43);
        let c = load(
            &[BASE[0], BASE[1], ("ISSUER_ATTEMPT_KEY", key.as_str()), ("ISSUER_CLIENT_IP_HEADER", "X-Forwarded-For")],
            Shape::Local,
        )
        .unwrap();
        assert_eq!(c.attempt_key.map(|k| k.len()), Some(32));
        assert_eq!(c.client_ip_header.unwrap().as_str(), "x-forwarded-for");
    }

    #[test]
    fn required_values_are_named() {
        assert_eq!(load(&[], Shape::Local).unwrap_err().var, "ISSUER_URL");
        assert_eq!(load(&BASE[..1], Shape::Local).unwrap_err().var, "ISSUER_AUDIENCE");
        let err = load(&BASE, Shape::Lambda).unwrap_err();
        assert_eq!(err.var, "ISSUER_SIGNING_KEY_SECRET_ARN");
        // On Lambda mail goes through SES by default, which needs a sender.
        let arn = ("ISSUER_SIGNING_KEY_SECRET_ARN", "arn:aws:secretsmanager:x");
        let err = load(&with(arn), Shape::Lambda).unwrap_err();
        assert_eq!(err.var, "ISSUER_MAIL_FROM");
        let c = load(&[BASE[0], BASE[1], arn, ("ISSUER_MAIL_FROM", "no-reply@example.com")], Shape::Lambda).unwrap();
        assert_eq!(c.store, StoreKind::DynamoDb);
        assert!(matches!(c.mail, MailTransportConfig::Ses { .. }), "{:?}", c.mail);
        let c = load(&[BASE[0], BASE[1], arn, ("ISSUER_MAIL", "outbox")], Shape::Lambda).unwrap();
        assert_eq!(c.mail, MailTransportConfig::Outbox);
    }

    #[test]
    fn recovery_and_mail_defaults() {
        let c = load(&BASE, Shape::Local).unwrap();
        assert!(c.require_verified_email);
        assert_eq!(c.verify_ttl_secs, 86_400);
        assert_eq!(c.reset_ttl_secs, 900);
        assert_eq!(c.recovery_limits, RecoveryLimits { per_client: 20, mail_per_address: 5, window_secs: 3600 });
        assert_eq!(c.branding.product, "auth.example.com");
        assert_eq!(c.branding.link_base, "https://auth.example.com");
        assert_eq!(c.mail, MailTransportConfig::Outbox);
        assert_eq!(c.ses_config(), None);
        // The link base defaults to the issuer URL without its trailing slash.
        let c = load(&[("ISSUER_URL", "https://auth.example.com/prod/"), BASE[1]], Shape::Local).unwrap();
        assert_eq!(c.branding.link_base, "https://auth.example.com/prod");

        let c =
            load(&[BASE[0], BASE[1], ("ISSUER_MAIL", "SES"), ("ISSUER_MAIL_FROM", " a@example.com ")], Shape::Local)
                .unwrap();
        assert_eq!(
            c.mail,
            MailTransportConfig::Ses {
                from: "a@example.com".into(),
                configuration_set: None,
                endpoint: None,
                timeout: Duration::from_secs(3),
            }
        );
        let ses = c.ses_config().unwrap();
        assert_eq!((ses.operation_timeout, ses.attempt_timeout), (Duration::from_secs(3), Duration::from_millis(1500)));
        assert_eq!((ses.connect_timeout, ses.max_attempts), (Duration::from_secs(1), 3));

        let c = load(
            &[
                BASE[0],
                BASE[1],
                ("ISSUER_MAIL", "ses"),
                ("ISSUER_MAIL_FROM", "Pets, Inc. <no-reply@mail.example.com>"),
                ("ISSUER_SES_CONFIGURATION_SET", "auth-mail_1"),
                ("SES_ENDPOINT", "http://127.0.0.1:5000"),
                ("ISSUER_MAIL_TIMEOUT_MS", "800"),
                ("ISSUER_REQUIRE_VERIFIED_EMAIL", "FALSE"),
                ("ISSUER_PRODUCT_NAME", "  Pets  "),
                ("ISSUER_LINK_BASE", "https://app.example.com/"),
            ],
            Shape::Local,
        )
        .unwrap();
        let ses = c.ses_config().unwrap();
        assert_eq!(ses.from, "\"Pets, Inc.\" <no-reply@mail.example.com>");
        assert_eq!(ses.configuration_set.as_deref(), Some("auth-mail_1"));
        assert_eq!(ses.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            (ses.operation_timeout, ses.attempt_timeout),
            (Duration::from_millis(800), Duration::from_millis(400))
        );
        assert_eq!(ses.connect_timeout, Duration::from_millis(400));
        assert!(!c.require_verified_email);
        assert_eq!(c.branding.product, "Pets");
        assert_eq!(c.branding.link_base, "https://app.example.com");
    }

    #[test]
    fn senders_are_normalised_as_sent() {
        let header = |v: &str| crate::mail::Sender::parse(v).map(|s| s.header());
        assert_eq!(header("no-reply@example.com").unwrap(), "no-reply@example.com");
        assert_eq!(header("Pets <no-reply@example.com>").unwrap(), "Pets <no-reply@example.com>");
        assert_eq!(header("<no-reply@example.com>").unwrap(), "no-reply@example.com");
        assert_eq!(header("Café <a@example.com>").unwrap(), "=?UTF-8?B?Q2Fmw6k=?= <a@example.com>");
        // A long non-ASCII name: several encoded words of at most 75 characters.
        let long = format!("{} <a@example.com>", "é".repeat(40));
        let h = header(&long).unwrap();
        let words: Vec<&str> = h.trim_end_matches(" <a@example.com>").split(' ').collect();
        assert_eq!(words.len(), 2, "{h}");
        assert!(words.iter().all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?") && w.ends_with("?=")), "{h}");
        let s = crate::mail::Sender::parse("Pets <a.b+c@x.example.com>").unwrap();
        assert_eq!((s.name.as_deref(), s.address.as_str()), (Some("Pets"), "a.b+c@x.example.com"));
        for bad in [
            "no-reply",
            "no-reply@localhost",
            "@example.com",
            "a..b@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example..com",
            "Pets <a@example.com",
            "Pets a@example.com>",
            "\"Pets\" <a@example.com>",
            "Pe\u{7}ts <a@example.com>",
            "a@example.com, b@example.com",
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("ISSUER_ACCESS_TTL_SECS", "abc"),
            ("ISSUER_ACCESS_TTL_SECS", "10"),
            ("ISSUER_ARGON2_MEMORY_KIB", "4096"),
            ("ISSUER_ARGON2_ITERATIONS", "1"),
            ("ISSUER_SIGNING_ALG", "HS256"),
            ("ISSUER_STORE", "redis"),
            ("ISSUER_LISTEN", "localhost"),
            ("ISSUER_ALLOWED_ORIGINS", "https://app.example.com/"),
            ("ISSUER_ALLOWED_ORIGINS", "ftp://app.example.com"),
            ("ISSUER_COOKIE_PATH_PREFIX", "prod"),
            ("ISSUER_COOKIE_PATH_PREFIX", "/prod/"),
            ("ISSUER_COOKIE_PATH_PREFIX", "/pr;od"),
            ("ISSUER_DEFAULT_SCOPES", "a\"b"),
            ("ISSUER_REUSE_GRACE_SECS", "3600"),
            ("ISSUER_SQLITE_SYNC", "off"),
            ("ISSUER_LEGACY_BCRYPT_COST", "3"),
            ("ISSUER_LEGACY_BCRYPT_COST", "32"),
            ("ISSUER_LEGACY_BCRYPT_COST", "ten"),
            ("ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS", "0"),
            ("ISSUER_LOGIN_WINDOW_SECS", "0"),
            ("ISSUER_ATTEMPT_KEY", "c2hvcnQ"),
            ("ISSUER_ATTEMPT_KEY", "not base64!"),
            ("ISSUER_CLIENT_IP_HEADER", "bad header"),
        ];
        for (var, value) in cases {
            let err = load(&with((var, value)), Shape::Local).unwrap_err();
            assert_eq!(err.var, var, "{value}: {err}");
        }
        // Recovery and mail settings; the SES ones with ISSUER_MAIL=ses.
        let recovery: [(&str, &str); 12] = [
            ("ISSUER_REQUIRE_VERIFIED_EMAIL", "maybe"),
            ("ISSUER_VERIFY_TTL_SECS", "10"),
            ("ISSUER_RESET_TTL_SECS", "0"),
            ("ISSUER_RECOVERY_MAX_PER_CLIENT", "0"),
            ("ISSUER_MAIL_MAX_PER_ADDRESS", "0"),
            ("ISSUER_PRODUCT_NAME", "Pets\u{1b}[31m"),
            ("ISSUER_PRODUCT_NAME", &"x".repeat(65)),
            ("ISSUER_LINK_BASE", "http://example.com"),
            ("ISSUER_LINK_BASE", "https://app.example.com/?a=1"),
            ("ISSUER_MAIL", "smtp"),
            ("ISSUER_MAIL_TIMEOUT_MS", "50"),
            ("ISSUER_MAIL_TIMEOUT_MS", "soon"),
        ];
        for (var, value) in recovery {
            let err = load(&[BASE[0], BASE[1], (var, value)], Shape::Local).unwrap_err();
            assert_eq!(err.var, var, "{value}: {err}");
        }
        let ses = [
            ("ISSUER_MAIL_FROM", "no-reply"),
            ("ISSUER_MAIL_FROM", "Pets <no-reply@example.com"),
            ("ISSUER_MAIL_FROM", "no-reply@localhost"),
            ("ISSUER_SES_CONFIGURATION_SET", "bad set"),
            ("SES_ENDPOINT", "127.0.0.1:5000"),
            ("SES_ENDPOINT", "ftp://127.0.0.1:5000"),
        ];
        for (var, value) in ses {
            let mut pairs = vec![BASE[0], BASE[1], ("ISSUER_MAIL", "ses"), (var, value)];
            if var != "ISSUER_MAIL_FROM" {
                pairs.push(("ISSUER_MAIL_FROM", "no-reply@example.com"));
            }
            let err = load(&pairs, Shape::Local).unwrap_err();
            assert_eq!(err.var, var, "{value}: {err}");
        }
        let err = load(&with(("ISSUER_MAIL", "ses")), Shape::Local).unwrap_err();
        assert_eq!(err.var, "ISSUER_MAIL_FROM", "{err}");
        // The sender is not read (nor checked) when the outbox is chosen.
        let c = load(&[BASE[0], BASE[1], ("ISSUER_MAIL_FROM", "not an address")], Shape::Local).unwrap();
        assert_eq!(c.mail, MailTransportConfig::Outbox);
    }

    #[test]
    fn issuer_url_must_be_https_or_loopback() {
        for ok in ["https://auth.example.com", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80"] {
            assert!(load(&[("ISSUER_URL", ok), BASE[1]], Shape::Local).is_ok(), "{ok}");
        }
        for bad in ["http://auth.example.com", "auth.example.com", "https://a.example/?x=1", "ftp://a.example"] {
            assert_eq!(load(&[("ISSUER_URL", bad), BASE[1]], Shape::Local).unwrap_err().var, "ISSUER_URL", "{bad}");
        }
    }

    #[test]
    fn origins_and_scopes_are_normalised() {
        let c = load(
            &[
                BASE[0],
                BASE[1],
                ("ISSUER_ALLOWED_ORIGINS", "https://App.Example.com, http://localhost:3000"),
                ("ISSUER_DEFAULT_SCOPES", "openid,  pets:read  pets:write"),
            ],
            Shape::Local,
        )
        .unwrap();
        assert_eq!(c.allowed_origins, vec!["https://app.example.com", "http://localhost:3000"]);
        assert_eq!(c.default_scopes, "openid pets:read pets:write");
    }
}
