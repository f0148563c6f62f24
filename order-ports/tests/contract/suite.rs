//! Backend-agnostic checks of the ports' contracts. Nothing here may depend on a particular
//! backend: what only one backend can show lives in that backend's module.
//!
//! Every check needs fresh ports from its [`Backend`] (in particular an empty queue). Queue
//! checks use visibility timeouts of whole seconds, which SQS also accepts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{TimeZone, Utc};
use events_schema::{
    CorrelationId, Currency, CustomerId, EventEnvelope, EventId, LineItem, OrderEvent, OrderId,
    OrderStatus, OrderStatusRecord, ProductId, ValidOrder, Version,
};
use order_ports::{
    AppendError, CustomerOrdersQuery, Delivery, EventStore, Notification, Publisher, StatusPage,
    StatusRepair, StatusStore, StoreError, Upserted, WorkQueue, MAX_CUSTOMER_ORDERS_LIMIT,
};

/// What a backend provides to the suite.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn event_store(&self) -> Arc<dyn EventStore>;
    async fn work_queue(&self) -> Arc<dyn WorkQueue>;
    async fn status_store(&self) -> Arc<dyn StatusStore>;
    /// The same status view, for the writes the projector never makes.
    async fn status_repair(&self) -> Arc<dyn StatusRepair>;
    async fn publisher(&self) -> Arc<dyn Publisher>;
    /// The queue's maximum receive count (SQS `maxReceiveCount` of the redrive policy).
    fn max_receives(&self) -> u32;
    /// The notifications published so far that the backend can observe (each at least once).
    async fn published(&self) -> Vec<Notification>;
}

/// Generates one `#[tokio::test]` per suite check; `$backend` is an async expression building
/// a fresh backend.
macro_rules! contract_tests {
    ($backend:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let backend = $backend.await;
                crate::suite::$check(&backend).await;
            }
        )+
    };
}

/// Invokes `$m!` with the names of every check, so each backend runs all of them.
macro_rules! all_checks {
    ($m:ident; $backend:expr) => {
        $m!($backend;
            appending_then_loading_round_trips_every_field,
            appending_an_existing_version_is_a_conflict_and_writes_nothing,
            a_batch_that_conflicts_on_any_event_writes_none,
            a_multi_event_append_writes_all_events,
            appending_many_settles_each_append_on_its_own,
            a_cancellation_racing_the_processor_leaves_exactly_one_terminal_event,
            an_invalid_batch_is_rejected_and_writes_nothing,
            loading_an_unknown_order_gives_an_empty_history,
            loading_many_gives_each_order_its_history_at_its_index,
            loading_returns_events_in_version_order,
            read_all_pages_through_every_event_exactly_once,
            read_all_rejects_a_cursor_it_did_not_produce,
            a_sent_message_is_received_and_acking_removes_it,
            a_received_message_is_invisible_until_its_visibility_passes,
            a_failed_message_comes_back_with_a_higher_receive_count,
            acking_a_stale_receipt_is_not_an_error,
            a_message_received_max_times_is_no_longer_delivered,
            receiving_hands_out_at_most_max_messages,
            acking_many_removes_every_message_and_stale_receipts_are_no_error,
            status_upserts_only_move_forward,
            getting_an_unprojected_order_gives_none,
            getting_many_finds_every_projected_order_and_omits_the_others,
            upserting_many_moves_each_view_forward_and_reports_each_outcome,
            listing_a_customer_walks_all_their_orders_once_newest_first,
            listing_by_customer_and_status_walks_only_that_status,
            listing_an_unknown_customer_gives_an_empty_page_without_a_cursor,
            listing_rejects_a_bad_cursor_or_limit,
            the_listing_cursor_is_the_position_in_the_documented_format,
            a_published_notification_reaches_subscribers,
            publishing_the_same_event_twice_is_not_an_error,
            a_published_batch_reaches_subscribers_whole,
        );
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures

pub fn customer(s: &str) -> CustomerId {
    CustomerId::parse(s).expect("valid customer id")
}

pub fn received(order_id: OrderId, customer_id: &str) -> EventEnvelope {
    let order = ValidOrder {
        customer_id: customer(customer_id),
        items: vec![
            LineItem {
                product_id: ProductId::parse("sku-1").expect("valid product id"),
                quantity: 2,
                unit_price: 1_999,
            },
            LineItem {
                product_id: ProductId::parse("sku-2").expect("valid product id"),
                quantity: 1,
                unit_price: 50,
            },
        ],
        currency: Currency::parse("EUR").expect("valid currency"),
    };
    EventEnvelope::at(
        order_id,
        Version::FIRST,
        CorrelationId::parse("corr-1").expect("valid correlation id"),
        OrderEvent::OrderReceived(order),
        // A millisecond that is not a whole second, so truncation bugs show.
        Utc.timestamp_millis_opt(1_764_000_000_123)
            .single()
            .expect("valid timestamp"),
    )
}

pub fn event_at(order_id: OrderId, version: u32, event: OrderEvent) -> EventEnvelope {
    EventEnvelope::new(
        order_id,
        Version::new(version).expect("version >= 1"),
        CorrelationId::generate(),
        event,
    )
}

/// Versions 1..=n of one order: received, started, then completed/failed alternately.
pub fn history(order_id: OrderId, n: u32) -> Vec<EventEnvelope> {
    let mut out = vec![received(order_id, "cust-1")];
    for v in 2..=n {
        let event = match v {
            2 => OrderEvent::OrderProcessingStarted,
            v if v % 2 == 1 => OrderEvent::OrderCompleted {
                total: i64::from(v) * 100,
            },
            v => OrderEvent::OrderFailed {
                reason: format!("reason {v}"),
            },
        };
        out.push(event_at(order_id, v, event));
    }
    out
}

fn version(v: u32) -> Version {
    Version::new(v).expect("version >= 1")
}

fn status_record(order_id: OrderId, v: u32, status: OrderStatus) -> OrderStatusRecord {
    OrderStatusRecord {
        order_id,
        status,
        customer_id: customer("cust-1"),
        item_count: 3,
        total: 4_048,
        currency: Currency::USD,
        version: version(v),
        created_at: "2025-11-24T16:00:00.123Z".into(),
        updated_at: format!("2025-11-24T16:00:0{v}.000Z"),
        completed_at: (status == OrderStatus::Completed).then(|| "2025-11-24T16:00:03.000Z".into()),
        failure_reason: None,
    }
}

/// Receives until at least one message arrives or `within` has passed.
async fn receive_within(
    q: &dyn WorkQueue,
    max: usize,
    visibility: Duration,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = q.receive(max, visibility).await.expect("receive");
        if !got.is_empty() || tokio::time::Instant::now() >= deadline {
            return got;
        }
    }
}

const VISIBILITY: Duration = Duration::from_secs(1);
/// Long enough for a message to come back after a 1 s visibility timeout on any backend.
const PATIENCE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// EventStore

pub async fn appending_then_loading_round_trips_every_field(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let v1 = received(order, "cust-round-trip");
    store
        .append(std::slice::from_ref(&v1))
        .await
        .expect("append v1");

    let loaded = store.load(order).await.expect("load");
    assert_eq!(loaded, vec![v1.clone()]);
    let got = &loaded[0];
    assert_eq!(got.event_id, v1.event_id);
    assert_eq!(got.correlation_id.as_str(), "corr-1");
    assert_eq!(got.occurred_at.timestamp_millis(), 1_764_000_000_123);
    assert_eq!(got.to_stored().payload, v1.to_stored().payload);
    assert_eq!(got.to_stored(), v1.to_stored());
}

pub async fn appending_an_existing_version_is_a_conflict_and_writes_nothing(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let first = received(order, "cust-1");
    store
        .append(std::slice::from_ref(&first))
        .await
        .expect("append v1");

    let rival = received(order, "cust-2");
    let err = store
        .append(std::slice::from_ref(&rival))
        .await
        .expect_err("second v1 must conflict");
    assert_eq!(
        err,
        AppendError::Conflict {
            order_id: order,
            version: Version::FIRST
        }
    );
    assert_eq!(store.load(order).await.expect("load"), vec![first]);
}

/// Atomicity: in a batch v2..v3 against an order already at v2, the v3 alone would succeed, so
/// finding no v3 afterwards shows that a batch is written all or nothing.
pub async fn a_batch_that_conflicts_on_any_event_writes_none(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let events = history(order, 3);
    store.append(&events[..1]).await.expect("append v1");
    // A rival worker got there first with its own v2.
    let theirs = event_at(order, 2, OrderEvent::OrderProcessingStarted);
    store
        .append(std::slice::from_ref(&theirs))
        .await
        .expect("append their v2");

    let err = store
        .append(&events[1..3])
        .await
        .expect_err("batch v2..v3 must conflict");
    assert!(
        matches!(err, AppendError::Conflict { order_id, .. } if order_id == order),
        "{err:?}"
    );
    assert_eq!(
        store.load(order).await.expect("load"),
        vec![events[0].clone(), theirs]
    );
}

/// What a side of the cancel/process race ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// The processor found nothing more to do.
    Processed,
    /// The customer's cancellation holds (appended now, or found already there).
    Cancelled,
    /// The cancellation was refused: the order finished first.
    Refused(OrderStatus),
}

