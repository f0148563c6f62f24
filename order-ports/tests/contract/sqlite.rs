//! The contract suite against the embedded SQLite adapters, plus what only SQLite can show:
//! dead letters, local dedup of notifications, the change feed and its checkpoints,
//! concurrency, durability across reopen, corrupt rows, gap rejection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events_schema::{
    Currency, EventEnvelope, EventId, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, Version,
};
use order_adapters_sqlite::SqliteDb;
use order_ports::{
    AppendError, CustomerOrdersQuery, EventStore, Notification, Publisher, StatusRepair,
    StatusStore, StoreError, WorkQueue,
};
use tempfile::TempDir;

use crate::suite::{self, customer, event_at, history, received, Backend};

/// Fewer receives than the default keeps the redrive checks fast.
const MAX_RECEIVES: u32 = 3;

struct SqliteBackend {
    db: SqliteDb,
    _dir: TempDir,
}

impl SqliteBackend {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        Self { db, _dir: dir }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn event_store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.db.event_store())
    }
    async fn work_queue(&self) -> Arc<dyn WorkQueue> {
        Arc::new(self.db.work_queue(MAX_RECEIVES))
    }
    async fn status_store(&self) -> Arc<dyn StatusStore> {
        Arc::new(self.db.status_store())
    }
    async fn status_repair(&self) -> Arc<dyn StatusRepair> {
        Arc::new(self.db.status_store())
    }
    async fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::new(self.db.publisher())
    }
    fn max_receives(&self) -> u32 {
        MAX_RECEIVES
    }
    async fn published(&self) -> Vec<Notification> {
        self.db
            .publisher()
            .list_after(0, usize::MAX)
            .await
            .expect("list notifications")
            .into_iter()
            .map(|(_, n)| Notification {
                event_id: n.event_id,
                message: n.message,
                attributes: n.attributes,
            })
            .collect()
    }
}

all_checks!(contract_tests; SqliteBackend::new());
pending_checks!(contract_tests; SqliteBackend::new());

// ---------------------------------------------------------------------------------------------
// SQLite only

fn temp_db() -> (TempDir, SqliteDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
    (dir, db)
}

fn raw(db: &SqliteDb) -> rusqlite::Connection {
    rusqlite::Connection::open(db.path()).expect("raw connection")
}

#[tokio::test]
async fn a_message_received_max_times_is_moved_to_the_dead_letters() {
    let (_dir, db) = temp_db();
    let q = db.work_queue(2);
    let order = OrderId::new_random();
    q.send(order).await.expect("send");
    for _ in 0..2 {
        let got = q
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
        q.fail(&got[0]).await.expect("fail");
    }
    assert_eq!(q.depth().await.expect("depth"), 1);
    assert!(q
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive")
        .is_empty());

    let dead = q.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, order.to_string());
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(q.depth().await.expect("depth"), 0);
}

#[tokio::test]
async fn depth_counts_visible_and_in_flight_messages() {
    let (_dir, db) = temp_db();
    let q = db.work_queue_default();
    for _ in 0..3 {
        q.send(OrderId::new_random()).await.expect("send");
    }
    let got = q
        .receive(2, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 2);
    assert_eq!(q.depth().await.expect("depth"), 3);
    q.ack(&got[0]).await.expect("ack");
    assert_eq!(q.depth().await.expect("depth"), 2);
}

#[tokio::test]
async fn a_waiting_receive_wakes_up_when_a_message_is_sent() {
    let (_dir, db) = temp_db();
    let q = db.work_queue_default();
    let sender = q.clone();
    let order = OrderId::new_random();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sender.send(order).await.expect("send");
    });
    let started = std::time::Instant::now();
    let got = q
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn messages_are_received_in_send_order() {
    let (_dir, db) = temp_db();
    let q = db.work_queue_default();
    let bodies: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    for b in &bodies {
        q.send_raw(b.clone()).await.expect("send");
    }
    let got = q
        .receive(20, Duration::from_secs(30))
        .await
        .expect("receive");
    let got: Vec<String> = got.into_iter().map(|d| d.body).collect();
    assert_eq!(got, bodies);
}

