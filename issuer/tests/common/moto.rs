//! moto for the integration tests (shared by `#[path]`): its endpoint, an
//! SDK configuration that never reaches for real credentials, and DynamoDB
//! stores on fresh tables behind the serialising proxy. A test crate using
//! `serialised_store` declares `mod fault_proxy` beside this module.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use issuer::store::dynamo::{DynamoConfig, DynamoStore};

/// The message of a DynamoDB test run without moto: it fails, never skips.
pub const MISSING_ENDPOINT: &str = "DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts a \
     DynamoDB-compatible server (moto), or point it at one";

/// moto's endpoint (`DYNAMODB_ENDPOINT`), without a trailing slash.
///
/// # Panics
/// With [`MISSING_ENDPOINT`] when it is not set.
pub fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_owned(),
        _ => panic!("{MISSING_ENDPOINT}"),
    }
}

/// Static credentials and region: moto accepts anything, and nothing here
/// may reach for real credentials (IMDS, profiles).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A DynamoDB store on fresh tables named after `prefix`, talking to moto
/// through a proxy that forwards one request at a time (the isolation
/// DynamoDB's own transactions give and moto's lack), kept alive by the
/// returned guard. Patient timeouts: behind the proxy a request waits for
/// those queued before it, on a machine busy with other tests.
pub async fn serialised_store(prefix: &str) -> (DynamoStore, crate::fault_proxy::FaultProxy) {
    let endpoint = endpoint();
    let sdk = sdk_config().await;
    let config = |endpoint: &str| DynamoConfig {
        users_table: format!("{prefix}-Users"),
        refresh_table: format!("{prefix}-RefreshTokens"),
        revocations_table: format!("{prefix}-Revocations"),
        endpoint: Some(endpoint.to_owned()),
        attempt_timeout: Duration::from_secs(20),
        operation_timeout: Duration::from_secs(60),
        ..DynamoConfig::default()
    };
    DynamoStore::new(&sdk, &config(&endpoint)).create_tables().await.expect("create_tables");
    let proxy = crate::fault_proxy::FaultProxy::start(&endpoint, true).await;
    (DynamoStore::new(&sdk, &config(&proxy.url())), proxy)
}
