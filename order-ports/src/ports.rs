//! The ports: what the handler libs need from the outside world, and nothing more.
//!
//! Error contract shared by every port: [`StoreError::Unavailable`] is transient (throttling, a
//! timeout, a 5xx, a busy database) and the caller may retry the whole operation;
//! [`StoreError::Corrupt`] and [`StoreError::Rejected`] are permanent — retrying cannot help.
//! Adapters already retry transient faults a bounded number of times before returning them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use events_schema::{EventEnvelope, EventId, OrderId, OrderStatusRecord, Version};

/// The most events one [`EventStore::append`] takes (DynamoDB's `TransactWriteItems` limit).
pub const MAX_APPEND_BATCH: usize = 100;

/// A failure of a port operation other than an append conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transient: the backend is busy, throttling, timing out or down. Retry later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Permanent: a stored record cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Permanent: the request itself is invalid (a bug in the caller, not bad luck).
    #[error("request rejected: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Why an append did not happen. Nothing was written in either case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Optimistic-lock failure: a version being appended already exists, so someone else moved
    /// the order on. Never retry blindly: reload the history and decide again.
    #[error("order {order_id} already has version {version}")]
    Conflict { order_id: OrderId, version: Version },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the batch shape [`EventStore::append`] requires — 1..=[`MAX_APPEND_BATCH`] events of
/// one order with consecutive versions — and returns its first event; `Rejected` otherwise.
/// Every adapter calls this before touching its backend.
pub fn check_append_batch(events: &[EventEnvelope]) -> Result<&EventEnvelope, StoreError> {
    let Some(first) = events.first() else {
        return Err(StoreError::Rejected("append of an empty batch".into()));
    };
    if events.len() > MAX_APPEND_BATCH {
        return Err(StoreError::Rejected(format!(
            "append of {} events; at most {MAX_APPEND_BATCH} at once",
            events.len()
        )));
    }
    let mut expected = first.version;
    for event in events {
        if event.order_id != first.order_id {
            return Err(StoreError::Rejected(format!(
                "one append must be of one order: {} and {}",
                first.order_id, event.order_id
            )));
        }
        if event.version != expected {
            return Err(StoreError::Rejected(format!(
                "versions must be consecutive: expected {expected}, got {}",
                event.version
            )));
        }
        expected = expected.next();
    }
    Ok(first)
}

/// A page of [`EventStore::read_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    /// Pass back to get the next page; `None` when everything has been read.
    pub next: Option<String>,
}

/// The append-only event log: the source of truth.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` atomically — all of them or none.
    ///
    /// `events` must be 1..=[`MAX_APPEND_BATCH`] events of one order with consecutive versions;
    /// the expected current version is `events[0].version - 1` (0 for a new order). Otherwise
    /// [`StoreError::Rejected`].
    ///
    /// Errors: [`AppendError::Conflict`] when any of those versions already exists (nothing is
    /// written); [`AppendError::Store`] as in the module docs.
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError>;

    /// Every event of one order, in version order, read consistently (an append that returned
    /// `Ok` is visible). An unknown order gives an empty list.
    ///
    /// Errors: `Corrupt` when a stored event cannot be decoded; `Unavailable` as usual.
    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError>;

    /// A page of the whole log, for replay and export. Start with `cursor = None`, then pass
    /// [`EventPage::next`] until it is `None`. Each event is returned exactly once over a full
    /// pass. Order: the SQLite log returns global append order; DynamoDB returns table scan order
    /// (sort by `(orderId, version)` or `occurredAt` if you need one). `limit` is a hint ≥ 1.
    ///
    /// Errors: `Rejected` for a cursor this store did not produce; otherwise as `load`.
    async fn read_all(&self, cursor: Option<String>, limit: usize)
        -> Result<EventPage, StoreError>;
}

/// A message handed out by [`WorkQueue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across redeliveries of the same message.
    pub message_id: String,
    /// Proof of this particular receipt, for `ack` / `fail`.
    pub receipt: String,
    /// The raw body: an order id, or garbage (the processor must cope).
    pub body: String,
    /// How many times this message has been received, this receipt included (1 the first time).
    pub receive_count: u32,
}

