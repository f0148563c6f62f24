//! The change-feed port: [`Feed`], an ordered source of events for one consumer with a
//! checkpoint, and the consumer loop that drives an [`EventConsumer`] over it
//! ([`run_subscriber`], one batch at a time with [`catch_up_once`]).
//!
//! This is what runs the projector and the notifier outside Lambda (`orders serve`). Adapters:
//! `SqliteFeed` of the SQLite adapter crate (the SQLite log's global sequence, checkpoints in the
//! same file) and `StreamFeed` of the AWS adapter crate (the event table's DynamoDB stream,
//! feature `stream-feed`, checkpoints saved at every commit in a local SQLite file:
//! `StreamCheckpoints`).
//! Both survive a restart.
//!
//! Whatever the feed, a transient handler error stops the batch at that event, commits
//! everything before it and re-delivers it (and everything after it) on the next poll; a
//! permanent one is logged, counted (`RecordsSetAside`) and skipped, as the stream functions set
//! such a record aside in the stream failure queue on AWS.

use std::future::Future;
use std::time::Duration;

use events_schema::EventEnvelope;
use tokio::sync::watch;

#[cfg(test)]
use crate::ports::ConsumeError;
use crate::ports::{BatchOutcome, EventConsumer, StoreError};

/// Pause after a poll or a commit failed (the backend is unavailable) before trying again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// Resolves when shutdown has been requested (`true` sent on the channel), or when the sender
/// is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One record of a [`Feed`]: where it sits, and the event (or why it cannot be decoded — such a
/// record is skipped and logged, never retried).
pub struct FeedRecord<P> {
    pub position: P,
    pub event: Result<EventEnvelope, String>,
}

/// An ordered source of events for one consumer, with a checkpoint.
///
/// Contract: delivery is **at least once**, each order's events in version order, so the
/// consumer must be idempotent. A record is delivered again until a [`commit`](Feed::commit) at
/// or after its position has succeeded: what was polled but not committed (a failed commit, a
/// transient handler error) comes back. [`commit`](Feed::commit) moves the checkpoint past the
/// records of the batch up to that position; [`retry_from`](Feed::retry_from) rewinds to one
/// record so the next poll starts with it. Whether the checkpoint survives a restart is the
/// adapter's to document (both are durable: SQLite in the log's file, the DynamoDB stream in a
/// local checkpoints file).
///
/// Errors: [`StoreError::Unavailable`] from `poll` or `commit` is transient — nothing is lost,
/// poll again later; the other variants are permanent, as for every port. A record that cannot
/// be decoded is not an error of the feed: it is delivered, with `Err` as its `event`, to be
/// skipped and logged.
pub trait Feed: Send {
    /// Where a record sits in the feed.
    type Position: std::fmt::Display + Send + Sync;

    /// The next records after what was committed (or re-delivered from a [`retry_from`]
    /// position); an empty list when there is nothing new.
    ///
    /// [`retry_from`]: Feed::retry_from
    fn poll(
        &mut self,
    ) -> impl Future<Output = Result<Vec<FeedRecord<Self::Position>>, StoreError>> + Send;

    /// Every record polled up to and including `position` has been handled.
    fn commit(
        &mut self,
        position: &Self::Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record at `position` failed transiently: the next [`poll`](Feed::poll) must deliver
    /// it (and what followed it) again. Called after the records before it were committed.
    fn retry_from(&mut self, position: &Self::Position);

    /// How long to wait after a poll that brought nothing.
    fn idle_pause(&self) -> Duration;

    /// How long a record may take to show up in the feed after it was written: a draining
    /// subscriber ([`run_subscriber_draining`]) stops only once its polls have brought nothing
    /// for this long. Zero (the default): one empty poll means caught up.
    fn settle_time(&self) -> Duration {
        Duration::ZERO
    }
}

/// Follows `feed` until shutdown, handing every event to `consumer` (called `name` in logs).
pub async fn run_subscriber<F: Feed, C: EventConsumer>(
    mut feed: F,
    name: &'static str,
    consumer: C,
    shutdown: watch::Receiver<bool>,
) {
    follow(&mut feed, name, &consumer, shutdown).await;
}

async fn follow<F: Feed, C: EventConsumer>(
    feed: &mut F,
    name: &'static str,
    consumer: &C,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let pause = match catch_up_once(feed, name, consumer).await {
            Ok(0) => feed.idle_pause(),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "subscriber paused");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(&mut shutdown) => {}
        }
    }
}

