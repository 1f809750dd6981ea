//! The markdown report `auth-bill` prints: the model, the rates per hour,
//! the counted-work inputs, the bill, Cognito beside it, and the capacity at
//! the peak.

use std::fmt::Write as _;

use crate::bill::{
    ApiFlavor, Bill, Table, WorkTable, cognito_bill, concurrency, monthly_bill, monthly_quantities, partitions,
};
use crate::model::{DAYS_PER_MONTH, DIURNAL_PERCENT, LoadModel, RequestKind};
use crate::prices::Prices;

/// A number with thousands separators and `decimals` places.
#[must_use]
pub fn num(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    if v < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    out
}

/// Dollars: cents below $1,000, whole dollars above.
#[must_use]
pub fn usd(v: f64) -> String {
    if v.abs() >= 1000.0 { format!("${}", num(v, 0)) } else { format!("${}", num(v, 2)) }
}

/// A quantity with a sensible number of places.
fn qty(v: f64) -> String {
    if v.abs() >= 100.0 {
        num(v, 0)
    } else if v.abs() >= 1.0 {
        num(v, 2)
    } else {
        num(v, 4)
    }
}

/// Renders the whole report. `header` lines (command, date, commit,
/// machine) come first.
#[must_use]
pub fn render(model: &LoadModel, prices: &Prices, table: &WorkTable, hot: &[crate::bill::HotKey]) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut o, model, prices, table, hot);
    o
}

