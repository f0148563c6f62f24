//! [`Publisher`]: notifications for subscribers (SNS, or the local notifications table).

use std::collections::BTreeMap;

use async_trait::async_trait;
use events_schema::EventId;

use super::*;

/// A message for subscribers (SNS, or the local notifications table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The event this notification announces; consumers deduplicate on it.
    pub event_id: EventId,
    /// The JSON body.
    pub message: String,
    /// Message attributes for subscription filters (`eventType`, `customerId`, `orderId`).
    pub attributes: BTreeMap<String, String>,
}

/// Publishes notifications, at least once.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one notification. Errors: `Unavailable` as usual; `Rejected` if the backend
    /// refuses the message (too large, bad attributes).
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError>;

    /// Publishes `notifications`, in order, as [`publish`](Self::publish) would one by one, in
    /// fewer calls (SNS: `PublishBatch` of up to 10 entries; SQLite: one write job).
    ///
    /// Errors: a [`PublishBatchError`] naming the first notification that may not have been
    /// published, with why (as for `publish`). Every notification before it was published;
    /// it and those after it may or may not have been (a batch call can succeed for entries
    /// after a failed one), so a caller that retries from it may publish some twice — which
    /// at-least-once delivery allows. An empty batch is refused (`Rejected`, index 0), as SNS
    /// refuses an empty `PublishBatch` (`EmptyBatchRequest`,
    /// <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>): every adapter checks
    /// it with [`check_publish_batch`]. The default publishes one after another and stops at the
    /// first error.
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        check_publish_batch(notifications)?;
        for (index, notification) in notifications.iter().enumerate() {
            self.publish(notification)
                .await
                .map_err(|error| PublishBatchError { index, error })?;
        }
        Ok(())
    }
}

/// Refuses an empty batch, as SNS does (`EmptyBatchRequest`): a caller that publishes nothing
/// has a bug, which the test doubles must show rather than hide.
pub fn check_publish_batch(notifications: &[Notification]) -> Result<(), PublishBatchError> {
    if notifications.is_empty() {
        return Err(PublishBatchError {
            index: 0,
            error: StoreError::Rejected("publish of an empty batch (EmptyBatchRequest)".into()),
        });
    }
    Ok(())
}

/// Why [`Publisher::publish_batch`] stopped: the index (in the batch) of the first
/// notification that may not have been published, and the error it met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification {index} of the batch: {error}")]
pub struct PublishBatchError {
    pub index: usize,
    pub error: StoreError,
}
