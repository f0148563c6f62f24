//! The operator tools' walk of the `OrderEvents` table ([`OrderScan`] for [`DynamoEventStore`]).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use events_schema::OrderId;

use super::classify;
use order_ports::{OrderIdPage, OrderScan, ScanSegment, StoreError};

use super::*;

/// Parallel `Scan` segments the operator tools walk the event table in.
pub(super) const TOOL_SEGMENTS: u32 = 4;

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