#[tokio::test]
async fn publishing_the_same_event_twice_stores_one_notification() {
    let (_dir, db) = temp_db();
    let p = db.publisher();
    let n = Notification {
        event_id: EventId::new(),
        message: r#"{"hello":"world"}"#.into(),
        attributes: BTreeMap::from([("eventType".to_owned(), "OrderCompleted".to_owned())]),
    };
    p.publish(&n).await.expect("publish");
    p.publish(&n).await.expect("publish again");
    let other = Notification {
        event_id: EventId::new(),
        ..n.clone()
    };
    p.publish(&other).await.expect("publish other");

    let listed = p.list_after(0, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].1.event_id, n.event_id);
    assert_eq!(listed[0].1.message, n.message);
    assert_eq!(listed[0].1.attributes, n.attributes);
    assert!(listed[0].0 < listed[1].0);
    assert_eq!(listed[1].1.event_id, other.event_id);
    let rest = p.list_after(listed[0].0, 10).await.expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1.event_id, other.event_id);
}

#[tokio::test]
async fn the_feed_returns_events_in_append_order_and_resumes_after_a_checkpoint() {
    let (_dir, db) = temp_db();
    let store = db.event_store();
    assert_eq!(db.head_seq().await.expect("head"), 0);
    assert_eq!(db.checkpoint("projector").await.expect("checkpoint"), 0);
    assert!(store.read_feed(0, 10).await.expect("feed").is_empty());

    let a = history(OrderId::new_random(), 3);
    let b = history(OrderId::new_random(), 2);
    store.append(&a[..1]).await.expect("append");
    store.append(&b[..1]).await.expect("append");
    store.append(&a[1..]).await.expect("append");
    store.append(&b[1..]).await.expect("append");
    let expected = vec![
        a[0].clone(),
        b[0].clone(),
        a[1].clone(),
        a[2].clone(),
        b[1].clone(),
    ];

    let feed = store.read_feed(0, 100).await.expect("feed");
    let events: Vec<EventEnvelope> = feed.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(events, expected);
    assert!(feed.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(db.head_seq().await.expect("head"), feed[4].0);
    assert_eq!(store.head_seq().await.expect("head"), feed[4].0);

    // A consumer takes two, checkpoints, and resumes after the checkpoint.
    let first = store.read_feed(0, 2).await.expect("feed");
    assert_eq!(first.len(), 2);
    db.save_checkpoint("projector", first[1].0)
        .await
        .expect("save");
    let from = db.checkpoint("projector").await.expect("checkpoint");
    assert_eq!(from, first[1].0);
    let rest = store.read_feed(from, 100).await.expect("feed");
    assert_eq!(
        rest.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        expected[2..]
    );
    // Checkpoints are per consumer and can be overwritten.
    assert_eq!(db.checkpoint("notifier").await.expect("checkpoint"), 0);
    db.save_checkpoint("projector", feed[4].0)
        .await
        .expect("save");
    assert_eq!(
        db.checkpoint("projector").await.expect("checkpoint"),
        feed[4].0
    );
    assert!(store
        .read_feed(feed[4].0, 100)
        .await
        .expect("feed")
        .is_empty());

    // read_all walks the same global order.
    let page = store.read_all(None, 100).await.expect("read_all");
    assert_eq!(page.events, expected);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn appending_past_a_gap_is_rejected() {
    let (_dir, db) = temp_db();
    let store = db.event_store();
    let order = OrderId::new_random();
    let h = history(order, 4);
    store.append(&h[..2]).await.expect("append v1..v2");
    let err = store.append(&h[3..]).await.expect_err("v4 after v2");
    assert!(
        matches!(err, AppendError::Store(StoreError::Rejected(_))),
        "{err:?}"
    );
    let fresh = OrderId::new_random();
    let err = store
        .append(&[event_at(fresh, 2, OrderEvent::OrderProcessingStarted)])
        .await
        .expect_err("v2 of a new order");
    assert!(
        matches!(err, AppendError::Store(StoreError::Rejected(_))),
        "{err:?}"
    );
    assert_eq!(store.load(order).await.expect("load"), h[..2].to_vec());
    assert!(store.load(fresh).await.expect("load").is_empty());
}

#[tokio::test]
async fn reusing_an_event_id_is_rejected() {
    let (_dir, db) = temp_db();
    let store = db.event_store();
    let a = received(OrderId::new_random(), "cust-1");
    store
        .append(std::slice::from_ref(&a))
        .await
        .expect("append");
    let mut b = received(OrderId::new_random(), "cust-1");
    b.event_id = a.event_id;
    let err = store.append(&[b]).await.expect_err("same event id");
    assert!(
        matches!(err, AppendError::Store(StoreError::Rejected(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land_and_exactly_one_racer_wins_a_version() {
    let (_dir, db) = temp_db();
    let store = db.event_store();
    let contested = OrderId::new_random();
    store
        .append(&[received(contested, "cust-1")])
        .await
        .expect("append contested v1");

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut orders = Vec::new();
            for _ in 0..25 {
                let order = OrderId::new_random();
                store
                    .append(&[received(order, "cust-2")])
                    .await
                    .expect("append v1");
                orders.push(order);
            }
            orders
        }));
    }
    let mut racers = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            let v2 = event_at(
                contested,
                2,
                OrderEvent::OrderFailed {
                    reason: format!("racer {i}"),
                },
            );
            store.append(&[v2]).await
        }));
    }

    let mut orders = Vec::new();
    for t in tasks {
        orders.extend(t.await.expect("task"));
    }
    let mut wins = 0;
    for r in racers {
        match r.await.expect("racer") {
            Ok(()) => wins += 1,
            Err(AppendError::Conflict { order_id, version }) => {
                assert_eq!(order_id, contested);
                assert_eq!(version, Version::new(2).expect("v2"));
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(orders.len(), 200);
    for o in &orders {
        assert_eq!(store.load(*o).await.expect("load").len(), 1);
    }
    assert_eq!(store.load(contested).await.expect("load").len(), 2);
    let feed = store.read_feed(0, 1_000).await.expect("feed");
    assert_eq!(feed.len(), 202);
    assert!(feed.windows(2).all(|w| w[0].0 < w[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_receivers_never_get_the_same_message() {
    let (_dir, db) = temp_db();
    let q = db.work_queue_default();
    for _ in 0..100 {
        q.send(OrderId::new_random()).await.expect("send");
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = q
                    .receive(7, Duration::from_secs(60))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    return ids;
                }
                ids.extend(got.into_iter().map(|d| d.message_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, 100);
    assert_eq!(all.len(), 100);
}

#[tokio::test]
async fn everything_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let order = OrderId::new_random();
    let events = history(order, 3);
    let record = OrderStatusRecord {
        order_id: order,
        status: OrderStatus::Completed,
        customer_id: customer("cust-9"),
        item_count: 3,
        total: 4_048,
        currency: Currency::USD,
        version: Version::new(3).expect("v3"),
        created_at: "2025-11-24T16:00:00.123Z".into(),
        updated_at: "2025-11-24T16:00:03.000Z".into(),
        completed_at: Some("2025-11-24T16:00:03.000Z".into()),
        failure_reason: None,
    };
    let notification = Notification {
        event_id: events[2].event_id,
        message: "{}".into(),
        attributes: BTreeMap::new(),
    };
    {
        let db = SqliteDb::open(&path).expect("open");
        db.event_store().append(&events).await.expect("append");
        db.work_queue_default().send(order).await.expect("send");
        db.status_store().upsert(&record).await.expect("upsert");
        db.publisher()
            .publish(&notification)
            .await
            .expect("publish");
        db.save_checkpoint("projector", 2).await.expect("save");
    }

    let db = SqliteDb::open(&path).expect("reopen");
    assert_eq!(db.event_store().load(order).await.expect("load"), events);
    assert_eq!(db.head_seq().await.expect("head"), 3);
    assert_eq!(db.checkpoint("projector").await.expect("checkpoint"), 2);
    assert_eq!(
        db.status_store().get(order).await.expect("get"),
        Some(record.clone())
    );
    assert_eq!(
        db.status_store()
            .list_by_customer(&CustomerOrdersQuery {
                customer_id: customer("cust-9"),
                status: None,
                limit: 10,
                cursor: None,
            })
            .await
            .expect("list")
            .records,
        vec![record]
    );
    let q = db.work_queue_default();
    let got = q
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, order.to_string());
    let listed = db.publisher().list_after(0, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.event_id, notification.event_id);

    let version: i64 = raw(&db)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, order_adapters_sqlite::SCHEMA_VERSION);
    let mode: String = raw(&db)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_file_from_a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    drop(SqliteDb::open(&path).expect("open"));
    rusqlite::Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", 99)
        .expect("bump version");
    let err = SqliteDb::open(&path).expect_err("newer schema");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn an_undecodable_stored_event_is_corrupt() {
    let (_dir, db) = temp_db();
    let order = OrderId::new_random();
    raw(&db)
        .execute(
            "INSERT INTO events (order_id, version, event_id, event_type, schema_version,
                                 occurred_at, correlation_id, payload)
             VALUES (?1, 1, ?2, 'OrderShipped', 1, '2025-11-24T16:00:00.000Z', 'c', '{}')",
            [order.to_string(), EventId::new().to_string()],
        )
        .expect("insert raw");
    let store = db.event_store();
    let err = store.load(order).await.expect_err("unknown event type");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = store
        .read_all(None, 10)
        .await
        .expect_err("unknown event type");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn an_old_schema_version_is_upcast_on_load() {
    let (_dir, db) = temp_db();
    let order = OrderId::new_random();
    let payload =
        r#"{"customerId":"cust-old","items":[{"productId":"p","quantity":1,"unitPrice":5}]}"#;
    raw(&db)
        .execute(
            "INSERT INTO events (order_id, version, event_id, event_type, schema_version,
                                 occurred_at, correlation_id, payload)
             VALUES (?1, 1, ?2, 'OrderReceived', 1, '2025-11-24T16:00:00.000Z', 'c', ?3)",
            [
                order.to_string(),
                EventId::new().to_string(),
                payload.to_owned(),
            ],
        )
        .expect("insert raw");
    let loaded = db.event_store().load(order).await.expect("load");
    match &loaded[..] {
        [e] => match &e.event {
            OrderEvent::OrderReceived(o) => assert_eq!(o.currency, Currency::USD),
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

/// Files created before the listing index had `order_status_by_customer (customer_id,
/// created_at)`: opening one swaps it for the index the newest-first walk reads, and the
/// listing is served from that index without sorting.
#[tokio::test]
async fn an_older_file_gets_the_listing_index_and_listing_uses_it() {
    let (dir, db) = temp_db();
    let record = OrderStatusRecord {
        order_id: OrderId::new_random(),
        status: OrderStatus::Received,
        customer_id: customer("alice"),
        item_count: 1,
        total: 1,
        currency: Currency::USD,
        version: Version::FIRST,
        created_at: "2025-11-24T16:00:01.000Z".into(),
        updated_at: "2025-11-24T16:00:01.000Z".into(),
        completed_at: None,
        failure_reason: None,
    };
    db.status_store().upsert(&record).await.expect("upsert");
    raw(&db)
        .execute_batch(
            "DROP INDEX order_status_by_customer_page;
             CREATE INDEX order_status_by_customer ON order_status (customer_id, created_at);",
        )
        .expect("recreate the old index");
    drop(db);

    let db = SqliteDb::open(dir.path().join("orders.db")).expect("reopen");
    let indexes: Vec<String> = raw(&db)
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'order_status'",
        )
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    assert!(
        indexes.contains(&"order_status_by_customer_page".to_owned())
            && !indexes.contains(&"order_status_by_customer".to_owned()),
        "{indexes:?}"
    );
    let page = db
        .status_store()
        .list_by_customer(&CustomerOrdersQuery {
            customer_id: customer("alice"),
            status: None,
            limit: 10,
            cursor: None,
        })
        .await
        .expect("list");
    assert_eq!(page.records, vec![record]);

    let plan: Vec<String> = raw(&db)
        .prepare(
            "EXPLAIN QUERY PLAN SELECT record FROM order_status WHERE customer_id = ?1
             AND (created_at, order_id) < (?2, ?3) ORDER BY created_at DESC, order_id DESC LIMIT ?4",
        )
        .expect("prepare")
        .query_map(["alice", "2025-11-24T16:00:01.000Z", "x", "10"], |r| r.get(3))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("plan");
    let plan = plan.join(" / ");
    assert!(
        plan.contains("order_status_by_customer_page") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}

#[tokio::test]
async fn the_db_can_be_opened_twice_and_clones_share_it() {
    let (dir, db) = temp_db();
    let again = SqliteDb::open(dir.path().join("orders.db")).expect("second open");
    let order = OrderId::new_random();
    db.clone()
        .event_store()
        .append(&[received(order, "cust-1")])
        .await
        .expect("append");
    assert_eq!(
        again.event_store().load(order).await.expect("load").len(),
        1
    );
    suite::loading_an_unknown_order_gives_an_empty_history(&SqliteBackend::new().await).await;
}
