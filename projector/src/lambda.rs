//! The projector Lambda: a DynamoDB stream batch of the event table in, the first failed record
//! out (`DynamoDbEventResponse`).

use std::sync::Arc;

use order_ports::aws::iam::Permission;
use order_ports::aws::{iam, AwsClients, DynamoEventStore, DynamoStatusStore};
use order_ports::lambda::{init_logging, require_env, run_stream_function};

use crate::Projector;

/// The environment variables [`run`] requires (`template.yaml` sets exactly these).
pub const REQUIRED_ENV: [&str; 2] = ["EVENTS_TABLE", "STATUS_TABLE"];

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Projector::project`](crate::Projector::project) reads and upserts the status view and, on a
/// gap, loads the order's history; the stream mapping reads the stream and sends failed batches
/// to its on-failure queue.
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoStatusStore::GET,
    DynamoStatusStore::UPSERT,
    DynamoEventStore::LOAD,
    iam::STREAM_EVENT_SOURCE,
    iam::STREAM_ON_FAILURE,
    iam::LOGS,
];

/// Wires `EVENTS_TABLE`, `STATUS_TABLE`, the DynamoDB client and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let [events_table, status_table] = require_env(REQUIRED_ENV)?;
    let clients = AwsClients::from_env(None).await;
    let projector = Projector::new(
        Arc::new(DynamoEventStore::new(
            clients.dynamodb.clone(),
            events_table,
        )),
        Arc::new(DynamoStatusStore::new(clients.dynamodb, status_table)),
    );
    run_stream_function(projector).await
}
