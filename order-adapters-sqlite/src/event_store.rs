//! The event log: table `events`, whose `seq` is the global sequence (the local stream).

use async_trait::async_trait;
use events_schema::{EventEnvelope, EventId, OrderId, StoredEvent, Version};
use rusqlite::{params, Connection, Row};

use super::{in_savepoint, is_unique_violation, map_err, to_i64, to_u64, SqliteDb};
use order_ports::{
    check_append_batch, AppendError, EventPage, EventStore, OrderIdPage, OrderScan, ScanSegment,
    StoreError,
};

pub(super) const COLUMNS: &str =
    "seq, order_id, version, event_id, event_type, schema_version, occurred_at, correlation_id, payload";

/// [`EventStore`] on the `events` table. Beyond the port it offers the local change feed
/// ([`read_feed`](Self::read_feed)), which plays the role of the DynamoDB stream.
#[derive(Clone, Debug)]
pub struct SqliteEventStore {
    pub(super) db: SqliteDb,
}

impl SqliteEventStore {
    /// Up to `limit` events with `seq > after_seq`, in `seq` (= commit) order, each with its
    /// `seq`. Start from a consumer's [`SqliteDb::checkpoint`]; save the last `seq` handled.
    ///
    /// Errors: `Corrupt` if one of the events cannot be decoded (the page is not returned).
    pub async fn read_feed(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventEnvelope)>, StoreError> {
        let after = to_i64(after_seq)?;
        let limit = clamp_limit(limit);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                    ))
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![after, limit], read_row)
                    .map_err(map_err)?;
                rows.map(|r| {
                    let (seq, stored) = r.map_err(map_err)??;
                    Ok((seq, decode(stored)?))
                })
                .collect()
            })
            .await
    }

    /// Like [`read_feed`](Self::read_feed), but a row that cannot be decoded is returned as
    /// `Err(why)` in its place instead of failing the page: what the feed delivers, so one bad
    /// row (an older binary on a newer file) does not stop a consumer.
    pub async fn read_feed_records(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Result<EventEnvelope, UndecodableRow>)>, StoreError> {
        let after = to_i64(after_seq)?;
        let limit = clamp_limit(limit);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                    ))
                    .map_err(map_err)?;
                let mut rows = stmt.query(params![after, limit]).map_err(map_err)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(map_err)? {
                    let seq = to_u64(row.get::<_, i64>(0).map_err(map_err)?);
                    let raw = |column: usize| {
                        row.get_ref(column)
                            .ok()
                            .and_then(|v| v.as_str().ok().map(str::to_owned))
                    };
                    let undecodable = |reason: String| UndecodableRow {
                        order_id: raw(1),
                        event_id: raw(3),
                        reason,
                    };
                    let record = match read_row(row) {
                        Ok(Ok((_, stored))) => {
                            decode(stored).map_err(|e| undecodable(e.to_string()))
                        }
                        Ok(Err(e)) => Err(undecodable(e.to_string())),
                        Err(e) => Err(undecodable(map_err(e).to_string())),
                    };
                    out.push((seq, record));
                }
                Ok(out)
            })
            .await
    }

    /// The highest `seq` written so far (0 for an empty log). Same as [`SqliteDb::head_seq`].
    pub async fn head_seq(&self) -> Result<u64, StoreError> {
        self.db.head_seq().await
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        let rows = AppendRows::new(events)?;
        self.db.write(move |tx| rows.append_in(tx)).await
    }

    /// One write job for the whole call, each append in its own savepoint inside it, so a
    /// conflict rolls back only that append; a shape the port rejects is answered without
    /// reaching the writer.
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        let prepared: Vec<Result<AppendRows, StoreError>> = appends
            .iter()
            .map(|events| AppendRows::new(events))
            .collect();
        let written = self
            .db
            .write(move |tx| {
                let mut outcomes = Vec::with_capacity(prepared.len());
                for rows in prepared {
                    let outcome = match rows {
                        Ok(rows) => {
                            let (outcome, clean) = in_savepoint(tx, |tx| rows.append_in(tx));
                            if !clean {
                                // The transaction is in an unknown state: fail the job, so the
                                // writer rolls it back (every append of the call with it).
                                return Err(StoreError::Unavailable(
                                    "an append of a batch could not be rolled back".into(),
                                ));
                            }
                            outcome
                        }
                        Err(e) => Err(e.into()),
                    };
                    outcomes.push(outcome);
                }
                Ok::<_, StoreError>(outcomes)
            })
            .await;
        written.unwrap_or_else(|e| vec![Err(e.into()); appends.len()])
    }

    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        self.db.read(move |conn| load_in(conn, order_id)).await
    }

    /// One read job for the whole call: a hop to the blocking pool and a wake-up back per
    /// batch rather than per order. Each history is its own statement (a consistent snapshot
    /// per order, as [`load`](EventStore::load) gives).
    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        let ids = order_ids.to_vec();
        let loaded = self
            .db
            .read(move |conn| {
                Ok::<_, StoreError>(ids.into_iter().map(|id| load_in(conn, id)).collect())
            })
            .await;
        loaded.unwrap_or_else(|e| vec![Err(e); order_ids.len()])
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let after = match cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| StoreError::Rejected(format!("{c:?} is not a read_all cursor")))?,
        };
        let limit = limit.max(1);
        let page = self.read_feed(after, limit).await?;
        let next = match page.last() {
            Some((seq, _)) if page.len() >= limit => Some(seq.to_string()),
            _ => None,
        };
        Ok(EventPage {
            events: page.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }
}

