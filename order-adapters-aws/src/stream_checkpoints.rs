//! [`StreamCheckpoints`]: where `orders serve --backend aws` keeps its stream positions — a
//! small local SQLite file (`--checkpoints`, default `./orders-aws-checkpoints.db`), so a
//! restart resumes every consumer after its last committed record.
//!
//! Why a local file and not a DynamoDB item: the positions belong to this process's consumers
//! (the deployed Lambdas have their own, kept by their event source mappings), the file needs no
//! change to the template and no extra permission, and a lost file only costs a replay (see
//! [`StreamFeed`](super::StreamFeed)), never a lost record.
//!
//! Rows are keyed by stream ARN, so one file can serve several stacks (or the fresh tables of
//! each test) without mixing them up:
//!
//! * `stream_consumers`: a consumer has run on a stream — when, and where it first started
//!   (`TRIM_HORIZON` or `LATEST`). Only a consumer without this row starts at `LATEST`.
//! * `stream_checkpoints`: per consumer and shard, the sequence number of the last record
//!   handled. Written at every commit, in `FULL` synchronous mode: it survives a power loss.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use order_ports::StoreError;

/// Where a consumer starts reading the shards that exist when it opens the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written after the feed was opened.
    Latest,
}

/// The default file, relative to the working directory.
pub const DEFAULT_CHECKPOINTS_FILE: &str = "orders-aws-checkpoints.db";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS stream_consumers (
    stream_arn    TEXT    NOT NULL,
    consumer      TEXT    NOT NULL,
    first_start   TEXT    NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (stream_arn, consumer)
);
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    stream_arn      TEXT NOT NULL,
    consumer        TEXT NOT NULL,
    shard_id        TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    PRIMARY KEY (stream_arn, consumer, shard_id)
);
"#;

/// A consumer that has run on a stream before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// Where it started the first time.
    pub first_start: StartAt,
    /// When it started the first time (Unix seconds, this host's clock).
    pub registered_at: i64,
}

/// Durable stream positions, one SQLite file. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct StreamCheckpoints {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for StreamCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCheckpoints")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StreamCheckpoints {
    /// Opens (creating if needed) the file at `path`.
    ///
    /// Errors: `Unavailable` if it cannot be opened or written; `Corrupt` if it is not a
    /// database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(|e| context(&path, e))?;
        Self::init(conn, path)
    }

    /// A store that lives as long as the value (tests, and runs that want no file).
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| context(&path, e))?;
        Self::init(conn, path)
    }

    fn init(conn: Connection, path: PathBuf) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| context(&path, e))?;
        // Two `serve` processes on one file would share positions: the WAL lets the second
        // one read, the busy timeout serializes their writes.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| context(&path, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| context(&path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| context(&path, e))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether (and how) `consumer` has run on `stream_arn` before.
    pub async fn registration(
        &self,
        stream_arn: &str,
        consumer: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let (stream_arn, consumer) = (stream_arn.to_owned(), consumer.to_owned());
        self.with(move |conn| {
            conn.query_row(
                "SELECT first_start, registered_at FROM stream_consumers
                 WHERE stream_arn = ?1 AND consumer = ?2",
                params![stream_arn, consumer],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()
        })
        .await?
        .map(|(start, registered_at)| {
            let first_start = match start.as_str() {
                "LATEST" => StartAt::Latest,
                "TRIM_HORIZON" => StartAt::TrimHorizon,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "{}: unknown first_start {other:?}",
                        self.path.display()
                    )))
                }
            };
            Ok(Registration {
                first_start,
                registered_at,
            })
        })
        .transpose()
    }

    /// Records that `consumer` runs on `stream_arn` for the first time, now.
    pub async fn register(
        &self,
        stream_arn: &str,
        consumer: &str,
        registration: Registration,
    ) -> Result<(), StoreError> {
        let (stream_arn, consumer) = (stream_arn.to_owned(), consumer.to_owned());
        let start = match registration.first_start {
            StartAt::Latest => "LATEST",
            StartAt::TrimHorizon => "TRIM_HORIZON",
        };
        self.with(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO stream_consumers (stream_arn, consumer, first_start, registered_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![stream_arn, consumer, start, registration.registered_at],
            )
            .map(drop)
        })
        .await
    }

    /// Forgets `consumer` on `stream_arn` (registration and positions): its next start is a
    /// first start.
    pub async fn reset(&self, stream_arn: &str, consumer: &str) -> Result<(), StoreError> {
        let (stream_arn, consumer) = (stream_arn.to_owned(), consumer.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM stream_checkpoints WHERE stream_arn = ?1 AND consumer = ?2",
                params![stream_arn, consumer],
            )?;
            tx.execute(
                "DELETE FROM stream_consumers WHERE stream_arn = ?1 AND consumer = ?2",
                params![stream_arn, consumer],
            )?;
            tx.commit()
        })
        .await
    }

    /// `consumer`'s positions on `stream_arn`: shard id → last handled sequence number.
    pub async fn load(
        &self,
        stream_arn: &str,
        consumer: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let (stream_arn, consumer) = (stream_arn.to_owned(), consumer.to_owned());
        self.with(move |conn| {
            let mut statement = conn.prepare(
                "SELECT shard_id, sequence_number FROM stream_checkpoints
                 WHERE stream_arn = ?1 AND consumer = ?2",
            )?;
            let rows = statement.query_map(params![stream_arn, consumer], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            rows.collect()
        })
        .await
    }

    /// Every record of `shard_id` up to `sequence_number` has been handled by `consumer`.
    pub async fn save(
        &self,
        stream_arn: &str,
        consumer: &str,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), StoreError> {
        let (stream_arn, consumer, shard_id, sequence_number) = (
            stream_arn.to_owned(),
            consumer.to_owned(),
            shard_id.to_owned(),
            sequence_number.to_owned(),
        );
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO stream_checkpoints (stream_arn, consumer, shard_id, sequence_number)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (stream_arn, consumer, shard_id)
                 DO UPDATE SET sequence_number = excluded.sequence_number",
                params![stream_arn, consumer, shard_id, sequence_number],
            )
            .map(drop)
        })
        .await
    }

    /// Runs `job` on the connection off the async runtime (a `FULL` commit waits for the disk).
    async fn with<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("checkpoint store lock poisoned".into()))?;
            job(&mut conn).map_err(|e| context(&path, e))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("checkpoint store task: {e}")))?
    }
}

