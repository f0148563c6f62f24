//! The processor: moves an order from RECEIVED to COMPLETED (or FAILED).
//!
//! Idempotent under redelivery: it folds the order's history and appends only the next step. A
//! version conflict means another worker did that step; it reloads and carries on from there.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod lambda;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use events_schema::{
    decide_next, CorrelationId, EventEnvelope, FoldError, OrderId, OrderStatus, OrderView,
    ProcessingPolicy,
};
use order_ports::{AppendError, Delivery, EventStore, StoreError, WorkQueue};

pub use worker::run_worker;

/// Why a message was not processed.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// Processes one work message (its body is an order id) to a terminal status: a batch of
    /// one. The tests' shorthand; the Lambda and the worker call [`Self::process_batch`].
    #[cfg(test)]
    #[tracing::instrument(skip(self), fields(order_id = body))]
    pub async fn process(&self, body: &str) -> Result<OrderStatus, ProcessError> {
        let mut outcomes = self.process_batch(&[body]).await;
        outcomes.pop().unwrap_or_else(|| {
            Err(ProcessError::Transient(StoreError::Unavailable(
                "a batch of one gave no outcome".into(),
            )))
        })
    }

    /// Processes a batch of work messages, each to a terminal status; one outcome per body, in
    /// order, each as [`process`](Self::process) would give it.
    ///
    /// The orders move on in step: their histories are loaded by one [`EventStore::load_many`],
    /// then each step (`OrderProcessingStarted`, then the outcome) is appended for every order
    /// of the batch in one [`EventStore::append_many`]. An order that loses the race for a step is reloaded and
    /// decided again, alone, in the next round; the others go on. Several messages for one
    /// order share its work and its outcome.
    pub async fn process_batch(&self, bodies: &[&str]) -> Vec<Result<OrderStatus, ProcessError>> {
        let mut outcomes: Vec<Option<Result<OrderStatus, ProcessError>>> = vec![None; bodies.len()];
        // One entry per distinct order, with the indexes of its messages.
        let mut orders: Vec<(OrderWork, Vec<usize>)> = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            let Ok(order_id) = OrderId::from_work_message(body) else {
                outcomes[index] = Some(Err(ProcessError::Poison(format!(
                    "{body:?} is not an order id"
                ))));
                continue;
            };
            match orders
                .iter_mut()
                .find(|(work, _)| work.order_id == order_id)
            {
                Some((_, indexes)) => indexes.push(index),
                None => orders.push((OrderWork::new(order_id), vec![index])),
            }
        }
        let mut works: Vec<OrderWork> = Vec::with_capacity(orders.len());
        let mut indexes: Vec<Vec<usize>> = Vec::with_capacity(orders.len());
        for (work, at) in orders {
            works.push(work);
            indexes.push(at);
        }

        while works.iter().any(|w| !matches!(w.step, Step::Done(_))) {
            self.load_histories(&mut works).await;
            self.append_next_steps(&mut works).await;
        }

        for (work, at) in works.into_iter().zip(indexes) {
            let Step::Done(outcome) = work.step else {
                continue;
            };
            for index in at {
                outcomes[index] = Some(outcome.clone());
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(ProcessError::Transient(StoreError::Unavailable(
                        "a message of the batch was left unprocessed".into(),
                    )))
                })
            })
            .collect()
    }

    /// Loads the history of every order whose next step is not known, in one
    /// [`EventStore::load_many`], and folds it.
    async fn load_histories(&self, works: &mut [OrderWork]) {
        let to_load: Vec<&mut OrderWork> = works
            .iter_mut()
            .filter(|w| matches!(w.step, Step::Load))
            .collect();
        if to_load.is_empty() {
            return;
        }
        let order_ids: Vec<OrderId> = to_load.iter().map(|w| w.order_id).collect();
        let histories = self.events.load_many(&order_ids).await;
        for (work, history) in to_load.into_iter().zip(histories) {
            work.step = match history {
                Ok(history) => match (OrderView::fold(&history), history.last()) {
                    (Ok(Some(view)), Some(last)) => Step::Decide {
                        view,
                        correlation_id: last.correlation_id.clone(),
                    },
                    (Ok(_), _) => Step::Done(Err(ProcessError::Poison(format!(
                        "order {} does not exist",
                        work.order_id
                    )))),
                    (Err(e), _) => Step::Done(Err(e.into())),
                },
                Err(e) => Step::Done(Err(e.into())),
            };
        }
    }

    /// Decides the next step of every order whose history is folded, and appends those steps
    /// in one call. An order with no next step is done.
    async fn append_next_steps(&self, works: &mut [OrderWork]) {
        let mut stepping: Vec<(&mut OrderWork, EventEnvelope)> = Vec::new();
        for work in works.iter_mut() {
            let Step::Decide {
                view,
                correlation_id,
            } = &work.step
            else {
                continue;
            };
            match decide_next(view, &self.policy) {
                Some(event) => {
                    let next = view.next_envelope(event, correlation_id.clone());
                    stepping.push((work, next));
                }
                None => work.step = Step::Done(Ok(view.status)),
            }
        }
        if stepping.is_empty() {
            return;
        }
        let appends: Vec<&[EventEnvelope]> = stepping
            .iter()
            .map(|(_, next)| std::slice::from_ref(next))
            .collect();
        let appended = self.events.append_many(&appends).await;
        for ((work, next), outcome) in stepping.into_iter().zip(appended) {
            match outcome {
                Ok(()) => work.applied(&next),
                // Someone else appended this step: reload and decide again.
                Err(AppendError::Conflict { .. }) => work.lost_a_race(),
                Err(AppendError::Store(e)) => work.step = Step::Done(Err(e.into())),
            }
        }
    }
}

