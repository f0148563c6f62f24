//! The ingest Lambda: the same [`router`](crate::router) behind API Gateway (HTTP API, payload
//! format 2.0) through `lambda_http`.

use std::sync::Arc;

use order_ports::aws::{AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue};
use order_ports::lambda::{init_logging, require_env};

use crate::{router, AppState};

/// Wires `EVENTS_TABLE`, `STATUS_TABLE`, `WORK_QUEUE_URL`, the clients and the runtime.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let [events_table, status_table, queue_url] =
        require_env(["EVENTS_TABLE", "STATUS_TABLE", "WORK_QUEUE_URL"])?;
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
