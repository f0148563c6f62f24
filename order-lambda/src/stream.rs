//! The partial-failure contract of DynamoDB-stream batches: what the projector and the notifier
//! Lambdas run.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use events_schema::EventEnvelope;
use lambda_runtime::{service_fn, LambdaEvent};

use order_ports::{ConsumeError, EventConsumer, SetAside};

pub use order_ports::poison::PoisonSink;
use order_ports::poison::{set_aside, RecordRef};

/// What names a stream record when its image cannot be read: its sequence number, its stream,
/// and its table keys (`dynamodb.Keys`, read only when needed).
struct RecordIds {
    sequence_number: Option<String>,
    event_source_arn: Option<String>,
    keys: serde_dynamo::Item,
}

impl RecordIds {
    /// The record as a set-aside record names it: `orderId` (S) and `version` (N) of the keys,
    /// each if it is there and readable.
    fn to_ref(&self) -> RecordRef {
        use serde_dynamo::AttributeValue;
        let order_id = match self.keys.inner().get("orderId") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        };
        let version = match self.keys.inner().get("version") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        };
        RecordRef {
            sequence_number: self.sequence_number.clone(),
            event_source_arn: self.event_source_arn.clone(),
            order_id,
            version,
        }
    }
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
        if let Err(e) = set_aside(poison, records[index].to_ref(), None, &reason).await {
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
        if let Err(e) =
            set_aside(poison, records[record].to_ref(), events.get(index), &reason).await
        {
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
