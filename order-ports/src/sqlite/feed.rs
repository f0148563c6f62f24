//! [`Feed`] on the SQLite log's global sequence: the local stand-in for the DynamoDB stream.

use std::time::Duration;

use super::{SqliteDb, SqliteEventStore};
use crate::feed::{Feed, FeedRecord};
use crate::ports::StoreError;

/// Events read per poll.
const FEED_BATCH: usize = 256;
/// Pause after a poll that found nothing new.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// The log's global sequence, with `consumer`'s durable checkpoint in the same file, so after a
/// crash a consumer resumes where it stopped. The checkpoint is saved after its batch is handled:
/// a crash in between replays that batch, which an idempotent consumer (the projector's version
/// guard, the publisher's dedup on `eventId`) makes harmless. Built by [`SqliteDb::feed`].
pub struct SqliteFeed {
    pub(super) db: SqliteDb,
    pub(super) events: SqliteEventStore,
    pub(super) consumer: &'static str,
}

impl Feed for SqliteFeed {
    type Position = u64;

    async fn poll(&mut self) -> Result<Vec<FeedRecord<u64>>, StoreError> {
        let from = self.db.checkpoint(self.consumer).await?;
        let batch = self.events.read_feed(from, FEED_BATCH).await?;
        Ok(batch
            .into_iter()
            .map(|(position, event)| FeedRecord {
                position,
                event: Ok(event),
            })
            .collect())
    }

    async fn commit(&mut self, position: &u64) -> Result<(), StoreError> {
        self.db.save_checkpoint(self.consumer, *position).await
    }

    /// Nothing to do: every poll starts from the saved checkpoint, which is just before it.
    fn retry_from(&mut self, _position: &u64) {}

    fn idle_pause(&self) -> Duration {
        IDLE_POLL
    }
}
