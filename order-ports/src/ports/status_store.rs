//! [`StatusStore`]: the `OrderStatus` read model, and the one codec of its customer-orders
//! cursor.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use events_schema::{CustomerId, OrderId, OrderStatus, OrderStatusRecord};

use super::*;

/// Outcome of [`StatusStore::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The record was written.
    Written,
    /// The stored record is already at this version or later; nothing was written.
    Stale,
}

/// The `OrderStatus` read model.
#[async_trait]
pub trait StatusStore: Send + Sync + 'static {
    /// The record of one order, `None` if it has not been projected (yet).
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError>;

    /// Writes `record` only if no record exists or the stored one has a lower `version`, so the
    /// view only ever moves forward. A stale write is [`Upserted::Stale`], not an error.
    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError>;

    /// The records of several orders at once, read like [`get`](Self::get); an order that has
    /// not been projected is absent from the map. Adapters read in bulk (SQLite: `IN (…)`;
    /// DynamoDB: `BatchGetItem`, consistent, in chunks of 100); the default calls `get` per
    /// order. Errors: as `get` — one failure fails the whole call.
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        let mut found = HashMap::with_capacity(order_ids.len());
        for id in order_ids {
            if let Some(record) = self.get(*id).await? {
                found.insert(*id, record);
            }
        }
        Ok(found)
    }

    /// [`upsert`](Self::upsert) of each record (each of a different order): one outcome per
    /// record, in the same order. Whether one record's failure fails others is the adapter's:
    /// SQLite writes them in one transaction (all or none); DynamoDB has no conditional batch
    /// write, so it sends the conditional `PutItem`s concurrently and each succeeds or fails on
    /// its own. The default upserts one after another.
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(self.upsert(record).await);
        }
        outcomes
    }

    /// A page of one customer's orders (only those in `query.status`, when given), newest
    /// first: by `createdAt` descending, ties by `orderId` descending — the same order on every
    /// backend.
    ///
    /// Start with `cursor: None`, then pass [`StatusPage::next_cursor`] back (with the same
    /// customer and status) until it is `None`: that walks every matching order exactly once,
    /// newest first, in pages of at most `limit`. `next_cursor` is `None` only when nothing
    /// is left, so a cursor never leads to an empty page. The cursor is opaque: it encodes the
    /// position of the page's last order (the same way on every backend) and does not expire.
    /// Since a walk only moves to older positions, it never returns an order twice even while
    /// the view changes; an order projected, or (with a status filter) changing status, during
    /// the walk may or may not be in it. An unknown customer gives an empty page without a
    /// cursor.
    ///
    /// On DynamoDB this reads a key-only global secondary index, which is eventually
    /// consistent (an order projected a moment ago may be missing for a short while), then
    /// the views it points to, consistently.
    ///
    /// Errors: `Rejected` for a `limit` outside 1..=[`MAX_CUSTOMER_ORDERS_LIMIT`] or a cursor
    /// this store did not produce; `Corrupt` when a stored record cannot be decoded;
    /// `Unavailable` as usual.
    async fn list_by_customer(&self, query: &CustomerOrdersQuery)
        -> Result<StatusPage, StoreError>;

    /// A page of the orders whose view is `RECEIVED` or `PROCESSING` and was last updated
    /// strictly before `before`: the stuck-order finder of the reconciler. Start with
    /// `cursor = None`, then pass [`PendingPage::next`] back (with the same `before`) until it is
    /// `None`: that walks every such order once, in pages of at most `limit`. The cursor is
    /// opaque and does not expire. Order: oldest `updatedAt` first on SQLite; on DynamoDB
    /// oldest `createdAt` first within each shard of the sparse `pending` index, shard after
    /// shard (ADR 6).
    /// An order that moves on during a walk may or may not be in it.
    ///
    /// On DynamoDB this reads a global secondary index, which is eventually consistent: an
    /// order that just reached a terminal status may still be listed for a moment (re-enqueuing
    /// it is harmless: the processor is idempotent).
    ///
    /// Errors: `Rejected` for a `limit` outside 1..=[`MAX_PENDING_LIMIT`] or a cursor this store
    /// did not produce; `Corrupt` when a stored entry cannot be decoded; `Unavailable` as usual.
    async fn pending_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError>;
}

/// The largest page [`StatusStore::list_by_customer`] returns.
pub const MAX_CUSTOMER_ORDERS_LIMIT: usize = 100;

/// What [`StatusStore::list_by_customer`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerOrdersQuery {
    pub customer_id: CustomerId,
    /// Only orders currently in this status; `None` for all.
    pub status: Option<OrderStatus>,
    /// The most orders in the page: 1..=[`MAX_CUSTOMER_ORDERS_LIMIT`].
    pub limit: usize,
    /// [`StatusPage::next_cursor`] of the previous page; `None` for the first.
    pub cursor: Option<String>,
}

/// A page of [`StatusStore::list_by_customer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPage {
    /// Newest first.
    pub records: Vec<OrderStatusRecord>,
    /// Pass back to get the next page; `None` when nothing is left.
    pub next_cursor: Option<String>,
}

/// A position in a customer's orders: everything strictly older (by `createdAt`, then
/// `orderId`) comes after it. The one codec of the `list_by_customer` cursor, so both backends
/// accept each other's cursors: URL-safe base64 without padding of
/// `{"createdAt": "...", "orderId": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerOrdersPosition {
    pub created_at: String,
    pub order_id: OrderId,
}

impl CustomerOrdersPosition {
    /// The position just after `record`.
    pub fn after(record: &OrderStatusRecord) -> Self {
        Self {
            created_at: record.created_at.clone(),
            order_id: record.order_id,
        }
    }

    pub fn encode(&self) -> Result<String, StoreError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a cursor: {e}")))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad())?;
        let position: Self = serde_json::from_slice(&json).map_err(|_| bad())?;
        if position.created_at.is_empty() {
            return Err(bad());
        }
        Ok(position)
    }
}

/// Checks `query.limit` and decodes `query.cursor` for [`StatusStore::list_by_customer`];
/// `Rejected` for either being invalid. Every adapter calls this before touching its backend.
pub fn check_customer_orders_query(
    query: &CustomerOrdersQuery,
) -> Result<Option<CustomerOrdersPosition>, StoreError> {
    if !(1..=MAX_CUSTOMER_ORDERS_LIMIT).contains(&query.limit) {
        return Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_CUSTOMER_ORDERS_LIMIT}, got {}",
            query.limit
        )));
    }
    query
        .cursor
        .as_deref()
        .map(CustomerOrdersPosition::decode)
        .transpose()
}

/// Cuts a look-ahead read of up to `limit + 1` records down to a page: the extra record, when
/// present, only proves that there is more, and the cursor points after the page's last record.
pub fn into_status_page(
    mut records: Vec<OrderStatusRecord>,
    limit: usize,
) -> Result<StatusPage, StoreError> {
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records
            .last()
            .map(|last| CustomerOrdersPosition::after(last).encode())
            .transpose()?
    } else {
        None
    };
    Ok(StatusPage {
        records,
        next_cursor,
    })
}
