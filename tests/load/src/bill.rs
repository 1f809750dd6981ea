//! From counted work to a monthly bill.
//!
//! A request type's work ([`Work`]) is what it costs AWS: the Lambda
//! invocations it makes (memory, architecture, milliseconds), its DynamoDB
//! operations with their item sizes, the log bytes it writes and whether it
//! passes API Gateway. [`StoreOp::units`] converts store operations to
//! on-demand request units the way DynamoDB counts them; [`monthly_bill`]
//! multiplies by the model's daily totals and prices the month;
//! [`cognito_bill`] prices the same users on Cognito; [`capacity`] sizes the
//! peak.

use crate::model::{DAYS_PER_MONTH, Daily, LoadModel, RequestKind};
use crate::prices::{Arch, Prices};

/// Bytes in a DynamoDB write unit.
pub const WRITE_UNIT_BYTES: u64 = 1024;
/// Bytes in a DynamoDB read unit.
pub const READ_UNIT_BYTES: u64 = 4096;
/// CloudWatch Logs counts each event's bytes plus 26 bytes of metadata.
pub const LOG_EVENT_OVERHEAD_BYTES: f64 = 26.0;
/// Per-partition throughput limits (on-demand and provisioned alike).
pub const PARTITION_READ_UNITS: f64 = 3000.0;
/// See [`PARTITION_READ_UNITS`].
pub const PARTITION_WRITE_UNITS: f64 = 1000.0;
/// Bytes in a GB as AWS bills data (2^30).
pub const GB: f64 = 1_073_741_824.0;
/// Seconds in an average month.
pub const MONTH_SECS: f64 = DAYS_PER_MONTH * 86_400.0;

/// The application's DynamoDB tables (infra/template.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Users, with the `email-index` GSI.
    Users,
    /// Refresh tokens, families and attempt counters, with `family-user-index`.
    RefreshTokens,
    /// The revocation feed (one partition per hour).
    Revocations,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Users, Table::RefreshTokens, Table::Revocations];

    /// The table's name in the template.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "Users",
            Table::RefreshTokens => "RefreshTokens",
            Table::Revocations => "Revocations",
        }
    }
}

/// How a read is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Eventually consistent: half a unit per 4 KB (every GSI read).
    Eventual,
    /// Strongly consistent: one unit per 4 KB.
    Strong,
    /// In TransactGetItems: two units per 4 KB.
    Transactional,
}

impl ReadMode {
    fn factor(self) -> f64 {
        match self {
            ReadMode::Eventual => 0.5,
            ReadMode::Strong => 1.0,
            ReadMode::Transactional => 2.0,
        }
    }
}

/// One item written: its size (for an update, the larger of the item before
/// and after, as DynamoDB counts it) and the size of the entry written in
/// each GSI whose projected attributes the write changes (an update that
/// changes an index key writes that index twice: list it twice).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    /// Bytes of the item (attribute names and values).
    pub item_bytes: u64,
    /// Bytes of each GSI entry written.
    pub gsi_bytes: Vec<u64>,
}

impl ItemWrite {
    /// An item that touches no index.
    #[must_use]
    pub fn plain(item_bytes: u64) -> Self {
        ItemWrite { item_bytes, gsi_bytes: Vec::new() }
    }

    /// An item that writes one GSI entry of `gsi` bytes.
    #[must_use]
    pub fn indexed(item_bytes: u64, gsi: u64) -> Self {
        ItemWrite { item_bytes, gsi_bytes: vec![gsi] }
    }
}

/// One DynamoDB request.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// GetItem of an item of `item_bytes` (a missing item still costs the
    /// minimum unit).
    Get {
        /// Table read.
        table: Table,
        /// Item size.
        item_bytes: u64,
        /// Consistency.
        mode: ReadMode,
    },
    /// Query (on the table or a GSI) returning `items` items of
    /// `item_bytes` each: sizes are summed, then rounded up to 4 KB; an
    /// empty result costs the minimum unit.
    Query {
        /// Table (or the table whose GSI is read).
        table: Table,
        /// Items returned.
        items: u64,
        /// Size of each.
        item_bytes: u64,
        /// Consistency (GSIs: eventual only).
        mode: ReadMode,
    },
    /// PutItem, UpdateItem or DeleteItem: one unit per KB, rounded up per
    /// item, plus each GSI entry's own units.
    Write {
        /// Table written.
        table: Table,
        /// The item.
        item: ItemWrite,
    },
    /// TransactWriteItems: two units per KB of each item (ConditionCheck
    /// items included), plus each GSI entry at one unit per KB.
    Transact {
        /// Table of the items (all of the application's transactions stay
        /// in one table).
        table: Table,
        /// The items.
        items: Vec<ItemWrite>,
    },
}

/// Request units.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Units {
    /// Read request units.
    pub read: f64,
    /// Write request units.
    pub write: f64,
}

impl std::ops::Add for Units {
    type Output = Units;
    fn add(self, o: Units) -> Units {
        Units { read: self.read + o.read, write: self.write + o.write }
    }
}

impl std::ops::AddAssign for Units {
    fn add_assign(&mut self, o: Units) {
        *self = *self + o;
    }
}

