//! Throughput of the SQLite adapters' hot paths (see BENCHMARKS.md):
//!
//! `cargo run --release -p order-ports --no-default-features --features sqlite --example sqlite_throughput`

use std::time::Duration;

use events_schema::{
    CorrelationId, Currency, CustomerId, EventEnvelope, LineItem, OrderEvent, OrderId, ProductId,
    ValidOrder, Version,
};
use order_adapters_sqlite::SqliteDb;
use order_ports::{EventStore, OrderIntake, WorkQueue};

fn received(order_id: OrderId, customer_id: &str) -> EventEnvelope {
    let order = ValidOrder {
        customer_id: CustomerId::parse(customer_id).expect("valid customer id"),
        items: vec![LineItem {
            product_id: ProductId::parse("sku-1").expect("valid product id"),
            quantity: 2,
            unit_price: 1_999,
        }],
        currency: Currency::parse("EUR").expect("valid currency"),
    };
    EventEnvelope::new(
        order_id,
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(order),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
    let n_tasks = 16;
    let per_task = 2_000;
    let total = n_tasks * per_task;

    let store = db.event_store();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_tasks {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let order = OrderId::new_random();
                store
                    .append(&[received(order, "cust-1")])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("append v1: {:.0}/s", total as f64 / secs);

    let q = db.work_queue_default();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_tasks {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                q.send(OrderId::new_random()).await.expect("send");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("send: {:.0}/s", total as f64 / secs);

    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                let got = q
                    .receive(10, Duration::from_secs(60))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    return n;
                }
                n += got.len();
                let acks: Vec<_> = got
                    .into_iter()
                    .map(|d| {
                        let q = q.clone();
                        tokio::spawn(async move { q.ack(&d).await })
                    })
                    .collect();
                for a in acks {
                    a.await.expect("task").expect("ack");
                }
            }
        }));
    }
    let mut received_n = 0;
    for t in tasks {
        received_n += t.await.expect("task");
    }
    assert_eq!(received_n, total);
    let secs = started.elapsed().as_secs_f64() - 1.0; // the final empty receive waits 1 s
    println!(
        "4 consumers, receive(10)+concurrent acks: {:.0} msgs/s",
        total as f64 / secs
    );

    let started = std::time::Instant::now();
    let feed = store.read_feed(0, total).await.expect("feed");
    println!(
        "read_feed: {:.0}/s ({} events)",
        feed.len() as f64 / started.elapsed().as_secs_f64(),
        feed.len()
    );

    // With synchronous = FULL every group commit waits for one fsync, so the throughput grows
    // with the writes in flight (an HTTP server under load has many): 256 writers, and the
    // POST /orders path (append + enqueue in one commit).
    let many = 256;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..many {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / many {
                let order = OrderId::new_random();
                store
                    .append(&[received(order, "cust-1")])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append v1, {many} tasks: {:.0}/s",
        (total / many * many) as f64 / secs
    );

    let intake = db.intake();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..many {
        let intake = intake.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / many {
                let order = OrderId::new_random();
                intake
                    .accept(&received(order, "cust-1"))
                    .await
                    .expect("accept");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "intake accept, {many} tasks: {:.0}/s",
        (total / many * many) as f64 / secs
    );
}
