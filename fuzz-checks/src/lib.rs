//! The fuzz targets' bodies, one function per target, each taking the raw input bytes.
//!
//! Two runners share them, so a check is written once:
//! - `fuzz/fuzz_targets/<target>.rs` (cargo-fuzz, nightly, libFuzzer) explores new inputs:
//!   `scripts/fuzz.sh`, before merging a change to a parser (docs/fuzzing.md);
//! - `tests/corpus_replay.rs` (stable, part of the test command) replays every committed seed and
//!   every finding in `fuzz/corpus/<target>/` and any local finding in `fuzz/artifacts/<target>/`,
//!   so a regression fails the ordinary test run.
//!
//! A check never panics on input it refuses; it panics (an `assert!`) only when a property
//! beyond "never panics" breaks. [`TARGETS`] names each one for the replay.

use events_schema::{
    CorrelationId, EventEnvelope, OrderEvent, OrderId, OrderRequest, StoredEvent, Version,
};

/// One fuzz target: its name (the directory under `fuzz/corpus/` and the cargo-fuzz binary) and
/// its check.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
}

/// Every target. A new one is a function here, a line here, a `[[bin]]` in `fuzz/Cargo.toml`
/// and seeds in `fuzz/corpus/<name>/` (the replay test fails until all three exist).
pub const TARGETS: &[Target] = &[
    Target {
        name: "post_body",
        check: post_body,
    },
    Target {
        name: "stream_record",
        check: stream_record,
    },
    Target {
        name: "sqs_message",
        check: sqs_message,
    },
];

/// The body of `POST /orders` as `ingest::api::create_order` reads it: JSON, then
/// `OrderRequest::validate`. Besides "never panics", an accepted order must survive the
/// envelope's codecs (wire JSON and DynamoDB item) unchanged, and a refusal must name a field.
pub fn post_body(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let order = match OrderRequest::validate(&json) {
        Ok(order) => order,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal without a reason");
            return;
        }
    };
    let envelope = EventEnvelope::new(
        OrderId::derived(&order.customer_id, "fuzz"),
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(order),
    );
    let wire = serde_json::to_vec(&envelope.to_stored()).expect("an envelope serializes");
    let stored: StoredEvent = serde_json::from_slice(&wire).expect("its wire form reads back");
    assert_eq!(
        stored.decode().as_ref(),
        Ok(&envelope),
        "wire JSON round trip"
    );
    let item = envelope.to_item().expect("an envelope is an item");
    assert_eq!(
        EventEnvelope::from_item(item).as_ref(),
        Ok(&envelope),
        "DynamoDB item round trip"
    );
}

/// DynamoDB stream records as the projector and notifier Lambdas receive them: the input is a
/// whole stream event (`aws_lambda_events::dynamodb::Event`, as `lambda_runtime` deserializes
/// it) or a single `NewImage`; each `INSERT` image goes through `EventEnvelope::from_item`, the
/// decoding the stream consumers use. Besides "never panics", whatever decodes must encode and
/// decode again to the same envelope (upcasting is done once, on the first read).
pub fn stream_record(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<aws_lambda_events::dynamodb::Event>(data) {
        for record in event.records {
            if record.event_name == "INSERT" {
                stream_image(record.change.new_image);
            }
        }
    } else if let Ok(image) = serde_json::from_slice::<serde_dynamo::Item>(data) {
        stream_image(image);
    }
}

fn stream_image(image: serde_dynamo::Item) {
    let Ok(envelope) = EventEnvelope::from_item(image) else {
        return;
    };
    let item = envelope.to_item().expect("a decoded envelope is an item");
    assert_eq!(
        EventEnvelope::from_item(item).as_ref(),
        Ok(&envelope),
        "decode, encode, decode"
    );
}

/// Work-queue messages as the processor Lambda receives them: the input is a whole SQS event
/// (`aws_lambda_events::sqs::SqsEvent`) or a single message body; each body goes through
/// `OrderId::from_work_message`, the decoding the processor starts with. Besides "never
/// panics", an order id read from a body must read back from the body the queues send for it
/// (its `Display`).
pub fn sqs_message(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<aws_lambda_events::sqs::SqsEvent>(data) {
        for message in event.records {
            work_message(message.body.as_deref().unwrap_or_default());
        }
    } else if let Ok(body) = std::str::from_utf8(data) {
        work_message(body);
    }
}

fn work_message(body: &str) {
    if let Ok(order_id) = OrderId::from_work_message(body) {
        assert_eq!(
            OrderId::from_work_message(&order_id.to_string()),
            Ok(order_id),
            "{body:?}"
        );
    }
}
