//! DynamoDB's capacity rules applied to real requests: item sizes from the
//! attribute values, global secondary index entries from the table's
//! schema, and each request's charge as [`StoreOp`]s of the bill (whose
//! [`StoreOp::units`] does the rounding), so the meter and the bill share
//! one arithmetic.
//!
//! Sources (AWS documentation, read 2026-12-02):
//! - item sizes: "DynamoDB item sizes and formats",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>;
//! - read and write units, on-demand: "DynamoDB read and write operations",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>
//!   (a write costs 1 WRU per KB of the larger of the item before and
//!   after; a conditional write whose condition fails still consumes
//!   units, for the size of the existing item, at least 1; a read 1 RRU per
//!   4 KB strongly consistent, half eventually consistent; a Query sums the
//!   sizes of the items it reads, then rounds up to 4 KB);
//! - GSIs: "Using Global Secondary Indexes", section "Provisioned throughput
//!   considerations" / "Write capacity units",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html>
//!   (a table write costs each index whose entry it adds, changes or
//!   removes the entry's size in units; an update that changes an index key
//!   is a delete plus a put in that index; an index entry's size is the
//!   table's key attributes + the index key + the projected attributes +
//!   100 bytes; GSI reads are eventually consistent);
//! - transactions: "Amazon DynamoDB Transactions: How it works", section
//!   "Capacity management for transactions",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html>
//!   (two underlying writes per item: 2 WRU per KB). A `ConditionCheck` is
//!   not spelled out there; measured against DynamoDB it is billed as a
//!   transactional write of the checked item (2 WRU per KB), which is what
//!   this module and the bill count. GSI writes made inside a transaction
//!   are counted once (1 WRU per KB of the entry) and a cancelled
//!   transaction as if each item's condition had failed (the existing
//!   item's size, doubled): neither is stated on those pages (see the
//!   `unsure` notes in docs/bench/prices.toml).

use serde_json::{Map, Value};

use crate::bill::{ItemWrite, ReadMode, StoreOp, Table};

/// A DynamoDB item in the JSON wire format: attribute name to
/// `{"S": ...}`, `{"N": ...}`, ...
pub type Item = Map<String, Value>;

/// Bytes DynamoDB adds to each GSI entry (GSI.html, "Storage
/// considerations": index key + projected attributes + 100 bytes).
pub const INDEX_ENTRY_OVERHEAD: u64 = 100;

/// Size of one attribute value, without its name (CapacityUnitCalculations.html).
#[must_use]
pub fn value_size(v: &Value) -> u64 {
    let Some((ty, inner)) = v.as_object().and_then(|m| m.iter().next()) else { return 0 };
    match (ty.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => base64_len(b),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(|s| s.len() as u64).sum(),
        ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(base64_len).sum(),
        // 3 bytes for the list, 1 more per element.
        ("L", Value::Array(a)) => 3 + a.iter().map(|e| value_size(e) + 1).sum::<u64>(),
        // 3 bytes for the map, 1 more per element, whose name counts too.
        ("M", Value::Object(m)) => 3 + m.iter().map(|(k, e)| k.len() as u64 + value_size(e) + 1).sum::<u64>(),
        _ => 0,
    }
}

/// A number's size: 1 byte per two significant digits (leading and
/// trailing zeros trimmed), plus 1.
#[must_use]
pub fn number_size(n: &str) -> u64 {
    let mantissa = n.trim_start_matches(['-', '+']).split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.div_ceil(2) + 1
}

/// Raw bytes of a base64 value (binary attributes count their decoded size).
fn base64_len(b: &str) -> u64 {
    let pad = b.bytes().rev().take_while(|&c| c == b'=').count() as u64;
    (b.len() as u64 / 4 * 3).saturating_sub(pad)
}

/// Size of an item: the sum over its attributes of the name's UTF-8 bytes
/// and the value's size.
#[must_use]
pub fn item_size(item: &Item) -> u64 {
    item.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum()
}

/// What a GSI projects besides the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// `KEYS_ONLY`.
    KeysOnly,
    /// `INCLUDE` these non-key attributes.
    Include(Vec<String>),
    /// `ALL`.
    All,
}

