//! [`WorkQueue`]: the work queue from ingest to the processor.

use std::time::Duration;

use async_trait::async_trait;
use events_schema::OrderId;

use super::*;

/// A message handed out by [`WorkQueue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across redeliveries of the same message.
    pub message_id: String,
    /// Proof of this particular receipt, for `ack` / `fail`.
    pub receipt: String,
    /// The raw body: an order id, or garbage (the processor must cope).
    pub body: String,
    /// How many times this message has been received, this receipt included (1 the first time).
    pub receive_count: u32,
}

/// The work queue from ingest to the processor: at-least-once, with dead letters.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues work for one order. Errors: `Unavailable` as usual.
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError>;

    /// [`send`](Self::send), with the correlation id of the request that placed the order for a
    /// queue that can carry it beside the body (SQS: the message attribute `correlationId`, seen
    /// in the DLQ and by operators). Queues without attributes just send.
    async fn send_correlated(
        &self,
        order_id: OrderId,
        correlation_id: &events_schema::CorrelationId,
    ) -> Result<(), StoreError> {
        let _ = correlation_id;
        self.send(order_id).await
    }

    /// Up to `max` messages, each hidden from other receivers for `visibility`. Waits briefly
    /// (up to about a second locally, long polling on SQS) when the queue is empty, then returns
    /// an empty list. Messages that were received too often are moved to the dead letters
    /// instead of being delivered again.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError>;

    /// Done: deletes the message. Acking a stale receipt (the message has since been
    /// redelivered or deleted) is not an error.
    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError>;

    /// [`ack`](Self::ack) of several deliveries in fewer calls (SQLite: one write job; SQS:
    /// `DeleteMessageBatch`, 10 receipts a call). Stale receipts are not errors, as for `ack`.
    ///
    /// Errors: `Unavailable` as usual, when some of the messages may not have been deleted;
    /// which ones is not said. Retrying the whole call is safe (a second ack of a deleted
    /// message is a stale ack); a message left in the queue comes back after its visibility
    /// timeout, which the processor copes with (it is idempotent). The default acks one after
    /// another and stops at the first error.
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }

    /// Not done: the message stays hidden for [`retry_delay`]`(delivery.receive_count)` (the
    /// adapters' default; tests may configure another schedule), then is delivered again — or
    /// dead-lettered once its receive count has reached the maximum. Failing a stale receipt
    /// is not an error.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError>;
}
