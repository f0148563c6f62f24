//! DynamoDB adapters: the `OrderEvents` table ([`DynamoEventStore`]) and the `OrderStatus`
//! view ([`DynamoStatusStore`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use events_schema::{EventEnvelope, OrderId, OrderStatusRecord, Version};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::classify;
use order_ports::{
    check_append_batch, check_customer_orders_query, into_status_page, AppendError,
    CustomerOrdersQuery, EventPage, EventStore, OrderIdPage, OrderScan, ScanSegment, StatusPage,
    StatusRepair, StatusStore, StoreError, Upserted,
};
use order_ports::{check_pending_limit, PendingOrder, PendingPage, PendingPosition};

const NEW_KEY_ONLY: &str = "attribute_not_exists(orderId)";

/// Runs `calls` at most `limit` at a time; outcome `i` is call `i`'s. The calls are built up
/// front by the caller: a lazy `map` inside the stream trips the `Send` check of async_trait.
async fn at_most<F: std::future::Future>(limit: usize, calls: Vec<F>) -> Vec<F::Output> {
    futures::stream::iter(calls).buffered(limit).collect().await
}

/// A `Scan` page's events, and the key the next page starts after.
type ScannedPage = (Vec<EventEnvelope>, Option<HashMap<String, AttributeValue>>);

/// The event log on DynamoDB: PK `orderId` (S), SK `version` (N). See the design's data model.
///
/// **Gaplessness.** The put condition `attribute_not_exists(orderId)` only prevents
/// overwriting a version. For the "first version = current max + 1" half of the contract,
/// an append whose first version `v` is above 1 first reads `(orderId, v-1)` with a consistent
/// `GetItem` and returns [`StoreError::Rejected`] when it is missing. The check is outside
/// the write, yet sound: events are never deleted, so "v-1 exists" can only go from false to
/// true; if it held at the read it still holds at the write. It costs one read per append
/// after the first, and keeps single appends a plain `PutItem` (and batches within the
/// 100-action transaction limit).
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads the whole table with `segments` parallel `Scan` segments (`TotalSegments`), each
    /// paginated to its end, for export. Unordered: sort by `(orderId, version)` if needed.
    /// `segments` must be 1..=1_000_000 (DynamoDB's limit), otherwise `Rejected`.
    pub async fn scan_all_parallel(&self, segments: u32) -> Result<Vec<EventEnvelope>, StoreError> {
        self.scan_pages(segments)?.try_concat().await
    }

    /// The whole table as a stream of `Scan` pages (at most 1 MB of items each), read by
    /// `segments` parallel segments (`TotalSegments`, consistent reads), each in its own task,
    /// in no particular order. Memory stays bounded whatever the size of the table: a segment
    /// reads its next page only once the previous one has been taken, so at most two pages per
    /// segment are held. The first error ends the stream; dropping the stream stops the
    /// segments at their next page.
    ///
    /// Errors: `Rejected` unless `segments` is 1..=1_000_000 (DynamoDB's limit); in the stream,
    /// `Corrupt` for an item that does not decode, `Unavailable` as usual. Needs a Tokio runtime.
    pub fn scan_pages(
        &self,
        segments: u32,
    ) -> Result<BoxStream<'static, Result<Vec<EventEnvelope>, StoreError>>, StoreError> {
        let total = i32::try_from(segments)
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                StoreError::Rejected(format!("segments must be 1..=1000000, got {segments}"))
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel(segments.min(64) as usize);
        for segment in 0..total {
            let (store, tx) = (self.clone(), tx.clone());
            tokio::spawn(async move {
                let mut start = None;
                loop {
                    let page = store.scan_page(segment, total, start.take()).await;
                    let (events, next) = match page {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    if tx.send(Ok(events)).await.is_err() {
                        return;
                    }
                    match next {
                        Some(next) => start = Some(next),
                        None => return,
                    }
                }
            });
        }
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        })
        .boxed())
    }

    /// One page of one segment, and where the next one starts (`None` at the segment's end).
    async fn scan_page(
        &self,
        segment: i32,
        total: i32,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<ScannedPage, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .segment(segment)
            .total_segments(total)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let events = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((events, out.last_evaluated_key))
    }

    /// Rejects an append that would leave a gap: `previous` must exist.
    async fn require_previous(&self, order_id: OrderId, previous: u32) -> Result<(), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .key("version", AttributeValue::N(previous.to_string()))
            .consistent_read(true)
            .projection_expression("orderId")
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        if out.item().is_some() {
            Ok(())
        } else {
            Err(StoreError::Rejected(format!(
                "order {order_id} has no version {previous}: appending version {} would leave a gap",
                previous.saturating_add(1)
            )))
        }
    }

    async fn put_one(&self, event: &EventEnvelope) -> Result<(), AppendError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_event(event)?))
            .condition_expression(NEW_KEY_ONLY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(conflict(event))
            }
            Err(e) => Err(classify("PutItem", &e).into()),
        }
    }

    async fn put_many(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        let mut actions = Vec::with_capacity(events.len());
        for event in events {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(encode_event(event)?))
                .condition_expression(NEW_KEY_ONLY)
                .build()
                .map_err(|e| StoreError::Rejected(format!("Put: {e}")))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // The SDK fills in an idempotency token (ClientRequestToken) shared by its retries, so a
        // retried transaction that had in fact succeeded does not come back as a conflict.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        {
            let reasons = cancel.cancellation_reasons();
            let failed = reasons
                .iter()
                .position(|r| r.code() == Some("ConditionalCheckFailed"));
            if let Some(index) = failed {
                let event = events.get(index).unwrap_or(&events[0]);
                return Err(conflict(event));
            }
            // No reasons at all (some emulators): trust the message.
            if reasons.is_empty()
                && cancel
                    .message()
                    .is_some_and(|m| m.contains("ConditionalCheckFailed"))
            {
                return Err(conflict(&events[0]));
            }
            // TransactionConflict (a concurrent transaction on the same items), throttling…
            return Err(StoreError::Unavailable(format!(
                "TransactWriteItems cancelled: {:?}",
                reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
            ))
            .into());
        }
        Err(classify("TransactWriteItems", &err).into())
    }
}

