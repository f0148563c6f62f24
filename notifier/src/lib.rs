//! The notifier: one notification per `OrderCompleted`.
//!
//! Delivery is at least once: a retried batch can publish the same completion again. Each
//! message carries the `eventId`; consumers deduplicate on it.

pub mod lambda;

use std::collections::BTreeMap;
use std::sync::Arc;

use events_schema::envelope::format_timestamp;
use events_schema::{EventEnvelope, EventId, OrderEvent, OrderView};
use order_ports::{ConsumeError, EventConsumer, EventStore, Notification, Publisher};

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
    #[tracing::instrument(skip_all, fields(order_id = %event.order_id, event_type = %event.event_type()))]
    pub async fn notify(&self, event: &EventEnvelope) -> Result<Option<EventId>, ConsumeError> {
        let OrderEvent::OrderCompleted { total } = event.event else {
            return Ok(None);
        };
        // The completion carries only the total; who ordered and in which currency is in v1.
        let history = self.events.load(event.order_id).await?;
        let view = OrderView::fold(history.iter().take_while(|e| e.version <= event.version))
            .map_err(|e| ConsumeError::Permanent(e.to_string()))?
            .ok_or_else(|| {
                ConsumeError::Permanent(format!("order {} has no history", event.order_id))
            })?;
        let notification = completion_notification(event, &view, total);
        self.publisher.publish(&notification).await?;
        Ok(Some(event.event_id))
    }
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
}
