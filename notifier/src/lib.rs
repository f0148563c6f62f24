//! The notifier: one notification per `OrderCompleted`.
//!
//! Delivery is at least once: a retried batch can publish the same completion again. Each
//! message carries the `eventId`; consumers deduplicate on it.

pub mod lambda;

use std::collections::BTreeMap;
use std::sync::Arc;

use events_schema::envelope::format_timestamp;
use events_schema::{EventEnvelope, EventId, OrderEvent, OrderView};
use order_ports::{
    BatchOutcome, ConsumeError, EventConsumer, EventStore, Notification, PublishBatchError,
    Publisher,
};

#[derive(Clone)]
pub struct Notifier {
    events: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
}

impl Notifier {
    pub fn new(events: Arc<dyn EventStore>, publisher: Arc<dyn Publisher>) -> Self {
        Self { events, publisher }
    }

    /// Publishes `event` if it is an `OrderCompleted`; returns the id of what was published.
    #[tracing::instrument(skip_all, fields(orderId = %event.order_id, version = %event.version, correlationId = %event.correlation_id, event_type = %event.event_type()))]
    pub async fn notify(&self, event: &EventEnvelope) -> Result<Option<EventId>, ConsumeError> {
        let Some(notification) = self.completion(event).await? else {
            return Ok(None);
        };
        self.publisher.publish(&notification).await?;
        order_ports::telemetry::notified(event);
        Ok(Some(event.event_id))
    }

    /// The notification `event` calls for: `None` unless it is an `OrderCompleted`.
    async fn completion(
        &self,
        event: &EventEnvelope,
    ) -> Result<Option<Notification>, ConsumeError> {
        if !matches!(event.event, OrderEvent::OrderCompleted { .. }) {
            return Ok(None);
        }
        let history = self.events.load(event.order_id).await?;
        completion_from(event, &history)
    }

    /// The batch's completions, their histories loaded together ([`EventStore::load_many`]), published in order with
    /// [`Publisher::publish_batch`]. The outcome keeps the contract of
    /// [`EventConsumer::consume_batch`]: nothing is published at or after the first event that
    /// failed transiently (a history that could not be read, a publish that failed); an event
    /// whose notification can never be made or published is set aside and the rest go on.
    pub async fn notify_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        let completed: Vec<usize> = (0..events.len())
            .filter(|&i| matches!(events[i].event, OrderEvent::OrderCompleted { .. }))
            .collect();
        let order_ids: Vec<_> = completed.iter().map(|&i| events[i].order_id).collect();
        let histories = self.events.load_many(&order_ids).await;
        let prepared = completed.iter().zip(histories).map(|(&index, history)| {
            let notification = history
                .map_err(ConsumeError::from)
                .and_then(|history| completion_from(&events[index], &history));
            (index, notification)
        });
        let mut permanent = Vec::new();
        let mut transient = Vec::new();
        let mut ready: Vec<(usize, Notification)> = Vec::new();
        for (index, notification) in prepared {
            match notification {
                Ok(Some(notification)) => ready.push((index, notification)),
                Ok(None) => {}
                Err(ConsumeError::Permanent(reason)) => permanent.push((index, reason)),
                Err(ConsumeError::Transient(reason)) => {
                    transient.push((index, reason));
                    break;
                }
            }
        }
        let notifications: Vec<Notification> = ready.iter().map(|(_, n)| n.clone()).collect();
        let mut from = 0;
        while from < notifications.len() {
            let result = self.publisher.publish_batch(&notifications[from..]).await;
            let published = match &result {
                Ok(()) => notifications.len(),
                Err(e) => from + e.index,
            };
            for (event_index, _) in ready.get(from..published).unwrap_or_default() {
                if let Some(event) = events.get(*event_index) {
                    order_ports::telemetry::notified(event);
                }
            }
            let Err(PublishBatchError { index, error }) = result else {
                break;
            };
            let failed = from + index;
            let Some((event_index, _)) = ready.get(failed) else {
                break;
            };
            match ConsumeError::from(error) {
                ConsumeError::Permanent(reason) => permanent.push((*event_index, reason)),
                ConsumeError::Transient(reason) => {
                    transient.push((*event_index, reason));
                    break;
                }
            }
            from = failed + 1;
        }
        BatchOutcome::from_failures(permanent, transient)
    }
}

