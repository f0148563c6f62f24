//! What the four Lambda binaries share: configuration from the environment, logging, and the
//! partial-failure contract of DynamoDB-stream batches.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use events_schema::EventEnvelope;
use lambda_runtime::{service_fn, LambdaEvent};

use crate::ports::{ConsumeError, EventConsumer, SetAside};

/// One variable that is missing or does not hold what it must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub name: String,
    /// What is wrong, readable after `NAME: ` (`missing`, `must be …, got "abc"`).
    pub problem: String,
}

/// Configuration a function cannot start with: every problem at once, so one failed cold start
/// tells the operator everything to fix.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", describe(.0))]
pub struct ConfigError(pub Vec<ConfigProblem>);

fn describe(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.name, p.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

// A `main` that returns this error prints its `Debug` form: make that the readable message.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Reads variables through a lookup (the process environment, or a table in tests) and collects
/// every problem instead of stopping at the first; [`EnvReader::finish`] reports them together.
/// A value that is empty or only whitespace counts as unset: a template or shell that sets
/// `NAME=` meant no value.
pub struct EnvReader<F> {
    lookup: F,
    problems: Vec<ConfigProblem>,
}

impl EnvReader<fn(&str) -> Option<String>> {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        EnvReader::new(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> EnvReader<F> {
    pub fn new(lookup: F) -> Self {
        EnvReader {
            lookup,
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn problem(&mut self, name: &str, problem: String) {
        self.problems.push(ConfigProblem {
            name: name.to_owned(),
            problem,
        });
    }

    /// The value of `name`; if it is unset, an empty string stands in and `finish` fails.
    pub fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(value) => value,
            None => {
                self.problem(name, "missing".to_owned());
                String::new()
            }
        }
    }

    /// `None` if `name` is unset; its parsed value if it parses; otherwise `None` and `finish`
    /// fails with `NAME: <what>, got "<value>"` (`what` reads like "must be an integer").
    pub fn optional_parsed<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let raw = self.get(name)?;
        match raw.trim().parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.problem(name, format!("{what}, got {raw:?}"));
                None
            }
        }
    }

    /// `config` if every variable read so far was fine, else every problem found.
    pub fn finish<T>(self, config: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// JSON or text logs as the function's logging config says (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), falling back to `RUST_LOG`; and the metrics as EMF lines on stdout
/// ([`Emf`](crate::metrics::Emf)), in the same log stream.
pub fn init_logging() {
    init_logging_from(|name| std::env::var(name).ok());
    crate::metrics::install(std::sync::Arc::new(crate::metrics::Emf::stdout()));
}

fn init_logging_from(env: impl Fn(&str) -> Option<String>) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    // Lambda's levels are TRACE … ERROR and FATAL; `RUST_LOG` may hold directives.
    let level = env("AWS_LAMBDA_LOG_LEVEL").and_then(|l| match l.to_ascii_lowercase().as_str() {
        "fatal" => Some(LevelFilter::ERROR),
        other => other.parse::<LevelFilter>().ok(),
    });
    let filter = match level {
        Some(level) => EnvFilter::default().add_directive(level.into()),
        None => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse_lossy(env("RUST_LOG").unwrap_or_default()),
    };
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let json = env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    // JSON: the event's fields at the top level (`orderId`, `correlationId`, …) and the current
    // span's fields under `span`, so a Logs Insights query can filter on either.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

pub use crate::poison::PoisonSink;
use crate::poison::{set_aside, RecordRef};

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
/// [permanently](crate::ConsumeError::Permanent) — is not reported: it is set aside through
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
        crate::ports::BatchOutcome::default()
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
        crate::metrics::record(crate::metrics::Metric::BatchItemFailures(1));
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

    fn table(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn every_missing_and_invalid_variable_is_named_at_once_readably() {
        let mut env = EnvReader::new(table(&[("B", "  "), ("LIMIT", "abc"), ("C", "c")]));
        let a = env.required("A");
        let b = env.required("B");
        let c = env.required("C");
        let limit: Option<i64> = env.optional_parsed("LIMIT", "must be an integer");
        let err = env.finish((a, b, c, limit)).unwrap_err();
        assert_eq!(
            format!("{err:?}"),
            r#"invalid configuration: A: missing; B: missing; LIMIT: must be an integer, got "abc""#
        );
    }

    #[test]
    fn set_variables_are_read_and_unset_optional_ones_are_none() {
        let mut env = EnvReader::new(table(&[("A", "a"), ("LIMIT", " 42 "), ("EMPTY", "")]));
        let a = env.required("A");
        let limit: Option<i64> = env.optional_parsed("LIMIT", "must be an integer");
        let unset: Option<i64> = env.optional_parsed("UNSET", "must be an integer");
        let empty: Option<i64> = env.optional_parsed("EMPTY", "must be an integer");
        assert_eq!(
            env.finish((a, limit, unset, empty)),
            Ok(("a".to_owned(), Some(42), None, None))
        );
    }

    use crate::test_util::SetAsideLog;
    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};
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
