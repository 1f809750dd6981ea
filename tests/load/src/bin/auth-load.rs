//! Open-loop load against the dev stack: requests at a fixed rate, latency
//! from each request's scheduled time, per-route percentiles and errors,
//! a progress line on stderr, the report as markdown on stdout.
//!
//! ```text
//! auth-load --issuer URL [--gateway URL] [--sidecar URL]
//!           [--rate N | --model-scale N [--hour H]] [--duration-secs N]
//!           [--mix login=1,refresh=20,gateway=40,sidecar=40,stuffing=1,garbage=1]
//! auth-load --issuer URL --gateway URL --sidecar URL --day SCALE [--step-secs N] [--hours 7-10]
//! common:   [--users N] [--max-in-flight N] [--timeout-ms N]
//! ```
//!
//! One step: `--model-scale N` plays the load model's mix and rate at hour
//! `H` (default 8, the peak) scaled down 1:N; otherwise `--rate` (default
//! 20/s) with `--mix` (default: the model's mix over the day).
//!
//! A compressed day: `--day SCALE` plays each hour of the model (or those of
//! `--hours`) for `--step-secs` seconds (default 10) at that hour's rate and
//! mix scaled 1:SCALE, and reports percentiles per route at each rate.
//!
//! The dev stack must let one address register and log in many times
//! (scripts/bench-day-at-70m.sh starts it so):
//!
//! ```text
//! ISSUER_REQUIRE_VERIFIED_EMAIL=false ISSUER_RECOVERY_MAX_PER_CLIENT=1000000 \
//! ISSUER_LOGIN_MAX_PER_ADDRESS=1000000 ISSUER_LOGIN_MAX_PER_ACCOUNT=1000000 \
//! ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS=1000 cargo run -p devstack
//! ```

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_load::load::{Mix, Plan, Progress, RunReport, run_from};
use auth_load::model::LoadModel;
use auth_load::stack::{Route, Stack, Targets, model_rate, model_weights, model_weights_at};

/// What to play.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// One step at a fixed rate and mix.
    Step { rate: f64, duration: Duration, weights: Vec<(Route, f64)>, source: String },
    /// The model's hours, each compressed to `step`, scaled 1:`scale`.
    Day { scale: f64, step: Duration, hours: Vec<usize> },
}

#[derive(Debug, Clone, PartialEq)]
struct Args {
    targets: Targets,
    mode: Mode,
    users: usize,
    max_in_flight: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: auth-load --issuer URL [--gateway URL] [--sidecar URL] \
[--rate N | --model-scale N [--hour H] | --day SCALE [--step-secs N] [--hours A-B]] \
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

/// `7-10` (inclusive) or `0,8,12`.
fn parse_hours(s: &str) -> Result<Vec<usize>, String> {
    let hour = |v: &str| match v.trim().parse::<usize>() {
        Ok(h) if h < 24 => Ok(h),
        _ => Err(format!("--hours: {v:?} is not an hour from 0 to 23")),
    };
    let hours = if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (hour(a)?, hour(b)?);
        if a > b {
            return Err("--hours: a range runs from low to high".to_owned());
        }
        (a..=b).collect()
    } else {
        s.split(',').map(hour).collect::<Result<Vec<_>, _>>()?
    };
    Ok(hours)
}

