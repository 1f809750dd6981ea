//! The dated AWS price table (`docs/bench/prices.toml`), read into typed
//! prices. Every figure of the bill comes from this one file; the file names
//! the source page of each service and says which entries were not re-checked.

use std::fmt;

use toml_edit::{DocumentMut, Item, Table};

/// The prices file as committed, built into the binary so `auth-bill` needs
/// no path (a `--prices FILE` overrides it).
pub const DEFAULT_PRICES_TOML: &str = include_str!("../../../docs/bench/prices.toml");

/// The repository path of [`DEFAULT_PRICES_TOML`], for the report.
pub const DEFAULT_PRICES_PATH: &str = "docs/bench/prices.toml";

/// A prices file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// Not TOML.
    #[error("prices file is not valid TOML: {0}")]
    Parse(String),
    /// A key the bill needs is absent.
    #[error("prices file: missing `{0}`")]
    Missing(String),
    /// A key holds the wrong kind of value.
    #[error("prices file: `{key}` must be {expected}")]
    Type {
        /// Dotted key.
        key: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A tier list that is not increasing or has no open last tier.
    #[error("prices file: `{key}`: {reason}")]
    Tiers {
        /// Dotted key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One price band: `price` per unit up to `up_to` units in the month
/// (cumulative), or without bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    /// Upper bound of the band in units per month; `None` for the last.
    pub up_to: Option<f64>,
    /// Price per unit in the band.
    pub price: f64,
}

/// Volume pricing: each unit is charged at the price of the band it falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiers(pub Vec<Tier>);

impl Tiers {
    /// One price for every unit.
    #[must_use]
    pub fn flat(price: f64) -> Self {
        Tiers(vec![Tier { up_to: None, price }])
    }

    /// The charge for `units` in a month.
    #[must_use]
    pub fn cost(&self, units: f64) -> f64 {
        let mut total = 0.0;
        let mut below = 0.0;
        for tier in &self.0 {
            let top = tier.up_to.unwrap_or(f64::INFINITY);
            if units <= below {
                break;
            }
            let in_band = units.min(top) - below;
            total += in_band * tier.price;
            below = top;
        }
        total
    }

    /// The price of the first unit (the first band).
    #[must_use]
    pub fn first_price(&self) -> f64 {
        self.0.first().map_or(0.0, |t| t.price)
    }
}

/// Lambda architecture (duration is priced per architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Graviton; what the deploy template uses.
    Arm64,
    /// x86_64.
    X86_64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
        })
    }
}

/// Lambda prices.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaPrices {
    /// Per million invocations.
    pub requests_per_million: f64,
    /// Duration per GB-second, arm64, tiered by monthly GB-seconds.
    pub gb_second_arm64: Tiers,
    /// Duration per GB-second, x86_64.
    pub gb_second_x86: Tiers,
    /// Provisioned concurrency per GB-second provisioned, arm64.
    pub provisioned_gb_second_arm64: f64,
    /// Provisioned concurrency per GB-second provisioned, x86_64.
    pub provisioned_gb_second_x86: f64,
    /// Duration of invocations served by provisioned concurrency, arm64.
    pub provisioned_duration_gb_second_arm64: f64,
    /// Same, x86_64.
    pub provisioned_duration_gb_second_x86: f64,
}

impl LambdaPrices {
    /// On-demand duration tiers for `arch`.
    #[must_use]
    pub fn duration(&self, arch: Arch) -> &Tiers {
        match arch {
            Arch::Arm64 => &self.gb_second_arm64,
            Arch::X86_64 => &self.gb_second_x86,
        }
    }

    /// (per GB-second provisioned, per GB-second of duration on it) for `arch`.
    #[must_use]
    pub fn provisioned(&self, arch: Arch) -> (f64, f64) {
        match arch {
            Arch::Arm64 => (self.provisioned_gb_second_arm64, self.provisioned_duration_gb_second_arm64),
            Arch::X86_64 => (self.provisioned_gb_second_x86, self.provisioned_duration_gb_second_x86),
        }
    }
}

/// API Gateway prices, per million requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiGatewayPrices {
    /// REST API.
    pub rest: Tiers,
    /// HTTP API.
    pub http: Tiers,
}

