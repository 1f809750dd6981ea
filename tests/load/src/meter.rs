//! The DynamoDB capacity meter: a loopback HTTP proxy in front of a
//! DynamoDB-compatible server (moto) that forwards every request unchanged
//! and records, for each, the operation, the tables and the request units
//! DynamoDB on-demand would charge ([`crate::capacity`]'s rules).
//!
//! moto does not report real consumed capacity, so the meter looks at the
//! items itself: before a write it reads the item's current version with
//! its own consistent GetItem (not counted), after a successful write it
//! reads the new version, and it learns each table's keys and GSIs from
//! `DescribeTable`. Requests are forwarded one at a time, so the images it
//! reads are the ones the write saw. Every call to moto has a timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::bill::{StoreOp, Table, Units};
use crate::capacity::{self, Item, TableSchema};

/// Timeout of each call the meter makes to moto.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The meter could not start or reach moto.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// Binding the loopback listener.
    #[error("meter: binding a loopback port: {0}")]
    Bind(std::io::Error),
    /// Building the HTTP client.
    #[error("meter: HTTP client: {0}")]
    Client(String),
    /// A call to moto failed.
    #[error("meter: {op} to {upstream}: {detail}")]
    Upstream {
        /// The DynamoDB operation.
        op: String,
        /// moto's URL.
        upstream: String,
        /// What went wrong.
        detail: String,
    },
}

/// One DynamoDB request as the meter saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metered {
    /// The operation (`X-Amz-Target` after the dot), e.g. `GetItem`.
    pub op: String,
    /// HTTP status moto answered.
    pub status: u16,
    /// The error type when it failed (`ConditionalCheckFailedException`, ...).
    pub error: Option<String>,
    /// What DynamoDB would bill, one [`StoreOp`] per table touched (a
    /// transaction over two tables is two). Empty for control-plane calls.
    pub charges: Vec<StoreOp>,
    /// Whether the meter knows how to price the operation (the data-plane
    /// operations the issuer uses); others are recorded with no charge.
    pub priced: bool,
}

impl Metered {
    /// Units of the request.
    #[must_use]
    pub fn units(&self) -> Units {
        self.charges.iter().map(StoreOp::units).fold(Units::default(), |a, b| a + b)
    }

    /// The tables it touched, in order, once each.
    #[must_use]
    pub fn tables(&self) -> Vec<Table> {
        let mut t: Vec<Table> = Vec::new();
        for c in &self.charges {
            if !t.contains(&c.table()) {
                t.push(c.table());
            }
        }
        t
    }
}

/// Maps the physical table names (`<prefix>-Users`) to the bill's tables.
fn table_of(name: &str) -> Option<Table> {
    Table::ALL.into_iter().find(|t| name == t.name() || name.ends_with(&format!("-{}", t.name())))
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    schemas: tokio::sync::Mutex<HashMap<String, TableSchema>>,
    /// Forward one request at a time (pre- and post-images consistent).
    serial: tokio::sync::Mutex<()>,
    log: Mutex<Vec<Metered>>,
}

/// A running meter. Dropping it stops the listener.
#[derive(Debug)]
pub struct Meter {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("upstream", &self.upstream).finish_non_exhaustive()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Meter {
    /// Starts a meter on 127.0.0.1 (a free port) in front of `upstream`.
    ///
    /// # Errors
    /// [`MeterError`] when the port or the client cannot be set up.
    pub async fn start(upstream: &str) -> Result<Meter, MeterError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(MeterError::Bind)?;
        let addr = listener.local_addr().map_err(MeterError::Bind)?;
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| MeterError::Client(e.to_string()))?;
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            schemas: tokio::sync::Mutex::new(HashMap::new()),
            serial: tokio::sync::Mutex::new(()),
            log: Mutex::new(Vec::new()),
        });
        let served = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let inner = served.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(inner.handle(req).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(Meter { addr, inner, task })
    }

    /// The meter's URL, to give the store as its endpoint.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests recorded since the last call, in order.
    #[must_use]
    pub fn take(&self) -> Vec<Metered> {
        std::mem::take(&mut *self.inner.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

fn error_response(status: u16, message: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(
        json!({"__type": "com.amazon.coral.service#InternalFailure", "message": message}).to_string(),
    )));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    r
}

