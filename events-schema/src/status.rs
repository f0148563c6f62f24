//! The `OrderStatus` read model: one record per order, the projection other services read.
//!
//! Table contract (DynamoDB `OrderStatus`, and the SQLite `order_status` table locally):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `orderId` | S | partition key |
//! | `status` | S | `RECEIVED`, `PROCESSING`, `COMPLETED` or `FAILED` |
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

use crate::envelope::{format_timestamp, Version};
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
