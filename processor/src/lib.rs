//! The processor: moves an order from RECEIVED to COMPLETED (or FAILED).
//!
//! Idempotent under redelivery: it folds the order's history and appends only the next step. A
//! version conflict means another worker did that step; it reloads and carries on from there.

pub mod lambda;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use events_schema::{decide_next, FoldError, OrderId, OrderStatus, OrderView, ProcessingPolicy};
use order_ports::{AppendError, Delivery, EventStore, StoreError, WorkQueue};

pub use worker::run_worker;

/// Why a message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Retrying cannot help (a malformed message, an unknown order, an unreadable history).
    /// The message is failed and, after the queue's maximum receives, dead-lettered.
    #[error("poison message: {0}")]
    Poison(String),
    /// A transient fault: the message comes back later.
    #[error(transparent)]
    Transient(StoreError),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ProcessError::Transient(e)
        } else {
            ProcessError::Poison(e.to_string())
        }
    }
}

impl From<FoldError> for ProcessError {
    fn from(e: FoldError) -> Self {
        ProcessError::Poison(format!("history does not fold: {e}"))
    }
}

/// How many times one message may lose the append race before it is handed back to the queue.
const MAX_CONFLICTS: usize = 8;

#[derive(Clone)]
pub struct Processor {
    events: Arc<dyn EventStore>,
    policy: ProcessingPolicy,
}

impl Processor {
    pub fn new(events: Arc<dyn EventStore>, policy: ProcessingPolicy) -> Self {
        Self { events, policy }
    }

    /// Processes one work message (its body is an order id) to a terminal status.
    #[tracing::instrument(skip(self), fields(order_id = body, correlationId))]
    pub async fn process(&self, body: &str) -> Result<OrderStatus, ProcessError> {
        let order_id = OrderId::parse(body.trim())
            .map_err(|_| ProcessError::Poison(format!("{body:?} is not an order id")))?;
        let mut conflicts = 0;
        loop {
            let history = self.events.load(order_id).await?;
            let (Some(mut view), Some(last)) = (OrderView::fold(&history)?, history.last()) else {
                return Err(ProcessError::Poison(format!(
                    "order {order_id} does not exist"
                )));
            };
            let correlation_id = last.correlation_id.clone();
            tracing::Span::current().record("correlationId", correlation_id.as_str());
            loop {
                let Some(event) = decide_next(&view, &self.policy) else {
                    return Ok(view.status);
                };
                let next = view.next_envelope(event, correlation_id.clone());
                match self.events.append(std::slice::from_ref(&next)).await {
                    Ok(()) => {
                        view.apply(&next)?;
                        order_ports::telemetry::processed(&next, history.first());
                    }
                    // Someone else appended this step: reload and decide again.
                    Err(AppendError::Conflict { .. }) => break,
                    Err(AppendError::Store(e)) => return Err(e.into()),
                }
            }
            conflicts += 1;
            if conflicts >= MAX_CONFLICTS {
                return Err(ProcessError::Transient(StoreError::Unavailable(format!(
                    "order {order_id}: lost the append race {conflicts} times"
                ))));
            }
        }
    }
}

/// One round of a queue worker: receive up to `max` messages, process them concurrently, ack
/// the done ones and fail the others. Returns how many messages were received.
pub async fn work_once(
    processor: &Processor,
    queue: &dyn WorkQueue,
    max: usize,
    visibility: Duration,
) -> Result<usize, StoreError> {
    let deliveries = queue.receive(max, visibility).await?;
    let outcomes = futures::future::join_all(
        deliveries
            .iter()
            .map(|d| async move { (d, processor.process(&d.body).await) }),
    )
    .await;
    for (delivery, outcome) in outcomes {
        settle(queue, delivery, outcome).await?;
    }
    Ok(deliveries.len())
}

