//! The notifier Lambda: stream batches of `OrderCompleted` (the mapping's filter) in, SNS
//! messages out, the first failed record reported (`DynamoDbEventResponse`).

use std::sync::Arc;

use order_ports::aws::iam::Permission;
use order_ports::aws::{iam, AwsClients, DynamoEventStore, SnsPublisher};
use order_ports::lambda::{init_logging, require_env, run_stream_function};

use crate::Notifier;

/// The environment variables [`run`] requires (`template.yaml` sets exactly these).
pub const REQUIRED_ENV: [&str; 2] = ["EVENTS_TABLE", "TOPIC_ARN"];

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Notifier::notify`](crate::Notifier::notify) loads the order's history and publishes; the
/// stream mapping reads the stream and sends failed batches to its on-failure queue.
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::LOAD,
    SnsPublisher::PUBLISH,
    iam::STREAM_EVENT_SOURCE,
    iam::STREAM_ON_FAILURE,
    iam::LOGS,
];

/// Wires `EVENTS_TABLE`, `TOPIC_ARN`, the clients and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let [events_table, topic_arn] = require_env(REQUIRED_ENV)?;
    let clients = AwsClients::from_env(None).await;
    let notifier = Notifier::new(
        Arc::new(DynamoEventStore::new(clients.dynamodb, events_table)),
        Arc::new(SnsPublisher::new(clients.sns, topic_arn)),
    );
    run_stream_function(notifier).await
}
