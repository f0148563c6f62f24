//! Pending orders: what the reconciler walks ([`StatusStore::pending_before`]), and the one
//! codec of that walk's position.

use events_schema::{OrderId, Version};

use super::*;

// ---------------------------------------------------------------------------------------------
// Pending orders: what the reconciler walks (`StatusStore::pending_before`).

/// The largest page [`StatusStore::pending_before`] returns.
pub const MAX_PENDING_LIMIT: usize = 1_000;

/// An order whose view is not terminal (`RECEIVED` or `PROCESSING`), as
/// [`StatusStore::pending_before`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    pub order_id: OrderId,
    pub status: events_schema::OrderStatus,
    /// The view's version (the last event it applied): what the reconciler compares with the
    /// log, and sets an order aside at ([`StatusRepair::set_aside_pending`]).
    pub version: Version,
    /// When the view last changed (`updatedAt`).
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A page of [`StatusStore::pending_before`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPage {
    pub orders: Vec<PendingOrder>,
    /// Pass back to get the next page; `None` only when nothing is left, so a cursor leads to
    /// an empty page only if everything after it moved on in the meantime.
    pub next: Option<String>,
}

/// Checks the `limit` of [`StatusStore::pending_before`]; every adapter calls it first.
pub fn check_pending_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PENDING_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_PENDING_LIMIT}, got {limit}"
        )))
    }
}

/// A position in a walk of pending orders: the last order returned. `shard` is the DynamoDB
/// index shard (always 0 on SQLite). Encoded as `{shard}|{sortKey}|{orderId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPosition {
    pub shard: u32,
    /// The walk's sort key, a stored timestamp: `updatedAt` on SQLite, the `pending` index's
    /// `createdAt` on DynamoDB.
    pub sort_key: String,
    pub order_id: OrderId,
}

impl PendingPosition {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.shard, self.sort_key, self.order_id)
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
        let mut parts = cursor.split('|');
        let (Some(shard), Some(sort_key), Some(order_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let shard = shard.parse().map_err(|_| bad())?;
        // Only a timestamp in the stored form: it is compared as text.
        let parsed = events_schema::envelope::parse_timestamp(sort_key).ok_or_else(bad)?;
        if events_schema::envelope::format_timestamp(parsed) != sort_key {
            return Err(bad());
        }
        let order_id = OrderId::parse(order_id).map_err(|_| bad())?;
        Ok(Self {
            shard,
            sort_key: sort_key.to_owned(),
            order_id,
        })
    }
}

/// Decodes one pending entry read back from a store; `Corrupt` if it does not decode.
pub fn pending_order(
    order_id: &str,
    status: &str,
    version: i64,
    updated_at: &str,
) -> Result<PendingOrder, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "pending entry {order_id:?} ({status:?}, version {version}, {updated_at:?}): bad {what}"
        ))
    };
    let version = u32::try_from(version)
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| corrupt("version"))?;
    let order_id = OrderId::parse(order_id).map_err(|_| corrupt("orderId"))?;
    let status = [
        events_schema::OrderStatus::Received,
        events_schema::OrderStatus::Processing,
    ]
    .into_iter()
    .find(|s| s.as_str() == status)
    .ok_or_else(|| corrupt("status"))?;
    let updated_at =
        events_schema::envelope::parse_timestamp(updated_at).ok_or_else(|| corrupt("updatedAt"))?;
    Ok(PendingOrder {
        order_id,
        status,
        version,
        updated_at,
    })
}
