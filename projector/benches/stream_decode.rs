//! Decoding a DynamoDB stream batch as the projector and notifier Lambdas do: the invocation's
//! JSON into `aws_lambda_events`' event, then every record's image into an `EventEnvelope`
//! ([`handle_stream_batch`], with a consumer that does nothing, so only the decoding is timed).
//!
//! `cargo bench -p projector --bench stream_decode`; CI runs it once in test
//! mode (`cargo test --benches`). Figures in BENCHMARKS.md.

use std::hint::black_box;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use events_schema::EventEnvelope;
use order_lambda::{handle_stream_batch, PoisonSink};
use order_ports::{BatchOutcome, ConsumeError, EventConsumer};
use order_test_support::SetAsideLog;

const RECORDS: usize = 100;

/// Takes every event and does nothing with it.
struct Discard;

impl EventConsumer for Discard {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        black_box(event);
        Ok(())
    }

    async fn consume_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        black_box(events);
        BatchOutcome::default()
    }
}

/// The invocation payload Lambda hands over: `RECORDS` INSERT records of whole order histories.
fn stream_event_json() -> Vec<u8> {
    let records: Vec<serde_json::Value> = std::iter::repeat_with(order_test_support::completed_history)
        .flatten()
        .take(RECORDS)
        .enumerate()
        .map(|(n, envelope)| {
            let image = serde_json::to_value(envelope.to_item().expect("item")).expect("json");
            let sequence_number = format!("{:021}", 1_000_000 + n);
            serde_json::json!({
                "eventID": format!("{n:032x}"), "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/OrderEvents/stream/2026-11-30T00:00:00.000",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_460_800.0,
                    "Keys": {"orderId": image["orderId"], "version": image["version"]},
                    "NewImage": image, "SequenceNumber": sequence_number,
                    "SizeBytes": 400, "StreamViewType": "NEW_IMAGE"
                }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("json")
}

fn benches(c: &mut Criterion) {
    let payload = stream_event_json();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let set_aside = SetAsideLog::default();
    let decode = |payload: &[u8]| {
        let event: DynamoDbEvent = serde_json::from_slice(payload).expect("a stream event");
        runtime.block_on(handle_stream_batch(
            &Discard,
            PoisonSink {
                consumer: "bench",
                set_aside: &set_aside,
            },
            event,
        ))
    };
    let response = decode(&payload);
    assert!(
        response.batch_item_failures.is_empty(),
        "every record decodes"
    );

    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("decode a 100-record DynamoDB stream event", |b| {
        b.iter_batched(
            || payload.clone(),
            |payload| decode(black_box(&payload)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(stream_decode, benches);
criterion_main!(stream_decode);