impl Inner {
    async fn handle(self: Arc<Self>, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return error_response(400, &format!("meter: reading the request: {e}")),
        };
        let op = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.split_once('.'))
            .map(|(_, op)| op.to_owned())
            .unwrap_or_default();
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let _serial = self.serial.lock().await;
        let pre = match self.pre_images(&op, &request).await {
            Ok(p) => p,
            Err(e) => return error_response(502, &e.to_string()),
        };
        // Forward unchanged (moto does not check signatures against the host).
        let mut fwd = self.client.post(format!("{}{}", self.upstream, parts.uri.path()));
        for (k, v) in &parts.headers {
            if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
                fwd = fwd.header(k.as_str(), v.as_bytes());
            }
        }
        let resp = match fwd.body(body.clone()).send().await {
            Ok(r) => r,
            Err(e) => return error_response(502, &format!("meter: forwarding {op}: {e}")),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let resp_body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return error_response(502, &format!("meter: reading {op}'s answer: {e}")),
        };
        let answer: Value = serde_json::from_slice(&resp_body).unwrap_or(Value::Null);
        let error = (status != 200)
            .then(|| answer["__type"].as_str().map(|t| t.rsplit('#').next().unwrap_or(t).to_owned()))
            .flatten();
        match self.charge(&op, &request, &answer, status, pre).await {
            Ok((charges, priced)) => {
                let m = Metered { op: op.clone(), status, error, charges, priced };
                self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(m);
            }
            Err(e) => return error_response(502, &e.to_string()),
        }
        let mut out = hyper::Response::new(Full::new(resp_body));
        *out.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        for (k, v) in &headers {
            if k != hyper::header::TRANSFER_ENCODING
                && k != hyper::header::CONNECTION
                && k != hyper::header::CONTENT_LENGTH
            {
                out.headers_mut().append(k.clone(), v.clone());
            }
        }
        out
    }

    /// One call of the meter's own to moto (not recorded).
    async fn call(&self, op: &str, body: &Value) -> Result<Value, MeterError> {
        let err = |detail: String| MeterError::Upstream { op: op.to_owned(), upstream: self.upstream.clone(), detail };
        let resp = self
            .client
            .post(format!("{}/", self.upstream))
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!("HTTP {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    async fn schema(&self, table_name: &str) -> Result<Option<TableSchema>, MeterError> {
        let Some(table) = table_of(table_name) else { return Ok(None) };
        if let Some(s) = self.schemas.lock().await.get(table_name) {
            return Ok(Some(s.clone()));
        }
        let desc = self.call("DescribeTable", &json!({ "TableName": table_name })).await?;
        let s = TableSchema::from_description(table, &desc["Table"]);
        self.schemas.lock().await.insert(table_name.to_owned(), s.clone());
        Ok(Some(s))
    }

    async fn current(&self, table_name: &str, key: &Item) -> Result<Option<Item>, MeterError> {
        let got = self.call("GetItem", &json!({ "TableName": table_name, "Key": key, "ConsistentRead": true })).await?;
        Ok(got.get("Item").and_then(Value::as_object).cloned())
    }

    /// The items a write will touch, as (table, key), in request order;
    /// `ConditionCheck`s marked.
    async fn targets(&self, op: &str, request: &Value) -> Result<Vec<Target>, MeterError> {
        let mut out = Vec::new();
        let mut one = |table: &str, key: Item, check: bool| out.push(Target { table: table.to_owned(), key, check });
        match op {
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = request["TableName"].as_str().unwrap_or_default();
                let key = match op {
                    "PutItem" => {
                        let Some(s) = self.schema(table).await? else { return Ok(vec![]) };
                        s.key_of(request["Item"].as_object().unwrap_or(&Item::new()))
                    }
                    _ => request["Key"].as_object().cloned().unwrap_or_default(),
                };
                one(table, key, false);
            }
            "TransactWriteItems" => {
                let items = request["TransactItems"].as_array().cloned().unwrap_or_default();
                for it in &items {
                    let Some((kind, body)) = it.as_object().and_then(|m| m.iter().next()) else { continue };
                    let table = body["TableName"].as_str().unwrap_or_default();
                    let key = if kind == "Put" {
                        let Some(s) = self.schema(table).await? else { continue };
                        s.key_of(body["Item"].as_object().unwrap_or(&Item::new()))
                    } else {
                        body["Key"].as_object().cloned().unwrap_or_default()
                    };
                    one(table, key, kind == "ConditionCheck");
                }
            }
            _ => {}
        }
        Ok(out)
    }

    async fn pre_images(&self, op: &str, request: &Value) -> Result<Vec<(Target, Option<Item>)>, MeterError> {
        let mut out = Vec::new();
        for t in self.targets(op, request).await? {
            let before = self.current(&t.table, &t.key).await?;
            out.push((t, before));
        }
        Ok(out)
    }

    async fn charge(
        &self,
        op: &str,
        request: &Value,
        answer: &Value,
        status: u16,
        pre: Vec<(Target, Option<Item>)>,
    ) -> Result<(Vec<StoreOp>, bool), MeterError> {
        let table_name = request["TableName"].as_str().unwrap_or_default();
        let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
        let ok = status == 200;
        match op {
            "GetItem" => {
                let Some(t) = table_of(table_name) else { return Ok((vec![], false)) };
                if !ok {
                    return Ok((vec![], true));
                }
                let item = answer.get("Item").and_then(Value::as_object);
                Ok((vec![capacity::get(t, item, consistent)], true))
            }
            "Query" => {
                let Some(t) = table_of(table_name) else { return Ok((vec![], false)) };
                if !ok {
                    return Ok((vec![], true));
                }
                let items: Vec<Item> = answer["Items"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i.as_object().cloned()).collect())
                    .unwrap_or_default();
                let index = request.get("IndexName").is_some_and(|i| !i.is_null());
                Ok((vec![capacity::query(t, &items, index, consistent)], true))
            }
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" => {
                // A failed condition (or a cancelled transaction) still
                // consumes units; a request refused before it ran
                // (validation) does not.
                let failed = matches!(
                    answer["__type"].as_str().map(|t| t.rsplit('#').next().unwrap_or(t)),
                    Some("ConditionalCheckFailedException" | "TransactionCanceledException")
                );
                if !ok && !failed {
                    return Ok((vec![], true));
                }
                let transactional = op == "TransactWriteItems";
                let mut per_table: Vec<(Table, Vec<crate::bill::ItemWrite>)> = Vec::new();
                for (target, before) in pre {
                    let Some(schema) = self.schema(&target.table).await? else { continue };
                    let after = if ok && !target.check {
                        self.current(&target.table, &target.key).await?
                    } else {
                        before.clone()
                    };
                    // A ConditionCheck writes nothing: billed on the item's size.
                    let done = ok && !target.check;
                    let w = capacity::item_write(&schema, before.as_ref(), after.as_ref(), done);
                    match per_table.iter_mut().find(|(t, _)| *t == schema.table) {
                        Some((_, v)) => v.push(w),
                        None => per_table.push((schema.table, vec![w])),
                    }
                }
                let charges = per_table
                    .into_iter()
                    .flat_map(|(table, items)| {
                        if transactional {
                            vec![StoreOp::Transact { table, items }]
                        } else {
                            items.into_iter().map(|item| StoreOp::Write { table, item }).collect()
                        }
                    })
                    .collect();
                Ok((charges, true))
            }
            // Control plane (CreateTable, DescribeTable, TTL): not billed
            // per request. Anything else the issuer does not use.
            "CreateTable" | "DescribeTable" | "UpdateTimeToLive" | "DescribeTimeToLive" => Ok((vec![], true)),
            _ => Ok((vec![], false)),
        }
    }
}

/// An item a write touches.
#[derive(Debug, Clone)]
struct Target {
    table: String,
    key: Item,
    check: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_table_names_map_to_the_bill_tables() {
        assert_eq!(table_of("work-1-Users"), Some(Table::Users));
        assert_eq!(table_of("RefreshTokens"), Some(Table::RefreshTokens));
        assert_eq!(table_of("x-Revocations"), Some(Table::Revocations));
        assert_eq!(table_of("Other"), None);
    }
}
