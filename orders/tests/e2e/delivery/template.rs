//! The event-source-mapping settings the harness applies, read from `template.yaml` (the
//! parameter defaults behind each `!Ref`), so the harness runs the handlers under the values
//! that are deployed, not copies of them.

use std::time::Duration;

use yaml_serde::Value;

/// A DynamoDB stream mapping (`AWS::Lambda::EventSourceMapping` on the events table's stream).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMappingSettings {
    pub batch_size: usize,
    pub batching_window: Duration,
    pub parallelization_factor: usize,
    /// `None`: -1, retried until the record expires.
    pub max_retry_attempts: Option<u32>,
    /// `None`: -1, no age limit.
    pub max_record_age: Option<Duration>,
    pub bisect_on_function_error: bool,
    pub report_batch_item_failures: bool,
    /// `FilterCriteria.Filters[].Pattern`, parsed; a record passes if any matches (none: all pass).
    pub filters: Vec<serde_json::Value>,
    pub has_on_failure_destination: bool,
}

/// The SQS mapping of the work queue, with the queue's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMappingSettings {
    pub batch_size: usize,
    pub report_batch_item_failures: bool,
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MappingSettings {
    pub projector: StreamMappingSettings,
    pub notifier: StreamMappingSettings,
    pub processor: SqsMappingSettings,
}

impl MappingSettings {
    /// Reads `template.yaml` at the workspace root. Panics with the path of what is missing:
    /// a template the harness cannot read is a failed test, not a default.
    pub fn from_template() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("template.yaml");
        let text = std::fs::read_to_string(&path).expect("read template.yaml");
        let template: Value = yaml_serde::from_str(&text).expect("template.yaml parses");
        let t = Template(&template);
        let work_queue = t.properties("WorkQueue");
        MappingSettings {
            projector: t.stream_mapping("EventsToProjector"),
            notifier: t.stream_mapping("EventsToNotifier"),
            processor: {
                let mapping = t.properties("WorkQueueToProcessor");
                SqsMappingSettings {
                    batch_size: t.number(mapping, "BatchSize").unwrap_or(10) as usize,
                    report_batch_item_failures: reports_item_failures(mapping),
                    visibility_timeout: Duration::from_secs(
                        t.number(work_queue, "VisibilityTimeout")
                            .expect("WorkQueue VisibilityTimeout") as u64,
                    ),
                    max_receive_count: t
                        .number(
                            work_queue
                                .get("RedrivePolicy")
                                .expect("WorkQueue RedrivePolicy"),
                            "maxReceiveCount",
                        )
                        .expect("maxReceiveCount") as u32,
                }
            },
        }
    }
}

fn reports_item_failures(mapping: &Value) -> bool {
    mapping
        .get("FunctionResponseTypes")
        .and_then(Value::as_sequence)
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
        })
}

struct Template<'a>(&'a Value);

impl<'a> Template<'a> {
    fn properties(&self, logical_id: &str) -> &'a Value {
        self.0
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .and_then(|r| r.get("Properties"))
            .unwrap_or_else(|| panic!("template.yaml has no Resources.{logical_id}.Properties"))
    }

    /// A number, literal or `!Ref` to a parameter (its default); `None` when absent.
    fn number(&self, properties: &Value, key: &str) -> Option<i64> {
        let value = properties.get(key)?;
        let resolved = match value {
            Value::Tagged(tagged) if tagged.tag == "!Ref" => {
                let name = tagged.value.as_str().expect("!Ref names a parameter");
                self.0
                    .get("Parameters")
                    .and_then(|p| p.get(name))
                    .and_then(|p| p.get("Default"))
                    .unwrap_or_else(|| panic!("parameter {name} has a default"))
            }
            other => other,
        };
        Some(match resolved {
            Value::Number(n) => n.as_i64().expect("an integer"),
            Value::String(s) => s
                .parse()
                .unwrap_or_else(|_| panic!("{key}: {s:?} is a number")),
            other => panic!("{key}: {other:?} is not a number"),
        })
    }

    fn stream_mapping(&self, logical_id: &str) -> StreamMappingSettings {
        let p = self.properties(logical_id);
        let retries = self.number(p, "MaximumRetryAttempts").unwrap_or(-1);
        let age = self.number(p, "MaximumRecordAgeInSeconds").unwrap_or(-1);
        let filters = p
            .get("FilterCriteria")
            .and_then(|f| f.get("Filters"))
            .and_then(Value::as_sequence)
            .map(|filters| {
                filters
                    .iter()
                    .map(|f| {
                        let pattern = f.get("Pattern").and_then(Value::as_str).expect("Pattern");
                        serde_json::from_str(pattern).expect("a filter pattern is JSON")
                    })
                    .collect()
            })
            .unwrap_or_default();
        StreamMappingSettings {
            batch_size: self.number(p, "BatchSize").unwrap_or(100) as usize,
            batching_window: Duration::from_secs(
                self.number(p, "MaximumBatchingWindowInSeconds")
                    .unwrap_or(0) as u64,
            ),
            parallelization_factor: self.number(p, "ParallelizationFactor").unwrap_or(1) as usize,
            max_retry_attempts: u32::try_from(retries).ok(),
            max_record_age: u64::try_from(age).ok().map(Duration::from_secs),
            bisect_on_function_error: p
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            report_batch_item_failures: reports_item_failures(p),
            filters,
            has_on_failure_destination: p
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .is_some(),
        }
    }
}

/// Lambda's event filter for the subset of the pattern language the template uses: an object
/// matches when every key of the pattern is in the record and matches; an array lists the
/// allowed values (exact match of a string, number or boolean)
/// (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>).
pub fn matches(pattern: &serde_json::Value, record: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match pattern {
        J::Object(fields) => fields
            .iter()
            .all(|(key, sub)| record.get(key).is_some_and(|value| matches(sub, value))),
        J::Array(allowed) => allowed.iter().any(|a| a == record),
        other => panic!("filter pattern form {other} is not modelled by the harness"),
    }
}
