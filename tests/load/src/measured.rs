//! The measured work table, `docs/bench/work.toml`: written by `auth-work`
//! from [`crate::measure`]'s samples, read by [`crate::work`] for the bill.
//!
//! Per request type: process CPU time per request on this machine (over
//! DynamoDB straight to moto, and over SQLite for comparison), log bytes and
//! lines at INFO in the Lambda's JSON format, and the DynamoDB requests with
//! the item sizes and units the meter charged (one entry per table a request
//! touches; `call` numbers the requests).

use std::fmt::Write as _;

use toml_edit::{DocumentMut, Item as TomlItem, Value as TomlValue};

use crate::bill::{ItemWrite, ReadMode, StoreOp, Table, Units};
use crate::measure::Sample;

/// One DynamoDB request of a request type.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The operation, e.g. `TransactWriteItems`.
    pub op: String,
    /// The error DynamoDB answered (a failed condition still costs units).
    pub error: Option<String>,
    /// What DynamoDB bills for it, one entry per table.
    pub charges: Vec<StoreOp>,
}

/// The measured work of one request type.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The request type ([`crate::measure::REQUEST_TYPES`]).
    pub name: String,
    /// Repetitions averaged.
    pub reps: u32,
    /// Mean process CPU per request over DynamoDB, ms, on the measuring machine.
    pub cpu_ms: f64,
    /// The same over the embedded SQLite store.
    pub cpu_ms_sqlite: f64,
    /// Mean log bytes per request (line text, newline included).
    pub log_bytes: f64,
    /// Mean log lines per request.
    pub log_lines: f64,
    /// The DynamoDB requests of one request.
    pub dynamo: Vec<Call>,
}

impl Measured {
    /// Units of one request.
    #[must_use]
    pub fn units(&self) -> Units {
        self.dynamo.iter().flat_map(|c| &c.charges).map(StoreOp::units).fold(Units::default(), |a, b| a + b)
    }
}

/// The whole measured table with where it was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredTable {
    /// When (UTC, RFC 3339).
    pub date: String,
    /// Commit measured.
    pub commit: String,
    /// Machine (uname, CPUs, model).
    pub machine: String,
    /// Cargo profile of the measuring binary.
    pub profile: String,
    /// Request types.
    pub requests: Vec<Measured>,
}

/// The work.toml could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeasuredError {
    /// Not TOML.
    #[error("work.toml: {0}")]
    Parse(String),
    /// A field is missing or of the wrong type.
    #[error("work.toml: {0}: missing or invalid")]
    Field(String),
    /// Samples of one type disagree on the DynamoDB requests.
    #[error("{0}: the repetitions made different DynamoDB requests: {1}")]
    Unstable(String, String),
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / f64::from(n) }
}

/// Aggregates the three runs per request type: DynamoDB requests from the
/// metered run (every repetition must make the same ones), CPU and logs
/// from the direct run, CPU from the SQLite run.
///
/// # Errors
/// [`MeasuredError::Unstable`] when the metered repetitions differ.
pub fn aggregate(metered: &[Sample], direct: &[Sample], sqlite: &[Sample]) -> Result<Vec<Measured>, MeasuredError> {
    let mut out = Vec::new();
    for name in crate::measure::REQUEST_TYPES {
        let of = |s: &[Sample]| s.iter().filter(|x| x.name == name).cloned().collect::<Vec<_>>();
        let (m, d, q) = (of(metered), of(direct), of(sqlite));
        let calls = |s: &Sample| {
            s.dynamo
                .iter()
                .map(|r| Call { op: r.op.clone(), error: r.error.clone(), charges: r.charges.clone() })
                .collect::<Vec<_>>()
        };
        let first = m.first().map(calls).unwrap_or_default();
        // Compared as multisets: concurrent calls (the issuer revokes a
        // user's families in parallel) come in any order.
        let brief = |c: &[Call]| {
            let mut v: Vec<String> = c
                .iter()
                .map(|x| {
                    let u = x.charges.iter().map(StoreOp::units).fold(Units::default(), |a, b| a + b);
                    let e = x.error.as_deref().map(|e| format!("({e})")).unwrap_or_default();
                    format!("{}{e} {}/{}", x.op, u.read, u.write)
                })
                .collect();
            v.sort();
            v.join(", ")
        };
        if let Some(other) = m.iter().map(calls).find(|c| brief(c) != brief(&first)) {
            return Err(MeasuredError::Unstable(
                name.to_owned(),
                format!("[{}] vs [{}]", brief(&first), brief(&other)),
            ));
        }
        let ms = |s: &Sample| s.cpu.as_secs_f64() * 1000.0;
        #[allow(clippy::cast_precision_loss)] // counts of bytes and lines
        out.push(Measured {
            name: name.to_owned(),
            reps: u32::try_from(d.len()).unwrap_or(u32::MAX),
            cpu_ms: mean(d.iter().map(ms)),
            cpu_ms_sqlite: mean(q.iter().map(ms)),
            log_bytes: mean(d.iter().map(|s| s.log_bytes as f64)),
            log_lines: mean(d.iter().map(|s| s.log_lines as f64)),
            dynamo: first,
        });
    }
    Ok(out)
}

