//! The projector: keeps the `OrderStatus` view in step with the event log.
//!
//! Idempotent and order-independent: an event is applied only when its version is exactly the
//! view's version + 1. An older or equal version is a duplicate (no-op). A newer one means events
//! were missed or arrived out of order; the projector then folds the order's full history from
//! the log, which also covers everything it skipped.

pub mod lambda;

use std::sync::Arc;

use events_schema::{EventEnvelope, OrderView, Version};
use order_ports::{ConsumeError, EventConsumer, EventStore, StatusStore, Upserted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// The event moved the view one version forward.
    Applied(Version),
    /// The view already had this event.
    Duplicate,
    /// A gap: the view was rebuilt from the log, up to this version.
    Repaired(Version),
}

#[derive(Clone)]
pub struct Projector {
    events: Arc<dyn EventStore>,
    status: Arc<dyn StatusStore>,
}

impl Projector {
    pub fn new(events: Arc<dyn EventStore>, status: Arc<dyn StatusStore>) -> Self {
        Self { events, status }
    }

    #[tracing::instrument(skip_all, fields(order_id = %event.order_id, version = %event.version))]
    pub async fn project(&self, event: &EventEnvelope) -> Result<Projected, ConsumeError> {
        let current = self.status.get(event.order_id).await?;
        let next_view = match &current {
            Some(record) if record.version >= event.version => return Ok(Projected::Duplicate),
            // The fold accepts only the view's next version (and `start` only version 1), so
            // anything else — a gap, or a record that does not parse — falls through to repair.
            Some(record) => OrderView::try_from(record)
                .ok()
                .and_then(|mut view| view.apply(event).ok().map(|()| view)),
            None => OrderView::start(event).ok(),
        };
        match next_view {
            Some(view) => self.write(&view, Projected::Applied(view.version)).await,
            None => self.repair(event).await,
        }
    }

    async fn repair(&self, event: &EventEnvelope) -> Result<Projected, ConsumeError> {
        let history = self.events.load(event.order_id).await?;
        let view = OrderView::fold(&history)
            .map_err(|e| ConsumeError::Permanent(e.to_string()))?
            .ok_or_else(|| {
                ConsumeError::Permanent(format!(
                    "event {} of order {} is not in the log",
                    event.event_id, event.order_id
                ))
            })?;
        tracing::info!(to = %view.version, "view repaired from the log");
        self.write(&view, Projected::Repaired(view.version)).await
    }

    async fn write(&self, view: &OrderView, outcome: Projected) -> Result<Projected, ConsumeError> {
        match self.status.upsert(&view.into()).await? {
            Upserted::Written => Ok(outcome),
            // Another projector instance got there first; the view is at least as new.
            Upserted::Stale => Ok(Projected::Duplicate),
        }
    }
}

impl EventConsumer for Projector {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        self.project(event).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{OrderEvent, OrderStatus};
    use order_ports::test_util::TempSqlite;

    struct World {
        _db: TempSqlite,
        events: Arc<dyn EventStore>,
        status: Arc<dyn StatusStore>,
        history: Vec<EventEnvelope>,
    }

    /// A completed order in the log, nothing projected yet.
    async fn given_a_completed_order_in_the_log() -> World {
        let db = TempSqlite::new();
        let received = db.append_received_order(1, 10).await;
        let mk = |v: u32, e: OrderEvent| {
            let version = Version::new(v).unwrap();
            EventEnvelope::new(
                received.order_id,
                version,
                received.correlation_id.clone(),
                e,
            )
        };
        let history = vec![
            received.clone(),
            mk(2, OrderEvent::OrderProcessingStarted),
            mk(3, OrderEvent::OrderCompleted { total: 10 }),
        ];
        let events = db.events();
        events.append(&history[1..]).await.unwrap();
        World {
            events,
            status: Arc::new(db.db().status_store()),
            history,
            _db: db,
        }
    }

    #[tokio::test]
    async fn events_in_order_are_applied_one_by_one() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        for (i, e) in w.history.iter().enumerate() {
            let v = Version::new(i as u32 + 1).unwrap();
            assert_eq!(projector.project(e).await.unwrap(), Projected::Applied(v));
        }
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record.status, OrderStatus::Completed);
        assert_eq!(record.version.get(), 3);
    }

    #[tokio::test]
    async fn a_duplicate_event_is_a_no_op() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        projector.project(&w.history[0]).await.unwrap();
        projector.project(&w.history[1]).await.unwrap();
        let before = w.status.get(w.history[0].order_id).await.unwrap();
        assert_eq!(
            projector.project(&w.history[0]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(
            projector.project(&w.history[1]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(w.status.get(w.history[0].order_id).await.unwrap(), before);
    }

    #[tokio::test]
    async fn a_gap_is_repaired_from_the_log_and_late_events_are_then_duplicates() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        // The stream delivers v3 first (v1, v2 delayed).
        assert_eq!(
            projector.project(&w.history[2]).await.unwrap(),
            Projected::Repaired(Version::new(3).unwrap())
        );
        assert_eq!(
            projector.project(&w.history[0]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(
            projector.project(&w.history[1]).await.unwrap(),
            Projected::Duplicate
        );
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        let folded = OrderView::fold(&w.history).unwrap().unwrap();
        assert_eq!(record, (&folded).into());
    }

    #[tokio::test]
    async fn every_delivery_order_ends_in_the_same_view() {
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let w = given_a_completed_order_in_the_log().await;
            let projector = Projector::new(w.events.clone(), w.status.clone());
            for i in order {
                projector.project(&w.history[i]).await.unwrap();
            }
            let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
            let folded = OrderView::fold(&w.history).unwrap().unwrap();
            assert_eq!(record, (&folded).into(), "delivery order {order:?}");
        }
    }

    #[tokio::test]
    async fn consuming_an_event_projects_it() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        projector.consume(&w.history[0]).await.unwrap();
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record.status, OrderStatus::Received);
    }

    #[tokio::test]
    async fn an_event_that_is_not_in_the_log_and_cannot_be_applied_is_a_permanent_failure() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        let mut stray = w.history[2].clone();
        stray.order_id = events_schema::OrderId::new_random();
        assert!(matches!(
            projector.consume(&stray).await,
            Err(ConsumeError::Permanent(_))
        ));
        assert_eq!(w.status.get(stray.order_id).await.unwrap(), None);
    }
}
