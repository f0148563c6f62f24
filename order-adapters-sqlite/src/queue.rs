//! The work queue: tables `queue` and `dead_letters`, with SQS semantics (visibility timeout,
//! receive count, redrive to the dead letters after `max_receives` receives) and retries that
//! back off ([`retry_delay`](order_ports::retry_delay)).

use std::time::Duration;

use async_trait::async_trait;
use events_schema::OrderId;
use rusqlite::{params, Connection};

use super::{map_err, now_ms, SqliteDb};
use order_ports::{DeadLetterMessage, DeadLetters, Delivery, RedriveFilter, StoreError, WorkQueue};

/// Receives before a message is dead-lettered, unless [`SqliteDb::work_queue`] says otherwise.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// The most rows the `dead_letters` table keeps, unless [`SqliteWorkQueue::with_dead_letter_cap`]
/// says otherwise: past it the oldest are dropped as new ones come (with a warning). Why a cap:
/// the table is the local stand-in for the SQS work DLQ, which drops a message after its
/// retention period (the template keeps 14 days), so without one a poison producer could
/// grow the file without bound. Dropping a dead letter loses no order: an order whose message
/// it was is still pending in the view, where the reconciler finds it (ADR 11).
pub const MAX_DEAD_LETTERS: u64 = 10_000;

/// How long [`WorkQueue::receive`] waits for a message on an empty queue.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// Re-check interval while waiting (a `send` or `fail` in this process wakes receivers sooner).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A message that was received too often and moved out of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
}

/// [`WorkQueue`] on the `queue` table.
#[derive(Clone, Debug)]
pub struct SqliteWorkQueue {
    pub(super) db: SqliteDb,
    pub(super) max_receives: u32,
    pub(super) retry_delay: fn(u32) -> Duration,
    /// The most dead letters kept ([`MAX_DEAD_LETTERS`] by default).
    pub(super) dead_letter_cap: u64,
}