/// The work queue from ingest to the processor: at-least-once, with dead letters.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues work for one order. Errors: `Unavailable` as usual.
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError>;

    /// Up to `max` messages, each hidden from other receivers for `visibility`. Waits briefly
    /// (up to about a second locally, long polling on SQS) when the queue is empty, then returns
    /// an empty list. Messages that were received too often are moved to the dead letters
    /// instead of being delivered again.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError>;

    /// Done: deletes the message. Acking a stale receipt (the message has since been
    /// redelivered or deleted) is not an error.
    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError>;

    /// Not done: the message becomes visible again (immediately, or after the visibility
    /// timeout on SQS) and is dead-lettered once its receive count reaches the maximum.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError>;
}

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

    /// A page of the orders whose view is `RECEIVED` or `PROCESSING` and was last updated
    /// strictly before `before`: the stuck-order finder of the reconciler. Start with
    /// `cursor = None`, then pass [`PendingPage::next`] back (with the same `before`) until it is
    /// `None`: that walks every such order once, in pages of at most `limit`. The cursor is
    /// opaque and does not expire. Order: oldest `updatedAt` first on SQLite; on DynamoDB
    /// oldest first within each shard of the sparse `pending` index, shard after shard (ADR 6).
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

/// A message for subscribers (SNS, or the local notifications table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The event this notification announces; consumers deduplicate on it.
    pub event_id: EventId,
    /// The JSON body.
    pub message: String,
    /// Message attributes for subscription filters (`eventType`, `customerId`, `orderId`).
    pub attributes: BTreeMap<String, String>,
}

/// Publishes notifications, at least once.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one notification. Errors: `Unavailable` as usual; `Rejected` if the backend
    /// refuses the message (too large, bad attributes).
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError>;
}

/// Why a consumer could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// Retry this event (and everything after it) later.
    #[error("transient: {0}")]
    Transient(String),
    /// This event can never be handled; retrying cannot help. It is set aside (logged locally,
    /// the stream mapping's on-failure destination on AWS), never silently dropped.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for ConsumeError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ConsumeError::Transient(e.to_string())
        } else {
            ConsumeError::Permanent(e.to_string())
        }
    }
}

/// A consumer of the log's change feed — the projector and the notifier. The feed delivers
/// each order's events in version order, at least once, so a consumer must be idempotent.
/// The same consumer runs behind the DynamoDB stream (Lambda, or a poller in `orders serve
/// --backend aws`) and behind the SQLite log's global sequence.
pub trait EventConsumer: Send + Sync {
    fn consume(
        &self,
        event: &EventEnvelope,
    ) -> impl std::future::Future<Output = Result<(), ConsumeError>> + Send;
}

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
pub(crate) fn check_pending_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PENDING_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_PENDING_LIMIT}, got {limit}"
        )))
    }
}

/// A position in a walk of pending orders: the last order returned. `shard` is the DynamoDB
/// index shard (always 0 on SQLite). Encoded as `{shard}|{updatedAt}|{orderId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingPosition {
    pub shard: u32,
    pub updated_at: String,
    pub order_id: OrderId,
}

impl PendingPosition {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.shard, self.updated_at, self.order_id)
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
        let mut parts = cursor.split('|');
        let (Some(shard), Some(updated_at), Some(order_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let shard = shard.parse().map_err(|_| bad())?;
        // Only a timestamp in the stored form: it is compared as text.
        let parsed = events_schema::envelope::parse_timestamp(updated_at).ok_or_else(bad)?;
        if events_schema::envelope::format_timestamp(parsed) != updated_at {
            return Err(bad());
        }
        let order_id = OrderId::parse(order_id).map_err(|_| bad())?;
        Ok(Self {
            shard,
            updated_at: updated_at.to_owned(),
            order_id,
        })
    }
}

/// Decodes one pending entry read back from a store; `Corrupt` if it does not decode.
pub(crate) fn pending_order(
    order_id: &str,
    status: &str,
    updated_at: &str,
) -> Result<PendingOrder, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "pending entry {order_id:?} ({status:?}, {updated_at:?}): bad {what}"
        ))
    };
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
        updated_at,
    })
}
