//! Time travel: one order's status record as it was at a moment (or at a version), or every
//! order's status counts and completed totals as of a moment — folded from the log order by
//! order, so memory stays bounded whatever its size.
//!
//! Every order is walked with [`walk`](crate::walk): on SQLite whole histories a page of
//! about 10,000 events at a time in order-id order (a range read of the `(order_id, version)`
//! index, [`paged_histories`](crate::paged_histories)); on DynamoDB the order ids come from
//! [`OrderScan`](order_ports::OrderScan) (key-only parallel Scan segments) and each history
//! from [`EventStore::load`] (a Query per order, [`histories`](crate::histories)). What is
//! held at once: two pages of histories on SQLite; on DynamoDB a page of ids per segment plus
//! a channel of 1,000 ids and at most `concurrency` histories; and the result — four counters
//! and one total per currency here ([`Summary`]), per bucket for [`stats`](crate::stats).
//! Nothing grows with the number of orders or events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events_schema::{EventEnvelope, OrderId, OrderStatus, OrderStatusRecord, OrderView};
use order_ports::EventStore;

use crate::HistoryError;

/// Where an order's history is cut.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    AsOf(DateTime<Utc>),
    AtVersion(u32),
}

impl Cut {
    /// The prefix of `events` (in version order) that had happened by then.
    pub fn prefix(self, events: &[EventEnvelope]) -> &[EventEnvelope] {
        let kept = match self {
            Cut::AsOf(t) => events.iter().take_while(|e| e.occurred_at <= t).count(),
            Cut::AtVersion(n) => events.iter().take_while(|e| e.version.get() <= n).count(),
        };
        &events[..kept]
    }
}

/// One order as of a [`Cut`].
#[derive(Debug, Clone, PartialEq)]
pub enum AsOf {
    /// Its status record as it was then.
    Record(Box<OrderStatusRecord>),
    /// It did not exist yet: its first event occurred at `first_at`, after the cut. (Only a
    /// time can come before version 1.)
    NotYet { first_at: DateTime<Utc> },
}

/// Order `id` as it was at `cut`, folded from its history.
///
/// Errors: [`HistoryError::NotInLog`] when it has no event, [`HistoryError::DoesNotFold`] when
/// its history up to the cut does not fold, [`HistoryError::Order`] when it cannot be read.
pub async fn order_as_of(
    events: &dyn EventStore,
    id: OrderId,
    cut: Cut,
) -> Result<AsOf, HistoryError> {
    let history = events
        .load(id)
        .await
        .map_err(|source| HistoryError::Order {
            order_id: id,
            source,
        })?;
    let Some(first) = history.first() else {
        return Err(HistoryError::NotInLog(id));
    };
    let view = OrderView::fold(cut.prefix(&history)).map_err(|e| HistoryError::DoesNotFold {
        order_id: id,
        reason: e.to_string(),
    })?;
    Ok(match view {
        Some(view) => AsOf::Record(Box::new(OrderStatusRecord::from(&view))),
        None => AsOf::NotYet {
            first_at: first.occurred_at,
        },
    })
}

/// Every order as of a moment.
#[derive(Debug, Default)]
pub struct Summary {
    pub orders: u64,
    /// Orders per status, in the order of [`STATUSES`].
    pub by_status: [u64; 5],
    /// Minor units of the COMPLETED orders, per currency (i128: no sum of i64 totals overflows).
    pub totals: BTreeMap<String, i128>,
    /// Orders left out because their history could not be read or folded.
    pub skipped: u64,
}

/// The statuses in the order of the lifecycle, as [`Summary::by_status`] counts them.
pub const STATUSES: [OrderStatus; 5] = [
    OrderStatus::Received,
    OrderStatus::Processing,
    OrderStatus::Completed,
    OrderStatus::Failed,
    OrderStatus::Cancelled,
];

fn status_index(s: OrderStatus) -> usize {
    match s {
        OrderStatus::Received => 0,
        OrderStatus::Processing => 1,
        OrderStatus::Completed => 2,
        OrderStatus::Failed => 3,
        OrderStatus::Cancelled => 4,
    }
}

impl Summary {
    /// Counts `view` (an order as of the summary's moment).
    pub fn add(&mut self, view: &OrderView) {
        self.orders += 1;
        self.by_status[status_index(view.status)] += 1;
        if view.status == OrderStatus::Completed {
            *self
                .totals
                .entry(view.currency.as_str().to_owned())
                .or_default() += i128::from(view.total);
        }
    }

    /// How many orders had status `s`.
    pub fn count(&self, s: OrderStatus) -> u64 {
        self.by_status[status_index(s)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{CorrelationId, OrderEvent, OrderRequest, Version};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn history() -> Vec<EventEnvelope> {
        let order = OrderRequest::validate(&serde_json::json!({
            "customerId": "c",
            "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}],
        }))
        .expect("valid");
        let id = OrderId::new_random();
        let c = CorrelationId::generate();
        let v = |n| Version::new(n).expect("version");
        vec![
            EventEnvelope::at(
                id,
                v(1),
                c.clone(),
                OrderEvent::OrderReceived(order),
                at("2025-01-01T10:00:00Z"),
            ),
            EventEnvelope::at(
                id,
                v(2),
                c.clone(),
                OrderEvent::OrderProcessingStarted,
                at("2025-01-01T10:00:01Z"),
            ),
            EventEnvelope::at(
                id,
                v(3),
                c,
                OrderEvent::OrderCompleted { total: 100 },
                at("2025-01-01T10:00:02Z"),
            ),
        ]
    }

    #[test]
    fn a_cut_at_a_time_keeps_the_events_that_occurred_at_or_before_it() {
        let h = history();
        let kept = |t: &str| Cut::AsOf(at(t)).prefix(&h).len();
        assert_eq!(kept("2025-01-01T09:59:59.999Z"), 0);
        assert_eq!(kept("2025-01-01T10:00:00Z"), 1);
        assert_eq!(kept("2025-01-01T10:00:01.5Z"), 2);
        assert_eq!(kept("2025-01-01T12:00:00+02:00"), 1);
        assert_eq!(kept("2030-01-01T00:00:00Z"), 3);
    }

    #[test]
    fn a_cut_stops_at_the_first_later_event_even_if_a_clock_went_back_after_it() {
        let mut h = history();
        h[2].occurred_at = at("2025-01-01T09:00:00Z");
        // Version 3 claims an earlier time than version 2, which is after the cut: keeping it
        // would leave a gap in the versions.
        assert_eq!(Cut::AsOf(at("2025-01-01T10:00:00.5Z")).prefix(&h).len(), 1);
    }

    #[test]
    fn a_cut_at_a_version_keeps_versions_up_to_it() {
        let h = history();
        assert_eq!(Cut::AtVersion(2).prefix(&h).len(), 2);
        assert_eq!(Cut::AtVersion(9).prefix(&h).len(), 3);
    }

    #[test]
    fn the_summary_counts_every_status_and_totals_only_completed_orders() {
        let h = history();
        let mut s = Summary::default();
        for cut in [
            "2025-01-01T10:00:00Z",
            "2025-01-01T10:00:01Z",
            "2025-01-01T11:00:00Z",
        ] {
            let view = OrderView::fold(Cut::AsOf(at(cut)).prefix(&h))
                .expect("folds")
                .expect("exists");
            s.add(&view);
        }
        assert_eq!(s.orders, 3);
        assert_eq!(s.by_status, [1, 1, 1, 0, 0]);
        assert_eq!(s.totals.get("USD"), Some(&100));
    }
}
