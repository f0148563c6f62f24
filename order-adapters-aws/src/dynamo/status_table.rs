//! The `OrderStatus` view: [`DynamoStatusStore`] ([`StatusStore`]) and its `byCustomer` index.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use events_schema::{OrderId, OrderStatusRecord, Version};

use super::classify;
use order_ports::PendingPage;
use order_ports::{
    check_customer_orders_query, into_status_page, CustomerOrdersQuery, StatusPage, StatusStore,
    StoreError, Upserted,
};

use super::*;

/// The `OrderStatus` view on DynamoDB: PK `orderId`, GSI `byCustomer` (`customerId`, `createdAt`).
#[derive(Debug, Clone)]
pub struct DynamoStatusStore {
    pub(super) client: Client,
    pub(super) table: String,
}

/// The GSI of the `OrderStatus` table keyed by customer, sorted by `createdAt`. Index entries
/// with equal `createdAt` are ordered by the table key `orderId` (which is why an index query's
/// `LastEvaluatedKey` carries it), so a descending query gives the port's order: `createdAt`,
/// then `orderId`, both descending.
pub const BY_CUSTOMER_INDEX: &str = "byCustomer";

/// Items a filtered `list_by_customer` Query evaluates at least per call. The filter applies
/// after the `Limit`, so a page of a rare status could otherwise take a call per order.
pub(super) const FILTERED_QUERY_BATCH: usize = 25;

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
pub(super) const UPSERT_CONCURRENCY: usize = 32;

impl DynamoStatusStore {
    /// One `BatchGetItem` of at most [`BATCH_GET_LIMIT`] keys, asking again for the
    /// `UnprocessedKeys`.
    pub(super) async fn batch_get(
        &self,
        order_ids: &[OrderId],
    ) -> Result<Vec<OrderStatusRecord>, StoreError> {
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
        for attempt in 0..crate::MAX_ATTEMPTS {
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
            crate::MAX_ATTEMPTS
        )))
    }
}

impl DynamoStatusStore {
    /// The views of key-only index entries, in the entries' order, read with
    /// [`get_many`](StatusStore::get_many) (consistent `BatchGetItem`s). An entry whose view is
    /// gone (the index lags a table rebuild) is skipped: the index is eventually consistent.
    pub(super) async fn views_of(
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

pub(super) fn decode_status(
    item: HashMap<String, AttributeValue>,
) -> Result<OrderStatusRecord, StoreError> {
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
    /// a growing pause, [`MAX_ATTEMPTS`](crate::MAX_ATTEMPTS) rounds at most, then
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
    pub(super) async fn put_status_if(
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
pub(super) fn status_item(
    record: &OrderStatusRecord,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
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
