//! Lambda bootstrap of the issuer.
//!
//! Everything is read and built once, at init: configuration
//! (`ISSUER_*`), the key ring from Secrets Manager
//! (`ISSUER_SIGNING_KEY_SECRET_ARN`), the DynamoDB store, the mail transport
//! (SES by default, `ISSUER_MAIL`). A bad setting fails the init with a
//! message naming the variable.
use std::sync::Arc;

use issuer::config::{IssuerConfig, Shape, StoreKind};
use issuer::mail::Mailer;
use issuer::store::dynamo::DynamoStore;
use issuer::store::sqlite::SqliteStore;
use issuer::{App, KeyRing};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let cfg = IssuerConfig::from_env(Shape::Lambda).map_err(|e| format!("configuration: {e}"))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let arn = cfg.signing_key_secret_arn.clone().ok_or("ISSUER_SIGNING_KEY_SECRET_ARN: required on Lambda")?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let keys = KeyRing::from_secrets_manager(&secrets, &arn).await.map_err(|e| format!("signing keys: {e}"))?;
    tracing::info!(kid = keys.active().kid(), keys = keys.keys().len(), "signing keys loaded");
    let mailer = Mailer::from_config(&cfg, Some(&sdk)).await.map_err(|e| format!("mail: {e}"))?;
    match cfg.store {
        StoreKind::DynamoDb => {
            let store = DynamoStore::new(&sdk, &cfg.dynamo_config());
            let app = Arc::new(App::new(cfg, store, keys).map_err(|e| e.to_string())?.with_mailer(mailer));
            issuer::lambda::run(app).await
        }
        StoreKind::Sqlite => {
            // Only for experiments: a Lambda's disk is neither durable nor shared.
            let opts = cfg.sqlite_options();
            let store = SqliteStore::open_in_dir(&cfg.data_dir, &opts).map_err(|e| format!("store: {e}"))?;
            let app = Arc::new(App::new(cfg, store, keys).map_err(|e| e.to_string())?.with_mailer(mailer));
            issuer::lambda::run(app).await
        }
    }
}