/// `ceil(bytes / unit)`, at least 1.
fn blocks(bytes: u64, unit: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // item sizes are at most 400 KB
    let n = bytes.div_ceil(unit).max(1) as f64;
    n
}

fn write_units(item: &ItemWrite, factor: f64) -> f64 {
    blocks(item.item_bytes, WRITE_UNIT_BYTES) * factor
        + item.gsi_bytes.iter().map(|&g| blocks(g, WRITE_UNIT_BYTES)).sum::<f64>()
}

impl StoreOp {
    /// The table the operation touches.
    #[must_use]
    pub fn table(&self) -> Table {
        match self {
            StoreOp::Get { table, .. }
            | StoreOp::Query { table, .. }
            | StoreOp::Write { table, .. }
            | StoreOp::Transact { table, .. } => *table,
        }
    }

    /// The request units DynamoDB bills for this operation.
    #[must_use]
    pub fn units(&self) -> Units {
        match self {
            StoreOp::Get { item_bytes, mode, .. } => {
                Units { read: blocks(*item_bytes, READ_UNIT_BYTES) * mode.factor(), write: 0.0 }
            }
            StoreOp::Query { items, item_bytes, mode, .. } => {
                Units { read: blocks(items * item_bytes, READ_UNIT_BYTES) * mode.factor(), write: 0.0 }
            }
            StoreOp::Write { item, .. } => Units { read: 0.0, write: write_units(item, 1.0) },
            StoreOp::Transact { items, .. } => {
                Units { read: 0.0, write: items.iter().map(|i| write_units(i, 2.0)).sum() }
            }
        }
    }

    /// Whether it is a TransactWriteItems (slower than a single-item call).
    #[must_use]
    pub fn is_transaction(&self) -> bool {
        matches!(self, StoreOp::Transact { .. })
    }
}

/// A Lambda function as deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Name in tables.
    pub name: &'static str,
    /// Configured memory, MB.
    pub memory_mb: u32,
    /// Architecture.
    pub arch: Arch,
}

impl Function {
    /// Memory in GB as Lambda bills it (MB / 1024).
    #[must_use]
    pub fn gb(&self) -> f64 {
        f64::from(self.memory_mb) / 1024.0
    }
}

/// One Lambda invocation of a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Invocation {
    /// The function invoked.
    pub function: Function,
    /// Handler CPU time, ms (at this memory size).
    pub cpu_ms: f64,
    /// Time waiting on DynamoDB and other calls, ms.
    pub wait_ms: f64,
}

impl Invocation {
    /// Billed duration: wall time rounded up to the next millisecond.
    #[must_use]
    pub fn billed_ms(&self) -> f64 {
        (self.cpu_ms + self.wait_ms).ceil().max(1.0)
    }

    /// GB-seconds billed for one invocation.
    #[must_use]
    pub fn gb_seconds(&self) -> f64 {
        self.function.gb() * self.billed_ms() / 1000.0
    }
}

/// Which API Gateway flavour fronts the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFlavor {
    /// REST API (the template's default: REQUEST authorizer, WAF, usage plans).
    Rest,
    /// HTTP API.
    Http,
}

impl ApiFlavor {
    /// Name for tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ApiFlavor::Rest => "REST API",
            ApiFlavor::Http => "HTTP API",
        }
    }
}

/// The counted work of one request of a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The request kind.
    pub kind: RequestKind,
    /// Whether it is an API Gateway request.
    pub api_gateway: bool,
    /// Whether the API Gateway request is a protected API call (its API
    /// Gateway charge exists with or without this auth system).
    pub protected_api_call: bool,
    /// Lambda invocations it makes.
    pub invocations: Vec<Invocation>,
    /// DynamoDB operations.
    pub store: Vec<StoreOp>,
    /// Bytes of Lambda log lines written (each line's text; the 26-byte
    /// event overhead is added per line).
    pub log_lines: Vec<u32>,
    /// Where the figures come from.
    pub source: &'static str,
}

impl Work {
    /// The request units of one request.
    #[must_use]
    pub fn units(&self) -> Units {
        self.store.iter().map(StoreOp::units).fold(Units::default(), |a, b| a + b)
    }

    /// The request units of one request against `table`.
    #[must_use]
    pub fn units_on(&self, table: Table) -> Units {
        self.store.iter().filter(|o| o.table() == table).map(StoreOp::units).fold(Units::default(), |a, b| a + b)
    }

    /// Lambda log bytes billed for one request (text plus event overhead).
    #[must_use]
    pub fn log_bytes(&self) -> f64 {
        self.log_lines.iter().map(|&b| f64::from(b) + LOG_EVENT_OVERHEAD_BYTES).sum()
    }
}

/// Data kept over time, for storage charges.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// What it is.
    pub what: &'static str,
    /// Table.
    pub table: Table,
    /// Items kept (steady state).
    pub items: f64,
    /// Bytes per item, including DynamoDB's 100-byte per-item overhead and
    /// the item's GSI entries.
    pub bytes_per_item: f64,
}

/// A work table that does not cover the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// No entry for a request kind.
    #[error("no work entry for the request kind {0}")]
    Missing(RequestKind),
    /// Two entries for one kind.
    #[error("two work entries for the request kind {0}")]
    Duplicate(RequestKind),
}

/// The work of every request kind, exactly one entry each, in
/// [`RequestKind::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct KindWork(Vec<Work>);

