//! Stream records set aside (issue 17): what a stream consumer can never handle goes to the
//! stream failure queue, sent by the consumer itself, so the rest of its batch goes on.

use async_trait::async_trait;

use super::*;

/// A stream record a consumer (the projector or the notifier) can never handle — it does not
/// decode (an event type or schema version this build does not know, a damaged image), or the
/// consumer failed it permanently — and set aside instead of letting it hold up, and in the end
/// drop, its neighbours. On AWS it is one message of the stream failure queue
/// ([`SetAsideRecord::to_message`]); locally the same record is a row of `failed_events`.
///
/// The record itself stays in the event table: this names it (its keys and stream sequence
/// number) and says why, so that it can be read back and, with a binary that can read it,
/// applied (`orders rebuild`, `--replay-notifications`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAsideRecord {
    /// Which consumer set it aside: `projector` or `notifier`.
    pub set_aside_by: String,
    /// The record's stream sequence number (`dynamodb.SequenceNumber`), when it has one.
    pub sequence_number: Option<String>,
    /// The stream (`eventSourceARN`), when the record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// The table keys of the event, as far as they are readable.
    pub order_id: Option<String>,
    pub version: Option<u64>,
    /// The event's id, when the record decoded (a permanent failure of the consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Why it can never be handled.
    pub reason: String,
    /// When it was set aside (RFC 3339, UTC, milliseconds).
    pub at: String,
}

/// The key [`SetAsideRecord::to_message`] writes first, which tells a consumer's own message
/// apart from the stream mapping's on-failure record in the same queue.
const SET_ASIDE_BY: &str = "setAsideBy";

impl SetAsideRecord {
    /// The JSON body of its stream failure queue message.
    pub fn to_message(&self) -> String {
        // Serializing plain strings and numbers cannot fail; fall back to the reason alone.
        serde_json::to_string(self).unwrap_or_else(|_| {
            serde_json::json!({ SET_ASIDE_BY: self.set_aside_by, "reason": self.reason })
                .to_string()
        })
    }
}

/// Sets stream records aside (the stream failure queue on AWS). Used by the stream functions
/// for each record they can never handle, before they let the batch go on.
#[async_trait]
pub trait SetAside: Send + Sync + 'static {
    /// Stores `record` durably. Errors as in the module docs: when this fails, the caller
    /// must not move past the record (the Lambda reports it as its batch item failure).
    async fn set_aside(&self, record: &SetAsideRecord) -> Result<(), StoreError>;
}

/// One message of the stream failure queue, as `orders verify` and `orders dlq records` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// A record a consumer set aside itself.
    SetAside(SetAsideRecord),
    /// The stream mapping's own on-failure record: a batch it discarded after its retries or
    /// the record age ran out. It holds the batch's metadata, not its records.
    /// <https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>
    Discarded(DiscardedBatch),
    /// A message that is neither (its body as it is).
    Unknown(String),
}

/// What the on-failure record of a stream mapping says about the batch it discarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscardedBatch {
    /// `requestContext.functionArn`: whose mapping discarded it.
    pub function_arn: Option<String>,
    /// `requestContext.condition`: `RetryAttemptsExhausted`, `RecordAgeExceeded`, …
    pub condition: Option<String>,
    pub shard_id: Option<String>,
    pub start_sequence_number: Option<String>,
    pub end_sequence_number: Option<String>,
    pub batch_size: Option<u64>,
    /// `timestamp` of the record.
    pub timestamp: Option<String>,
}

impl StreamFailure {
    /// Reads a stream failure queue message body; never fails (an unknown shape is
    /// [`StreamFailure::Unknown`]).
    pub fn parse(body: &str) -> Self {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
            return StreamFailure::Unknown(body.to_owned());
        };
        if value.get(SET_ASIDE_BY).is_some() {
            return match serde_json::from_value::<SetAsideRecord>(value) {
                Ok(record) => StreamFailure::SetAside(record),
                Err(_) => StreamFailure::Unknown(body.to_owned()),
            };
        }
        let Some(info) = value.get("DDBStreamBatchInfo") else {
            return StreamFailure::Unknown(body.to_owned());
        };
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let context = value.get("requestContext");
        StreamFailure::Discarded(DiscardedBatch {
            function_arn: text(context.and_then(|c| c.get("functionArn"))),
            condition: text(context.and_then(|c| c.get("condition"))),
            shard_id: text(info.get("shardId")),
            start_sequence_number: text(info.get("startSequenceNumber")),
            end_sequence_number: text(info.get("endSequenceNumber")),
            batch_size: info.get("batchSize").and_then(serde_json::Value::as_u64),
            timestamp: text(value.get("timestamp")),
        })
    }
}