async fn settle(
    queue: &dyn WorkQueue,
    delivery: &Delivery,
    outcome: Result<OrderStatus, ProcessError>,
) -> Result<(), StoreError> {
    match outcome {
        Ok(_) => queue.ack(delivery).await,
        Err(e) => {
            tracing::warn!(message_id = %delivery.message_id, receive_count = delivery.receive_count, error = %order_ports::telemetry::ErrorChain(&e), "message failed");
            queue.fail(delivery).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::EventEnvelope;
    use events_schema::OrderEvent;
    use order_ports::test_util::TempSqlite;

    async fn given_a_received_order(total_each: i64) -> (TempSqlite, Arc<dyn EventStore>, OrderId) {
        let db = TempSqlite::new();
        let id = db.append_received_order(2, total_each).await.order_id;
        let events = db.events();
        (db, events, id)
    }

    fn types(history: &[events_schema::EventEnvelope]) -> Vec<&'static str> {
        history.iter().map(|e| e.event_type().as_str()).collect()
    }

    #[tokio::test]
    async fn a_received_order_is_started_then_completed() {
        let (_dir, events, id) = given_a_received_order(500).await;
        let processor = Processor::new(events.clone(), ProcessingPolicy::default());
        assert_eq!(
            processor.process(&id.to_string()).await.unwrap(),
            OrderStatus::Completed
        );
        let history = events.load(id).await.unwrap();
        assert_eq!(
            types(&history),
            ["OrderReceived", "OrderProcessingStarted", "OrderCompleted"]
        );
        assert_eq!(history[2].event, OrderEvent::OrderCompleted { total: 1000 });
        assert!(history
            .iter()
            .all(|e| e.correlation_id == history[0].correlation_id));
    }

    #[tokio::test]
    async fn a_redelivered_message_appends_nothing_more() {
        let (_dir, events, id) = given_a_received_order(500).await;
        let processor = Processor::new(events.clone(), ProcessingPolicy::default());
        processor.process(&id.to_string()).await.unwrap();
        assert_eq!(
            processor.process(&id.to_string()).await.unwrap(),
            OrderStatus::Completed
        );
        assert_eq!(events.load(id).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn concurrent_deliveries_of_one_order_append_each_step_once() {
        let (_dir, events, id) = given_a_received_order(500).await;
        let processor = Processor::new(events.clone(), ProcessingPolicy::default());
        let body = id.to_string();
        let runs = futures::future::join_all((0..8).map(|_| processor.process(&body))).await;
        assert!(
            runs.iter().all(|r| matches!(r, Ok(OrderStatus::Completed))),
            "{runs:?}"
        );
        let versions: Vec<u32> = events
            .load(id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.version.get())
            .collect();
        assert_eq!(versions, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_failed_business_rule_ends_the_order_failed_not_in_the_dead_letters() {
        let (_dir, events, id) = given_a_received_order(500).await;
        let processor = Processor::new(events.clone(), ProcessingPolicy { credit_limit: 999 });
        assert_eq!(
            processor.process(&id.to_string()).await.unwrap(),
            OrderStatus::Failed
        );
        let history = events.load(id).await.unwrap();
        assert!(
            matches!(&history[2].event, OrderEvent::OrderFailed { reason } if reason.contains("credit"))
        );
    }

    #[tokio::test]
    async fn garbage_and_unknown_orders_are_poison() {
        let (_dir, events, _) = given_a_received_order(500).await;
        let processor = Processor::new(events, ProcessingPolicy::default());
        assert!(matches!(
            processor.process("garbage").await,
            Err(ProcessError::Poison(_))
        ));
        assert!(matches!(
            processor.process(&OrderId::new_random().to_string()).await,
            Err(ProcessError::Poison(_))
        ));
    }

    /// An event store where every append loses the race, as if another worker always got there
    /// first. It gives up after `LOAD_LIMIT` loads so a processor that never stops fails the
    /// test instead of hanging it.
    struct AlwaysLosesTheRace {
        history: Vec<EventEnvelope>,
        loads: std::sync::atomic::AtomicUsize,
    }

    const LOAD_LIMIT: usize = 100;

    #[async_trait::async_trait]
    impl EventStore for AlwaysLosesTheRace {
        async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
            let first = events.first().expect("a non-empty append");
            Err(AppendError::Conflict {
                order_id: first.order_id,
                version: first.version,
            })
        }

        async fn load(&self, _: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
            let loads = self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if loads >= LOAD_LIMIT {
                return Err(StoreError::Corrupt("the processor never gave up".into()));
            }
            Ok(self.history.clone())
        }

        async fn read_all(
            &self,
            _: Option<String>,
            _: usize,
        ) -> Result<order_ports::EventPage, StoreError> {
            unreachable!("the processor does not read the whole log")
        }
    }

    #[tokio::test]
    async fn an_order_that_loses_every_append_race_is_handed_back_after_max_conflicts_tries() {
        let (_dir, events, id) = given_a_received_order(500).await;
        let store = Arc::new(AlwaysLosesTheRace {
            history: events.load(id).await.unwrap(),
            loads: Default::default(),
        });
        let processor = Processor::new(store.clone(), ProcessingPolicy::default());

        let outcome = processor.process(&id.to_string()).await;

        assert!(
            matches!(outcome, Err(ProcessError::Transient(_))),
            "{outcome:?}"
        );
        assert_eq!(
            store.loads.load(std::sync::atomic::Ordering::SeqCst),
            MAX_CONFLICTS
        );
    }

    #[tokio::test]
    async fn a_worker_round_acks_what_it_finished_and_hands_back_what_it_could_not() {
        let temp = TempSqlite::new();
        let db = temp.db().clone();
        let events: Arc<dyn EventStore> = Arc::new(db.event_store());
        let queue = db.work_queue_default();
        let id = temp.append_received_order(1, 5).await.order_id;
        queue.send(id).await.unwrap();
        queue.send_raw("garbage").await.unwrap();
        let processor = Processor::new(events, ProcessingPolicy::default());
        let visibility = Duration::from_secs(600);

        assert_eq!(
            work_once(&processor, &queue, 10, visibility).await.unwrap(),
            2
        );

        // The finished message is gone; the poison one is visible again at once, not after
        // the visibility timeout.
        assert_eq!(queue.depth().await.unwrap(), 1);
        let again = queue.receive(10, visibility).await.unwrap();
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].body, "garbage");
        assert_eq!(again[0].receive_count, 2);
    }
}
