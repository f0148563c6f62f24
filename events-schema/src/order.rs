//! The order aggregate: a pure state machine.
//!
//! ```text
//! RECEIVED ──OrderProcessingStarted──▶ PROCESSING ──OrderCompleted──▶ COMPLETED
//!    │                                     │      └─OrderFailed────▶ FAILED
//!    └──────────OrderCancelled─────────────┴──OrderCancelled──▶ CANCELLED
//! ```
//!
//! [`decide_next`] says which event the processor appends next, [`decide_cancel`] whether a
//! customer's cancellation appends one; [`OrderView::apply`] folds an event in. An event that
//! does not fit (wrong order, gap in versions, illegal transition) is a typed [`FoldError`].
//! The processor and a cancellation race on the same next version: the log's optimistic
//! concurrency lets one append win, and the loser reloads and decides again on the new state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{EventEnvelope, OrderEvent, Version};
use crate::event_type::EventType;
use crate::ids::{CorrelationId, CustomerId, OrderId};
use crate::money::{Currency, MinorUnits};
use crate::validation::ValidOrder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Received,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Received => "RECEIVED",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Failed => "FAILED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Completed | OrderStatus::Failed | OrderStatus::Cancelled
        )
    }
}

/// An event that cannot be folded into the state it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event of order {found} folded into order {expected}")]
    WrongOrder { expected: OrderId, found: OrderId },
    #[error("expected version {expected}, got {found}")]
    VersionGap { expected: Version, found: Version },
    #[error("an order's history must start with OrderReceived at version 1, not {event_type} at version {version}")]
    NotStarted {
        event_type: EventType,
        version: Version,
    },
    #[error("{event_type} is not allowed when the order is {from:?}")]
    IllegalTransition {
        from: OrderStatus,
        event_type: EventType,
    },
}

/// The current state of one order: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub item_count: u32,
    /// The order's value: computed at receipt, replaced by the charged total on completion.
    pub total: MinorUnits,
    pub status: OrderStatus,
    pub version: Version,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
}

impl OrderView {
    /// Starts a view from an order's first event.
    pub fn start(first: &EventEnvelope) -> Result<Self, FoldError> {
        match &first.event {
            OrderEvent::OrderReceived(order) if first.version == Version::FIRST => {
                Ok(Self::received(first, order))
            }
            OrderEvent::OrderReceived(_)
            | OrderEvent::OrderProcessingStarted
            | OrderEvent::OrderCompleted { .. }
            | OrderEvent::OrderFailed { .. }
            | OrderEvent::OrderCancelled { .. } => Err(FoldError::NotStarted {
                event_type: first.event.event_type(),
                version: first.version,
            }),
        }
    }

    fn received(e: &EventEnvelope, order: &ValidOrder) -> Self {
        Self {
            order_id: e.order_id,
            customer_id: order.customer_id.clone(),
            currency: order.currency,
            item_count: order.item_count(),
            total: order.total(),
            status: OrderStatus::Received,
            version: e.version,
            created_at: e.occurred_at,
            updated_at: e.occurred_at,
            completed_at: None,
            failure_reason: None,
        }
    }

