//! A fault layer over the ports, for tests of the whole pipeline under bad luck.
//!
//! Each wrapper implements its port around any inner port and, driven by one shared [`Faults`]
//! (a seeded PRNG and counters):
//!
//! * fails a fraction of calls with [`StoreError::Unavailable`] — before the inner call, or, for
//!   writes (appends, sends, acks, fails, upserts, publishes, feed commits), *after* it
//!   succeeded: the write happened but the caller sees an error (a lost response);
//! * [`FaultyWorkQueue`] delivers messages twice: a received message is handed out again by a
//!   later receive (same receipt, acked or not), or made visible again behind the consumer's
//!   back (`fail` called spuriously, so another receiver gets it while it is being processed);
//! * [`FaultyFeed`] delivers records twice and out of order within a batch, and commits to the
//!   inner feed only positions whose records, and every record before them, were finished.
//!
//! A receive is never failed after the inner receive succeeded: the messages would only come
//! back after the visibility timeout, a fault the queue's redelivery already shows.
//!
//! The decisions come from one PRNG (xorshift64*), seeded by [`FaultConfig::seed`]: a sequence
//! of calls made in the same order meets the same faults. A concurrent pipeline makes its calls
//! in a different order on every run, so there the seed replays the same fault *pattern*, not
//! the same run; print it anyway ([`FaultReport`] does).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use events_schema::{EventEnvelope, EventId, OrderId, OrderStatusRecord};

use order_ports::feed::{Feed, FeedRecord};
use order_ports::{
    AppendError, CustomerOrdersQuery, Delivery, EventPage, EventStore, Notification,
    PublishBatchError, Publisher, StatusPage, StatusStore, StoreError, Upserted, WorkQueue,
};

/// The environment variable a test reads its fault seed from ([`seed_from_env`]), to replay a
/// failing run's fault pattern.
pub const SEED_VAR: &str = "ORDERS_FAULT_SEED";

/// The seed in [`SEED_VAR`] (decimal, or hex with `0x`), or a fresh one from the clock.
/// Panics if the variable is set but not a number.
pub fn seed_from_env() -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(raw) if !raw.trim().is_empty() => {
            let raw = raw.trim();
            let parsed = match raw.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => raw.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_VAR}={raw:?} is not a u64"))
        }
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            // The low 64 bits change fastest; mix in the pid for tests started together.
            (nanos as u64) ^ (u64::from(std::process::id()) << 32)
        }
    }
}

/// What the fault layer does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    pub seed: u64,
    /// The fraction of port calls that fail with `Unavailable`, 0.0..=1.0.
    pub failure_rate: f64,
    /// Of the failed writes, the fraction failed after the inner call succeeded (a lost
    /// response), 0.0..=1.0.
    pub lost_response_share: f64,
    /// The fraction of received messages delivered twice, of feed records delivered twice, and
    /// of feed deliveries swapped with one of the next few, 0.0..=1.0.
    pub redelivery_rate: f64,
}

impl FaultConfig {
    /// `failure_rate` of the calls fail (half of the failed writes after the write), and as
    /// many messages and records are delivered twice.
    pub fn new(seed: u64, failure_rate: f64) -> Self {
        Self {
            seed,
            failure_rate,
            lost_response_share: 0.5,
            redelivery_rate: failure_rate,
        }
    }
}

/// What the fault layer did to a call or a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The call failed with `Unavailable` without reaching the inner port.
    Unavailable,
    /// The inner call succeeded; the caller got `Unavailable`.
    LostResponse,
    /// A received message was handed out again by a later receive.
    Redelivered,
    /// A received message was made visible again while its receiver was processing it.
    SpuriousFail,
    /// A feed record was delivered twice in one batch.
    Duplicated,
    /// A feed delivery was swapped with one of the next few in its batch.
    Reordered,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Unavailable,
        FaultKind::LostResponse,
        FaultKind::Redelivered,
        FaultKind::SpuriousFail,
        FaultKind::Duplicated,
        FaultKind::Reordered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Unavailable => "unavailable",
            FaultKind::LostResponse => "lost response",
            FaultKind::Redelivered => "redelivered",
            FaultKind::SpuriousFail => "spurious fail",
            FaultKind::Duplicated => "duplicated",
            FaultKind::Reordered => "reordered",
        }
    }
}