/// Loads and folds `order`'s history: the view a side decides on.
async fn view_of(store: &dyn EventStore, order: OrderId) -> events_schema::OrderView {
    let history = store.load(order).await.expect("load");
    events_schema::OrderView::fold(&history)
        .expect("the log folds")
        .expect("the order exists")
}

/// The processor's loop on one order: decide the next step on the folded log and append it at
/// the next version; a conflict means someone else appended first, so read again and decide
/// again, until nothing is left to do.
async fn process_until_done(store: Arc<dyn EventStore>, order: OrderId) -> Settled {
    let policy = events_schema::ProcessingPolicy::default();
    loop {
        let view = view_of(store.as_ref(), order).await;
        let Some(next) = events_schema::decide_next(&view, &policy) else {
            return Settled::Processed;
        };
        let next = view.next_envelope(next, CorrelationId::generate());
        match store.append(&[next]).await {
            Ok(()) | Err(AppendError::Conflict { .. }) => {}
            Err(AppendError::Store(e)) => panic!("processor append: {e}"),
        }
    }
}

/// The customer's cancellation: decide on the folded log, append `OrderCancelled` at the next
/// version; on a conflict read again and decide again.
async fn cancel_until_settled(store: Arc<dyn EventStore>, order: OrderId) -> Settled {
    loop {
        let view = view_of(store.as_ref(), order).await;
        let cancel = match events_schema::decide_cancel(&view, Some("changed my mind".into())) {
            Ok(Some(cancel)) => cancel,
            Ok(None) => return Settled::Cancelled,
            Err(refused) => return Settled::Refused(refused.status),
        };
        let next = view.next_envelope(cancel, CorrelationId::generate());
        match store.append(&[next]).await {
            Ok(()) => return Settled::Cancelled,
            Err(AppendError::Conflict { .. }) => {}
            Err(AppendError::Store(e)) => panic!("cancellation append: {e}"),
        }
    }
}

/// The race the log's optimistic concurrency settles, no lock: for many orders at once, the
/// processor and a customer's cancellation (started a little later each time, so it lands
/// before, between and after the processor's steps) append to the same order. Each order ends
/// with exactly one terminal event, last; the cancellation's answer agrees with it.
pub async fn a_cancellation_racing_the_processor_leaves_exactly_one_terminal_event(
    b: &dyn Backend,
) {
    let store = b.event_store().await;
    let orders: Vec<OrderId> = (0..24).map(|_| OrderId::new_random()).collect();
    for &order in &orders {
        store
            .append(&[received(order, "cust-race")])
            .await
            .expect("append OrderReceived");
    }
    let mut races = Vec::new();
    for (i, &order) in orders.iter().enumerate() {
        let processor = tokio::spawn(process_until_done(store.clone(), order));
        let store = store.clone();
        let customer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i % 8) as u64)).await;
            cancel_until_settled(store, order).await
        });
        races.push((order, processor, customer));
    }
    for (order, processor, customer) in races {
        assert_eq!(processor.await.expect("processor task"), Settled::Processed);
        let answer = customer.await.expect("customer task");
        let history = store.load(order).await.expect("load");
        let view = events_schema::OrderView::fold(&history)
            .expect("the log folds")
            .expect("the order exists");
        let terminal: Vec<&EventEnvelope> = history
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    OrderEvent::OrderCompleted { .. }
                        | OrderEvent::OrderFailed { .. }
                        | OrderEvent::OrderCancelled { .. }
                )
            })
            .collect();
        assert_eq!(terminal.len(), 1, "{order}: {history:?}");
        assert_eq!(
            history.last().map(|e| e.event_id),
            terminal.first().map(|e| e.event_id),
            "{order}: the terminal event is the last"
        );
        let expected = match view.status {
            OrderStatus::Cancelled => Settled::Cancelled,
            other => Settled::Refused(other),
        };
        assert_eq!(answer, expected, "{order}: {history:?}");
    }
}