impl KindWork {
    /// Checks that `work` has one entry per request kind.
    ///
    /// # Errors
    /// [`WorkError`] naming the first kind missing or given twice.
    pub fn new(work: Vec<Work>) -> Result<KindWork, WorkError> {
        let mut ordered = Vec::with_capacity(RequestKind::ALL.len());
        for kind in RequestKind::ALL {
            let mut of_kind = work.iter().filter(|w| w.kind == kind);
            let first = of_kind.next().ok_or(WorkError::Missing(kind))?;
            if of_kind.next().is_some() {
                return Err(WorkError::Duplicate(kind));
            }
            ordered.push(first.clone());
        }
        Ok(KindWork(ordered))
    }

    /// The work of `kind`.
    #[must_use]
    pub fn of(&self, kind: RequestKind) -> &Work {
        // One entry per kind in ALL order, by construction.
        &self.0[kind.index()]
    }

    /// Every entry, in [`RequestKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = &Work> {
        self.0.iter()
    }
}

/// Everything the bill needs besides the model and the prices.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkTable {
    /// Work per request kind.
    pub work: KindWork,
    /// Data at rest.
    pub stored: Vec<Stored>,
    /// API Gateway access-log bytes per API Gateway request (flat-priced
    /// log group).
    pub access_log_bytes: f64,
    /// Retention of the Lambda log groups, days (issuer 365, authorizer 30
    /// in the template; one figure: the volume-weighted mix).
    pub lambda_log_retention_days: f64,
    /// Retention of the access logs, days.
    pub access_log_retention_days: f64,
    /// Stored log bytes over ingested bytes (CloudWatch stores compressed).
    pub log_compression: f64,
    /// Secrets in Secrets Manager.
    pub secrets: f64,
    /// Function inits that read secrets, per day (each one GetSecretValue
    /// and one KMS decrypt).
    pub secret_reads_per_day: f64,
    /// Customer managed KMS keys.
    pub kms_keys: f64,
    /// Other KMS requests per day (DynamoDB table-key refreshes).
    pub kms_background_per_day: f64,
}

impl WorkTable {
    /// The work of `kind`.
    #[must_use]
    pub fn of(&self, kind: RequestKind) -> &Work {
        self.work.of(kind)
    }
}

/// One line of the bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Service.
    pub service: &'static str,
    /// What is charged.
    pub item: String,
    /// Monthly quantity.
    pub quantity: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Monthly charge, USD.
    pub usd: f64,
}

/// A monthly bill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bill {
    /// Lines in service order.
    pub lines: Vec<Line>,
}

impl Bill {
    /// The total.
    #[must_use]
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|l| l.usd).sum()
    }

    /// Per service, in order of first appearance.
    #[must_use]
    pub fn by_service(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = Vec::new();
        for l in &self.lines {
            match out.iter_mut().find(|(s, _)| *s == l.service) {
                Some((_, v)) => *v += l.usd,
                None => out.push((l.service, l.usd)),
            }
        }
        out
    }

    fn push(&mut self, service: &'static str, item: impl Into<String>, quantity: f64, unit: &'static str, usd: f64) {
        self.lines.push(Line { service, item: item.into(), quantity, unit, usd });
    }
}

/// The month's counted quantities, before prices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Monthly {
    /// API Gateway requests on the issuer's routes.
    pub api_auth_requests: f64,
    /// API Gateway requests of protected API calls.
    pub api_protected_requests: f64,
    /// (function, invocations, GB-seconds).
    pub lambda: Vec<(Function, f64, f64)>,
    /// Request units.
    pub units: Units,
    /// Lambda log bytes ingested.
    pub lambda_log_bytes: f64,
    /// Access log bytes ingested for issuer routes.
    pub access_log_bytes: f64,
    /// Access log bytes ingested for protected API calls.
    pub access_log_protected_bytes: f64,
}

/// Counts the month's work.
#[must_use]
pub fn monthly_quantities(daily: &Daily, table: &WorkTable) -> Monthly {
    let mut m = Monthly::default();
    for &(kind, per_day) in &daily.counts {
        let n = per_day * DAYS_PER_MONTH;
        let w = table.of(kind);
        if w.api_gateway {
            if w.protected_api_call {
                m.api_protected_requests += n;
                m.access_log_protected_bytes += n * table.access_log_bytes;
            } else {
                m.api_auth_requests += n;
                m.access_log_bytes += n * table.access_log_bytes;
            }
        }
        for inv in &w.invocations {
            match m.lambda.iter_mut().find(|(f, _, _)| *f == inv.function) {
                Some((_, count, gbs)) => {
                    *count += n;
                    *gbs += n * inv.gb_seconds();
                }
                None => m.lambda.push((inv.function, n, n * inv.gb_seconds())),
            }
        }
        let u = w.units();
        m.units += Units { read: u.read * n, write: u.write * n };
        m.lambda_log_bytes += n * w.log_bytes();
    }
    m
}