impl SqliteWorkQueue {
    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// The same queue with another backoff for [`WorkQueue::fail`] (by receive count) than
    /// [`retry_delay`](order_ports::retry_delay). For tests that must not wait for it;
    /// production keeps the default.
    pub fn with_retry_delay(mut self, delay: fn(u32) -> Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The same queue keeping at most `cap` dead letters (at least 1): the oldest are dropped
    /// when a newer one would exceed it.
    pub fn with_dead_letter_cap(mut self, cap: u64) -> Self {
        self.dead_letter_cap = cap.max(1);
        self
    }

    /// Deletes the dead letters dead-lettered before `before` (`orders dlq prune
    /// --older-than`); returns how many.
    pub async fn prune_dead_letters(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let before = dead_letter_time(before);
        self.db
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM dead_letters WHERE failed_at < ?1")
                    .and_then(|mut s| s.execute(params![before]))
                    .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
                    .map_err(map_err)
            })
            .await
    }

    /// Enqueues a raw body (the port only sends order ids; this lets tests and tools send
    /// anything, e.g. garbage the processor must cope with).
    pub async fn send_raw(&self, body: impl Into<String>) -> Result<(), StoreError> {
        let body = body.into();
        self.db.write(move |tx| enqueue_in(tx, &body)).await?;
        self.db.queue_signal().notify_waiters();
        Ok(())
    }

    /// Every dead-lettered message, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.db
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT message_id, body, receive_count FROM dead_letters ORDER BY id",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(DeadLetter {
                            message_id: r.get(0)?,
                            body: r.get(1)?,
                            receive_count: r.get(2)?,
                        })
                    })
                    .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err)).collect()
            })
            .await
    }

    /// How many dead letters there are (`COUNT(*)`, without reading them: `GET /metrics`).
    pub async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(super::to_u64)
                .map_err(map_err)
            })
            .await
    }

    /// Messages in the queue: visible plus in flight (not counting dead letters).
    pub async fn depth(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))
                    .map(super::to_u64)
                    .map_err(map_err)
            })
            .await
    }

    /// One non-waiting receive: dead-letters what was received too often, then hands out up to
    /// `max` visible messages.
    async fn receive_once(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let max_receives = self.max_receives;
        let cap = i64::try_from(self.dead_letter_cap).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let visibility_ms = i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
        let (deliveries, dropped) = self
            .db
            .write(move |tx| {
                let now = now_ms();
                // Redrive: a visible message that has used up its receives is dead-lettered
                // instead of being delivered again (as SQS does with maxReceiveCount).
                let failed_at = dead_letter_time(chrono::Utc::now());
                let moved = tx
                    .prepare_cached(
                        "INSERT INTO dead_letters (message_id, body, receive_count, failed_at)
                         SELECT message_id, body, receive_count, ?3 FROM queue
                         WHERE receive_count >= ?2 AND visible_at <= ?1 ORDER BY id",
                    )
                    .and_then(|mut s| s.execute(params![now, max_receives, failed_at]))
                    .map_err(map_err)?;
                let mut dropped = 0;
                if moved > 0 {
                    tx.prepare_cached(
                        "DELETE FROM queue WHERE receive_count >= ?2 AND visible_at <= ?1",
                    )
                    .and_then(|mut s| s.execute(params![now, max_receives]))
                    .map_err(map_err)?;
                    // The cap, kept only when it may have been passed: everything up to the
                    // newest row beyond the `cap` newest goes (ids grow with insertion).
                    dropped = tx
                        .prepare_cached(
                            "DELETE FROM dead_letters WHERE id <= (
                                 SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                        )
                        .and_then(|mut s| s.execute(params![cap]))
                        .map_err(map_err)?;
                }
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE queue
                         SET visible_at = ?2,
                             receive_count = receive_count + 1,
                             receipt = lower(hex(randomblob(16)))
                         WHERE id IN (SELECT id FROM queue WHERE visible_at <= ?1
                                      ORDER BY id LIMIT ?3)
                         RETURNING id, message_id, receipt, body, receive_count",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![now, now.saturating_add(visibility_ms), max], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            Delivery {
                                message_id: r.get(1)?,
                                receipt: r.get(2)?,
                                body: r.get(3)?,
                                receive_count: r.get(4)?,
                            },
                        ))
                    })
                    .map_err(map_err)?;
                let mut out = rows
                    .map(|r| r.map_err(map_err))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                out.sort_unstable_by_key(|(id, _)| *id);
                Ok((out.into_iter().map(|(_, d)| d).collect(), dropped))
            })
            .await?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                cap = self.dead_letter_cap,
                "oldest dead letters dropped: the table is at its cap (their orders, if still \
                 pending, are found by the reconciler)"
            );
        }
        Ok(deliveries)
    }
}

/// A `dead_letters.failed_at`: RFC 3339 UTC with milliseconds and `Z`, one fixed width, so
/// text order is time order (what [`SqliteWorkQueue::prune_dead_letters`] compares).
fn dead_letter_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl WorkQueue for SqliteWorkQueue {
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
        self.send_raw(order_id.to_string()).await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + RECEIVE_WAIT;
        loop {
            // Register for a wake-up before looking, so a send between the look and the wait
            // is not missed.
            let signal = self.db.queue_signal().notified();
            tokio::pin!(signal);
            signal.as_mut().enable();
            let got = self.receive_once(max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let wait = POLL_INTERVAL.min(deadline - now);
            let _ = tokio::time::timeout(wait, signal).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let (message_id, receipt) = (delivery.message_id.clone(), delivery.receipt.clone());
        self.db
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM queue WHERE message_id = ?1 AND receipt = ?2")
                    .and_then(|mut s| s.execute(params![message_id, receipt]))
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }

    /// One write job for every receipt.
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let receipts: Vec<(String, String)> = deliveries
            .iter()
            .map(|d| (d.message_id.clone(), d.receipt.clone()))
            .collect();
        self.db
            .write(move |tx| {
                let mut delete = tx
                    .prepare_cached("DELETE FROM queue WHERE message_id = ?1 AND receipt = ?2")
                    .map_err(map_err)?;
                for (message_id, receipt) in &receipts {
                    delete
                        .execute(params![message_id, receipt])
                        .map_err(map_err)?;
                }
                Ok(())
            })
            .await
    }

    /// Hides the message for the retry delay of its receive count — except after its last
    /// allowed receive: then it is due at once, so the next receive dead-letters it without a
    /// pointless last wait.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let (message_id, receipt) = (delivery.message_id.clone(), delivery.receipt.clone());
        let delay = if delivery.receive_count >= self.max_receives {
            Duration::ZERO
        } else {
            (self.retry_delay)(delivery.receive_count)
        };
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let changed = self
            .db
            .write(move |tx| {
                tx.prepare_cached(
                    "UPDATE queue SET visible_at = ?3 WHERE message_id = ?1 AND receipt = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        message_id,
                        receipt,
                        now_ms().saturating_add(delay_ms)
                    ])
                })
                .map_err(map_err)
            })
            .await?;
        if changed > 0 && delay.is_zero() {
            self.db.queue_signal().notify_waiters();
        }
        Ok(())
    }
}

