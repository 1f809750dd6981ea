//! The DynamoDB store.
//!
//! Three tables, laid out as `docs/DESIGN.md` says (the SAM template is written
//! against the same layout):
//!
//! - `Users` (key `pk`): user items `USER#<userId>` and email markers
//!   `EMAIL#<email>`; GSI `email-index` on `email`.
//! - `RefreshTokens` (key `pk`, TTL attribute `expiresAt`): token items
//!   `TOKEN#<hash>` and family items `FAMILY#<familyId>`; GSI
//!   `family-user-index` on `familyUser`.
//! - `Revocations` (key `pk` + sort key `sk`, TTL attribute `expiresAt`):
//!   the revocation feed, one item per event (module `revocations`).
//!
//! Every operation that writes more than one item is one `TransactWriteItems`
//! request, so an outage (timeout, throttling, lost connection) leaves either
//! everything or nothing written. The SDK gives every `TransactWriteItems`
//! call an idempotency token (`ClientRequestToken`) that its own retries
//! reuse, so DynamoDB answers a retry after a lost response without running
//! the transaction twice. Servers without idempotency tokens (moto) cancel
//! such a retry instead; the store then recognises its own write (the email
//! marker holds this call's user id, the successor token is this call's
//! `new`) and reports success rather than `EmailTaken` or `AlreadyUsed`.
//! Distinct calls never share a user id or a token hash (both are fresh
//! random values), so this cannot turn another call's write into ours.
//!
//! Errors: throttling, timeouts, connection failures, 5xx, and requests
//! DynamoDB refuses (missing table, validation) are
//! [`StoreError::Unavailable`] naming the operation and the error code only,
//! never item contents; records that do not parse are
//! [`StoreError::Corrupt`]. Each call is bounded by the timeouts of
//! [`DynamoConfig`] (1 s connect, 1 s per attempt, 3 s per operation, 3
//! attempts by default). Transactions cancelled only by conflicts with other
//! transactions are retried a few times with jitter (the SDK does not).
//!
//! Consistency: reads that a decision depends on are consistent (`get_user`,
//! `get_refresh`, the email-marker fallback). Two reads cannot be, because
//! DynamoDB has no consistent reads on a GSI:
//! - [`Store::find_user_by_email`] returns the `email-index` projection, whose
//!   `failedLogins`/`lockedUntil`/`passwordHash` may lag a write by a moment.
//!   The decisions that matter are conditional writes (`record_login_success`
//!   refuses if locked at `now`), so a stale read cannot unlock an account.
//! - [`Store::revoke_user_families`] finds families through
//!   `family-user-index`; a family created within the index's propagation
//!   delay (normally well under a second) can be missed.
//!
//! Failed logins: [`Store::record_login_failure`] writes the count and the
//! lock in one `UpdateItem`. Below the threshold it is a plain
//! `ADD failedLogins :one`, conditional on the new count staying below the
//! threshold. When that condition fails, DynamoDB returns the current item
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) and the store writes
//! `SET failedLogins = :count, lockedUntil = :until` conditional on the count
//! it saw (compare-and-set; a lost race means another failure was counted,
//! so up to 32 concurrent failures of one account all succeed). The lock
//! duration depends on the new count and DynamoDB update expressions cannot
//! compute `2^n` or `min`, so this is how the count and the lock stay one
//! atomic write.

mod error;
mod items;
mod recovery;
mod revocations;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use tokio::task::JoinSet;

use self::error::{CONDITIONAL_CHECK_FAILED, TRANSACTION_CONFLICT, build_err, sdk_err};
use self::items::{
    EMAIL_PREFIX, FAMILY_PREFIX, Item, TOKEN_PREFIX, USER_PREFIX, family_from_item, n, opt_n, req_s, s,
    token_from_item, token_item, user_from_item,
};
pub use self::schema::{EMAIL_INDEX, FAMILY_USER_INDEX};
use super::{
    AttemptCounter, AttemptOutcome, Family, FeedCursor, NewRefresh, NewUser, PasswordChange, PendingSignup,
    RefreshRecord, ResetToken, RevocationEvent, RevocationPage, RotateOutcome, SignupOutcome, Store, StoreError,
    UserRecord, lockout_secs,
};

