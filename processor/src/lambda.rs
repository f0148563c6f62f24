//! The processor Lambda: an SQS batch in, the failed message ids out (`SqsBatchResponse`), so
//! only those come back (and reach the DLQ after the queue's maxReceiveCount). Each failed
//! message first gets its visibility set to
//! [`retry_delay`](order_ports::retry_delay)`(ApproximateReceiveCount)` (through
//! [`WorkQueue::fail`]), so retries back off instead of following the queue's fixed visibility
//! timeout.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use events_schema::ProcessingPolicy;
use lambda_runtime::{service_fn, LambdaEvent};
use order_adapters_aws::iam::Permission;
use order_adapters_aws::{iam, AwsClients, DynamoEventStore, SqsWorkQueue};
use order_lambda::{init_logging, EnvReader, FromEnv};
use order_ports::{Delivery, WorkQueue};

use crate::Processor;

/// `ChangeMessageVisibility` calls of one batch's failed messages in flight at once: a batch
/// that fails whole must not start a request per record at once (BENCHMARKS.md, "Peak RSS of
/// each function on a 1,000-record batch").
const BACK_OFF_CONCURRENCY: usize = 32;

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    /// The queue the event source mapping reads, for the backoff of failed messages.
    pub work_queue_url: String,
    /// `CREDIT_LIMIT` if set, else [`ProcessingPolicy::default`].
    pub policy: ProcessingPolicy,
}

