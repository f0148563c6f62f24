//! The archiver: the archive's processor. The event table's changes reach a Kinesis stream (the
//! table's Kinesis streaming destination: the stream's two readers are the projector and the
//! notifier, so anything else reads this copy); a Firehose delivery stream reads it, hands each
//! batch to this function, converts what comes back to Parquet from the Glue table's columns
//! and writes it to S3 by day.
//!
//! Each change record becomes the export row of its event, written by
//! [`order_history::write_json_line`]: the line `orders events --format ndjson` writes for the
//! same event, keys [`order_history::COLUMNS`] (the Glue table's columns), `eventId` among them
//! so queries can deduplicate. Firehose delivers at least once: a record can be archived twice,
//! never lost without trace.
//!
//! Per record, never for the batch as a whole (a failed invocation would make Firehose retry
//! and then fail every record of the batch):
//! * an `INSERT` whose image is an event: [`Archived::Row`] → `Ok`, the row, and the day of the
//!   event's `occurredAt` (UTC) as the partition key [`DAY`] (Firehose dynamic partitioning:
//!   the S3 prefix names `!{partitionKeyFromLambda:day}`);
//! * a `MODIFY` or `REMOVE`: [`Archived::Dropped`] → `Dropped` (the log is append-only: these
//!   are not events — see [`Archived::Dropped`]);
//! * anything that cannot be read — not base64, not a change record, an `INSERT` without an
//!   image, an image that is not an event this build knows (type, schema version, payload):
//!   [`ArchiveError`] → `ProcessingFailed`, which Firehose writes to its error prefix
//!   (`processing-failed/`) with the record's raw data
//!   (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).
//!
//! The response shape, and that `Ok` and `Dropped` count as processed while `ProcessingFailed`
//! does not: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>;
//! partition keys returned by the function:
//! <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-partitioning-keys.html>.

//! For the wiring (the template's Firehose and Glue table, still to come): the Glue columns are
//! [`order_history::COLUMNS`] with the types of [`order_history::arrow_schema`]; `occurredAt`
//! is always RFC 3339 UTC with milliseconds and `Z`, which the Hive JSON SerDe's default
//! (`java.sql.Timestamp::valueOf`) does not read: give it `TimestampFormats`
//! `["yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"]`
//! (<https://docs.aws.amazon.com/firehose/latest/APIReference/API_HiveJsonSerDe.html>); the S3
//! prefix takes `!{partitionKeyFromLambda:day}` and the Glue table `day` as its partition column.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod lambda;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::firehose::{
    KinesisFirehoseResponse, KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
};
use base64::Engine as _;
use events_schema::{DecodeError, EventEnvelope};
use serde::Deserialize;

/// The partition key the archiver returns for each row: the UTC day (`YYYY-MM-DD`) of the
/// event's `occurredAt`.
pub const DAY: &str = "day";

/// What Firehose sends a transformation function
/// (<https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>). Our own type,
/// not `aws_lambda_events`' `KinesisFirehoseEvent`: that one decodes every record's base64 while
/// the request is read, so one bad record would fail the whole invocation (and with it every
/// record of the batch); here `data` stays text until its record is handled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent {
    #[serde(default)]
    pub invocation_id: Option<String>,
    #[serde(default)]
    pub records: Vec<FirehoseRecord>,
}

/// One record of a [`FirehoseEvent`]: its id (which the response must echo) and its data,
/// base64.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord {
    #[serde(default)]
    pub record_id: String,
    #[serde(default)]
    pub data: String,
}

/// What the table's Kinesis streaming destination writes for one change of an item, as far as
/// the archiver reads it (JSON; `recordFormat` `application/json`): `eventName`, and under
/// `dynamodb` the item's `Keys` and its `NewImage` in DynamoDB's attribute-value JSON, with
/// `tableName`, `awsRegion`, `eventID`, `eventSource` (`aws:dynamodb`),
/// `ApproximateCreationDateTime` and `SizeBytes` beside them, which it does not need.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html>; the record's
/// fields one by one: the `DynamoDBStreamToKinesisRecord` schema of Powertools for AWS Lambda,
/// <https://docs.aws.amazon.com/powertools/typescript/2.16.0/api/types/_aws-lambda-powertools_parser.types.DynamoDBStreamToKinesisRecordEvent.html>.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeRecord {
    event_name: ChangeKind,
    dynamodb: Change,
}