/// The notification of the completion `event`, from its order's history (who ordered and in
/// which currency are in v1; the completion carries only the total). `None` for other events.
fn completion_from(
    event: &EventEnvelope,
    history: &[EventEnvelope],
) -> Result<Option<Notification>, ConsumeError> {
    let OrderEvent::OrderCompleted { total } = event.event else {
        return Ok(None);
    };
    let view = OrderView::fold(history.iter().take_while(|e| e.version <= event.version))
        .map_err(|e| ConsumeError::Permanent(e.to_string()))?
        .ok_or_else(|| {
            ConsumeError::Permanent(format!("order {} has no history", event.order_id))
        })?;
    Ok(Some(completion_notification(event, &view, total)))
}

/// The message subscribers receive for a completed order.
pub fn completion_notification(
    event: &EventEnvelope,
    view: &OrderView,
    total: i64,
) -> Notification {
    let message = serde_json::json!({
        "eventId": event.event_id,
        "eventType": event.event_type().as_str(),
        "orderId": event.order_id,
        "customerId": view.customer_id,
        "total": total,
        "currency": view.currency,
        "completedAt": format_timestamp(event.occurred_at),
        "correlationId": event.correlation_id,
    });
    let attributes = BTreeMap::from([
        (
            "eventType".to_owned(),
            event.event_type().as_str().to_owned(),
        ),
        ("customerId".to_owned(), view.customer_id.to_string()),
        ("orderId".to_owned(), event.order_id.to_string()),
        (
            "correlationId".to_owned(),
            event.correlation_id.as_str().to_owned(),
        ),
    ]);
    Notification {
        event_id: event.event_id,
        message: message.to_string(),
        attributes,
    }
}

