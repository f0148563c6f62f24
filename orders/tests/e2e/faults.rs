//! The whole pipeline in process, every port behind the fault layer
//! (`order_test_support::fault`): 10% of the calls fail transiently (half of the failed
//! writes after the write happened), work messages and feed records are delivered twice, and
//! feed records out of order. Orders go in through the real API (`ingest::router`), retried on
//! 503 with the same `Idempotency-Key` like a good client; the processor workers, the projector,
//! the notifier (as `orders serve` runs them) and, while the test waits for the end, the
//! reconciler (as its Lambda does) run. Once the pipeline is idle, every accepted
//! order must have reached its end exactly once.
//!
//! On SQLite (300 orders) and on the AWS adapters against the emulator (60 orders: DynamoDB,
//! SQS, SNS, the events table's DynamoDB stream as the feed). On the stream, commits are not
//! failed: the stream feed's commit cannot fail (its checkpoint is in memory) and it does not
//! rewind after a failed one, so a failed commit would lose records rather than test anything
//! (see `FaultyFeed::without_commit_faults`). SNS cannot be read back here, so on the emulator
//! "notified" means accepted by SNS, at least once. The fault seed is printed with the report;
//! `ORDERS_FAULT_SEED` replays its fault pattern (not the exact run: the pipeline is
//! concurrent).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use events_schema::{
    EventId, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView, ProcessingPolicy,
};
use futures::StreamExt;
use order_ports::{EventStore, Feed, Publisher, StatusRepair, StatusStore, WorkQueue};
use order_test_support::fault::{
    seed_from_env, FaultConfig, FaultKind, Faults, FaultyEventStore, FaultyFeed, FaultyPublisher,
    FaultyStatusStore, FaultyWorkQueue,
};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The fraction of port calls that fail, and of messages and records delivered twice.
const FAULT_RATE: f64 = 0.1;
/// Receives before a work message is dead-lettered, in these tests. At 10% per call a
/// processing round (receive, load, two appends, ack) fails about a third of the time, and a
/// spurious redelivery adds a receive, so the deployed 5 would dead-letter an order in a few
/// hundred by bad luck alone; 20 makes that about one in 10^8 while a message that fails for a
/// reason (a poison message) still ends in the dead letters.
const MAX_RECEIVES: u32 = 20;
/// How long a received message stays hidden: short, because an ack lost to a fault leaves the
/// message to come back after it.
const VISIBILITY: Duration = Duration::from_secs(2);
const WORKERS: usize = 4;
/// How long an order stays pending before the test's reconciler re-enqueues it, and how often
/// it looks (see `wait_until_idle`): well above the normal time to an end, so it rarely sends a
/// duplicate.
const RECONCILE_AFTER: Duration = Duration::from_secs(15);
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Clients sending at once.
const CLIENTS: usize = 16;
/// From the first request to an idle pipeline. On SQLite this takes about 50 s, nearly all of
/// it the subscribers' fixed 200 ms pause after each transient handler error
/// (`order_ports::feed`'s `ERROR_BACKOFF`): at 10% per call a projector batch fails every ~5
/// events. (With a 20 ms pause the same run takes about 12 s.) The margin covers a slow machine
/// and the work queue's backoff on failed messages.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long the subscribers may drain after shutdown (the test has checked everything by then).
const DRAIN: Duration = Duration::from_secs(1);

/// The ports without faults: what the pipeline is built on, and what the checks read.
struct Inner {
    events: Arc<dyn EventStore>,
    queue: Arc<dyn WorkQueue>,
    status: Arc<dyn StatusStore>,
    /// The same view, for the reconciler's repairs.
    repair: Arc<dyn StatusRepair>,
    publisher: Arc<dyn Publisher>,
}

