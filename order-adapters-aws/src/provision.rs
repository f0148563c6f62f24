//! Creates the tables, queues and topic for tests (the contract suite and the end-to-end tests
//! against the emulator). The deployed stack is `template.yaml`; keep the two in step.
//!
//! Only with the feature `test-util`, which only dev-dependencies enable: no function binary
//! compiles this module.

// On the module itself (rather than on `pub mod provision;` in `aws/mod.rs`) so the gate and
// its reason sit together.
#![cfg(feature = "test-util")]

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::{classify, AwsClients};
use crate::dynamo::pending::{PENDING_INDEX, PENDING_SHARD};
use crate::dynamo::status_table::BY_CUSTOMER_INDEX;
use order_ports::StoreError;

fn build_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected(format!("{what}: {e}"))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| build_error("KeySchemaElement", e))
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(|e| build_error("AttributeDefinition", e))
}

/// Creates `events_table` (PK `orderId` S, SK `version` N, stream `NEW_IMAGE`) and
/// `status_table` (PK `orderId` S, GSI `byCustomer` on `customerId`/`createdAt` and sparse GSI
/// `pending` on `pendingShard`/`createdAt`, both keys only, as in `template.yaml`), both
/// on-demand, and waits until they exist.
pub async fn create_tables(
    clients: &AwsClients,
    events_table: &str,
    status_table: &str,
) -> Result<(), StoreError> {
    let ddb = &clients.dynamodb;
    ddb.create_table()
        .table_name(events_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("orderId", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("version", ScalarAttributeType::N)?)
        .key_schema(key("orderId", KeyType::Hash)?)
        .key_schema(key("version", KeyType::Range)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| build_error("StreamSpecification", e))?,
        )
        .send()
        .await
        .map_err(|e| classify(&format!("CreateTable {events_table}"), &e))?;

    let by_customer = GlobalSecondaryIndex::builder()
        .index_name(BY_CUSTOMER_INDEX)
        .key_schema(key("customerId", KeyType::Hash)?)
        .key_schema(key("createdAt", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| build_error("GlobalSecondaryIndex", e))?;
    let pending = GlobalSecondaryIndex::builder()
        .index_name(PENDING_INDEX)
        .key_schema(key(PENDING_SHARD, KeyType::Hash)?)
        .key_schema(key("createdAt", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| build_error("GlobalSecondaryIndex", e))?;
    ddb.create_table()
        .table_name(status_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("orderId", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("customerId", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("createdAt", ScalarAttributeType::S)?)
        .key_schema(key("orderId", KeyType::Hash)?)
        .global_secondary_indexes(by_customer)
        .attribute_definitions(attribute(PENDING_SHARD, ScalarAttributeType::S)?)
        .global_secondary_indexes(pending)
        .send()
        .await
        .map_err(|e| classify(&format!("CreateTable {status_table}"), &e))?;

    for table in [events_table, status_table] {
        ddb.wait_until_table_exists()
            .table_name(table)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| StoreError::Unavailable(format!("waiting for table {table}: {e}")))?;
    }
    Ok(())
}

/// Creates the queue `name` and its dead-letter queue `{name}-dlq`, with a redrive policy
/// moving a message to the DLQ once it has been received `max_receives` times. Returns
/// `(queue_url, dlq_url)`.
pub async fn create_queue_with_dlq(
    clients: &AwsClients,
    name: &str,
    max_receives: u32,
) -> Result<(String, String), StoreError> {
    let sqs = &clients.sqs;
    let dlq_name = format!("{name}-dlq");
    let dlq_url = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .map_err(|e| classify(&format!("CreateQueue {dlq_name}"), &e))?
        .queue_url
        .ok_or_else(|| StoreError::Corrupt(format!("CreateQueue {dlq_name}: no QueueUrl")))?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| classify(&format!("GetQueueAttributes {dlq_name}"), &e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| {
            StoreError::Corrupt(format!("GetQueueAttributes {dlq_name}: no QueueArn"))
        })?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receives,
    })
    .to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| classify(&format!("CreateQueue {name}"), &e))?
        .queue_url
        .ok_or_else(|| StoreError::Corrupt(format!("CreateQueue {name}: no QueueUrl")))?;
    Ok((queue_url, dlq_url))
}

/// Creates (or finds: `CreateTopic` is idempotent) the SNS topic `name`; returns its ARN.
pub async fn create_topic(clients: &AwsClients, name: &str) -> Result<String, StoreError> {
    clients
        .sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| classify(&format!("CreateTopic {name}"), &e))?
        .topic_arn
        .ok_or_else(|| StoreError::Corrupt(format!("CreateTopic {name}: no TopicArn")))
}