/// DynamoDB on-demand prices (standard table class).
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoPrices {
    /// Per million write request units.
    pub wru_per_million: f64,
    /// Per million read request units.
    pub rru_per_million: f64,
    /// Storage per GB-month.
    pub storage_gb_month: f64,
    /// Point-in-time recovery per GB-month.
    pub pitr_gb_month: f64,
}

/// CloudWatch Logs prices.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsPrices {
    /// Lambda function logs, per GB ingested, tiered by monthly GB.
    pub lambda_ingestion_gb: Tiers,
    /// Other log groups (API access logs), per GB ingested.
    pub ingestion_gb: f64,
    /// Stored (compressed) GB per month.
    pub storage_gb_month: f64,
}

/// Secrets Manager prices.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretsPrices {
    /// Per secret per month.
    pub secret_month: f64,
    /// Per 10,000 API calls.
    pub per_10k_calls: f64,
}

/// KMS prices.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsPrices {
    /// Per customer managed key per month.
    pub key_month: f64,
    /// Per 10,000 symmetric requests.
    pub per_10k_requests: f64,
}

/// Amazon Cognito user pool prices and default quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct CognitoPrices {
    /// MAUs free per account each month (Lite and Essentials).
    pub free_mau: f64,
    /// Lite plan, per MAU, tiered by MAUs.
    pub lite_mau: Tiers,
    /// Essentials plan, per MAU.
    pub essentials_mau: f64,
    /// Plus plan, per MAU (no free tier).
    pub plus_mau: f64,
    /// Default UserAuthentication quota, requests per second, per account
    /// and Region across all pools.
    pub user_authentication_rps: f64,
    /// Default UserCreation quota (SignUp, ConfirmSignUp, ...).
    pub user_creation_rps: f64,
    /// Default account recovery quota (ForgotPassword, ...).
    pub account_recovery_rps: f64,
    /// Price of one RPS of purchased capacity above the default, per month.
    pub purchased_rps_month: f64,
}

/// Everything the bill prices, with the date and the sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    /// When the prices were written down (`YYYY-MM-DD`).
    pub date: String,
    /// The Region they are for.
    pub region: String,
    /// Lambda.
    pub lambda: LambdaPrices,
    /// API Gateway.
    pub api_gateway: ApiGatewayPrices,
    /// DynamoDB.
    pub dynamodb: DynamoPrices,
    /// CloudWatch Logs.
    pub logs: LogsPrices,
    /// Secrets Manager.
    pub secrets: SecretsPrices,
    /// KMS.
    pub kms: KmsPrices,
    /// Cognito.
    pub cognito: CognitoPrices,
    /// (service, source page URL), in file order.
    pub sources: Vec<(String, String)>,
    /// (service, what was not re-checked), in file order.
    pub unsure: Vec<(String, String)>,
}

impl Prices {
    /// The committed prices file.
    ///
    /// # Errors
    /// Only if the committed file is broken (a test parses it).
    pub fn committed() -> Result<Prices, PriceError> {
        Prices::parse(DEFAULT_PRICES_TOML)
    }