/// One GSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    /// Index name.
    pub name: String,
    /// Its key attributes (partition, then sort).
    pub keys: Vec<String>,
    /// What it projects.
    pub projection: Projection,
}

/// A table's key attributes and GSIs, as the meter learns them from
/// `DescribeTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's short name in the bill.
    pub table: Table,
    /// Key attributes (partition, then sort).
    pub keys: Vec<String>,
    /// GSIs.
    pub indexes: Vec<IndexSchema>,
}

fn key_names(schema: Option<&Value>) -> Vec<String> {
    schema
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|k| k["AttributeName"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

impl TableSchema {
    /// From a `DescribeTable` answer's `Table` object.
    #[must_use]
    pub fn from_description(table: Table, desc: &Value) -> Self {
        let indexes = desc["GlobalSecondaryIndexes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| IndexSchema {
                        name: i["IndexName"].as_str().unwrap_or_default().to_owned(),
                        keys: key_names(i.get("KeySchema")),
                        projection: match i["Projection"]["ProjectionType"].as_str() {
                            Some("ALL") => Projection::All,
                            Some("INCLUDE") => Projection::Include(
                                i["Projection"]["NonKeyAttributes"]
                                    .as_array()
                                    .map(|n| n.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                                    .unwrap_or_default(),
                            ),
                            _ => Projection::KeysOnly,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        TableSchema { table, keys: key_names(desc.get("KeySchema")), indexes }
    }

    /// The item's primary key.
    #[must_use]
    pub fn key_of(&self, item: &Item) -> Item {
        self.keys.iter().filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone()))).collect()
    }

    /// The entry `item` has in `index`: none when it lacks an index key
    /// (sparse index), else the table keys, the index keys and the
    /// projected attributes.
    #[must_use]
    pub fn index_entry(&self, index: &IndexSchema, item: &Item) -> Option<Item> {
        if !index.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        let wanted = |name: &String| {
            self.keys.contains(name)
                || index.keys.contains(name)
                || match &index.projection {
                    Projection::All => true,
                    Projection::Include(attrs) => attrs.contains(name),
                    Projection::KeysOnly => false,
                }
        };
        Some(item.iter().filter(|(k, _)| wanted(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Bytes of each GSI entry a write from `before` to `after` writes (for
    /// the bill's [`ItemWrite::gsi_bytes`], one element per index write): a
    /// new entry, a removed entry, or a changed entry costs its size (the
    /// larger of old and new); a changed index key costs the old entry
    /// (delete) and the new (put); an unchanged entry costs nothing.
    #[must_use]
    pub fn gsi_writes(&self, before: Option<&Item>, after: Option<&Item>) -> Vec<u64> {
        let size = |e: &Item| item_size(e) + INDEX_ENTRY_OVERHEAD;
        let mut out = Vec::new();
        for index in &self.indexes {
            let b = before.and_then(|i| self.index_entry(index, i));
            let a = after.and_then(|i| self.index_entry(index, i));
            match (b, a) {
                (None, None) => {}
                (None, Some(e)) | (Some(e), None) => out.push(size(&e)),
                (Some(b), Some(a)) if b == a => {}
                (Some(b), Some(a)) => {
                    if index.keys.iter().any(|k| b.get(k) != a.get(k)) {
                        out.push(size(&b));
                        out.push(size(&a));
                    } else {
                        out.push(size(&b).max(size(&a)));
                    }
                }
            }
        }
        out
    }
}

/// The write of one item as DynamoDB bills it: the larger of the item
/// before and after, plus the GSI entries it writes; a write that did not
/// happen (failed condition) costs the existing item's size and writes no
/// index.
#[must_use]
pub fn item_write(schema: &TableSchema, before: Option<&Item>, after: Option<&Item>, done: bool) -> ItemWrite {
    let size = |i: Option<&Item>| i.map_or(0, item_size);
    if done {
        ItemWrite { item_bytes: size(before).max(size(after)), gsi_bytes: schema.gsi_writes(before, after) }
    } else {
        ItemWrite::plain(size(before))
    }
}

/// A GetItem that returned `item` (or nothing).
#[must_use]
pub fn get(table: Table, item: Option<&Item>, consistent: bool) -> StoreOp {
    StoreOp::Get {
        table,
        item_bytes: item.map_or(0, item_size),
        mode: if consistent { ReadMode::Strong } else { ReadMode::Eventual },
    }
}

/// A Query that read `items` (on the table, or index entries when
/// `index` is set: each entry's size includes the 100-byte overhead). The
/// sizes are summed before rounding, so it is passed to the bill as one
/// item of the summed size (an empty result still costs the minimum).
#[must_use]
pub fn query(table: Table, items: &[Item], index: bool, consistent: bool) -> StoreOp {
    let per_entry = if index { INDEX_ENTRY_OVERHEAD } else { 0 };
    let bytes: u64 = items.iter().map(|i| item_size(i) + per_entry).sum();
    StoreOp::Query {
        table,
        items: 1,
        item_bytes: bytes,
        mode: if consistent && !index { ReadMode::Strong } else { ReadMode::Eventual },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap_or_default()
    }

    fn users() -> TableSchema {
        TableSchema::from_description(
            Table::Users,
            &json!({
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "GlobalSecondaryIndexes": [{
                    "IndexName": "email-index",
                    "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["userId", "scope"]}
                }]
            }),
        )
    }

    #[test]
    fn attribute_sizes_by_the_documented_rules() {
        // S: UTF-8 bytes. "héllo" = h(1) é(2) l l o = 6.
        assert_eq!(value_size(&json!({"S": "héllo"})), 6);
        // N: 1 byte per 2 significant digits + 1. "12345" = 5 digits -> 3 + 1 = 4.
        assert_eq!(number_size("12345"), 4);
        // Leading and trailing zeros trimmed: "000120.500" -> "1205" -> 2 + 1 = 3.
        assert_eq!(number_size("000120.500"), 3);
        // A Unix time "1900000800": trailing zeros trimmed, "19000008" is 8
        // significant digits -> 4 + 1 = 5.
        assert_eq!(number_size("1900000800"), 5);
        // "1900000801": 10 digits -> 5 + 1 = 6; an odd count rounds up: "123" -> 2 + 1 = 3.
        assert_eq!(number_size("1900000801"), 6);
        assert_eq!(number_size("-123"), 3);
        // Zero has no significant digit: 0 + 1.
        assert_eq!(number_size("0"), 1);
        // B: the decoded bytes. "AAECAw==" is 4 bytes.
        assert_eq!(value_size(&json!({"B": "AAECAw=="})), 4);
        // BOOL and NULL: 1.
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"NULL": true})), 1);
        // L: 3 + each element + 1 each: ["ab", 7] = 3 + (2 + 1) + (2 + 1) = 9.
        assert_eq!(value_size(&json!({"L": [{"S": "ab"}, {"N": "7"}]})), 9);
        // M: 3 + each (name + value + 1): {"k": "v"} = 3 + (1 + 1 + 1) = 6.
        assert_eq!(value_size(&json!({"M": {"k": {"S": "v"}}})), 6);
        // Empty list: 3.
        assert_eq!(value_size(&json!({"L": []})), 3);
        // An item: pk(2) + "USER#1"(6) + n(1) + "42"(2) = 11.
        assert_eq!(item_size(&item(json!({"pk": {"S": "USER#1"}, "n": {"N": "42"}}))), 11);
    }

    #[test]
    fn gsi_entries_follow_the_projection() {
        let s = users();
        let before = item(json!({
            "pk": {"S": "U1"}, "email": {"S": "a@x"}, "userId": {"S": "1"}, "scope": {"S": "o"}, "other": {"S": "zzzz"}
        }));
        let e = s.index_entry(&s.indexes[0], &before).unwrap();
        // pk(2+2) + email(5+3) + userId(6+1) + scope(5+1) = 25; "other" is not projected.
        assert_eq!(item_size(&e), 25);
        // A write that changes only an unprojected attribute writes no index.
        let mut after = before.clone();
        after.insert("other".into(), json!({"S": "y"}));
        assert!(s.gsi_writes(Some(&before), Some(&after)).is_empty());
        // Changing a projected attribute rewrites the entry: 25 + 100 = 125
        // (the larger of old and new; the new scope "p" is the same size).
        after.insert("scope".into(), json!({"S": "p"}));
        assert_eq!(s.gsi_writes(Some(&before), Some(&after)), vec![125]);
        // Changing the index key: delete the old entry and put the new one.
        after.insert("email".into(), json!({"S": "bb@x"}));
        assert_eq!(s.gsi_writes(Some(&before), Some(&after)), vec![125, 126]);
        // An item without the index key has no entry (sparse): nothing written.
        let marker = item(json!({"pk": {"S": "EMAIL#a@x"}, "userId": {"S": "1"}}));
        assert!(s.gsi_writes(None, Some(&marker)).is_empty());
        // A put of a new indexed item writes one entry; its delete one too.
        assert_eq!(s.gsi_writes(None, Some(&before)), vec![125]);
        assert_eq!(s.gsi_writes(Some(&before), None), vec![125]);
    }

    #[test]
    fn write_units_by_hand() {
        let s = users();
        let small = item(json!({"pk": {"S": "U1"}, "email": {"S": "a@x"}, "userId": {"S": "1"}}));
        let big = item(
            json!({"pk": {"S": "U1"}, "email": {"S": "a@x"}, "userId": {"S": "1"}, "blob": {"S": "x".repeat(1500)}}),
        );
        // A put of a new item of 19 B (pk 2+2, email 5+3, userId 6+1): 1 WRU, plus its index entry
        // (pk 4 + email 8 + userId 7 + 100 = 119 B): 1 WRU. Total 2.
        let w = item_write(&s, None, Some(&small), true);
        assert_eq!(StoreOp::Write { table: Table::Users, item: w.clone() }.units().write, 2.0);
        // In a transaction the item costs double, the index entry once: 2 + 1 = 3.
        assert_eq!(StoreOp::Transact { table: Table::Users, items: vec![w] }.units().write, 3.0);
        // Shrinking the 1,523 B item (19 + blob 4 + 1,500) to 19 B is billed on the larger: 2 WRU;
        // the index entry is unchanged ("blob" is not projected).
        let w = item_write(&s, Some(&big), Some(&small), true);
        assert_eq!(item_size(&big), 19 + 4 + 1500);
        assert_eq!(StoreOp::Write { table: Table::Users, item: w }.units().write, 2.0);
        // A failed condition on the big item: its size, 2 WRU, no index.
        let w = item_write(&s, Some(&big), Some(&small), false);
        assert_eq!(w, ItemWrite::plain(1523));
        assert_eq!(StoreOp::Write { table: Table::Users, item: w }.units().write, 2.0);
        // A failed condition on a missing item (attribute_exists): the minimum 1.
        let w = item_write(&s, None, None, false);
        assert_eq!(StoreOp::Write { table: Table::Users, item: w }.units().write, 1.0);
    }

    #[test]
    fn read_units_by_hand() {
        let it = item(json!({"pk": {"S": "x".repeat(5000)}}));
        // GetItem of 5,002 B: 2 blocks of 4 KB; strong 2, eventual 1.
        assert_eq!(get(Table::Users, Some(&it), true).units().read, 2.0);
        assert_eq!(get(Table::Users, Some(&it), false).units().read, 1.0);
        // A missing item still costs the minimum: 1 strong, 0.5 eventual.
        assert_eq!(get(Table::Users, None, true).units().read, 1.0);
        assert_eq!(get(Table::Users, None, false).units().read, 0.5);
        // Query of three 1,500 B items sums them (4,500 B) before rounding:
        // 2 blocks, strong 2 (not 3 x 1).
        let q: Vec<Item> = (0..3).map(|_| item(json!({"pk": {"S": "x".repeat(1498)}}))).collect();
        assert_eq!(query(Table::Revocations, &q, false, true).units().read, 2.0);
        // On a GSI (eventual only), each entry + 100 B: 4,800 B -> 2 blocks x 0.5 = 1.
        assert_eq!(query(Table::Users, &q, true, true).units().read, 1.0);
        // An empty Query costs the minimum.
        assert_eq!(query(Table::Revocations, &[], false, true).units().read, 1.0);
    }
}