impl EventConsumer for Notifier {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        self.notify(event).await.map(|_| ())
    }

    async fn consume_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        self.notify_batch(events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{CorrelationId, OrderId, OrderRequest, Version};
    use order_ports::sqlite::{SqliteDb, SqlitePublisher};

    struct World {
        _dir: tempfile::TempDir,
        notifier: Notifier,
        published: SqlitePublisher,
        history: Vec<EventEnvelope>,
    }

    /// A completed order of 2 × 750 EUR in the log, nothing published yet.
    async fn given_a_completed_order_in_the_log() -> World {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(dir.path().join("notify.db")).unwrap();
        let events: Arc<dyn EventStore> = Arc::new(db.event_store());
        let history = append_completed_order(events.as_ref()).await;
        let published = db.publisher();
        World {
            _dir: dir,
            notifier: Notifier::new(events, Arc::new(published.clone())),
            published,
            history,
        }
    }

    /// Appends the three events of a completed order of 2 × 750 EUR and returns them.
    async fn append_completed_order(events: &dyn EventStore) -> Vec<EventEnvelope> {
        let order = OrderRequest::validate(&serde_json::json!({
            "customerId": "cust-9", "currency": "EUR",
            "items": [{"productId": "p", "quantity": 2, "unitPrice": 750}]
        }))
        .unwrap();
        let id = OrderId::new_random();
        let corr = CorrelationId::parse("corr-9").unwrap();
        let mk = |v: u32, e: OrderEvent| {
            EventEnvelope::new(id, Version::new(v).unwrap(), corr.clone(), e)
        };
        let history = vec![
            mk(1, OrderEvent::OrderReceived(order)),
            mk(2, OrderEvent::OrderProcessingStarted),
            mk(3, OrderEvent::OrderCompleted { total: 1500 }),
        ];
        events.append(&history).await.unwrap();
        history
    }

    #[tokio::test]
    async fn a_completion_is_published_with_who_what_and_how_much() {
        let w = given_a_completed_order_in_the_log().await;
        let completed = &w.history[2];

        assert_eq!(
            w.notifier.notify(completed).await.unwrap(),
            Some(completed.event_id)
        );

        let published = w.published.list_after(0, 10).await.unwrap();
        assert_eq!(published.len(), 1);
        let n = &published[0].1;
        assert_eq!(n.event_id, completed.event_id);
        let message: serde_json::Value = serde_json::from_str(&n.message).unwrap();
        assert_eq!(message["eventId"], completed.event_id.to_string());
        assert_eq!(message["eventType"], "OrderCompleted");
        assert_eq!(message["orderId"], completed.order_id.to_string());
        assert_eq!(message["customerId"], "cust-9");
        assert_eq!(message["total"], 1500);
        assert_eq!(message["currency"], "EUR");
        assert_eq!(message["correlationId"], "corr-9");
        assert_eq!(
            message["completedAt"],
            format_timestamp(completed.occurred_at)
        );
        assert_eq!(
            n.attributes,
            BTreeMap::from([
                ("eventType".to_owned(), "OrderCompleted".to_owned()),
                ("customerId".to_owned(), "cust-9".to_owned()),
                ("orderId".to_owned(), completed.order_id.to_string()),
                ("correlationId".to_owned(), "corr-9".to_owned()),
            ])
        );
    }

    #[tokio::test]
    async fn events_other_than_a_completion_publish_nothing() {
        let w = given_a_completed_order_in_the_log().await;
        for e in &w.history[..2] {
            assert_eq!(w.notifier.notify(e).await.unwrap(), None);
        }
        assert!(w.published.list_after(0, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn consuming_a_completion_publishes_it() {
        let w = given_a_completed_order_in_the_log().await;
        w.notifier.consume(&w.history[2]).await.unwrap();
        let published = w.published.list_after(0, 10).await.unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].1.event_id, w.history[2].event_id);
    }

    async fn published_ids(published: &SqlitePublisher) -> Vec<EventId> {
        let listed = published.list_after(0, 100).await.unwrap();
        listed.into_iter().map(|(_, n)| n.event_id).collect()
    }

    #[tokio::test]
    async fn a_batch_publishes_its_completions_and_sets_aside_one_that_can_never_be() {
        let w = given_a_completed_order_in_the_log().await;
        let mut stray = w.history[2].clone();
        stray.order_id = OrderId::new_random();
        let batch = [
            w.history[0].clone(),
            w.history[1].clone(),
            stray,
            w.history[2].clone(),
        ];

        let outcome = w.notifier.consume_batch(&batch).await;

        assert_eq!(outcome.transient, None);
        assert_eq!(
            outcome
                .permanent
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(published_ids(&w.published).await, [w.history[2].event_id]);
    }

    /// A publisher that is unavailable for one event and records the others.
    struct UnavailableFor {
        event_id: EventId,
        inner: SqlitePublisher,
    }

    #[async_trait::async_trait]
    impl Publisher for UnavailableFor {
        async fn publish(&self, n: &Notification) -> Result<(), order_ports::StoreError> {
            if n.event_id == self.event_id {
                return Err(order_ports::StoreError::Unavailable("throttled".into()));
            }
            self.inner.publish(n).await
        }
    }

    #[tokio::test]
    async fn a_batch_stops_at_a_completion_it_could_not_publish_and_publishes_nothing_after_it() {
        let w = given_a_completed_order_in_the_log().await;
        let events = w.notifier.events.clone();
        let second = append_completed_order(events.as_ref()).await;
        let third = append_completed_order(events.as_ref()).await;
        let notifier = Notifier::new(
            events,
            Arc::new(UnavailableFor {
                event_id: second[2].event_id,
                inner: w.published.clone(),
            }),
        );
        let batch = [w.history[2].clone(), second[2].clone(), third[2].clone()];

        let outcome = notifier.consume_batch(&batch).await;

        assert!(outcome.permanent.is_empty(), "{outcome:?}");
        assert!(
            matches!(&outcome.transient, Some((1, reason)) if reason.contains("throttled")),
            "{outcome:?}"
        );
        assert_eq!(published_ids(&w.published).await, [w.history[2].event_id]);
    }

    #[tokio::test]
    async fn a_completion_of_an_order_missing_from_the_log_is_a_permanent_failure() {
        let w = given_a_completed_order_in_the_log().await;
        let mut stray = w.history[2].clone();
        stray.order_id = OrderId::new_random();
        assert!(matches!(
            w.notifier.consume(&stray).await,
            Err(ConsumeError::Permanent(_))
        ));
        assert!(w.published.list_after(0, 10).await.unwrap().is_empty());
    }
}