fn context(path: &Path, e: rusqlite::Error) -> StoreError {
    let message = format!("stream checkpoints {}: {e}", path.display());
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt(message)
        }
        _ => StoreError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x";

    #[tokio::test]
    async fn positions_survive_reopening_the_file_and_a_reset_forgets_one_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoints.db");
        let store = StreamCheckpoints::open(&file).unwrap();
        assert_eq!(store.registration(ARN, "notifier").await.unwrap(), None);
        let first = Registration {
            first_start: StartAt::Latest,
            registered_at: 1_700_000_000,
        };
        store.register(ARN, "notifier", first).await.unwrap();
        store.save(ARN, "notifier", "a", "100").await.unwrap();
        store.save(ARN, "notifier", "a", "200").await.unwrap();
        store.save(ARN, "notifier", "b", "7").await.unwrap();
        store.save(ARN, "projector", "a", "300").await.unwrap();
        store
            .save("another-stream", "notifier", "a", "9")
            .await
            .unwrap();
        drop(store);

        let store = StreamCheckpoints::open(&file).unwrap();
        assert_eq!(
            store.registration(ARN, "notifier").await.unwrap(),
            Some(first)
        );
        let notifier = store.load(ARN, "notifier").await.unwrap();
        assert_eq!(
            notifier,
            BTreeMap::from([("a".into(), "200".into()), ("b".into(), "7".into())])
        );

        store.reset(ARN, "notifier").await.unwrap();
        assert_eq!(store.registration(ARN, "notifier").await.unwrap(), None);
        assert!(store.load(ARN, "notifier").await.unwrap().is_empty());
        assert_eq!(store.load(ARN, "projector").await.unwrap().len(), 1);
        assert_eq!(
            store
                .load("another-stream", "notifier")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoints.db");
        std::fs::write(&file, b"this is not a database, not even close to one....").unwrap();
        let opened = StreamCheckpoints::open(&file);
        assert!(matches!(opened, Err(StoreError::Corrupt(_))), "{opened:?}");
    }
}
