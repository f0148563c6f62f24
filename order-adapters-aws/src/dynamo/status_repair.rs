//! Writes to the `OrderStatus` view the projector never makes ([`StatusRepair`], ADR 11).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use events_schema::{OrderId, OrderStatusRecord, Version};

use super::classify;
use order_ports::{StatusRepair, StoreError, Upserted};

use super::*;

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
