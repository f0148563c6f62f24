//! The projector: keeps the `OrderStatus` view in step with the event log.
//!
//! Idempotent and order-independent: an event is applied only when its version is exactly the
//! view's version + 1. An older or equal version is a duplicate (no-op). A newer one means events
//! were missed or arrived out of order; the projector then folds the order's full history from
//! the log, which also covers everything it skipped.

pub mod lambda;

use std::sync::Arc;

use events_schema::{EventEnvelope, OrderView, Version};
use order_ports::{EventStore, StatusStore, StoreError, Upserted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// The event moved the view one version forward.
    Applied(Version),
    /// The view already had this event.
    Duplicate,
    /// A gap: the view was rebuilt from the log, up to this version.
    Repaired(Version),
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The log or the view holds something that cannot be folded; retrying will not help.
    #[error("cannot project order: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(StoreError),
}

impl ProjectError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ProjectError::Store(e) if e.is_transient())
    }
}

impl From<StoreError> for ProjectError {
    fn from(e: StoreError) -> Self {
        ProjectError::Store(e)
    }
}

#[derive(Clone)]
pub struct Projector {
    events: Arc<dyn EventStore>,
    status: Arc<dyn StatusStore>,
}

impl Projector {
    pub fn new(events: Arc<dyn EventStore>, status: Arc<dyn StatusStore>) -> Self {
        Self { events, status }
    }

    #[tracing::instrument(skip_all, fields(order_id = %event.order_id, version = %event.version))]
    pub async fn project(&self, event: &EventEnvelope) -> Result<Projected, ProjectError> {
        let current = self.status.get(event.order_id).await?;
        let next_view = match &current {
            Some(record) if record.version >= event.version => return Ok(Projected::Duplicate),
            Some(record) if record.version.next() == event.version => OrderView::try_from(record)
                .ok()
                .and_then(|mut view| view.apply(event).ok().map(|()| view)),
            None if event.version == Version::FIRST => OrderView::start(event).ok(),
            _ => None,
        };
        match next_view {
            Some(view) => self.write(&view, Projected::Applied(view.version)).await,
            None => self.repair(event).await,
        }
    }

    async fn repair(&self, event: &EventEnvelope) -> Result<Projected, ProjectError> {
        let history = self.events.load(event.order_id).await?;
        let view = OrderView::fold(&history)
            .map_err(|e| ProjectError::Corrupt(e.to_string()))?
            .ok_or_else(|| {
                ProjectError::Corrupt(format!(
                    "event {} of order {} is not in the log",
                    event.event_id, event.order_id
                ))
            })?;
        tracing::info!(to = %view.version, "view repaired from the log");
        self.write(&view, Projected::Repaired(view.version)).await
    }

    async fn write(&self, view: &OrderView, outcome: Projected) -> Result<Projected, ProjectError> {
        match self.status.upsert(&view.into()).await? {
            Upserted::Written => Ok(outcome),
            // Another projector instance got there first; the view is at least as new.
            Upserted::Stale => Ok(Projected::Duplicate),
        }
    }
}
