//! The processor outside Lambda (`orders serve`): a receive loop over any [`WorkQueue`].

use std::sync::Arc;
use std::time::Duration;

use order_ports::WorkQueue;
use tokio::sync::watch;

use crate::{work_once, Processor};

/// Pause after the queue could not be reached before receiving again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// Receives and processes up to `batch` messages at a time until shutdown is requested on
/// `shutdown`: from then on it receives nothing new, and the messages in flight are finished
/// (acked or failed) before it returns — so a caller that stops the workers before the feeds
/// (`orders serve`) has every resulting event written when this returns. Run several for
/// concurrent receivers.
pub async fn run_worker(
    processor: Processor,
    queue: Arc<dyn WorkQueue>,
    batch: usize,
    visibility: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match work_once(&processor, queue.as_ref(), batch, visibility).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "work queue unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                    _ = order_ports::stopped(&mut shutdown) => {}
                }
            }
        }
    }
}
