//! The partial-failure contract of DynamoDB-stream batches: what the projector and the notifier
//! Lambdas run.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use events_schema::EventEnvelope;
use lambda_runtime::{service_fn, LambdaEvent};

use order_ports::{ConsumeError, EventConsumer, SetAside, SetAsideRecord};

/// Where a stream function sets aside the records it can never handle, and under which name
/// (`projector`, `notifier`) they are recorded.
#[derive(Clone, Copy)]
pub struct PoisonSink<'a> {
    pub consumer: &'static str,
    pub set_aside: &'a dyn SetAside,
}

/// What names a stream record when its image cannot be read: its sequence number, its stream,
/// and its table keys (`dynamodb.Keys`, read only when needed).
struct RecordIds {
    sequence_number: Option<String>,
    event_source_arn: Option<String>,
    keys: serde_dynamo::Item,
}

impl RecordIds {
    /// `orderId` (S) and `version` (N) of the keys, each if it is there and readable.
    fn keys(&self) -> (Option<String>, Option<u64>) {
        use serde_dynamo::AttributeValue;
        let order_id = match self.keys.inner().get("orderId") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        };
        let version = match self.keys.inner().get("version") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        };
        (order_id, version)
    }
}

/// Sets one record aside; on success logs it (ERROR: it is handled here, for good) and counts it.
async fn set_aside(
    poison: PoisonSink<'_>,
    ids: &RecordIds,
    event: Option<&EventEnvelope>,
    reason: &str,
) -> Result<(), order_ports::StoreError> {
    let (order_id, version) = match event {
        Some(e) => (
            Some(e.order_id.to_string()),
            Some(u64::from(e.version.get())),
        ),
        None => ids.keys(),
    };
    let record = SetAsideRecord {
        set_aside_by: poison.consumer.to_owned(),
        sequence_number: ids.sequence_number.clone(),
        event_source_arn: ids.event_source_arn.clone(),
        order_id,
        version,
        event_id: event.map(|e| e.event_id.to_string()),
        reason: reason.to_owned(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    poison.set_aside.set_aside(&record).await?;
    order_ports::metrics::record(order_ports::metrics::Metric::RecordsSetAside(1));
    tracing::error!(
        consumer = poison.consumer,
        sequence_number = record.sequence_number.as_deref().unwrap_or("?"),
        orderId = record.order_id.as_deref().unwrap_or("?"),
        version = record.version,
        reason,
        "stream record set aside in the stream failure queue; the batch goes on"
    );
    Ok(())
}

/// Handles a stream batch (one [`EventConsumer::consume_batch`] call) under AWS's rules for a
/// DynamoDB stream mapping with `ReportBatchItemFailures`: Lambda resumes from the *lowest*
/// sequence number reported, so everything after it comes again, and a record reported on
/// every attempt holds its shard until `MaximumRetryAttempts` or `MaximumRecordAgeInSeconds`
/// runs out — and then the mapping discards the whole rest of the batch with it
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html>,
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>).
///
/// So a record that can never be handled — it does not decode (an event type or schema version
/// this build does not know, a damaged image), or the consumer fails it
/// [permanently](order_ports::ConsumeError::Permanent) — is not reported: it is set aside through
/// `poison` (the stream failure queue), with its keys, sequence number and reason, and the
/// batch goes on (ADR 7). Only a transient failure is reported, the first one: Lambda retries
/// from it; the consumers are idempotent, which makes the records after it coming again
/// harmless. If setting a record aside fails, that record is reported instead (so nothing is
/// lost): when it is undecodable, nothing at or after it is handed to the consumer.
pub async fn handle_stream_batch<C: EventConsumer>(
    consumer: &C,
    poison: PoisonSink<'_>,
    event: DynamoDbEvent,
) -> DynamoDbEventResponse {
    let mut records = Vec::with_capacity(event.records.len());
    let mut events = Vec::with_capacity(event.records.len());
    // The index in `records` of each event in `events`.
    let mut at = Vec::with_capacity(event.records.len());
    let mut undecodable = Vec::new();
    for record in event.records {
        // The log is append-only; anything else is not an event of ours.
        if record.event_name != "INSERT" {
            continue;
        }
        let index = records.len();
        records.push(RecordIds {
            sequence_number: record.change.sequence_number,
            event_source_arn: record.event_source_arn,
            keys: record.change.keys,
        });
        match EventEnvelope::from_item(record.change.new_image) {
            Ok(envelope) => {
                at.push(index);
                events.push(envelope);
            }
            Err(e) => undecodable.push((index, format!("undecodable record: {e}"))),
        }
    }
    // The record to report (an index in `records`), and why.
    let mut failed: Option<(usize, ConsumeError)> = None;
    for (index, reason) in undecodable {
        if let Err(e) = set_aside(poison, &records[index], None, &reason).await {
            failed = Some((
                index,
                ConsumeError::Transient(format!("{reason}; setting it aside failed: {e}")),
            ));
            break;
        }
    }
    // Only the events before a record that could not be set aside.
    let handed = failed
        .as_ref()
        .map_or(events.len(), |(stop, _)| at.partition_point(|i| i < stop));
    let outcome = if handed == 0 {
        order_ports::BatchOutcome::default()
    } else {
        consumer.consume_batch(&events[..handed]).await
    };
    // An index the consumer made up (out of range) stands for the last event it was handed.
    let record_of = |i: usize| at[..handed].get(i).or(at[..handed].last()).copied();
    if let Some((index, reason)) = outcome.transient {
        if let Some(record) = record_of(index) {
            failed = Some((record, ConsumeError::Transient(reason)));
        }
    }
    for (index, reason) in outcome.permanent {
        let Some(record) = record_of(index) else {
            continue;
        };
        if let Err(e) = set_aside(poison, &records[record], events.get(index), &reason).await {
            failed = Some((
                record,
                ConsumeError::Permanent(format!("{reason}; setting it aside failed: {e}")),
            ));
            break;
        }
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some((index, e)) = failed {
        let sequence_number = records[index].sequence_number.clone();
        order_ports::metrics::record(order_ports::metrics::Metric::BatchItemFailures(1));
        tracing::warn!(
            consumer = poison.consumer,
            sequence_number = sequence_number.as_deref().unwrap_or("?"),
            error = %e,
            "stream record failed; the batch resumes from it"
        );
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence_number;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Runs a stream-triggered function: every invocation is a batch for [`handle_stream_batch`].
pub async fn run_stream_function<C: EventConsumer + 'static>(
    consumer: C,
    name: &'static str,
    set_aside: std::sync::Arc<dyn SetAside>,
) -> Result<(), lambda_runtime::Error> {
    let consumer = &consumer;
    let poison = PoisonSink {
        consumer: name,
        set_aside: set_aside.as_ref(),
    };
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<DynamoDbEvent>| async move {
            Ok::<_, lambda_runtime::Error>(
                handle_stream_batch(consumer, poison, event.payload).await,
            )
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