/// Appends of one [`EventStore::append_many`] in flight at once: each holds a request of the
/// SDK with its buffers, and a processor batch of 1,000 orders sent at once took the processor
/// Lambda to 78 MiB (BENCHMARKS.md, "Peak RSS of each function on a 1,000-record batch").
const APPEND_CONCURRENCY: usize = 32;
/// `Query`s of one [`EventStore::load_many`] in flight at once, for the same reason.
const LOAD_CONCURRENCY: usize = 32;

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        let first = check_append_batch(events)?;
        if first.version.get() > 1 {
            self.require_previous(first.order_id, first.version.get() - 1)
                .await?;
        }
        if events.len() == 1 {
            self.put_one(first).await
        } else {
            self.put_many(events).await
        }
    }

    /// The appends concurrently, [`APPEND_CONCURRENCY`] at a time, each as
    /// [`append`](EventStore::append) (a conditional `PutItem`, or a `TransactWriteItems` for
    /// several events of one order): DynamoDB has no conditional batch write, and a transaction
    /// across orders would fail them all on one conflict.
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        let calls: Vec<_> = appends.iter().map(|events| self.append(events)).collect();
        at_most(APPEND_CONCURRENCY, calls).await
    }

    /// The `Query`s, [`LOAD_CONCURRENCY`] at a time.
    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        let calls: Vec<_> = order_ids.iter().map(|id| self.load(*id)).collect();
        at_most(LOAD_CONCURRENCY, calls).await
    }

    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("orderId = :id")
            .expression_attribute_values(":id", AttributeValue::S(order_id.to_string()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify("Query", &e))?;
        let mut events = items
            .into_iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| e.version);
        Ok(events)
    }

    /// `Scan` pages. The cursor is the page's `LastEvaluatedKey` as `orderId|version`.
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let limit = i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
        let start = cursor.as_deref().map(parse_cursor).transpose()?;
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let next = out.last_evaluated_key().map(format_cursor).transpose()?;
        let events = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventPage { events, next })
    }
}

fn conflict(event: &EventEnvelope) -> AppendError {
    AppendError::Conflict {
        order_id: event.order_id,
        version: event.version,
    }
}

fn encode_event(event: &EventEnvelope) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let item = event.to_item().map_err(|e| {
        StoreError::Rejected(format!("event {} cannot be encoded: {e}", event.event_id))
    })?;
    Ok(item.into())
}

fn decode_event(item: HashMap<String, AttributeValue>) -> Result<EventEnvelope, StoreError> {
    let key = describe_key(&item);
    EventEnvelope::from_item(to_generic(item)?)
        .map_err(|e| StoreError::Corrupt(format!("event {key}: {e}")))
}

