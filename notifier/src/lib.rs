//! The notifier: one notification per `OrderCompleted` and per `OrderCancelled` (the events
//! [`is_announced`] names; the stream mapping's filter in `template.yaml` passes the same two).
//!
//! Delivery is at least once, and duplicates are bounded (docs/guarantees.md, ADR 9): a notifier
//! never publishes again a completion it has published itself (it remembers the last
//! [`REMEMBERED_PUBLICATIONS`] event ids it published), so a batch that comes back after a
//! failure — a transient error after it, a record it could not set aside — is not published
//! twice by the same function instance. What is left is a completion published by an instance
//! that then failed as a whole (a timeout, a crash) and is retried elsewhere. Each message carries
//! the `eventId`; consumers deduplicate on it.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod lambda;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use events_schema::envelope::format_timestamp;
use events_schema::{EventEnvelope, EventId, OrderEvent, OrderView};
use order_ports::{
    BatchOutcome, ConsumeError, EventConsumer, EventStore, Notification, PublishBatchError,
    Publisher,
};

/// How many published event ids a [`Notifier`] remembers (about 1 MB): many batches' worth, so
/// a batch retried by the same instance finds every completion it already published.
pub const REMEMBERED_PUBLICATIONS: usize = 16_384;

/// The last `capacity` event ids published, oldest forgotten first.
#[derive(Debug)]
struct Published {
    capacity: usize,
    order: VecDeque<EventId>,
    ids: HashSet<EventId>,
}

impl Published {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    fn contains(&self, id: &EventId) -> bool {
        self.ids.contains(id)
    }

    fn remember(&mut self, id: EventId) {
        if self.capacity == 0 || !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }
}

#[derive(Clone)]
pub struct Notifier {
    events: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
    /// What this notifier (this function instance, this `orders serve`) has published.
    published: Arc<Mutex<Published>>,
}