/// xorshift64* (Vigna): tiny, fast, good enough to pick faults; not for anything else.
#[derive(Debug)]
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed: a zero state would stay zero, and close seeds should differ.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 1 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pass,
    FailBefore,
    FailAfter,
}

/// The shared state of a fault layer: its configuration, PRNG and counters. Share one
/// `Arc<Faults>` between all the wrappers of a test.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: Mutex<XorShift64>,
    counts: Mutex<BTreeMap<(&'static str, FaultKind), u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere in a test must not turn every later call into a second panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Faults {
    pub fn new(config: FaultConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            rng: Mutex::new(XorShift64::new(config.seed)),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn config(&self) -> FaultConfig {
        self.config
    }

    /// True with probability `p`.
    fn roll(&self, p: f64) -> bool {
        lock(&self.rng).next_f64() < p
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&self, n: usize) -> usize {
        (lock(&self.rng).next_u64() % n as u64) as usize
    }

    fn decide(&self, write: bool) -> Decision {
        if !self.roll(self.config.failure_rate) {
            Decision::Pass
        } else if write && self.roll(self.config.lost_response_share) {
            Decision::FailAfter
        } else {
            Decision::FailBefore
        }
    }

    fn record(&self, port: &'static str, kind: FaultKind) {
        *lock(&self.counts).entry((port, kind)).or_insert(0) += 1;
    }

    fn injected(port: &'static str, op: &str, kind: FaultKind) -> StoreError {
        StoreError::Unavailable(format!("injected fault: {port}.{op}: {}", kind.name()))
    }

    /// Runs `call` (the inner port's operation `op`) through the fault layer.
    async fn run<T, E>(
        &self,
        port: &'static str,
        op: &str,
        write: bool,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match self.decide(write) {
            Decision::Pass => call.await,
            Decision::FailBefore => {
                self.record(port, FaultKind::Unavailable);
                Err(Self::injected(port, op, FaultKind::Unavailable).into())
            }
            Decision::FailAfter => {
                call.await?;
                self.record(port, FaultKind::LostResponse);
                Err(Self::injected(port, op, FaultKind::LostResponse).into())
            }
        }
    }

    /// Runs a batch write of `items` (the inner port's operation `op`) with a fault decided for
    /// each item on its own: an item failed before the call does not reach the inner port; an
    /// item failed after it is written, then reported as a lost response. `call` gets the items
    /// that reach the inner port and returns one outcome per item given, in order.
    async fn run_each<I, T, E, Fut>(
        &self,
        port: &'static str,
        op: &str,
        items: &[I],
        call: impl FnOnce(Vec<I>) -> Fut,
    ) -> Vec<Result<T, E>>
    where
        I: Clone,
        E: From<StoreError>,
        Fut: Future<Output = Vec<Result<T, E>>>,
    {
        let decisions: Vec<Decision> = items.iter().map(|_| self.decide(true)).collect();
        let passed: Vec<I> = items
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| !matches!(d, Decision::FailBefore))
            .map(|(item, _)| item.clone())
            .collect();
        let mut inner = if passed.is_empty() {
            Vec::new()
        } else {
            call(passed).await
        }
        .into_iter();
        let lost = || StoreError::Unavailable(format!("the inner {op} lost an item")).into();
        decisions
            .into_iter()
            .map(|decision| match decision {
                Decision::Pass => inner.next().unwrap_or_else(|| Err(lost())),
                Decision::FailBefore => {
                    self.record(port, FaultKind::Unavailable);
                    Err(Self::injected(port, op, FaultKind::Unavailable).into())
                }
                Decision::FailAfter => match inner.next() {
                    Some(Ok(_)) => {
                        self.record(port, FaultKind::LostResponse);
                        Err(Self::injected(port, op, FaultKind::LostResponse).into())
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(lost()),
                },
            })
            .collect()
    }

    /// How many faults of `kind` were injected, on every port.
    pub fn count(&self, kind: FaultKind) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// How many faults were injected in all.
    pub fn total(&self) -> u64 {
        lock(&self.counts).values().sum()
    }

    /// The seed and the faults injected so far, per port and kind.
    pub fn report(&self) -> FaultReport {
        FaultReport {
            seed: self.config.seed,
            counts: lock(&self.counts).clone(),
        }
    }
}

/// The faults a [`Faults`] injected; `Display` prints the seed, the total, and the counts per
/// kind and per port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    pub seed: u64,
    /// Per (port, kind).
    pub counts: BTreeMap<(&'static str, FaultKind), u64>,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.counts.values().sum();
        write!(f, "{total} faults injected ({}={:#x})", SEED_VAR, self.seed)?;
        for kind in FaultKind::ALL {
            let per_port: Vec<String> = self
                .counts
                .iter()
                .filter(|((_, k), _)| *k == kind)
                .map(|((port, _), n)| format!("{port} {n}"))
                .collect();
            if !per_port.is_empty() {
                let sum: u64 = self
                    .counts
                    .iter()
                    .filter(|((_, k), _)| *k == kind)
                    .map(|(_, n)| n)
                    .sum();
                write!(
                    f,
                    "\n  {:<14} {sum:>5}  ({})",
                    kind.name(),
                    per_port.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

/// [`EventStore`] with faults (port name `events`). Appends may be lost responses.
pub struct FaultyEventStore {
    inner: Arc<dyn EventStore>,
    faults: Arc<Faults>,
}

impl FaultyEventStore {
    pub fn new(inner: Arc<dyn EventStore>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl EventStore for FaultyEventStore {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        self.faults
            .run("events", "append", true, self.inner.append(events))
            .await
    }

    /// Each append fails on its own, before or (a lost response) after the inner write.
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        self.faults
            .run_each("events", "append_many", appends, |passed| async move {
                self.inner.append_many(&passed).await
            })
            .await
    }

    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        self.faults
            .run("events", "load", false, self.inner.load(order_id))
            .await
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.faults
            .run(
                "events",
                "read_all",
                false,
                self.inner.read_all(cursor, limit),
            )
            .await
    }
}

/// [`WorkQueue`] with faults (port name `queue`): failed calls (sends, acks and fails may be
/// lost responses) and messages delivered twice (see the module docs).
pub struct FaultyWorkQueue {
    inner: Arc<dyn WorkQueue>,
    faults: Arc<Faults>,
    /// Deliveries to hand out again on a later receive.
    stash: Mutex<Vec<Delivery>>,
    max_receive_count: AtomicU32,
}

impl FaultyWorkQueue {
    pub fn new(inner: Arc<dyn WorkQueue>, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            faults,
            stash: Mutex::new(Vec::new()),
            max_receive_count: AtomicU32::new(0),
        }
    }

    /// Deliveries waiting to be handed out a second time.
    pub fn pending_redeliveries(&self) -> usize {
        lock(&self.stash).len()
    }

    /// The highest receive count of a message the inner queue delivered (how close the pipeline
    /// came to dead-lettering).
    pub fn max_receive_count(&self) -> u32 {
        self.max_receive_count.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl WorkQueue for FaultyWorkQueue {
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
        self.faults
            .run("queue", "send", true, self.inner.send(order_id))
            .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        self.faults
            .run("queue", "receive", false, async { Ok::<_, StoreError>(()) })
            .await?;
        let mut out: Vec<Delivery> = {
            let mut stash = lock(&self.stash);
            let take = stash.len().min(max);
            stash.drain(..take).collect()
        };
        let again = out.len();
        if out.len() < max {
            match self.inner.receive(max - out.len(), visibility).await {
                Ok(fresh) => out.extend(fresh),
                Err(e) => {
                    lock(&self.stash).extend(out);
                    return Err(e);
                }
            }
        }
        for _ in 0..again {
            self.faults.record("queue", FaultKind::Redelivered);
        }
        for delivery in &out[again..] {
            self.max_receive_count
                .fetch_max(delivery.receive_count, Ordering::Relaxed);
            if !self.faults.roll(self.faults.config.redelivery_rate) {
                continue;
            }
            if self.faults.roll(0.5) {
                lock(&self.stash).push(delivery.clone());
            } else if self.inner.fail(delivery).await.is_ok() {
                self.faults.record("queue", FaultKind::SpuriousFail);
            }
        }
        Ok(out)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.faults
            .run("queue", "ack", true, self.inner.ack(delivery))
            .await
    }

    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        self.faults
            .run("queue", "ack_many", true, self.inner.ack_many(deliveries))
            .await
    }

    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.faults
            .run("queue", "fail", true, self.inner.fail(delivery))
            .await
    }
}

/// [`StatusStore`] with faults (port name `status`). Upserts may be lost responses.
pub struct FaultyStatusStore {
    inner: Arc<dyn StatusStore>,
    faults: Arc<Faults>,
}

impl FaultyStatusStore {
    pub fn new(inner: Arc<dyn StatusStore>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl StatusStore for FaultyStatusStore {
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
        self.faults
            .run("status", "get", false, self.inner.get(order_id))
            .await
    }

    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError> {
        self.faults
            .run("status", "upsert", true, self.inner.upsert(record))
            .await
    }

    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        self.faults
            .run("status", "get_many", false, self.inner.get_many(order_ids))
            .await
    }

    /// Each record fails on its own, before or (a lost response) after the inner write.
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        self.faults
            .run_each("status", "upsert_many", records, |passed| async move {
                self.inner.upsert_many(&passed).await
            })
            .await
    }

    async fn list_by_customer(
        &self,
        query: &CustomerOrdersQuery,
    ) -> Result<StatusPage, StoreError> {
        self.faults
            .run(
                "status",
                "list_by_customer",
                false,
                self.inner.list_by_customer(query),
            )
            .await
    }

    async fn pending_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<order_ports::PendingPage, StoreError> {
        self.faults
            .run(
                "status",
                "pending_before",
                false,
                self.inner.pending_before(before, cursor, limit),
            )
            .await
    }
}

/// [`Publisher`] with faults (port name `publisher`). Publishes may be lost responses; every
/// publish the inner publisher accepted is counted per event id ([`published`](Self::published)),
/// so a test on a backend it cannot read back (SNS) still sees what went out.
pub struct FaultyPublisher {
    inner: Arc<dyn Publisher>,
    faults: Arc<Faults>,
    published: Mutex<HashMap<EventId, u32>>,
}

impl FaultyPublisher {
    pub fn new(inner: Arc<dyn Publisher>, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            faults,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// How many times the inner publisher accepted a notification, per event id.
    pub fn published(&self) -> HashMap<EventId, u32> {
        lock(&self.published).clone()
    }
}

#[async_trait]
impl Publisher for FaultyPublisher {
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        let call = async {
            self.inner.publish(notification).await?;
            *lock(&self.published)
                .entry(notification.event_id)
                .or_insert(0) += 1;
            Ok(())
        };
        self.faults.run("publisher", "publish", true, call).await
    }

    /// A failed call is cut at a random notification: those before it reach the inner
    /// publisher, and the error names it — or, for a lost response, the whole batch is
    /// published and the error names its first notification.
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        order_ports::check_publish_batch(notifications)?;
        let decision = self.faults.decide(true);
        let reach = match decision {
            Decision::FailBefore => self.faults.below(notifications.len()),
            Decision::Pass | Decision::FailAfter => notifications.len(),
        };
        let sent = &notifications[..reach];
        let outcome = if sent.is_empty() {
            Ok(())
        } else {
            self.inner.publish_batch(sent).await
        };
        let published = match &outcome {
            Ok(()) => sent.len(),
            Err(e) => e.index,
        };
        {
            let mut counts = lock(&self.published);
            for n in &sent[..published.min(sent.len())] {
                *counts.entry(n.event_id).or_insert(0) += 1;
            }
        }
        outcome?;
        let (kind, index) = match decision {
            Decision::Pass => return Ok(()),
            Decision::FailBefore => (FaultKind::Unavailable, reach),
            Decision::FailAfter => (FaultKind::LostResponse, 0),
        };
        self.faults.record("publisher", kind);
        Err(PublishBatchError {
            index,
            error: Faults::injected("publisher", "publish_batch", kind),
        })
    }
}