fn describe_key(item: &HashMap<String, AttributeValue>) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s) | AttributeValue::N(s)) => s.clone(),
        _ => "?".to_owned(),
    };
    format!("{}/{}", part("orderId"), part("version"))
}

/// Converts an SDK item to `serde_dynamo`'s generic form. serde_dynamo panics on the SDK's
/// `Unknown` variant (a type this SDK version does not know), so that is checked first.
fn to_generic(item: HashMap<String, AttributeValue>) -> Result<serde_dynamo::Item, StoreError> {
    fn has_unknown(value: &AttributeValue) -> bool {
        match value {
            AttributeValue::M(m) => m.values().any(has_unknown),
            AttributeValue::L(l) => l.iter().any(has_unknown),
            other => other.is_unknown(),
        }
    }
    if item.values().any(has_unknown) {
        return Err(StoreError::Corrupt(format!(
            "item {} holds an attribute type this SDK does not know",
            describe_key(&item)
        )));
    }
    Ok(serde_dynamo::Item::from(item))
}

fn format_cursor(key: &HashMap<String, AttributeValue>) -> Result<String, StoreError> {
    match (key.get("orderId"), key.get("version")) {
        (Some(AttributeValue::S(order)), Some(AttributeValue::N(version))) => {
            Ok(format!("{order}|{version}"))
        }
        _ => Err(StoreError::Corrupt(format!(
            "unexpected LastEvaluatedKey shape: {key:?}"
        ))),
    }
}

fn parse_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
    let (order, version) = cursor.split_once('|').ok_or_else(bad)?;
    let order = OrderId::parse(order).map_err(|_| bad())?;
    let version = version
        .parse::<u32>()
        .ok()
        .and_then(Version::new)
        .ok_or_else(bad)?;
    Ok(HashMap::from([
        ("orderId".to_owned(), AttributeValue::S(order.to_string())),
        ("version".to_owned(), AttributeValue::N(version.to_string())),
    ]))
}

/// The `OrderStatus` view on DynamoDB: PK `orderId`, GSI `byCustomer` (`customerId`, `createdAt`).
#[derive(Debug, Clone)]
pub struct DynamoStatusStore {
    client: Client,
    table: String,
}

/// The GSI of the `OrderStatus` table keyed by customer, sorted by `createdAt`. Index entries
/// with equal `createdAt` are ordered by the table key `orderId` (which is why an index query's
/// `LastEvaluatedKey` carries it), so a descending query gives the port's order: `createdAt`,
/// then `orderId`, both descending.
pub const BY_CUSTOMER_INDEX: &str = "byCustomer";

/// Items a filtered `list_by_customer` Query evaluates at least per call. The filter applies
/// after the `Limit`, so a page of a rare status could otherwise take a call per order.
const FILTERED_QUERY_BATCH: usize = 25;

impl DynamoStatusStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The most keys one `BatchGetItem` takes.
pub const BATCH_GET_LIMIT: usize = 100;
/// Conditional `PutItem`s of one [`StatusStore::upsert_many`] in flight at once.
const UPSERT_CONCURRENCY: usize = 32;

impl DynamoStatusStore {
    /// One `BatchGetItem` of at most [`BATCH_GET_LIMIT`] keys, asking again for the
    /// `UnprocessedKeys`.
    async fn batch_get(&self, order_ids: &[OrderId]) -> Result<Vec<OrderStatusRecord>, StoreError> {
        let keys: Vec<HashMap<String, AttributeValue>> = order_ids
            .iter()
            .map(|id| HashMap::from([("orderId".to_owned(), AttributeValue::S(id.to_string()))]))
            .collect();
        let mut request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Rejected(format!("BatchGetItem keys: {e}")))?;
        let mut found = Vec::with_capacity(order_ids.len());
        for attempt in 0..super::MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request.clone())
                .send()
                .await
                .map_err(|e| classify("BatchGetItem", &e))?;
            if let Some(mut responses) = out.responses {
                for item in responses.remove(&self.table).unwrap_or_default() {
                    found.push(decode_status(item)?);
                }
            }
            match out
                .unprocessed_keys
                .and_then(|mut left| left.remove(&self.table))
                .filter(|left| !left.keys().is_empty())
            {
                Some(left) => request = left,
                None => return Ok(found),
            }
        }
        Err(StoreError::Unavailable(format!(
            "BatchGetItem on {}: keys still unprocessed after {} attempts",
            self.table,
            super::MAX_ATTEMPTS
        )))
    }
}