/// One call, four independent appends: a new order, a rival version 1 of an existing order, the
/// next step of another, and a batch the port rejects. Only the conflict and the rejection
/// fail, and they write nothing; the others are written.
pub async fn appending_many_settles_each_append_on_its_own(b: &dyn Backend) {
    let store = b.event_store().await;
    let (new, taken, moving) = (
        OrderId::new_random(),
        OrderId::new_random(),
        OrderId::new_random(),
    );
    let taken_v1 = received(taken, "cust-1");
    let moving_history = history(moving, 2);
    store
        .append(std::slice::from_ref(&taken_v1))
        .await
        .expect("append taken v1");
    store
        .append(&moving_history[..1])
        .await
        .expect("append moving v1");

    let new_v1 = received(new, "cust-1");
    let rival = received(taken, "cust-2");
    let outcomes = store
        .append_many(&[
            std::slice::from_ref(&new_v1),
            std::slice::from_ref(&rival),
            &moving_history[1..],
            &[],
        ])
        .await;

    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert_eq!(outcomes[0], Ok(()));
    assert_eq!(
        outcomes[1],
        Err(AppendError::Conflict {
            order_id: taken,
            version: Version::FIRST
        })
    );
    assert_eq!(outcomes[2], Ok(()));
    assert!(
        matches!(
            outcomes[3],
            Err(AppendError::Store(StoreError::Rejected(_)))
        ),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(store.load(new).await.expect("load"), vec![new_v1]);
    assert_eq!(store.load(taken).await.expect("load"), vec![taken_v1]);
    assert_eq!(store.load(moving).await.expect("load"), moving_history);
}

pub async fn a_multi_event_append_writes_all_events(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let events = history(order, 5);
    store.append(&events[..1]).await.expect("append v1");
    store.append(&events[1..]).await.expect("append v2..v5");
    assert_eq!(store.load(order).await.expect("load"), events);
}

pub async fn an_invalid_batch_is_rejected_and_writes_nothing(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let other = OrderId::new_random();
    let rejected = |r: Result<(), AppendError>| {
        assert!(
            matches!(r, Err(AppendError::Store(StoreError::Rejected(_)))),
            "expected Rejected, got {r:?}"
        )
    };

    rejected(store.append(&[]).await);
    // Not consecutive.
    let h = history(order, 3);
    rejected(store.append(&[h[0].clone(), h[2].clone()]).await);
    // Two orders.
    rejected(
        store
            .append(&[h[0].clone(), received(other, "cust-1")])
            .await,
    );
    // More than 100 events.
    let long = history(order, 101);
    rejected(store.append(&long).await);

    assert!(store.load(order).await.expect("load").is_empty());
    assert!(store.load(other).await.expect("load").is_empty());
    // And 100 is fine.
    store.append(&long[..100]).await.expect("append 100 events");
    assert_eq!(store.load(order).await.expect("load").len(), 100);
}

pub async fn loading_an_unknown_order_gives_an_empty_history(b: &dyn Backend) {
    let store = b.event_store().await;
    assert!(store
        .load(OrderId::new_random())
        .await
        .expect("load")
        .is_empty());
}

pub async fn loading_many_gives_each_order_its_history_at_its_index(b: &dyn Backend) {
    let store = b.event_store().await;
    let (short, long, unknown) = (
        OrderId::new_random(),
        OrderId::new_random(),
        OrderId::new_random(),
    );
    let (short_history, long_history) = (history(short, 2), history(long, 5));
    store.append(&short_history).await.expect("append");
    store.append(&long_history).await.expect("append");
    let loaded: Vec<Vec<EventEnvelope>> = store
        .load_many(&[long, unknown, short, long])
        .await
        .into_iter()
        .map(|h| h.expect("load"))
        .collect();
    assert_eq!(
        loaded,
        [long_history.clone(), vec![], short_history, long_history]
    );
}

pub async fn loading_returns_events_in_version_order(b: &dyn Backend) {
    let store = b.event_store().await;
    let order = OrderId::new_random();
    let events = history(order, 12);
    for e in &events {
        store.append(std::slice::from_ref(e)).await.expect("append");
    }
    let loaded = store.load(order).await.expect("load");
    let versions: Vec<u32> = loaded.iter().map(|e| e.version.get()).collect();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
    assert_eq!(loaded, events);
}

pub async fn read_all_pages_through_every_event_exactly_once(b: &dyn Backend) {
    let store = b.event_store().await;
    let mut written = Vec::new();
    for n in 1..=7 {
        let order = OrderId::new_random();
        let events = history(order, n % 3 + 1);
        store.append(&events).await.expect("append");
        written.extend(events);
    }

    for limit in [1, 2, 3, 100] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store.read_all(cursor, limit).await.expect("read_all");
            pages += 1;
            assert!(pages <= written.len() + 2, "read_all does not terminate");
            seen.extend(page.events);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut ids: Vec<EventId> = seen.iter().map(|e| e.event_id).collect();
        let count = ids.len();
        ids.sort_by_key(|id| id.to_string());
        ids.dedup();
        assert_eq!(
            ids.len(),
            count,
            "an event was returned twice (limit {limit})"
        );
        let key = |e: &EventEnvelope| (e.order_id, e.version);
        let mut seen_sorted = seen.clone();
        seen_sorted.sort_by_key(key);
        let mut expected = written.clone();
        expected.sort_by_key(key);
        assert_eq!(seen_sorted, expected, "limit {limit}");
    }
}

pub async fn read_all_rejects_a_cursor_it_did_not_produce(b: &dyn Backend) {
    let store = b.event_store().await;
    let err = store
        .read_all(Some("not a cursor \u{1F980}".into()), 10)
        .await
        .expect_err("bad cursor");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// WorkQueue

pub async fn a_sent_message_is_received_and_acking_removes_it(b: &dyn Backend) {
    let q = b.work_queue().await;
    let order = OrderId::new_random();
    q.send(order).await.expect("send");

    let got = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, order.to_string());
    assert_eq!(got[0].receive_count, 1);
    q.ack(&got[0]).await.expect("ack");

    // Gone for good: not even after its visibility timeout would have passed.
    tokio::time::sleep(VISIBILITY + Duration::from_millis(200)).await;
    assert!(q.receive(10, VISIBILITY).await.expect("receive").is_empty());
}