/// The `dead_letters` table. A redrive moves the messages back into `queue` (same message id,
/// receive count 0, visible at once) and deletes them from `dead_letters` in one transaction.
#[async_trait]
impl DeadLetters for SqliteWorkQueue {
    async fn list(&self) -> Result<Vec<DeadLetterMessage>, StoreError> {
        self.db
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT message_id, body, receive_count, failed_at FROM dead_letters
                         ORDER BY id",
                    )
                    .map_err(map_err)?;
                let rows = stmt.query_map([], dead_letter_row).map_err(map_err)?;
                rows.map(|r| r.map_err(map_err)).collect()
            })
            .await
    }

    async fn redrive(&self, filter: &RedriveFilter) -> Result<Vec<DeadLetterMessage>, StoreError> {
        let body = match filter {
            RedriveFilter::All => None,
            RedriveFilter::Order(order_id) => Some(order_id.to_string()),
        };
        let moved = self
            .db
            .write(move |tx| {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM dead_letters WHERE ?1 IS NULL OR body = ?1
                         RETURNING message_id, body, receive_count, failed_at",
                    )
                    .map_err(map_err)?;
                let moved = stmt
                    .query_map(params![body], dead_letter_row)
                    .map_err(map_err)?
                    .map(|r| r.map_err(map_err))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO queue (message_id, body, visible_at, receive_count)
                         VALUES (?1, ?2, ?3, 0)",
                    )
                    .map_err(map_err)?;
                let now = now_ms();
                for m in &moved {
                    insert
                        .execute(params![m.message_id, m.body, now])
                        .map_err(map_err)?;
                }
                Ok(moved)
            })
            .await?;
        if !moved.is_empty() {
            self.db.queue_signal().notify_waiters();
        }
        Ok(moved)
    }
}

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetterMessage> {
    Ok(DeadLetterMessage {
        message_id: r.get(0)?,
        body: r.get(1)?,
        receive_count: r.get(2)?,
        at: r.get(3)?,
    })
}

