//! One run: orders placed through the log and the work queue, then the three functions driven
//! by their mappings until nothing is left to deliver; then the checks.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use events_schema::{
    EventEnvelope, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView, ProcessingPolicy,
};
use futures::future::join_all;
use order_adapters_sqlite::test_util::TempSqlite;
use order_lambda::{handle_stream_batch, PoisonSink};
use order_ports::{
    AppendError, CustomerOrdersQuery, EventPage, EventStore, Notification, PendingPage,
    PublishBatchError, Publisher, SetAside, SetAsideRecord, StatusPage, StatusStore, StoreError,
    Upserted,
};
use order_test_support::fault::{
    FaultConfig, Faults, FaultyEventStore, FaultyPublisher, FaultyStatusStore,
};
use processor::Processor;
use projector::Projector;

use super::sqs::SqsQueue;
use super::stream::{Poison, Stream, StreamingEventStore};
use super::stream_mapping::{Invocation, LaneId, StreamMapping};
use super::template::MappingSettings;
use super::{Clock, Rng};

/// What varies between runs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub seed: u64,
    pub orders: usize,
    /// Stream shards.
    pub shards: usize,
    /// `ParallelizationFactor` of each stream mapping (the template's default is one value of
    /// the range it allows, 1–10).
    pub projector_lanes: usize,
    pub notifier_lanes: usize,
    /// Share of port calls that fail transiently (as a throttled call surfaces, see
    /// `order-ports/src/aws/mod.rs`'s `classify`), half of failed writes after the write.
    pub failure_rate: f64,
    /// Share of SQS receives that leave the message visible too (a duplicate delivery).
    pub duplicate_rate: f64,
    /// Share of invocations that time out after a few port calls.
    pub timeout_rate: f64,
    /// Undecodable records written to the stream among the orders' events.
    pub poison: usize,
    /// Processor batches in flight at once.
    pub processor_pollers: usize,
    /// The work queue's `maxReceiveCount` instead of the template's.
    pub max_receive_count: Option<u32>,
}

impl RunSettings {
    /// The fault mix, its shape chosen by the seed.
    pub fn for_seed(seed: u64, orders: usize) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed);
        Self {
            seed,
            orders,
            shards: 1 + rng.below(4) as usize,
            projector_lanes: 1 + rng.below(3) as usize,
            notifier_lanes: 1 + rng.below(3) as usize,
            failure_rate: 0.03,
            duplicate_rate: 0.03,
            timeout_rate: 0.02,
            poison: 9,
            processor_pollers: 2,
            max_receive_count: None,
        }
    }

    /// No faults at all: only what is asked for.
    pub fn calm(seed: u64, orders: usize) -> Self {
        Self {
            seed,
            orders,
            shards: 1,
            projector_lanes: 1,
            notifier_lanes: 1,
            failure_rate: 0.0,
            duplicate_rate: 0.0,
            timeout_rate: 0.0,
            poison: 0,
            processor_pollers: 1,
            max_receive_count: None,
        }
    }
}

tokio::task_local! {
    /// The invocation being run, when it is to time out: port calls it may still make.
    static DEADLINE: Arc<Deadline>;
}

struct Deadline {
    calls_left: AtomicI64,
    hit: tokio::sync::Notify,
}

/// A port call: if this invocation is out of time, it never returns (the runtime is stopped
/// with the call in flight, as Lambda stops a function at its timeout).
async fn port_call() {
    let deadline = DEADLINE.try_with(Arc::clone).ok();
    if let Some(deadline) = deadline {
        if deadline.calls_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            deadline.hit.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

/// The stores as the functions see them: each call may be the one at which the function times
/// out.
struct Timed<T: ?Sized>(Arc<T>);

#[async_trait]
impl EventStore for Timed<dyn EventStore> {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        port_call().await;
        self.0.append(events).await
    }
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        port_call().await;
        self.0.append_many(appends).await
    }
    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        port_call().await;
        self.0.load(order_id).await
    }
    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        port_call().await;
        self.0.load_many(order_ids).await
    }
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.0.read_all(cursor, limit).await
    }
}

