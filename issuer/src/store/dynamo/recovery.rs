//! Verified sign-up and password reset on DynamoDB. Both live in the
//! RefreshTokens table, whose TTL on `expiresAt` deletes them once expired
//! (late: readers compare `expiresAt` themselves):
//!
//! - `SIGNUP#<token hash>`: a registration waiting for verification
//!   (`email`, `passwordHash`, `scope`, `createdAt`, `expiresAt`). It claims
//!   nothing: the address is claimed by the email marker only when the
//!   registration is completed, in the same transaction that deletes it.
//! - `RESET#<user id>`: the user's one reset token (`tokenHash`,
//!   `createdAt`, `expiresAt`); a new one overwrites it.
//!
//! A password change is one `TransactWriteItems`: the proof (the reset item
//! deleted on condition of its hash and expiry, or the stored hash
//! compared), the user's new `passwordHash`, `passwordChangedAt` and raised
//! `tokensValidAfter`,
//! and the revocation event.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::error::{build_err, sdk_err};
use super::items::{EMAIL_PREFIX, USER_PREFIX, n, req_n, req_s, s};
use super::revocations::event_item;
use super::{DynamoStore, Tx, condition_failed};
use crate::store::{
    NewUser, PasswordChange, PasswordProof, PendingSignup, ResetToken, RevocationTarget, SignupOutcome, Store,
    StoreError,
};

const SIGNUP_PREFIX: &str = "SIGNUP#";
const RESET_PREFIX: &str = "RESET#";