pub async fn a_received_message_is_invisible_until_its_visibility_passes(b: &dyn Backend) {
    let q = b.work_queue().await;
    let order = OrderId::new_random();
    q.send(order).await.expect("send");
    let first = receive_within(&*q, 10, Duration::from_secs(2), PATIENCE).await;
    assert_eq!(first.len(), 1);

    let started = tokio::time::Instant::now();
    let again = q.receive(10, VISIBILITY).await.expect("receive");
    if started.elapsed() < Duration::from_millis(1_500) {
        assert!(
            again.is_empty(),
            "in flight, yet delivered again: {again:?}"
        );
    }

    let back = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(back.len(), 1, "never came back");
    assert_eq!(back[0].message_id, first[0].message_id);
    assert_eq!(back[0].body, order.to_string());
    assert_eq!(back[0].receive_count, 2);
    q.ack(&back[0]).await.expect("ack");
}

pub async fn a_failed_message_comes_back_with_a_higher_receive_count(b: &dyn Backend) {
    let q = b.work_queue().await;
    let order = OrderId::new_random();
    q.send(order).await.expect("send");
    let first = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(first.len(), 1);
    q.fail(&first[0]).await.expect("fail");

    let back = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(back.len(), 1, "a failed message must come back");
    assert_eq!(back[0].message_id, first[0].message_id);
    assert_eq!(back[0].receive_count, first[0].receive_count + 1);
    q.ack(&back[0]).await.expect("ack");
}

pub async fn acking_a_stale_receipt_is_not_an_error(b: &dyn Backend) {
    let q = b.work_queue().await;
    q.send(OrderId::new_random()).await.expect("send");
    let first = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(first.len(), 1);
    q.fail(&first[0]).await.expect("fail");
    let second = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
    assert_eq!(second.len(), 1);
    q.ack(&second[0]).await.expect("ack");
    // Both receipts are now stale: the message is gone.
    q.ack(&first[0]).await.expect("stale ack");
    q.ack(&second[0]).await.expect("double ack");
}

pub async fn a_message_received_max_times_is_no_longer_delivered(b: &dyn Backend) {
    let q = b.work_queue().await;
    let order = OrderId::new_random();
    q.send(order).await.expect("send");
    let max = b.max_receives();
    for n in 1..=max {
        let got = receive_within(&*q, 10, VISIBILITY, PATIENCE).await;
        assert_eq!(got.len(), 1, "receive {n} of {max}");
        assert_eq!(got[0].receive_count, n);
        q.fail(&got[0]).await.expect("fail");
    }
    // Long enough for it to come back if it still could.
    let deadline = tokio::time::Instant::now() + VISIBILITY * 2;
    while tokio::time::Instant::now() < deadline {
        let got = q.receive(10, VISIBILITY).await.expect("receive");
        assert!(got.is_empty(), "delivered after {max} receives: {got:?}");
    }
}

pub async fn receiving_hands_out_at_most_max_messages(b: &dyn Backend) {
    let q = b.work_queue().await;
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_random()).collect();
    for o in &orders {
        q.send(*o).await.expect("send");
    }
    let mut bodies = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bodies.len() < orders.len() && tokio::time::Instant::now() < deadline {
        let got = q
            .receive(2, Duration::from_secs(30))
            .await
            .expect("receive");
        assert!(got.len() <= 2, "{} messages for max 2", got.len());
        for d in got {
            q.ack(&d).await.expect("ack");
            bodies.push(d.body);
        }
    }
    let mut expected: Vec<String> = orders.iter().map(ToString::to_string).collect();
    expected.sort();
    bodies.sort();
    assert_eq!(bodies, expected);
}

/// More messages than one SQS batch call takes (10), acked in one call, then acked again with
/// their receipts now stale.
pub async fn acking_many_removes_every_message_and_stale_receipts_are_no_error(b: &dyn Backend) {
    let q = b.work_queue().await;
    let orders: Vec<OrderId> = (0..12).map(|_| OrderId::new_random()).collect();
    for o in &orders {
        q.send(*o).await.expect("send");
    }
    // The latest receipt of each message (one may come back while the others are collected).
    let visibility = Duration::from_secs(3);
    let mut received: BTreeMap<String, Delivery> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while received.len() < orders.len() && tokio::time::Instant::now() < deadline {
        for d in q.receive(10, visibility).await.expect("receive") {
            received.insert(d.message_id.clone(), d);
        }
    }
    let received: Vec<Delivery> = received.into_values().collect();
    let mut bodies: Vec<String> = received.iter().map(|d| d.body.clone()).collect();
    let mut expected: Vec<String> = orders.iter().map(ToString::to_string).collect();
    bodies.sort();
    expected.sort();
    assert_eq!(bodies, expected);

    q.ack_many(&received).await.expect("ack_many");
    q.ack_many(&received).await.expect("stale ack_many");
    q.ack_many(&[]).await.expect("ack_many of nothing");

    // Gone for good: not even after their visibility timeout would have passed.
    tokio::time::sleep(visibility + Duration::from_millis(200)).await;
    let again = q.receive(10, VISIBILITY).await.expect("receive");
    assert!(again.is_empty(), "acked, yet delivered again: {again:?}");
}

// ---------------------------------------------------------------------------------------------
// StatusStore

pub async fn status_upserts_only_move_forward(b: &dyn Backend) {
    let store = b.status_store().await;
    let order = OrderId::new_random();
    let v2 = status_record(order, 2, OrderStatus::Processing);
    let v1 = status_record(order, 1, OrderStatus::Received);
    let v3 = status_record(order, 3, OrderStatus::Completed);

    assert_eq!(
        store.upsert(&v2).await.expect("upsert v2"),
        Upserted::Written
    );
    assert_eq!(store.upsert(&v1).await.expect("upsert v1"), Upserted::Stale);
    assert_eq!(
        store.upsert(&v2).await.expect("upsert v2 again"),
        Upserted::Stale
    );
    assert_eq!(store.get(order).await.expect("get"), Some(v2));
    assert_eq!(
        store.upsert(&v3).await.expect("upsert v3"),
        Upserted::Written
    );
    assert_eq!(store.get(order).await.expect("get"), Some(v3));
}

pub async fn getting_an_unprojected_order_gives_none(b: &dyn Backend) {
    let store = b.status_store().await;
    assert_eq!(store.get(OrderId::new_random()).await.expect("get"), None);
}

