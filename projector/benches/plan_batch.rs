//! Planning a projector batch ([`Projector::project_batch`]): grouping a stream batch by order,
//! folding each order's events onto its stored view and building the records to write, against
//! stores held in memory so that only the projector's own work is timed (on Lambda the batch
//! also costs one `BatchGetItem` and the conditional `PutItem`s; those are in the cost figures).
//!
//! `cargo bench -p projector --bench plan_batch`; CI runs it once in test mode
//! (`cargo test --benches`). Figures in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use events_schema::{EventEnvelope, OrderId, OrderStatusRecord, OrderView};
use order_ports::{
    BatchOutcome, CustomerOrdersQuery, EventPage, EventStore, PendingPage, StatusPage, StatusStore,
    StoreError, Upserted,
};
use projector::Projector;

/// A stream batch's size (the event source mapping's default for DynamoDB streams).
const BATCH: usize = 100;

/// Views read from a map that never changes; every write succeeds and is dropped, so each
/// iteration plans the same batch again.
struct Views(HashMap<OrderId, OrderStatusRecord>);

fn not_in_this_bench() -> StoreError {
    StoreError::Rejected("not used by project_batch".to_owned())
}

#[async_trait::async_trait]
impl StatusStore for Views {
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
        Ok(self.0.get(&order_id).cloned())
    }
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        Ok(order_ids
            .iter()
            .filter_map(|id| self.0.get(id).map(|r| (*id, r.clone())))
            .collect())
    }
    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError> {
        black_box(record);
        Ok(Upserted::Written)
    }
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        black_box(records);
        records.iter().map(|_| Ok(Upserted::Written)).collect()
    }
    async fn list_by_customer(&self, _: &CustomerOrdersQuery) -> Result<StatusPage, StoreError> {
        Err(not_in_this_bench())
    }
    async fn pending_before(
        &self,
        _: chrono::DateTime<chrono::Utc>,
        _: Option<String>,
        _: usize,
    ) -> Result<PendingPage, StoreError> {
        Err(not_in_this_bench())
    }
}

/// A log that is never read: the benched batches have no gaps, so nothing needs repairing.
struct NoLog;

#[async_trait::async_trait]
impl EventStore for NoLog {
    async fn append(&self, _: &[EventEnvelope]) -> Result<(), order_ports::AppendError> {
        Err(not_in_this_bench().into())
    }
    async fn load(&self, _: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        Err(not_in_this_bench())
    }
    async fn read_all(&self, _: Option<String>, _: usize) -> Result<EventPage, StoreError> {
        Err(not_in_this_bench())
    }
}

/// A batch of `BATCH` events and the views stored before it: with `stored_first`, each order's
/// `OrderReceived` was projected by an earlier batch (the batch carries versions 2 and 3);
/// otherwise the batch carries whole histories of orders not yet projected.
fn batch(stored_first: bool) -> (Views, Vec<EventEnvelope>) {
    let mut views = HashMap::new();
    let mut events = Vec::with_capacity(BATCH);
    while events.len() < BATCH {
        let [received, started, completed] = order_test_support::completed_history();
        if stored_first {
            let view = OrderView::start(&received).expect("version 1 starts a view");
            views.insert(received.order_id, OrderStatusRecord::from(&view));
            events.extend([started, completed]);
        } else {
            events.extend([received, started, completed]);
        }
    }
    events.truncate(BATCH);
    (Views(views), events)
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("projector");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, stored_first) in [
        ("plan a 100-event batch of new orders", false),
        ("plan a 100-event batch of orders under way", true),
    ] {
        let (views, events) = batch(stored_first);
        let projector = Projector::new(Arc::new(NoLog), Arc::new(views));
        assert_eq!(
            runtime.block_on(projector.project_batch(&events)),
            BatchOutcome::default(),
            "every event is planned and written"
        );
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(projector.project_batch(black_box(&events))))
        });
    }
    group.finish();
}

criterion_group!(plan_batch, benches);
criterion_main!(plan_batch);