/// The pipeline running over the fault layer.
struct Pipeline {
    faults: Arc<Faults>,
    api: Router,
    queue: Arc<FaultyWorkQueue>,
    publisher: Arc<FaultyPublisher>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Pipeline {
    /// Starts the processor workers and both subscribers on faulty ports and feeds.
    fn start<F: Feed + 'static>(
        inner: &Inner,
        faults: Arc<Faults>,
        projector_feed: F,
        notifier_feed: F,
        feed: fn(F, Arc<Faults>, &'static str) -> FaultyFeed<F>,
    ) -> Pipeline {
        let events: Arc<dyn EventStore> =
            Arc::new(FaultyEventStore::new(inner.events.clone(), faults.clone()));
        let queue = Arc::new(FaultyWorkQueue::new(inner.queue.clone(), faults.clone()));
        let status: Arc<dyn StatusStore> =
            Arc::new(FaultyStatusStore::new(inner.status.clone(), faults.clone()));
        let publisher = Arc::new(FaultyPublisher::new(
            inner.publisher.clone(),
            faults.clone(),
        ));
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let processor = processor::Processor::new(events.clone(), ProcessingPolicy::default());
        for _ in 0..WORKERS {
            tasks.spawn(processor::run_worker(
                processor.clone(),
                queue.clone(),
                10,
                VISIBILITY,
                shutdown.clone(),
            ));
        }
        tasks.spawn(order_ports::run_subscriber_draining(
            feed(projector_feed, faults.clone(), "projector feed"),
            "projector",
            projector::Projector::new(events.clone(), status.clone()),
            shutdown.clone(),
            DRAIN,
        ));
        tasks.spawn(order_ports::run_subscriber_draining(
            feed(notifier_feed, faults.clone(), "notifier feed"),
            "notifier",
            notifier::Notifier::new(events.clone(), publisher.clone()),
            shutdown,
            DRAIN,
        ));
        // The non-atomic intake over the faulty log and queue: a stored order is accepted
        // whatever happens to its send (ADR 8); one whose every send try failed is enqueued
        // by the reconciler, as on AWS (`wait_until_idle` runs it).
        let intake = Arc::new(order_ports::AppendThenEnqueue {
            events: events.clone(),
            queue: queue.clone(),
        });
        let api = ingest::router(ingest::AppState {
            intake,
            events,
            status,
        });
        Pipeline {
            faults,
            api,
            queue,
            publisher,
            stop,
            tasks,
        }
    }

    /// Stops taking work and waits for the workers to finish what they hold.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let stopped = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(joined) = self.tasks.join_next().await {
                joined.expect("a pipeline task panicked");
            }
        })
        .await;
        assert!(stopped.is_ok(), "the pipeline did not stop within 30 s");
    }
}

/// Order `n`: every tenth is over the credit limit and must end `FAILED`.
fn order_body(n: usize) -> (Value, OrderStatus) {
    let customer = format!("fault-cust-{}", n % 7);
    if n % 10 == 9 {
        let body = json!({
            "customerId": customer,
            "items": [{"productId": "yacht", "quantity": 2, "unitPrice": 90_000_000}],
        });
        (body, OrderStatus::Failed)
    } else {
        let body = json!({
            "customerId": customer,
            "items": [
                {"productId": format!("p-{n}"), "quantity": 1 + n % 4, "unitPrice": 100 + n},
                {"productId": "p-common", "quantity": 2, "unitPrice": 250}
            ],
            "currency": "EUR",
        });
        (body, OrderStatus::Completed)
    }
}

/// POSTs order `n` until it is accepted, retrying a 503 with the same `Idempotency-Key`.
/// Returns the order id and how many 503s it took.
async fn submit(api: &Router, n: usize, key_prefix: &str) -> (OrderId, u32) {
    let (body, _) = order_body(n);
    let mut unavailable = 0;
    loop {
        let request = Request::post("/orders")
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{key_prefix}-{n}"))
            .body(Body::from(body.to_string()))
            .expect("a request");
        let response = api.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body");
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            StatusCode::ACCEPTED => {
                let id = answer["orderId"].as_str().expect("orderId");
                return (OrderId::parse(id).expect("an order id"), unavailable);
            }
            StatusCode::SERVICE_UNAVAILABLE if unavailable < 100 => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ => panic!("order {n}: {status} {answer}"),
        }
    }
}

