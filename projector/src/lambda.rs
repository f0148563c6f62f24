//! The projector Lambda: a DynamoDB stream batch of the event table in, the first failed record
//! out (`DynamoDbEventResponse`).

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, LambdaEvent};
use order_ports::aws::{AwsClients, DynamoEventStore, DynamoStatusStore};
use order_ports::lambda::{handle_stream_batch, init_logging, require_env, RecordOutcome};

use crate::Projector;

pub async fn handle(projector: &Projector, event: DynamoDbEvent) -> DynamoDbEventResponse {
    handle_stream_batch(event, |envelope| async move {
        match projector.project(&envelope).await {
            Ok(_) => RecordOutcome::Done,
            Err(e) if e.is_transient() => RecordOutcome::Retry(e.to_string()),
            Err(e) => RecordOutcome::Poison(e.to_string()),
        }
    })
    .await
}

/// Wires `EVENTS_TABLE`, `STATUS_TABLE`, the DynamoDB client and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let [events_table, status_table] = require_env(["EVENTS_TABLE", "STATUS_TABLE"])?;
    let clients = AwsClients::from_env(None).await;
    let projector = Projector::new(
        Arc::new(DynamoEventStore::new(
            clients.dynamodb.clone(),
            events_table,
        )),
        Arc::new(DynamoStatusStore::new(clients.dynamodb, status_table)),
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<DynamoDbEvent>| {
        let projector = projector.clone();
        async move { Ok::<_, lambda_runtime::Error>(handle(&projector, event.payload).await) }
    }))
    .await
}
