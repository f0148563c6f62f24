//! Setting aside a stream record a consumer can never handle (ADR 7), in one place for both
//! paths that read the stream: the stream Lambdas (`lambda::handle_stream_batch`, feature
//! `lambda`) and the feed loop of `orders serve --backend aws`
//! ([`catch_up_once`](crate::feed::catch_up_once) over a feed that names a destination,
//! [`Feed::set_aside_to`](crate::feed::Feed::set_aside_to)).
//!
//! A record that does not decode (an event type or schema version this build does not know, a
//! damaged image), or that the consumer fails [permanently](crate::ConsumeError::Permanent), is
//! sent through the [`SetAside`] port — on AWS the stream failure queue — as one
//! [`SetAsideRecord`] naming it (its stream sequence number, stream, table keys) and saying why,
//! then logged (ERROR) and counted (`RecordsSetAside`). The caller goes on with the batch; if the
//! send fails, the caller must not move past the record.

use events_schema::EventEnvelope;

use crate::ports::{SetAside, SetAsideRecord, StoreError};

/// Where a stream consumer sets aside the records it can never handle, and under which name
/// (`projector`, `notifier`) they are recorded.
#[derive(Clone, Copy)]
pub struct PoisonSink<'a> {
    pub consumer: &'static str,
    pub set_aside: &'a dyn SetAside,
}

/// What names a stream record in its [`SetAsideRecord`] when it has no decoded event to name it:
/// its sequence number, its stream, and its table keys as far as they are readable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRef {
    pub sequence_number: Option<String>,
    pub event_source_arn: Option<String>,
    pub order_id: Option<String>,
    pub version: Option<u64>,
}

/// Sets one record aside through `poison`; on success logs it (ERROR: it is handled here, for
/// good) and counts it. `event` is the decoded event when there is one (a permanent failure of
/// the consumer): its order id, version and event id are recorded; otherwise the keys of
/// `record`.
pub async fn set_aside(
    poison: PoisonSink<'_>,
    record: RecordRef,
    event: Option<&EventEnvelope>,
    reason: &str,
) -> Result<(), StoreError> {
    let (order_id, version) = match event {
        Some(e) => (
            Some(e.order_id.to_string()),
            Some(u64::from(e.version.get())),
        ),
        None => (record.order_id, record.version),
    };
    let record = SetAsideRecord {
        set_aside_by: poison.consumer.to_owned(),
        sequence_number: record.sequence_number,
        event_source_arn: record.event_source_arn,
        order_id,
        version,
        event_id: event.map(|e| e.event_id.to_string()),
        reason: reason.to_owned(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    poison.set_aside.set_aside(&record).await?;
    crate::metrics::record(crate::metrics::Metric::RecordsSetAside(1));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_set_aside::SetAsideLog;
    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};

    #[tokio::test]
    async fn a_decoded_event_names_the_set_aside_record_and_otherwise_the_records_keys_do() {
        let log = SetAsideLog::default();
        let poison = PoisonSink {
            consumer: "notifier",
            set_aside: &log,
        };
        let keys = RecordRef {
            sequence_number: Some("7".into()),
            event_source_arn: Some("arn:stream".into()),
            order_id: Some("from-keys".into()),
            version: Some(9),
        };
        set_aside(poison, keys.clone(), None, "undecodable")
            .await
            .expect("set aside");
        let event = EventEnvelope::new(
            OrderId::new_random(),
            Version::new(2).expect("≥ 1"),
            CorrelationId::generate(),
            OrderEvent::OrderProcessingStarted,
        );
        set_aside(poison, keys, Some(&event), "never")
            .await
            .expect("set aside");
        let records = log.records();
        let named: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.set_aside_by.as_str(),
                    r.sequence_number.as_deref(),
                    r.event_source_arn.as_deref(),
                    r.order_id.clone(),
                    r.version,
                    r.event_id.clone(),
                    r.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                (
                    "notifier",
                    Some("7"),
                    Some("arn:stream"),
                    Some("from-keys".to_owned()),
                    Some(9),
                    None,
                    "undecodable"
                ),
                (
                    "notifier",
                    Some("7"),
                    Some("arn:stream"),
                    Some(event.order_id.to_string()),
                    Some(2),
                    Some(event.event_id.to_string()),
                    "never"
                ),
            ]
        );
    }
}
