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

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::ProcessingPolicy;
    use order_adapters_sqlite::test_util::TempSqlite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_processes_what_is_queued_and_returns_once_shutdown_is_requested() {
        let db = TempSqlite::new();
        let received = db.append_received_order(2, 100).await;
        let queue: Arc<dyn WorkQueue> = Arc::new(db.db().work_queue_default());
        queue.send(received.order_id).await.expect("enqueue");
        let processor = Processor::new(db.events(), ProcessingPolicy::default());
        let (stop, shutdown) = watch::channel(false);
        let worker = tokio::spawn(run_worker(
            processor,
            Arc::clone(&queue),
            10,
            Duration::from_secs(30),
            shutdown,
        ));

        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let history = db.events().load(received.order_id).await.expect("load");
            if history.len() == 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not finish the order: {} events",
                history.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).expect("the worker listens");
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("the worker returns after shutdown")
            .expect("the worker did not panic");
    }
}