/// The monthly bill of the system on AWS with `api` in front.
#[must_use]
pub fn monthly_bill(daily: &Daily, table: &WorkTable, prices: &Prices, api: ApiFlavor) -> Bill {
    let m = monthly_quantities(daily, table);
    let mut b = Bill::default();
    let tiers = match api {
        ApiFlavor::Rest => &prices.api_gateway.rest,
        ApiFlavor::Http => &prices.api_gateway.http,
    };
    // Tiers apply to the account's total: price all requests together and
    // split the charge in proportion.
    let api_total = m.api_auth_requests + m.api_protected_requests;
    let api_usd = tiers.cost(api_total / 1e6);
    let share = |n: f64| if api_total > 0.0 { api_usd * n / api_total } else { 0.0 };
    b.push("API Gateway", "requests on the issuer routes", m.api_auth_requests, "requests", share(m.api_auth_requests));
    b.push(
        "API Gateway",
        "protected API calls (paid with any auth system)",
        m.api_protected_requests,
        "requests",
        share(m.api_protected_requests),
    );

    let l = &prices.lambda;
    for &(f, count, _) in &m.lambda {
        b.push("Lambda", format!("{} requests", f.name), count, "invocations", count / 1e6 * l.requests_per_million);
    }
    for arch in [Arch::Arm64, Arch::X86_64] {
        let total: f64 = m.lambda.iter().filter(|(f, _, _)| f.arch == arch).map(|(_, _, g)| g).sum();
        let usd = l.duration(arch).cost(total);
        for &(f, _, gbs) in m.lambda.iter().filter(|(f, _, _)| f.arch == arch) {
            let part = if total > 0.0 { usd * gbs / total } else { 0.0 };
            b.push("Lambda", format!("{} duration ({} MB {})", f.name, f.memory_mb, f.arch), gbs, "GB-s", part);
        }
    }

    let d = &prices.dynamodb;
    b.push("DynamoDB", "write request units", m.units.write, "WRU", m.units.write / 1e6 * d.wru_per_million);
    b.push("DynamoDB", "read request units", m.units.read, "RRU", m.units.read / 1e6 * d.rru_per_million);
    let stored_gb: f64 = table.stored.iter().map(|s| s.items * s.bytes_per_item).sum::<f64>() / GB;
    b.push("DynamoDB", "storage", stored_gb, "GB-month", stored_gb * d.storage_gb_month);
    b.push("DynamoDB", "point-in-time recovery", stored_gb, "GB-month", stored_gb * d.pitr_gb_month);

    let lg = &prices.logs;
    let lambda_gb = m.lambda_log_bytes / GB;
    let access_gb = m.access_log_bytes / GB;
    let protected_gb = m.access_log_protected_bytes / GB;
    b.push("CloudWatch Logs", "Lambda log ingestion", lambda_gb, "GB", lg.lambda_ingestion_gb.cost(lambda_gb));
    b.push("CloudWatch Logs", "API access log ingestion: issuer routes", access_gb, "GB", access_gb * lg.ingestion_gb);
    b.push(
        "CloudWatch Logs",
        "API access log ingestion: protected API calls (paid with any auth system)",
        protected_gb,
        "GB",
        protected_gb * lg.ingestion_gb,
    );
    let access_gb = access_gb + protected_gb;
    let stored_logs = (lambda_gb * table.lambda_log_retention_days + access_gb * table.access_log_retention_days)
        / DAYS_PER_MONTH
        * table.log_compression;
    b.push("CloudWatch Logs", "log storage (steady state)", stored_logs, "GB-month", stored_logs * lg.storage_gb_month);

    let s = &prices.secrets;
    let secret_calls = table.secret_reads_per_day * DAYS_PER_MONTH;
    b.push("Secrets Manager", "secrets", table.secrets, "secret-months", table.secrets * s.secret_month);
    b.push("Secrets Manager", "API calls", secret_calls, "calls", secret_calls / 1e4 * s.per_10k_calls);

    let k = &prices.kms;
    let kms_requests = secret_calls + table.kms_background_per_day * DAYS_PER_MONTH;
    b.push("KMS", "customer managed keys", table.kms_keys, "key-months", table.kms_keys * k.key_month);
    b.push("KMS", "requests", kms_requests, "requests", kms_requests / 1e4 * k.per_10k_requests);
    b
}

/// Cognito at the model's MAUs and peak sign-in rate.
#[derive(Debug, Clone, PartialEq)]
pub struct CognitoBill {
    /// Monthly active users.
    pub mau: f64,
    /// Lite plan per month.
    pub lite_usd: f64,
    /// Essentials plan per month.
    pub essentials_usd: f64,
    /// Plus plan per month.
    pub plus_usd: f64,
    /// Peak UserAuthentication requests per second (busiest minute).
    pub peak_sign_in_rps: f64,
    /// The same without refreshes (password sign-ins only), in case
    /// REFRESH_TOKEN_AUTH is not counted in the category.
    pub peak_password_sign_in_rps: f64,
    /// The default UserAuthentication quota.
    pub default_rps: f64,
    /// RPS to buy above the default.
    pub purchased_rps: f64,
    /// What the purchased RPS cost per month.
    pub purchased_usd: f64,
    /// The peak over the default quota.
    pub times_default: f64,
    /// Peak sign-ups per second against the UserCreation quota.
    pub peak_sign_up_rps: f64,
    /// The UserCreation quota.
    pub sign_up_quota_rps: f64,
}

