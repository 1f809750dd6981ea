//! The authorizer's Lambda bootstrap: init once, then serve invocations.

use std::sync::Arc;

use authorizer::{Authorizer, AuthorizerConfig, AuthorizerEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use token_core::Verifier;
use tracing::{error, info, warn};

// One invocation at a time per sandbox: a current-thread runtime is the
// smallest and starts fastest. Background JWKS refreshes run while the
// runtime waits for the next event.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = match AuthorizerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            // Fails the init: Lambda reports it, and the line names the variable.
            error!(error = %e, "invalid configuration");
            return Err(e.into());
        }
    };
    let verifier = Verifier::new(&config.verifier).inspect_err(|e| error!(error = %e, "cannot build the verifier"))?;
    for (issuer, result) in config.verifier.issuers.iter().zip(verifier.warm_up().await) {
        match result {
            Ok(()) => info!(issuer = %issuer.issuer, "JWKS loaded"),
            Err(e) => warn!(issuer = %issuer.issuer, error = %e, "JWKS not loaded at init; will retry"),
        }
    }
    verifier.spawn_refresh();
    // The first complete listing of the revocation feed at init, like the
    // JWKS: init runs once per sandbox with a full CPU. Afterwards each
    // invocation only starts a poll in the background when one is due.
    match verifier.revocation_feed() {
        Some(feed) => match feed.poll().await {
            Ok(out) => {
                info!(entries = feed.set().len(), pages = out.pages, complete = out.complete, "revocations loaded")
            }
            Err(e) => warn!(error = %e, "revocations not loaded at init; will retry"),
        },
        None => warn!(
            "REVOCATION_FEED_URL=off: revocation checks are OFF; logged-out and revoked access tokens stay valid until they expire"
        ),
    }
    // The trace id reaches us in each invocation's Context; exporting it
    // through setenv on every invocation leaks on glibc (see the README).
    // This function makes no AWS SDK calls that would read the variable.
    lambda_runtime::set_trace_id_env(false);
    let authorizer = Arc::new(Authorizer::new(verifier, &config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| {
        let authorizer = Arc::clone(&authorizer);
        async move { authorizer.handle(&event.payload).await }
    }))
    .await
}