/// How far [`FaultyFeed`] moves a delivery within its batch, at most.
const MAX_MOVE: usize = 3;

/// A delivery of a [`FaultyFeed`]: the inner record's position, and which delivery of which
/// batch this is (a record may be delivered twice in a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultyPosition {
    batch: u64,
    slot: usize,
    label: String,
}

impl fmt::Display for FaultyPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// A [`Feed`] with faults (port name given to [`new`](Self::new)): polls and commits fail
/// (commits may be lost responses), and each batch comes with records delivered twice and out
/// of order.
///
/// The commit contract holds whatever the delivery order: a commit of a delivery marks it and
/// every delivery before it finished, and the inner feed is committed only up to the longest
/// run of finished records from the start of its batch — never past an unfinished one. A
/// retry rewinds the inner feed to its first unfinished record.
pub struct FaultyFeed<F: Feed> {
    inner: F,
    faults: Arc<Faults>,
    name: &'static str,
    /// Numbers the batches, so a position of an older batch is recognised.
    batch: u64,
    /// The inner positions of the current batch, in the inner feed's order.
    positions: Vec<F::Position>,
    /// Delivery slot → index in `positions`.
    slots: Vec<usize>,
    /// Per index in `positions`: finished by the consumer.
    finished: Vec<bool>,
    /// How many records of the batch (from its start) the inner feed has committed.
    committed: usize,
    commit_faults: bool,
}

