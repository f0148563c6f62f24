//! What the four Lambda binaries share: configuration from the environment, logging, and the
//! partial-failure contract of DynamoDB-stream batches.

use std::future::Future;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use events_schema::EventEnvelope;

/// Configuration that is missing at init. Names every missing variable at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing required environment variable(s): {}", .0.join(", "))]
pub struct MissingConfig(pub Vec<String>);

/// Reads the named variables, all of them or an error naming each one that is missing or empty.
pub fn require_env<const N: usize>(names: [&str; N]) -> Result<[String; N], MissingConfig> {
    let values = names.map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()));
    let missing: Vec<String> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| (*n).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(MissingConfig(missing));
    }
    Ok(values.map(Option::unwrap_or_default))
}

/// JSON or text logs as the function's logging config says (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), falling back to `RUST_LOG`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// How one stream record went.
pub enum RecordOutcome {
    Done,
    /// Transient: report the record so the batch is retried from it.
    Retry(String),
    /// Permanent: the record can never be handled. It is reported too, so that after the
    /// mapping's bounded retries it lands in the on-failure destination rather than vanishing.
    Poison(String),
}

/// Handles a stream batch in order and stops at the first record that fails: the response names
/// that record, and Lambda resumes the batch from it, so every record after it may come again —
/// the consumers' version guard / dedup make that harmless.
pub async fn handle_stream_batch<F, Fut>(
    event: DynamoDbEvent,
    mut handle: F,
) -> DynamoDbEventResponse
where
    F: FnMut(EventEnvelope) -> Fut,
    Fut: Future<Output = RecordOutcome>,
{
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        let sequence_number = record.change.sequence_number.clone();
        let outcome = if record.event_name != "INSERT" {
            // The log is append-only; anything else is not an event of ours.
            RecordOutcome::Done
        } else {
            match EventEnvelope::from_item(record.change.new_image) {
                Ok(envelope) => handle(envelope).await,
                Err(e) => RecordOutcome::Poison(e.to_string()),
            }
        };
        let reason = match outcome {
            RecordOutcome::Done => continue,
            RecordOutcome::Retry(reason) => reason,
            RecordOutcome::Poison(reason) => reason,
        };
        tracing::warn!(
            sequence_number = sequence_number.as_deref().unwrap_or("?"),
            reason,
            "stream record failed; the batch resumes from it"
        );
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence_number;
        response.batch_item_failures.push(failure);
        break;
    }
    response
}