#[async_trait]
impl StatusStore for Timed<dyn StatusStore> {
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
        port_call().await;
        self.0.get(order_id).await
    }
    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError> {
        port_call().await;
        self.0.upsert(record).await
    }
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        port_call().await;
        self.0.get_many(order_ids).await
    }
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        port_call().await;
        self.0.upsert_many(records).await
    }
    async fn list_by_customer(
        &self,
        query: &CustomerOrdersQuery,
    ) -> Result<StatusPage, StoreError> {
        self.0.list_by_customer(query).await
    }
    async fn pending_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        self.0.pending_before(before, cursor, limit).await
    }
}

#[async_trait]
impl Publisher for Timed<dyn Publisher> {
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        port_call().await;
        self.0.publish(notification).await
    }
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        port_call().await;
        self.0.publish_batch(notifications).await
    }
}

/// The stream failure queue: what the consumers set aside, kept; each `SendMessage` may fail
/// transiently (then the consumer reports the record instead).
struct FailureQueue {
    records: Mutex<Vec<SetAsideRecord>>,
    rng: Mutex<Rng>,
    failure_rate: f64,
}

#[async_trait]
impl SetAside for FailureQueue {
    async fn set_aside(&self, record: &SetAsideRecord) -> Result<(), StoreError> {
        port_call().await;
        if self.rng.lock().expect("rng").chance(self.failure_rate) {
            return Err(StoreError::Unavailable(
                "SendMessage: ThrottlingException (injected)".into(),
            ));
        }
        self.records.lock().expect("records").push(record.clone());
        Ok(())
    }
}

/// The orders' expected ends, by the processor's policy.
const CREDIT_LIMIT: i64 = ProcessingPolicy {
    credit_limit: 100_000_000,
}
.credit_limit;

pub struct Run {
    pub settings: RunSettings,
    pub mapping: MappingSettings,
    clock: Arc<Clock>,
    rng: Mutex<Rng>,
    pub db: TempSqlite,
    stream: Arc<Mutex<Stream>>,
    /// The log as ingest writes it (with its stream, without faults).
    intake: Arc<dyn EventStore>,
    queue: Arc<SqsQueue>,
    faults: Arc<Faults>,
    processor: Processor,
    projector: Projector,
    notifier_events: Arc<dyn EventStore>,
    notifier_publisher: Arc<dyn Publisher>,
    /// Every publish SNS would have accepted, counted per event id.
    published: Arc<FaultyPublisher>,
    /// One warm notifier instance per lane; replaced when its invocation fails as a whole.
    notifiers: Mutex<HashMap<LaneId, notifier::Notifier>>,
    failure_queue: Arc<FailureQueue>,
    projector_mapping: StreamMapping,
    notifier_mapping: StreamMapping,
    /// Every order placed, with the status its total must end it in.
    pub placed: BTreeMap<OrderId, OrderStatus>,
    /// Every poison record written: its sequence number, kind, and whether the notifier's
    /// filter lets it through.
    pub poison: Vec<(String, Poison)>,
    pub timeouts: AtomicU64,
    pub ticks: u64,
    /// Orders the scheduled reconciler sent back to the work queue (their messages had been
    /// dead-lettered after `MaxReceiveCount` failed receives).
    pub reenqueued: usize,
    /// How many dead letters the reconciler has already been run for.
    reconciled_dead_letters: usize,
}

/// What a run did, for the report line.
#[derive(Debug)]
pub struct Figures {
    pub completed: usize,
    pub failed: usize,
    pub set_aside: usize,
    pub max_copies: u32,
    pub invocations: u64,
    pub function_errors: u64,
    pub timeouts: u64,
    pub faults: u64,
    pub ticks: u64,
    pub reenqueued: usize,
}