fn check_targets(weights: &[(Route, f64)], gateway: bool, sidecar: bool) -> Result<(), String> {
    for &(route, w) in weights {
        let missing = match route {
            Route::Gateway | Route::Garbage => !gateway,
            Route::Sidecar => !sidecar,
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
    Ok(())
}

#[allow(clippy::too_many_lines)] // one flat match over the flags
fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut issuer = None;
    let mut gateway = None;
    let mut sidecar = None;
    let mut rate = None;
    let mut scale = None;
    let mut day = None;
    let mut hour = None;
    let mut hours = None;
    let mut step_secs = None;
    let mut duration = None;
    let mut users = 20usize;
    let mut max_in_flight = 256usize;
    let mut timeout_ms = 5000u64;
    let mut mix = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|_| format!("{flag}: not a number: {v:?}"));
        let count = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a whole number: {v:?}"));
        let size = |v: String| -> Result<usize, String> {
            usize::try_from(count(v)?).map_err(|_| format!("{flag}: too large"))
        };
        match flag.as_str() {
            "--issuer" => issuer = Some(value()?.trim_end_matches('/').to_owned()),
            "--gateway" => gateway = Some(value()?.trim_end_matches('/').to_owned()),
            "--sidecar" => sidecar = Some(value()?.trim_end_matches('/').to_owned()),
            "--rate" => rate = Some(number(value()?)?),
            "--model-scale" => scale = Some(number(value()?)?),
            "--day" => day = Some(number(value()?)?),
            "--hour" => hour = Some(size(value()?)?),
            "--hours" => hours = Some(parse_hours(&value()?)?),
            "--step-secs" => step_secs = Some(count(value()?)?),
            "--duration-secs" => duration = Some(count(value()?)?),
            "--users" => users = size(value()?)?,
            "--max-in-flight" => max_in_flight = size(value()?)?,
            "--timeout-ms" => timeout_ms = count(value()?)?,
            "--mix" => mix = Some(parse_mix(&value()?)?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let issuer = issuer.ok_or_else(|| format!("--issuer is required\n{USAGE}"))?;
    if users == 0 || max_in_flight == 0 || timeout_ms == 0 || duration == Some(0) || step_secs == Some(0) {
        return Err(
            "--users, --max-in-flight, --timeout-ms, --duration-secs and --step-secs must be positive".to_owned()
        );
    }
    let daily = LoadModel::default().daily();
    let mode = if let Some(day_scale) = day {
        if rate.is_some() || scale.is_some() || hour.is_some() || mix.is_some() || duration.is_some() {
            return Err("--day plays the model's own rates and mixes: no --rate, --model-scale, --hour, --mix or \
                        --duration-secs with it"
                .to_owned());
        }
        if !(day_scale.is_finite() && day_scale > 0.0) {
            return Err("--day: must be positive".to_owned());
        }
        // Every hour's mix has every route.
        check_targets(&model_weights(&daily), gateway.is_some(), sidecar.is_some())?;
        Mode::Day {
            scale: day_scale,
            step: Duration::from_secs(step_secs.unwrap_or(10)),
            hours: hours.unwrap_or_else(|| (0..24).collect()),
        }
    } else {
        if hours.is_some() || step_secs.is_some() {
            return Err("--hours and --step-secs go with --day".to_owned());
        }
        let hour = hour.unwrap_or(8);
        if hour > 23 {
            return Err("--hour: 0 to 23".to_owned());
        }
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
        check_targets(&weights, gateway.is_some(), sidecar.is_some())?;
        Mode::Step { rate, duration: Duration::from_secs(duration.unwrap_or(10)), weights, source }
    };
    Ok(Args {
        targets: Targets { issuer, gateway, sidecar },
        mode,
        users,
        max_in_flight,
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    format!("{v:.2}")
}

fn step_report(o: &mut String, weights: &[(Route, f64)], r: &RunReport) {
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    o.push_str("| route | share | answered | ok | errors | dropped | skipped | p50 | p90 | p99 | max |\n");
    o.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for ((route, w), s) in weights.iter().zip(&r.routes) {
        let h = &s.latency;
        let _ = writeln!(
            o,
            "| {} | {:.2}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
        );
    }
    let errors = error_list(weights, r);
    if !errors.is_empty() {
        let _ = writeln!(o, "\nErrors: {}.", errors.join("; "));
    }
}

fn error_list(weights: &[(Route, f64)], r: &RunReport) -> Vec<String> {
    weights
        .iter()
        .zip(&r.routes)
        .flat_map(|((route, _), s)| s.errors.iter().map(move |(k, n)| format!("{}: {k} x{n}", route.name())))
        .collect()
}

fn header(o: &mut String, args: &Args, what: &str) {
    let _ = writeln!(
        o,
        "Open-loop run: {what}; {} users, at most {} in flight, timeout {} ms.\n\n\
         Latency is measured from each request's scheduled send time (ms).\n",
        args.users,
        args.max_in_flight,
        args.timeout.as_millis(),
    );
}

/// One hour of a compressed day as played.
struct HourStep {
    hour: usize,
    rate: f64,
    weights: Vec<(Route, f64)>,
    report: RunReport,
}

/// One row per hour: the rate, totals, and p50 / p99 per route.
fn day_report(o: &mut String, steps: &[HourStep]) {
    o.push_str("| hour | rate/s | answered | errors | dropped | skipped |");
    for r in Route::ALL {
        let _ = write!(o, " {} p50 / p99 |", r.name());
    }
    o.push_str("\n|---|---:|---:|---:|---:|---:|");
    for _ in Route::ALL {
        o.push_str("---:|");
    }
    o.push('\n');
    for HourStep { hour, rate, weights, report: r } in steps {
        let sum = |f: &dyn Fn(&auth_load::load::RouteStats) -> u64| r.routes.iter().map(f).sum::<u64>();
        let _ = write!(
            o,
            "| {hour:02} | {rate:.2} | {} | {} | {} | {} |",
            sum(&|s| s.latency.count()),
            sum(&|s| s.error_count()),
            sum(&|s| s.dropped),
            sum(&|s| s.skipped),
        );
        for route in Route::ALL {
            let cell = weights
                .iter()
                .zip(&r.routes)
                .find(|((w, _), _)| *w == route)
                .filter(|(_, s)| s.latency.count() > 0)
                .map_or_else(
                    || "-".to_owned(),
                    |(_, s)| format!("{} / {}", ms(s.latency.quantile(0.5)), ms(s.latency.quantile(0.99))),
                );
            let _ = write!(o, " {cell} |");
        }
        o.push('\n');
    }
    let errors: Vec<String> = steps
        .iter()
        .flat_map(|s| error_list(&s.weights, &s.report).into_iter().map(move |e| format!("{:02}:00 {e}", s.hour)))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(o, "\nErrors: {}.", errors.join("; "));
    }
}

fn progress_line(prefix: &str, p: &Progress) -> String {
    format!(
        "\r{prefix}[{:>6.1} s] scheduled {}/{}  done {}  in flight {}  dropped {}  errors {}  p99 {} ms   ",
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

/// Plays one step, its requests numbered from `first`.
async fn play(
    stack: &Stack,
    args: &Args,
    weights: &[(Route, f64)],
    rate: f64,
    duration: Duration,
    first: u64,
    prefix: &str,
) -> Option<RunReport> {
    let plan = Plan { rate_per_s: rate, duration, max_in_flight: args.max_in_flight, timeout: args.timeout };
    let routes: Vec<Route> = weights.iter().map(|(r, _)| *r).collect();
    let mix = Mix::new(&weights.iter().map(|(_, w)| *w).collect::<Vec<_>>())?;
    let report = run_from(
        plan,
        first,
        routes.len(),
        &mix,
        |k, i| stack.request(routes[k], i),
        |p| {
            let _ = write!(std::io::stderr(), "{}", progress_line(prefix, p));
        },
    )
    .await;
    let _ = writeln!(std::io::stderr());
    Some(report)
}

async fn main_async(args: Args) -> Result<String, String> {
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0).to_string();
    let stack = Stack::new(args.targets.clone(), args.users, &run_id, args.timeout).map_err(|e| e.to_string())?;
    let _ = writeln!(std::io::stderr(), "auth-load: seeding {} users on {}", args.users, args.targets.issuer);
    stack.seed(8).await.map_err(|e| format!("seeding: {e}"))?;
    let mut o = String::new();
    match &args.mode {
        Mode::Step { rate, duration, weights, source } => {
            let report =
                play(&stack, &args, weights, *rate, *duration, 0, "").await.ok_or("--mix: no positive weight")?;
            header(
                &mut o,
                &args,
                &format!(
                    "{source} ({rate:.2} requests/s) for {} s, wall time {:.1} s",
                    duration.as_secs(),
                    report.elapsed.as_secs_f64()
                ),
            );
            step_report(&mut o, weights, &report);
        }
        Mode::Day { scale, step, hours } => {
            let daily = LoadModel::default().daily();
            let mut steps = Vec::new();
            // One numbering across the hours: each hour's few requests
            // continue the route sequence instead of starting it over.
            let mut first = 0u64;
            for &h in hours {
                let weights = model_weights_at(&daily, h);
                let rate = model_rate(&daily, h, *scale);
                let report = play(&stack, &args, &weights, rate, *step, first, &format!("{h:02}:00 "))
                    .await
                    .ok_or("no traffic in the model")?;
                first += report.last.planned;
                steps.push(HourStep { hour: h, rate, weights, report });
            }
            header(
                &mut o,
                &args,
                &format!(
                    "the load model's day scaled 1:{scale}, each hour played for {} s at its own rate and mix",
                    step.as_secs()
                ),
            );
            day_report(&mut o, &steps);
        }
    }
    Ok(o)
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

    fn step(a: &Args) -> (f64, Duration, Vec<(Route, f64)>) {
        match &a.mode {
            Mode::Step { rate, duration, weights, .. } => (*rate, *duration, weights.clone()),
            Mode::Day { .. } => panic!("expected one step"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let a = args("--issuer http://127.0.0.1:8080/ --gateway http://g --sidecar http://s").unwrap();
        assert_eq!(a.targets.issuer, "http://127.0.0.1:8080");
        let (rate, duration, weights) = step(&a);
        assert_eq!(rate, 20.0);
        assert_eq!(duration, Duration::from_secs(10));
        assert_eq!(weights.len(), 6, "the model's mix by default");
        let a = args("--issuer http://i --mix login=1,refresh=3 --rate 5 --duration-secs 2").unwrap();
        assert_eq!(step(&a).2, vec![(Route::Login, 1.0), (Route::Refresh, 3.0)]);
        assert_eq!(step(&a).1, Duration::from_secs(2));
        let a = args("--issuer http://i --gateway http://g --sidecar http://s --model-scale 10000").unwrap();
        assert!((1.9..2.0).contains(&step(&a).0), "{}", step(&a).0);
    }

    #[test]
    fn a_compressed_day() {
        let a = args("--issuer http://i --gateway http://g --sidecar http://s --day 10000").unwrap();
        assert_eq!(a.mode, Mode::Day { scale: 10_000.0, step: Duration::from_secs(10), hours: (0..24).collect() });
        let a = args("--issuer http://i --gateway http://g --sidecar http://s --day 100 --step-secs 3 --hours 7-9")
            .unwrap();
        assert_eq!(a.mode, Mode::Day { scale: 100.0, step: Duration::from_secs(3), hours: vec![7, 8, 9] });
        let a = args("--issuer http://i --gateway http://g --sidecar http://s --day 100 --hours 0,12,23").unwrap();
        assert!(matches!(a.mode, Mode::Day { ref hours, .. } if *hours == vec![0, 12, 23]));
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
        let full = "--issuer http://i --gateway http://g --sidecar http://s";
        assert!(args(&format!("{full} --day 100 --rate 5")).unwrap_err().contains("no --rate"));
        assert!(args(&format!("{full} --day 100 --mix login=1")).unwrap_err().contains("no --rate"));
        assert!(args(&format!("{full} --day 0")).unwrap_err().contains("positive"));
        assert!(args(&format!("{full} --day 100 --hours 9-7")).unwrap_err().contains("low to high"));
        assert!(args(&format!("{full} --day 100 --hours 24")).unwrap_err().contains("0 to 23"));
        assert!(args(&format!("{full} --hours 1-2")).unwrap_err().contains("go with --day"));
        assert!(args("--issuer http://i --day 100").unwrap_err().contains("--gateway is not given"));
    }
}
