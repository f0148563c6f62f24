//! The `OrderStatus` read model: one record per order, the projection other services read.
//!
//! Table contract (DynamoDB `OrderStatus`, and the SQLite `order_status` table locally):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `orderId` | S | partition key |
//! | `status` | S | `RECEIVED`, `PROCESSING`, `COMPLETED`, `FAILED` or `CANCELLED` (the last three terminal) |
//! | `customerId` | S | GSI `byCustomer` partition key |
//! | `itemCount` | N | sum of quantities |
//! | `total` | N | minor units of `currency` |
//! | `currency` | S | ISO 4217 |
//! | `version` | N | last event version applied; the record only moves forward |
//! | `createdAt` | S | RFC 3339 UTC ms; GSI `byCustomer` sort key |
//! | `updatedAt` | S | RFC 3339 UTC ms |
//! | `completedAt` | S? | present once COMPLETED |
//! | `failureReason` | S? | present once FAILED |

use serde::{Deserialize, Serialize};

use crate::envelope::{format_timestamp, parse_timestamp, Version};
use crate::ids::{CustomerId, OrderId};
use crate::money::{Currency, MinorUnits};
use crate::order::{OrderStatus, OrderView};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatusRecord {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub customer_id: CustomerId,
    pub item_count: u32,
    pub total: MinorUnits,
    pub currency: Currency,
    pub version: Version,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl From<&OrderView> for OrderStatusRecord {
    fn from(v: &OrderView) -> Self {
        Self {
            order_id: v.order_id,
            status: v.status,
            customer_id: v.customer_id.clone(),
            item_count: v.item_count,
            total: v.total,
            currency: v.currency,
            version: v.version,
            created_at: format_timestamp(v.created_at),
            updated_at: format_timestamp(v.updated_at),
            completed_at: v.completed_at.map(format_timestamp),
            failure_reason: v.failure_reason.clone(),
        }
    }
}

impl OrderStatusRecord {
    /// The DynamoDB item, in `serde_dynamo`'s generic form. With `serde_dynamo`'s
    /// `aws-sdk-dynamodb+1` feature, `HashMap<String, AttributeValue>::from(item)` converts it.
    pub fn to_item(&self) -> Result<serde_dynamo::Item, serde_dynamo::Error> {
        serde_dynamo::to_item(self)
    }

    /// Reads an `OrderStatus` item.
    pub fn from_item(item: serde_dynamo::Item) -> Result<Self, serde_dynamo::Error> {
        serde_dynamo::from_item(item)
    }
}

/// A stored status record that cannot be turned back into a view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad timestamp in status record field {field}: {value:?}")]
pub struct RecordError {
    pub field: &'static str,
    pub value: String,
}

impl TryFrom<&OrderStatusRecord> for OrderView {
    type Error = RecordError;
    fn try_from(r: &OrderStatusRecord) -> Result<Self, RecordError> {
        let ts = |field: &'static str, value: &str| {
            parse_timestamp(value).ok_or_else(|| RecordError {
                field,
                value: value.to_owned(),
            })
        };
        Ok(Self {
            order_id: r.order_id,
            customer_id: r.customer_id.clone(),
            currency: r.currency,
            item_count: r.item_count,
            total: r.total,
            status: r.status,
            version: r.version,
            created_at: ts("createdAt", &r.created_at)?,
            updated_at: ts("updatedAt", &r.updated_at)?,
            completed_at: r
                .completed_at
                .as_deref()
                .map(|v| ts("completedAt", v))
                .transpose()?,
            failure_reason: r.failure_reason.clone(),
        })
    }
}
