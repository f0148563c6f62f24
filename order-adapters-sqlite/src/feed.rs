//! [`Feed`] on the SQLite log's global sequence: the local stand-in for the DynamoDB stream.
//!
//! # Records that cannot be decoded
//!
//! A row of `events` this build cannot decode (an unknown event type or schema version written
//! by a newer binary, a damaged payload) is delivered as a [`FeedRecord`] with `Err` as its
//! event, so the consumer loop skips it and goes on, and it is recorded in the
//! `failed_events` table (consumer, `seq`, event and order id as stored, reason, when) in the
//! same transaction as the checkpoint that moves past it. `orders verify` lists that table.
//! Nothing is lost: the row stays in the log, and a newer binary can rebuild the view from it
//! (`orders rebuild`).
//!
//! On AWS the same record reaches the projector or notifier Lambda through the stream mapping:
//! the handler sets it aside itself in the stream failure queue (`StreamFailureQueue`), with its
//! keys, sequence number and reason, and goes on with the batch
//! (`order_lambda::handle_stream_batch`, ADR 7); `orders serve --backend aws` does the same
//! through its stream feed ([`Feed::set_aside_to`], `order_ports::poison::set_aside`). This feed
//! names no such destination: it keeps the record here. `orders verify` and `orders dlq records`
//! list both: this table locally, that queue on AWS.

use std::time::Duration;

use rusqlite::params;

use super::event_store::UndecodableRow;
use super::{map_err, to_i64, SqliteDb, SqliteEventStore};
use order_ports::feed::{Feed, FeedRecord};
use order_ports::StoreError;

/// Events read per poll: one batch for the consumer, so one read and one write of each of its
/// orders' views per poll.
const FEED_BATCH: usize = 1024;
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
    /// Undecodable records of the last poll, recorded in `failed_events` when a commit passes
    /// them.
    pub(super) undecodable: Vec<(u64, UndecodableRow)>,
}

impl Feed for SqliteFeed {
    type Position = u64;

    async fn poll(&mut self) -> Result<Vec<FeedRecord<u64>>, StoreError> {
        let from = self.db.checkpoint(self.consumer).await?;
        let batch = self.events.read_feed_records(from, FEED_BATCH).await?;
        self.undecodable.clear();
        Ok(batch
            .into_iter()
            .map(|(position, record)| FeedRecord {
                position,
                event: record.map_err(|row| {
                    let reason = row.reason.clone();
                    self.undecodable.push((position, row));
                    reason
                }),
            })
            .collect())
    }

    /// Saves the checkpoint and, in the same transaction, records the undecodable records up
    /// to `position` in `failed_events` (once per consumer and `seq`, however often replayed).
    async fn commit(&mut self, position: &u64) -> Result<(), StoreError> {
        let failed: Vec<(u64, UndecodableRow)> = self
            .undecodable
            .iter()
            .filter(|(seq, _)| seq <= position)
            .cloned()
            .collect();
        if failed.is_empty() {
            return self.db.save_checkpoint(self.consumer, *position).await;
        }
        let consumer = self.consumer;
        let checkpoint = to_i64(*position)?;
        let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.db
            .write(move |tx| {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO failed_events
                             (consumer, seq, order_id, event_id, reason, failed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(map_err)?;
                for (seq, row) in &failed {
                    insert
                        .execute(params![
                            consumer,
                            to_i64(*seq)?,
                            row.order_id,
                            row.event_id,
                            row.reason,
                            failed_at
                        ])
                        .map_err(map_err)?;
                }
                tx.prepare_cached(
                    "INSERT INTO checkpoints (consumer, position) VALUES (?1, ?2)
                     ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                )
                .and_then(|mut s| s.execute(params![consumer, checkpoint]))
                .map_err(map_err)?;
                Ok(())
            })
            .await?;
        self.undecodable.retain(|(seq, _)| seq > position);
        Ok(())
    }

    /// Nothing to do: every poll starts from the saved checkpoint, which is just before it.
    fn retry_from(&mut self, _position: &u64) {}

    fn idle_pause(&self) -> Duration {
        IDLE_POLL
    }
}

/// A record of `failed_events`: an event a feed consumer could not decode and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    pub consumer: String,
    /// The event's global sequence number in `events`.
    pub seq: u64,
    /// As stored, when readable.
    pub order_id: Option<String>,
    pub event_id: Option<String>,
    pub reason: String,
    /// RFC 3339 UTC.
    pub failed_at: String,
}

impl SqliteDb {
    /// Up to `limit` records of `failed_events` after `after_id` (0 to start), oldest first,
    /// each with its id (pass the last one back for the next page).
    pub async fn failed_events(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, FailedEvent)>, StoreError> {
        let after = to_i64(after_id)?;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, consumer, seq, order_id, event_id, reason, failed_at
                     FROM failed_events WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((
                        super::to_u64(r.get(0)?),
                        FailedEvent {
                            consumer: r.get(1)?,
                            seq: super::to_u64(r.get(2)?),
                            order_id: r.get(3)?,
                            event_id: r.get(4)?,
                            reason: r.get(5)?,
                            failed_at: r.get(6)?,
                        },
                    ))
                })
                .map_err(map_err)?;
            rows.map(|r| r.map_err(map_err)).collect()
        })
        .await
    }

    /// Whether a notification for event `event_id` has been published (the notifications
    /// table holds each event id at most once).
    pub async fn notified(&self, event_id: events_schema::EventId) -> Result<bool, StoreError> {
        let key = event_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT COUNT(*) FROM notifications WHERE event_id = ?1")
                .and_then(|mut s| s.query_row([&key], |r| r.get::<_, i64>(0)))
                .map(|n| n > 0)
                .map_err(map_err)
        })
        .await
    }
}