fn write_report(
    o: &mut String,
    model: &LoadModel,
    prices: &Prices,
    table: &WorkTable,
    hot: &[crate::bill::HotKey],
) -> std::fmt::Result {
    let daily = model.daily();
    let measured = table.work.iter().filter(|w| w.source.starts_with("measured")).count();
    writeln!(
        o,
        "> **Work per request: measured for {measured} of {} request kinds** (`docs/bench/work.toml`, written by \
         `scripts/measure-work.sh`: DynamoDB units metered, CPU and log bytes measured); the others are estimates \
         (the `source` column says which). Prices: `{}` dated {} ({}).\n",
        table.work.iter().count(),
        crate::prices::DEFAULT_PRICES_PATH,
        prices.date,
        prices.region
    )?;

    writeln!(o, "### Model parameters\n")?;
    writeln!(o, "| parameter | value | reasoning / source |\n|---|---:|---|")?;
    for (name, v, why) in model.parameters() {
        writeln!(o, "| {name} | {} | {why} |", qty(v))?;
    }
    writeln!(o)?;
    writeln!(
        o,
        "Derived: {} daily actives, {} monthly actives, {} sessions a day; {} refreshes and {} authorizer runs per session.\n",
        num(model.daily_active(), 0),
        num(model.monthly_active(), 0),
        num(model.sessions(), 0),
        num(model.refreshes_per_session(), 3),
        num(model.authorizer_runs_per_session(), 2),
    )?;

    writeln!(o, "### The day's requests\n")?;
    writeln!(
        o,
        "| request | per day | per month | peak hour, /s | peak minute, /s | shape |\n|---|---:|---:|---:|---:|---|"
    )?;
    for &(k, n) in &daily.counts {
        let peak = daily.peak_rate(k);
        writeln!(
            o,
            "| {k} | {} | {} | {} | {} | {} |",
            num(n, 0),
            num(n * DAYS_PER_MONTH, 0),
            qty(peak),
            qty(peak * model.peak_minute_factor),
            match k.shape() {
                crate::model::Shape::Diurnal => "diurnal",
                crate::model::Shape::Flat => "flat",
            }
        )?;
    }
    let (ph, prate) = daily.peak_hour();
    writeln!(
        o,
        "| **all** | {} | {} | {} (at {ph:02}:00) | {} | |\n",
        num(daily.total(), 0),
        num(daily.total() * DAYS_PER_MONTH, 0),
        qty(prate),
        qty(prate * model.peak_minute_factor)
    )?;
    let peak_pct = DIURNAL_PERCENT.iter().copied().fold(0.0, f64::max);
    writeln!(
        o,
        "Diurnal curve: peak-hour share {peak_pct}% of the day = {} x the mean hour; hostile traffic and feed polls are flat.\n",
        num(peak_pct * 24.0 / 100.0, 2)
    )?;

    writeln!(o, "### Requests per second, hour by hour (hour means)\n")?;
    let cols = [
        RequestKind::Login,
        RequestKind::FailedLogin,
        RequestKind::Refresh,
        RequestKind::Register,
        RequestKind::ApiCallAuthorized,
        RequestKind::ApiCallCached,
    ];
    write!(o, "| hour | share |")?;
    for k in cols {
        write!(o, " {k} |")?;
    }
    writeln!(o, " stuffing (all) | garbage tokens | all |")?;
    write!(o, "|---|---:|")?;
    for _ in 0..cols.len() + 3 {
        write!(o, "---:|")?;
    }
    writeln!(o)?;
    for (h, pct) in DIURNAL_PERCENT.iter().enumerate() {
        write!(o, "| {h:02} | {pct}% |")?;
        for k in cols {
            write!(o, " {} |", qty(daily.rate(k, h)))?;
        }
        let stuffing = daily.rate(RequestKind::StuffingChecked, h) + daily.rate(RequestKind::StuffingRefused, h);
        let all: f64 = RequestKind::ALL.iter().map(|&k| daily.rate(k, h)).sum();
        writeln!(o, " {} | {} | {} |", qty(stuffing), qty(daily.rate(RequestKind::GarbageToken, h)), qty(all))?;
    }
    writeln!(o)?;

    writeln!(o, "### Counted work per request (measured or estimated: see each row's source)\n")?;
    writeln!(
        o,
        "| request | API Gateway | Lambda (billed ms) | RRU | WRU | store calls | log bytes | source |\n|---|---|---|---:|---:|---:|---:|---|"
    )?;
    for w in table.work.iter() {
        let lambda = w
            .invocations
            .iter()
            .map(|i| format!("{} {} MB {}: {}", i.function.name, i.function.memory_mb, i.function.arch, i.billed_ms()))
            .collect::<Vec<_>>()
            .join("; ");
        let u = w.units();
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            w.kind,
            if w.api_gateway { "yes" } else { "no" },
            if lambda.is_empty() { "-".to_owned() } else { lambda },
            qty(u.read),
            qty(u.write),
            w.store.len(),
            num(w.log_bytes(), 0),
            w.source
        )?;
    }
    writeln!(o)?;

    let rest = monthly_bill(&daily, table, prices, ApiFlavor::Rest);
    let http = monthly_bill(&daily, table, prices, ApiFlavor::Http);
    let m = monthly_quantities(&daily, table);
    writeln!(o, "### Monthly bill on AWS (us-east-1, {:.2} days)\n", DAYS_PER_MONTH)?;
    writeln!(o, "| service | item | quantity | unit | with REST API | with HTTP API |\n|---|---|---:|---|---:|---:|")?;
    for (a, b) in rest.lines.iter().zip(&http.lines) {
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            a.service,
            a.item,
            qty(a.quantity),
            a.unit,
            usd(a.usd),
            usd(b.usd)
        )?;
    }
    writeln!(o, "| **total** | | | | **{}** | **{}** |\n", usd(rest.total()), usd(http.total()))?;
    writeln!(o, "Per service:\n\n| service | with REST API | with HTTP API |\n|---|---:|---:|")?;
    for ((s, a), (_, b)) in rest.by_service().into_iter().zip(http.by_service()) {
        writeln!(o, "| {s} | {} | {} |", usd(a), usd(b))?;
    }
    let protected =
        |b: &Bill| b.lines.iter().filter(|l| l.item.contains("paid with any auth system")).map(|l| l.usd).sum::<f64>();
    writeln!(
        o,
        "| **the auth system alone** (without the protected calls' own API Gateway requests and access logs) | {} | {} |\n",
        usd(rest.total() - protected(&rest)),
        usd(http.total() - protected(&http))
    )?;
    writeln!(
        o,
        "Month's volume: {} API Gateway requests ({} on issuer routes), {} DynamoDB write units and {} read units, {} GB of Lambda logs.\n",
        num(m.api_auth_requests + m.api_protected_requests, 0),
        num(m.api_auth_requests, 0),
        num(m.units.write, 0),
        num(m.units.read, 0),
        num(m.lambda_log_bytes / crate::bill::GB, 0)
    )?;

    let c = cognito_bill(model, &daily, prices);
    writeln!(o, "### Amazon Cognito at the same users\n")?;
    writeln!(o, "| plan | MAU | per month |\n|---|---:|---:|")?;
    writeln!(o, "| Lite | {} | {} |", num(c.mau, 0), usd(c.lite_usd))?;
    writeln!(o, "| Essentials (default for new pools) | {} | {} |", num(c.mau, 0), usd(c.essentials_usd))?;
    writeln!(o, "| Plus | {} | {} |\n", num(c.mau, 0), usd(c.plus_usd))?;
    writeln!(
        o,
        "Sign-in rate at the peak minute (logins, failed logins, stuffing, refreshes: the UserAuthentication category): \
         {} requests/s ({} without refreshes) against a default quota of {} per account and Region, shared by all \
         pools: {} x the default. \
         Capacity to buy: {} RPS, about {} a month at {} per RPS-month (price unsure: see below). \
         Sign-ups at the peak minute: {}/s against the UserCreation quota of {}. \
         Not included: SES/SNS for verification mail, Lambda triggers, and the API Gateway and authorizer charges, \
         which remain with Cognito as the token issuer.\n",
        num(c.peak_sign_in_rps, 0),
        num(c.peak_password_sign_in_rps, 0),
        num(c.default_rps, 0),
        num(c.times_default, 1),
        num(c.purchased_rps, 0),
        usd(c.purchased_usd),
        usd(prices.cognito.purchased_rps_month),
        num(c.peak_sign_up_rps, 1),
        num(c.sign_up_quota_rps, 0),
    )?;

    writeln!(o, "### Capacity at the peak\n")?;
    writeln!(
        o,
        "| function | concurrency at the peak minute | lowest hour | provisioned recommended | its cost / month | on-demand duration it replaces | provisioning the peak all month |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    for f in concurrency(model, &daily, table, prices) {
        writeln!(
            o,
            "| {} ({} MB {}) | {} | {} | {} | {} | {} | {} |",
            f.function.name,
            f.function.memory_mb,
            f.function.arch,
            qty(f.peak),
            qty(f.floor),
            num(f.recommended_provisioned, 0),
            usd(f.provisioned_usd),
            usd(f.replaced_on_demand_usd),
            usd(f.provisioned_at_peak_usd),
        )?;
    }
    writeln!(
        o,
        "\nConcurrency = requests/s x billed seconds per request. Provisioned concurrency is recommended only up to the \
         lowest hour's concurrency, which it serves all day (cheaper than on-demand at full use); above that it idles.\n"
    )?;
    writeln!(
        o,
        "| DynamoDB | read units/s | write units/s | against one partition (3,000 RCU / 1,000 WCU) |\n|---|---:|---:|---|"
    )?;
    for p in partitions(model, &daily, table, hot) {
        let verdict = if p.what.starts_with("table ") {
            format!("at least {} partition(s)", num(p.utilisation, 0))
        } else {
            format!("{}% of one partition", num(p.utilisation * 100.0, 1))
        };
        writeln!(o, "| {} | {} | {} | {verdict} |", p.what, qty(p.read_per_s), qty(p.write_per_s))?;
    }
    writeln!(
        o,
        "\nOther keys spread by design: users by id and email, tokens by hash, attempt counters by keyed hash. \
         Tables: {}.\n",
        Table::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    )?;

    writeln!(o, "### Prices used\n")?;
    writeln!(
        o,
        "From `{}` (dated {}, {}). Sources:\n",
        crate::prices::DEFAULT_PRICES_PATH,
        prices.date,
        prices.region
    )?;
    for (s, url) in &prices.sources {
        writeln!(o, "- {s}: <{url}>")?;
    }
    writeln!(o, "\nNot re-checked on that date:\n")?;
    for (s, text) in &prices.unsure {
        writeln!(o, "- {s}: {text}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(num(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(num(999.0, 0), "999");
        assert_eq!(num(-1234.0, 0), "-1,234");
        assert_eq!(num(0.0, 1), "0.0");
        assert_eq!(usd(1234.5), "$1,234");
        assert_eq!(usd(12.345), "$12.35");
    }

    #[test]
    fn the_default_report_has_every_section_and_says_what_it_is() {
        let model = LoadModel::default();
        let prices = Prices::committed().unwrap();
        let r = render(&model, &prices, &crate::work::default_table(&model).unwrap(), &crate::work::hot_keys());
        for heading in [
            "### Model parameters",
            "### The day's requests",
            "### Requests per second, hour by hour",
            "### Counted work per request (measured or estimated",
            "### Monthly bill on AWS",
            "### Amazon Cognito at the same users",
            "### Capacity at the peak",
            "### Prices used",
        ] {
            assert!(r.contains(heading), "{heading}");
        }
        assert!(r.contains("request kinds** (`docs/bench/work.toml`"), "the header says what is measured");
        // One row per hour in the hourly table.
        assert_eq!(
            r.lines().filter(|l| l.starts_with("| 0") || l.starts_with("| 1") || l.starts_with("| 2")).count(),
            24
        );
        assert!(!r.split(|c: char| !c.is_alphanumeric()).any(|w| w == "NaN" || w == "inf"), "{r}");
    }
}