/// Prices the model's users on Cognito. MAU counts everyone with a sign-in
/// or refresh in the month; the quota is per account and Region, shared by
/// all pools, so more pools do not add rate.
#[must_use]
pub fn cognito_bill(model: &LoadModel, daily: &Daily, prices: &Prices) -> CognitoBill {
    let c = &prices.cognito;
    let mau = model.monthly_active();
    let billable = (mau - c.free_mau).max(0.0);
    // Lite's bands are absolute MAU counts: price MAUs above the free tier in
    // the band they fall in.
    let lite_usd = c.lite_mau.cost(mau) - c.lite_mau.cost(c.free_mau.min(mau));
    let peak_sign_in_rps = (0..24)
        .map(|h| RequestKind::ALL.iter().filter(|k| k.is_sign_in()).map(|&k| daily.rate(k, h)).sum::<f64>())
        .fold(0.0, f64::max)
        * model.peak_minute_factor;
    let peak_password_sign_in_rps = (0..24)
        .map(|h| {
            RequestKind::ALL
                .iter()
                .filter(|&&k| k.is_sign_in() && k != RequestKind::Refresh)
                .map(|&k| daily.rate(k, h))
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        * model.peak_minute_factor;
    let purchased_rps = (peak_sign_in_rps - c.user_authentication_rps).max(0.0).ceil();
    let peak_sign_up_rps = daily.peak_rate(RequestKind::Register) * model.peak_minute_factor;
    CognitoBill {
        mau,
        lite_usd,
        essentials_usd: billable * c.essentials_mau,
        plus_usd: mau * c.plus_mau,
        peak_sign_in_rps,
        peak_password_sign_in_rps,
        default_rps: c.user_authentication_rps,
        purchased_rps,
        purchased_usd: purchased_rps * c.purchased_rps_month,
        times_default: peak_sign_in_rps / c.user_authentication_rps,
        peak_sign_up_rps,
        sign_up_quota_rps: c.user_creation_rps,
    }
}

/// One function's concurrency over the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Concurrency {
    /// The function.
    pub function: Function,
    /// Concurrent executions in each hour (hour mean times the peak-minute
    /// factor), rate x billed duration.
    pub by_hour: [f64; 24],
    /// The highest.
    pub peak: f64,
    /// The lowest hour's mean (no peak factor): always in use.
    pub floor: f64,
    /// Provisioned concurrency recommended: the floor, rounded down (kept
    /// busy all day, so it costs less than on-demand; anything above it
    /// idles part of the day).
    pub recommended_provisioned: f64,
    /// Monthly cost of the recommended provisioned concurrency.
    pub provisioned_usd: f64,
    /// On-demand duration charge it replaces (the same GB-seconds).
    pub replaced_on_demand_usd: f64,
    /// Monthly cost of provisioning the peak all day (for comparison).
    pub provisioned_at_peak_usd: f64,
}

/// Concurrency per function: rate x billed duration per hour.
#[must_use]
pub fn concurrency(model: &LoadModel, daily: &Daily, table: &WorkTable, prices: &Prices) -> Vec<Concurrency> {
    let mut functions: Vec<Function> = Vec::new();
    for w in table.work.iter() {
        for inv in &w.invocations {
            if !functions.contains(&inv.function) {
                functions.push(inv.function);
            }
        }
    }
    functions
        .into_iter()
        .map(|f| {
            let mean = |h: usize| -> f64 {
                table
                    .work
                    .iter()
                    .flat_map(|w| w.invocations.iter().filter(|i| i.function == f).map(move |i| (w.kind, i)))
                    .map(|(k, i)| daily.rate(k, h) * i.billed_ms() / 1000.0)
                    .sum()
            };
            let mut by_hour = [0.0; 24];
            for (h, slot) in by_hour.iter_mut().enumerate() {
                *slot = mean(h) * model.peak_minute_factor;
            }
            let peak = by_hour.iter().copied().fold(0.0, f64::max);
            let floor = (0..24).map(mean).fold(f64::INFINITY, f64::min);
            let recommended = floor.floor();
            let (pc_price, pc_duration) = prices.lambda.provisioned(f.arch);
            let on_demand = prices.lambda.duration(f.arch).first_price();
            let gb_s = recommended * f.gb() * MONTH_SECS;
            Concurrency {
                function: f,
                by_hour,
                peak,
                floor,
                recommended_provisioned: recommended,
                provisioned_usd: gb_s * (pc_price + pc_duration),
                replaced_on_demand_usd: gb_s * on_demand,
                provisioned_at_peak_usd: peak.ceil() * f.gb() * MONTH_SECS * pc_price,
            }
        })
        .collect()
}

/// A key (partition) that takes a known share of some kinds' traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    /// What the key is.
    pub what: &'static str,
    /// (kind, share of that kind's requests that touch the key, units per
    /// such request).
    pub load: Vec<(RequestKind, f64, Units)>,
}

/// Load at the peak minute against the per-partition limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLoad {
    /// What.
    pub what: String,
    /// Read units per second at the peak.
    pub read_per_s: f64,
    /// Write units per second at the peak.
    pub write_per_s: f64,
    /// The larger of read / 3000 and write / 1000.
    pub utilisation: f64,
}