impl DynamoStatusStore {
    /// The views of key-only index entries, in the entries' order, read with
    /// [`get_many`](StatusStore::get_many) (consistent `BatchGetItem`s). An entry whose view is
    /// gone (the index lags a table rebuild) is skipped: the index is eventually consistent.
    async fn views_of(
        &self,
        entries: &[HashMap<String, AttributeValue>],
    ) -> Result<Vec<OrderStatusRecord>, StoreError> {
        let ids = entries
            .iter()
            .map(|entry| {
                match entry.get("orderId") {
                    Some(AttributeValue::S(id)) => OrderId::parse(id).ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("index entry without an order id: {entry:?}"))
                })
            })
            .collect::<Result<Vec<OrderId>, StoreError>>()?;
        let mut views = self.get_many(&ids).await?;
        Ok(ids.iter().filter_map(|id| views.remove(id)).collect())
    }
}

fn decode_status(item: HashMap<String, AttributeValue>) -> Result<OrderStatusRecord, StoreError> {
    let key = describe_key(&item);
    OrderStatusRecord::from_item(to_generic(item)?)
        .map_err(|e| StoreError::Corrupt(format!("status record {key}: {e}")))
}

#[async_trait]
impl StatusStore for DynamoStatusStore {
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        out.item.map(decode_status).transpose()
    }

    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError> {
        self.put_status_if(
            record,
            "attribute_not_exists(orderId) OR #v < :v",
            record.version,
        )
        .await
    }

    /// Consistent `BatchGetItem`s of [`BATCH_GET_LIMIT`] keys, a few chunks at a time; keys
    /// DynamoDB leaves unprocessed (throttling, the 16 MB response limit) are asked again with
    /// a growing pause, [`MAX_ATTEMPTS`](super::MAX_ATTEMPTS) rounds at most, then
    /// `Unavailable`.
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let mut unique = order_ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        // Built up front: a lazy `map` in the stream trips the `Send` check of async_trait.
        let calls: Vec<_> = unique
            .chunks(BATCH_GET_LIMIT)
            .map(|chunk| self.batch_get(chunk))
            .collect();
        let chunks: Vec<Vec<OrderStatusRecord>> = futures::stream::iter(calls)
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(chunks
            .into_iter()
            .flatten()
            .map(|record| (record.order_id, record))
            .collect())
    }

    /// `BatchWriteItem` takes no condition, so the conditional `PutItem`s of
    /// [`upsert`](StatusStore::upsert) go out concurrently, [`UPSERT_CONCURRENCY`] at a time.
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        let calls: Vec<_> = records.iter().map(|record| self.upsert(record)).collect();
        at_most(UPSERT_CONCURRENCY, calls).await
    }

    /// `Query`s on the key-only GSI [`BY_CUSTOMER_INDEX`], descending, from the cursor's
    /// `ExclusiveStartKey`, then the views the index entries point to ([`Self::views_of`]),
    /// until one record more than the page has been found (so the cursor is only returned when
    /// there is more) or the customer's orders are exhausted. The status filter applies to the
    /// views read, hence the loop and the larger batches of a filtered listing.
    async fn list_by_customer(
        &self,
        query: &CustomerOrdersQuery,
    ) -> Result<StatusPage, StoreError> {
        let after = check_customer_orders_query(query)?;
        let customer = AttributeValue::S(query.customer_id.to_string());
        let wanted = query.limit + 1;
        let mut start = after.map(|position| {
            HashMap::from([
                ("customerId".to_owned(), customer.clone()),
                (
                    "createdAt".to_owned(),
                    AttributeValue::S(position.created_at),
                ),
                (
                    "orderId".to_owned(),
                    AttributeValue::S(position.order_id.to_string()),
                ),
            ])
        });
        let mut records = Vec::with_capacity(wanted);
        loop {
            let missing = wanted - records.len();
            let batch = match query.status {
                Some(_) => missing.max(FILTERED_QUERY_BATCH),
                None => missing,
            };
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_CUSTOMER_INDEX)
                .key_condition_expression("customerId = :c")
                .expression_attribute_values(":c", customer.clone())
                .scan_index_forward(false)
                .limit(i32::try_from(batch).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            let entries = out.items.unwrap_or_default();
            for record in self.views_of(&entries).await? {
                if records.len() < wanted && query.status.is_none_or(|s| s == record.status) {
                    records.push(record);
                }
            }
            start = out.last_evaluated_key;
            if records.len() >= wanted || start.is_none() {
                break;
            }
        }
        into_status_page(records, query.limit)
    }

    async fn pending_before(
        &self,
        before: DateTime<Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        self.pending_page(before, cursor, limit).await
    }
}

