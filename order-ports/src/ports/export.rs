//! Exporting the history (`orders events`, issue 8): the log in time order, filtered, a page at
//! a time.

use async_trait::async_trait;
use events_schema::{CustomerId, EventEnvelope, OrderId, Version};

use super::*;

/// The most events one [`EventExport::page`] returns.
pub const MAX_EXPORT_PAGE: usize = 10_000;

/// `t` rounded up to a whole millisecond (unchanged when it is one already). Events are stored
/// with millisecond precision, so for every stored `occurredAt`, `occurredAt >= t` holds exactly
/// when `occurredAt >= ceil_to_millis(t)`, and `occurredAt < t` exactly when
/// `occurredAt < ceil_to_millis(t)`: the one rule that lets an adapter compare bounds at
/// millisecond precision (SQLite compares text) and select exactly what
/// [`ExportFilter::matches`] selects (the DynamoDB export filters with it).
pub fn ceil_to_millis(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let below = t.timestamp_subsec_nanos() % 1_000_000;
    if below == 0 {
        return t;
    }
    t.checked_add_signed(chrono::Duration::nanoseconds(i64::from(1_000_000 - below)))
        .unwrap_or(t)
}

/// Which events [`EventExport::page`] returns; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only this order's events.
    pub order_id: Option<OrderId>,
    /// Only the events of the orders this customer placed (the `customerId` of their
    /// `OrderReceived`).
    pub customer_id: Option<CustomerId>,
    /// Only events of this type.
    pub event_type: Option<events_schema::EventType>,
    /// Only events with `occurredAt >= since`.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events with `occurredAt < until` (so consecutive windows never overlap).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl ExportFilter {
    /// Whether `event` passes the filter. `customer` is the customer of the event's order
    /// when the caller knows it (always needed when `customer_id` is set).
    pub fn matches(&self, event: &EventEnvelope, customer: Option<&CustomerId>) -> bool {
        self.order_id.is_none_or(|id| id == event.order_id)
            && self.event_type.is_none_or(|t| t == event.event_type())
            && self.since.is_none_or(|t| event.occurred_at >= t)
            && self.until.is_none_or(|t| event.occurred_at < t)
            && self
                .customer_id
                .as_ref()
                .is_none_or(|c| customer == Some(c))
    }
}

/// A position in the export order — `occurredAt`, then `orderId`, then `version` — taken from
/// the last event of a page: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportPosition {
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub order_id: OrderId,
    pub version: Version,
}

impl ExportPosition {
    /// Where `event` sits in the export order. (`OrderId` orders as its UUID, which is the
    /// order of its lower-case text form, so every backend sorts alike.)
    pub fn of(event: &EventEnvelope) -> Self {
        Self {
            occurred_at: event.occurred_at,
            order_id: event.order_id,
            version: event.version,
        }
    }
}

/// The log in export order, a page at a time: what `orders events` streams.
#[async_trait]
pub trait EventExport: Send + Sync + 'static {
    /// Up to `limit` (1..=[`MAX_EXPORT_PAGE`]) events matching `filter`, strictly after
    /// `after`, ordered by `occurredAt`, then `orderId`, then `version`. Start with `after =
    /// None`, then pass the position of the last event returned; a page shorter than `limit`
    /// is the last one. Events appended meanwhile with an `occurredAt` after the position are
    /// included; an event can never be returned twice.
    ///
    /// Errors: `Rejected` for a `limit` out of range; `Corrupt` when a stored event cannot be
    /// decoded; `Unavailable` as usual.
    async fn page(
        &self,
        filter: &ExportFilter,
        after: Option<&ExportPosition>,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError>;
}

/// Checks the `limit` of [`EventExport::page`]; every adapter calls it first.
pub fn check_export_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_EXPORT_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_EXPORT_PAGE}, got {limit}"
        )))
    }
}