impl FromEnv for Config {
    /// The environment variables [`Config`] requires (`template.yaml` sets each of them).
    const REQUIRED: &'static [&'static str] = &["EVENTS_TABLE", "WORK_QUEUE_URL"];
    /// The environment variables [`Config`] reads if set (`template.yaml` sets no others).
    /// `CREDIT_LIMIT` is also what `orders serve` reads (docs/adr/0005-one-name-per-setting.md).
    const OPTIONAL: &'static [&'static str] = &["CREDIT_LIMIT"];

    fn read(env: &mut EnvReader<'_>) -> Self {
        let events_table = env.required("EVENTS_TABLE");
        let work_queue_url = env.required("WORK_QUEUE_URL");
        let mut policy = ProcessingPolicy::default();
        if let Some(limit) =
            env.optional_parsed("CREDIT_LIMIT", "must be an integer number of minor units")
        {
            policy.credit_limit = limit;
        }
        Config {
            events_table,
            work_queue_url,
            policy,
        }
    }
}

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Processor::process_batch`](crate::Processor::process_batch) loads the histories and
/// appends the next events; the SQS event source mapping receives and deletes the work messages; [`handle`]
/// delays the retry of a failed one ([`WorkQueue::fail`]: `ChangeMessageVisibility`).
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::LOAD,
    DynamoEventStore::APPEND,
    SqsWorkQueue::FAIL,
    iam::SQS_EVENT_SOURCE,
    iam::LOGS,
];

/// Processes the messages of the batch together ([`Processor::process_batch`]); reports the
/// ones that failed, each after [`WorkQueue::fail`] on `queue` (the queue the batch came from)
/// has hidden it for [`retry_delay`](order_ports::retry_delay) of its receive count. If that
/// call fails the message is still reported, and comes back after the queue's visibility
/// timeout instead. The mapping deletes the others.
pub async fn handle(
    processor: &Processor,
    queue: &dyn WorkQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let bodies: Vec<&str> = event
        .records
        .iter()
        .map(|m| m.body.as_deref().unwrap_or_default())
        .collect();
    let outcomes = processor.process_batch(&bodies).await;
    let failed: Vec<SqsMessage> = event
        .records
        .into_iter()
        .zip(outcomes)
        .filter_map(|(message, outcome)| {
            let e = outcome.err()?;
            tracing::warn!(message_id = message.message_id.as_deref().unwrap_or_default(), error = %order_ports::telemetry::ErrorChain(&e), "message failed");
            Some(message)
        })
        .collect();
    if let Ok(count @ 1..) = u64::try_from(failed.len()) {
        order_ports::metrics::record(order_ports::metrics::Metric::BatchItemFailures(count));
    }
    let mut response = SqsBatchResponse::default();
    for message in &failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message.message_id.clone().unwrap_or_default();
        response.batch_item_failures.push(failure);
    }
    use futures::StreamExt;
    futures::stream::iter(failed)
        .for_each_concurrent(BACK_OFF_CONCURRENCY, |m| back_off(queue, m))
        .await;
    response
}

/// Hides a failed message for its retry delay.
async fn back_off(queue: &dyn WorkQueue, message: SqsMessage) {
    let receive_count = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    let (Some(message_id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
        tracing::warn!("a failed message without id or receipt handle: no backoff");
        return;
    };
    let delivery = Delivery {
        message_id,
        receipt,
        body: message.body.unwrap_or_default(),
        receive_count,
    };
    if let Err(e) = queue.fail(&delivery).await {
        tracing::warn!(message_id = %delivery.message_id, error = %e, "could not delay the retry");
    }
}

/// Wires the [`Config`], the DynamoDB and SQS clients and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let processor = Processor::new(
        Arc::new(DynamoEventStore::new(clients.dynamodb, config.events_table)),
        config.policy,
    );
    let queue = SqsWorkQueue::new(clients.sqs, config.work_queue_url);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (processor, queue) = (processor.clone(), queue.clone());
        async move {
            Ok::<_, lambda_runtime::Error>(handle(&processor, &queue, event.payload).await)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    use order_test_support::env_lookup as lookup;

    #[test]
    fn an_empty_environment_names_exactly_the_required_variables_and_reads_only_declared_ones() {
        order_test_support::assert_config_reads_exactly::<Config>();
    }

    #[test]
    fn a_complete_environment_is_read_into_the_config() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(
            &[
                ("EVENTS_TABLE", "e"),
                ("WORK_QUEUE_URL", "q"),
                ("CREDIT_LIMIT", "250"),
            ],
            &asked,
        ))
        .unwrap();
        assert_eq!(config.events_table, "e");
        assert_eq!(config.work_queue_url, "q");
        assert_eq!(config.policy.credit_limit, 250);
    }

    #[test]
    fn without_credit_limit_the_default_policy_applies() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(
            &[("EVENTS_TABLE", "e"), ("WORK_QUEUE_URL", "q")],
            &asked,
        ))
        .unwrap();
        assert_eq!(config.policy, ProcessingPolicy::default());
    }

    #[test]
    fn a_bad_credit_limit_is_reported_with_every_missing_variable() {
        let asked = RefCell::default();
        let err = Config::from_lookup(lookup(&[("CREDIT_LIMIT", "12.50")], &asked)).unwrap_err();
        assert_eq!(
            format!("{err:?}"),
            r#"invalid configuration: EVENTS_TABLE: missing; WORK_QUEUE_URL: missing; CREDIT_LIMIT: must be an integer number of minor units, got "12.50""#
        );
    }

    use events_schema::OrderId;
    use order_adapters_sqlite::test_util::TempSqlite;
    use order_ports::StoreError;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A work queue that records the deliveries failed through it, and refuses (and records)
    /// every other call: the event source mapping receives and deletes, the Lambda never sends,
    /// so a call to one of those is a bug the test must see.
    #[derive(Default)]
    struct Recorder {
        failed: Mutex<Vec<Delivery>>,
        other_calls: Mutex<Vec<&'static str>>,
    }

    impl Recorder {
        fn failed(&self) -> Vec<Delivery> {
            self.failed.lock().unwrap().clone()
        }

        fn other_calls(&self) -> Vec<&'static str> {
            self.other_calls.lock().unwrap().clone()
        }

        fn refuse(&self, call: &'static str) -> StoreError {
            self.other_calls.lock().unwrap().push(call);
            StoreError::Rejected(format!("the processor Lambda must not call {call}"))
        }
    }

    #[async_trait::async_trait]
    impl WorkQueue for Recorder {
        async fn send(&self, _: OrderId) -> Result<(), StoreError> {
            Err(self.refuse("send"))
        }
        async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, StoreError> {
            Err(self.refuse("receive"))
        }
        async fn ack(&self, _: &Delivery) -> Result<(), StoreError> {
            Err(self.refuse("ack"))
        }
        async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError> {
            self.failed.lock().unwrap().push(delivery.clone());
            Ok(())
        }
    }

    /// An SQS event of `(message id, body, receive count)`; each receipt handle is
    /// `receipt-{message id}`.
    fn sqs_event(messages: &[(&str, String, u32)]) -> SqsEvent {
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|(id, body, receives)| {
                serde_json::json!({
                    "messageId": id,
                    "receiptHandle": format!("receipt-{id}"),
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": receives.to_string()},
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("valid SQS event")
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_reported_each_hidden_for_its_retry_delay() {
        let db = TempSqlite::new();
        let order_id = db.append_received_order(1, 5).await.order_id;
        let events = db.events();
        let processor = Processor::new(events.clone(), ProcessingPolicy::default());
        let queue = Recorder::default();

        let response = handle(
            &processor,
            &queue,
            sqs_event(&[
                ("good", order_id.to_string(), 1),
                ("poison", "not-an-order".to_owned(), 1),
                ("unknown", OrderId::new_random().to_string(), 3),
            ]),
        )
        .await;

        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["poison", "unknown"]);
        assert_eq!(events.load(order_id).await.unwrap().len(), 3);
        let mut backed_off: Vec<(String, String, u32)> = queue
            .failed()
            .into_iter()
            .map(|d| (d.message_id, d.receipt, d.receive_count))
            .collect();
        backed_off.sort();
        assert_eq!(
            backed_off,
            [
                ("poison".into(), "receipt-poison".into(), 1),
                ("unknown".into(), "receipt-unknown".into(), 3),
            ]
        );
        assert_eq!(
            queue.other_calls(),
            Vec::<&str>::new(),
            "the mapping receives and deletes"
        );
    }
}
