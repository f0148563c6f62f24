//! The partial-failure contract of DynamoDB-stream batches (`handle_stream_batch`).

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use events_schema::EventEnvelope;
use order_lambda::{handle_stream_batch, PoisonSink};
use order_ports::{ConsumeError, EventConsumer};

use events_schema::{CorrelationId, OrderEvent, OrderId, Version};
use order_test_support::SetAsideLog;
use std::sync::Mutex;

/// Fails the records whose version is listed, transiently, and those listed as permanent,
/// permanently; records every version it sees.
#[derive(Default)]
struct Recorder {
    fail: Vec<u32>,
    permanent: Vec<u32>,
    seen: Mutex<Vec<u32>>,
}

impl EventConsumer for Recorder {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        let v = event.version.get();
        self.seen.lock().expect("lock").push(v);
        if self.fail.contains(&v) {
            return Err(ConsumeError::Transient("down".into()));
        }
        if self.permanent.contains(&v) {
            return Err(ConsumeError::Permanent("never".into()));
        }
        Ok(())
    }
}

fn record(seq: &str, event_name: &str, new_image: serde_json::Value) -> serde_json::Value {
    // The table keys, as far as the image has them.
    let keys: serde_json::Map<String, serde_json::Value> = ["orderId", "version"]
        .into_iter()
        .filter_map(|k| new_image.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect();
    serde_json::json!({
        "eventID": seq, "eventName": event_name, "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1", "eventSourceARN": "arn:stream",
        "dynamodb": {"SequenceNumber": seq, "SizeBytes": 100, "Keys": keys, "NewImage": new_image, "StreamViewType": "NEW_IMAGE"}
    })
}

fn image(order_id: OrderId, version: u32) -> serde_json::Value {
    let envelope = EventEnvelope::new(
        order_id,
        Version::new(version).expect("≥ 1"),
        CorrelationId::generate(),
        OrderEvent::OrderProcessingStarted,
    );
    let item = envelope.to_item().expect("item");
    serde_json::to_value(item).expect("image json")
}

/// The image of an event whose type this build does not know (a newer writer's).
fn unknown_type_image(order_id: OrderId, version: u32) -> serde_json::Value {
    let mut image = image(order_id, version);
    image["eventType"] = serde_json::json!({"S": "OrderTeleported"});
    image
}

fn batch(records: Vec<serde_json::Value>) -> DynamoDbEvent {
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("stream event")
}

fn reported(response: &DynamoDbEventResponse) -> Vec<Option<String>> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn handle(
    consumer: &Recorder,
    log: &SetAsideLog,
    records: Vec<serde_json::Value>,
) -> DynamoDbEventResponse {
    let poison = PoisonSink {
        consumer: "projector",
        set_aside: log,
    };
    handle_stream_batch(consumer, poison, batch(records)).await
}

#[tokio::test]
async fn the_first_transiently_failed_record_is_reported_and_nothing_after_it_is_attempted() {
    let id = OrderId::new_random();
    let consumer = Recorder {
        fail: vec![2],
        ..Recorder::default()
    };
    let log = SetAsideLog::default();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", image(id, 2)),
            record("300", "INSERT", image(id, 3)),
        ],
    )
    .await;
    assert_eq!(reported(&response), vec![Some("200".to_owned())]);
    assert_eq!(*consumer.seen.lock().expect("lock"), vec![1, 2]);
    assert!(log.records().is_empty());
}

#[tokio::test]
async fn a_clean_batch_reports_no_failure() {
    let id = OrderId::new_random();
    let consumer = Recorder::default();
    let log = SetAsideLog::default();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("1", "INSERT", image(id, 1)),
            record("2", "MODIFY", image(id, 2)),
        ],
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        *consumer.seen.lock().expect("lock"),
        vec![1],
        "only INSERTs are consumed"
    );
}

#[tokio::test]
async fn an_undecodable_record_is_set_aside_with_its_keys_and_its_neighbours_are_handled() {
    let (id, other) = (OrderId::new_random(), OrderId::new_random());
    let consumer = Recorder::default();
    let log = SetAsideLog::default();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", unknown_type_image(other, 4)),
            record("300", "INSERT", image(id, 2)),
            record("400", "INSERT", serde_json::json!({"orderId": {"S": "x"}})),
            record("500", "INSERT", image(id, 3)),
        ],
    )
    .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        reported(&response)
    );
    assert_eq!(*consumer.seen.lock().expect("lock"), vec![1, 2, 3]);
    let set_aside = log.records();
    let summary: Vec<_> = set_aside
        .iter()
        .map(|r| {
            (
                r.set_aside_by.as_str(),
                r.sequence_number.as_deref(),
                r.order_id.clone(),
                r.version,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("projector", Some("200"), Some(other.to_string()), Some(4)),
            ("projector", Some("400"), Some("x".to_owned()), None),
        ]
    );
    assert!(
        set_aside[0].reason.contains("OrderTeleported"),
        "{}",
        set_aside[0].reason
    );
    assert_eq!(set_aside[0].event_source_arn.as_deref(), Some("arn:stream"));
}

#[tokio::test]
async fn a_record_the_consumer_fails_permanently_is_set_aside_with_its_event_id_and_the_batch_goes_on(
) {
    let id = OrderId::new_random();
    let consumer = Recorder {
        permanent: vec![2],
        ..Recorder::default()
    };
    let log = SetAsideLog::default();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", image(id, 2)),
            record("300", "INSERT", image(id, 3)),
        ],
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(*consumer.seen.lock().expect("lock"), vec![1, 2, 3]);
    let set_aside = log.records();
    assert_eq!(set_aside.len(), 1);
    assert_eq!(set_aside[0].sequence_number.as_deref(), Some("200"));
    assert_eq!(set_aside[0].version, Some(2));
    assert!(set_aside[0].event_id.is_some());
    assert_eq!(set_aside[0].reason, "never");
}

#[tokio::test]
async fn an_undecodable_record_that_cannot_be_set_aside_is_reported_and_nothing_after_it_is_handled(
) {
    let id = OrderId::new_random();
    let consumer = Recorder::default();
    let log = SetAsideLog::failing();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", unknown_type_image(id, 2)),
            record("300", "INSERT", image(id, 3)),
        ],
    )
    .await;
    assert_eq!(reported(&response), vec![Some("200".to_owned())]);
    assert_eq!(*consumer.seen.lock().expect("lock"), vec![1]);
    assert!(log.records().is_empty());
}

#[tokio::test]
async fn a_permanent_failure_that_cannot_be_set_aside_is_reported() {
    let id = OrderId::new_random();
    let consumer = Recorder {
        permanent: vec![1],
        ..Recorder::default()
    };
    let log = SetAsideLog::failing();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", image(id, 2)),
        ],
    )
    .await;
    assert_eq!(reported(&response), vec![Some("100".to_owned())]);
}

#[tokio::test]
async fn only_the_poison_before_a_transient_failure_is_set_aside() {
    let id = OrderId::new_random();
    let consumer = Recorder {
        permanent: vec![1, 3],
        fail: vec![2],
        ..Recorder::default()
    };
    let log = SetAsideLog::default();
    let response = handle(
        &consumer,
        &log,
        vec![
            record("100", "INSERT", image(id, 1)),
            record("200", "INSERT", image(id, 2)),
            record("300", "INSERT", image(id, 3)),
        ],
    )
    .await;
    assert_eq!(reported(&response), vec![Some("200".to_owned())]);
    let set_aside: Vec<_> = log
        .records()
        .into_iter()
        .filter_map(|r| r.sequence_number)
        .collect();
    assert_eq!(set_aside, vec!["100".to_owned()]);
}
