//! `sidecar`: start-up only. Reads and validates the configuration (failing
//! fast with a message that names the bad setting), warms the JWKS cache,
//! and serves until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use sidecar::{Command, LogFormat, Sidecar, SidecarConfig};
use token_core::Verifier;
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let cmd = match SidecarConfig::from_args(std::env::args().skip(1), |n| std::env::var(n).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sidecar: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match cmd {
        Command::Help => {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", sidecar::config::usage());
            }
            return ExitCode::SUCCESS;
        }
        Command::Run(cfg) => *cfg,
    };
    init_tracing(cfg.log_format);
    let workers = cfg.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // On one core a current-thread runtime does the same work with less
    // cross-thread bookkeeping per request.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(cfg: SidecarConfig) -> ExitCode {
    let verifier = match Verifier::new(&cfg.verifier) {
        Ok(v) => v,
        Err(e) => {
            error!(error = %e, "cannot build the verifier");
            eprintln!("sidecar: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sidecar: SIDECAR_LISTEN: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    for (issuer, result) in cfg.verifier.issuers.iter().zip(verifier.warm_up().await) {
        match result {
            Ok(()) => info!(issuer = %issuer.issuer, "JWKS loaded"),
            Err(e) => warn!(issuer = %issuer.issuer, error = %e, "JWKS not loaded yet; not ready until it is"),
        }
    }
    verifier.spawn_refresh();
    match verifier.revocation_feed() {
        // Readiness waits for the first complete listing; verification does
        // not (unless REVOCATION_STALE_POLICY=refuse).
        Some(feed) => {
            info!(feed = %cfg.verifier.revocation.feed_url.as_deref().unwrap_or(""), "following the revocation feed");
            feed.spawn_loop();
        }
        None => warn!(
            "REVOCATION_FEED_URL=off: revocation checks are OFF; logged-out and revoked access tokens stay valid until they expire"
        ),
    }
    let sidecar = Arc::new(Sidecar::new(verifier, cfg.request_timeout));
    // Handlers first, then the readiness line: a signal right after it drains.
    let shutdown = sidecar::shutdown_signal();
    let addr = listener.local_addr().map_or_else(|_| cfg.listen.to_string(), |a| a.to_string());
    info!(listen = %addr, "sidecar listening");
    match sidecar::serve(listener, sidecar, cfg.limits(), shutdown).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
