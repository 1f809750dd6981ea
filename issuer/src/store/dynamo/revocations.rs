//! The revocation feed on DynamoDB: one item per event in the Revocations
//! table (key `pk` + `sk`, TTL attribute `expiresAt`).
//!
//! - `pk = REVOKE#<hour>`: the hour of the event time (`time_ms / 3_600_000`),
//!   so the events of an hour are one partition, sorted by
//! - `sk = <time_ms, 13 digits>#<event id>`: the feed order.
//! - `k` (`session` | `subject`), `rid` (B, the 16-byte
//!   [`RevocationId`]: hashed, never the family or user id), `before` (N,
//!   subject events), `expiresAt` (N, the event's `until`: DynamoDB's TTL
//!   deletes it some time after; readers compare `until` themselves).
//!
//! Reading after a cursor is one `Query` on the cursor's hour with
//! `sk BETWEEN <after the cursor> AND <as_of>`, then one per following hour
//! up to the hour of `as_of` (usually one or two `Query`s per page),
//! `ConsistentRead`, `Limit` = what is left of the page. Never a `Scan`.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use token_core::revocation::{FeedEvent, RevocationId};

use super::error::{build_err, sdk_err};
use super::items::{FAMILY_PREFIX, Item, USER_PREFIX, n, opt_n, req_n, req_s, s};
use super::{DynamoStore, Tx, condition_failed};
use crate::store::{FeedCursor, FeedWindow, RevocationEvent, RevocationPage, RevocationTarget, StoreError};

/// Partition key prefix of event items.
pub(super) const REVOKE_PREFIX: &str = "REVOKE#";
/// One partition per hour of events.
pub(super) const BUCKET_MS: u64 = 3_600_000;

pub(super) fn bucket_pk(time_ms: u64) -> String {
    format!("{REVOKE_PREFIX}{}", time_ms / BUCKET_MS)
}

/// The sort key of an event. 13 digits hold every millisecond up to 2286.
pub(super) fn event_sk(time_ms: u64, event_id: &str) -> String {
    format!("{time_ms:013}#{event_id}")
}

/// The smallest sort key strictly after `cursor` (event ids are lowercase
/// hex, so `<id>!` sorts after `<id>` and before every greater id).
fn sk_after(cursor: &FeedCursor) -> String {
    match &cursor.event_id {
        Some(id) => format!("{:013}#{id}!", cursor.time_ms),
        None => format!("{:013}#", cursor.time_ms),
    }
}

/// The largest sort key at or before `time_ms` (`~` sorts after hex).
fn sk_through(time_ms: u64) -> String {
    format!("{time_ms:013}#~")
}

/// The item of an event.
pub(super) fn event_item(event: &RevocationEvent) -> Item {
    let feed = event.feed_event();
    let (kind, id) = match feed {
        FeedEvent::Session { id, .. } => ("session", id),
        FeedEvent::Subject { id, .. } => ("subject", id),
    };
    let mut item = Item::from([
        ("pk".to_owned(), s(bucket_pk(event.time_ms))),
        ("sk".to_owned(), s(event_sk(event.time_ms, &event.event_id))),
        ("k".to_owned(), s(kind)),
        ("rid".to_owned(), AttributeValue::B(Blob::new(id.0.to_vec()))),
        ("expiresAt".to_owned(), n(event.until)),
    ]);
    if let FeedEvent::Subject { before, .. } = feed {
        item.insert("before".to_owned(), n(before));
    }
    item
}