impl Notifier {
    pub fn new(events: Arc<dyn EventStore>, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            events,
            publisher,
            published: Arc::new(Mutex::new(Published::new(REMEMBERED_PUBLICATIONS))),
        }
    }

    fn already_published(&self, id: &EventId) -> bool {
        self.published.lock().is_ok_and(|p| p.contains(id))
    }

    fn remember(&self, ids: impl IntoIterator<Item = EventId>) {
        if let Ok(mut published) = self.published.lock() {
            for id in ids {
                published.remember(id);
            }
        }
    }

    /// Publishes `event` if it is an announced event (`OrderCompleted`, `OrderCancelled`) this
    /// notifier has not published yet; returns the id of what was published (now or before).
    #[tracing::instrument(skip_all, fields(orderId = %event.order_id, version = %event.version, correlationId = %event.correlation_id, event_type = %event.event_type()))]
    pub async fn notify(&self, event: &EventEnvelope) -> Result<Option<EventId>, ConsumeError> {
        if self.already_published(&event.event_id) {
            return Ok(Some(event.event_id));
        }
        let Some(notification) = self.completion(event).await? else {
            return Ok(None);
        };
        self.publisher.publish(&notification).await?;
        self.remember([event.event_id]);
        order_ports::telemetry::notified(event);
        Ok(Some(event.event_id))
    }

    /// The notification `event` calls for: `None` unless it is announced ([`is_announced`]).
    async fn completion(
        &self,
        event: &EventEnvelope,
    ) -> Result<Option<Notification>, ConsumeError> {
        if !is_announced(&event.event) {
            return Ok(None);
        }
        let history = self.events.load(event.order_id).await?;
        notification_from(event, &history)
    }

    /// The batch's announced events, their histories loaded together ([`EventStore::load_many`]), published in order with
    /// [`Publisher::publish_batch`]. The outcome keeps the contract of
    /// [`EventConsumer::consume_batch`]: nothing is published at or after the first event that
    /// failed transiently (a history that could not be read, a publish that failed); an event
    /// whose notification can never be made or published is set aside and the rest go on.
    ///
    /// A completion this notifier already published (its batch came back) is not published
    /// again.
    pub async fn notify_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        let completed: Vec<usize> = (0..events.len())
            .filter(|&i| is_announced(&events[i].event))
            .filter(|&i| !self.already_published(&events[i].event_id))
            .collect();
        let order_ids: Vec<_> = completed.iter().map(|&i| events[i].order_id).collect();
        let histories = self.events.load_many(&order_ids).await;
        let prepared = completed.iter().zip(histories).map(|(&index, history)| {
            let notification = history
                .map_err(ConsumeError::from)
                .and_then(|history| notification_from(&events[index], &history));
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
            let done = ready.get(from..published).unwrap_or_default();
            self.remember(done.iter().map(|(_, n)| n.event_id));
            for (event_index, _) in done {
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

/// Is `event` one subscribers are told about? The outcomes a customer waits for: the order
/// completed, or it was cancelled. Keep `template.yaml`'s notifier filter in step with this.
pub fn is_announced(event: &OrderEvent) -> bool {
    match event {
        OrderEvent::OrderCompleted { .. } | OrderEvent::OrderCancelled { .. } => true,
        OrderEvent::OrderReceived(_)
        | OrderEvent::OrderProcessingStarted
        | OrderEvent::OrderFailed { .. } => false,
    }
}

/// The notification of the announced `event`, from its order's history (who ordered and in
/// which currency are in v1; the event carries only its own fields). `None` for other events.
fn notification_from(
    event: &EventEnvelope,
    history: &[EventEnvelope],
) -> Result<Option<Notification>, ConsumeError> {
    if !is_announced(&event.event) {
        return Ok(None);
    }
    let view = OrderView::fold(history.iter().take_while(|e| e.version <= event.version))
        .map_err(|e| ConsumeError::Permanent(e.to_string()))?
        .ok_or_else(|| {
            ConsumeError::Permanent(format!("order {} has no history", event.order_id))
        })?;
    Ok(match &event.event {
        OrderEvent::OrderCompleted { total } => Some(completion_notification(event, &view, *total)),
        OrderEvent::OrderCancelled { reason } => {
            Some(cancellation_notification(event, &view, reason.as_deref()))
        }
        OrderEvent::OrderReceived(_)
        | OrderEvent::OrderProcessingStarted
        | OrderEvent::OrderFailed { .. } => None,
    })
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
    Notification {
        event_id: event.event_id,
        message: message.to_string(),
        attributes: attributes(event, view),
    }
}

/// The message subscribers receive for a cancelled order: what the order was worth
/// (`total`, its value at receipt) and the customer's reason, if they gave one.
pub fn cancellation_notification(
    event: &EventEnvelope,
    view: &OrderView,
    reason: Option<&str>,
) -> Notification {
    let mut message = serde_json::json!({
        "eventId": event.event_id,
        "eventType": event.event_type().as_str(),
        "orderId": event.order_id,
        "customerId": view.customer_id,
        "total": view.total,
        "currency": view.currency,
        "cancelledAt": format_timestamp(event.occurred_at),
        "correlationId": event.correlation_id,
    });
    if let Some(reason) = reason {
        message["reason"] = serde_json::json!(reason);
    }
    Notification {
        event_id: event.event_id,
        message: message.to_string(),
        attributes: attributes(event, view),
    }
}

/// The message attributes subscription filters select on, the same for every announced event.
fn attributes(event: &EventEnvelope, view: &OrderView) -> BTreeMap<String, String> {
    BTreeMap::from([
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
    ])
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
    use order_adapters_sqlite::{SqliteDb, SqlitePublisher};

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
    async fn a_cancellation_is_published_with_its_reason_and_the_same_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(dir.path().join("notify.db")).unwrap();
        let events: Arc<dyn EventStore> = Arc::new(db.event_store());
        let published = db.publisher();
        let notifier = Notifier::new(events.clone(), Arc::new(published.clone()));
        // The first two events of a completed order, as the start of orders cancelled instead.
        let completed = append_completed_order(events.as_ref()).await;
        let started = &completed[..2];
        let value = OrderView::fold(started).unwrap().unwrap().total;
        let mut outcomes = Vec::new();
        for reason in [Some("too slow"), None] {
            let id = OrderId::new_random();
            let mut log: Vec<EventEnvelope> = started
                .iter()
                .map(|e| EventEnvelope {
                    order_id: id,
                    event_id: EventId::new(),
                    ..e.clone()
                })
                .collect();
            let cancelled = OrderView::fold(&log).unwrap().unwrap().next_envelope(
                OrderEvent::OrderCancelled {
                    reason: reason.map(str::to_owned),
                },
                CorrelationId::parse("corr-9").unwrap(),
            );
            log.push(cancelled.clone());
            events.append(&log).await.unwrap();
            assert_eq!(notifier.notify_batch(&log).await, BatchOutcome::default());
            outcomes.push(cancelled);
        }
        let sent = published.list_after(0, 10).await.unwrap();
        assert_eq!(
            sent.len(),
            2,
            "one message per cancellation, none for the other events"
        );
        for ((_, n), (cancelled, reason)) in sent
            .iter()
            .zip(outcomes.iter().zip([Some("too slow"), None]))
        {
            assert_eq!(n.event_id, cancelled.event_id);
            let message: serde_json::Value = serde_json::from_str(&n.message).unwrap();
            assert_eq!(message["eventType"], "OrderCancelled");
            assert_eq!(message["orderId"], cancelled.order_id.to_string());
            assert_eq!(message["customerId"], "cust-9");
            assert_eq!(message["total"], value);
            assert_eq!(message["currency"], "EUR");
            assert_eq!(
                message["cancelledAt"],
                format_timestamp(cancelled.occurred_at)
            );
            assert_eq!(message.get("reason").and_then(|r| r.as_str()), reason);
            assert_eq!(
                n.attributes,
                BTreeMap::from([
                    ("eventType".to_owned(), "OrderCancelled".to_owned()),
                    ("customerId".to_owned(), "cust-9".to_owned()),
                    ("orderId".to_owned(), cancelled.order_id.to_string()),
                    ("correlationId".to_owned(), "corr-9".to_owned()),
                ])
            );
        }
    }

    #[test]
    fn completions_and_cancellations_are_announced_and_nothing_else() {
        let history = order_test_support::completed_history();
        let announced: Vec<bool> = history.iter().map(|e| is_announced(&e.event)).collect();
        assert_eq!(announced, [false, false, true]);
        assert!(is_announced(&OrderEvent::OrderCancelled { reason: None }));
        assert!(!is_announced(&OrderEvent::OrderFailed {
            reason: "x".into()
        }));
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

    /// A publisher that records every `publish_batch` call (the notifications handed to it)
    /// and refuses, permanently, the notifications of the listed events, as SNS refuses an
    /// entry; like SNS it refuses an empty batch. The others go to `inner`.
    struct Recording {
        refuse: Vec<EventId>,
        calls: std::sync::Mutex<Vec<Vec<EventId>>>,
        inner: SqlitePublisher,
    }

    impl Recording {
        fn new(inner: SqlitePublisher, refuse: Vec<EventId>) -> Self {
            Self {
                refuse,
                calls: std::sync::Mutex::default(),
                inner,
            }
        }
        fn calls(&self) -> Vec<Vec<EventId>> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Publisher for Recording {
        async fn publish(&self, n: &Notification) -> Result<(), order_ports::StoreError> {
            if self.refuse.contains(&n.event_id) {
                return Err(order_ports::StoreError::Rejected("InvalidParameter".into()));
            }
            self.inner.publish(n).await
        }

        async fn publish_batch(&self, batch: &[Notification]) -> Result<(), PublishBatchError> {
            self.calls
                .lock()
                .unwrap()
                .push(batch.iter().map(|n| n.event_id).collect());
            order_ports::check_publish_batch(batch)?;
            for (index, n) in batch.iter().enumerate() {
                self.publish(n)
                    .await
                    .map_err(|error| PublishBatchError { index, error })?;
            }
            Ok(())
        }
    }

    /// `n` completed orders in the log, and their completions.
    async fn completions(events: &dyn EventStore, n: usize) -> Vec<EventEnvelope> {
        let mut completed = Vec::new();
        for _ in 0..n {
            completed.push(append_completed_order(events).await[2].clone());
        }
        completed
    }

    #[tokio::test]
    async fn a_batch_whose_completions_all_publish_is_published_in_one_call() {
        let w = given_a_completed_order_in_the_log().await;
        let events = w.notifier.events.clone();
        let batch = completions(events.as_ref(), 3).await;
        let recording = Arc::new(Recording::new(w.published.clone(), vec![]));
        let notifier = Notifier::new(events, recording.clone());

        let outcome = notifier.consume_batch(&batch).await;

        assert_eq!(outcome, BatchOutcome::default());
        let ids: Vec<EventId> = batch.iter().map(|e| e.event_id).collect();
        assert_eq!(recording.calls(), vec![ids.clone()]);
        assert_eq!(published_ids(&w.published).await, ids);
    }

    #[tokio::test]
    async fn completions_refused_for_good_are_set_aside_and_every_other_one_is_published_and_counted(
    ) {
        let w = given_a_completed_order_in_the_log().await;
        let events = w.notifier.events.clone();
        let batch = completions(events.as_ref(), 5).await;
        let recording = Arc::new(Recording::new(
            w.published.clone(),
            vec![batch[1].event_id, batch[3].event_id],
        ));
        let notifier = Notifier::new(events, recording.clone());
        let captured = Arc::new(order_ports::metrics::Captured::default());

        let outcome =
            order_ports::metrics::scoped(captured.clone(), notifier.consume_batch(&batch)).await;

        assert_eq!(outcome.transient, None);
        let refused: Vec<usize> = outcome.permanent.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused, [1, 3]);
        assert_eq!(
            published_ids(&w.published).await,
            [batch[0].event_id, batch[2].event_id, batch[4].event_id]
        );
        assert_eq!(captured.taken(), ["NotificationPublished"; 3]);
        assert_eq!(recording.calls().len(), 3, "{:?}", recording.calls());
    }

    #[tokio::test]
    async fn a_completion_this_notifier_already_published_is_not_published_again_when_its_batch_comes_back(
    ) {
        let w = given_a_completed_order_in_the_log().await;
        let events = w.notifier.events.clone();
        let batch = completions(events.as_ref(), 2).await;
        let recording = Arc::new(Recording::new(w.published.clone(), vec![]));
        let notifier = Notifier::new(events, recording.clone());

        assert_eq!(
            notifier.consume_batch(&batch).await,
            BatchOutcome::default()
        );
        assert_eq!(
            notifier.consume_batch(&batch).await,
            BatchOutcome::default()
        );
        notifier.consume(&batch[0]).await.unwrap();

        assert_eq!(recording.calls().len(), 1, "{:?}", recording.calls());
    }

    #[test]
    fn the_memory_of_publications_forgets_the_oldest_beyond_its_capacity() {
        let mut published = Published::new(2);
        let ids = [EventId::new(), EventId::new(), EventId::new()];
        for id in ids {
            published.remember(id);
        }
        published.remember(ids[2]);
        assert!(!published.contains(&ids[0]));
        assert!(published.contains(&ids[1]));
        assert!(published.contains(&ids[2]));
        assert_eq!(published.order.len(), 2);
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