    /// Reads a prices file.
    ///
    /// # Errors
    /// [`PriceError`] naming the first key that is missing or malformed.
    pub fn parse(text: &str) -> Result<Prices, PriceError> {
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| PriceError::Parse(e.to_string()))?;
        let root = doc.as_table();
        let mut sources = Vec::new();
        let mut unsure = Vec::new();
        for (name, item) in root.iter() {
            if let Some(t) = item.as_table() {
                if let Some(s) = t.get("source").and_then(Item::as_str) {
                    sources.push((name.to_owned(), s.to_owned()));
                }
                if let Some(s) = t.get("quota_source").and_then(Item::as_str) {
                    sources.push((format!("{name} (quotas)"), s.to_owned()));
                }
                if let Some(s) = t.get("unsure").and_then(Item::as_str) {
                    unsure.push((name.to_owned(), s.to_owned()));
                }
            }
        }
        let l = table(root, "lambda")?;
        let a = table(root, "api_gateway")?;
        let d = table(root, "dynamodb")?;
        let c = table(root, "cloudwatch_logs")?;
        let s = table(root, "secrets_manager")?;
        let k = table(root, "kms")?;
        let g = table(root, "cognito")?;
        Ok(Prices {
            date: string(root, "", "date")?,
            region: string(root, "", "region")?,
            lambda: LambdaPrices {
                requests_per_million: num(l, "lambda", "requests_per_million")?,
                gb_second_arm64: tiers(l, "lambda", "gb_second_arm64_tiers")?,
                gb_second_x86: tiers(l, "lambda", "gb_second_x86_tiers")?,
                provisioned_gb_second_arm64: num(l, "lambda", "provisioned_gb_second_arm64")?,
                provisioned_gb_second_x86: num(l, "lambda", "provisioned_gb_second_x86")?,
                provisioned_duration_gb_second_arm64: num(l, "lambda", "provisioned_duration_gb_second_arm64")?,
                provisioned_duration_gb_second_x86: num(l, "lambda", "provisioned_duration_gb_second_x86")?,
            },
            api_gateway: ApiGatewayPrices {
                rest: tiers(a, "api_gateway", "rest_tiers")?,
                http: tiers(a, "api_gateway", "http_tiers")?,
            },
            dynamodb: DynamoPrices {
                wru_per_million: num(d, "dynamodb", "write_request_units_per_million")?,
                rru_per_million: num(d, "dynamodb", "read_request_units_per_million")?,
                storage_gb_month: num(d, "dynamodb", "storage_gb_month")?,
                pitr_gb_month: num(d, "dynamodb", "pitr_gb_month")?,
            },
            logs: LogsPrices {
                lambda_ingestion_gb: tiers(c, "cloudwatch_logs", "lambda_ingestion_gb_tiers")?,
                ingestion_gb: num(c, "cloudwatch_logs", "ingestion_gb")?,
                storage_gb_month: num(c, "cloudwatch_logs", "storage_gb_month")?,
            },
            secrets: SecretsPrices {
                secret_month: num(s, "secrets_manager", "secret_month")?,
                per_10k_calls: num(s, "secrets_manager", "per_10k_api_calls")?,
            },
            kms: KmsPrices {
                key_month: num(k, "kms", "key_month")?,
                per_10k_requests: num(k, "kms", "per_10k_symmetric_requests")?,
            },
            cognito: CognitoPrices {
                free_mau: num(g, "cognito", "free_mau")?,
                lite_mau: tiers(g, "cognito", "lite_mau_tiers")?,
                essentials_mau: num(g, "cognito", "essentials_mau")?,
                plus_mau: num(g, "cognito", "plus_mau")?,
                user_authentication_rps: num(g, "cognito", "user_authentication_rps")?,
                user_creation_rps: num(g, "cognito", "user_creation_rps")?,
                account_recovery_rps: num(g, "cognito", "account_recovery_rps")?,
                purchased_rps_month: num(g, "cognito", "purchased_rps_month")?,
            },
            sources,
            unsure,
        })
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") }
}

fn table<'a>(root: &'a Table, name: &str) -> Result<&'a Table, PriceError> {
    match root.get(name) {
        None => Err(PriceError::Missing(name.to_owned())),
        Some(item) => item.as_table().ok_or(PriceError::Type { key: name.to_owned(), expected: "a table" }),
    }
}

fn string(t: &Table, section: &str, key: &str) -> Result<String, PriceError> {
    let item = t.get(key).ok_or_else(|| PriceError::Missing(dotted(section, key)))?;
    item.as_str().map(str::to_owned).ok_or(PriceError::Type { key: dotted(section, key), expected: "a string" })
}

fn value_num(v: &toml_edit::Value) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // prices and tier bounds are far below 2^53
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn num(t: &Table, section: &str, key: &str) -> Result<f64, PriceError> {
    let item = t.get(key).ok_or_else(|| PriceError::Missing(dotted(section, key)))?;
    let n = item.as_value().and_then(value_num);
    match n {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(PriceError::Type { key: dotted(section, key), expected: "a non-negative number" }),
    }
}

