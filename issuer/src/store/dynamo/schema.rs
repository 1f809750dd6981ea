//! The table schema the store is written against: for tests and local
//! tooling (deployed tables come from the SAM template, which must match).

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::DynamoStore;
use super::error::{build_err, sdk_err};
use crate::store::StoreError;

/// Name of the GSI on the Users table (partition key `email`).
pub const EMAIL_INDEX: &str = "email-index";
/// Name of the GSI on the RefreshTokens table (partition key `familyUser`).
pub const FAMILY_USER_INDEX: &str = "family-user-index";

impl DynamoStore {
    /// Creates the three tables (Users and RefreshTokens with their GSIs,
    /// Revocations with its sort key; on-demand capacity), waits until they
    /// are active and enables TTL on `expiresAt` of the RefreshTokens and
    /// Revocations tables. Tables that already exist are kept. For tests and local tooling;
    /// deployed tables come from the SAM template.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if DynamoDB refuses or cannot be reached.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let users_index = GlobalSecondaryIndex::builder()
            .index_name(EMAIL_INDEX)
            .key_schema(key_element("email")?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes("userId")
                    .non_key_attributes("passwordHash")
                    .non_key_attributes("scope")
                    .non_key_attributes("failedLogins")
                    .non_key_attributes("lockedUntil")
                    .non_key_attributes("tokensValidAfter")
                    .build(),
            )
            .build()
            .map_err(build_err)?;
        self.create_table(&self.users, "email", users_index).await?;

        let family_index = GlobalSecondaryIndex::builder()
            .index_name(FAMILY_USER_INDEX)
            .key_schema(key_element("familyUser")?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(build_err)?;
        self.create_table(&self.refresh, "familyUser", family_index).await?;
        self.create_revocations_table().await?;

        for table in [&self.users, &self.refresh, &self.revocations] {
            self.client.wait_until_table_exists().table_name(table).wait(Duration::from_secs(120)).await.map_err(
                |e| {
                    tracing::warn!(table = %table, error = %DisplayErrorContext(&e), "table did not become active");
                    StoreError::Unavailable(format!("DynamoDB CreateTable: table {table} did not become active"))
                },
            )?;
        }

        for table in [&self.refresh, &self.revocations] {
            self.enable_ttl(table).await?;
        }
        Ok(())
    }

    /// Turns on TTL on `expiresAt` unless it is on (or turning on).
    async fn enable_ttl(&self, table: &str) -> Result<(), StoreError> {
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_err("DescribeTimeToLive", &e))?;
        let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
        if !matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name("expiresAt")
                        .enabled(true)
                        .build()
                        .map_err(build_err)?,
                )
                .send()
                .await
                .map_err(|e| sdk_err("UpdateTimeToLive", &e))?;
        }
        Ok(())
    }

    /// The Revocations table: `pk` (S) + `sk` (S), no index.
    async fn create_revocations_table(&self) -> Result<(), StoreError> {
        let result = self
            .client
            .create_table()
            .table_name(&self.revocations)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute_definition("pk")?)
            .attribute_definitions(attribute_definition("sk")?)
            .key_schema(key_element("pk")?)
            .key_schema(
                KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().map_err(build_err)?,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_err("CreateTable", &e)),
        }
    }

    async fn create_table(&self, table: &str, index_key: &str, index: GlobalSecondaryIndex) -> Result<(), StoreError> {
        let result = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute_definition("pk")?)
            .attribute_definitions(attribute_definition(index_key)?)
            .key_schema(key_element("pk")?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_err("CreateTable", &e)),
        }
    }
}

fn key_element(name: &str) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(KeyType::Hash).build().map_err(build_err)
}

fn attribute_definition(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}