/// Where one order of a batch stands.
struct OrderWork {
    order_id: OrderId,
    /// Appends lost to another worker so far.
    conflicts: usize,
    step: Step,
}

enum Step {
    /// Its history must be (re)loaded.
    Load,
    /// Its history is folded: decide and append the next step.
    Decide {
        view: OrderView,
        correlation_id: CorrelationId,
    },
    Done(Result<OrderStatus, ProcessError>),
}

impl OrderWork {
    fn new(order_id: OrderId) -> Self {
        Self {
            order_id,
            conflicts: 0,
            step: Step::Load,
        }
    }

    fn applied(&mut self, next: &EventEnvelope) {
        let Step::Decide { view, .. } = &mut self.step else {
            return;
        };
        match view.apply(next) {
            Ok(()) => order_ports::telemetry::processed(next, view.created_at),
            Err(e) => self.step = Step::Done(Err(e.into())),
        }
    }

    fn lost_a_race(&mut self) {
        self.conflicts += 1;
        self.step = if self.conflicts >= MAX_CONFLICTS {
            Step::Done(Err(ProcessError::Transient(StoreError::Unavailable(
                format!(
                    "order {}: lost the append race {} times",
                    self.order_id, self.conflicts
                ),
            ))))
        } else {
            Step::Load
        };
    }
}

/// One round of a queue worker: receive up to `max` messages, process them as a batch, ack the
/// done ones in one call and fail the others. Returns how many messages were received.
pub async fn work_once(
    processor: &Processor,
    queue: &dyn WorkQueue,
    max: usize,
    visibility: Duration,
) -> Result<usize, StoreError> {
    let deliveries = queue.receive(max, visibility).await?;
    if deliveries.is_empty() {
        return Ok(0);
    }
    let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
    let outcomes = processor.process_batch(&bodies).await;
    settle(queue, &deliveries, outcomes).await?;
    Ok(deliveries.len())
}