fn partition_load(what: String, read: f64, write: f64) -> PartitionLoad {
    let utilisation = (read / PARTITION_READ_UNITS).max(write / PARTITION_WRITE_UNITS);
    PartitionLoad { what, read_per_s: read, write_per_s: write, utilisation }
}

/// Per table: units per second at the busiest hour's peak minute and the
/// fewest partitions that carry it; per hot key: its load against one
/// partition's limits.
#[must_use]
pub fn partitions(model: &LoadModel, daily: &Daily, table: &WorkTable, hot: &[HotKey]) -> Vec<PartitionLoad> {
    let at_peak = |f: &dyn Fn(usize) -> Units| -> Units {
        (0..24).map(f).fold(Units::default(), |a, u| Units { read: a.read.max(u.read), write: a.write.max(u.write) })
    };
    let mut out = Vec::new();
    for t in Table::ALL {
        let u = at_peak(&|h| {
            table.work.iter().fold(Units::default(), |acc, w| {
                let per = w.units_on(t);
                let r = daily.rate(w.kind, h) * model.peak_minute_factor;
                acc + Units { read: per.read * r, write: per.write * r }
            })
        });
        let mut p = partition_load(format!("table {} (all partitions)", t.name()), u.read, u.write);
        // For a table the figure is partitions needed, not one's share.
        p.utilisation = p.utilisation.ceil().max(1.0);
        out.push(p);
    }
    for k in hot {
        let u = at_peak(&|h| {
            k.load.iter().fold(Units::default(), |acc, &(kind, share, per)| {
                let r = daily.rate(kind, h) * model.peak_minute_factor * share;
                acc + Units { read: per.read * r, write: per.write * r }
            })
        });
        out.push(partition_load(k.what.to_owned(), u.read, u.write));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::Prices;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn writes_round_up_per_item_per_kilobyte() {
        // 1 byte -> 1 WRU; 1024 -> 1; 1025 -> 2; 3000 -> ceil(2.93) = 3.
        for (bytes, wru) in [(1, 1.0), (1024, 1.0), (1025, 2.0), (3000, 3.0)] {
            let op = StoreOp::Write { table: Table::Users, item: ItemWrite::plain(bytes) };
            assert_eq!(op.units(), Units { read: 0.0, write: wru }, "{bytes}");
        }
        // A delete of a missing item still costs the minimum: modelled as 0 bytes.
        assert_eq!(StoreOp::Write { table: Table::Users, item: ItemWrite::plain(0) }.units().write, 1.0);
    }

    #[test]
    fn transactions_double_each_item_and_gsi_entries_cost_their_own_writes() {
        // Register: user 500 B with a 400 B email-index entry, marker 150 B, in
        // one TransactWriteItems: user 2 x ceil(500/1024) = 2, its GSI entry
        // ceil(400/1024) = 1, marker 2 x 1 = 2: 5 WRU.
        let op =
            StoreOp::Transact { table: Table::Users, items: vec![ItemWrite::indexed(500, 400), ItemWrite::plain(150)] };
        assert_eq!(op.units().write, 5.0);
        // A 2.5 KB item in a transaction: 2 x ceil(2560/1024) = 2 x 3 = 6; an
        // update that moves an index key writes the index twice (delete +
        // put), 1.2 KB each: 2 x ceil(1228/1024) = 2 x 2 = 4; total 10.
        let op = StoreOp::Transact {
            table: Table::Users,
            items: vec![ItemWrite { item_bytes: 2560, gsi_bytes: vec![1228, 1228] }],
        };
        assert_eq!(op.units().write, 10.0);
        // Outside a transaction the same item: 3 + 4 = 7.
        let op =
            StoreOp::Write { table: Table::Users, item: ItemWrite { item_bytes: 2560, gsi_bytes: vec![1228, 1228] } };
        assert_eq!(op.units().write, 7.0);
    }

    #[test]
    fn reads_round_up_per_four_kilobytes_with_the_consistency_factor() {
        let get = |bytes, mode| StoreOp::Get { table: Table::Users, item_bytes: bytes, mode }.units().read;
        // 1 KB strong: ceil(1024/4096) = 1 -> 1 RRU; eventual 0.5; transactional 2.
        assert_eq!(get(1024, ReadMode::Strong), 1.0);
        assert_eq!(get(1024, ReadMode::Eventual), 0.5);
        assert_eq!(get(1024, ReadMode::Transactional), 2.0);
        // 9 KB strong: ceil(9216/4096) = 3.
        assert_eq!(get(9216, ReadMode::Strong), 3.0);
        // A missing item costs the minimum unit.
        assert_eq!(get(0, ReadMode::Strong), 1.0);
    }

    #[test]
    fn a_query_sums_item_sizes_before_rounding() {
        // 10 items of 500 B: 5000 B -> ceil(5000/4096) = 2 RRU strong, 1.0
        // eventual (not 10 x 1 = 10 as ten GetItems would cost).
        let q = |mode| StoreOp::Query { table: Table::Revocations, items: 10, item_bytes: 500, mode }.units().read;
        assert_eq!(q(ReadMode::Strong), 2.0);
        assert_eq!(q(ReadMode::Eventual), 1.0);
        // An empty result: the minimum, 0.5 eventual.
        let empty = StoreOp::Query { table: Table::Users, items: 0, item_bytes: 400, mode: ReadMode::Eventual };
        assert_eq!(empty.units().read, 0.5);
    }

    #[test]
    fn lambda_bills_whole_milliseconds_of_memory() {
        let f = Function { name: "f", memory_mb: 128, arch: Arch::Arm64 };
        // 0.02 ms of work bills 1 ms: 0.125 GB x 0.001 s = 0.000125 GB-s.
        let inv = Invocation { function: f, cpu_ms: 0.02, wait_ms: 0.0 };
        assert_eq!(inv.billed_ms(), 1.0);
        assert!(close(inv.gb_seconds(), 0.000_125));
        // 1024 MB, 100.2 ms + 15 ms waiting = 115.2 -> 116 ms: 1 GB x 0.116 s.
        let g = Function { name: "g", memory_mb: 1024, arch: Arch::Arm64 };
        let inv = Invocation { function: g, cpu_ms: 100.2, wait_ms: 15.0 };
        assert!(close(inv.gb_seconds(), 0.116));
    }

    /// One kind, one request a second all day, on a tiny table: every line
    /// checked by hand.
    #[test]
    fn a_small_bill_by_hand() {
        let prices = Prices::committed().unwrap();
        let f = Function { name: "issuer", memory_mb: 1024, arch: Arch::Arm64 };
        let work = Work {
            kind: RequestKind::FeedPoll,
            api_gateway: true,
            protected_api_call: false,
            invocations: vec![Invocation { function: f, cpu_ms: 4.0, wait_ms: 6.0 }],
            store: vec![
                StoreOp::Get { table: Table::Users, item_bytes: 1000, mode: ReadMode::Strong },
                StoreOp::Transact {
                    table: Table::RefreshTokens,
                    items: vec![ItemWrite::plain(300), ItemWrite::plain(300)],
                },
            ],
            log_lines: vec![74],
            source: "test",
        };
        let others = RequestKind::ALL.iter().filter(|&&k| k != RequestKind::FeedPoll).map(|&k| Work {
            kind: k,
            api_gateway: false,
            protected_api_call: false,
            invocations: vec![],
            store: vec![],
            log_lines: vec![],
            source: "test",
        });
        let table = WorkTable {
            work: KindWork::new(std::iter::once(work).chain(others).collect()).unwrap(),
            stored: vec![Stored { what: "users", table: Table::Users, items: 1_073_741.824, bytes_per_item: 1000.0 }],
            access_log_bytes: 100.0,
            lambda_log_retention_days: DAYS_PER_MONTH,
            access_log_retention_days: 0.0,
            log_compression: 0.5,
            secrets: 2.0,
            secret_reads_per_day: 10_000.0 / DAYS_PER_MONTH,
            kms_keys: 1.0,
            kms_background_per_day: 0.0,
        };
        let model = LoadModel { feed_polls_per_second: 1.0, ..LoadModel::default() };
        let daily = model.daily();
        // 1/s x 86,400 s x 30.4167 days = 2,628,000 requests a month.
        let n = 86_400.0 * DAYS_PER_MONTH;
        assert!(close(n, 2_628_000.0));
        let bill = monthly_bill(&daily, &table, &prices, ApiFlavor::Rest);
        let line = |item: &str| bill.lines.iter().find(|l| l.item.contains(item)).unwrap().clone();
        // REST: 2.628M x $3.50/M = $9.198.
        assert!(close(line("issuer routes").usd, 9.198));
        assert_eq!(line("protected").usd, 0.0);
        // Lambda requests: 2.628 x $0.20 = $0.5256.
        assert!(close(line("issuer requests").usd, 0.5256));
        // Duration: 10 ms at 1 GB = 0.01 GB-s; x 2.628M = 26,280 GB-s x
        // $0.0000133334 = $0.35040175.
        let dur = line("issuer duration");
        assert!(close(dur.quantity, 26_280.0));
        assert!(close(dur.usd, 26_280.0 * 0.000_013_333_4));
        // Writes: 2 items x 2 = 4 WRU a request; 10.512M WRU x $0.625/M = $6.57.
        assert!(close(line("write request units").usd, 6.57));
        // Reads: ceil(1000/4096) = 1 RRU; 2.628M x $0.125/M = $0.3285.
        assert!(close(line("read request units").usd, 0.3285));
        // Storage: 1,073,741.824 x 1000 B = 1 GB: $0.25, PITR $0.20.
        assert!(close(line("storage").usd, 0.25));
        assert!(close(line("point-in-time").usd, 0.20));
        // Lambda logs: (74 + 26) B x 2.628M = 262.8 MB = 0.24475 GB x $0.50.
        let logs = line("Lambda log ingestion");
        assert!(close(logs.quantity, 262_800_000.0 / GB));
        assert!(close(logs.usd, 262_800_000.0 / GB * 0.5));
        // Access logs: 100 B x 2.628M, flat $0.50/GB.
        assert!(close(line("API access").usd, 262_800_000.0 / GB * 0.5));
        // Stored: the Lambda GB kept one month at half size: 0.24475 x 0.5 x $0.03.
        assert!(close(line("log storage").usd, 262_800_000.0 / GB * 0.5 * 0.03));
        // Secrets: 2 x $0.40 = $0.80; 10,000 calls = $0.05; KMS $1 + 10,000 x $0.03/10k.
        assert!(close(line("secrets").usd, 0.80));
        let calls = bill.lines.iter().find(|l| l.service == "Secrets Manager" && l.item == "API calls").unwrap();
        assert!(close(calls.usd, 0.05));
        assert!(close(line("customer managed keys").usd, 1.0));
        let kms = bill.lines.iter().find(|l| l.service == "KMS" && l.item == "requests").unwrap();
        assert!(close(kms.usd, 0.03));
        // At 10,000 polls a second: 26,280M requests cross every REST tier:
        // 333 x 3.50 + 667 x 2.80 + 19,000 x 2.38 + 6,280 x 1.51
        // = 1165.5 + 1867.6 + 45,220 + 9,482.8 = 57,735.9.
        let busy = LoadModel { feed_polls_per_second: 10_000.0, ..LoadModel::default() }.daily();
        let busy_bill = monthly_bill(&busy, &table, &prices, ApiFlavor::Rest);
        assert!(close(busy_bill.lines[0].usd, 57_735.9), "{}", busy_bill.lines[0].usd);
        let http = monthly_bill(&daily, &table, &prices, ApiFlavor::Http);
        // HTTP API: 2.628M x $1.00/M.
        assert!(close(http.lines[0].usd, 2.628));
        assert!(close(bill.total() - http.total(), 9.198 - 2.628));
    }

    /// The committed API Gateway tiers, across their bounds (the bounds and
    /// the prices are both per million requests).
    #[test]
    fn api_gateway_tiers_from_the_prices_file() {
        let p = Prices::committed().unwrap();
        let rest = |requests: f64| p.api_gateway.rest.cost(requests / 1e6);
        let http = |requests: f64| p.api_gateway.http.cost(requests / 1e6);
        // 1.5B REST: 333 x 3.50 + 667 x 2.80 + 500 x 2.38 = 1165.5 + 1867.6 + 1190 = 4223.1.
        assert!(close(rest(1.5e9), 4223.1));
        // 26B REST: 1165.5 + 1867.6 + 19,000 x 2.38 (45,220) + 6,000 x 1.51 (9,060) = 57,313.1.
        assert!(close(rest(26e9), 57_313.1));
        // 1B HTTP: 300 x 1.00 + 700 x 0.90 = 930 (infra/README.md: "about $930").
        assert!(close(http(1e9), 930.0));
    }

    #[test]
    fn cognito_at_hand_checked_user_counts() {
        let prices = Prices::committed().unwrap();
        let model = LoadModel { registered_users: 1_000_000.0, monthly_active_share: 0.5, ..LoadModel::default() };
        let daily = model.daily();
        let c = cognito_bill(&model, &daily, &prices);
        // 500,000 MAU. Essentials: (500,000 - 10,000) x $0.015 = $7,350.
        assert!(close(c.essentials_usd, 7350.0));
        // Lite: 90,000 x $0.0055 + 400,000 x $0.0046 = 495 + 1840 = $2,335.
        assert!(close(c.lite_usd, 2335.0));
        // Plus: 500,000 x $0.02 = $10,000.
        assert!(close(c.plus_usd, 10_000.0));
        assert!(c.purchased_rps == (c.peak_sign_in_rps - 120.0).max(0.0).ceil());
    }

    #[test]
    fn concurrency_is_rate_times_duration() {
        let prices = Prices::committed().unwrap();
        let f = Function { name: "issuer", memory_mb: 1024, arch: Arch::Arm64 };
        let work = RequestKind::ALL
            .iter()
            .map(|&k| Work {
                kind: k,
                api_gateway: false,
                protected_api_call: false,
                invocations: if k == RequestKind::FeedPoll {
                    vec![Invocation { function: f, cpu_ms: 50.0, wait_ms: 50.0 }]
                } else {
                    vec![]
                },
                store: vec![],
                log_lines: vec![],
                source: "test",
            })
            .collect();
        let table = WorkTable {
            work: KindWork::new(work).unwrap(),
            stored: vec![],
            access_log_bytes: 0.0,
            lambda_log_retention_days: 0.0,
            access_log_retention_days: 0.0,
            log_compression: 0.0,
            secrets: 0.0,
            secret_reads_per_day: 0.0,
            kms_keys: 0.0,
            kms_background_per_day: 0.0,
        };
        // 30 polls/s (flat) x 0.1 s = 3 concurrent; peak minute x 1.5 = 4.5.
        let model = LoadModel { feed_polls_per_second: 30.0, peak_minute_factor: 1.5, ..LoadModel::default() };
        let c = concurrency(&model, &model.daily(), &table, &prices);
        assert_eq!(c.len(), 1);
        assert!(close(c[0].peak, 4.5));
        assert!(close(c[0].floor, 3.0));
        assert_eq!(c[0].recommended_provisioned, 3.0);
        // 3 x 1 GB x 2,628,000 s x ($0.0000033334 + $0.0000077778).
        assert!(close(c[0].provisioned_usd, 3.0 * MONTH_SECS * (0.000_003_333_4 + 0.000_007_777_8)));
        // Peak 4.5 -> 5 provisioned all month: 5 x 2,628,000 x $0.0000033334.
        assert!(close(c[0].provisioned_at_peak_usd, 5.0 * MONTH_SECS * 0.000_003_333_4));
    }
}