/// Login attempt counters live in the RefreshTokens table (its TTL on
/// `expiresAt` deletes ended windows): `ATTEMPT#<keyed hash>#<window>`.
const ATTEMPT_PREFIX: &str = "ATTEMPT#";

/// Attempts of a write cancelled only by conflicts with other transactions
/// on the same items (DynamoDB does not retry these itself).
const CONFLICT_ATTEMPTS: u32 = 6;
/// Compare-and-set attempts of `record_login_failure`. A failed attempt
/// means another writer's attempt succeeded, so up to this many concurrent
/// failures of one account all get counted; past it (a flood of parallel
/// guesses on one account) the excess calls are `Unavailable`, writing
/// nothing.
const FAILURE_CAS_ATTEMPTS: u32 = 32;
/// Families revoked concurrently by `revoke_user_families`.
const REVOKE_CONCURRENCY: usize = 16;

/// Table names and client settings of a [`DynamoStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// The Users table. Defaults to `Users` (`ISSUER_USERS_TABLE`).
    pub users_table: String,
    /// The RefreshTokens table. Defaults to `RefreshTokens`
    /// (`ISSUER_REFRESH_TABLE`).
    pub refresh_table: String,
    /// The Revocations table (key `pk` + `sk`, TTL on `expiresAt`).
    /// Defaults to `Revocations`.
    pub revocations_table: String,
    /// Endpoint override, e.g. `http://127.0.0.1:5000` for moto or DynamoDB
    /// Local (`DYNAMODB_ENDPOINT`). Defaults to none: the regional endpoint.
    pub endpoint: Option<String>,
    /// TCP connect timeout. Defaults to 1 s.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt. Defaults to 1 s.
    pub attempt_timeout: Duration,
    /// Timeout of one operation, retries included. Defaults to 3 s.
    pub operation_timeout: Duration,
    /// Attempts per operation, the first included (throttling, 5xx, I/O and
    /// timeouts are retried with jittered exponential backoff). Defaults to 3.
    pub max_attempts: u32,
    /// First retry backoff (doubling, jittered). Defaults to 25 ms.
    pub initial_backoff: Duration,
    /// Largest retry backoff. Defaults to 1 s.
    pub max_backoff: Duration,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            users_table: "Users".to_owned(),
            refresh_table: "RefreshTokens".to_owned(),
            revocations_table: "Revocations".to_owned(),
            endpoint: None,
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(3),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// The DynamoDB implementation of [`Store`]. Cheap to clone (the SDK client
/// is shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    users: String,
    refresh: String,
    revocations: String,
    /// `Query` requests sent by [`Store::revocations_after`] (tests count
    /// them per page).
    feed_queries: Arc<AtomicU64>,
}