pub async fn getting_many_finds_every_projected_order_and_omits_the_others(b: &dyn Backend) {
    let store = b.status_store().await;
    // More than one DynamoDB `BatchGetItem` (100 keys) and than one SQLite chunk would be.
    let records: Vec<OrderStatusRecord> = (0..250)
        .map(|i| status_record(OrderId::new_random(), 1 + i % 3, OrderStatus::Received))
        .collect();
    for outcome in store.upsert_many(&records).await {
        assert_eq!(outcome.expect("upsert_many"), Upserted::Written);
    }
    let unknown = OrderId::new_random();
    let mut ids: Vec<OrderId> = records.iter().map(|r| r.order_id).collect();
    ids.push(unknown);
    ids.push(records[0].order_id);
    let found = store.get_many(&ids).await.expect("get_many");
    assert_eq!(found.len(), records.len());
    for record in &records {
        assert_eq!(found.get(&record.order_id), Some(record));
    }
    assert!(!found.contains_key(&unknown));
    assert!(store
        .get_many(&[])
        .await
        .expect("get_many of nothing")
        .is_empty());
}

pub async fn upserting_many_moves_each_view_forward_and_reports_each_outcome(b: &dyn Backend) {
    let store = b.status_store().await;
    let (a, c) = (OrderId::new_random(), OrderId::new_random());
    let a2 = status_record(a, 2, OrderStatus::Processing);
    store.upsert(&a2).await.expect("upsert a v2");
    let batch = [
        status_record(a, 1, OrderStatus::Received),
        status_record(c, 3, OrderStatus::Completed),
    ];
    let outcomes: Vec<Upserted> = store
        .upsert_many(&batch)
        .await
        .into_iter()
        .map(|o| o.expect("upsert_many"))
        .collect();
    assert_eq!(outcomes, [Upserted::Stale, Upserted::Written]);
    assert_eq!(store.get(a).await.expect("get"), Some(a2));
    assert_eq!(store.get(c).await.expect("get"), Some(batch[1].clone()));
}

/// A record of `customer`'s order created at second `second` (zero-padded into `createdAt`)
/// of a fixed minute.
fn customer_record(customer_id: &str, second: u32, status: OrderStatus) -> OrderStatusRecord {
    let created_at = format!("2025-11-24T16:00:{second:02}.000Z");
    OrderStatusRecord {
        order_id: OrderId::new_random(),
        status,
        customer_id: customer(customer_id),
        item_count: 1,
        total: 100,
        currency: Currency::USD,
        version: version(1),
        created_at: created_at.clone(),
        updated_at: created_at,
        completed_at: None,
        failure_reason: None,
    }
}

/// The port's order: `createdAt`, then `orderId`, both descending.
fn newest_first(records: &mut [OrderStatusRecord]) {
    records.sort_by(|a, b| {
        (&b.created_at, b.order_id.to_string()).cmp(&(&a.created_at, a.order_id.to_string()))
    });
}

fn query(customer_id: &str, status: Option<OrderStatus>, limit: usize) -> CustomerOrdersQuery {
    CustomerOrdersQuery {
        customer_id: customer(customer_id),
        status,
        limit,
        cursor: None,
    }
}

/// Follows `next_cursor` from the first page to the end; returns the pages.
async fn walk(store: &dyn StatusStore, mut query: CustomerOrdersQuery) -> Vec<StatusPage> {
    let mut pages = Vec::new();
    loop {
        let page = store
            .list_by_customer(&query)
            .await
            .expect("list_by_customer");
        assert!(page.records.len() <= query.limit, "a page over the limit");
        let next = page.next_cursor.clone();
        pages.push(page);
        assert!(pages.len() <= 100, "the walk does not end");
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return pages,
        }
    }
}

fn ids(records: &[OrderStatusRecord]) -> Vec<OrderId> {
    records.iter().map(|r| r.order_id).collect()
}

/// Checks a complete walk against the expected records (already newest first): every record
/// once and in order, full pages but the last, and no empty page after a cursor.
fn assert_walk(pages: &[StatusPage], expected: &[OrderStatusRecord], limit: usize) {
    let seen: Vec<OrderStatusRecord> = pages.iter().flat_map(|p| p.records.clone()).collect();
    assert_eq!(ids(&seen), ids(expected), "limit {limit}");
    assert_eq!(seen, expected, "limit {limit}");
    assert_eq!(
        pages.len(),
        expected.len().div_ceil(limit).max(1),
        "limit {limit}: pages of {:?}",
        pages.iter().map(|p| p.records.len()).collect::<Vec<_>>()
    );
    for page in &pages[..pages.len() - 1] {
        assert_eq!(page.records.len(), limit, "only the last page may be short");
    }
}

pub async fn listing_a_customer_walks_all_their_orders_once_newest_first(b: &dyn Backend) {
    let store = b.status_store().await;
    let mut mine = Vec::new();
    // Seconds out of order, two pairs created in the same second (the order id breaks the tie),
    // and other customers' orders in between — including one whose id extends this one's.
    for second in [5, 1, 9, 3, 3, 7, 0, 9, 4] {
        mine.push(customer_record("walker", second, OrderStatus::Received));
    }
    let others = [
        customer_record("walker-2", 6, OrderStatus::Received),
        customer_record("someone", 2, OrderStatus::Received),
        customer_record("someone", 9, OrderStatus::Received),
    ];
    for r in mine.iter().chain(&others) {
        assert_eq!(store.upsert(r).await.expect("upsert"), Upserted::Written);
    }
    // A record moved on after its first projection is listed once, as it is now.
    let mut moved = mine[0].clone();
    moved.status = OrderStatus::Completed;
    moved.version = version(3);
    store.upsert(&moved).await.expect("upsert v3");
    mine[0] = moved;
    newest_first(&mut mine);

    for limit in [1, 2, 3, 4, 9, 10, MAX_CUSTOMER_ORDERS_LIMIT] {
        let pages = walk(&*store, query("walker", None, limit)).await;
        assert_walk(&pages, &mine, limit);
    }
}

