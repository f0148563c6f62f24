//! The contract's share of the hot paths: what ingest does with every `POST /orders` body, and
//! the fold that the processor and the projector run for every order.
//!
//! `cargo bench -p events-schema --bench hot_paths`; CI runs it once in test mode
//! (`cargo test --benches`). Figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use events_schema::{
    CorrelationId, EventEnvelope, MinorUnits, OrderEvent, OrderId, OrderRequest, OrderView, Version,
};

/// A typical body: three line items, an explicit currency.
const POST_BODY: &[u8] = br#"{"customerId":"customer-42","currency":"EUR","items":[{"productId":"sku-1","quantity":2,"unitPrice":1999},{"productId":"sku-2","quantity":1,"unitPrice":4500},{"productId":"sku-3","quantity":10,"unitPrice":99}]}"#;

/// As ingest's `create_order` between reading the body and the store: parse, validate, derive
/// the id from an idempotency key, build `OrderReceived` and encode it as the stored item.
fn validate_and_encode(body: &[u8]) -> serde_dynamo::Item {
    let json: serde_json::Value = serde_json::from_slice(body).expect("the body is JSON");
    let order = OrderRequest::validate(&json).expect("the body is a valid order");
    let order_id = OrderId::derived(&order.customer_id, "idempotency-key-1");
    let received = EventEnvelope::new(
        order_id,
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(order),
    );
    received.to_item().expect("an envelope encodes")
}

/// One order's whole happy path: received, processing started, completed.
fn three_events() -> Vec<EventEnvelope> {
    let item = validate_and_encode(POST_BODY);
    let received = EventEnvelope::from_item(item).expect("the item decodes");
    let OrderEvent::OrderReceived(order) = &received.event else {
        unreachable!("version 1 is OrderReceived")
    };
    let total: MinorUnits = order.total();
    let mut view = OrderView::start(&received).expect("version 1 starts a view");
    let started = view.next_envelope(
        OrderEvent::OrderProcessingStarted,
        received.correlation_id.clone(),
    );
    view.apply(&started).expect("version 2 applies");
    let completed = view.next_envelope(
        OrderEvent::OrderCompleted { total },
        received.correlation_id.clone(),
    );
    vec![received, started, completed]
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate and encode a POST body", |b| {
        b.iter(|| validate_and_encode(black_box(POST_BODY)))
    });
    group.finish();

    let history = three_events();
    let mut group = c.benchmark_group("order");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fold three events", |b| {
        b.iter(|| OrderView::fold(black_box(&history)).expect("the history folds"))
    });
    group.finish();
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