/// Like [`run_subscriber`], but once shutdown is requested it goes on until it has caught up
/// with everything written so far — its polls brought nothing for the feed's
/// [`settle_time`](Feed::settle_time) — or `deadline` has passed, whichever comes first. For a
/// shutdown that stops the writers first: what they wrote is still handled (a completion
/// notified) before the process exits. The checkpoint is committed after every batch, so there
/// is nothing more to save when it returns.
pub async fn run_subscriber_draining<F: Feed, C: EventConsumer>(
    mut feed: F,
    name: &'static str,
    consumer: C,
    mut shutdown: watch::Receiver<bool>,
    deadline: Duration,
) {
    follow(&mut feed, name, &consumer, shutdown.clone()).await;
    if !*shutdown.borrow_and_update() {
        // The sender is gone without asking for a drain.
        return;
    }
    let until = tokio::time::Instant::now() + deadline;
    let mut quiet_since = tokio::time::Instant::now();
    let mut handled = 0;
    loop {
        let pause = match catch_up_once(&mut feed, name, &consumer).await {
            Ok(0) => {
                if quiet_since.elapsed() >= feed.settle_time() {
                    tracing::info!(consumer = name, handled, "caught up; stopped");
                    return;
                }
                feed.idle_pause()
            }
            Ok(n) => {
                handled += n;
                quiet_since = tokio::time::Instant::now();
                Duration::ZERO
            }
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "subscriber paused while draining");
                quiet_since = tokio::time::Instant::now();
                ERROR_BACKOFF
            }
        };
        if tokio::time::Instant::now() + pause >= until {
            tracing::warn!(
                consumer = name,
                handled,
                ?deadline,
                "stopped before catching up: the rest is handled after the next start"
            );
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

/// Handles one polled batch, as one [`EventConsumer::consume_batch`] call; returns how many
/// records moved the checkpoint on.
pub async fn catch_up_once<F: Feed, C: EventConsumer>(
    feed: &mut F,
    name: &'static str,
    consumer: &C,
) -> Result<usize, StoreError> {
    let batch = feed.poll().await?;
    let len = batch.len();
    let mut positions = Vec::with_capacity(len);
    let mut events = Vec::with_capacity(len);
    // The batch index of each event handed to the consumer.
    let mut at = Vec::with_capacity(len);
    // Every record that is skipped: (batch index, order id, reason).
    let mut skipped: Vec<(usize, Option<String>, String)> = Vec::new();
    for (index, record) in batch.into_iter().enumerate() {
        positions.push(record.position);
        match record.event {
            Ok(event) => {
                events.push(event);
                at.push(index);
            }
            Err(reason) => skipped.push((index, None, format!("undecodable record: {reason}"))),
        }
    }
    let outcome = if events.is_empty() {
        BatchOutcome::default()
    } else {
        consumer.consume_batch(&events).await
    };
    // An index the consumer made up (out of range) stops the batch at its end.
    let batch_index = |i: usize| at.get(i).copied().unwrap_or(len);
    let stop = outcome
        .transient
        .map(|(i, reason)| (batch_index(i).min(len), reason));
    let limit = stop.as_ref().map_or(len, |(i, _)| *i);
    for (i, reason) in outcome.permanent {
        if let Some(event) = events.get(i) {
            skipped.push((batch_index(i), Some(event.order_id.to_string()), reason));
        }
    }
    skipped.sort_by_key(|(index, _, _)| *index);
    let mut set_aside = 0;
    for (index, order_id, reason) in skipped.into_iter().filter(|(i, _, _)| *i < limit) {
        set_aside += 1;
        tracing::error!(consumer = name, position = %positions[index], order_id, reason, "event skipped");
    }
    if set_aside > 0 {
        crate::metrics::record(crate::metrics::Metric::RecordsSetAside(set_aside));
    }
    match stop {
        Some((index, reason)) if index < len => {
            if let Some(done) = index.checked_sub(1) {
                feed.commit(&positions[done]).await?;
            }
            feed.retry_from(&positions[index]);
            Err(StoreError::Unavailable(reason))
        }
        _ => {
            if let Some(last) = positions.last() {
                feed.commit(last).await?;
            }
            Ok(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};

    use super::*;

    /// A feed over a fixed list: positions are indexes, the cursor is the next one to deliver.
    struct ListFeed {
        records: Vec<Result<EventEnvelope, String>>,
        cursor: usize,
        committed: Vec<usize>,
    }

    impl Feed for ListFeed {
        type Position = usize;

        async fn poll(&mut self) -> Result<Vec<FeedRecord<usize>>, StoreError> {
            let batch = (self.cursor..self.records.len())
                .map(|i| FeedRecord {
                    position: i,
                    event: self.records[i].clone(),
                })
                .collect();
            self.cursor = self.records.len();
            Ok(batch)
        }

        async fn commit(&mut self, position: &usize) -> Result<(), StoreError> {
            self.committed.push(*position);
            Ok(())
        }

        fn retry_from(&mut self, position: &usize) {
            self.cursor = *position;
        }

        fn idle_pause(&self) -> Duration {
            Duration::ZERO
        }
    }

    /// Fails the event of version `fail_version` transiently `failures` times.
    struct Flaky {
        fail_version: u32,
        failures: Mutex<u32>,
        seen: Mutex<Vec<u32>>,
    }

    impl EventConsumer for Flaky {
        async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
            let version = event.version.get();
            let mut failures = self
                .failures
                .lock()
                .map_err(|e| ConsumeError::Permanent(e.to_string()))?;
            if version == self.fail_version && *failures > 0 {
                *failures -= 1;
                return Err(ConsumeError::Transient("flaky".to_owned()));
            }
            self.seen
                .lock()
                .map_err(|e| ConsumeError::Permanent(e.to_string()))?
                .push(version);
            Ok(())
        }
    }

    fn event(version: u32) -> EventEnvelope {
        EventEnvelope::new(
            OrderId::new_random(),
            Version::new(version).expect("a version is >= 1"),
            CorrelationId::generate(),
            OrderEvent::OrderProcessingStarted,
        )
    }

    #[tokio::test]
    async fn a_transient_failure_commits_what_came_before_and_redelivers_from_the_failed_event() {
        let mut feed = ListFeed {
            records: vec![
                Ok(event(1)),
                Err("garbage".to_owned()),
                Ok(event(3)),
                Ok(event(4)),
            ],
            cursor: 0,
            committed: Vec::new(),
        };
        let handler = Flaky {
            fail_version: 3,
            failures: Mutex::new(1),
            seen: Mutex::new(Vec::new()),
        };

        let first = catch_up_once(&mut feed, "test", &handler).await;
        assert!(
            matches!(first, Err(StoreError::Unavailable(_))),
            "{first:?}"
        );
        // The undecodable record was skipped (logged), not retried; the checkpoint is just
        // before the failed event, and the feed rewinds to it.
        assert_eq!(feed.committed, [1]);
        assert_eq!(feed.cursor, 2);

        let second = catch_up_once(&mut feed, "test", &handler).await;
        assert_eq!(second, Ok(2));
        assert_eq!(feed.committed, [1, 3]);
        assert_eq!(*handler.seen.lock().unwrap(), [1, 3, 4]);

        assert_eq!(catch_up_once(&mut feed, "test", &handler).await, Ok(0));
    }

    /// Every poll brings one new record, for ever: a writer that never stops.
    struct EndlessFeed {
        next: u32,
    }

    impl Feed for EndlessFeed {
        type Position = u32;

        async fn poll(&mut self) -> Result<Vec<FeedRecord<u32>>, StoreError> {
            self.next += 1;
            Ok(vec![FeedRecord {
                position: self.next,
                event: Ok(event(self.next)),
            }])
        }

        async fn commit(&mut self, _position: &u32) -> Result<(), StoreError> {
            Ok(())
        }

        fn retry_from(&mut self, _position: &u32) {}

        fn idle_pause(&self) -> Duration {
            Duration::from_millis(10)
        }
    }

    #[tokio::test]
    async fn a_draining_subscriber_handles_everything_already_written_before_it_stops() {
        let feed = ListFeed {
            records: (1..=5).map(|v| Ok(event(v))).collect(),
            cursor: 0,
            committed: Vec::new(),
        };
        let handler = Flaky {
            fail_version: 4,
            failures: Mutex::new(1),
            seen: Mutex::new(Vec::new()),
        };
        let handler = Arc::new(handler);
        let consumer = Shared(handler.clone(), Duration::ZERO);
        // Shutdown is requested before the subscriber even starts.
        let (_stop, shutdown) = watch::channel(true);
        tokio::time::timeout(
            Duration::from_secs(5),
            run_subscriber_draining(feed, "test", consumer, shutdown, Duration::from_secs(5)),
        )
        .await
        .expect("a drain ends once caught up");
        assert_eq!(*handler.seen.lock().unwrap(), [1, 2, 3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_draining_subscriber_gives_up_at_its_deadline() {
        let handler = Flaky {
            fail_version: 0,
            failures: Mutex::new(0),
            seen: Mutex::new(Vec::new()),
        };
        let (_stop, shutdown) = watch::channel(true);
        let started = tokio::time::Instant::now();
        let handler = Arc::new(handler);
        let slow = Shared(handler.clone(), Duration::from_millis(100));
        run_subscriber_draining(
            EndlessFeed { next: 0 },
            "test",
            slow,
            shutdown,
            Duration::from_secs(2),
        )
        .await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(!handler.seen.lock().unwrap().is_empty());
    }

    /// A handler the test keeps a handle on, taking the given time per event.
    struct Shared(Arc<Flaky>, Duration);

    impl EventConsumer for Shared {
        async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
            tokio::time::sleep(self.1).await;
            self.0.consume(event).await
        }
    }
}