impl DynamoStore {
    /// A store on the tables of `config`, with the region and credentials of
    /// `sdk` and the timeouts, retries and endpoint of `config`.
    #[must_use]
    pub fn new(sdk: &SdkConfig, config: &DynamoConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(config.max_attempts.max(1))
            .with_initial_backoff(config.initial_backoff)
            .with_max_backoff(config.max_backoff);
        let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .retry_config(retries)
            .interceptor(crate::trace::TraceHeader);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(builder.build()),
            users: config.users_table.clone(),
            refresh: config.refresh_table.clone(),
            revocations: config.revocations_table.clone(),
            feed_queries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The Revocations table name.
    #[must_use]
    pub fn revocations_table(&self) -> &str {
        &self.revocations
    }

    /// How many `Query` requests the feed has sent so far (all clones of
    /// this store together).
    #[must_use]
    pub fn feed_queries(&self) -> u64 {
        self.feed_queries.load(Ordering::Relaxed)
    }

    /// The SDK client (for tooling and tests).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The Users table name.
    #[must_use]
    pub fn users_table(&self) -> &str {
        &self.users
    }

    /// The RefreshTokens table name.
    #[must_use]
    pub fn refresh_table(&self) -> &str {
        &self.refresh
    }

    /// A consistent `GetItem` by `pk`.
    async fn get(&self, op: &'static str, table: &str, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err(op, &e))?;
        Ok(out.item)
    }

    /// Runs one transaction. Cancellations caused only by conflicts with
    /// other in-flight transactions are retried (jittered backoff) up to
    /// [`CONFLICT_ATTEMPTS`] times; any other cancellation is returned with
    /// its per-item reason codes, in the order of `items`.
    async fn transact(&self, op: &'static str, items: Vec<TransactWriteItem>) -> Result<Tx, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(Tx::Committed),
                Err(err) => err,
            };
            let codes = match &err {
                SdkError::ServiceError(se) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(e) => Some(
                        e.cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_owned())
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                },
                _ => None,
            };
            let Some(codes) = codes else {
                return Err(sdk_err(op, &err));
            };
            if let Some(other) =
                codes.iter().find(|c| !matches!(c.as_str(), "None" | CONDITIONAL_CHECK_FAILED | TRANSACTION_CONFLICT))
            {
                // Throttling, capacity, validation: DynamoDB wrote nothing.
                tracing::warn!(operation = op, reason = %other, "DynamoDB transaction cancelled");
                return Err(StoreError::Unavailable(format!("DynamoDB {op}: transaction cancelled ({other})")));
            }
            let conflict_only =
                !codes.iter().any(|c| c == CONDITIONAL_CHECK_FAILED) && codes.iter().any(|c| c == TRANSACTION_CONFLICT);
            if conflict_only && attempt < CONFLICT_ATTEMPTS {
                conflict_backoff(attempt).await;
                continue;
            }
            return Ok(Tx::Cancelled(codes));
        }
    }

    /// Sends an `UpdateItem`, retrying conflicts with in-flight transactions.
    /// `Ok(Err(old))` when the condition failed, with the item as it was if
    /// the request asked for `ALL_OLD` on condition failure and it exists.
    async fn update(
        &self,
        op: &'static str,
        req: UpdateItemFluentBuilder,
    ) -> Result<Result<UpdateItemOutput, Option<Item>>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match req.clone().send().await {
                Ok(out) => return Ok(Ok(out)),
                Err(SdkError::ServiceError(se)) => match se.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => return Ok(Err(e.item)),
                    UpdateItemError::TransactionConflictException(_) if attempt < CONFLICT_ATTEMPTS => {
                        conflict_backoff(attempt).await;
                    }
                    other => {
                        let code = other.code().unwrap_or("unknown error").to_owned();
                        tracing::warn!(operation = op, code = %code, "DynamoDB request failed");
                        return Err(StoreError::Unavailable(format!("DynamoDB {op}: {code}")));
                    }
                },
                Err(err) => return Err(sdk_err(op, &err)),
            }
        }
    }

    /// Why a rotation was cancelled, from consistent reads of the token and
    /// its family. `None`: the token is still rotatable (the cancellation was
    /// a conflict or a duplicate successor hash).
    ///
    /// An expired token or a dead family is `Inactive` whether or not the
    /// token was used: TTL may already have deleted it, and the answer must
    /// not depend on when.
    async fn classify_rotation(
        &self,
        old_hash: &str,
        new: &NewRefresh,
        now: u64,
    ) -> Result<Option<RotateOutcome>, StoreError> {
        let Some(item) = self.get("GetItem", &self.refresh, format!("{TOKEN_PREFIX}{old_hash}")).await? else {
            return Ok(Some(RotateOutcome::Inactive));
        };
        let token = token_from_item(old_hash, &item)?;
        if token.expires_at <= now || token.family_id != new.family_id || token.user_id != new.user_id {
            return Ok(Some(RotateOutcome::Inactive));
        }
        let family = self.get_family(&token.family_id).await?;
        if !family.is_some_and(|f| family_active(&f, now)) {
            return Ok(Some(RotateOutcome::Inactive));
        }
        match token.used_at {
            // Used now, and the successor stored is this call's own: an
            // earlier attempt of this call committed and its response was
            // lost. Other calls have other successors and see AlreadyUsed.
            Some(used_at) if used_at == now && self.own_token(new).await? => Ok(Some(RotateOutcome::Rotated)),
            Some(used_at) => Ok(Some(RotateOutcome::AlreadyUsed { used_at })),
            None => Ok(None),
        }
    }

    /// Is `new` stored exactly as given (written by an earlier attempt of
    /// the same call)?
    async fn own_token(&self, new: &NewRefresh) -> Result<bool, StoreError> {
        let Some(item) = self.get("GetItem", &self.refresh, format!("{TOKEN_PREFIX}{}", new.token_hash)).await? else {
            return Ok(false);
        };
        let stored = token_from_item(&new.token_hash, &item)?;
        Ok(stored.family_id == new.family_id
            && stored.user_id == new.user_id
            && stored.issued_at == new.issued_at
            && stored.expires_at == new.expires_at)
    }

    /// Are `family` and `first` stored exactly as given?
    async fn own_session(&self, family: &Family, first: &NewRefresh) -> Result<bool, StoreError> {
        if !self.own_token(first).await? {
            return Ok(false);
        }
        Ok(self.get_family(&family.family_id).await?.is_some_and(|stored| {
            stored.user_id == family.user_id
                && stored.created_at == family.created_at
                && stored.expires_at == family.expires_at
        }))
    }

    async fn get_family(&self, family_id: &str) -> Result<Option<Family>, StoreError> {
        self.get("GetItem", &self.refresh, format!("{FAMILY_PREFIX}{family_id}"))
            .await?
            .map(|item| family_from_item(family_id, &item))
            .transpose()
    }

    fn put_token(&self, new: &NewRefresh) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.refresh)
            .set_item(Some(token_item(new)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn check_family_active(&self, family_id: &str, now: u64) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.refresh)
            .key("pk", s(format!("{FAMILY_PREFIX}{family_id}")))
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#rev) AND #exp > :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#rev", "revokedAt")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The puts that create a user: the user item and its email marker,
    /// each only if absent.
    pub(super) fn user_puts(&self, user: &NewUser) -> Result<(Put, Put), StoreError> {
        let user_put = Put::builder()
            .table_name(&self.users)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(format!("{USER_PREFIX}{}", user.user_id))),
                ("userId".to_owned(), s(&user.user_id)),
                ("email".to_owned(), s(&user.email)),
                ("passwordHash".to_owned(), s(&user.password_hash)),
                ("scope".to_owned(), s(&user.scope)),
                ("failedLogins".to_owned(), n(0)),
                ("lockedUntil".to_owned(), n(0)),
                ("createdAt".to_owned(), n(user.created_at)),
            ])))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        let marker_put = Put::builder()
            .table_name(&self.users)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(format!("{EMAIL_PREFIX}{}", user.email))),
                ("userId".to_owned(), s(&user.user_id)),
            ])))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        Ok((user_put, marker_put))
    }

    /// Sets `revokedAt` on a family that has none. `Ok(false)` if it was
    /// already revoked or does not exist.
    async fn revoke_if_active(client: Client, table: String, pk: String, now: u64) -> Result<bool, StoreError> {
        let req = client
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk))
            .update_expression("SET #rev = :now")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#rev)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#rev", "revokedAt")
            .expression_attribute_values(":now", n(now));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match req.clone().send().await {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(se)) => match se.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(_) => return Ok(false),
                    UpdateItemError::TransactionConflictException(_) if attempt < CONFLICT_ATTEMPTS => {
                        conflict_backoff(attempt).await;
                    }
                    other => {
                        let code = other.code().unwrap_or("unknown error").to_owned();
                        tracing::warn!(operation = "UpdateItem", code = %code, "DynamoDB request failed");
                        return Err(StoreError::Unavailable(format!("DynamoDB UpdateItem: {code}")));
                    }
                },
                Err(err) => return Err(sdk_err("UpdateItem", &err)),
            }
        }
    }
}

