//! The processor: moves an order from RECEIVED to COMPLETED (or FAILED).
//!
//! Idempotent under redelivery: it folds the order's history and appends only the next step. A
//! version conflict means another worker did that step; it reloads and carries on from there.

pub mod lambda;

use std::sync::Arc;
use std::time::Duration;

use events_schema::{decide_next, FoldError, OrderId, OrderStatus, OrderView, ProcessingPolicy};
use order_ports::{AppendError, Delivery, EventStore, StoreError, WorkQueue};

/// Why a message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Retrying cannot help (a malformed message, an unknown order, an unreadable history).
    /// The message is failed and, after the queue's maximum receives, dead-lettered.
    #[error("poison message: {0}")]
    Poison(String),
    /// A transient fault: the message comes back later.
    #[error(transparent)]
    Transient(StoreError),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ProcessError::Transient(e)
        } else {
            ProcessError::Poison(e.to_string())
        }
    }
}

impl From<FoldError> for ProcessError {
    fn from(e: FoldError) -> Self {
        ProcessError::Poison(format!("history does not fold: {e}"))
    }
}

/// How many times one message may lose the append race before it is handed back to the queue.
const MAX_CONFLICTS: usize = 8;

#[derive(Clone)]
pub struct Processor {
    events: Arc<dyn EventStore>,
    policy: ProcessingPolicy,
}

impl Processor {
    pub fn new(events: Arc<dyn EventStore>, policy: ProcessingPolicy) -> Self {
        Self { events, policy }
    }

    /// Processes one work message (its body is an order id) to a terminal status.
    #[tracing::instrument(skip(self), fields(order_id = body))]
    pub async fn process(&self, body: &str) -> Result<OrderStatus, ProcessError> {
        let order_id = OrderId::parse(body.trim())
            .map_err(|_| ProcessError::Poison(format!("{body:?} is not an order id")))?;
        let mut conflicts = 0;
        loop {
            let history = self.events.load(order_id).await?;
            let (Some(mut view), Some(last)) = (OrderView::fold(&history)?, history.last()) else {
                return Err(ProcessError::Poison(format!(
                    "order {order_id} does not exist"
                )));
            };
            let correlation_id = last.correlation_id.clone();
            loop {
                let Some(event) = decide_next(&view, &self.policy) else {
                    return Ok(view.status);
                };
                let next = view.next_envelope(event, correlation_id.clone());
                match self.events.append(std::slice::from_ref(&next)).await {
                    Ok(()) => {
                        view.apply(&next)?;
                        tracing::debug!(version = %next.version, event = next.event_type(), "appended");
                    }
                    // Someone else appended this step: reload and decide again.
                    Err(AppendError::Conflict { .. }) => break,
                    Err(AppendError::Store(e)) => return Err(e.into()),
                }
            }
            conflicts += 1;
            if conflicts >= MAX_CONFLICTS {
                return Err(ProcessError::Transient(StoreError::Unavailable(format!(
                    "order {order_id}: lost the append race {conflicts} times"
                ))));
            }
        }
    }
}

/// One round of a queue worker: receive up to `max` messages, process them concurrently, ack
/// the done ones and fail the others. Returns how many messages were received.
pub async fn work_once(
    processor: &Processor,
    queue: &dyn WorkQueue,
    max: usize,
    visibility: Duration,
) -> Result<usize, StoreError> {
    let deliveries = queue.receive(max, visibility).await?;
    let outcomes = futures::future::join_all(
        deliveries
            .iter()
            .map(|d| async move { (d, processor.process(&d.body).await) }),
    )
    .await;
    for (delivery, outcome) in outcomes {
        settle(queue, delivery, outcome).await?;
    }
    Ok(deliveries.len())
}

async fn settle(
    queue: &dyn WorkQueue,
    delivery: &Delivery,
    outcome: Result<OrderStatus, ProcessError>,
) -> Result<(), StoreError> {
    match outcome {
        Ok(_) => queue.ack(delivery).await,
        Err(e) => {
            tracing::warn!(message_id = %delivery.message_id, receive_count = delivery.receive_count, error = %e, "message failed");
            queue.fail(delivery).await
        }
    }
}