impl DynamoStore {
    pub(super) async fn put_signup(&self, p: &PendingSignup) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.refresh)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(format!("{SIGNUP_PREFIX}{}", p.token_hash))),
                ("email".to_owned(), s(&p.email)),
                ("passwordHash".to_owned(), s(&p.password_hash)),
                ("scope".to_owned(), s(&p.scope)),
                ("createdAt".to_owned(), n(p.created_at)),
                ("expiresAt".to_owned(), n(p.expires_at)),
            ])))
            .send()
            .await
            .map_err(|e| sdk_err("PutItem", &e))?;
        Ok(())
    }

    pub(super) async fn complete_signup_tx(
        &self,
        token_hash: &str,
        user_id: &str,
        now: u64,
    ) -> Result<SignupOutcome, StoreError> {
        const RECORD: &str = "pending registration";
        let pk = format!("{SIGNUP_PREFIX}{token_hash}");
        let Some(item) = self.get("GetItem", &self.refresh, pk.clone()).await? else {
            return Ok(SignupOutcome::Invalid);
        };
        let expires_at: u64 = req_n(&item, "expiresAt", RECORD)?;
        if expires_at <= now {
            self.delete_signup(&pk).await?;
            return Ok(SignupOutcome::Invalid);
        }
        let user = NewUser {
            user_id: user_id.to_owned(),
            email: req_s(&item, "email", RECORD)?,
            password_hash: req_s(&item, "passwordHash", RECORD)?,
            scope: req_s(&item, "scope", RECORD)?,
            created_at: now,
        };
        let used_up = Delete::builder()
            .table_name(&self.refresh)
            .key("pk", s(&pk))
            .condition_expression("attribute_exists(#pk) AND #exp > :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_err)?;
        let (user_put, marker_put) = self.user_puts(&user)?;
        let items = vec![
            TransactWriteItem::builder().delete(used_up).build(),
            TransactWriteItem::builder().put(user_put).build(),
            TransactWriteItem::builder().put(marker_put).build(),
        ];
        let codes = match self.transact("TransactWriteItems", items).await? {
            Tx::Committed => return self.created(user_id).await,
            Tx::Cancelled(codes) => codes,
        };
        // An earlier attempt of this very call committed (its response was
        // lost): the marker holds this call's fresh user id.
        let marker = self.get("GetItem", &self.users, format!("{EMAIL_PREFIX}{}", user.email)).await?;
        if let Some(m) = &marker
            && req_s(m, "userId", "email marker")? == user_id
        {
            return self.created(user_id).await;
        }
        if condition_failed(&codes, 0) {
            // Used by a concurrent call (or expired meanwhile).
            return Ok(SignupOutcome::Invalid);
        }
        if condition_failed(&codes, 2) || marker.is_some() {
            // The address has an account: this registration is used up.
            self.delete_signup(&pk).await?;
            return Ok(SignupOutcome::EmailTaken);
        }
        Err(StoreError::Unavailable("DynamoDB TransactWriteItems: transaction cancelled".to_owned()))
    }

    async fn created(&self, user_id: &str) -> Result<SignupOutcome, StoreError> {
        self.get_user(user_id)
            .await?
            .map(SignupOutcome::Created)
            .ok_or_else(|| StoreError::Corrupt("a user just created cannot be read".to_owned()))
    }

    async fn delete_signup(&self, pk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.refresh)
            .key("pk", s(pk))
            .send()
            .await
            .map_err(|e| sdk_err("DeleteItem", &e))?;
        Ok(())
    }

    pub(super) async fn put_reset_item(&self, r: &ResetToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.refresh)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(format!("{RESET_PREFIX}{}", r.user_id))),
                ("tokenHash".to_owned(), s(&r.token_hash)),
                ("createdAt".to_owned(), n(r.created_at)),
                ("expiresAt".to_owned(), n(r.expires_at)),
            ])))
            .send()
            .await
            .map_err(|e| sdk_err("PutItem", &e))?;
        Ok(())
    }

    pub(super) async fn get_reset_item(&self, user_id: &str) -> Result<Option<ResetToken>, StoreError> {
        const RECORD: &str = "reset token";
        let Some(item) = self.get("GetItem", &self.refresh, format!("{RESET_PREFIX}{user_id}")).await? else {
            return Ok(None);
        };
        Ok(Some(ResetToken {
            user_id: user_id.to_owned(),
            token_hash: req_s(&item, "tokenHash", RECORD)?,
            created_at: req_n(&item, "createdAt", RECORD)?,
            expires_at: req_n(&item, "expiresAt", RECORD)?,
        }))
    }

    pub(super) async fn change_password_tx(&self, ch: &PasswordChange, now: u64) -> Result<bool, StoreError> {
        let RevocationTarget::Subject { user_id, before, family_id: None } = &ch.event.target else {
            return Err(StoreError::Unavailable("change_password needs a subject event without a family".to_owned()));
        };
        if *user_id != ch.user_id {
            return Err(StoreError::Unavailable("change_password: the event names another user".to_owned()));
        }
        let proof_item = match &ch.proof {
            PasswordProof::ResetToken { token_hash } => {
                let delete = Delete::builder()
                    .table_name(&self.refresh)
                    .key("pk", s(format!("{RESET_PREFIX}{}", ch.user_id)))
                    .condition_expression("#th = :th AND #exp > :now")
                    .expression_attribute_names("#th", "tokenHash")
                    .expression_attribute_names("#exp", "expiresAt")
                    .expression_attribute_values(":th", s(token_hash))
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .map_err(build_err)?;
                Some(TransactWriteItem::builder().delete(delete).build())
            }
            PasswordProof::CurrentHash { .. } => None,
        };
        let event_put = Put::builder()
            .table_name(&self.revocations)
            .set_item(Some(event_item(&ch.event)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        // First with `tokensValidAfter` raised; if it is at or past `before`
        // already (another revocation this second), without touching it.
        for raise in [true, false] {
            let mut update = Update::builder()
                .table_name(&self.users)
                .key("pk", s(format!("{USER_PREFIX}{}", ch.user_id)))
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#ph", "passwordHash")
                .expression_attribute_names("#tva", "tokensValidAfter")
                .expression_attribute_names("#pca", "passwordChangedAt")
                .expression_attribute_values(":new", s(&ch.new_hash))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":before", n(*before));
            let mut condition = "attribute_exists(#pk)".to_owned();
            if let PasswordProof::CurrentHash { hash } = &ch.proof {
                condition.push_str(" AND #ph = :old");
                update = update.expression_attribute_values(":old", s(hash));
            }
            if raise {
                condition.push_str(" AND (attribute_not_exists(#tva) OR #tva < :before)");
                update = update.update_expression("SET #ph = :new, #pca = :now, #tva = :before");
            } else {
                condition.push_str(" AND #tva >= :before");
                update = update.update_expression("SET #ph = :new, #pca = :now");
            }
            let update = update.condition_expression(condition).build().map_err(build_err)?;
            let mut items: Vec<TransactWriteItem> = proof_item.iter().cloned().collect();
            let user_index = items.len();
            items.push(TransactWriteItem::builder().update(update).build());
            items.push(TransactWriteItem::builder().put(event_put.clone()).build());
            let codes = match self.transact("TransactWriteItems", items).await? {
                Tx::Committed => return Ok(true),
                Tx::Cancelled(codes) => codes,
            };
            if self.own_event(&ch.event).await? {
                // An earlier attempt of this call committed.
                return Ok(true);
            }
            if user_index == 1 && condition_failed(&codes, 0) {
                return Ok(false);
            }
            if !condition_failed(&codes, user_index) {
                return Err(StoreError::Unavailable("DynamoDB TransactWriteItems: transaction cancelled".to_owned()));
            }
            // The user condition failed: which part?
            let Some(user) = self.get_user(&ch.user_id).await? else {
                return Ok(false);
            };
            if let PasswordProof::CurrentHash { hash } = &ch.proof
                && user.password_hash != *hash
            {
                return Ok(false);
            }
            if user.tokens_valid_after < *before {
                // Moved back under us between the attempts: not ours to fix.
                return Err(StoreError::Unavailable("DynamoDB TransactWriteItems: user kept changing".to_owned()));
            }
        }
        Err(StoreError::Unavailable("DynamoDB TransactWriteItems: password change kept being cancelled".to_owned()))
    }
}
