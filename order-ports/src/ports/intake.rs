//! Taking orders in (issue 7: no order left behind): [`OrderIntake`], and [`AppendThenEnqueue`]
//! where the log and the queue cannot share a transaction.

use std::time::Duration;

use async_trait::async_trait;
use events_schema::{EventEnvelope, OrderId, Version};

use super::*;

/// Takes an order in: its `OrderReceived` goes into the log and the order onto the work queue,
/// so that an order in the log is always either queued or already processed.
#[async_trait]
pub trait OrderIntake: Send + Sync + 'static {
    /// Appends `received` — version 1 of a new order, an `OrderReceived` (otherwise
    /// [`StoreError::Rejected`]) — and enqueues its order.
    ///
    /// `Ok` means the order is in the log, so accepted: it is queued, or (only where the log and
    /// the queue share no transaction, [`AppendThenEnqueue`]) left to the reconciler because the
    /// queue refused it. Errors: [`AppendError::Conflict`] when the order already has a version
    /// 1; nothing is written then, neither event nor message. [`AppendError::Store`] as in the
    /// module docs: the append did not succeed, so the order is not accepted (with the one
    /// exception of a store that wrote it but whose answer was lost, e.g. a timeout — a retry
    /// with the same `Idempotency-Key` then finds it).
    async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError>;

    /// Enqueues an order that is already in the log once more (an idempotent retry of its
    /// request). A duplicate message is harmless: the processor is idempotent.
    async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError>;
}

/// Checks that `received` is what [`OrderIntake::accept`] takes: version 1, `OrderReceived`.
pub fn check_intake(received: &EventEnvelope) -> Result<(), StoreError> {
    if received.version != Version::FIRST {
        return Err(StoreError::Rejected(format!(
            "an intake takes version 1 of an order, not version {}",
            received.version
        )));
    }
    if !matches!(received.event, events_schema::OrderEvent::OrderReceived(_)) {
        return Err(StoreError::Rejected(format!(
            "an intake takes an OrderReceived, not an {}",
            received.event_type()
        )));
    }
    Ok(())
}

/// [`OrderIntake`] over a log and a queue that cannot share a transaction (DynamoDB and SQS):
/// appends, then sends ([`send_after_append`]: a few brief tries). Not atomic: if every try of
/// the send fails, or the process dies between the two calls, the order is in the log with no
/// work queued. Once the append has succeeded the order is accepted all the same — `accept`
/// returns `Ok`, the API answers `202` — and a send that failed is logged and counted
/// ([`left_to_reconciler`]): the reconciler re-enqueues orders that stayed pending too long (and
/// a client's retry with the same `Idempotency-Key` enqueues again through
/// [`requeue`](OrderIntake::requeue)). So a client never retries an order that was stored, and
/// never makes a second one by doing so. Where one transaction holds both (the SQLite file),
/// use the atomic intake of that backend instead.
#[derive(Clone)]
pub struct AppendThenEnqueue {
    pub events: std::sync::Arc<dyn EventStore>,
    pub queue: std::sync::Arc<dyn WorkQueue>,
}

#[async_trait]
impl OrderIntake for AppendThenEnqueue {
    async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError> {
        check_intake(received)?;
        self.events.append(std::slice::from_ref(received)).await?;
        // Stored: from here on the order is accepted, whatever happens to the send.
        let sent = send_after_append(
            self.queue.as_ref(),
            received.order_id,
            Some(&received.correlation_id),
        )
        .await;
        if let Err(e) = sent {
            left_to_reconciler(received.order_id, &e);
        }
        Ok(())
    }

    async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError> {
        send_after_append(self.queue.as_ref(), order_id, None).await
    }
}

/// The pauses before the second and the third try of [`send_after_append`]: brief, since a
/// client is waiting for its answer (the SDK's own retries of each try come on top). After
/// them the order is left to the reconciler.
pub const SEND_RETRY_PAUSES: [Duration; 2] =
    [Duration::from_millis(50), Duration::from_millis(200)];

/// Sends an order that is already in the log to `queue` (with its correlation id when given):
/// up to three tries, [`SEND_RETRY_PAUSES`] apart, while the error is transient. Returns the
/// last error when no try got through; a permanent one ends the tries at once (retrying
/// cannot help).
pub async fn send_after_append(
    queue: &dyn WorkQueue,
    order_id: OrderId,
    correlation_id: Option<&events_schema::CorrelationId>,
) -> Result<(), StoreError> {
    let mut pauses = SEND_RETRY_PAUSES.iter();
    loop {
        let sent = match correlation_id {
            Some(correlation_id) => queue.send_correlated(order_id, correlation_id).await,
            None => queue.send(order_id).await,
        };
        let error = match sent {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let Some(pause) = pauses.next() else {
            return Err(error);
        };
        tokio::time::sleep(*pause).await;
    }
}

/// A stored order that could not be queued: logged (WARN: the reconciler will send it once it
/// has been pending longer than its threshold) and counted
/// ([`Metric::OrderNotQueued`](crate::metrics::Metric::OrderNotQueued)).
pub fn left_to_reconciler(order_id: OrderId, error: &StoreError) {
    crate::metrics::record(crate::metrics::Metric::OrderNotQueued);
    tracing::warn!(
        orderId = %order_id,
        error = %error,
        "order accepted but not queued; the reconciler will enqueue it"
    );
}
