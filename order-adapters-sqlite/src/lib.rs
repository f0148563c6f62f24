//! The embedded adapters: one SQLite file (WAL) holds the event log, the work queue with its dead
//! letters, the status view, the consumers' checkpoints and the published notifications.
//!
//! # Concurrency
//!
//! rusqlite is synchronous. [`SqliteDb`] has **one writer connection**, owned by a dedicated
//! `sqlite-writer` thread (SQLite allows one writer at a time anyway), and a small **pool of
//! reader connections** (WAL readers never block the writer nor each other) used on tokio's
//! blocking pool ([`tokio::task::spawn_blocking`]), so async callers never stall the runtime.
//!
//! Writes are sent to the writer thread as jobs and **group-committed**: every job waiting when
//! the thread becomes free runs in one transaction, each in its own savepoint (a job's error
//! rolls back only its own writes). Under load, many appends, queue operations and upserts share
//! one commit: that is what makes tens of thousands of single-event appends/s possible on 2
//! cores (figures and the command that measures them: `BENCHMARKS.md`, example
//! `sqlite_throughput`).
//!
//! # Durability
//!
//! The writer commits with `synchronous = FULL`: every commit syncs the WAL to disk before a
//! write's future resolves, so what was acknowledged (a `202`) survives a power loss or an OS
//! crash, not only a killed process. Group commit pays for the sync once per group, so
//! durability is never traded for speed. An order's `OrderReceived` and its work message commit
//! in one transaction ([`SqliteIntake`]).
//!
//! Because all writes go through the one writer connection, the global event sequence (`seq`) is
//! assigned in commit order: a feed reader that has seen `seq = n` will never later find a
//! committed event with `seq <= n` it has not seen. That is what makes [`SqliteEventStore::read_feed`]
//! a correct catch-up stream (the local stand-in for the DynamoDB stream). Do not let a second
//! process write to the same file while one is running.
//!
//! # Errors
//!
//! `SQLITE_BUSY` / `SQLITE_LOCKED` (after the built-in busy timeout of
//! [`BUSY_TIMEOUT`]) and I/O failures are [`StoreError::Unavailable`]; a stored record that does
//! not decode, or a corrupt file, is [`StoreError::Corrupt`].

mod event_store;
mod export;
mod feed;
mod histories;
mod intake;
mod publisher;
mod queue;
mod repair;
mod status;
#[cfg(feature = "test-util")]
pub mod test_util;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use order_ports::StoreError;

pub use event_store::{SqliteEventStore, UndecodableRow};
pub use feed::{FailedEvent, SqliteFeed};
pub use histories::{HistoryPage, OrderHistory};
pub use intake::SqliteIntake;
pub use publisher::{SqlitePublisher, StoredNotification};
pub use queue::{DeadLetter, SqliteWorkQueue, DEFAULT_MAX_RECEIVES, MAX_DEAD_LETTERS};
pub use status::SqliteStatusStore;

/// The schema version recorded in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection before giving up with
/// [`StoreError::Unavailable`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections kept open for reuse, and the most reads run at once (see `read_slots`).
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at    TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    UNIQUE (order_id, version)
);

-- `orders events`: the log in export order (occurredAt, orderId, version), and each order's
-- customer from its OrderReceived, so neither a time window nor a customer scans the log.
CREATE INDEX IF NOT EXISTS events_by_time ON events (occurred_at, order_id, version);
CREATE INDEX IF NOT EXISTS events_by_customer
    ON events (json_extract(payload, '$.customerId'), order_id) WHERE version = 1;

CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT    NOT NULL UNIQUE,
    body          TEXT    NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
-- Finds the messages due for the dead letters without scanning the backlog.
CREATE INDEX IF NOT EXISTS queue_by_receives ON queue (receive_count, visible_at);

CREATE TABLE IF NOT EXISTS dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    failed_at     TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS order_status (
    order_id    TEXT    PRIMARY KEY NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    record      TEXT    NOT NULL
);
-- A customer's orders newest first, with the order id as tie-breaker (keyset pagination). It
-- replaces `order_status_by_customer (customer_id, created_at)` of files created before it.
DROP INDEX IF EXISTS order_status_by_customer;
CREATE INDEX IF NOT EXISTS order_status_by_customer_page
    ON order_status (customer_id, created_at, order_id);
-- Only the non-terminal orders, by age: what the reconciler looks for (ADR 6).
CREATE INDEX IF NOT EXISTS order_status_pending ON order_status (updated_at, order_id)
    WHERE status IN ('RECEIVED', 'PROCESSING');

-- Pending views the reconciler set aside because their log does not fold (ADR 11): left out of
-- its walk while the view stays at this version, so each is reported once, not re-enqueued
-- every run. A newer view (another version) is pending again; `orders rebuild --force` ends it.
CREATE TABLE IF NOT EXISTS pending_set_aside (
    order_id     TEXT    PRIMARY KEY NOT NULL,
    version      INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    set_aside_at TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT    PRIMARY KEY NOT NULL,
    position INTEGER NOT NULL
);