impl DynamoStatusStore {
    /// Puts `record`'s item if `condition` holds, with `#v` the stored `version` and `:v`
    /// `version`; a failed condition is [`Upserted::Stale`], not an error. The one write of
    /// [`StatusStore::upsert`] and [`StatusRepair::replace`].
    async fn put_status_if(
        &self,
        record: &OrderStatusRecord,
        condition: &str,
        version: Version,
    ) -> Result<Upserted, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(status_item(record)?))
            .condition_expression(condition)
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Upserted::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Upserted::Stale)
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }
}

/// The item of a status record as both writes store it: the record's codec, plus
/// [`PENDING_SHARD`] while it is not terminal. A put replaces the whole item, so a terminal
/// record drops the key of the sparse index.
fn status_item(record: &OrderStatusRecord) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let item = record.to_item().map_err(|e| {
        StoreError::Rejected(format!(
            "status of {} cannot be encoded: {e}",
            record.order_id
        ))
    })?;
    let mut item: HashMap<String, AttributeValue> = item.into();
    if !record.status.is_terminal() {
        item.insert(
            PENDING_SHARD.to_owned(),
            AttributeValue::S(pending_shard(record.order_id).to_string()),
        );
    }
    Ok(item)
}

/// The sparse GSI of the `OrderStatus` table holding only the non-terminal orders: partition
/// key [`PENDING_SHARD`], sort key `createdAt`, keys only (ADR 6).
pub const PENDING_INDEX: &str = "pending";

/// The attribute [`DynamoStatusStore`] writes only on a non-terminal record: the partition key
/// of [`PENDING_INDEX`], so a terminal write takes the order out of the index.
pub const PENDING_SHARD: &str = "pendingShard";

/// Partitions of [`PENDING_INDEX`]: a burst of pending orders spreads over this many partition
/// keys instead of one hot one; a reconciler run queries each once. Each key is one partition's
/// 1,000 writes/s (docs/scaling.md): 128 keys carry 64,000 orders/s that each enter and leave
/// the index (128,000 with a stream batching window), for 128 `Query`s a run when nothing is
/// stuck (64 RRU, about 7 cents a month at one run every 5 minutes; ADR 6). It was 16 until
/// the 100,000 orders/s plan showed the index throttling the projector at 8,000–21,000 orders/s.
pub const PENDING_SHARDS: u32 = 128;

/// The shard of an order in [`PENDING_INDEX`]: FNV-1a (32 bit) of the order id as stored
/// (lowercase hyphenated UUID), modulo [`PENDING_SHARDS`]: stable across builds and languages
/// (unlike `std`'s hasher), so anyone can tell where an order sits. Readers query every shard,
/// so the hash only has to spread; growing [`PENDING_SHARDS`] is free, shrinking it would hide
/// the entries of the dropped shards until their order's next write.
pub fn pending_shard(order_id: OrderId) -> u32 {
    let hash = order_id.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % PENDING_SHARDS
}

