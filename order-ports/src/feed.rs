//! The change-feed port: [`Feed`], an ordered source of events for one consumer with a
//! checkpoint, and the consumer loop that drives an [`EventConsumer`] over it
//! ([`run_subscriber_draining`], one batch at a time with [`catch_up_once`]).
//!
//! This is what runs the projector and the notifier outside Lambda (`orders serve`). Adapters:
//! `SqliteFeed` of the SQLite adapter crate (the SQLite log's global sequence, checkpoints in the
//! same file) and `StreamFeed` of the AWS adapter crate (the event table's DynamoDB stream,
//! feature `stream-feed`, checkpoints saved at every commit in a local SQLite file:
//! `StreamCheckpoints`).
//! Both survive a restart.
//!
//! Whatever the feed, a transient handler error stops the batch at that event, commits
//! everything before it and re-delivers it (and everything after it) on the next poll. A record
//! that can never be handled (undecodable, or failed permanently) is set aside where the feed
//! says ([`Feed::set_aside_to`]: the stream failure queue for the DynamoDB stream of `orders
//! serve --backend aws`, with the same code and message as the stream Lambdas) and the batch goes
//! on; a feed that names no destination logs and counts it (`RecordsSetAside`), SQLite recording
//! undecodable rows in `failed_events` itself.

use std::future::Future;
use std::time::Duration;

use events_schema::EventEnvelope;
use tokio::sync::watch;

use crate::poison::{self, PoisonSink, RecordRef};
#[cfg(test)]
use crate::ports::ConsumeError;
use crate::ports::{BatchOutcome, EventConsumer, SetAside, StoreError};

/// Pause after a poll or a commit failed (the backend is unavailable) before trying again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// Resolves when shutdown has been requested (`true` sent on the channel), or when the sender
/// is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One record of a [`Feed`]: where it sits, and the event (or why it cannot be decoded — such a
/// record is set aside ([`Feed::set_aside_to`]) or skipped and logged, never retried).
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
/// set aside ([`Feed::set_aside_to`]) or skipped and logged.
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

    /// Where the record at `position` is set aside if its consumer can never handle it (it does
    /// not decode, or the consumer fails it permanently), and how it is named there: its
    /// sequence number and stream, and — for a record that does not decode — its table keys as
    /// far as they are readable. [`catch_up_once`] sends it there ([`poison::set_aside`], as the
    /// stream Lambdas do) before the checkpoint moves past it.
    ///
    /// `None` (the default): such a record is only logged (ERROR) and counted. A feed that keeps
    /// them itself does so in [`commit`](Feed::commit) (SQLite: undecodable rows go to
    /// `failed_events` in the checkpoint's transaction).
    fn set_aside_to(&self, _position: &Self::Position) -> Option<(&dyn SetAside, RecordRef)> {
        None
    }

    /// How long a record may take to show up in the feed after it was written: a draining
    /// subscriber ([`run_subscriber_draining`]) stops only once its polls have brought nothing
    /// for this long. Zero (the default): one empty poll means caught up.
    fn settle_time(&self) -> Duration {
        Duration::ZERO
    }
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