impl Run {
    pub fn new(settings: RunSettings) -> Self {
        let mapping = {
            let mut m = MappingSettings::from_template();
            m.projector.parallelization_factor = settings.projector_lanes;
            m.notifier.parallelization_factor = settings.notifier_lanes;
            m
        };
        let clock = Arc::new(Clock::default());
        let db = TempSqlite::new();
        let stream = Arc::new(Mutex::new(Stream::new(settings.shards)));
        let faults = Faults::new(FaultConfig {
            seed: settings.seed,
            failure_rate: settings.failure_rate,
            lost_response_share: 0.5,
            // Duplicates come from the SQS model; the stream has none (each record once).
            redelivery_rate: 0.0,
        });
        let logged: Arc<dyn EventStore> = Arc::new(StreamingEventStore {
            inner: Arc::new(db.db().event_store()),
            stream: Arc::clone(&stream),
            clock: Arc::clone(&clock),
        });
        let faulty_log: Arc<dyn EventStore> = Arc::new(FaultyEventStore::new(
            Arc::clone(&logged),
            Arc::clone(&faults),
        ));
        let timed_log: Arc<dyn EventStore> = Arc::new(Timed(Arc::clone(&faulty_log)));
        let status: Arc<dyn StatusStore> = Arc::new(Timed(Arc::new(FaultyStatusStore::new(
            Arc::new(db.db().status_store()),
            Arc::clone(&faults),
        )) as Arc<dyn StatusStore>));
        let published = Arc::new(FaultyPublisher::new(
            Arc::new(db.db().publisher()),
            Arc::clone(&faults),
        ));
        let notifier_publisher: Arc<dyn Publisher> =
            Arc::new(Timed(Arc::clone(&published) as Arc<dyn Publisher>));
        let queue = Arc::new(SqsQueue::new(
            Arc::clone(&clock),
            mapping.processor.visibility_timeout,
            settings
                .max_receive_count
                .unwrap_or(mapping.processor.max_receive_count),
            settings.duplicate_rate,
            settings.seed,
        ));
        Self {
            processor: Processor::new(Arc::clone(&timed_log), ProcessingPolicy::default()),
            projector: Projector::new(Arc::clone(&timed_log), status),
            notifier_events: timed_log,
            notifier_publisher,
            published,
            notifiers: Mutex::default(),
            failure_queue: Arc::new(FailureQueue {
                records: Mutex::default(),
                rng: Mutex::new(Rng::new(settings.seed ^ 0xfa11)),
                failure_rate: settings.failure_rate,
            }),
            projector_mapping: StreamMapping::new(mapping.projector.clone()),
            notifier_mapping: StreamMapping::new(mapping.notifier.clone()),
            rng: Mutex::new(Rng::new(settings.seed)),
            intake: logged,
            queue,
            faults,
            clock,
            db,
            stream,
            mapping,
            settings,
            placed: BTreeMap::new(),
            poison: Vec::new(),
            timeouts: AtomicU64::new(0),
            ticks: 0,
            reenqueued: 0,
            reconciled_dead_letters: 0,
        }
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng.lock().expect("rng lock")
    }

    /// Places one order as ingest does: `OrderReceived` in the log, then its id on the queue.
    /// About one in ten is over the credit limit and must end `FAILED`.
    pub async fn place_order(&mut self) {
        let (quantity, unit_price) = {
            let mut rng = self.rng();
            if rng.chance(0.1) {
                (2, 60_000_000)
            } else {
                (1 + rng.below(5) as u32, 100 + rng.below(100_000) as i64)
            }
        };
        let received = order_test_support::order_received(quantity, unit_price);
        let expected = if i64::from(quantity) * unit_price > CREDIT_LIMIT {
            OrderStatus::Failed
        } else {
            OrderStatus::Completed
        };
        self.intake
            .append(std::slice::from_ref(&received))
            .await
            .expect("ingest appends OrderReceived");
        order_ports::WorkQueue::send(self.queue.as_ref(), received.order_id)
            .await
            .expect("ingest enqueues the order");
        self.placed.insert(received.order_id, expected);
    }

