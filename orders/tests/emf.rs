//! Each function's metrics as the Lambdas write them: CloudWatch Embedded Metric Format lines,
//! checked against the specification's JSON shape. Handler level — each function's handler (the
//! API router, the processor's SQS handler, the stream handler around the projector and the
//! notifier) runs on a SQLite file with an [`Emf`] recorder capturing its lines — because the
//! emulator does not turn EMF into metrics (docs/emulator.md).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use events_schema::{EventEnvelope, OrderEvent, Version};
use order_adapters_sqlite::test_util::TempSqlite;
use order_lambda::Emf;
use order_lambda::PoisonSink;
use order_ports::metrics::{scoped, NAMESPACE};
use order_test_support::SetAsideLog;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Runs `work` with an EMF recorder named `function`; returns the lines it wrote.
async fn emf_lines<F: std::future::Future>(function: &str, work: F) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let emf = Emf::with_sink(function, move |line| {
        sink.lock().expect("lock").push(line.to_owned());
    });
    scoped(Arc::new(emf), work).await;
    let taken = lines.lock().expect("lock").clone();
    taken
}

/// The EMF specification's shape: `_aws.Timestamp` (epoch ms), `CloudWatchMetrics` of
/// `{Namespace, Dimensions: [[name…]], Metrics: [{Name, Unit}]}`, every dimension and metric a
/// member of the root (metric values numbers), at most 30 dimensions per set. Returns the
/// metric names.
fn validate(line: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(line).expect("an EMF line is one JSON object");
    let aws = doc["_aws"].as_object().expect("_aws");
    let timestamp = aws["Timestamp"]
        .as_i64()
        .expect("_aws.Timestamp is an integer");
    assert!(
        timestamp > 1_600_000_000_000,
        "Timestamp in epoch milliseconds"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    let mut names = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert_eq!(namespace, NAMESPACE);
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(!set.is_empty() && set.len() <= 30);
            for dimension in set {
                let dimension = dimension.as_str().expect("dimension name");
                assert!(
                    doc[dimension].is_string(),
                    "dimension {dimension} is a string member of the root: {line}"
                );
            }
        }
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            let name = metric["Name"].as_str().expect("Name");
            let unit = metric["Unit"].as_str().expect("Unit");
            assert!(
                ["Count", "Milliseconds", "Seconds"].contains(&unit),
                "unit {unit}"
            );
            assert!(doc[name].is_number(), "{name} has a numeric value: {line}");
            names.push(name.to_owned());
        }
    }
    names
}

fn names(lines: &[String]) -> Vec<String> {
    lines.iter().flat_map(|l| validate(l)).collect()
}

#[tokio::test]
async fn the_ingest_function_emits_accepted_and_rejected_orders() {
    let db = TempSqlite::new();
    let app = ingest::router(ingest::AppState {
        intake: Arc::new(db.db().intake()),
        events: db.events(),
        status: Arc::new(db.db().status_store()),
    });
    let post = |body: Value| {
        Request::post("/orders")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let good =
        json!({"customerId": "c-1", "items": [{"productId": "p", "quantity": 1, "unitPrice": 5}]});
    let lines = emf_lines("orders-ingest", async {
        let accepted = app.clone().oneshot(post(good)).await.expect("answer");
        assert_eq!(accepted.status().as_u16(), 202);
        let rejected = app
            .clone()
            .oneshot(post(json!({"customerId": ""})))
            .await
            .expect("answer");
        assert_eq!(rejected.status().as_u16(), 422);
    })
    .await;
    assert_eq!(names(&lines), ["OrdersAccepted", "OrdersRejected"]);
    let rejected: Value = serde_json::from_str(&lines[1]).expect("JSON");
    assert_eq!(rejected["Reason"], "invalid_order");
    assert_eq!(rejected["FunctionName"], "orders-ingest");
}

#[tokio::test]
async fn the_processor_function_emits_completions_latency_and_batch_item_failures() {
    let db = TempSqlite::new();
    let received = db.append_received_order(1, 10).await;
    let processor = processor::Processor::new(db.events(), Default::default());
    let queue = db.db().work_queue_default();
    let event = serde_json::from_value(json!({"Records": [
        {"messageId": "good", "receiptHandle": "r1", "body": received.order_id.to_string(),
         "attributes": {"ApproximateReceiveCount": "1"}},
        {"messageId": "poison", "receiptHandle": "r2", "body": "not-an-order",
         "attributes": {"ApproximateReceiveCount": "1"}},
    ]}))
    .expect("SQS event");
    let lines = emf_lines("orders-processor", async {
        let response = processor::lambda::handle(&processor, &queue, event).await;
        assert_eq!(response.batch_item_failures.len(), 1);
    })
    .await;
    assert_eq!(
        names(&lines),
        ["OrdersCompleted", "ProcessingLatency", "BatchItemFailures"]
    );
    let failures: Value = serde_json::from_str(&lines[1]).expect("JSON");
    assert_eq!(failures["BatchItemFailures"], 1.0);
}

/// A DynamoDB stream batch of `events`, as Lambda delivers it.
/// Where the stream functions under test set aside what they cannot handle.
fn poison(log: &SetAsideLog) -> PoisonSink<'_> {
    PoisonSink {
        consumer: "test",
        set_aside: log,
    }
}

fn stream_batch<T: serde::de::DeserializeOwned>(events: &[EventEnvelope]) -> T {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let image = serde_json::to_value(e.to_item().expect("item")).expect("image");
            json!({
                "eventID": i.to_string(), "eventName": "INSERT", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {"SequenceNumber": (100 + i).to_string(), "SizeBytes": 100,
                             "NewImage": image, "StreamViewType": "NEW_IMAGE"}
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("stream event")
}

async fn completed_history(db: &TempSqlite) -> Vec<EventEnvelope> {
    let received = db.append_received_order(2, 10).await;
    let next = |v: u32, e: OrderEvent| {
        EventEnvelope::new(
            received.order_id,
            Version::new(v).expect("≥ 1"),
            received.correlation_id.clone(),
            e,
        )
    };
    let rest = vec![
        next(2, OrderEvent::OrderProcessingStarted),
        next(3, OrderEvent::OrderCompleted { total: 20 }),
    ];
    db.events().append(&rest).await.expect("append");
    let mut history = vec![received];
    history.extend(rest);
    history
}

#[tokio::test]
async fn the_projector_function_emits_its_lag_per_event_written() {
    let db = TempSqlite::new();
    let history = completed_history(&db).await;
    let projector = projector::Projector::new(db.events(), Arc::new(db.db().status_store()));
    let log = SetAsideLog::default();
    let lines = emf_lines("orders-projector", async {
        let response =
            order_lambda::handle_stream_batch(&projector, poison(&log), stream_batch(&history))
                .await;
        assert!(response.batch_item_failures.is_empty());
    })
    .await;
    assert_eq!(names(&lines), ["ProjectorLag"; 3]);
}

#[tokio::test]
async fn the_notifier_function_emits_each_notification_published() {
    let db = TempSqlite::new();
    let history = completed_history(&db).await;
    let notifier = notifier::Notifier::new(db.events(), Arc::new(db.db().publisher()));
    let log = SetAsideLog::default();
    let lines = emf_lines("orders-notifier", async {
        let response =
            order_lambda::handle_stream_batch(&notifier, poison(&log), stream_batch(&history[2..]))
                .await;
        assert!(response.batch_item_failures.is_empty());
    })
    .await;
    assert_eq!(names(&lines), ["NotificationsPublished"]);
}