impl std::fmt::Display for StreamFailure {
    /// One line: what it is, where, and why.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        match self {
            StreamFailure::SetAside(r) => write!(
                f,
                "stream record {}: set aside by the {} at {} (order {}, version {}{}): {}",
                or_unknown(&r.sequence_number),
                r.set_aside_by,
                r.at,
                or_unknown(&r.order_id),
                r.version.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                r.event_id
                    .as_deref()
                    .map_or_else(String::new, |id| format!(", event {id}")),
                r.reason
            ),
            StreamFailure::Discarded(b) => write!(
                f,
                "stream batch {}..{} of shard {}: discarded by the mapping of {} ({}, {} records) at {}",
                or_unknown(&b.start_sequence_number),
                or_unknown(&b.end_sequence_number),
                or_unknown(&b.shard_id),
                or_unknown(&b.function_arn),
                or_unknown(&b.condition),
                b.batch_size.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                or_unknown(&b.timestamp)
            ),
            StreamFailure::Unknown(body) => write!(f, "stream failure queue message: {body}"),
        }
    }
}

#[cfg(test)]
mod set_aside_tests {
    use super::*;

    fn record() -> SetAsideRecord {
        SetAsideRecord {
            set_aside_by: "projector".into(),
            sequence_number: Some("4200".into()),
            event_source_arn: None,
            order_id: Some("o-1".into()),
            version: Some(3),
            event_id: None,
            reason: "unknown event type OrderTeleported".into(),
            at: "2026-12-07T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_set_aside_record_reads_back_from_its_message_as_it_was_written() {
        let written = record();
        let message = written.to_message();
        assert!(
            message.starts_with(r#"{"setAsideBy":"projector""#),
            "{message}"
        );
        assert_eq!(
            StreamFailure::parse(&message),
            StreamFailure::SetAside(written)
        );
    }

    #[test]
    fn the_mappings_own_on_failure_record_is_read_as_a_discarded_batch() {
        // The shape of Lambda's on-failure record for a DynamoDB stream mapping.
        let body = r#"{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:eu-west-1:1:function:s-projector","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2026-12-07T00:00:00.000Z","DDBStreamBatchInfo":{"shardId":"shardId-1","startSequenceNumber":"100","endSequenceNumber":"900","approximateArrivalOfFirstRecord":"2026-12-07T00:00:00Z","approximateArrivalOfLastRecord":"2026-12-07T00:00:00Z","batchSize":9,"streamArn":"arn:s"}}"#;
        let parsed = StreamFailure::parse(body);
        assert_eq!(
            parsed,
            StreamFailure::Discarded(DiscardedBatch {
                function_arn: Some("arn:aws:lambda:eu-west-1:1:function:s-projector".into()),
                condition: Some("RetryAttemptsExhausted".into()),
                shard_id: Some("shardId-1".into()),
                start_sequence_number: Some("100".into()),
                end_sequence_number: Some("900".into()),
                batch_size: Some(9),
                timestamp: Some("2026-12-07T00:00:00.000Z".into()),
            })
        );
        assert!(parsed.to_string().contains("100..900 of shard shardId-1"));
    }

    #[test]
    fn a_message_of_another_shape_is_kept_as_it_is() {
        for body in ["not json", "{}", r#"{"setAsideBy": 3}"#] {
            assert_eq!(
                StreamFailure::parse(body),
                StreamFailure::Unknown(body.to_owned())
            );
        }
    }

    #[test]
    fn a_set_aside_record_is_shown_with_its_keys_sequence_number_and_reason() {
        let line = StreamFailure::SetAside(record()).to_string();
        assert_eq!(
            line,
            "stream record 4200: set aside by the projector at 2026-12-07T00:00:00.000Z \
             (order o-1, version 3): unknown event type OrderTeleported"
        );
    }
}