/// Inserts a message, visible at once, on the writer connection inside the caller's write job.
/// The caller wakes waiting receivers ([`SqliteDb::queue_signal`]) once the write is committed.
pub(super) fn enqueue_in(tx: &Connection, body: &str) -> Result<(), StoreError> {
    let message_id = uuid::Uuid::now_v7().hyphenated().to_string();
    tx.prepare_cached(
        "INSERT INTO queue (message_id, body, visible_at, receive_count)
         VALUES (?1, ?2, ?3, 0)",
    )
    .and_then(|mut s| s.execute(params![message_id, body, now_ms()]))
    .map_err(map_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Receives until a message comes (at most `patience`); returns it and when it came.
    async fn next(q: &SqliteWorkQueue, patience: Duration) -> (Delivery, Instant) {
        let deadline = Instant::now() + patience;
        loop {
            let got = q
                .receive(1, Duration::from_secs(30))
                .await
                .expect("receive");
            if let Some(d) = got.into_iter().next() {
                return (d, Instant::now());
            }
            assert!(Instant::now() < deadline, "no message within {patience:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_message_stays_hidden_for_the_retry_delay_of_its_receive_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        let q = db.work_queue_default();
        q.send(OrderId::new_random()).await.expect("send");
        let (mut delivery, _) = next(&q, Duration::from_secs(5)).await;
        for receive_count in 1..=2 {
            assert_eq!(delivery.receive_count, receive_count);
            let failed_at = Instant::now();
            q.fail(&delivery).await.expect("fail");
            let (back, at) = next(&q, Duration::from_secs(10)).await;
            let hidden = at - failed_at;
            let delay = order_ports::retry_delay(receive_count);
            assert!(hidden >= delay, "back after {hidden:?}, before {delay:?}");
            assert!(
                hidden < delay + Duration::from_secs(1),
                "back after {hidden:?}"
            );
            delivery = back;
        }
    }

    #[tokio::test]
    async fn a_message_failed_on_its_last_receive_is_dead_lettered_without_a_last_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        let q = db.work_queue(1);
        q.send(OrderId::new_random()).await.expect("send");
        let (delivery, _) = next(&q, Duration::from_secs(5)).await;
        q.fail(&delivery).await.expect("fail");
        assert!(q
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty());
        let dead = q.dead_letters().await.expect("dead letters");
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].message_id, delivery.message_id);
        assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    }

    /// Sends `body`, receives it once and fails it on a one-receive queue with no backoff, then
    /// receives again: the message is dead-lettered.
    async fn dead_letter(q: &SqliteWorkQueue, body: &str) {
        q.send_raw(body).await.expect("send");
        let (delivery, _) = next(q, Duration::from_secs(5)).await;
        q.fail(&delivery).await.expect("fail");
        assert!(q
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty());
    }

    #[tokio::test]
    async fn the_dead_letters_are_capped_and_the_oldest_are_dropped_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        let q = db
            .work_queue(1)
            .with_retry_delay(|_| Duration::ZERO)
            .with_dead_letter_cap(3);
        for n in 0..5 {
            dead_letter(&q, &format!("poison-{n}")).await;
        }
        assert_eq!(q.dead_letter_count().await.expect("count"), 3);
        let bodies: Vec<String> = q
            .dead_letters()
            .await
            .expect("dead letters")
            .into_iter()
            .map(|d| d.body)
            .collect();
        assert_eq!(bodies, ["poison-2", "poison-3", "poison-4"]);
    }

    #[tokio::test]
    async fn dead_letters_older_than_the_bound_are_pruned_and_newer_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        let q = db.work_queue(1).with_retry_delay(|_| Duration::ZERO);
        dead_letter(&q, "old").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let between = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        dead_letter(&q, "new").await;

        assert_eq!(q.prune_dead_letters(between).await.expect("prune"), 1);
        let left: Vec<String> = q
            .dead_letters()
            .await
            .expect("dead letters")
            .into_iter()
            .map(|d| d.body)
            .collect();
        assert_eq!(left, ["new"]);
        assert_eq!(q.prune_dead_letters(between).await.expect("again"), 0);
        assert_eq!(q.dead_letter_count().await.expect("count"), 1);
    }

    #[test]
    fn the_default_dead_letter_cap_is_the_documented_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        assert_eq!(db.work_queue_default().dead_letter_cap, MAX_DEAD_LETTERS);
        assert_eq!(db.work_queue(1).with_dead_letter_cap(0).dead_letter_cap, 1);
    }

    #[tokio::test]
    async fn the_dead_letter_count_is_zero_on_a_new_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        assert_eq!(
            db.work_queue(1).dead_letter_count().await.expect("count"),
            0
        );
    }
}