impl<F: Feed> FaultyFeed<F> {
    pub fn new(inner: F, faults: Arc<Faults>, name: &'static str) -> Self {
        Self {
            inner,
            faults,
            name,
            batch: 0,
            positions: Vec::new(),
            slots: Vec::new(),
            finished: Vec::new(),
            committed: 0,
            commit_faults: true,
        }
    }

    /// Commits are never failed. For a feed whose commit cannot fail (the DynamoDB stream feed
    /// keeps its checkpoint in memory), and which does not rewind after a failed one: its
    /// iterator has moved past the batch, so the records after the last commit would never come
    /// back, against the [`Feed`] contract.
    pub fn without_commit_faults(mut self) -> Self {
        self.commit_faults = false;
        self
    }

    pub fn inner(&self) -> &F {
        &self.inner
    }
}

impl<F: Feed> Feed for FaultyFeed<F> {
    type Position = FaultyPosition;

    async fn poll(&mut self) -> Result<Vec<FeedRecord<FaultyPosition>>, StoreError> {
        // Failed before the inner poll only: what a poll returned is the consumer's to handle.
        self.faults
            .run(self.name, "poll", false, async { Ok::<_, StoreError>(()) })
            .await?;
        let records = self.inner.poll().await?;
        self.batch += 1;
        self.positions.clear();
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            self.positions.push(record.position);
            events.push(record.event);
        }
        let rate = self.faults.config.redelivery_rate;
        let mut slots = Vec::with_capacity(events.len());
        for index in 0..events.len() {
            slots.push(index);
            if self.faults.roll(rate) {
                slots.push(index);
                self.faults.record(self.name, FaultKind::Duplicated);
            }
        }
        // Moves are local (a few places), as a stream's reordering is: a record moved to the
        // far end of a big batch would hold the checkpoint back for the whole batch and turn
        // every transient failure into a redelivery of nearly all of it.
        for slot in 0..slots.len() {
            if self.faults.roll(rate) {
                let other = (slot + 1 + self.faults.below(MAX_MOVE)).min(slots.len() - 1);
                if other != slot && slots[other] != slots[slot] {
                    slots.swap(slot, other);
                    self.faults.record(self.name, FaultKind::Reordered);
                }
            }
        }
        self.finished = vec![false; events.len()];
        self.committed = 0;
        let batch = self.batch;
        let delivered = slots
            .iter()
            .enumerate()
            .map(|(slot, &index)| FeedRecord {
                position: FaultyPosition {
                    batch,
                    slot,
                    label: format!(
                        "{} (delivery {slot} of batch {batch})",
                        self.positions[index]
                    ),
                },
                event: events[index].clone(),
            })
            .collect();
        self.slots = slots;
        Ok(delivered)
    }

    async fn commit(&mut self, position: &FaultyPosition) -> Result<(), StoreError> {
        if position.batch != self.batch {
            // A delivery of an earlier batch: its records have been delivered again since.
            return Ok(());
        }
        for &index in self.slots.iter().take(position.slot + 1) {
            self.finished[index] = true;
        }
        let done = self.finished.iter().take_while(|f| **f).count();
        if done <= self.committed {
            return Ok(());
        }
        let target = &self.positions[done - 1];
        if self.commit_faults {
            self.faults
                .run(self.name, "commit", true, self.inner.commit(target))
                .await?;
        } else {
            self.inner.commit(target).await?;
        }
        self.committed = done;
        Ok(())
    }

    fn retry_from(&mut self, position: &FaultyPosition) {
        if position.batch != self.batch {
            return;
        }
        if let Some(first) = self.finished.iter().position(|f| !f) {
            self.inner.retry_from(&self.positions[first]);
        }
    }

    fn idle_pause(&self) -> Duration {
        self.inner.idle_pause()
    }
}
