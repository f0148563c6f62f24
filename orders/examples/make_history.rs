//! Writes a large, realistic event history into a new SQLite file, for the history benchmarks
//! of `orders events`, `replay` and `stats` (BENCHMARKS.md):
//!
//! `cargo run --release -p orders --example make_history -- --events 1000000 --data /tmp/h.db`
//!
//! Orders of 3 events each (`OrderReceived`, `OrderProcessingStarted`, then `OrderCompleted`
//! or, one in twenty, `OrderFailed`), received evenly over `--days` days, from 20,000
//! customers, 1 to 4 lines of 500 products, in EUR, USD or BRL. Processing starts 5–50 ms after
//! receipt and ends 50 ms–3 s later. Times, customers and items come from a fixed seed, so two
//! runs give the same history but for the ids. Written through `SqliteEventStore::append`, one
//! order's three events per append, many appends in flight (group commit).

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use events_schema::{
    CorrelationId, Currency, CustomerId, EventEnvelope, LineItem, OrderEvent, OrderId, ProductId,
    ValidOrder, Version,
};
use futures::StreamExt;
use order_adapters_sqlite::SqliteDb;
use order_ports::EventStore;

#[derive(Parser)]
struct Args {
    /// Events to write (the last order is cut short to make the count exact).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// The SQLite file to create (it must not exist).
    #[arg(long)]
    data: PathBuf,
    /// Days the orders are received over, ending at --end.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// When the last order is received (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    end: String,
    /// Appends in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn order(rng: &mut Rng, received: DateTime<Utc>, events: usize) -> Vec<EventEnvelope> {
    let currency = match rng.below(10) {
        0..=5 => "EUR",
        6..=8 => "USD",
        _ => "BRL",
    };
    let items: Vec<LineItem> = (0..=rng.below(4))
        .map(|_| LineItem {
            product_id: ProductId::parse(format!("sku-{:03}", rng.below(500)))
                .expect("a product id"),
            quantity: 1 + rng.below(5) as u32,
            unit_price: 100 + rng.below(20_000) as i64,
        })
        .collect();
    let total = items
        .iter()
        .map(|i| i64::from(i.quantity) * i.unit_price)
        .sum();
    let valid = ValidOrder {
        customer_id: CustomerId::parse(format!("cust-{:05}", rng.below(20_000)))
            .expect("a customer id"),
        items,
        currency: Currency::parse(currency).expect("a currency"),
    };
    let id = OrderId::new_random();
    let correlation = CorrelationId::generate();
    let started = received + Duration::milliseconds(5 + rng.below(46) as i64);
    let ended = started + Duration::milliseconds(50 + rng.below(2_951) as i64);
    let last = if rng.below(20) == 0 {
        OrderEvent::OrderFailed {
            reason: "payment declined".into(),
        }
    } else {
        OrderEvent::OrderCompleted { total }
    };
    let steps = [
        (OrderEvent::OrderReceived(valid), received),
        (OrderEvent::OrderProcessingStarted, started),
        (last, ended),
    ];
    let mut version = Version::FIRST;
    let mut out = Vec::with_capacity(events);
    for (event, at) in steps.into_iter().take(events) {
        out.push(EventEnvelope::at(
            id,
            version,
            correlation.clone(),
            event,
            at,
        ));
        version = version.next();
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    assert!(
        !args.data.exists(),
        "{} exists: give a new file",
        args.data.display()
    );
    let end = DateTime::parse_from_rfc3339(&args.end)
        .expect("--end is an RFC 3339 time")
        .with_timezone(&Utc);
    let orders = args.events.div_ceil(3);
    let span_ms = args.days * 86_400_000;
    let start = end - Duration::milliseconds(span_ms);
    let db = SqliteDb::open(&args.data).expect("create the file");
    let store = db.event_store();

    let began = Instant::now();
    let mut rng = Rng(0x5EED_0F0D_E125);
    let histories = (0..orders).map(move |n| {
        let received = start + Duration::milliseconds((n as i64) * span_ms / orders as i64);
        let events = (args.events - 3 * n).min(3) as usize;
        order(&mut rng, received, events)
    });
    let written = futures::stream::iter(histories)
        .map(|history| {
            let store = store.clone();
            async move {
                store.append(&history).await.expect("append");
                history.len() as u64
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .fold(0u64, |sum, n| async move { sum + n })
        .await;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{written} events of {orders} orders written to {} in {secs:.1} s ({:.0} events/s)",
        args.data.display(),
        written as f64 / secs
    );
}