/// Acks the done deliveries in one call, then fails the others one by one.
async fn settle(
    queue: &dyn WorkQueue,
    deliveries: &[Delivery],
    outcomes: Vec<Result<OrderStatus, ProcessError>>,
) -> Result<(), StoreError> {
    let mut done = Vec::with_capacity(deliveries.len());
    let mut failed = Vec::new();
    for (delivery, outcome) in deliveries.iter().zip(outcomes) {
        match outcome {
            Ok(_) => done.push(delivery.clone()),
            Err(e) => failed.push((delivery, e)),
        }
    }
    if !done.is_empty() {
        queue.ack_many(&done).await?;
    }
    for (delivery, e) in failed {
        tracing::warn!(message_id = %delivery.message_id, receive_count = delivery.receive_count, error = %order_ports::telemetry::ErrorChain(&e), "message failed");
        queue.fail(delivery).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::EventEnvelope;
    use events_schema::OrderEvent;
    use order_adapters_sqlite::test_util::TempSqlite;

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

    /// The SQLite log, counting the appends that reach it.
    struct CountingAppends {
        inner: Arc<dyn EventStore>,
        appends: std::sync::atomic::AtomicUsize,
        append_calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl EventStore for CountingAppends {
        async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
            self.appends
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.append(events).await
        }

        async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
            self.append_calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.append_many(appends).await
        }

        async fn load(&self, id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
            self.inner.load(id).await
        }

        async fn read_all(
            &self,
            cursor: Option<String>,
            limit: usize,
        ) -> Result<order_ports::EventPage, StoreError> {
            self.inner.read_all(cursor, limit).await
        }
    }

    #[tokio::test]
    async fn a_batch_moves_its_orders_on_together_one_append_call_per_step() {
        let temp = TempSqlite::new();
        let fresh = [
            temp.append_received_order(1, 5).await.order_id,
            temp.append_received_order(1, 5).await.order_id,
            temp.append_received_order(1, 5).await.order_id,
        ];
        let done_before = temp.append_received_order(1, 5).await.order_id;
        let events = temp.events();
        Processor::new(events.clone(), ProcessingPolicy::default())
            .process(&done_before.to_string())
            .await
            .unwrap();
        let counting = Arc::new(CountingAppends {
            inner: events.clone(),
            appends: Default::default(),
            append_calls: Default::default(),
        });
        let processor = Processor::new(counting.clone(), ProcessingPolicy::default());
        let bodies = [
            fresh[0].to_string(),
            "garbage".to_owned(),
            fresh[1].to_string(),
            done_before.to_string(),
            fresh[2].to_string(),
            fresh[0].to_string(),
        ];
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();

        let outcomes = processor.process_batch(&bodies).await;

        assert_eq!(outcomes.len(), 6, "{outcomes:?}");
        for (i, outcome) in outcomes.iter().enumerate() {
            if i == 1 {
                assert!(
                    matches!(outcome, Err(ProcessError::Poison(_))),
                    "{outcome:?}"
                );
            } else {
                assert!(
                    matches!(outcome, Ok(OrderStatus::Completed)),
                    "{i}: {outcome:?}"
                );
            }
        }
        for id in fresh.iter().chain([&done_before]) {
            assert_eq!(
                types(&events.load(*id).await.unwrap()),
                ["OrderReceived", "OrderProcessingStarted", "OrderCompleted"]
            );
        }
        // Started for the three, then completed for the three: a redelivery of a completed
        // order and a second message for one order add no append.
        assert_eq!(
            counting
                .append_calls
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        assert_eq!(
            counting.appends.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }

    #[tokio::test]
    async fn in_a_batch_an_order_that_lost_a_race_is_reloaded_and_the_others_go_on() {
        let (db, events, contested) = given_a_received_order(500).await;
        let other = db.append_received_order(2, 500).await.order_id;
        // A rival worker has already started the contested order.
        let history = a_rival_appends(&events, contested, OrderEvent::OrderProcessingStarted).await;

        // This worker still believes the order is RECEIVED: its first append conflicts.
        let processor = a_worker_that_read(&events, history);
        let outcomes = processor
            .process_batch(&[&contested.to_string(), &other.to_string()])
            .await;

        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(OrderStatus::Completed))),
            "{outcomes:?}"
        );
        for id in [contested, other] {
            let versions: Vec<u32> = events
                .load(id)
                .await
                .unwrap()
                .iter()
                .map(|e| e.version.get())
                .collect();
            assert_eq!(versions, [1, 2, 3]);
        }
    }

    #[tokio::test]
    async fn an_order_cancelled_while_the_processor_decided_is_reloaded_and_left_alone() {
        let (_db, events, id) = given_a_received_order(500).await;
        // The customer cancels after this worker read the order as RECEIVED.
        let history =
            a_rival_appends(&events, id, OrderEvent::OrderCancelled { reason: None }).await;

        let processor = a_worker_that_read(&events, history);
        let outcomes = processor.process_batch(&[&id.to_string()]).await;

        assert!(
            matches!(outcomes[..], [Ok(OrderStatus::Cancelled)]),
            "{outcomes:?}"
        );
        assert_eq!(
            types(&events.load(id).await.unwrap()),
            ["OrderReceived", "OrderCancelled"]
        );
    }

    /// Another writer appends `event` to `id`'s log; returns the history it found, which a
    /// worker that read the order just before still holds.
    async fn a_rival_appends(
        events: &Arc<dyn EventStore>,
        id: OrderId,
        event: OrderEvent,
    ) -> Vec<EventEnvelope> {
        let history = events.load(id).await.unwrap();
        let view = OrderView::fold(&history).unwrap().unwrap();
        let next = view.next_envelope(event, history[0].correlation_id.clone());
        events.append(&[next]).await.unwrap();
        history
    }

    /// A processor whose first load of the order gives `stale` (see [`StaleFirstLoad`]).
    fn a_worker_that_read(events: &Arc<dyn EventStore>, stale: Vec<EventEnvelope>) -> Processor {
        Processor::new(
            Arc::new(StaleFirstLoad {
                inner: events.clone(),
                stale,
                served: Default::default(),
            }),
            ProcessingPolicy::default(),
        )
    }

    /// The log, except that the first load of the `stale` order returns `stale`: a worker
    /// that read the order just before a rival moved it on.
    struct StaleFirstLoad {
        inner: Arc<dyn EventStore>,
        stale: Vec<EventEnvelope>,
        served: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl EventStore for StaleFirstLoad {
        async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
            self.inner.append(events).await
        }

        async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
            self.inner.append_many(appends).await
        }

        async fn load(&self, id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
            let is_stale = self.stale.first().is_some_and(|e| e.order_id == id);
            if is_stale && !self.served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Ok(self.stale.clone());
            }
            self.inner.load(id).await
        }

        async fn read_all(
            &self,
            cursor: Option<String>,
            limit: usize,
        ) -> Result<order_ports::EventPage, StoreError> {
            self.inner.read_all(cursor, limit).await
        }
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
