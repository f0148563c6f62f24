//! The ingest Lambda: the same [`router`](crate::router) behind API Gateway (HTTP API, payload
//! format 2.0) through `lambda_http`.

use std::sync::Arc;

use order_ports::aws::iam::Permission;
use order_ports::aws::{iam, AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue};
use order_ports::lambda::{init_logging, require_env};

use crate::{router, AppState};

/// The environment variables [`run`] requires (`template.yaml` sets exactly these).
pub const REQUIRED_ENV: [&str; 3] = ["EVENTS_TABLE", "STATUS_TABLE", "WORK_QUEUE_URL"];

/// What this function's role must grant, built from the adapters' per-method constants:
/// the HTTP API appends (`POST /orders`) and loads (`GET`) events, reads the status view
/// (`GET /orders/{id}`) and enqueues work (`POST`, also on an idempotent retry).
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::APPEND,
    DynamoEventStore::LOAD,
    DynamoStatusStore::GET,
    SqsWorkQueue::SEND,
    iam::LOGS,
];

/// Wires `EVENTS_TABLE`, `STATUS_TABLE`, `WORK_QUEUE_URL`, the clients and the runtime.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let [events_table, status_table, queue_url] = require_env(REQUIRED_ENV)?;
    let clients = AwsClients::from_env(None).await;
    let app = router(AppState {
        events: Arc::new(DynamoEventStore::new(
            clients.dynamodb.clone(),
            events_table,
        )),
        status: Arc::new(DynamoStatusStore::new(clients.dynamodb, status_table)),
        queue: Arc::new(SqsWorkQueue::new(clients.sqs, queue_url)),
    });
    lambda_http::run(app).await
}