    /// Folds the next event in. The event must be this order's, at exactly `version + 1`.
    pub fn apply(&mut self, e: &EventEnvelope) -> Result<(), FoldError> {
        if e.order_id != self.order_id {
            return Err(FoldError::WrongOrder {
                expected: self.order_id,
                found: e.order_id,
            });
        }
        if e.version != self.version.next() {
            return Err(FoldError::VersionGap {
                expected: self.version.next(),
                found: e.version,
            });
        }
        let illegal = || FoldError::IllegalTransition {
            from: self.status,
            event_type: e.event_type(),
        };
        match (&e.event, self.status) {
            (OrderEvent::OrderProcessingStarted, OrderStatus::Received) => {
                self.status = OrderStatus::Processing;
            }
            (OrderEvent::OrderCompleted { total }, OrderStatus::Processing) => {
                self.status = OrderStatus::Completed;
                self.total = *total;
                self.completed_at = Some(e.occurred_at);
            }
            (OrderEvent::OrderFailed { reason }, OrderStatus::Processing) => {
                self.status = OrderStatus::Failed;
                self.failure_reason = Some(reason.clone());
            }
            (
                OrderEvent::OrderCancelled { .. },
                OrderStatus::Received | OrderStatus::Processing,
            ) => {
                self.status = OrderStatus::Cancelled;
            }
            // Every other pair, spelled out so a new event type or status must state its rule.
            (
                OrderEvent::OrderReceived(_),
                OrderStatus::Received
                | OrderStatus::Processing
                | OrderStatus::Completed
                | OrderStatus::Failed
                | OrderStatus::Cancelled,
            )
            | (
                OrderEvent::OrderProcessingStarted,
                OrderStatus::Processing
                | OrderStatus::Completed
                | OrderStatus::Failed
                | OrderStatus::Cancelled,
            )
            | (
                OrderEvent::OrderCompleted { .. } | OrderEvent::OrderFailed { .. },
                OrderStatus::Received
                | OrderStatus::Completed
                | OrderStatus::Failed
                | OrderStatus::Cancelled,
            )
            | (
                OrderEvent::OrderCancelled { .. },
                OrderStatus::Completed | OrderStatus::Failed | OrderStatus::Cancelled,
            ) => return Err(illegal()),
        }
        self.version = e.version;
        self.updated_at = e.occurred_at;
        Ok(())
    }

    /// Folds a whole history (in version order). `Ok(None)` for an empty history.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a EventEnvelope>,
    ) -> Result<Option<Self>, FoldError> {
        let mut events = events.into_iter();
        let Some(first) = events.next() else {
            return Ok(None);
        };
        let mut view = Self::start(first)?;
        for e in events {
            view.apply(e)?;
        }
        Ok(Some(view))
    }

    /// The envelope for `event` as this order's next version.
    pub fn next_envelope(&self, event: OrderEvent, correlation_id: CorrelationId) -> EventEnvelope {
        EventEnvelope::new(self.order_id, self.version.next(), correlation_id, event)
    }
}

/// The business rules the processor applies. A rule that fails is final: `OrderFailed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingPolicy {
    /// Orders above this total (minor units) are refused by the credit check.
    pub credit_limit: MinorUnits,
}

impl Default for ProcessingPolicy {
    fn default() -> Self {
        Self {
            credit_limit: 100_000_000,
        }
    }
}

/// What should happen next to an order, or `None` when it is finished.
pub fn decide_next(view: &OrderView, policy: &ProcessingPolicy) -> Option<OrderEvent> {
    match view.status {
        OrderStatus::Received => Some(OrderEvent::OrderProcessingStarted),
        OrderStatus::Processing if view.total > policy.credit_limit => {
            Some(OrderEvent::OrderFailed {
                reason: format!(
                    "credit check refused: total {} {} exceeds the limit of {}",
                    view.total, view.currency, policy.credit_limit
                ),
            })
        }
        OrderStatus::Processing => Some(OrderEvent::OrderCompleted { total: view.total }),
        // Terminal: a cancellation that won the race leaves the processor nothing to do.
        OrderStatus::Completed | OrderStatus::Failed | OrderStatus::Cancelled => None,
    }
}

/// Why a cancellation is refused: the order already finished another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order is {} and can no longer be cancelled", .status.as_str())]
pub struct NotCancellable {
    pub status: OrderStatus,
}

/// A customer asks to cancel the order: the event to append, `Ok(None)` when the order is
/// already cancelled (asking again changes nothing and is answered as the first time), or
/// [`NotCancellable`] once it completed or failed.
pub fn decide_cancel(
    view: &OrderView,
    reason: Option<String>,
) -> Result<Option<OrderEvent>, NotCancellable> {
    match view.status {
        OrderStatus::Received | OrderStatus::Processing => {
            Ok(Some(OrderEvent::OrderCancelled { reason }))
        }
        OrderStatus::Cancelled => Ok(None),
        OrderStatus::Completed | OrderStatus::Failed => Err(NotCancellable {
            status: view.status,
        }),
    }
}
