//! Open-loop load against the dev stack: requests at a fixed rate, latency
//! from each request's scheduled time, per-route percentiles and errors,
//! a progress line on stderr, the report as markdown on stdout.
//!
//! ```text
//! auth-load --issuer URL [--gateway URL] [--sidecar URL]
//!           [--rate N | --model-scale N [--hour H]] [--duration-secs N]
//!           [--users N] [--max-in-flight N] [--timeout-ms N]
//!           [--mix login=1,refresh=20,gateway=40,sidecar=40,stuffing=1,garbage=1]
//! ```
//!
//! `--model-scale N` plays the load model's mix and rate at hour `H`
//! (default 8, the peak) scaled down 1:N; otherwise `--rate` (default 20/s)
//! with `--mix` (default: the model's mix).
//!
//! The dev stack must let one address register and log in many times:
//!
//! ```text
//! ISSUER_REQUIRE_VERIFIED_EMAIL=false ISSUER_RECOVERY_MAX_PER_CLIENT=1000000 \
//! ISSUER_LOGIN_MAX_PER_ADDRESS=1000000 ISSUER_LOGIN_MAX_PER_ACCOUNT=1000000 \
//! ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS=1000 cargo run -p devstack
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_load::load::{Mix, Plan, Progress, RunReport, run};
use auth_load::model::LoadModel;
use auth_load::stack::{Route, Stack, Targets, model_rate, model_weights};

#[derive(Debug, Clone, PartialEq)]
struct Args {
    targets: Targets,
    rate: f64,
    duration: Duration,
    users: usize,
    max_in_flight: usize,
    timeout: Duration,
    weights: Vec<(Route, f64)>,
    source: String,
}

const USAGE: &str = "usage: auth-load --issuer URL [--gateway URL] [--sidecar URL] [--rate N | --model-scale N [--hour H]] \
[--duration-secs N] [--users N] [--max-in-flight N] [--timeout-ms N] [--mix route=weight,...]";

fn parse_mix(s: &str) -> Result<Vec<(Route, f64)>, String> {
    s.split(',')
        .map(|part| {
            let (name, w) =
                part.split_once('=').ok_or_else(|| format!("--mix: expected route=weight, got {part:?}"))?;
            let route = Route::from_name(name.trim()).ok_or_else(|| {
                let names: Vec<_> = Route::ALL.iter().map(|r| r.name()).collect();
                format!("--mix: unknown route {name:?} (routes: {})", names.join(", "))
            })?;
            let w: f64 = w.trim().parse().map_err(|_| format!("--mix: {name}: not a number: {w:?}"))?;
            Ok((route, w))
        })
        .collect()
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut issuer = None;
    let mut gateway = None;
    let mut sidecar = None;
    let mut rate = None;
    let mut scale = None;
    let mut hour = 8usize;
    let mut duration = 10u64;
    let mut users = 20usize;
    let mut max_in_flight = 256usize;
    let mut timeout_ms = 5000u64;
    let mut mix = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|_| format!("{flag}: not a number: {v:?}"));
        let count = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a whole number: {v:?}"));
        match flag.as_str() {
            "--issuer" => issuer = Some(value()?.trim_end_matches('/').to_owned()),
            "--gateway" => gateway = Some(value()?.trim_end_matches('/').to_owned()),
            "--sidecar" => sidecar = Some(value()?.trim_end_matches('/').to_owned()),
            "--rate" => rate = Some(number(value()?)?),
            "--model-scale" => scale = Some(number(value()?)?),
            "--hour" => hour = usize::try_from(count(value()?)?).map_err(|_| "--hour: too large".to_owned())?,
            "--duration-secs" => duration = count(value()?)?,
            "--users" => users = usize::try_from(count(value()?)?).map_err(|_| "--users: too large".to_owned())?,
            "--max-in-flight" => {
                max_in_flight =
                    usize::try_from(count(value()?)?).map_err(|_| "--max-in-flight: too large".to_owned())?;
            }
            "--timeout-ms" => timeout_ms = count(value()?)?,
            "--mix" => mix = Some(parse_mix(&value()?)?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let issuer = issuer.ok_or_else(|| format!("--issuer is required\n{USAGE}"))?;
    if hour > 23 {
        return Err("--hour: 0 to 23".to_owned());
    }
    let daily = LoadModel::default().daily();
    let (rate, source) = match (rate, scale) {
        (Some(_), Some(_)) => return Err("--rate and --model-scale exclude each other".to_owned()),
        (Some(r), None) => (r, format!("fixed rate {r}/s")),
        (None, Some(s)) if s > 0.0 => {
            (model_rate(&daily, hour, s), format!("the load model at {hour:02}:00, scaled 1:{s}"))
        }
        (None, Some(_)) => return Err("--model-scale: must be positive".to_owned()),
        (None, None) => (20.0, "fixed rate 20/s".to_owned()),
    };
    if !(rate.is_finite() && rate > 0.0) {
        return Err("--rate: must be positive".to_owned());
    }
    let weights = mix.unwrap_or_else(|| model_weights(&daily));
    if Mix::new(&weights.iter().map(|(_, w)| *w).collect::<Vec<_>>()).is_none() {
        return Err("--mix: weights must be non-negative with a positive sum".to_owned());
    }
    for &(route, w) in &weights {
        let missing = match route {
            Route::Gateway | Route::Garbage => gateway.is_none(),
            Route::Sidecar => sidecar.is_none(),
            _ => false,
        };
        if w > 0.0 && missing {
            let flag = if route == Route::Sidecar { "--sidecar" } else { "--gateway" };
            return Err(format!(
                "route {} has weight {w} but {flag} is not given (or set its weight to 0 with --mix)",
                route.name()
            ));
        }
    }
    if users == 0 || max_in_flight == 0 || timeout_ms == 0 || duration == 0 {
        return Err("--users, --max-in-flight, --timeout-ms and --duration-secs must be positive".to_owned());
    }
    Ok(Args {
        targets: Targets { issuer, gateway, sidecar },
        rate,
        duration: Duration::from_secs(duration),
        users,
        max_in_flight,
        timeout: Duration::from_millis(timeout_ms),
        weights,
        source,
    })
}

fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    format!("{v:.2}")
}

