//! What the four Lambda binaries share: configuration from the environment, logging, and the
//! partial-failure contract of DynamoDB-stream batches.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use events_schema::EventEnvelope;
use lambda_runtime::{service_fn, LambdaEvent};

use crate::ports::{ConsumeError, EventConsumer};

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

/// Handles a stream batch (one [`EventConsumer::consume_batch`] call) and reports its first
/// failed record: Lambda resumes the batch from it, so every record after it may come again —
/// the consumers are idempotent, which makes that harmless. A record that can never succeed (not
/// decodable, [`ConsumeError::Permanent`]) is reported too, so that after the mapping's bounded
/// retries it lands in the on-failure destination rather than vanishing. Nothing after an
/// undecodable record is handed to the consumer.
pub async fn handle_stream_batch<C: EventConsumer>(
    consumer: &C,
    event: DynamoDbEvent,
) -> DynamoDbEventResponse {
    let mut sequence_numbers = Vec::with_capacity(event.records.len());
    let mut events = Vec::with_capacity(event.records.len());
    let mut undecodable = None;
    for record in event.records {
        // The log is append-only; anything else is not an event of ours.
        if record.event_name != "INSERT" {
            continue;
        }
        let sequence_number = record.change.sequence_number.clone();
        match EventEnvelope::from_item(record.change.new_image) {
            Ok(envelope) => {
                sequence_numbers.push(sequence_number);
                events.push(envelope);
            }
            Err(e) => {
                undecodable = Some((sequence_number, ConsumeError::Permanent(e.to_string())));
                break;
            }
        }
    }
    let outcome = if events.is_empty() {
        crate::ports::BatchOutcome::default()
    } else {
        consumer.consume_batch(&events).await
    };
    let failed = match outcome.first_failure() {
        Some((index, reason)) => {
            let error = if outcome.transient.as_ref().is_some_and(|(i, _)| *i == index) {
                ConsumeError::Transient(reason.to_owned())
            } else {
                ConsumeError::Permanent(reason.to_owned())
            };
            // An index the consumer made up (out of range) reports the batch's last record.
            let sequence_number = sequence_numbers
                .get(index)
                .or(sequence_numbers.last())
                .cloned()
                .flatten();
            Some((sequence_number, error))
        }
        None => undecodable,
    };
    let mut response = DynamoDbEventResponse::default();
    if let Some((sequence_number, e)) = failed {
        crate::metrics::record(crate::metrics::Metric::BatchItemFailures(1));
        tracing::warn!(
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
) -> Result<(), lambda_runtime::Error> {
    let consumer = &consumer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<DynamoDbEvent>| async move {
            Ok::<_, lambda_runtime::Error>(handle_stream_batch(consumer, event.payload).await)
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

    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};
    use std::sync::Mutex;

    /// Fails the records whose version is listed, transiently; records every version it sees.
    struct Recorder {
        fail: Vec<u32>,
        seen: Mutex<Vec<u32>>,
    }

    impl EventConsumer for Recorder {
        async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
            let v = event.version.get();
            self.seen.lock().expect("lock").push(v);
            if self.fail.contains(&v) {
                return Err(ConsumeError::Transient("down".into()));
            }
            Ok(())
        }
    }

    fn record(seq: &str, event_name: &str, new_image: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "eventID": seq, "eventName": event_name, "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {"SequenceNumber": seq, "SizeBytes": 100, "NewImage": new_image, "StreamViewType": "NEW_IMAGE"}
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

    fn batch(records: Vec<serde_json::Value>) -> DynamoDbEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("stream event")
    }

    #[tokio::test]
    async fn the_first_failed_record_is_reported_and_nothing_after_it_is_attempted() {
        let id = OrderId::new_random();
        let consumer = Recorder {
            fail: vec![2],
            seen: Mutex::default(),
        };
        let response = handle_stream_batch(
            &consumer,
            batch(vec![
                record("100", "INSERT", image(id, 1)),
                record("200", "INSERT", image(id, 2)),
                record("300", "INSERT", image(id, 3)),
            ]),
        )
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec![Some("200".to_owned())]);
        assert_eq!(*consumer.seen.lock().expect("lock"), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_clean_batch_reports_no_failure() {
        let id = OrderId::new_random();
        let consumer = Recorder {
            fail: vec![],
            seen: Mutex::default(),
        };
        let response = handle_stream_batch(
            &consumer,
            batch(vec![
                record("1", "INSERT", image(id, 1)),
                record("2", "MODIFY", image(id, 2)),
            ]),
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
    async fn an_undecodable_record_is_reported_not_dropped() {
        let consumer = Recorder {
            fail: vec![],
            seen: Mutex::default(),
        };
        let response = handle_stream_batch(
            &consumer,
            batch(vec![record(
                "7",
                "INSERT",
                serde_json::json!({"orderId": {"S": "x"}}),
            )]),
        )
        .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert!(consumer.seen.lock().expect("lock").is_empty());
    }
}