impl DynamoStatusStore {
    /// [`StatusStore::pending_before`]: a `Query` of `createdAt < before` on each shard of the
    /// key-only [`PENDING_INDEX`] in turn, from the cursor's shard and position, then the views
    /// the entries point to ([`Self::views_of`]), keeping those still pending and last updated
    /// before `before`, until one more than the page is found (so a cursor is only returned when
    /// there is more) or the last shard is exhausted. A view is updated at or after its
    /// creation, so `createdAt < before` loses none of them and the index key stays put while
    /// the order is pending (one index put and one delete per order). The cursor is the page's
    /// last entry; its index key (the position's timestamp is `createdAt` here) plus `orderId`
    /// is the `ExclusiveStartKey` to go on from.
    async fn pending_page(
        &self,
        before: DateTime<Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        check_pending_limit(limit)?;
        let after = cursor.as_deref().map(PendingPosition::decode).transpose()?;
        if let Some(position) = &after {
            if position.shard >= PENDING_SHARDS {
                return Err(StoreError::Rejected(format!(
                    "not a cursor of this store: shard {} of {PENDING_SHARDS}",
                    position.shard
                )));
            }
        }
        let before = events_schema::envelope::format_timestamp(before);
        let wanted = limit + 1;
        let mut found: Vec<(u32, PendingOrder, String)> = Vec::with_capacity(wanted);
        let mut shard = after.as_ref().map_or(0, |p| p.shard);
        let mut start = after.map(|p| {
            HashMap::from([
                (
                    PENDING_SHARD.to_owned(),
                    AttributeValue::S(p.shard.to_string()),
                ),
                ("createdAt".to_owned(), AttributeValue::S(p.sort_key)),
                (
                    "orderId".to_owned(),
                    AttributeValue::S(p.order_id.to_string()),
                ),
            ])
        });
        while found.len() < wanted && shard < PENDING_SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#shard = :shard AND createdAt < :before")
                .expression_attribute_names("#shard", PENDING_SHARD)
                .expression_attribute_values(":shard", AttributeValue::S(shard.to_string()))
                .expression_attribute_values(":before", AttributeValue::S(before.clone()))
                .limit(i32::try_from(wanted - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            let entries = out.items.unwrap_or_default();
            for view in self.views_of(&entries).await? {
                // Text comparison: both are timestamps in the one stored form.
                if view.status.is_terminal() || view.updated_at >= before {
                    continue;
                }
                if found.len() < wanted {
                    let updated_at = events_schema::envelope::parse_timestamp(&view.updated_at)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "view {}: bad updatedAt {:?}",
                                view.order_id, view.updated_at
                            ))
                        })?;
                    let order = PendingOrder {
                        order_id: view.order_id,
                        status: view.status,
                        version: view.version,
                        updated_at,
                    };
                    found.push((shard, order, view.created_at));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                shard += 1;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next = match found.last() {
            Some((shard, order, created_at)) if more => Some(
                PendingPosition {
                    shard: *shard,
                    sort_key: created_at.clone(),
                    order_id: order.order_id,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(PendingPage {
            orders: found.into_iter().map(|(_, order, _)| order).collect(),
            next,
        })
    }
}

/// Parallel `Scan` segments the operator tools walk the event table in.
const TOOL_SEGMENTS: u32 = 4;

/// Key-only `Scan`s (projection `orderId`), one per segment. A Scan returns the items of one
/// partition key (an order's versions) one after the other, so an order is emitted when its
/// first item is seen, and a page skips the leading items of the order the cursor (the previous
/// page's `LastEvaluatedKey`, as `orderId|version`) ended in. An order whose version 1 is
/// missing is found like any other. A page may hold no id yet have a cursor: keep going until
/// `next` is `None`.
#[async_trait]
impl OrderScan for DynamoEventStore {
    fn segments(&self) -> u32 {
        TOOL_SEGMENTS
    }

    async fn list_orders(
        &self,
        segment: ScanSegment,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<OrderIdPage, StoreError> {
        segment.check(1_000_000)?;
        let limit = i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
        let start = cursor.as_deref().map(parse_cursor).transpose()?;
        let mut last = start.as_ref().and_then(|key| match key.get("orderId") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        });
        let mut request = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("orderId, #v")
            .expression_attribute_names("#v", "version")
            .limit(limit)
            .set_exclusive_start_key(start);
        if segment.total > 1 {
            request = request
                .segment(i32::try_from(segment.index).unwrap_or(0))
                .total_segments(i32::try_from(segment.total).unwrap_or(1));
        }
        let out = request.send().await.map_err(|e| classify("Scan", &e))?;
        let next = out.last_evaluated_key().map(format_cursor).transpose()?;
        let mut order_ids = Vec::new();
        for item in out.items.unwrap_or_default() {
            let Some(AttributeValue::S(id)) = item.get("orderId") else {
                return Err(StoreError::Corrupt(format!(
                    "event {}: no orderId",
                    describe_key(&item)
                )));
            };
            if last.as_deref() == Some(id.as_str()) {
                continue;
            }
            let order_id = OrderId::parse(id)
                .map_err(|_| StoreError::Corrupt(format!("event table: bad orderId {id:?}")))?;
            order_ids.push(order_id);
            last = Some(id.clone());
        }
        Ok(OrderIdPage { order_ids, next })
    }

    /// `Scan` with `Select=COUNT`, [`TOOL_SEGMENTS`] segments in parallel.
    async fn count_events(&self) -> Result<u64, StoreError> {
        let total = i32::try_from(TOOL_SEGMENTS).unwrap_or(1);
        let counts = (0..total).map(|segment| async move {
            let mut count = 0u64;
            let mut start = None;
            loop {
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .segment(segment)
                    .total_segments(total)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| classify("Scan", &e))?;
                count += u64::try_from(out.count).unwrap_or(0);
                start = out.last_evaluated_key;
                if start.is_none() {
                    return Ok::<u64, StoreError>(count);
                }
            }
        });
        Ok(futures::future::try_join_all(counts)
            .await?
            .into_iter()
            .sum())
    }
}

/// A `PutItem` conditional on the stored version being `expected`.
#[async_trait]
impl StatusRepair for DynamoStatusStore {
    async fn replace(
        &self,
        record: &OrderStatusRecord,
        expected: Version,
    ) -> Result<Upserted, StoreError> {
        self.put_status_if(record, "#v = :v", expected).await
    }

    /// One conditional `UpdateItem`: `REMOVE pendingShard` takes the item out of the sparse
    /// [`PENDING_INDEX`] (an item without the index's partition key is not in a GSI), `SET
    /// setAside, setAsideAt` says why and when, on condition that the view is still pending
    /// at `version`. The projector's and `replace`'s writes are whole-item `PutItem`s, so the
    /// next one drops both attributes and, for a pending view, puts `pendingShard` back.
    async fn set_aside_pending(
        &self,
        order_id: OrderId,
        version: Version,
        reason: &str,
    ) -> Result<Upserted, StoreError> {
        let at = events_schema::envelope::format_timestamp(chrono::Utc::now());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .update_expression("REMOVE #shard SET #why = :why, #at = :at")
            .condition_expression("#v = :v AND #status IN (:received, :processing)")
            .expression_attribute_names("#shard", PENDING_SHARD)
            .expression_attribute_names("#why", SET_ASIDE)
            .expression_attribute_names("#at", SET_ASIDE_AT)
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":why", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":at", AttributeValue::S(at))
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .expression_attribute_values(
                ":received",
                AttributeValue::S(events_schema::OrderStatus::Received.as_str().to_owned()),
            )
            .expression_attribute_values(
                ":processing",
                AttributeValue::S(events_schema::OrderStatus::Processing.as_str().to_owned()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Upserted::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Upserted::Stale)
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }
}

/// The attribute [`StatusRepair::set_aside_pending`] sets on a view the reconciler took out of
/// [`PENDING_INDEX`] because its log does not fold: why (ADR 11). Not part of the record.
pub const SET_ASIDE: &str = "setAside";

/// When the reconciler set the view aside (RFC 3339, ms), beside [`SET_ASIDE`].
pub const SET_ASIDE_AT: &str = "setAsideAt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let id = OrderId::new_random();
        let key = parse_cursor(&format!("{id}|7")).expect("cursor");
        assert_eq!(format_cursor(&key).expect("format"), format!("{id}|7"));
        for bad in [
            "",
            "x|1",
            &format!("{id}"),
            &format!("{id}|0"),
            &format!("{id}|-1"),
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::Rejected(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn pending_shards_are_stable_and_spread_evenly() {
        let id = OrderId::parse("0192f0c4-5e6a-7b3c-8d9e-0f1a2b3c4d5e").expect("uuid");
        assert_eq!(pending_shard(id), pending_shard(id));
        let mut counts = [0u32; PENDING_SHARDS as usize];
        for n in 0..16_000 {
            let customer =
                events_schema::CustomerId::parse(format!("cust-{}", n % 7)).expect("customer");
            for id in [
                OrderId::new_random(),
                OrderId::derived(&customer, &n.to_string()),
            ] {
                counts[pending_shard(id) as usize] += 1;
            }
        }
        // 32,000 ids over the shards (250 each with 128); six standard deviations either side
        // (sqrt of the expected count, ~16 with 128 shards) is a bound a fair hash never misses.
        let expected = 32_000 / PENDING_SHARDS;
        let spread = 6 * expected.isqrt();
        assert!(
            counts
                .iter()
                .all(|&n| (expected - spread..=expected + spread).contains(&n)),
            "uneven around {expected} ± {spread}: {counts:?}"
        )
    }
}
