//! Local notifications: table `notifications`, one row per announced event.

use std::collections::BTreeMap;

use async_trait::async_trait;
use events_schema::EventId;
use rusqlite::params;

use super::{map_err, to_i64, to_u64, SqliteDb};
use order_ports::{Notification, PublishBatchError, Publisher, StoreError};

/// A notification as stored locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    pub event_id: EventId,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
    /// RFC 3339 UTC, milliseconds: when it was first published.
    pub published_at: String,
}

/// [`Publisher`] into the `notifications` table. Publishing is idempotent per `eventId`: a
/// replay after a crash never duplicates a notification locally (SNS itself is at-least-once).
#[derive(Clone, Debug)]
pub struct SqlitePublisher {
    pub(super) db: SqliteDb,
}

impl SqlitePublisher {
    /// Up to `limit` notifications with `seq > after_seq`, in publication order, with their `seq`.
    pub async fn list_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredNotification)>, StoreError> {
        let after = to_i64(after_seq)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, event_id, message, attributes, published_at
                         FROM notifications WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![after, limit], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    })
                    .map_err(map_err)?;
                rows.map(|r| {
                    let (seq, event_id, message, attributes, published_at) = r.map_err(map_err)?;
                    let corrupt =
                        |what: &str| StoreError::Corrupt(format!("notification {seq}: bad {what}"));
                    Ok((
                        to_u64(seq),
                        StoredNotification {
                            event_id: uuid::Uuid::try_parse(&event_id)
                                .map(EventId::from_uuid)
                                .map_err(|_| corrupt("eventId"))?,
                            message,
                            attributes: serde_json::from_str(&attributes)
                                .map_err(|_| corrupt("attributes"))?,
                            published_at,
                        },
                    ))
                })
                .collect()
            })
            .await
    }
}

#[async_trait]
impl Publisher for SqlitePublisher {
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        self.publish_batch(std::slice::from_ref(notification))
            .await
            .map_err(|e| e.error)
    }

    /// One write job for the batch: all of it is recorded, or (a failed commit) none of it.
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        order_ports::check_publish_batch(notifications)?;
        let published_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // Attributes that do not encode stop the batch there; what comes before is recorded.
        let mut rows = Vec::with_capacity(notifications.len());
        let mut refused = None;
        for (index, n) in notifications.iter().enumerate() {
            match serde_json::to_string(&n.attributes) {
                Ok(attributes) => {
                    rows.push((n.event_id.to_string(), n.message.clone(), attributes))
                }
                Err(e) => {
                    refused = Some(PublishBatchError {
                        index,
                        error: StoreError::Rejected(format!("notification attributes: {e}")),
                    });
                    break;
                }
            }
        }
        if !rows.is_empty() {
            self.write_rows(rows, published_at)
                .await
                .map_err(|error| PublishBatchError { index: 0, error })?;
        }
        refused.map_or(Ok(()), Err)
    }
}

impl SqlitePublisher {
    async fn write_rows(
        &self,
        rows: Vec<(String, String, String)>,
        published_at: String,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO notifications (event_id, message, attributes, published_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(map_err)?;
                for (event_id, message, attributes) in &rows {
                    insert
                        .execute(params![event_id, message, attributes, published_at])
                        .map_err(map_err)?;
                }
                Ok(())
            })
            .await
    }
}
