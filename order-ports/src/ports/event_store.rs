//! [`EventStore`]: the append-only event log, the source of truth.

use async_trait::async_trait;
use events_schema::{EventEnvelope, OrderId};

use super::*;

/// The most events one [`EventStore::append`] takes (DynamoDB's `TransactWriteItems` limit).
pub const MAX_APPEND_BATCH: usize = 100;

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

    /// Several independent appends at once — typically one per order, as the processor moves a
    /// batch of orders one step on. Each element of `appends` is appended as by
    /// [`append`](Self::append) (same shape rules, same [`AppendError::Conflict`]); its outcome
    /// is at the same index of the result, which has one outcome per element.
    ///
    /// Each append is atomic on its own, and one append's conflict or rejection never undoes
    /// nor prevents another. A store failure is the adapter's: SQLite writes them all in one
    /// write job, so a failed commit fails every append of the call (none was written);
    /// DynamoDB sends a bounded number at a time, each succeeding or failing on its own. The default
    /// appends one after another.
    ///
    /// Errors per element: as [`append`](Self::append).
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        let mut outcomes = Vec::with_capacity(appends.len());
        for events in appends {
            outcomes.push(self.append(events).await);
        }
        outcomes
    }

    /// Every event of one order, in version order, read consistently (an append that returned
    /// `Ok` is visible). An unknown order gives an empty list.
    ///
    /// Errors: `Corrupt` when a stored event cannot be decoded; `Unavailable` as usual.
    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The histories of several orders — the processor loading a batch. Each as by
    /// [`load`](Self::load); outcome `i` is `order_ids[i]`'s, and one order's failure does not
    /// fail another's. SQLite reads them all in one read job on one connection; DynamoDB sends
    /// a bounded number of `Query`s at a time. The default loads one after another.
    ///
    /// Errors per element: as [`load`](Self::load).
    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        let mut histories = Vec::with_capacity(order_ids.len());
        for order_id in order_ids {
            histories.push(self.load(*order_id).await);
        }
        histories
    }

    /// A page of the whole log, for replay and export. Start with `cursor = None`, then pass
    /// [`EventPage::next`] until it is `None`. Each event is returned exactly once over a full
    /// pass. Order: the SQLite log returns global append order; DynamoDB returns table scan order
    /// (sort by `(orderId, version)` or `occurredAt` if you need one). `limit` is a hint ≥ 1.
    ///
    /// Errors: `Rejected` for a cursor this store did not produce; otherwise as `load`.
    async fn read_all(&self, cursor: Option<String>, limit: usize)
        -> Result<EventPage, StoreError>;
}
