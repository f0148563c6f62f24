//! Re-projection: a view written from its order's log, forward-only — the one code path of
//! `orders rebuild` and of the reconciler's repair (ADR 11), so the two cannot drift.
//!
//! Forward-only means the projector's own write ([`StatusStore::upsert`]): a view is written
//! only when it is missing or behind the log's fold, so a projector running at the same time
//! is never overwritten by older state.

use events_schema::{EventEnvelope, OrderStatusRecord, OrderView};

use crate::ports::{StatusStore, StoreError, Upserted};

/// What an order's log says, read with [`EventStore::load`](crate::EventStore::load) (or
/// `load_many`) and folded with [`OrderView::fold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldedLog {
    /// The log holds no event of the order.
    Empty,
    /// The view the log folds to, and how many events it has.
    View {
        record: Box<OrderStatusRecord>,
        events: usize,
    },
    /// The log cannot be folded, for good: an event does not decode (`Corrupt` from the store)
    /// or the fold rejects the history (a gap, an illegal transition). Why, in words.
    Unfoldable(String),
}

/// Folds one loaded history. A transient load error (`Unavailable`) is returned as it is — the
/// caller retries later; a `Corrupt` one is a log that does not decode, i.e. [`FoldedLog::Unfoldable`].
/// `Rejected` is a bug of the caller and is returned too.
pub fn fold_log(loaded: Result<Vec<EventEnvelope>, StoreError>) -> Result<FoldedLog, StoreError> {
    let events = match loaded {
        Ok(events) => events,
        Err(StoreError::Corrupt(reason)) => {
            return Ok(FoldedLog::Unfoldable(format!("log unreadable: {reason}")))
        }
        Err(e) => return Err(e),
    };
    Ok(match OrderView::fold(&events) {
        Ok(Some(view)) => FoldedLog::View {
            record: Box::new(OrderStatusRecord::from(&view)),
            events: events.len(),
        },
        Ok(None) => FoldedLog::Empty,
        Err(e) => FoldedLog::Unfoldable(format!("log does not fold: {e}")),
    })
}

/// Writes `record` (a log's fold) forward-only: [`Upserted::Written`] when the stored view was
/// missing or behind it; [`Upserted::Stale`] when the stored view is already at that version or
/// later (someone — the projector — got there first, or the view is ahead of its log, which
/// only `orders rebuild --force` replaces).
pub async fn reproject(
    status: &dyn StatusStore,
    record: &OrderStatusRecord,
) -> Result<Upserted, StoreError> {
    status.upsert(record).await
}