-- Events a feed consumer could not decode and skipped (see sqlite/feed.rs), listed by
-- `orders verify`. Once per consumer and event.
CREATE TABLE IF NOT EXISTS failed_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer  TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    order_id  TEXT,
    event_id  TEXT,
    reason    TEXT    NOT NULL,
    failed_at TEXT    NOT NULL,
    UNIQUE (consumer, seq)
);

CREATE TABLE IF NOT EXISTS notifications (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    message      TEXT    NOT NULL,
    attributes   TEXT    NOT NULL,
    published_at TEXT    NOT NULL
);
"#;

/// One SQLite database file and the connections to it. Cheap to clone; every clone shares the
/// same connections.
#[derive(Clone)]
pub struct SqliteDb {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Jobs for the writer thread, which owns the one writing connection.
    writer: std::sync::mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// One per read running: a burst of reads (a processor batch loads 100 histories at once)
    /// waits for a pooled connection rather than opening, and closing, one per read.
    read_slots: tokio::sync::Semaphore,
    /// Woken whenever a queue message becomes visible (send, fail), so waiting receivers return
    /// promptly instead of sleeping out their poll interval.
    queue_signal: tokio::sync::Notify,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL with
    /// `synchronous = FULL` (see the module docs) and creates the schema if it is missing.
    ///
    /// Errors: `Unavailable` if the file cannot be opened or is locked; `Corrupt` if it is not a
    /// database or was written by a newer schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = Connection::open(&path).map_err(map_err)?;
        configure(&writer)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{}: could not switch to WAL (journal_mode = {mode})",
                path.display()
            )));
        }
        writer
            .pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(map_err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "{}: schema version {found} is newer than this build's {SCHEMA_VERSION}",
                path.display()
            )));
        }
        tx.execute_batch(SCHEMA).map_err(map_err)?;
        if found < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)?;
        writer.set_prepared_statement_cache_capacity(64);

        let first_reader = open_reader(&path)?;
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: jobs,
                readers: Mutex::new(vec![first_reader]),
                read_slots: tokio::sync::Semaphore::new(MAX_IDLE_READERS),
                queue_signal: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn event_store(&self) -> SqliteEventStore {
        SqliteEventStore { db: self.clone() }
    }

    /// The work queue; a message received `max_receives` times is dead-lettered instead of being
    /// delivered again (SQS `maxReceiveCount`). `0` is treated as `1`.
    pub fn work_queue(&self, max_receives: u32) -> SqliteWorkQueue {
        SqliteWorkQueue {
            db: self.clone(),
            max_receives: max_receives.max(1),
            retry_delay: order_ports::retry_delay,
            dead_letter_cap: MAX_DEAD_LETTERS,
        }
    }

    /// The work queue with [`DEFAULT_MAX_RECEIVES`].
    pub fn work_queue_default(&self) -> SqliteWorkQueue {
        self.work_queue(DEFAULT_MAX_RECEIVES)
    }

    pub fn status_store(&self) -> SqliteStatusStore {
        SqliteStatusStore { db: self.clone() }
    }

    pub fn publisher(&self) -> SqlitePublisher {
        SqlitePublisher { db: self.clone() }
    }

    /// The change feed of consumer `consumer`, resuming after its saved
    /// [`checkpoint`](Self::checkpoint).
    pub fn feed(&self, consumer: &'static str) -> SqliteFeed {
        SqliteFeed {
            db: self.clone(),
            events: self.event_store(),
            consumer,
            undecodable: Vec::new(),
        }
    }

    /// The position a consumer saved with [`save_checkpoint`](Self::save_checkpoint), 0 if none.
    pub async fn checkpoint(&self, consumer: &str) -> Result<u64, StoreError> {
        let consumer = consumer.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT position FROM checkpoints WHERE consumer = ?1")
                .map_err(map_err)?;
            let mut rows = stmt.query([&consumer]).map_err(map_err)?;
            match rows.next().map_err(map_err)? {
                Some(row) => Ok(to_u64(row.get::<_, i64>(0).map_err(map_err)?)),
                None => Ok(0),
            }
        })
        .await
    }

    /// Records that `consumer` has processed everything up to and including `seq`.
    pub async fn save_checkpoint(&self, consumer: &str, seq: u64) -> Result<(), StoreError> {
        let consumer = consumer.to_owned();
        let position = to_i64(seq)?;
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO checkpoints (consumer, position) VALUES (?1, ?2)
                 ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
            )
            .and_then(|mut s| s.execute(rusqlite::params![consumer, position]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    /// The highest event sequence number written so far (0 for an empty log).
    pub async fn head_seq(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(to_u64)
            .map_err(map_err)
        })
        .await
    }

    /// Runs `f` atomically on the writer connection: its writes are committed if it returns
    /// `Ok` and rolled back if it returns `Err` (or panics). The returned future resolves once
    /// the writes are durable: the commit has synced the WAL to disk.
    ///
    /// Group commit: the writer thread runs every job waiting in its queue inside one
    /// `BEGIN IMMEDIATE … COMMIT`, each job in its own savepoint, so under load many writes
    /// share one commit. A job sees the writes of the jobs before it in the same group. If the
    /// commit fails, every job of the group gets the error (nothing of theirs was written).
    pub(crate) async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                    return (Box::new(|_| {}), true);
                }
            };
            let (out, clean) = in_savepoint(conn, f);
            let done: Completion = Box::new(move |commit: Result<(), StoreError>| {
                let out = match (out, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(e.into()),
                    (Err(e), _) => Err(e),
                };
                let _ = done.send(out);
            });
            (done, clean)
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| StoreError::Unavailable("the sqlite writer thread has stopped".into()))?;
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable("a sqlite write was abandoned (panic?)".into()).into())
        })
    }

    /// Runs `f` on a reader connection, on the blocking pool. Each statement sees a consistent
    /// snapshot of everything committed before it started; wrap several in a transaction if
    /// they must agree with each other.
    pub(crate) async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let _slot = self
            .inner
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the sqlite readers are closed".into()))?;
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let conn = match lock(&inner.readers).pop() {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            let mut idle = lock(&inner.readers);
            if idle.len() < MAX_IDLE_READERS && conn.is_autocommit() {
                idle.push(conn);
            }
            out
        })
        .await
    }

    pub(crate) fn queue_signal(&self) -> &tokio::sync::Notify {
        &self.inner.queue_signal
    }
}