/// A checked [`EventStore::append`] batch, encoded for the `events` table off the writer
/// thread, to be written by [`append_in`](Self::append_in) inside a write job.
pub(super) struct AppendRows {
    order_id: OrderId,
    first: Version,
    rows: Vec<(StoredEvent, String)>,
}

impl AppendRows {
    pub(super) fn new(events: &[EventEnvelope]) -> Result<Self, StoreError> {
        let head = check_append_batch(events)?;
        let rows = events
            .iter()
            .map(|e| {
                let s = e.to_stored();
                let payload = serde_json::to_string(&s.payload).map_err(|err| {
                    StoreError::Rejected(format!("event {} payload: {err}", e.event_id))
                })?;
                Ok((s, payload))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            order_id: head.order_id,
            first: head.version,
            rows,
        })
    }

    /// Appends the batch with the checks of [`EventStore::append`] (conflict, gap, reused event
    /// id), on the writer connection inside the caller's write job.
    pub(super) fn append_in(&self, tx: &Connection) -> Result<(), AppendError> {
        append_in(tx, self.order_id, self.first, &self.rows)
    }
}

/// An `events` row that does not decode into an event, as far as it can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableRow {
    pub order_id: Option<String>,
    pub event_id: Option<String>,
    pub reason: String,
}

/// Keyset pagination on the `(order_id, version)` unique index: `SELECT DISTINCT order_id`
/// walks the index, so an order whose version 1 is missing is listed too. One segment only.
#[async_trait]
impl OrderScan for SqliteEventStore {
    fn segments(&self) -> u32 {
        1
    }