pub async fn listing_by_customer_and_status_walks_only_that_status(b: &dyn Backend) {
    let store = b.status_store().await;
    let mut all = Vec::new();
    // 30 orders, 3 of them failed: newest, and two among the oldest, so that filling a page
    // means reading past many orders of other statuses.
    for second in 0..30 {
        let status = match second {
            29 | 2 | 0 => OrderStatus::Failed,
            s if s % 2 == 0 => OrderStatus::Completed,
            _ => OrderStatus::Processing,
        };
        all.push(customer_record("filtered", second, status));
    }
    // The same status for someone else never shows.
    all.push(customer_record("bystander", 15, OrderStatus::Failed));
    for r in &all {
        store.upsert(r).await.expect("upsert");
    }
    newest_first(&mut all);
    let of = |status: OrderStatus| -> Vec<OrderStatusRecord> {
        all.iter()
            .filter(|r| r.customer_id.as_str() == "filtered" && r.status == status)
            .cloned()
            .collect()
    };

    for limit in [1, 2, 3, 5] {
        let failed = walk(&*store, query("filtered", Some(OrderStatus::Failed), limit)).await;
        assert_walk(&failed, &of(OrderStatus::Failed), limit);
    }
    for limit in [4, 20] {
        let completed = walk(
            &*store,
            query("filtered", Some(OrderStatus::Completed), limit),
        )
        .await;
        assert_walk(&completed, &of(OrderStatus::Completed), limit);
    }
    let received = store
        .list_by_customer(&query("filtered", Some(OrderStatus::Received), 10))
        .await
        .expect("list");
    assert_eq!(
        received,
        StatusPage {
            records: vec![],
            next_cursor: None
        }
    );
}

pub async fn listing_an_unknown_customer_gives_an_empty_page_without_a_cursor(b: &dyn Backend) {
    let store = b.status_store().await;
    store
        .upsert(&customer_record("known", 1, OrderStatus::Received))
        .await
        .expect("upsert");
    for status in [None, Some(OrderStatus::Received)] {
        let page = store
            .list_by_customer(&query("unknown", status, 10))
            .await
            .expect("list");
        assert_eq!(
            page,
            StatusPage {
                records: vec![],
                next_cursor: None
            }
        );
    }
}