/// Submits `orders` orders through the API, `CLIENTS` at a time; returns every accepted order
/// with the status it must end in, and the number of 503s the clients retried.
async fn submit_all(
    api: &Router,
    orders: usize,
    key_prefix: &str,
) -> (BTreeMap<OrderId, OrderStatus>, u32) {
    let accepted: Vec<(usize, OrderId, u32)> = futures::stream::iter(0..orders)
        .map(|n| async move {
            let (id, retries) = submit(api, n, key_prefix).await;
            (n, id, retries)
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let retries = accepted.iter().map(|(_, _, r)| r).sum();
    let expected = accepted
        .into_iter()
        .map(|(n, id, _)| (id, order_body(n).1))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(expected.len(), orders, "one order per key");
    (expected, retries)
}

/// Waits until every accepted order's view (read without faults) is terminal and every
/// completion has reached the publisher, then until `drained` says no work is left.
async fn wait_until_idle<D, Fut>(
    inner: &Inner,
    pipeline: &Pipeline,
    expected: &BTreeMap<OrderId, OrderStatus>,
    started: Instant,
    drained: D,
) where
    D: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = started + DEADLINE;
    let mut pending: Vec<OrderId> = expected.keys().copied().collect();
    let mut reconciled = Instant::now();
    loop {
        if reconciled.elapsed() >= RECONCILE_EVERY {
            // The reconciler, as its scheduled Lambda runs, only more often (on the ports
            // without faults: its own faults would only delay it to the next round).
            let ports = reconciler::Ports {
                events: inner.events.as_ref(),
                status: inner.status.as_ref(),
                repair: inner.repair.as_ref(),
                queue: inner.queue.as_ref(),
            };
            let _ = reconciler::reconcile(ports, RECONCILE_AFTER, false, chrono::Utc::now()).await;
            reconciled = Instant::now();
        }
        let mut still = Vec::new();
        for id in pending {
            let done = match inner.status.get(id).await {
                Ok(Some(record)) if record.status.is_terminal() => {
                    record.status != OrderStatus::Completed
                        || completion_published(inner, pipeline, id).await
                }
                _ => false,
            };
            if !done {
                still.push(id);
            }
        }
        pending = still;
        if pending.is_empty() && drained().await && pipeline.queue.pending_redeliveries() == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not idle after {DEADLINE:?}: {} orders not at their end (e.g. {:?}); {}",
            pending.len(),
            pending.first(),
            pipeline.faults.report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn completion_published(inner: &Inner, pipeline: &Pipeline, id: OrderId) -> bool {
    let Ok(history) = inner.events.load(id).await else {
        return false;
    };
    let published = pipeline.publisher.published();
    history
        .iter()
        .filter(|e| matches!(e.event, OrderEvent::OrderCompleted { .. }))
        .all(|e| published.contains_key(&e.event_id))
}

/// What the checker found, for the report.
#[derive(Debug, Default)]
struct Outcome {
    completed: usize,
    failed: usize,
    /// The event id of every order's `OrderCompleted`.
    completions: BTreeMap<OrderId, EventId>,
}

/// The rules of `orders verify`, checked from the fault-free ports: the log holds exactly the
/// accepted orders; each history is Received, ProcessingStarted, then Completed or Failed as
/// expected (versions 1..=3, no duplicate); each view equals the fold of its history. (On
/// SQLite the test also runs `orders verify` itself on the file.)
async fn check_log_and_views(
    inner: &Inner,
    expected: &BTreeMap<OrderId, OrderStatus>,
) -> Result<Outcome, Vec<String>> {
    let mut problems = Vec::new();
    let mut in_log: BTreeMap<OrderId, usize> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = inner
            .events
            .read_all(cursor, 500)
            .await
            .expect("read the log");
        for event in &page.events {
            *in_log.entry(event.order_id).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let logged: BTreeSet<OrderId> = in_log.keys().copied().collect();
    let accepted: BTreeSet<OrderId> = expected.keys().copied().collect();
    for id in logged.difference(&accepted) {
        problems.push(format!("{id}: in the log but never accepted"));
    }
    for id in accepted.difference(&logged) {
        problems.push(format!("{id}: accepted but not in the log"));
    }

    let mut outcome = Outcome::default();
    for (&id, &status) in expected {
        let history = inner.events.load(id).await.expect("load a history");
        if in_log.get(&id) != Some(&history.len()) {
            problems.push(format!(
                "{id}: {} events in a full read, {} in its history",
                in_log.get(&id).copied().unwrap_or(0),
                history.len()
            ));
        }
        let versions: Vec<u32> = history.iter().map(|e| e.version.get()).collect();
        let types: Vec<&str> = history.iter().map(|e| e.event_type().as_str()).collect();
        let last = match status {
            OrderStatus::Failed => "OrderFailed",
            _ => "OrderCompleted",
        };
        if versions != [1, 2, 3] || types != ["OrderReceived", "OrderProcessingStarted", last] {
            problems.push(format!(
                "{id}: history {versions:?} {types:?}, expected {last}"
            ));
            continue;
        }
        let distinct: BTreeSet<String> = history.iter().map(|e| e.event_id.to_string()).collect();
        if distinct.len() != history.len() {
            problems.push(format!("{id}: an event id appears twice"));
        }
        let view = match OrderView::fold(&history) {
            Ok(Some(view)) => view,
            other => {
                problems.push(format!("{id}: history does not fold: {other:?}"));
                continue;
            }
        };
        let record = inner.status.get(id).await.expect("read a view");
        if record != Some(OrderStatusRecord::from(&view)) {
            problems.push(format!(
                "{id}: view {record:?} is not the fold of its history {view:?}"
            ));
        }
        match view.status {
            OrderStatus::Completed => {
                outcome.completed += 1;
                outcome.completions.insert(id, history[2].event_id);
            }
            OrderStatus::Failed => outcome.failed += 1,
            _ => problems.push(format!("{id}: ended {:?}", view.status)),
        }
    }
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(problems)
    }
}

/// Fails the test with the checker's findings (the first few) and the fault report.
fn assert_clean<T>(checked: Result<T, Vec<String>>, faults: &Faults) -> T {
    checked.unwrap_or_else(|problems| {
        panic!(
            "{} problems, the first: {:#?}\n{}",
            problems.len(),
            &problems[..problems.len().min(10)],
            faults.report()
        )
    })
}

/// Every completion published at least once, and nothing else published.
fn check_published(
    outcome: &Outcome,
    published: &HashMap<EventId, u32>,
) -> Result<u32, Vec<String>> {
    let mut problems = Vec::new();
    for (id, event_id) in &outcome.completions {
        if !published.contains_key(event_id) {
            problems.push(format!("{id}: completion {event_id} never published"));
        }
    }
    let completions: HashSet<&EventId> = outcome.completions.values().collect();
    for event_id in published.keys() {
        if !completions.contains(event_id) {
            problems.push(format!("published {event_id}, not a completion"));
        }
    }
    let extra = published.values().map(|n| n.saturating_sub(1)).sum();
    if problems.is_empty() {
        Ok(extra)
    } else {
        Err(problems)
    }
}

/// The figures of one run, for the report.
struct Figures<'a> {
    backend: &'a str,
    started: Instant,
    /// 503s the clients retried.
    retries: u32,
    max_receive_count: u32,
    /// Publishes beyond the first of a completion.
    duplicate_publishes: u32,
}

fn report(figures: &Figures<'_>, outcome: &Outcome, faults: &Faults) {
    eprintln!(
        "fault layer on {}: {} orders ({} completed, {} failed) in {:.1?}; clients retried {} \
         503s; highest receive count {}/{MAX_RECEIVES}; {} duplicate publishes\n{}",
        figures.backend,
        outcome.completed + outcome.failed,
        outcome.completed,
        outcome.failed,
        figures.started.elapsed(),
        figures.retries,
        figures.max_receive_count,
        figures.duplicate_publishes,
        faults.report()
    );
}

/// Checks that faults of these kinds were injected: a run without faults proves nothing.
fn assert_injected(faults: &Faults, kinds: &[FaultKind]) {
    for kind in kinds {
        assert!(
            faults.count(*kind) > 0,
            "no fault of kind {kind:?}: {}",
            faults.report()
        );
    }
}

mod sqlite {
    use super::*;
    use order_adapters_sqlite::test_util::TempSqlite;

    const ORDERS: usize = 300;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_ten_percent_faults_every_order_on_sqlite_reaches_its_end_exactly_once() {
        let faults = Faults::new(FaultConfig::new(seed_from_env(), FAULT_RATE));
        let tmp = TempSqlite::new();
        let db = tmp.db().clone();
        let queue = db.work_queue(MAX_RECEIVES);
        let local = db.publisher();
        let inner = Inner {
            events: Arc::new(db.event_store()),
            queue: Arc::new(queue.clone()),
            status: Arc::new(db.status_store()),
            repair: Arc::new(db.status_store()),
            publisher: Arc::new(local.clone()),
        };
        let pipeline = Pipeline::start(
            &inner,
            faults.clone(),
            db.feed("projector"),
            db.feed("notifier"),
            FaultyFeed::new,
        );

        let started = Instant::now();
        let (expected, retries) = submit_all(&pipeline.api, ORDERS, "fault").await;
        let depth_of = &queue;
        wait_until_idle(&inner, &pipeline, &expected, started, move || async move {
            depth_of.depth().await.is_ok_and(|depth| depth == 0)
        })
        .await;
        let max_receive_count = pipeline.queue.max_receive_count();
        let published = pipeline.publisher.published();
        pipeline.stop().await;

        let outcome = assert_clean(check_log_and_views(&inner, &expected).await, &faults);
        let duplicates = assert_clean(check_published(&outcome, &published), &faults);
        // Locally the notifications table is the subscriber: exactly one per completion.
        let stored = local
            .list_after(0, 10 * ORDERS)
            .await
            .expect("notifications");
        let mut per_event: HashMap<EventId, usize> = HashMap::new();
        for (_, n) in &stored {
            *per_event.entry(n.event_id).or_insert(0) += 1;
        }
        let expected_events: HashMap<EventId, usize> =
            outcome.completions.values().map(|e| (*e, 1)).collect();
        assert_eq!(
            per_event, expected_events,
            "each completion notified exactly once locally"
        );
        let dead = queue.dead_letters().await.expect("dead letters");
        assert!(dead.is_empty(), "dead letters: {dead:?}");
        assert_eq!(outcome.failed, ORDERS / 10);
        // The operator's check agrees, on the file the pipeline wrote: nothing pending,
        // nothing notified twice, no record skipped.
        let data = tmp.dir().join("orders.db");
        let verify = crate::tools::orders(&[
            "verify",
            "--pending-after",
            "0s",
            "--data",
            data.to_str().expect("utf-8 path"),
        ]);
        assert!(
            verify.status.success(),
            "orders verify: {}{}",
            crate::tools::stdout(&verify),
            crate::tools::stderr(&verify)
        );
        assert_eq!(
            crate::tools::stdout(&verify).trim(),
            format!("verified {ORDERS} orders: 0 problems")
        );

        // (The local table absorbs duplicate publishes: it is idempotent per eventId.)
        report(
            &Figures {
                backend: "SQLite",
                started,
                retries,
                max_receive_count,
                duplicate_publishes: duplicates,
            },
            &outcome,
            &faults,
        );
        assert_injected(&faults, &FaultKind::ALL);
    }
}

mod aws {
    use super::*;
    use aws_sdk_sqs::types::QueueAttributeName;
    use order_adapters_aws::{
        provision, AwsClients, DynamoEventStore, DynamoStatusStore, SnsPublisher, SqsWorkQueue,
        StartAt, StreamFeed,
    };

    const ORDERS: usize = 60;

    fn endpoint() -> String {
        std::env::var("ORDERS_TEST_AWS_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "ORDERS_TEST_AWS_ENDPOINT is not set: this test needs the AWS emulator. Run \
                     scripts/test.sh, or start one with `EP=$(scripts/emulator-start.sh \
                     target/emulator)` and set ORDERS_TEST_AWS_ENDPOINT=$EP"
                )
            })
    }

    /// Visible plus in-flight messages of an SQS queue (approximate, as SQS says).
    async fn queue_depth(clients: &AwsClients, url: &str) -> Option<u64> {
        let attributes = clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .ok()?
            .attributes?;
        let count = |name: &QueueAttributeName| {
            attributes
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(
            count(&QueueAttributeName::ApproximateNumberOfMessages)
                + count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_ten_percent_faults_every_order_on_the_emulator_reaches_its_end_exactly_once() {
        let endpoint = endpoint();
        let faults = Faults::new(FaultConfig::new(seed_from_env(), FAULT_RATE));
        let config = order_adapters_aws::sdk_config(Some(&endpoint)).await;
        let clients = AwsClients::from_config(&config);
        let prefix = format!("faults-{}", OrderId::new_random().as_uuid().simple());
        let (events_table, status_table) = (format!("{prefix}-events"), format!("{prefix}-status"));
        provision::create_tables(&clients, &events_table, &status_table)
            .await
            .expect("create tables");
        let (queue_url, dlq_url) =
            provision::create_queue_with_dlq(&clients, &format!("{prefix}-work"), MAX_RECEIVES)
                .await
                .expect("create the work queue");
        let topic_arn = provision::create_topic(&clients, &format!("{prefix}-topic"))
            .await
            .expect("create the topic");
        let stream_arn = clients
            .dynamodb
            .describe_table()
            .table_name(&events_table)
            .send()
            .await
            .expect("DescribeTable")
            .table
            .and_then(|t| t.latest_stream_arn)
            .expect("the events table has a stream");
        let inner = Inner {
            events: Arc::new(DynamoEventStore::new(
                clients.dynamodb.clone(),
                &events_table,
            )),
            queue: Arc::new(SqsWorkQueue::new(clients.sqs.clone(), &queue_url)),
            status: Arc::new(DynamoStatusStore::new(
                clients.dynamodb.clone(),
                &status_table,
            )),
            repair: Arc::new(DynamoStatusStore::new(
                clients.dynamodb.clone(),
                &status_table,
            )),
            publisher: Arc::new(SnsPublisher::new(clients.sns.clone(), &topic_arn)),
        };
        let open = |name: &'static str| {
            StreamFeed::open(
                &config,
                stream_arn.clone(),
                name,
                StartAt::TrimHorizon,
                order_adapters_aws::StreamCheckpoints::in_memory().expect("checkpoints"),
            )
        };
        let projector_feed = open("projector").await.expect("open the stream");
        let notifier_feed = open("notifier").await.expect("open the stream");
        let pipeline = Pipeline::start(
            &inner,
            faults.clone(),
            projector_feed,
            notifier_feed,
            |feed, faults, name| FaultyFeed::new(feed, faults, name).without_commit_faults(),
        );

        let started = Instant::now();
        let (expected, retries) = submit_all(&pipeline.api, ORDERS, "fault").await;
        let (sqs, url) = (&clients, &queue_url);
        wait_until_idle(&inner, &pipeline, &expected, started, move || async move {
            queue_depth(sqs, url).await == Some(0)
        })
        .await;
        let max_receive_count = pipeline.queue.max_receive_count();
        let published = pipeline.publisher.published();
        pipeline.stop().await;

        let outcome = assert_clean(check_log_and_views(&inner, &expected).await, &faults);
        // SNS is at least once: every completion went out, nothing else did; the duplicates
        // (lost responses, redelivered records) carry the same eventId for subscribers.
        let duplicates = assert_clean(check_published(&outcome, &published), &faults);
        assert_eq!(
            queue_depth(&clients, &dlq_url).await,
            Some(0),
            "nothing dead-lettered"
        );
        assert_eq!(outcome.failed, ORDERS / 10);

        report(
            &Figures {
                backend: "the emulator",
                started,
                retries,
                max_receive_count,
                duplicate_publishes: duplicates,
            },
            &outcome,
            &faults,
        );
        // 60 orders make only a handful of queue redeliveries (they may be none); the other
        // kinds come by the dozen.
        assert_injected(
            &faults,
            &[
                FaultKind::Unavailable,
                FaultKind::LostResponse,
                FaultKind::Duplicated,
                FaultKind::Reordered,
            ],
        );
    }
}
