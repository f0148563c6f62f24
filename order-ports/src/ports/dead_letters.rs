//! [`DeadLetters`]: the work queue's dead letters (`orders dlq`; no handler uses them).

use async_trait::async_trait;
use events_schema::OrderId;

use super::*;

/// A work message that was received too often and set aside (the local `dead_letters` table,
/// the SQS work DLQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterMessage {
    pub message_id: String,
    /// The raw body: an order id, or whatever was sent.
    pub body: String,
    pub receive_count: u32,
    /// RFC 3339: when it was dead-lettered (locally) or first sent (SQS `SentTimestamp`).
    pub at: String,
}

/// Which dead letters [`DeadLetters::redrive`] sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveFilter {
    All,
    /// Only the messages whose body is this order's id.
    Order(OrderId),
}

/// The dead letters of the work queue: look at them, and send them back to be processed
/// (safe at any time: the processor is idempotent).
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Every dead letter, oldest first where the backend knows the order. Nothing is removed.
    async fn list(&self) -> Result<Vec<DeadLetterMessage>, StoreError>;

    /// Sends the matching dead letters back to the work queue (a fresh receive count) and
    /// removes them from the dead letters; returns the messages redriven. Each message is re-sent before it
    /// is removed, so an interruption can duplicate a message but never lose one.
    async fn redrive(&self, filter: &RedriveFilter) -> Result<Vec<DeadLetterMessage>, StoreError>;
}
