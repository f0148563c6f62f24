//! The processor Lambda: an SQS batch in, the failed message ids out (`SqsBatchResponse`), so
//! only those come back (and reach the DLQ after the queue's maxReceiveCount).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use events_schema::ProcessingPolicy;
use lambda_runtime::{service_fn, LambdaEvent};
use order_ports::aws::iam::Permission;
use order_ports::aws::{iam, AwsClients, DynamoEventStore};
use order_ports::lambda::{init_logging, require_env};

use crate::Processor;

/// The environment variables [`run`] requires (`template.yaml` sets exactly these).
pub const REQUIRED_ENV: [&str; 1] = ["EVENTS_TABLE"];

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

/// Wires configuration (`EVENTS_TABLE`; optional `CREDIT_LIMIT`), the DynamoDB client and the
/// runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let [table] = require_env(REQUIRED_ENV)?;
    let policy = match std::env::var("CREDIT_LIMIT") {
        Ok(v) => ProcessingPolicy {
            credit_limit: v
                .parse()
                .map_err(|_| format!("CREDIT_LIMIT must be an integer, got {v:?}"))?,
        },
        Err(_) => ProcessingPolicy::default(),
    };
    let clients = AwsClients::from_env(None).await;
    let processor = Processor::new(
        Arc::new(DynamoEventStore::new(clients.dynamodb, table)),
        policy,
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