    /// Writes one undecodable record into the stream, keyed on a placed order as a newer
    /// writer's next event would be (version 4), or on an order of its own.
    pub fn place_poison(&mut self, kind: Poison) {
        let template = order_test_support::order_received(1, 100);
        let (template, version) = {
            let mut rng = self.rng();
            match self
                .placed
                .keys()
                .nth(rng.below(self.placed.len() as u64) as usize)
            {
                Some(&id) if rng.chance(0.5) => (
                    EventEnvelope::new(
                        id,
                        template.version,
                        template.correlation_id.clone(),
                        template.event.clone(),
                    ),
                    4 + rng.below(3),
                ),
                _ => (template, 1),
            }
        };
        let now = self.clock.now_ms();
        let mut stream = self.stream.lock().expect("stream lock");
        stream.push_poison(kind, &template, version, now);
        let record = stream
            .shards
            .iter()
            .flatten()
            .max_by(|a, b| a.sequence_number.cmp(&b.sequence_number))
            .expect("the record just written");
        self.poison.push((record.sequence_number.clone(), kind));
    }

    /// Runs `invocation` as Lambda would; some time out after a few port calls.
    async fn invoke<T>(&self, invocation: impl Future<Output = T>) -> Result<T, String> {
        let budget = {
            let mut rng = self.rng();
            rng.chance(self.settings.timeout_rate)
                .then(|| rng.below(6) as i64)
        };
        let Some(calls) = budget else {
            return Ok(invocation.await);
        };
        let deadline = Arc::new(Deadline {
            calls_left: AtomicI64::new(calls),
            hit: tokio::sync::Notify::new(),
        });
        let timed_out = deadline.hit.notified();
        tokio::select! {
            out = DEADLINE.scope(Arc::clone(&deadline), invocation) => Ok(out),
            () = timed_out => {
                self.timeouts.fetch_add(1, Ordering::SeqCst);
                Err("Task timed out".to_owned())
            }
        }
    }

    fn notifier_for(&self, lane: LaneId) -> notifier::Notifier {
        self.notifiers
            .lock()
            .expect("notifiers lock")
            .entry(lane)
            .or_insert_with(|| {
                notifier::Notifier::new(
                    Arc::clone(&self.notifier_events),
                    Arc::clone(&self.notifier_publisher),
                )
            })
            .clone()
    }

    /// One poll of each mapping; whether anything was handed over.
    async fn step(&mut self) -> bool {
        let now = self.clock.now_ms();
        let this: &Run = self;
        // The processor: a few batches at once.
        let polls: Vec<_> = (0..this.settings.processor_pollers)
            .map(|_| this.queue.poll(this.mapping.processor.batch_size))
            .filter(|d| !d.is_empty())
            .collect();
        let mut worked = !polls.is_empty();
        join_all(polls.iter().map(|deliveries| async move {
            let event = SqsQueue::event(deliveries);
            let outcome = this
                .invoke(processor::lambda::handle(
                    &this.processor,
                    this.queue.as_ref(),
                    event,
                ))
                .await;
            this.queue.settle(deliveries, outcome.as_ref().ok());
        }))
        .await;

        let ready = {
            let stream = self.stream.lock().expect("stream lock");
            self.projector_mapping.ready(&stream, now)
        };
        worked |= !ready.is_empty();
        let this: &Run = self;
        let outcomes = join_all(ready.iter().map(|r| {
            this.invoke(handle_stream_batch(
                &this.projector,
                this.sink("projector"),
                r.event.clone(),
            ))
        }))
        .await;
        for (r, outcome) in ready.into_iter().zip(outcomes) {
            let invocation = match outcome {
                Ok(response) => Invocation::Response(response),
                Err(_timed_out) => Invocation::FunctionError,
            };
            self.projector_mapping.complete(r, invocation);
        }

        let ready = {
            let stream = self.stream.lock().expect("stream lock");
            self.notifier_mapping.ready(&stream, now)
        };
        worked |= !ready.is_empty();
        let this: &Run = self;
        let outcomes = join_all(ready.iter().map(|r| {
            let notifier = this.notifier_for(r.lane);
            async move {
                this.invoke(handle_stream_batch(
                    &notifier,
                    this.sink("notifier"),
                    r.event.clone(),
                ))
                .await
            }
        }))
        .await;
        for (r, outcome) in ready.into_iter().zip(outcomes) {
            let invocation = match outcome {
                Ok(response) => Invocation::Response(response),
                Err(_timed_out) => {
                    // The instance is gone, and what it remembered with it.
                    self.notifiers
                        .lock()
                        .expect("notifiers lock")
                        .remove(&r.lane);
                    Invocation::FunctionError
                }
            };
            self.notifier_mapping.complete(r, invocation);
        }
        worked
    }

