//! Drives a Lambda bootstrap through the Runtime API on loopback, as Lambda
//! does (a fresh trace id per invocation), and prints figures:
//! init time (process start to the first `invocation/next`, JWKS fetched from
//! loopback during init), invocation rates, resident memory at
//! checkpoints, and the round-trip percentiles of every invocation (from
//! queueing the event to receiving the function's response: what Lambda
//! bills as duration, plus the loopback hops).
//!
//! ```text
//! lambda-bench --bin target/release/authorizer --invocations 100000 \
//!     --checkpoints 10000,100000 --distinct 100000 [--alg EdDSA] [--same-trace]
//! lambda-bench --bin target/release/authorizer --init-only --runs 20
//! lambda-bench --bin target/release/issuer-lambda --event-file ev.json --env K=V ... \
//!     --invocations 1000000 --checkpoints 10000,100000
//! lambda-bench ... --times-out rt.txt     # also every round trip, in ns, one a line
//! ```
//! With `--event-file`, every invocation sends that event (no tokens are
//! minted) and `--env` adds variables for the bootstrap.
//! Every figure is printed as one `BENCH key=value ...` line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e_tests::tokens::claims;
use e2e_tests::{Flags, JwksServer, Outcome, RuntimeApi};
use token_core::{Algorithm, SigningKey};

const ISS: &str = "https://issuer.test";

struct Args {
    bin: String,
    invocations: u64,
    checkpoints: Vec<u64>,
    distinct: usize,
    alg: Algorithm,
    same_trace: bool,
    init_only: bool,
    runs: usize,
    event_file: Option<String>,
    env: Vec<(String, String)>,
    times_out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        bin: "target/release/authorizer".into(),
        invocations: 10_000,
        checkpoints: Vec::new(),
        distinct: 1000,
        alg: Algorithm::EdDSA,
        same_trace: false,
        init_only: false,
        runs: 10,
        event_file: None,
        env: Vec::new(),
        times_out: None,
    };
    let mut f = Flags::from_env();
    while let Some(flag) = f.next_flag() {
        match flag.as_str() {
            "--bin" => a.bin = f.value(&flag),
            "--invocations" => a.invocations = f.parse(&flag),
            "--checkpoints" => a.checkpoints = f.value(&flag).split(',').map(|s| s.parse().unwrap()).collect(),
            "--distinct" => a.distinct = f.parse(&flag),
            "--alg" => a.alg = f.parse(&flag),
            "--same-trace" => a.same_trace = true,
            "--init-only" => a.init_only = true,
            "--runs" => a.runs = f.parse(&flag),
            "--event-file" => a.event_file = Some(f.value(&flag)),
            "--times-out" => a.times_out = Some(f.value(&flag)),
            "--env" => {
                let kv = f.value(&flag);
                let (k, v) = kv.split_once('=').expect("--env K=V");
                a.env.push((k.to_owned(), v.to_owned()));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let n = a.invocations;
    a.checkpoints.retain(|&c| c <= n);
    a.checkpoints.push(n);
    a.checkpoints.sort_unstable();
    a.checkpoints.dedup();
    a
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn spawn(bin: &str, rt: &RuntimeApi, jwks: &JwksServer, env: &[(String, String)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .envs(rt.lambda_env())
        .env("AUTH_ISSUER", ISS)
        .env("AUTH_AUDIENCE", "api")
        .env("AUTH_JWKS_URL", jwks.url())
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd.spawn().unwrap()
}

fn event(token: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"TOKEN","authorizationToken":"Bearer {token}","methodArn":"arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets"}}"#
    )
    .into_bytes()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = args();
    let key = SigningKey::generate(a.alg, "k1").unwrap();
    let jwks = JwksServer::start(&[&key]).await;

    if a.init_only {
        let mut inits = Vec::new();
        for _ in 0..a.runs {
            let rt = RuntimeApi::start().await;
            let t0 = Instant::now();
            let mut child = spawn(&a.bin, &rt, &jwks, &a.env);
            while rt.first_poll().is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
                assert!(t0.elapsed() < Duration::from_secs(10), "no poll within 10 s");
            }
            inits.push(rt.first_poll().unwrap().duration_since(t0));
            let _ = child.kill();
            let _ = child.wait();
        }
        inits.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "BENCH what=init runs={} min_ms={:.2} median_ms={:.2} max_ms={:.2} jwks_fetches={}",
            inits.len(),
            ms(inits[0]),
            ms(inits[inits.len() / 2]),
            ms(inits[inits.len() - 1]),
            jwks.fetches()
        );
        return;
    }

    let events: Vec<Vec<u8>> = match &a.event_file {
        Some(path) => vec![std::fs::read(path).unwrap()],
        None => {
            eprintln!("minting {} {} tokens...", a.distinct, a.alg);
            (0..a.distinct.max(1))
                .map(|i| event(&key.sign_any(&claims(ISS, "api", &format!("user-{i}"), "pets:read", 3600)).unwrap()))
                .collect()
        }
    };
    let rt = RuntimeApi::start().await;
    let mut child = spawn(&a.bin, &rt, &jwks, &a.env);
    let pid = child.id();
    let mut done = 0u64;
    let started = Instant::now();
    let mut window = Instant::now();
    let mut last = 0u64;
    let mut round_trips_ns: Vec<u64> = Vec::with_capacity(usize::try_from(a.invocations).unwrap_or(0));
    for &cp in &a.checkpoints {
        while done < cp {
            let ev = events[(done as usize) % events.len()].clone();
            let t0 = Instant::now();
            let outcome = if a.same_trace {
                rt.invoke_with_trace(ev, "Root=1-00000000-000000000000000000000000;Sampled=0".into()).await
            } else {
                rt.invoke(ev).await
            };
            round_trips_ns.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
            assert!(matches!(outcome, Outcome::Response(_)), "invocation {done}: {outcome:?}");
            done += 1;
        }
        let secs = window.elapsed().as_secs_f64();
        println!(
            "BENCH what=memory bin={} invocations={done} distinct_tokens={} unique_trace_ids={} rss_kib={} hwm_kib={} invocations_per_s={:.0}",
            a.bin,
            events.len(),
            !a.same_trace,
            status_kib(pid, "VmRSS:"),
            status_kib(pid, "VmHWM:"),
            (done - last) as f64 / secs
        );
        last = done;
        window = Instant::now();
    }
    if let Some(path) = &a.times_out {
        let lines: String = round_trips_ns.iter().map(|ns| format!("{ns}\n")).collect();
        std::fs::write(path, lines).unwrap();
    }
    round_trips_ns.sort_unstable();
    let pct = |p: f64| {
        let i = ((round_trips_ns.len() as f64 * p).ceil() as usize).clamp(1, round_trips_ns.len()) - 1;
        round_trips_ns[i] as f64 / 1000.0
    };
    let mean = round_trips_ns.iter().sum::<u64>() as f64 / round_trips_ns.len() as f64 / 1000.0;
    println!(
        "BENCH what=round_trip bin={} invocations={done} distinct_events={} mean_us={mean:.1} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1}",
        a.bin,
        events.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    let _ = child.kill();
    let _ = child.wait();
}