/// The result of a transaction that DynamoDB answered.
enum Tx {
    Committed,
    /// Reason codes per item (`None`, `ConditionalCheckFailed`,
    /// `TransactionConflict`); may be empty if the service gave none.
    Cancelled(Vec<String>),
}

fn condition_failed(codes: &[String], index: usize) -> bool {
    codes.get(index).is_some_and(|c| c == CONDITIONAL_CHECK_FAILED)
}

async fn conflict_backoff(attempt: u32) {
    let ceiling_ms = 10u64.saturating_mul(1u64 << attempt.min(6));
    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=ceiling_ms))).await;
}

impl Store for DynamoStore {
    async fn create_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let (user_put, marker_put) = self.user_puts(user)?;
        let items = vec![
            TransactWriteItem::builder().put(user_put).build(),
            TransactWriteItem::builder().put(marker_put).build(),
        ];
        if let Tx::Committed = self.transact("TransactWriteItems", items).await? {
            return Ok(());
        }
        // Cancelled: the marker decides. Ours (this call's user id) means an
        // earlier attempt of this call committed and its response was lost.
        let marker = self.get("GetItem", &self.users, format!("{EMAIL_PREFIX}{}", user.email)).await?;
        match marker {
            Some(m) if req_s(&m, "userId", "email marker")? == user.user_id => Ok(()),
            Some(_) => Err(StoreError::EmailTaken),
            None => Err(StoreError::Unavailable("DynamoDB TransactWriteItems: transaction cancelled".to_owned())),
        }
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.users)
            .index_name(EMAIL_INDEX)
            .key_condition_expression("#email = :email")
            .expression_attribute_names("#email", "email")
            .expression_attribute_values(":email", s(email))
            .limit(2)
            .send()
            .await
            .map_err(|e| sdk_err("Query", &e))?;
        if let [item] = out.items() {
            return user_from_item(item).map(Some);
        }
        // Nothing (a just-registered user not yet in the index) or more than
        // one (cannot happen while markers guard uniqueness): the marker is
        // the authority, read consistently.
        let Some(marker) = self.get("GetItem", &self.users, format!("{EMAIL_PREFIX}{email}")).await? else {
            return Ok(None);
        };
        let user_id = req_s(&marker, "userId", "email marker")?;
        match self.get_user(&user_id).await? {
            Some(user) if user.email == email => Ok(Some(user)),
            Some(_) => Err(StoreError::Corrupt("email marker points to a user with another email".to_owned())),
            None => Err(StoreError::Corrupt("email marker points to a missing user".to_owned())),
        }
    }

    async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.get("GetItem", &self.users, format!("{USER_PREFIX}{user_id}"))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    async fn record_login_failure(
        &self,
        user_id: &str,
        now: u64,
        lock_after: u32,
        max_lock_secs: u64,
    ) -> Result<UserRecord, StoreError> {
        let base = self
            .client
            .update_item()
            .table_name(&self.users)
            .key("pk", s(format!("{USER_PREFIX}{user_id}")))
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#fl", "failedLogins")
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // `None`: the current count is unknown, try the plain increment.
        // `Some(c)`: the count seen last (`None` inside: attribute absent).
        let mut seen: Option<Option<u32>> = None;
        for _ in 0..FAILURE_CAS_ATTEMPTS {
            let req = match seen {
                None => {
                    let condition = if lock_after >= 2 {
                        "attribute_exists(#pk) AND (attribute_not_exists(#fl) OR #fl < :limit)"
                    } else {
                        "attribute_exists(#pk) AND #fl < :limit"
                    };
                    base.clone()
                        .update_expression("ADD #fl :one")
                        .condition_expression(condition)
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":limit", n(u64::from(lock_after.saturating_sub(1))))
                }
                Some(current) => {
                    let count = current.unwrap_or(0).saturating_add(1);
                    let req = match current {
                        None => {
                            base.clone().condition_expression("attribute_exists(#pk) AND attribute_not_exists(#fl)")
                        }
                        Some(c) => base
                            .clone()
                            .condition_expression("attribute_exists(#pk) AND #fl = :seen")
                            .expression_attribute_values(":seen", n(u64::from(c))),
                    };
                    let req = req.expression_attribute_values(":count", n(u64::from(count)));
                    if count >= lock_after {
                        req.update_expression("SET #fl = :count, #lu = :until")
                            .expression_attribute_names("#lu", "lockedUntil")
                            .expression_attribute_values(
                                ":until",
                                n(now.saturating_add(lockout_secs(count, lock_after, max_lock_secs))),
                            )
                    } else {
                        req.update_expression("SET #fl = :count")
                    }
                }
            };
            match self.update("UpdateItem", req).await? {
                Ok(out) => {
                    let item = out
                        .attributes
                        .ok_or_else(|| StoreError::Corrupt("UpdateItem returned no attributes".to_owned()))?;
                    return user_from_item(&item);
                }
                Err(Some(old)) => {
                    if seen.is_some() {
                        // Lost a race: let the winners' requests clear.
                        tokio::time::sleep(Duration::from_millis(rand::random_range(0..=3))).await;
                    }
                    seen = Some(opt_n::<u32>(&old, "failedLogins", "user")?);
                }
                Err(None) => return Err(StoreError::Corrupt(format!("no user {user_id} to record a failed login on"))),
            }
        }
        Err(StoreError::Unavailable(
            "DynamoDB UpdateItem: failed-login count kept changing under concurrent updates".to_owned(),
        ))
    }

    async fn record_login_success(&self, user_id: &str, now: u64, new_hash: Option<&str>) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.users)
            .key("pk", s(format!("{USER_PREFIX}{user_id}")))
            .condition_expression("attribute_exists(#pk) AND (attribute_not_exists(#lu) OR #lu <= :now)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#fl", "failedLogins")
            .expression_attribute_names("#lu", "lockedUntil")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now));
        req = match new_hash {
            Some(hash) => req
                .update_expression("SET #fl = :zero, #lu = :zero, #ph = :hash")
                .expression_attribute_names("#ph", "passwordHash")
                .expression_attribute_values(":hash", s(hash)),
            None => req.update_expression("SET #fl = :zero, #lu = :zero"),
        };
        Ok(self.update("UpdateItem", req).await?.is_ok())
    }

    async fn create_session(&self, family: &Family, first: &NewRefresh) -> Result<(), StoreError> {
        if first.family_id != family.family_id || first.user_id != family.user_id {
            return Err(StoreError::Unavailable(
                "create_session refused: the first token does not belong to the family".to_owned(),
            ));
        }
        let mut family_item = HashMap::from([
            ("pk".to_owned(), s(format!("{FAMILY_PREFIX}{}", family.family_id))),
            ("familyUser".to_owned(), s(&family.user_id)),
            ("createdAt".to_owned(), n(family.created_at)),
            ("expiresAt".to_owned(), n(family.expires_at)),
        ]);
        if let Some(revoked_at) = family.revoked_at {
            family_item.insert("revokedAt".to_owned(), n(revoked_at));
        }
        let family_put = Put::builder()
            .table_name(&self.refresh)
            .set_item(Some(family_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        let items = vec![TransactWriteItem::builder().put(family_put).build(), self.put_token(first)?];
        match self.transact("TransactWriteItems", items).await? {
            Tx::Committed => Ok(()),
            Tx::Cancelled(_) if self.own_session(family, first).await? => Ok(()),
            Tx::Cancelled(codes) => {
                let what = if condition_failed(&codes, 0) {
                    "family already exists"
                } else if condition_failed(&codes, 1) {
                    "refresh token already exists"
                } else {
                    "transaction cancelled"
                };
                Err(StoreError::Unavailable(format!("DynamoDB TransactWriteItems: {what}")))
            }
        }
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<(RefreshRecord, Family)>, StoreError> {
        let Some(item) = self.get("GetItem", &self.refresh, format!("{TOKEN_PREFIX}{token_hash}")).await? else {
            return Ok(None);
        };
        let token = token_from_item(token_hash, &item)?;
        // A missing family: deleted by TTL after its absolute lifetime. The
        // token is dead with it.
        Ok(self.get_family(&token.family_id).await?.map(|family| (token, family)))
    }

    async fn rotate(&self, old_hash: &str, new: &NewRefresh, now: u64) -> Result<RotateOutcome, StoreError> {
        let mark_used = Update::builder()
            .table_name(&self.refresh)
            .key("pk", s(format!("{TOKEN_PREFIX}{old_hash}")))
            .update_expression("SET #used = :now")
            .condition_expression(
                "attribute_exists(#pk) AND attribute_not_exists(#used) AND #exp > :now AND #fam = :fam AND #uid = :uid",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#used", "usedAt")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#fam", "familyId")
            .expression_attribute_names("#uid", "userId")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":fam", s(&new.family_id))
            .expression_attribute_values(":uid", s(&new.user_id))
            .build()
            .map_err(build_err)?;
        let items = vec![
            TransactWriteItem::builder().update(mark_used).build(),
            self.put_token(new)?,
            self.check_family_active(&new.family_id, now)?,
        ];
        for _ in 0..2 {
            match self.transact("TransactWriteItems", items.clone()).await? {
                Tx::Committed => return Ok(RotateOutcome::Rotated),
                Tx::Cancelled(codes) => {
                    if let Some(outcome) = self.classify_rotation(old_hash, new, now).await? {
                        return Ok(outcome);
                    }
                    if condition_failed(&codes, 1) {
                        return Err(StoreError::Unavailable(
                            "DynamoDB TransactWriteItems: the new refresh token already exists".to_owned(),
                        ));
                    }
                    // Still rotatable: conflicts to the end; try once more.
                }
            }
        }
        Err(StoreError::Unavailable("DynamoDB TransactWriteItems: rotation kept conflicting".to_owned()))
    }

    async fn add_to_family(&self, new: &NewRefresh, now: u64) -> Result<bool, StoreError> {
        let items = vec![self.check_family_active(&new.family_id, now)?, self.put_token(new)?];
        match self.transact("TransactWriteItems", items).await? {
            Tx::Committed => Ok(true),
            Tx::Cancelled(codes) if condition_failed(&codes, 0) => Ok(false),
            Tx::Cancelled(codes) if condition_failed(&codes, 1) => {
                if self.own_token(new).await? {
                    return Ok(true);
                }
                Err(StoreError::Unavailable(
                    "DynamoDB TransactWriteItems: the new refresh token already exists".to_owned(),
                ))
            }
            Tx::Cancelled(_) => match self.get_family(&new.family_id).await? {
                Some(family) if family_active(&family, now) => {
                    Err(StoreError::Unavailable("DynamoDB TransactWriteItems: transaction cancelled".to_owned()))
                }
                _ => Ok(false),
            },
        }
    }

    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.refresh)
            .key("pk", s(format!("{FAMILY_PREFIX}{family_id}")))
            .update_expression("SET #rev = if_not_exists(#rev, :now)")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#rev", "revokedAt")
            .expression_attribute_values(":now", n(now));
        // A missing family has nothing to revoke: the condition keeps the
        // update from creating one.
        self.update("UpdateItem", req).await.map(|_| ())
    }

    async fn revoke_user_families(&self, user_id: &str, now: u64) -> Result<u32, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.refresh)
                .index_name(FAMILY_USER_INDEX)
                .key_condition_expression("#fu = :uid")
                .expression_attribute_names("#fu", "familyUser")
                .expression_attribute_values(":uid", s(user_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_err("Query", &e))?;
            for item in out.items() {
                keys.push(req_s(item, "pk", "family index entry")?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }

        let mut revoked = 0u32;
        let mut first_error = None;
        let mut tasks = JoinSet::new();
        let mut keys = keys.into_iter();
        loop {
            while tasks.len() < REVOKE_CONCURRENCY {
                let Some(pk) = keys.next() else { break };
                tasks.spawn(Self::revoke_if_active(self.client.clone(), self.refresh.clone(), pk, now));
            }
            let Some(joined) = tasks.join_next().await else { break };
            match joined {
                Ok(Ok(true)) => revoked = revoked.saturating_add(1),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(StoreError::Unavailable(format!("revocation task failed: {e}")));
                }
            }
        }
        // Revocation is idempotent: on error, a retry revokes the rest.
        match first_error {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    async fn take_attempt(&self, counters: &[AttemptCounter], now: u64) -> Result<AttemptOutcome, StoreError> {
        if counters.is_empty() {
            return Ok(AttemptOutcome::Granted);
        }
        let mut items = Vec::with_capacity(counters.len());
        for c in counters {
            let (_, end) = c.window(now);
            let update = Update::builder()
                .table_name(&self.refresh)
                .key("pk", s(format!("{ATTEMPT_PREFIX}{}", c.window_key(now))))
                .update_expression("ADD #n :one SET #exp = :end")
                .condition_expression("attribute_not_exists(#n) OR #n < :limit")
                .expression_attribute_names("#n", "attempts")
                .expression_attribute_names("#exp", "expiresAt")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":end", n(end))
                .expression_attribute_values(":limit", n(u64::from(c.limit)))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        match self.transact("TransactWriteItems", items).await? {
            Tx::Committed => Ok(AttemptOutcome::Granted),
            Tx::Cancelled(codes) => {
                let mut at_limit = 0u8;
                let mut retry_after = 0u64;
                for (i, c) in counters.iter().enumerate().take(8) {
                    if condition_failed(&codes, i) {
                        at_limit |= 1 << i;
                        retry_after = retry_after.max(c.window(now).1.saturating_sub(now).max(1));
                    }
                }
                if at_limit == 0 {
                    // Conflicts with other attempts to the end: nothing was
                    // counted, so nothing may be checked either.
                    return Err(StoreError::Unavailable(
                        "DynamoDB TransactWriteItems: attempt counters kept conflicting".to_owned(),
                    ));
                }
                Ok(AttemptOutcome::Refused { retry_after, at_limit })
            }
        }
    }

    async fn clear_attempts(&self, counter: &AttemptCounter, now: u64) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.refresh)
            .key("pk", s(format!("{ATTEMPT_PREFIX}{}", counter.window_key(now))))
            .send()
            .await
            .map_err(|e| sdk_err("DeleteItem", &e))?;
        Ok(())
    }

    async fn record_revocation(&self, event: &RevocationEvent, now: u64) -> Result<bool, StoreError> {
        self.record_revocation_tx(event, now).await
    }

    async fn revocations_after(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> Result<RevocationPage, StoreError> {
        self.list_revocations(after, limit, now_ms).await
    }

    async fn create_signup(&self, signup: &PendingSignup) -> Result<(), StoreError> {
        self.put_signup(signup).await
    }

    async fn complete_signup(&self, token_hash: &str, user_id: &str, now: u64) -> Result<SignupOutcome, StoreError> {
        self.complete_signup_tx(token_hash, user_id, now).await
    }

    async fn put_reset(&self, reset: &ResetToken) -> Result<(), StoreError> {
        self.put_reset_item(reset).await
    }

    async fn get_reset(&self, user_id: &str) -> Result<Option<ResetToken>, StoreError> {
        self.get_reset_item(user_id).await
    }

    async fn change_password(&self, change: &PasswordChange, now: u64) -> Result<bool, StoreError> {
        self.change_password_tx(change, now).await
    }
}

fn family_active(family: &Family, now: u64) -> bool {
    family.revoked_at.is_none() && family.expires_at > now
}
