//! The processor Lambda: an SQS batch in, the failed message ids out (`SqsBatchResponse`), so
//! only those come back (and reach the DLQ after the queue's maxReceiveCount).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use events_schema::ProcessingPolicy;
use lambda_runtime::{service_fn, LambdaEvent};
use order_ports::aws::iam::Permission;
use order_ports::aws::{iam, AwsClients, DynamoEventStore};
use order_ports::lambda::{init_logging, ConfigError, EnvReader};

use crate::Processor;

/// The environment variables [`Config`] requires (`template.yaml` sets each of them).
pub const REQUIRED_ENV: [&str; 1] = ["EVENTS_TABLE"];
/// The environment variables [`Config`] reads if set (`template.yaml` sets no others).
/// `CREDIT_LIMIT` is also what `orders serve` reads (docs/adr/0005-one-name-per-setting.md).
pub const OPTIONAL_ENV: [&str; 1] = ["CREDIT_LIMIT"];

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    /// `CREDIT_LIMIT` if set, else [`ProcessingPolicy::default`].
    pub policy: ProcessingPolicy,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (a variable name to its value) instead of the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let events_table = env.required("EVENTS_TABLE");
        let mut policy = ProcessingPolicy::default();
        if let Some(limit) =
            env.optional_parsed("CREDIT_LIMIT", "must be an integer number of minor units")
        {
            policy.credit_limit = limit;
        }
        env.finish(Config {
            events_table,
            policy,
        })
    }
}

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Processor::process`](crate::Processor::process) loads the history and appends the next
/// events; the SQS event source mapping receives and deletes the work messages.
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::LOAD,
    DynamoEventStore::APPEND,
    iam::SQS_EVENT_SOURCE,
    iam::LOGS,
];

/// Processes every message of the batch concurrently; reports the ones that failed.
pub async fn handle(processor: &Processor, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = futures::future::join_all(event.records.into_iter().map(|message| async move {
        let id = message.message_id.unwrap_or_default();
        let outcome = processor
            .process(message.body.as_deref().unwrap_or_default())
            .await;
        (id, outcome)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for (id, outcome) in outcomes {
        if let Err(e) = outcome {
            tracing::warn!(message_id = %id, error = %e, "message failed");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Wires the [`Config`], the DynamoDB client and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let processor = Processor::new(
        Arc::new(DynamoEventStore::new(clients.dynamodb, config.events_table)),
        config.policy,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move { Ok::<_, lambda_runtime::Error>(handle(&processor, event.payload).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// Answers from `vars` and records every name asked for.
    fn lookup<'a>(
        vars: &'a [(&'a str, &'a str)],
        asked: &'a RefCell<BTreeSet<String>>,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            asked.borrow_mut().insert(name.to_owned());
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn an_empty_environment_names_exactly_the_required_variables_and_reads_only_declared_ones() {
        let asked = RefCell::default();
        let err = Config::from_lookup(lookup(&[], &asked)).unwrap_err();
        let missing: Vec<&str> = err.0.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(missing, REQUIRED_ENV);
        let declared: BTreeSet<String> = REQUIRED_ENV
            .iter()
            .chain(&OPTIONAL_ENV)
            .map(|n| (*n).to_owned())
            .collect();
        assert_eq!(asked.into_inner(), declared);
    }

    #[test]
    fn a_complete_environment_is_read_into_the_config() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(
            &[("EVENTS_TABLE", "e"), ("CREDIT_LIMIT", "250")],
            &asked,
        ))
        .unwrap();
        assert_eq!(config.events_table, "e");
        assert_eq!(config.policy.credit_limit, 250);
    }

    #[test]
    fn without_credit_limit_the_default_policy_applies() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(&[("EVENTS_TABLE", "e")], &asked)).unwrap();
        assert_eq!(config.policy, ProcessingPolicy::default());
    }

    #[test]
    fn a_bad_credit_limit_is_reported_with_every_missing_variable() {
        let asked = RefCell::default();
        let err = Config::from_lookup(lookup(&[("CREDIT_LIMIT", "12.50")], &asked)).unwrap_err();
        assert_eq!(
            format!("{err:?}"),
            r#"invalid configuration: EVENTS_TABLE: missing; CREDIT_LIMIT: must be an integer number of minor units, got "12.50""#
        );
    }

    use events_schema::OrderId;
    use order_ports::test_util::TempSqlite;

    fn sqs_event(bodies: &[(&str, String)]) -> SqsEvent {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .map(|(id, body)| serde_json::json!({"messageId": id, "body": body}))
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("valid SQS event")
    }

    #[tokio::test]
    async fn only_the_poison_message_is_reported_as_a_batch_item_failure() {
        let db = TempSqlite::new();
        let order_id = db.append_received_order(1, 5).await.order_id;
        let events = db.events();
        let processor = Processor::new(events.clone(), ProcessingPolicy::default());

        let response = handle(
            &processor,
            sqs_event(&[
                ("good", order_id.to_string()),
                ("poison", "not-an-order".to_owned()),
                ("unknown", OrderId::new_random().to_string()),
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
    }
}
