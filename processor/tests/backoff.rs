//! Retries back off: a short outage of the event store, under load, dead-letters nothing. Runs
//! on the real SQLite queue with the production backoff (`order_ports::retry_delay`) and the
//! default five receives, in real time (the delays are seconds).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events_schema::{
    CorrelationId, EventEnvelope, OrderEvent, OrderId, OrderRequest, OrderView, ProcessingPolicy,
    Version,
};
use order_adapters_sqlite::{SqliteEventStore, DEFAULT_MAX_RECEIVES};
use order_ports::{AppendError, EventPage, EventStore, OrderIntake, StoreError};
use processor::{work_once, Processor};

const OUTAGE: Duration = Duration::from_secs(2);
const ORDERS: usize = 50;
const WORKERS: usize = 4;

/// The SQLite event store, down (every call `Unavailable`) until `until`.
struct Outage {
    inner: SqliteEventStore,
    until: Instant,
    refused: AtomicUsize,
}

impl Outage {
    fn check(&self) -> Result<(), StoreError> {
        if Instant::now() < self.until {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("the event store is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for Outage {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        self.check()?;
        self.inner.append(events).await
    }
    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        self.check()?;
        self.inner.load(order_id).await
    }
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.check()?;
        self.inner.read_all(cursor, limit).await
    }
}

fn received(order_id: OrderId, n: usize) -> EventEnvelope {
    let order = OrderRequest::validate(&serde_json::json!({
        "customerId": format!("c-{}", n % 7),
        "items": [{"productId": "p", "quantity": 1 + n % 3, "unitPrice": 100}]
    }))
    .expect("valid order");
    EventEnvelope::new(
        order_id,
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(order),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_event_store_outage_under_load_dead_letters_nothing() {
    let temp = order_adapters_sqlite::test_util::TempSqlite::new();
    let db = temp.db().clone();
    let intake = db.intake();
    let mut orders = Vec::new();
    for n in 0..ORDERS {
        let order = OrderId::new_random();
        intake.accept(&received(order, n)).await.expect("accept");
        orders.push(order);
    }

    let queue = Arc::new(db.work_queue_default());
    assert_eq!(queue.max_receives(), DEFAULT_MAX_RECEIVES);
    let store = Arc::new(Outage {
        inner: db.event_store(),
        until: Instant::now() + OUTAGE,
        refused: AtomicUsize::new(0),
    });
    let processor = Processor::new(store.clone(), ProcessingPolicy::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (processor, queue, stop) = (processor.clone(), queue.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    work_once(&processor, &*queue, 10, Duration::from_secs(30))
                        .await
                        .expect("the queue itself never fails here");
                }
            })
        })
        .collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let log = db.event_store();
    loop {
        let mut pending = 0;
        for order in &orders {
            let history = log.load(*order).await.expect("load");
            let view = OrderView::fold(&history).expect("the history folds");
            if !view.is_some_and(|v| v.status.is_terminal()) {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        let dead = queue.dead_letters().await.expect("dead letters").len();
        assert!(
            dead == 0 && Instant::now() < deadline,
            "{pending} orders pending after {:?}, {dead} dead-lettered",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }

    assert!(
        store.refused.load(Ordering::Relaxed) >= ORDERS,
        "the outage must have refused every order at least once"
    );
    assert!(started.elapsed() >= OUTAGE);
    assert_eq!(queue.dead_letters().await.expect("dead letters"), []);
    for order in &orders {
        let history = log.load(*order).await.expect("load");
        let types: Vec<&str> = history.iter().map(|e| e.event_type().as_str()).collect();
        assert!(
            types == ["OrderReceived", "OrderProcessingStarted", "OrderCompleted"]
                || types == ["OrderReceived", "OrderProcessingStarted", "OrderFailed"],
            "order {order}: {types:?}"
        );
    }
    eprintln!(
        "backoff: {ORDERS} orders through a {OUTAGE:?} outage in {:.1}s, {} calls refused, none dead-lettered",
        started.elapsed().as_secs_f64(),
        store.refused.load(Ordering::Relaxed)
    );
}
