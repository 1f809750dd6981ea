//! Items as DynamoDB stores them, and the records they map to.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::{Family, NewRefresh, RefreshRecord, StoreError, UserRecord};

pub(super) const USER_PREFIX: &str = "USER#";
pub(super) const EMAIL_PREFIX: &str = "EMAIL#";
pub(super) const TOKEN_PREFIX: &str = "TOKEN#";
pub(super) const FAMILY_PREFIX: &str = "FAMILY#";

/// An item: attribute name to value.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn token_item(new: &NewRefresh) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(format!("{TOKEN_PREFIX}{}", new.token_hash))),
        ("familyId".to_owned(), s(&new.family_id)),
        ("userId".to_owned(), s(&new.user_id)),
        ("issuedAt".to_owned(), n(new.issued_at)),
        ("expiresAt".to_owned(), n(new.expires_at)),
    ])
}

pub(super) fn req_s(item: &Item, name: &str, record: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        Some(_) => Err(StoreError::Corrupt(format!("{record}: {name} is not a string"))),
        None => Err(StoreError::Corrupt(format!("{record}: {name} is missing"))),
    }
}

pub(super) fn opt_n<T: FromStr>(item: &Item, name: &str, record: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => {
            v.parse().map(Some).map_err(|_| StoreError::Corrupt(format!("{record}: {name} is not a valid number")))
        }
        Some(_) => Err(StoreError::Corrupt(format!("{record}: {name} is not a number"))),
    }
}

pub(super) fn req_n<T: FromStr>(item: &Item, name: &str, record: &str) -> Result<T, StoreError> {
    opt_n(item, name, record)?.ok_or_else(|| StoreError::Corrupt(format!("{record}: {name} is missing")))
}

pub(super) fn user_from_item(item: &Item) -> Result<UserRecord, StoreError> {
    const RECORD: &str = "user";
    Ok(UserRecord {
        user_id: req_s(item, "userId", RECORD)?,
        email: req_s(item, "email", RECORD)?,
        password_hash: req_s(item, "passwordHash", RECORD)?,
        scope: req_s(item, "scope", RECORD)?,
        failed_logins: opt_n(item, "failedLogins", RECORD)?.unwrap_or(0),
        locked_until: opt_n(item, "lockedUntil", RECORD)?.unwrap_or(0),
        tokens_valid_after: opt_n(item, "tokensValidAfter", RECORD)?.unwrap_or(0),
        password_changed_at: opt_n(item, "passwordChangedAt", RECORD)?.unwrap_or(0),
    })
}

pub(super) fn token_from_item(token_hash: &str, item: &Item) -> Result<RefreshRecord, StoreError> {
    const RECORD: &str = "refresh token";
    Ok(RefreshRecord {
        token_hash: token_hash.to_owned(),
        family_id: req_s(item, "familyId", RECORD)?,
        user_id: req_s(item, "userId", RECORD)?,
        issued_at: req_n(item, "issuedAt", RECORD)?,
        expires_at: req_n(item, "expiresAt", RECORD)?,
        used_at: opt_n(item, "usedAt", RECORD)?,
    })
}

pub(super) fn family_from_item(family_id: &str, item: &Item) -> Result<Family, StoreError> {
    const RECORD: &str = "token family";
    Ok(Family {
        family_id: family_id.to_owned(),
        user_id: req_s(item, "familyUser", RECORD)?,
        created_at: req_n(item, "createdAt", RECORD)?,
        expires_at: req_n(item, "expiresAt", RECORD)?,
        revoked_at: opt_n(item, "revokedAt", RECORD)?,
    })
}