fn tiers(t: &Table, section: &str, key: &str) -> Result<Tiers, PriceError> {
    let k = dotted(section, key);
    let item = t.get(key).ok_or_else(|| PriceError::Missing(k.clone()))?;
    let expected = "an array of [up_to, price] pairs";
    let arr = item.as_array().ok_or(PriceError::Type { key: k.clone(), expected })?;
    let mut out = Vec::with_capacity(arr.len());
    let mut last_top = 0.0;
    for v in arr {
        let pair = v.as_array().ok_or(PriceError::Type { key: k.clone(), expected })?;
        let (Some(up_to), Some(price), 2) =
            (pair.get(0).and_then(value_num), pair.get(1).and_then(value_num), pair.len())
        else {
            return Err(PriceError::Type { key: k.clone(), expected });
        };
        if out.last().is_some_and(|t: &Tier| t.up_to.is_none()) {
            return Err(PriceError::Tiers { key: k.clone(), reason: "only the last tier may be open (up_to = 0)" });
        }
        let up_to = if up_to == 0.0 {
            None
        } else {
            if up_to <= last_top {
                return Err(PriceError::Tiers { key: k.clone(), reason: "tier bounds must increase" });
            }
            last_top = up_to;
            Some(up_to)
        };
        out.push(Tier { up_to, price });
    }
    if out.last().is_none_or(|t| t.up_to.is_some()) {
        return Err(PriceError::Tiers { key: k, reason: "the last tier must be open (up_to = 0)" });
    }
    Ok(Tiers(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_parses_and_names_a_source_per_service() {
        let p = Prices::committed().unwrap();
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.date.len(), 10, "{}", p.date);
        for service in ["lambda", "api_gateway", "dynamodb", "cloudwatch_logs", "secrets_manager", "kms", "cognito"] {
            let (_, url) = p.sources.iter().find(|(s, _)| s == service).unwrap_or_else(|| panic!("{service}"));
            assert!(url.starts_with("https://aws.amazon.com/") || url.starts_with("https://docs.aws.amazon.com/"));
        }
        assert_eq!(p.lambda.requests_per_million, 0.20);
        assert_eq!(p.dynamodb.wru_per_million, 0.625);
        assert_eq!(p.cognito.user_authentication_rps, 120.0);
    }

    #[test]
    fn tiered_cost_charges_each_band_at_its_price() {
        // REST API: 333M at $3.50/M, the next 667M at $2.80/M, ...
        let rest = Tiers(vec![
            Tier { up_to: Some(333.0), price: 3.50 },
            Tier { up_to: Some(1000.0), price: 2.80 },
            Tier { up_to: None, price: 2.38 },
        ]);
        // 100M: 100 x 3.50 = 350.
        assert!((rest.cost(100.0) - 350.0).abs() < 1e-9);
        // 1,000M: 333 x 3.50 + 667 x 2.80 = 1165.5 + 1867.6 = 3033.1.
        assert!((rest.cost(1000.0) - 3033.1).abs() < 1e-9);
        // 1,500M: 3033.1 + 500 x 2.38 = 3033.1 + 1190 = 4223.1.
        assert!((rest.cost(1500.0) - 4223.1).abs() < 1e-9);
        assert_eq!(rest.cost(0.0), 0.0);
        assert!((Tiers::flat(0.5).cost(7.0) - 3.5).abs() < 1e-12);
    }

    #[test]
    fn a_broken_file_names_the_key() {
        let good = DEFAULT_PRICES_TOML;
        let no_kms = good.replace("per_10k_symmetric_requests", "per_10k_symmetric");
        assert_eq!(
            Prices::parse(&no_kms).unwrap_err().to_string(),
            "prices file: missing `kms.per_10k_symmetric_requests`"
        );
        let text_price = good.replace("secret_month = 0.40", "secret_month = \"0.40\"");
        assert_eq!(
            Prices::parse(&text_price).unwrap_err().to_string(),
            "prices file: `secrets_manager.secret_month` must be a non-negative number"
        );
        let closed = good.replace("http_tiers = [[300, 1.00], [0, 0.90]]", "http_tiers = [[300, 1.00]]");
        assert_ne!(closed, good);
        assert!(Prices::parse(&closed).unwrap_err().to_string().contains("last tier must be open"));
        let decreasing = good.replace("[[300, 1.00], [0, 0.90]]", "[[300, 1.00], [200, 0.95], [0, 0.90]]");
        assert_ne!(decreasing, good);
        assert!(Prices::parse(&decreasing).unwrap_err().to_string().contains("must increase"));
        assert!(matches!(Prices::parse("date = ").unwrap_err(), PriceError::Parse(_)));
    }
}