    fn sink(&self, consumer: &'static str) -> PoisonSink<'_> {
        PoisonSink {
            consumer,
            set_aside: self.failure_queue.as_ref(),
        }
    }

    fn quiet(&self) -> bool {
        let stream = self.stream.lock().expect("stream lock");
        self.queue.in_queue() == 0
            && self.projector_mapping.caught_up(&stream)
            && self.notifier_mapping.caught_up(&stream)
    }

    /// Places the orders in waves while the functions run, with the poison records among them,
    /// until every order is placed and nothing is left to deliver.
    pub async fn run(&mut self) {
        let waves = 20;
        let per_wave = self.settings.orders.div_ceil(waves).max(1);
        let poison_waves: Vec<usize> = {
            let mut rng = self.rng();
            (0..self.settings.poison)
                .map(|_| rng.below(waves as u64) as usize)
                .collect()
        };
        let mut wave = 0;
        loop {
            self.ticks += 1;
            assert!(
                self.ticks < 50_000,
                "no quiet after {} ticks: {} messages in the queue, stream of {} records",
                self.ticks,
                self.queue.in_queue(),
                self.stream.lock().expect("stream lock").len()
            );
            if self.placed.len() < self.settings.orders {
                for _ in 0..per_wave.min(self.settings.orders - self.placed.len()) {
                    self.place_order().await;
                }
                for (n, _) in poison_waves.iter().enumerate().filter(|(_, w)| **w == wave) {
                    self.place_poison(Poison::ALL[n % Poison::ALL.len()]);
                }
                wave += 1;
            }
            let worked = self.step().await;
            let now = self.clock.now_ms();
            if worked {
                self.clock.advance_to(now + 100);
            } else if self.placed.len() == self.settings.orders && self.quiet() {
                // What the schedule does on AWS: an order whose message was dead-lettered is
                // still pending in the view, and the reconciler sends it back (ADR 6).
                if self.queue.dead_letters().len() > self.reconciled_dead_letters {
                    self.reconciled_dead_letters = self.queue.dead_letters().len();
                    self.reconcile().await;
                    continue;
                }
                break;
            } else {
                // Nothing due: on to the next message that becomes visible again.
                let next = self.queue.next_visible_ms().unwrap_or(now + 100);
                self.clock.advance_to(next.max(now + 100));
            }
        }
    }

    /// One run of the real reconciler over the run's log, view and work queue.
    async fn reconcile(&mut self) {
        let (events, status) = (self.db.db().event_store(), self.db.db().status_store());
        let report = reconciler::reconcile(
            reconciler::Ports {
                events: &events,
                status: &status,
                repair: &status,
                queue: self.queue.as_ref(),
            },
            std::time::Duration::ZERO,
            false,
            chrono::Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .expect("the reconciler runs");
        self.reenqueued += report.reenqueued;
    }

    /// The bound docs/guarantees.md and ADR 9 state: `1 + StreamMaxRetryAttempts +
    /// ⌈log₂ StreamBatchSize⌉` copies of a completion, at most.
    pub fn duplicate_bound(&self) -> u32 {
        let retries = self
            .mapping
            .notifier
            .max_retry_attempts
            .unwrap_or(u32::MAX - 64);
        let batch = self.mapping.notifier.batch_size.max(1) as u32;
        let splits = u32::BITS - (batch - 1).leading_zeros();
        1 + retries + splits
    }

    /// Every rule the run must keep; the problems found, or the figures.
    pub async fn check(&self) -> Result<Figures, Vec<String>> {
        let mut problems = Vec::new();
        let log = self.db.db().event_store();
        let views = self.db.db().status_store();
        let published = self.published.published();
        let bound = self.duplicate_bound();
        let (mut completed, mut failed, mut max_copies) = (0, 0, 0);
        if self.queue.in_queue() != 0 {
            problems.push(format!(
                "{} messages left in the work queue",
                self.queue.in_queue()
            ));
        }
        // A dead-lettered message is not a problem in itself (the reconciler sends its order
        // back); its order must still end as its log says, checked below.
        for (&id, &expected) in &self.placed {
            let history = log.load(id).await.expect("load a history");
            let view = match OrderView::fold(&history) {
                Ok(Some(view)) => view,
                other => {
                    problems.push(format!("{id}: history does not fold: {other:?}"));
                    continue;
                }
            };
            if view.status != expected {
                problems.push(format!(
                    "{id}: ended {:?}, expected {expected:?}",
                    view.status
                ));
            }
            let stored = views.get(id).await.expect("read a view");
            if stored != Some(OrderStatusRecord::from(&view)) {
                problems.push(format!("{id}: view {stored:?} is not the fold of its log"));
            }
            match history.last().map(|e| &e.event) {
                Some(OrderEvent::OrderCompleted { .. }) => {
                    completed += 1;
                    let copies = history
                        .last()
                        .and_then(|e| published.get(&e.event_id))
                        .copied()
                        .unwrap_or(0);
                    max_copies = max_copies.max(copies);
                    if copies == 0 {
                        problems.push(format!("{id}: completed, never notified"));
                    } else if copies > bound {
                        problems.push(format!(
                            "{id}: notified {copies} times, more than the bound {bound}"
                        ));
                    }
                }
                Some(OrderEvent::OrderFailed { .. }) => failed += 1,
                _ => {}
            }
        }
        let set_aside = self.failure_queue.records.lock().expect("records").clone();
        let poison: BTreeMap<&str, Poison> =
            self.poison.iter().map(|(s, k)| (s.as_str(), *k)).collect();
        for record in &set_aside {
            let seq = record.sequence_number.as_deref().unwrap_or("");
            if !poison.contains_key(seq) {
                problems.push(format!("a valid record was set aside: {record:?}"));
            }
        }
        for (seq, kind) in &poison {
            let by = |consumer: &str| {
                set_aside.iter().any(|r| {
                    r.sequence_number.as_deref() == Some(seq) && r.set_aside_by == consumer
                })
            };
            if !by("projector") {
                problems.push(format!(
                    "poison record {seq} ({kind:?}) not set aside by the projector"
                ));
            }
            // The notifier only sees what its filter lets through: those claiming to be completions.
            let notifier_sees = !matches!(kind, Poison::UnknownEventType);
            if notifier_sees != by("notifier") {
                problems.push(format!(
                    "poison record {seq} ({kind:?}): set aside by the notifier: {}, expected {notifier_sees}",
                    by("notifier")
                ));
            }
        }
        for (name, mapping) in [
            ("projector", &self.projector_mapping),
            ("notifier", &self.notifier_mapping),
        ] {
            for d in &mapping.discarded {
                problems.push(format!(
                    "the {name} mapping discarded a batch ({}): {:?}",
                    d.condition, d.sequence_numbers
                ));
            }
        }
        if problems.is_empty() {
            Ok(Figures {
                completed,
                failed,
                set_aside: set_aside.len(),
                max_copies,
                invocations: self.projector_mapping.invocations + self.notifier_mapping.invocations,
                function_errors: self.projector_mapping.function_errors
                    + self.notifier_mapping.function_errors,
                timeouts: self.timeouts.load(Ordering::SeqCst),
                faults: self.faults.total(),
                ticks: self.ticks,
                reenqueued: self.reenqueued,
            })
        } else {
            Err(problems)
        }
    }
}