pub async fn listing_rejects_a_bad_cursor_or_limit(b: &dyn Backend) {
    let store = b.status_store().await;
    let record = customer_record("picky", 1, OrderStatus::Received);
    store.upsert(&record).await.expect("upsert");
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let order = record.order_id;
    let bad_cursors = [
        String::new(),
        "not a cursor \u{1F980}".to_owned(),
        // Base64, but of something else than a position.
        b64("not json"),
        b64("{}"),
        b64(r#"{"createdAt":"2025-11-24T16:00:01.000Z"}"#),
        b64(&format!(r#"{{"createdAt":"","orderId":"{order}"}}"#)),
        b64(r#"{"createdAt":"2025-11-24T16:00:01.000Z","orderId":"nope"}"#),
        b64(&format!(
            r#"{{"createdAt":"2025-11-24T16:00:01.000Z","orderId":"{order}","extra":1}}"#
        )),
    ];
    for cursor in bad_cursors {
        let q = CustomerOrdersQuery {
            cursor: Some(cursor.clone()),
            ..query("picky", None, 10)
        };
        let err = store.list_by_customer(&q).await.expect_err("bad cursor");
        assert!(
            matches!(err, StoreError::Rejected(_)),
            "{cursor:?}: {err:?}"
        );
    }
    for limit in [0, MAX_CUSTOMER_ORDERS_LIMIT + 1, usize::MAX] {
        let err = store
            .list_by_customer(&query("picky", None, limit))
            .await
            .expect_err("bad limit");
        assert!(
            matches!(err, StoreError::Rejected(_)),
            "limit {limit}: {err:?}"
        );
    }
    let page = store
        .list_by_customer(&query("picky", None, MAX_CUSTOMER_ORDERS_LIMIT))
        .await
        .expect("the largest limit");
    assert_eq!(page.records, vec![record]);
}

/// Both backends speak one cursor format — URL-safe base64, unpadded, of
/// `{"createdAt", "orderId"}` of the page's last order — and resume strictly after that position,
/// whether or not an order sits exactly there.
pub async fn the_listing_cursor_is_the_position_in_the_documented_format(b: &dyn Backend) {
    let store = b.status_store().await;
    let mut records: Vec<OrderStatusRecord> = (1..=4)
        .map(|second| customer_record("cursor", second, OrderStatus::Received))
        .collect();
    for r in &records {
        store.upsert(r).await.expect("upsert");
    }
    newest_first(&mut records);

    let first = store
        .list_by_customer(&query("cursor", None, 2))
        .await
        .expect("list");
    assert_eq!(first.records, records[..2].to_vec());
    let cursor = first.next_cursor.expect("more to come");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&cursor)
        .expect("URL-safe base64 without padding");
    let position: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(
        position,
        serde_json::json!({
            "createdAt": records[1].created_at,
            "orderId": records[1].order_id.to_string(),
        })
    );

    // A position between two orders (same second as records[2], a larger id than any).
    let between = serde_json::json!({
        "createdAt": records[2].created_at,
        "orderId": "ffffffff-ffff-4fff-bfff-ffffffffffff",
    });
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(between.to_string());
    let rest = store
        .list_by_customer(&CustomerOrdersQuery {
            cursor: Some(cursor),
            ..query("cursor", None, 10)
        })
        .await
        .expect("list from a hand-made position");
    assert_eq!(rest.records, records[2..].to_vec());
    assert_eq!(rest.next_cursor, None);
}

// ---------------------------------------------------------------------------------------------
// Publisher

fn notification(order: OrderId) -> Notification {
    let event_id = EventId::new();
    Notification {
        event_id,
        message: serde_json::json!({"eventId": event_id.to_string(), "orderId": order.to_string()})
            .to_string(),
        attributes: BTreeMap::from([
            (
                "eventType".to_owned(),
                events_schema::EventType::OrderCompleted.as_str().to_owned(),
            ),
            ("customerId".to_owned(), "cust-1".to_owned()),
            ("orderId".to_owned(), order.to_string()),
        ]),
    }
}

async fn observed(b: &dyn Backend, event_id: EventId) -> Vec<Notification> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found: Vec<Notification> = b
            .published()
            .await
            .into_iter()
            .filter(|n| n.event_id == event_id)
            .collect();
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn a_published_notification_reaches_subscribers(b: &dyn Backend) {
    let publisher = b.publisher().await;
    let n = notification(OrderId::new_random());
    publisher.publish(&n).await.expect("publish");
    let found = observed(b, n.event_id).await;
    assert!(!found.is_empty(), "notification not observed");
    assert!(found.iter().all(|f| f == &n), "{found:?}");
}

pub async fn publishing_the_same_event_twice_is_not_an_error(b: &dyn Backend) {
    let publisher = b.publisher().await;
    let n = notification(OrderId::new_random());
    publisher.publish(&n).await.expect("publish");
    publisher.publish(&n).await.expect("publish again");
    assert!(!observed(b, n.event_id).await.is_empty());
}

/// More notifications than one SNS `PublishBatch` takes (10), each observed as published.
pub async fn a_published_batch_reaches_subscribers_whole(b: &dyn Backend) {
    let publisher = b.publisher().await;
    let batch: Vec<Notification> = (0..12)
        .map(|_| notification(OrderId::new_random()))
        .collect();
    publisher
        .publish_batch(&batch)
        .await
        .expect("publish_batch");
    let empty = publisher.publish_batch(&[]).await;
    assert!(
        matches!(&empty, Err(e) if e.index == 0 && matches!(e.error, StoreError::Rejected(_))),
        "an empty batch is refused, as SNS refuses it: {empty:?}"
    );
    for n in &batch {
        let found = observed(b, n.event_id).await;
        assert!(
            !found.is_empty(),
            "notification {} not observed",
            n.event_id
        );
        assert!(found.iter().all(|f| f == n), "{found:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// StatusStore::pending_before (the reconciler's finder). Instantiated by each backend module
// with `pending_checks!`.

/// Invokes `$m!` with the names of the `pending_before` checks.
macro_rules! pending_checks {
    ($m:ident; $backend:expr) => {
        $m!($backend;
            pending_before_lists_only_non_terminal_orders_last_updated_before_the_cutoff,
            a_terminal_upsert_takes_an_order_out_of_the_pending_list,
            pending_before_pages_through_every_pending_order_exactly_once,
            a_walk_goes_on_after_the_last_order_of_a_page_has_moved_on,
            pending_before_rejects_a_bad_cursor_and_a_bad_limit,
            a_view_set_aside_leaves_the_pending_walk_until_a_newer_version_is_written,
        );
    };
}

/// 2025-11-24T16:00:00Z plus `seconds` (and a few milliseconds, so truncation bugs show).
fn at(seconds: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(1_764_000_000_000 + seconds * 1_000 + 7)
        .single()
        .expect("valid timestamp")
}

fn record_at(
    order_id: OrderId,
    v: u32,
    status: OrderStatus,
    updated_at: chrono::DateTime<Utc>,
) -> OrderStatusRecord {
    OrderStatusRecord {
        updated_at: events_schema::envelope::format_timestamp(updated_at),
        ..status_record(order_id, v, status)
    }
}

/// Every page of a walk from the start; asserts no page but the first is empty and every page
/// but the last has a cursor.
async fn walk_pending(
    store: &dyn StatusStore,
    before: chrono::DateTime<Utc>,
    limit: usize,
) -> Vec<order_ports::PendingOrder> {
    let mut orders = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let page = store
            .pending_before(before, cursor, limit)
            .await
            .expect("pending_before");
        assert!(page.orders.len() <= limit, "page over the limit {limit}");
        assert!(
            page_number == 0 || !page.orders.is_empty(),
            "page {page_number} (limit {limit}) is empty, yet the previous one had a cursor"
        );
        assert!(page_number < 1_000, "pending_before does not terminate");
        orders.extend(page.orders);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    orders
}

/// The pending orders a full walk finds, by id. The DynamoDB index is eventually consistent:
/// waits up to [`PATIENCE`] for the walk to find exactly `expected`.
async fn pending_eventually(
    store: &dyn StatusStore,
    before: chrono::DateTime<Utc>,
    expected: &BTreeMap<OrderId, (OrderStatus, chrono::DateTime<Utc>)>,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found: BTreeMap<OrderId, (OrderStatus, chrono::DateTime<Utc>)> =
            walk_pending(store, before, 100)
                .await
                .into_iter()
                .map(|o| (o.order_id, (o.status, o.updated_at)))
                .collect();
        if &found == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending before {before}: expected {expected:?}, found {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn pending_before_lists_only_non_terminal_orders_last_updated_before_the_cutoff(
    b: &dyn Backend,
) {
    let store = b.status_store().await;
    let received = OrderId::new_random();
    let processing = OrderId::new_random();
    let completed = OrderId::new_random();
    let failed = OrderId::new_random();
    let fresh = OrderId::new_random();
    let on_the_cutoff = OrderId::new_random();
    for record in [
        record_at(received, 1, OrderStatus::Received, at(1)),
        record_at(processing, 2, OrderStatus::Processing, at(2)),
        record_at(completed, 3, OrderStatus::Completed, at(3)),
        record_at(failed, 3, OrderStatus::Failed, at(3)),
        record_at(fresh, 1, OrderStatus::Received, at(60)),
        record_at(on_the_cutoff, 1, OrderStatus::Received, at(10)),
    ] {
        store.upsert(&record).await.expect("upsert");
    }
    let expected = BTreeMap::from([
        (received, (OrderStatus::Received, at(1))),
        (processing, (OrderStatus::Processing, at(2))),
    ]);
    pending_eventually(&*store, at(10), &expected).await;
    // Nothing is pending before the oldest write.
    pending_eventually(&*store, at(0), &BTreeMap::new()).await;
}

/// On DynamoDB this is the sparse index at work: the terminal write drops `pendingShard`.
pub async fn a_terminal_upsert_takes_an_order_out_of_the_pending_list(b: &dyn Backend) {
    let store = b.status_store().await;
    let order = OrderId::new_random();
    let cutoff = at(100);
    store
        .upsert(&record_at(order, 1, OrderStatus::Received, at(1)))
        .await
        .expect("upsert v1");
    pending_eventually(
        &*store,
        cutoff,
        &BTreeMap::from([(order, (OrderStatus::Received, at(1)))]),
    )
    .await;
    store
        .upsert(&record_at(order, 2, OrderStatus::Processing, at(2)))
        .await
        .expect("upsert v2");
    pending_eventually(
        &*store,
        cutoff,
        &BTreeMap::from([(order, (OrderStatus::Processing, at(2)))]),
    )
    .await;
    store
        .upsert(&record_at(order, 3, OrderStatus::Completed, at(3)))
        .await
        .expect("upsert v3");
    pending_eventually(&*store, cutoff, &BTreeMap::new()).await;
    // A late, stale write of an older version does not bring it back.
    assert_eq!(
        store
            .upsert(&record_at(order, 2, OrderStatus::Processing, at(2)))
            .await
            .expect("stale upsert"),
        Upserted::Stale
    );
    pending_eventually(&*store, cutoff, &BTreeMap::new()).await;
}

pub async fn pending_before_pages_through_every_pending_order_exactly_once(b: &dyn Backend) {
    let store = b.status_store().await;
    let mut expected = BTreeMap::new();
    for n in 0..23 {
        let order = OrderId::new_random();
        // Several orders share a timestamp: the walk must not lose or repeat ties.
        let updated = at(n / 3);
        let status = if n % 2 == 0 {
            OrderStatus::Received
        } else {
            OrderStatus::Processing
        };
        store
            .upsert(&record_at(order, 1 + n as u32 % 2, status, updated))
            .await
            .expect("upsert");
        expected.insert(order, (status, updated));
    }
    for _ in 0..3 {
        let order = OrderId::new_random();
        store
            .upsert(&record_at(order, 3, OrderStatus::Completed, at(1)))
            .await
            .expect("upsert terminal");
    }
    pending_eventually(&*store, at(100), &expected).await;
    for limit in [1, 2, 7, 100] {
        let walked = walk_pending(&*store, at(100), limit).await;
        let mut ids: Vec<OrderId> = walked.iter().map(|o| o.order_id).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "an order came twice (limit {limit})");
        assert_eq!(
            ids,
            expected.keys().copied().collect::<Vec<_>>(),
            "limit {limit}"
        );
    }
}

/// The reconciler's case: it re-enqueues a page, the processor completes those orders (they
/// leave the list), then it asks for the next page with a cursor naming one of them.
pub async fn a_walk_goes_on_after_the_last_order_of_a_page_has_moved_on(b: &dyn Backend) {
    let store = b.status_store().await;
    let mut all = BTreeMap::new();
    for n in 0..6 {
        let order = OrderId::new_random();
        store
            .upsert(&record_at(order, 1, OrderStatus::Received, at(n)))
            .await
            .expect("upsert");
        all.insert(order, (OrderStatus::Received, at(n)));
    }
    pending_eventually(&*store, at(100), &all).await;

    let first = store
        .pending_before(at(100), None, 2)
        .await
        .expect("first page");
    assert_eq!(first.orders.len(), 2);
    for order in &first.orders {
        store
            .upsert(&record_at(
                order.order_id,
                3,
                OrderStatus::Completed,
                at(50),
            ))
            .await
            .expect("complete");
        all.remove(&order.order_id);
    }
    pending_eventually(&*store, at(100), &all).await;

    let mut rest = Vec::new();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let page = store
            .pending_before(at(100), Some(c), 2)
            .await
            .expect("next page");
        rest.extend(page.orders.into_iter().map(|o| o.order_id));
        cursor = page.next;
    }
    rest.sort();
    assert_eq!(rest, all.keys().copied().collect::<Vec<_>>());
}

pub async fn pending_before_rejects_a_bad_cursor_and_a_bad_limit(b: &dyn Backend) {
    let store = b.status_store().await;
    for cursor in [
        "not a cursor \u{1F980}".to_owned(),
        String::new(),
        format!("0|yesterday|{}", OrderId::new_random()),
        "0|2025-11-24T16:00:00.000Z|not-an-order".to_owned(),
        format!("999999|2025-11-24T16:00:00.000Z|{}", OrderId::new_random()),
    ] {
        let err = store
            .pending_before(at(100), Some(cursor.clone()), 10)
            .await
            .expect_err("bad cursor");
        assert!(
            matches!(err, StoreError::Rejected(_)),
            "{cursor:?}: {err:?}"
        );
    }
    for limit in [0, order_ports::MAX_PENDING_LIMIT + 1] {
        let err = store
            .pending_before(at(100), None, limit)
            .await
            .expect_err("bad limit");
        assert!(matches!(err, StoreError::Rejected(_)), "{limit}: {err:?}");
    }
}

/// The reconciler's "reported once" (ADR 11): a view set aside at its version is no longer
/// listed, is read as before, and comes back with the next version written.
pub async fn a_view_set_aside_leaves_the_pending_walk_until_a_newer_version_is_written(
    b: &dyn Backend,
) {
    let store = b.status_store().await;
    let repair = b.status_repair().await;
    let (broken, other) = (OrderId::new_random(), OrderId::new_random());
    let cutoff = at(100);
    let v1 = record_at(broken, 1, OrderStatus::Received, at(1));
    store.upsert(&v1).await.expect("upsert broken");
    store
        .upsert(&record_at(other, 1, OrderStatus::Received, at(2)))
        .await
        .expect("upsert other");
    pending_eventually(
        &*store,
        cutoff,
        &BTreeMap::from([
            (broken, (OrderStatus::Received, at(1))),
            (other, (OrderStatus::Received, at(2))),
        ]),
    )
    .await;

    // At another version than the view's, or for an unknown order: nothing happens.
    for (order, v) in [(broken, 2), (OrderId::new_random(), 1)] {
        assert_eq!(
            repair
                .set_aside_pending(order, version(v), "not this one")
                .await
                .expect("set aside"),
            Upserted::Stale
        );
    }
    for _ in 0..2 {
        // Twice: setting aside is idempotent.
        assert_eq!(
            repair
                .set_aside_pending(broken, version(1), "log does not fold")
                .await
                .expect("set aside"),
            Upserted::Written
        );
    }
    let only_other = BTreeMap::from([(other, (OrderStatus::Received, at(2)))]);
    pending_eventually(&*store, cutoff, &only_other).await;
    assert_eq!(
        store.get(broken).await.expect("get"),
        Some(v1),
        "the view is unchanged"
    );

    // The next version (a projector, `orders rebuild`) makes it pending again.
    store
        .upsert(&record_at(broken, 2, OrderStatus::Processing, at(3)))
        .await
        .expect("upsert v2");
    pending_eventually(
        &*store,
        cutoff,
        &BTreeMap::from([
            (broken, (OrderStatus::Processing, at(3))),
            (other, (OrderStatus::Received, at(2))),
        ]),
    )
    .await;
    // A terminal view is never set aside: it is not pending.
    store
        .upsert(&record_at(broken, 3, OrderStatus::Completed, at(4)))
        .await
        .expect("upsert v3");
    assert_eq!(
        repair
            .set_aside_pending(broken, version(3), "done already")
            .await
            .expect("set aside"),
        Upserted::Stale
    );
}
