//! Notifications on SNS.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use super::classify;
use crate::ports::{Notification, Publisher, StoreError};

/// Publishes to one SNS topic. At-least-once: a retried `Publish` whose first attempt got
/// through delivers twice; consumers deduplicate on the event id in the message.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

#[async_trait]
impl Publisher for SnsPublisher {
    /// `Publish` with `Message` = the JSON body and each attribute as a `String` message
    /// attribute. `InvalidParameter*` (too large, bad attributes) → `Rejected`.
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(&notification.message);
        for (name, value) in &notification.attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError::Rejected(format!("message attribute {name}: {e}")))?;
            request = request.message_attributes(name, attribute);
        }
        request
            .send()
            .await
            .map_err(|e| classify(&format!("Publish (event {})", notification.event_id), &e))?;
        Ok(())
    }
}