/// `eventName`. Anything else is not a change record this function knows: it fails, and is
/// kept in the error prefix, rather than being dropped unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// The `dynamodb` part of a [`ChangeRecord`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Change {
    /// The item as written; absent for a `REMOVE`.
    #[serde(default)]
    new_image: Option<serde_dynamo::Item>,
}

/// Why a record cannot be archived. Never retryable: the bytes will not change, so the record
/// is `ProcessingFailed` and Firehose keeps it in the error prefix.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("data is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("data is not a DynamoDB change record: {0}")]
    ChangeRecord(serde_json::Error),
    #[error("an INSERT without a NewImage")]
    NoImage,
    #[error("the NewImage is not an event: {0}")]
    Event(#[from] DecodeError),
    #[error("cannot write the row: {0}")]
    Row(serde_json::Error),
}

/// What one change record becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    /// An event: its export row (one JSON object and a newline) and the day of its
    /// `occurredAt` (UTC, `YYYY-MM-DD`), the [`DAY`] partition.
    Row { line: Vec<u8>, day: String },
    /// Not an event, on purpose (the record's `eventName`): the event table is append-only,
    /// so a `MODIFY` or a `REMOVE` (an operator's repair, a deletion by TTL or by hand)
    /// changes no event that happened; the archive keeps what was appended, and the `INSERT`
    /// of the item is already in it.
    Dropped(&'static str),
}

/// Reads one record's data (base64 of a change record's JSON) into what the archive stores.
pub fn archive_record(data: &str) -> Result<Archived, ArchiveError> {
    let json = base64::engine::general_purpose::STANDARD.decode(data)?;
    let change: ChangeRecord = serde_json::from_slice(&json).map_err(ArchiveError::ChangeRecord)?;
    match change.event_name {
        ChangeKind::Insert => {}
        ChangeKind::Modify => return Ok(Archived::Dropped("MODIFY")),
        ChangeKind::Remove => return Ok(Archived::Dropped("REMOVE")),
    }
    let image = change.dynamodb.new_image.ok_or(ArchiveError::NoImage)?;
    // The decoder the stream consumers use (`order_lambda::stream`): old schema versions are
    // upcast, so an archived row has the shape of the current version.
    let event = EventEnvelope::from_item(image)?;
    let mut line = Vec::with_capacity(256);
    order_history::write_json_line(&event, &mut line).map_err(ArchiveError::Row)?;
    Ok(Archived::Row {
        line,
        day: event.occurred_at.format("%Y-%m-%d").to_string(),
    })
}

/// Firehose's word for each outcome.
pub mod result {
    pub const OK: &str = "Ok";
    pub const DROPPED: &str = "Dropped";
    pub const PROCESSING_FAILED: &str = "ProcessingFailed";
}

/// The response to a whole batch: one record per record in, same `recordId`, same order.
pub fn transform(event: FirehoseEvent) -> KinesisFirehoseResponse {
    let mut response = KinesisFirehoseResponse::default();
    let (mut ok, mut dropped, mut failed) = (0_usize, 0_usize, 0_usize);
    for record in event.records {
        let mut out = KinesisFirehoseResponseRecord::default();
        let mut metadata = KinesisFirehoseResponseRecordMetadata::default();
        match archive_record(&record.data) {
            Ok(Archived::Row { line, day }) => {
                ok += 1;
                out.result = Some(result::OK.to_owned());
                out.data = base64_data(line);
                metadata.partition_keys.insert(DAY.to_owned(), day);
            }
            Ok(Archived::Dropped(kind)) => {
                dropped += 1;
                tracing::debug!(record_id = %record.record_id, kind, "not an event: dropped");
                out.result = Some(result::DROPPED.to_owned());
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(
                    record_id = %record.record_id,
                    error = %e,
                    "record cannot be archived: Firehose keeps it in its error prefix"
                );
                out.result = Some(result::PROCESSING_FAILED.to_owned());
                // Firehose writes the record as it received it to the error prefix; what we
                // return is the data's bytes where they decode, for the logs' sake.
                out.data = base64_data(
                    base64::engine::general_purpose::STANDARD
                        .decode(&record.data)
                        .unwrap_or_else(|_| record.data.into_bytes()),
                );
            }
        }
        out.record_id = Some(record.record_id);
        out.metadata = metadata;
        response.records.push(out);
    }
    tracing::info!(
        invocation_id = event.invocation_id.as_deref().unwrap_or("?"),
        ok,
        dropped,
        failed,
        "batch transformed"
    );
    response
}

fn base64_data(bytes: Vec<u8>) -> Base64Data {
    let mut data = Base64Data::default();
    data.0 = bytes;
    data
}

#[cfg(test)]
mod tests;
