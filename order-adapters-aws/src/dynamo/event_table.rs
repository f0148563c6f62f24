//! The `OrderEvents` table: [`DynamoEventStore`], the event log ([`EventStore`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use events_schema::{EventEnvelope, OrderId, Version};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::classify;
use order_ports::{check_append_batch, AppendError, EventPage, EventStore, StoreError};

use super::*;

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
    pub(super) client: Client,
    pub(super) table: String,
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
    pub(super) async fn scan_page(
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
    pub(super) async fn require_previous(
        &self,
        order_id: OrderId,
        previous: u32,
    ) -> Result<(), StoreError> {
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

    pub(super) async fn put_one(&self, event: &EventEnvelope) -> Result<(), AppendError> {
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

    pub(super) async fn put_many(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
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
pub(super) const APPEND_CONCURRENCY: usize = 32;
/// `Query`s of one [`EventStore::load_many`] in flight at once, for the same reason.
pub(super) const LOAD_CONCURRENCY: usize = 32;

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

pub(super) fn conflict(event: &EventEnvelope) -> AppendError {
    AppendError::Conflict {
        order_id: event.order_id,
        version: event.version,
    }
}

pub(super) fn encode_event(
    event: &EventEnvelope,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let item = event.to_item().map_err(|e| {
        StoreError::Rejected(format!("event {} cannot be encoded: {e}", event.event_id))
    })?;
    Ok(item.into())
}

pub(super) fn decode_event(
    item: HashMap<String, AttributeValue>,
) -> Result<EventEnvelope, StoreError> {
    let key = describe_key(&item);
    EventEnvelope::from_item(to_generic(item)?)
        .map_err(|e| StoreError::Corrupt(format!("event {key}: {e}")))
}

pub(super) fn describe_key(item: &HashMap<String, AttributeValue>) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s) | AttributeValue::N(s)) => s.clone(),
        _ => "?".to_owned(),
    };
    format!("{}/{}", part("orderId"), part("version"))
}

/// Converts an SDK item to `serde_dynamo`'s generic form. serde_dynamo panics on the SDK's
/// `Unknown` variant (a type this SDK version does not know), so that is checked first.
pub(super) fn to_generic(
    item: HashMap<String, AttributeValue>,
) -> Result<serde_dynamo::Item, StoreError> {
    pub(super) fn has_unknown(value: &AttributeValue) -> bool {
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

pub(super) fn format_cursor(key: &HashMap<String, AttributeValue>) -> Result<String, StoreError> {
    match (key.get("orderId"), key.get("version")) {
        (Some(AttributeValue::S(order)), Some(AttributeValue::N(version))) => {
            Ok(format!("{order}|{version}"))
        }
        _ => Err(StoreError::Corrupt(format!(
            "unexpected LastEvaluatedKey shape: {key:?}"
        ))),
    }
}

pub(super) fn parse_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
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
