//! The background workers of `orders serve`: they drive the same handler libs as the Lambdas.
//!
//! * the processor drains the work queue (several concurrent receivers);
//! * the projector and the notifier are catch-up subscribers on the log's global sequence, each
//!   with its own checkpoint, so after a crash they resume where they stopped. A checkpoint is
//!   saved after its batch is handled: a crash in between replays that batch, which the
//!   projector's version guard and the publisher's dedup on `eventId` make harmless.

use std::time::Duration;

use events_schema::EventEnvelope;
use order_ports::sqlite::{SqliteDb, SqliteEventStore};
use order_ports::{StoreError, WorkQueue};
use processor::Processor;
use tokio::sync::watch;

pub const PROJECTOR: &str = "projector";
pub const NOTIFIER: &str = "notifier";

const FEED_BATCH: usize = 256;
const IDLE_POLL: Duration = Duration::from_millis(10);
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// Resolves when shutdown has been requested.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Receives and processes work until shutdown. In-flight messages finish first.
pub async fn run_processor(
    processor: Processor,
    queue: std::sync::Arc<dyn WorkQueue>,
    batch: usize,
    visibility: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match processor::work_once(&processor, queue.as_ref(), batch, visibility).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "work queue unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                    _ = stopped(&mut shutdown) => {}
                }
            }
        }
    }
}

/// Something that consumes the change feed, one event at a time.
pub trait FeedHandler: Send + Sync {
    /// `Ok` when the event is handled (or deliberately skipped), `Err(transient)` to retry it.
    fn handle(
        &self,
        event: &EventEnvelope,
    ) -> impl std::future::Future<Output = Result<(), HandleError>> + Send;
}

pub enum HandleError {
    /// Retry the batch from this event after a pause.
    Retry(String),
    /// Give up on this event (logged), like a stream's on-failure destination.
    Skip(String),
}

/// Follows the log from `consumer`'s checkpoint until shutdown.
pub async fn run_subscriber<H: FeedHandler>(
    db: SqliteDb,
    events: SqliteEventStore,
    consumer: &'static str,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let pause = match catch_up_once(&db, &events, consumer, &handler).await {
            Ok(0) => IDLE_POLL,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(consumer, error = %e, "subscriber paused");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(&mut shutdown) => {}
        }
    }
}

/// Handles one batch after the checkpoint; returns how many events moved the checkpoint on.
pub async fn catch_up_once<H: FeedHandler>(
    db: &SqliteDb,
    events: &SqliteEventStore,
    consumer: &'static str,
    handler: &H,
) -> Result<usize, StoreError> {
    let from = db.checkpoint(consumer).await?;
    let batch = events.read_feed(from, FEED_BATCH).await?;
    let mut done = from;
    let mut handled = 0;
    for (seq, event) in &batch {
        match handler.handle(event).await {
            Ok(()) => {}
            Err(HandleError::Skip(reason)) => {
                tracing::error!(consumer, seq, order_id = %event.order_id, reason, "event skipped");
            }
            Err(HandleError::Retry(reason)) => {
                if done > from {
                    db.save_checkpoint(consumer, done).await?;
                }
                return Err(StoreError::Unavailable(reason));
            }
        }
        done = *seq;
        handled += 1;
    }
    if done > from {
        db.save_checkpoint(consumer, done).await?;
    }
    Ok(handled)
}

impl FeedHandler for projector::Projector {
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandleError> {
        match self.project(event).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => Err(HandleError::Retry(e.to_string())),
            Err(e) => Err(HandleError::Skip(e.to_string())),
        }
    }
}

impl FeedHandler for notifier::Notifier {
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandleError> {
        match self.notify(event).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => Err(HandleError::Retry(e.to_string())),
            Err(e) => Err(HandleError::Skip(e.to_string())),
        }
    }
}