fn report(args: &Args, r: &RunReport) -> String {
    let mut o = String::new();
    let total: f64 = args.weights.iter().map(|(_, w)| w).sum();
    o.push_str(&format!(
        "Open-loop run: {} ({:.2} requests/s) for {} s, {} users, at most {} in flight, timeout {} ms; wall time {:.1} s.\n\n",
        args.source,
        args.rate,
        args.duration.as_secs(),
        args.users,
        args.max_in_flight,
        args.timeout.as_millis(),
        r.elapsed.as_secs_f64()
    ));
    o.push_str("Latency is measured from each request's scheduled send time (ms).\n\n");
    o.push_str("| route | share | answered | ok | errors | dropped | skipped | p50 | p90 | p99 | max |\n");
    o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((route, w), s) in args.weights.iter().zip(&r.routes) {
        let h = &s.latency;
        o.push_str(&format!(
            "| {} | {:.2}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            route.name(),
            w / total * 100.0,
            h.count(),
            s.ok,
            s.error_count(),
            s.dropped,
            s.skipped,
            ms(h.quantile(0.5)),
            ms(h.quantile(0.9)),
            ms(h.quantile(0.99)),
            ms(h.max()),
        ));
    }
    let errors: Vec<String> = args
        .weights
        .iter()
        .zip(&r.routes)
        .flat_map(|((route, _), s)| s.errors.iter().map(move |(k, n)| format!("{}: {k} x{n}", route.name())))
        .collect();
    if !errors.is_empty() {
        o.push_str(&format!("\nErrors: {}.\n", errors.join("; ")));
    }
    o
}

fn progress_line(p: &Progress) -> String {
    format!(
        "\r[{:>6.1} s] scheduled {}/{}  done {}  in flight {}  dropped {}  errors {}  p99 {} ms   ",
        p.elapsed.as_secs_f64(),
        p.scheduled,
        p.planned,
        p.completed,
        p.in_flight,
        p.dropped,
        p.errors,
        ms(p.p99_us)
    )
}

async fn main_async(args: Args) -> Result<String, String> {
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0).to_string();
    let stack = Stack::new(args.targets.clone(), args.users, &run_id, args.timeout).map_err(|e| e.to_string())?;
    let mut err = std::io::stderr();
    let _ = writeln!(err, "auth-load: seeding {} users on {}", args.users, args.targets.issuer);
    stack.seed(8).await.map_err(|e| format!("seeding: {e}"))?;
    let plan = Plan {
        rate_per_s: args.rate,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
        timeout: args.timeout,
    };
    let _ = writeln!(err, "auth-load: {} requests at {:.2}/s ({})", plan.requests(), args.rate, args.source);
    let routes: Vec<Route> = args.weights.iter().map(|(r, _)| *r).collect();
    let mix = Mix::new(&args.weights.iter().map(|(_, w)| *w).collect::<Vec<_>>()).ok_or("--mix: no positive weight")?;
    let result = run(
        plan,
        routes.len(),
        &mix,
        |k, i| stack.request(routes[k], i),
        |p| {
            let _ = write!(std::io::stderr(), "{}", progress_line(p));
        },
    )
    .await;
    let _ = writeln!(err);
    Ok(report(&args, &result))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-load: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_async(args)) {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "auth-load: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(&s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_flags() {
        let a = args("--issuer http://127.0.0.1:8080/ --gateway http://g --sidecar http://s").unwrap();
        assert_eq!(a.targets.issuer, "http://127.0.0.1:8080");
        assert_eq!(a.rate, 20.0);
        assert_eq!(a.weights.len(), 6, "the model's mix by default");
        let a = args("--issuer http://i --mix login=1,refresh=3 --rate 5 --duration-secs 2").unwrap();
        assert_eq!(a.weights, vec![(Route::Login, 1.0), (Route::Refresh, 3.0)]);
        assert_eq!(a.duration, Duration::from_secs(2));
        let a = args("--issuer http://i --gateway http://g --sidecar http://s --model-scale 10000").unwrap();
        assert!((1.9..2.0).contains(&a.rate), "{}", a.rate);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(args("").unwrap_err().starts_with("--issuer is required"));
        assert_eq!(args("--issuer").unwrap_err(), "--issuer needs a value");
        assert!(args("--issuer http://i --mix login=x").unwrap_err().contains("not a number"));
        assert!(args("--issuer http://i --mix lgin=1").unwrap_err().contains("unknown route \"lgin\""));
        assert!(args("--issuer http://i --mix gateway=1").unwrap_err().contains("--gateway is not given"));
        assert!(args("--issuer http://i --rate 1 --model-scale 2").unwrap_err().contains("exclude"));
        assert!(args("--issuer http://i --mix login=0").unwrap_err().contains("positive sum"));
        assert!(args("--issuer http://i --hour 24 --mix login=1").unwrap_err().contains("0 to 23"));
    }
}
