//! Notifications on SNS.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;

use super::classify;
use order_ports::{Notification, PublishBatchError, Publisher, StoreError};

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

/// SNS's limit of entries in one `PublishBatch`.
const SNS_BATCH: usize = 10;

/// Each attribute of `notification` as a `String` message attribute.
fn message_attributes(
    notification: &Notification,
) -> Result<HashMap<String, MessageAttributeValue>, StoreError> {
    notification
        .attributes
        .iter()
        .map(|(name, value)| {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError::Rejected(format!("message attribute {name}: {e}")))?;
            Ok((name.clone(), attribute))
        })
        .collect()
}

#[async_trait]
impl Publisher for SnsPublisher {
    /// `Publish` with `Message` = the JSON body and each attribute as a `String` message
    /// attribute. `InvalidParameter*` (too large, bad attributes) → `Rejected`.
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(&notification.message)
            .set_message_attributes(Some(message_attributes(notification)?))
            .send()
            .await
            .map_err(|e| classify(&format!("Publish (event {})", notification.event_id), &e))?;
        Ok(())
    }

    /// `PublishBatch` of 1 to 10 entries a call (entry id = index in the chunk; SNS refuses an
    /// empty call and one of more than 10,
    /// <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>), the chunks one after
    /// another: nothing is sent after a chunk with a failed entry. A failed entry is `Rejected`
    /// when SNS blames the sender, else `Unavailable`; the error names the lowest failed index.
    /// An entry that cannot be built is `Rejected` at its own index, after the entries before it
    /// in its chunk were published (the contract: everything before the index is published).
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        order_ports::check_publish_batch(notifications)?;
        for (chunk_index, chunk) in notifications.chunks(SNS_BATCH).enumerate() {
            let start = chunk_index * SNS_BATCH;
            let at = |offset: usize, error: StoreError| PublishBatchError {
                index: start + offset,
                error,
            };
            let (entries, unbuildable) = entries_until_unbuildable(chunk, entry);
            if entries.is_empty() {
                if let Some((offset, error)) = unbuildable {
                    return Err(at(offset, error));
                }
                continue;
            }
            let out = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(|e| at(0, classify("PublishBatch", &e)))?;
            let first_failed = out
                .failed()
                .iter()
                .map(|f| (f.id().parse::<usize>().unwrap_or(0), f))
                .min_by_key(|(offset, _)| *offset);
            if let Some((offset, failed)) = first_failed {
                let why = format!(
                    "PublishBatch (event {}): {} {}",
                    chunk
                        .get(offset)
                        .map_or_else(String::new, |n| n.event_id.to_string()),
                    failed.code(),
                    failed.message().unwrap_or_default()
                );
                let error = if failed.sender_fault() {
                    StoreError::Rejected(why)
                } else {
                    StoreError::Unavailable(why)
                };
                return Err(at(offset, error));
            }
            if let Some((offset, error)) = unbuildable {
                return Err(at(offset, error));
            }
        }
        Ok(())
    }
}

/// The `PublishBatch` entry of `notification`, the `offset`-th of its chunk.
fn entry(
    offset: usize,
    notification: &Notification,
) -> Result<PublishBatchRequestEntry, StoreError> {
    PublishBatchRequestEntry::builder()
        .id(offset.to_string())
        .message(&notification.message)
        .set_message_attributes(Some(message_attributes(notification)?))
        .build()
        .map_err(|e| StoreError::Rejected(format!("PublishBatch entry: {e}")))
}

/// The entries of `chunk` up to the first that `build` cannot make, and that one's offset and
/// error: what can be published before it is.
fn entries_until_unbuildable<E>(
    chunk: &[Notification],
    mut build: impl FnMut(usize, &Notification) -> Result<E, StoreError>,
) -> (Vec<E>, Option<(usize, StoreError)>) {
    let mut entries = Vec::with_capacity(chunk.len());
    for (offset, notification) in chunk.iter().enumerate() {
        match build(offset, notification) {
            Ok(entry) => entries.push(entry),
            Err(error) => return (entries, Some((offset, error))),
        }
    }
    (entries, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifications(n: usize) -> Vec<Notification> {
        (0..n)
            .map(|i| Notification {
                event_id: events_schema::EventId::new(),
                message: format!("m{i}"),
                attributes: std::collections::BTreeMap::new(),
            })
            .collect()
    }

    #[test]
    fn the_entries_before_one_that_cannot_be_built_are_kept_and_its_own_offset_is_named() {
        let chunk = notifications(5);
        let (entries, unbuildable) = entries_until_unbuildable(&chunk, |offset, n| {
            if offset == 3 {
                Err(StoreError::Rejected("bad attribute".into()))
            } else {
                Ok(n.message.clone())
            }
        });
        assert_eq!(entries, ["m0", "m1", "m2"]);
        assert_eq!(
            unbuildable,
            Some((3, StoreError::Rejected("bad attribute".into())))
        );
    }

    #[test]
    fn a_chunk_whose_entries_all_build_is_kept_whole() {
        let chunk = notifications(10);
        let (entries, unbuildable) = entries_until_unbuildable(&chunk, entry);
        assert_eq!(entries.len(), 10);
        assert_eq!(unbuildable, None);
        let ids: Vec<&str> = entries.iter().map(|e| e.id()).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    }
}