/// An event item back: its position and the event.
fn event_from_item(item: &Item) -> Result<(FeedCursor, FeedEvent), StoreError> {
    const RECORD: &str = "revocation event";
    let sk = req_s(item, "sk", RECORD)?;
    let position = sk
        .split_once('#')
        .and_then(|(t, id)| Some(FeedCursor { time_ms: t.parse().ok()?, event_id: Some(id.to_owned()) }))
        .ok_or_else(|| StoreError::Corrupt(format!("{RECORD}: sk is not <time>#<id>")))?;
    let id = match item.get("rid") {
        Some(AttributeValue::B(b)) => RevocationId(
            b.as_ref().try_into().map_err(|_| StoreError::Corrupt(format!("{RECORD}: rid is not 16 bytes")))?,
        ),
        _ => return Err(StoreError::Corrupt(format!("{RECORD}: rid is missing or not binary"))),
    };
    let until = req_n(item, "expiresAt", RECORD)?;
    let event = match req_s(item, "k", RECORD)?.as_str() {
        "session" => FeedEvent::Session { id, until },
        "subject" => FeedEvent::Subject {
            id,
            before: opt_n(item, "before", RECORD)?
                .ok_or_else(|| StoreError::Corrupt(format!("{RECORD}: subject event without before")))?,
            until,
        },
        other => return Err(StoreError::Corrupt(format!("{RECORD}: unknown kind {other:?}"))),
    };
    Ok((position, event))
}