    async fn list_orders(
        &self,
        segment: ScanSegment,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<OrderIdPage, StoreError> {
        segment.check(1)?;
        let after = match cursor {
            None => String::new(),
            Some(c) => OrderId::parse(&c)
                .map_err(|_| StoreError::Rejected(format!("{c:?} is not a list_orders cursor")))?
                .to_string(),
        };
        let limit = limit.max(1);
        let sql_limit = clamp_limit(limit);
        let raw: Vec<String> = self
            .db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT DISTINCT order_id FROM events WHERE order_id > ?1
                         ORDER BY order_id LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![after, sql_limit], |r| r.get::<_, String>(0))
                    .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err)).collect::<Result<_, _>>()
            })
            .await?;
        let next = match raw.last() {
            Some(last) if raw.len() >= limit => Some(last.clone()),
            _ => None,
        };
        let order_ids = raw
            .iter()
            .map(|id| {
                OrderId::parse(id)
                    .map_err(|_| StoreError::Corrupt(format!("events: bad order_id {id:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(OrderIdPage { order_ids, next })
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
                    .map(to_u64)
                    .map_err(map_err)
            })
            .await
    }
}

fn append_in(
    tx: &Connection,
    order_id: OrderId,
    first: Version,
    rows: &[(StoredEvent, String)],
) -> Result<(), AppendError> {
    let key = order_id.to_string();
    let current: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM events WHERE order_id = ?1")
        .and_then(|mut s| s.query_row([&key], |r| r.get(0)))
        .map_err(map_err)?;
    let first_n = i64::from(first.get());
    if first_n <= current {
        return Err(AppendError::Conflict {
            order_id,
            version: first,
        });
    }
    if first_n != current + 1 {
        return Err(StoreError::Rejected(format!(
            "order {order_id} is at version {current}; appending version {first} would leave a gap"
        ))
        .into());
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO events (order_id, version, event_id, event_type, schema_version,
                                 occurred_at, correlation_id, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(map_err)?;
    for (s, payload) in rows {
        let inserted = stmt.execute(params![
            key,
            s.version.get(),
            s.event_id.to_string(),
            s.event_type,
            s.schema_version,
            s.occurred_at,
            s.correlation_id,
            payload,
        ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e, "events.order_id, events.version") => {
                return Err(AppendError::Conflict {
                    order_id,
                    version: s.version,
                })
            }
            Err(e) if is_unique_violation(&e, "events.event_id") => {
                return Err(StoreError::Rejected(format!(
                    "event id {} is already stored",
                    s.event_id
                ))
                .into())
            }
            Err(e) => return Err(map_err(e).into()),
        }
    }
    Ok(())
}

/// Every event of one order, in version order.
fn load_in(
    conn: &rusqlite::Connection,
    order_id: OrderId,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE order_id = ?1 ORDER BY version"
        ))
        .map_err(map_err)?;
    let rows = stmt
        .query_map([order_id.to_string()], read_row)
        .map_err(map_err)?;
    rows.map(|r| decode(r.map_err(map_err)??.1)).collect()
}

/// A row as `(seq, stored event)`; a malformed column is `Err(Corrupt)` inside `Ok`, so that
/// rusqlite's own errors and decode errors stay apart.
pub(super) fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<(u64, StoredEvent), StoreError>> {
    let seq: i64 = row.get(0)?;
    let order_id: String = row.get(1)?;
    let version: i64 = row.get(2)?;
    let event_id: String = row.get(3)?;
    let event_type: String = row.get(4)?;
    let schema_version: i64 = row.get(5)?;
    let occurred_at: String = row.get(6)?;
    let correlation_id: String = row.get(7)?;
    let payload: String = row.get(8)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("event seq {seq}: bad {what}"));
    Ok((|| {
        let stored = StoredEvent {
            order_id: OrderId::parse(&order_id).map_err(|_| corrupt("orderId"))?,
            version: u32::try_from(version)
                .ok()
                .and_then(Version::new)
                .ok_or_else(|| corrupt("version"))?,
            event_id: uuid::Uuid::try_parse(&event_id)
                .map(EventId::from_uuid)
                .map_err(|_| corrupt("eventId"))?,
            event_type,
            schema_version: u32::try_from(schema_version).map_err(|_| corrupt("schemaVersion"))?,
            occurred_at,
            correlation_id,
            payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        };
        Ok((to_u64(seq), stored))
    })())
}

pub(super) fn decode(stored: StoredEvent) -> Result<EventEnvelope, StoreError> {
    let what = format!("event {} of order {}", stored.event_id, stored.order_id);
    stored
        .decode()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn clamp_limit(limit: usize) -> i64 {
    i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
}