fn mode_name(m: ReadMode) -> &'static str {
    match m {
        ReadMode::Eventual => "eventual",
        ReadMode::Strong => "strong",
        ReadMode::Transactional => "transactional",
    }
}

fn gsi_list(g: &[u64]) -> String {
    format!("[{}]", g.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}

fn charge_toml(call: usize, op: &str, error: Option<&str>, c: &StoreOp) -> String {
    let u = c.units();
    let err = error.map(|e| format!(", error = {}", quote(e))).unwrap_or_default();
    let head = format!(
        "call = {call}, op = \"{op}\"{err}, table = \"{}\", rru = {}, wru = {}",
        c.table().name(),
        u.read,
        u.write
    );
    match c {
        StoreOp::Get { item_bytes, mode, .. } => {
            format!("{{ {head}, kind = \"get\", bytes = {item_bytes}, mode = \"{}\" }}", mode_name(*mode))
        }
        StoreOp::Query { items, item_bytes, mode, .. } => {
            format!("{{ {head}, kind = \"query\", bytes = {}, mode = \"{}\" }}", items * item_bytes, mode_name(*mode))
        }
        StoreOp::Write { item, .. } => {
            format!("{{ {head}, kind = \"write\", bytes = {}, gsi = {} }}", item.item_bytes, gsi_list(&item.gsi_bytes))
        }
        StoreOp::Transact { items, .. } => format!(
            "{{ {head}, kind = \"transact\", items = [{}] }}",
            items
                .iter()
                .map(|i| format!("{{ bytes = {}, gsi = {} }}", i.item_bytes, gsi_list(&i.gsi_bytes)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The TOML text of `t`.
#[must_use]
pub fn to_toml(t: &MeasuredTable) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Measured work per issuer request type: written by `auth-work` (scripts/measure-work.sh),");
    let _ = writeln!(o, "# read by tests/load/src/work.rs for the bill. Do not edit by hand.");
    let _ = writeln!(o, "# cpu_ms: process CPU per request on the machine below (DynamoDB store, moto without the");
    let _ = writeln!(o, "# meter; cpu_ms_sqlite: the embedded store). log_bytes: INFO lines in the Lambda's JSON");
    let _ = writeln!(o, "# format. dynamodb: the requests one request makes, one entry per table, with the item");
    let _ = writeln!(o, "# and GSI-entry sizes the capacity meter saw and the units DynamoDB on-demand bills.");
    let _ = writeln!(o, "date = {}", quote(&t.date));
    let _ = writeln!(o, "commit = {}", quote(&t.commit));
    let _ = writeln!(o, "machine = {}", quote(&t.machine));
    let _ = writeln!(o, "profile = {}", quote(&t.profile));
    for m in &t.requests {
        let _ = writeln!(o, "\n[requests.{}]", m.name);
        let _ = writeln!(o, "reps = {}", m.reps);
        let _ = writeln!(o, "cpu_ms = {:.4}", m.cpu_ms);
        let _ = writeln!(o, "cpu_ms_sqlite = {:.4}", m.cpu_ms_sqlite);
        let _ = writeln!(o, "log_bytes = {:.1}", m.log_bytes);
        let _ = writeln!(o, "log_lines = {:.2}", m.log_lines);
        let u = m.units();
        let _ = writeln!(o, "rru = {}\nwru = {}", u.read, u.write);
        let _ = writeln!(o, "dynamodb = [");
        for (i, c) in m.dynamo.iter().enumerate() {
            for ch in &c.charges {
                let _ = writeln!(o, "  {},", charge_toml(i + 1, &c.op, c.error.as_deref(), ch));
            }
            if c.charges.is_empty() {
                let _ = writeln!(o, "  {{ call = {}, op = \"{}\", kind = \"unpriced\" }},", i + 1, c.op);
            }
        }
        let _ = writeln!(o, "]");
    }
    o
}

fn field<'a>(t: &'a TomlItem, key: &str, ctx: &str) -> Result<&'a TomlItem, MeasuredError> {
    t.get(key).ok_or_else(|| MeasuredError::Field(format!("{ctx}.{key}")))
}

fn num(v: &TomlValue) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // small integers
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn inline_u64(t: &toml_edit::InlineTable, key: &str) -> Option<u64> {
    t.get(key).and_then(TomlValue::as_integer).and_then(|i| u64::try_from(i).ok())
}

fn gsi_of(t: &toml_edit::InlineTable) -> Vec<u64> {
    t.get("gsi")
        .and_then(TomlValue::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_integer().and_then(|i| u64::try_from(i).ok())).collect())
        .unwrap_or_default()
}

fn charge_of(t: &toml_edit::InlineTable, ctx: &str) -> Result<Option<StoreOp>, MeasuredError> {
    let bad = || MeasuredError::Field(ctx.to_owned());
    let kind = t.get("kind").and_then(TomlValue::as_str).ok_or_else(bad)?;
    if kind == "unpriced" {
        return Ok(None);
    }
    let table_name = t.get("table").and_then(TomlValue::as_str).ok_or_else(bad)?;
    let table = Table::ALL.into_iter().find(|x| x.name() == table_name).ok_or_else(bad)?;
    let mode = || match t.get("mode").and_then(TomlValue::as_str) {
        Some("eventual") => Ok(ReadMode::Eventual),
        Some("strong") => Ok(ReadMode::Strong),
        Some("transactional") => Ok(ReadMode::Transactional),
        _ => Err(bad()),
    };
    let bytes = || inline_u64(t, "bytes").ok_or_else(bad);
    let op_value = match kind {
        "get" => StoreOp::Get { table, item_bytes: bytes()?, mode: mode()? },
        "query" => StoreOp::Query { table, items: 1, item_bytes: bytes()?, mode: mode()? },
        "write" => StoreOp::Write { table, item: ItemWrite { item_bytes: bytes()?, gsi_bytes: gsi_of(t) } },
        "transact" => {
            let items = t
                .get("items")
                .and_then(TomlValue::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|i| {
                    let i = i.as_inline_table().ok_or_else(bad)?;
                    Ok(ItemWrite { item_bytes: inline_u64(i, "bytes").ok_or_else(bad)?, gsi_bytes: gsi_of(i) })
                })
                .collect::<Result<Vec<_>, MeasuredError>>()?;
            StoreOp::Transact { table, items }
        }
        _ => return Err(bad()),
    };
    Ok(Some(op_value))
}

/// Reads a work.toml.
///
/// # Errors
/// [`MeasuredError`] on a parse error or a missing field.
pub fn parse(text: &str) -> Result<MeasuredTable, MeasuredError> {
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| MeasuredError::Parse(e.to_string()))?;
    let s = |k: &str| {
        doc.get(k).and_then(TomlItem::as_str).map(str::to_owned).ok_or_else(|| MeasuredError::Field(k.to_owned()))
    };
    let mut requests = Vec::new();
    if let Some(reqs) = doc.get("requests").and_then(TomlItem::as_table) {
        for (name, t) in reqs {
            let f = |k: &str| {
                field(t, k, name)?.as_value().and_then(num).ok_or_else(|| MeasuredError::Field(format!("{name}.{k}")))
            };
            let mut dynamo: Vec<Call> = Vec::new();
            if let Some(arr) = t.get("dynamodb").and_then(TomlItem::as_array) {
                for (i, v) in arr.iter().enumerate() {
                    let ctx = format!("{name}.dynamodb[{i}]");
                    let it = v.as_inline_table().ok_or_else(|| MeasuredError::Field(ctx.clone()))?;
                    let call = inline_u64(it, "call").ok_or_else(|| MeasuredError::Field(ctx.clone()))?;
                    let op = it.get("op").and_then(TomlValue::as_str).unwrap_or_default().to_owned();
                    let error = it.get("error").and_then(TomlValue::as_str).map(str::to_owned);
                    #[allow(clippy::cast_possible_truncation)] // call numbers are small
                    while dynamo.len() < call as usize {
                        dynamo.push(Call { op: op.clone(), error: error.clone(), charges: Vec::new() });
                    }
                    if let Some(c) = charge_of(it, &ctx)?
                        && let Some(last) = dynamo.last_mut()
                    {
                        last.charges.push(c);
                    }
                }
            }
            requests.push(Measured {
                name: name.to_owned(),
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                reps: f("reps")? as u32,
                cpu_ms: f("cpu_ms")?,
                cpu_ms_sqlite: f("cpu_ms_sqlite")?,
                log_bytes: f("log_bytes")?,
                log_lines: f("log_lines")?,
                dynamo,
            });
        }
    }
    Ok(MeasuredTable {
        date: s("date")?,
        commit: s("commit")?,
        machine: s("machine")?,
        profile: s("profile")?,
        requests,
    })
}

impl MeasuredTable {
    /// The measured request type `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Measured> {
        self.requests.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MeasuredTable {
        MeasuredTable {
            date: "2026-12-02T12:00:00Z".into(),
            commit: "abc1234".into(),
            machine: "test \"box\"".into(),
            profile: "release".into(),
            requests: vec![Measured {
                name: "login".into(),
                reps: 3,
                cpu_ms: 21.5,
                cpu_ms_sqlite: 20.25,
                log_bytes: 310.0,
                log_lines: 1.0,
                dynamo: vec![
                    Call {
                        op: "TransactWriteItems".into(),
                        error: Some("TransactionCanceledException".into()),
                        charges: vec![StoreOp::Transact {
                            table: Table::RefreshTokens,
                            items: vec![ItemWrite::plain(120), ItemWrite { item_bytes: 200, gsi_bytes: vec![150] }],
                        }],
                    },
                    Call {
                        op: "Query".into(),
                        error: None,
                        charges: vec![StoreOp::Query {
                            table: Table::Users,
                            items: 1,
                            item_bytes: 400,
                            mode: ReadMode::Eventual,
                        }],
                    },
                    Call {
                        op: "GetItem".into(),
                        error: None,
                        charges: vec![StoreOp::Get { table: Table::Users, item_bytes: 0, mode: ReadMode::Strong }],
                    },
                    Call {
                        op: "DeleteItem".into(),
                        error: None,
                        charges: vec![StoreOp::Write { table: Table::RefreshTokens, item: ItemWrite::plain(90) }],
                    },
                ],
            }],
        }
    }

    #[test]
    fn the_toml_round_trips() {
        let t = sample();
        let text = to_toml(&t);
        let back = parse(&text).unwrap();
        assert_eq!(back, t, "{text}");
        // Units: transaction 2 + (2 + 1) = 5 WRU, delete 1; Query 0.5, Get 1.
        assert_eq!(back.get("login").unwrap().units(), Units { read: 1.5, write: 6.0 });
        assert!(text.contains("wru = 6"), "{text}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let text = to_toml(&sample()).replace("cpu_ms = 21.5000\n", "");
        assert_eq!(parse(&text).unwrap_err(), MeasuredError::Field("login.cpu_ms".into()));
        assert!(matches!(parse("date = ").unwrap_err(), MeasuredError::Parse(_)));
    }
}