impl DynamoStore {
    /// See [`crate::store::Store::record_revocation`]: one
    /// `TransactWriteItems` of the family's revocation (if any), the event
    /// and the user's `tokensValidAfter` (subject events).
    pub(super) async fn record_revocation_tx(&self, event: &RevocationEvent, now: u64) -> Result<bool, StoreError> {
        let family = match &event.target {
            RevocationTarget::Session { family_id } => Some(family_id.as_str()),
            RevocationTarget::Subject { family_id, .. } => family_id.as_deref(),
        };
        let mut items = Vec::with_capacity(3);
        if let Some(family_id) = family {
            let revoke = Update::builder()
                .table_name(&self.refresh)
                .key("pk", s(format!("{FAMILY_PREFIX}{family_id}")))
                .update_expression("SET #rev = :now")
                .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#rev)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#rev", "revokedAt")
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(revoke).build());
        }
        let put = Put::builder()
            .table_name(&self.revocations)
            .set_item(Some(event_item(event)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().put(put).build());
        let user_index = items.len();
        if let RevocationTarget::Subject { user_id, before, .. } = &event.target {
            let raise = Update::builder()
                .table_name(&self.users)
                .key("pk", s(format!("{USER_PREFIX}{user_id}")))
                .update_expression("SET #tva = :before")
                .condition_expression("attribute_exists(#pk) AND (attribute_not_exists(#tva) OR #tva < :before)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#tva", "tokensValidAfter")
                .expression_attribute_values(":before", n(*before))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(raise).build());
        }
        for _ in 0..2 {
            match self.transact("TransactWriteItems", items.clone()).await? {
                Tx::Committed => return Ok(true),
                Tx::Cancelled(codes) => {
                    // An earlier attempt of this call committed and its
                    // response was lost (servers without idempotency tokens).
                    if self.own_event(event).await? {
                        return Ok(true);
                    }
                    if family.is_some() && condition_failed(&codes, 0) {
                        return Ok(false);
                    }
                    if items.len() > user_index && condition_failed(&codes, user_index) {
                        // tokensValidAfter is already at or past `before`
                        // (or the user is gone): the event alone.
                        items.truncate(user_index);
                        continue;
                    }
                    let what = if condition_failed(&codes, user_index - 1) {
                        "event id already taken"
                    } else {
                        "transaction cancelled"
                    };
                    return Err(StoreError::Unavailable(format!("DynamoDB TransactWriteItems: {what}")));
                }
            }
        }
        Err(StoreError::Unavailable("DynamoDB TransactWriteItems: revocation kept being cancelled".to_owned()))
    }

    /// Is `event` stored (by an earlier attempt of this call)?
    pub(super) async fn own_event(&self, event: &RevocationEvent) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.revocations)
            .key("pk", s(bucket_pk(event.time_ms)))
            .key("sk", s(event_sk(event.time_ms, &event.event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("GetItem", &e))?;
        Ok(out.item.is_some_and(|item| item == event_item(event)))
    }

    /// See [`crate::store::Store::revocations_after`].
    pub(super) async fn list_revocations(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> Result<RevocationPage, StoreError> {
        let window = FeedWindow::new(after, limit, now_ms);
        let mut events = Vec::new();
        if window.start.time_ms > window.as_of_ms {
            return Ok(window.page(events, None));
        }
        let through = sk_through(window.as_of_ms);
        let mut read = 0usize;
        for bucket in window.start.time_ms / BUCKET_MS..=window.as_of_ms / BUCKET_MS {
            let from = if bucket == window.start.time_ms / BUCKET_MS {
                sk_after(&window.start)
            } else {
                sk_after(&FeedCursor::at(bucket * BUCKET_MS))
            };
            let mut start_key = None;
            loop {
                let left = i32::try_from(window.limit - read).unwrap_or(i32::MAX);
                self.feed_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let out = self
                    .client
                    .query()
                    .table_name(&self.revocations)
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :through")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":pk", s(format!("{REVOKE_PREFIX}{bucket}")))
                    .expression_attribute_values(":from", s(&from))
                    .expression_attribute_values(":through", s(&through))
                    .consistent_read(true)
                    .limit(left)
                    .set_exclusive_start_key(start_key)
                    .send()
                    .await
                    .map_err(|e| sdk_err("Query", &e))?;
                let mut last = None;
                for item in out.items() {
                    let (position, event) = event_from_item(item)?;
                    read += 1;
                    // TTL deletion is late: expiry is compared here.
                    if event.until() > window.now_s {
                        events.push(event);
                    }
                    last = Some(position);
                }
                if read >= window.limit {
                    return Ok(window.page(events, last));
                }
                start_key = out.last_evaluated_key;
                if start_key.is_none() {
                    break;
                }
            }
        }
        Ok(window.page(events, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size DynamoDB bills an item at (its documented rules): each
    /// attribute's name plus its value; strings and binaries by their bytes,
    /// numbers about one byte per two significant digits plus one.
    fn billed_size(item: &Item) -> usize {
        item.iter()
            .map(|(name, value)| {
                name.len()
                    + match value {
                        AttributeValue::S(v) => v.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        AttributeValue::N(v) => {
                            let digits = v.trim_start_matches('0').len();
                            digits.div_ceil(2) + 1
                        }
                        other => panic!("unexpected attribute {other:?}"),
                    }
            })
            .sum()
    }

    /// The figures in issuer/README.md (cost model): an event item is about
    /// 100 bytes, one write unit, 40 per 4 KB read unit.
    #[test]
    fn event_items_are_about_100_bytes() {
        let now = 1_900_000_000u64;
        let subject = RevocationEvent {
            event_id: "0123456789abcdef".into(),
            time_ms: now * 1000 + 999,
            until: now + 1020,
            target: RevocationTarget::Subject { user_id: "u".repeat(22), before: now + 1, family_id: None },
        };
        let session =
            RevocationEvent { target: RevocationTarget::Session { family_id: "f".repeat(22) }, ..subject.clone() };
        assert_eq!(billed_size(&event_item(&subject)), 101);
        assert_eq!(billed_size(&event_item(&session)), 89);
    }

    #[test]
    fn sort_keys_follow_the_feed_order() {
        let a = event_sk(1_900_000_000_000, "00000000000000ff");
        let b = event_sk(1_900_000_000_000, "0000000000000100");
        let c = event_sk(1_900_000_000_001, "0000000000000000");
        assert!(a < b && b < c);
        let after_a = sk_after(&FeedCursor { time_ms: 1_900_000_000_000, event_id: Some("00000000000000ff".into()) });
        assert!(a < after_a && after_a < b, "{after_a}");
        let from_t = sk_after(&FeedCursor::at(1_900_000_000_000));
        assert!(from_t < a);
        assert!(b < sk_through(1_900_000_000_000) && sk_through(1_900_000_000_000) < c);
        assert_eq!(bucket_pk(3_600_000 * 5 + 1), "REVOKE#5");
    }
}