/// A write job: runs against the writer connection inside the group's transaction (or is told
/// why it cannot run), and returns what to do once the group's commit outcome is known, and
/// whether it left the transaction clean (`false`: its savepoint could not be rolled back, so
/// the whole group must be).
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> (Completion, bool) + Send>;
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Most jobs committed together.
const MAX_GROUP: usize = 512;

fn writer_loop(conn: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err) {
            for job in group {
                job(Err(e.clone())).0(Err(e.clone()));
            }
            continue;
        }
        let mut clean = true;
        let mut completions = Vec::with_capacity(group.len());
        for job in group {
            let (done, job_clean) = job(Ok(&conn));
            clean &= job_clean;
            completions.push(done);
        }
        let commit = if clean {
            conn.execute_batch("COMMIT").map_err(map_err)
        } else {
            Err(StoreError::Unavailable(
                "a write could not be rolled back; its group was abandoned".into(),
            ))
        };
        if commit.is_err() {
            // Leaves no transaction open whatever state the failed COMMIT left behind.
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

/// Runs `f` in a savepoint: released on `Ok`, rolled back on `Err` or panic. The flag is `false`
/// when the savepoint could not be closed, leaving the transaction in an unknown state.
/// Savepoints nest: a job may call this again to undo a part of its own writes (SQLite's
/// `RELEASE` / `ROLLBACK TO` act on the most recent savepoint of the name).
pub(crate) fn in_savepoint<T, E, F>(conn: &Connection, f: F) -> (Result<T, E>, bool)
where
    E: From<StoreError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    let exec = |sql: &str| -> Result<(), StoreError> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(map_err)
    };
    if let Err(e) = exec("SAVEPOINT job") {
        return (Err(e.into()), true);
    }
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    let out = match out {
        Ok(out) => out,
        Err(_) => Err(StoreError::Unavailable("a sqlite write job panicked".into()).into()),
    };
    let closed = if out.is_ok() {
        exec("RELEASE job")
    } else {
        exec("ROLLBACK TO job").and_then(|()| exec("RELEASE job"))
    };
    match closed {
        Ok(()) => (out, true),
        Err(e) => (Err(e.into()), false),
    }
}

async fn run_blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => Err(StoreError::Unavailable(format!("sqlite task failed: {e}")).into()),
    }
}

/// A poisoned lock only means another task panicked while holding it; the connection itself is
/// fine (an open transaction is rolled back when it is dropped during the unwind).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Maps a rusqlite error to the port error contract.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(e.to_string())
        }
        Some(_) => StoreError::Unavailable(e.to_string()),
        None => match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        },
    }
}

/// Whether `e` is a UNIQUE violation whose message names `columns` (e.g. `events.event_id`).
pub(crate) fn is_unique_violation(e: &rusqlite::Error, columns: &str) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            f.code == ErrorCode::ConstraintViolation
                && msg.as_deref().is_some_and(|m| m.contains(columns))
        }
        _ => false,
    }
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Rejected(format!("{v} is out of range")))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