/// Follows `feed`, handing every event to `consumer` (called `name` in logs); once shutdown is
/// requested it goes on until it has caught up
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
///
/// A record that can never be handled — it does not decode, or the consumer fails it
/// permanently — is set aside where the feed says ([`Feed::set_aside_to`]; the stream failure
/// queue on `--backend aws`), through the same code as the stream Lambdas
/// ([`poison::set_aside`]), and the batch goes on; a feed that names no destination logs it
/// (ERROR) and counts it (`RecordsSetAside`). As in the Lambdas, the undecodable records are set
/// aside first, and if one cannot be, the consumer is handed only the events before it; a
/// record that cannot be set aside is treated as a transient failure: the checkpoint stops just
/// before it and the next poll delivers it again.
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
    // Every record that does not decode: (batch index, how many events come before it, reason).
    let mut undecodable: Vec<(usize, usize, String)> = Vec::new();
    for (index, record) in batch.into_iter().enumerate() {
        positions.push(record.position);
        match record.event {
            Ok(event) => {
                events.push(event);
                at.push(index);
            }
            Err(reason) => {
                undecodable.push((index, events.len(), format!("undecodable record: {reason}")));
            }
        }
    }
    // Where the batch stops (a batch index, delivered again by the next poll), and why.
    let mut stop: Option<(usize, String)> = None;
    // Only the events before a record that could not be set aside go to the consumer.
    let mut handed = events.len();
    for (index, before, reason) in undecodable {
        let target = feed.set_aside_to(&positions[index]);
        if let Err(e) = put_aside(target, name, &positions[index], None, &reason).await {
            stop = Some((index, format!("{reason}; setting it aside failed: {e}")));
            handed = before;
            break;
        }
    }
    let end = stop.as_ref().map_or(len, |(index, _)| *index);
    let outcome = if handed == 0 {
        BatchOutcome::default()
    } else {
        consumer.consume_batch(&events[..handed]).await
    };
    // An index the consumer made up (out of range) stands for the end of what it was handed.
    let batch_index = |i: usize| if i < handed { at[i] } else { end };
    if let Some((i, reason)) = outcome.transient {
        let index = batch_index(i);
        if index < end {
            stop = Some((index, reason));
        }
    }
    let mut permanent = outcome.permanent;
    permanent.sort_by_key(|(i, _)| *i);
    for (i, reason) in permanent {
        let index = batch_index(i);
        let limit = stop.as_ref().map_or(len, |(index, _)| *index);
        let Some(event) = events[..handed].get(i).filter(|_| index < limit) else {
            continue;
        };
        let target = feed.set_aside_to(&positions[index]);
        if let Err(e) = put_aside(target, name, &positions[index], Some(event), &reason).await {
            stop = Some((index, format!("{reason}; setting it aside failed: {e}")));
            break;
        }
    }
    // A stop is always inside the batch: a record that could not be set aside, or a transient
    // failure before it (an index the consumer made up stands for the end, and stops nothing).
    match stop {
        Some((index, reason)) => {
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

/// Sets one record aside through the feed's destination (`target`), or, when it names none,
/// logs and counts it.
async fn put_aside(
    target: Option<(&dyn SetAside, RecordRef)>,
    name: &'static str,
    position: &(dyn std::fmt::Display + Sync),
    event: Option<&EventEnvelope>,
    reason: &str,
) -> Result<(), StoreError> {
    match target {
        Some((set_aside, record)) => {
            let sink = PoisonSink {
                consumer: name,
                set_aside,
            };
            poison::set_aside(sink, record, event, reason).await
        }
        None => {
            let order_id = event.map(|e| e.order_id.to_string());
            tracing::error!(consumer = name, %position, order_id, reason, "event skipped");
            crate::metrics::record(crate::metrics::Metric::RecordsSetAside(1));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};

    use super::*;
    use crate::test_set_aside::SetAsideLog;

    /// A feed over a fixed list: positions are indexes, the cursor is the next one to deliver.
    /// With `set_aside`, records are set aside there, named by their index.
    #[derive(Default)]
    struct ListFeed {
        records: Vec<Result<EventEnvelope, String>>,
        cursor: usize,
        committed: Vec<usize>,
        set_aside: Option<SetAsideLog>,
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

        fn set_aside_to(&self, position: &usize) -> Option<(&dyn SetAside, RecordRef)> {
            let to = self.set_aside.as_ref()?;
            let record = RecordRef {
                sequence_number: Some(position.to_string()),
                ..RecordRef::default()
            };
            Some((to, record))
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
            ..ListFeed::default()
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

    /// Fails the events of version `permanent` permanently; records every version it sees.
    #[derive(Default)]
    struct Refuses {
        permanent: u32,
        seen: Mutex<Vec<u32>>,
    }

    impl EventConsumer for Refuses {
        async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
            let version = event.version.get();
            self.seen.lock().expect("lock").push(version);
            if version == self.permanent {
                return Err(ConsumeError::Permanent("never".to_owned()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_that_do_not_decode_or_fail_for_good_are_set_aside_where_the_feed_says_and_the_batch_goes_on(
    ) {
        let refused = event(3);
        let mut feed = ListFeed {
            records: vec![
                Ok(event(1)),
                Err("unknown event type \"OrderTeleported\"".to_owned()),
                Ok(refused.clone()),
                Ok(event(4)),
            ],
            set_aside: Some(SetAsideLog::default()),
            ..ListFeed::default()
        };
        let consumer = Refuses {
            permanent: 3,
            ..Refuses::default()
        };
        assert_eq!(
            catch_up_once(&mut feed, "projector", &consumer).await,
            Ok(4)
        );
        assert_eq!(feed.committed, [3]);
        assert_eq!(*consumer.seen.lock().unwrap(), [1, 3, 4]);
        let set_aside = feed.set_aside.as_ref().expect("a log").records();
        let named: Vec<_> = set_aside
            .iter()
            .map(|r| {
                (
                    r.set_aside_by.as_str(),
                    r.sequence_number.as_deref(),
                    r.event_id.clone(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("projector", Some("1"), None),
                ("projector", Some("2"), Some(refused.event_id.to_string())),
            ]
        );
        assert!(
            set_aside[0].reason.contains("OrderTeleported"),
            "{}",
            set_aside[0].reason
        );
        assert_eq!(set_aside[1].reason, "never");
        assert_eq!(set_aside[1].version, Some(3));
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_set_aside_stops_the_batch_there_and_comes_again() {
        let mut feed = ListFeed {
            records: vec![Ok(event(1)), Err("garbage".to_owned()), Ok(event(3))],
            set_aside: Some(SetAsideLog::failing()),
            ..ListFeed::default()
        };
        let consumer = Refuses::default();
        let first = catch_up_once(&mut feed, "projector", &consumer).await;
        assert!(
            matches!(&first, Err(StoreError::Unavailable(reason)) if reason.contains("setting it aside failed")),
            "{first:?}"
        );
        // Only what came before it was handed to the consumer and committed; it comes again.
        assert_eq!(*consumer.seen.lock().unwrap(), [1]);
        assert_eq!(feed.committed, [0]);
        assert_eq!(feed.cursor, 1);

        // Once the queue takes it, the rest goes on.
        feed.set_aside = Some(SetAsideLog::default());
        assert_eq!(
            catch_up_once(&mut feed, "projector", &consumer).await,
            Ok(2)
        );
        assert_eq!(*consumer.seen.lock().unwrap(), [1, 3]);
        assert_eq!(feed.committed, [0, 2]);
        let set_aside = feed.set_aside.as_ref().expect("a log").records();
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].sequence_number.as_deref(), Some("1"));
    }

    /// Answers every batch with what it is told, whatever the events: a consumer that breaks
    /// the contract (an index it was not handed, a permanent failure at its transient one).
    struct Answers(BatchOutcome);

    impl EventConsumer for Answers {
        async fn consume(&self, _event: &EventEnvelope) -> Result<(), ConsumeError> {
            Ok(())
        }

        async fn consume_batch(&self, _events: &[EventEnvelope]) -> BatchOutcome {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn an_index_the_consumer_made_up_stops_nothing_beyond_what_it_was_handed() {
        // One past the two events it was handed: nothing to redeliver.
        let mut feed = ListFeed {
            records: vec![Ok(event(1)), Ok(event(2))],
            ..ListFeed::default()
        };
        let made_up = Answers(BatchOutcome {
            permanent: Vec::new(),
            transient: Some((2, "made up".to_owned())),
        });
        assert_eq!(catch_up_once(&mut feed, "test", &made_up).await, Ok(2));
        assert_eq!(feed.committed, [1]);

        // Handed only the event before a record that could not be set aside: that record is
        // where the batch stops, and why.
        let mut feed = ListFeed {
            records: vec![Ok(event(1)), Err("garbage".to_owned()), Ok(event(3))],
            set_aside: Some(SetAsideLog::failing()),
            ..ListFeed::default()
        };
        let made_up = Answers(BatchOutcome {
            permanent: Vec::new(),
            transient: Some((1, "made up".to_owned())),
        });
        let stopped = catch_up_once(&mut feed, "test", &made_up).await;
        assert!(
            matches!(&stopped, Err(StoreError::Unavailable(reason)) if reason.contains("setting it aside failed")),
            "{stopped:?}"
        );
        assert_eq!(feed.committed, [0]);
        assert_eq!(feed.cursor, 1);
    }

    #[tokio::test]
    async fn a_permanent_failure_reported_at_or_after_the_transient_one_is_not_set_aside() {
        let mut feed = ListFeed {
            records: vec![Ok(event(1)), Ok(event(2)), Ok(event(3))],
            set_aside: Some(SetAsideLog::default()),
            ..ListFeed::default()
        };
        let breaks_contract = Answers(BatchOutcome {
            permanent: vec![(0, "never".to_owned()), (1, "never".to_owned())],
            transient: Some((1, "down".to_owned())),
        });
        let stopped = catch_up_once(&mut feed, "test", &breaks_contract).await;
        assert_eq!(stopped, Err(StoreError::Unavailable("down".to_owned())));
        assert_eq!(feed.committed, [0]);
        assert_eq!(feed.cursor, 1, "the transient one comes again");
        let set_aside: Vec<_> = feed
            .set_aside
            .as_ref()
            .expect("a log")
            .records()
            .into_iter()
            .filter_map(|r| r.sequence_number)
            .collect();
        assert_eq!(
            set_aside,
            ["0"],
            "only the one before the transient failure"
        );
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
            ..ListFeed::default()
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
