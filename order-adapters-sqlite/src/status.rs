//! The status view: table `order_status`, one row per order, only ever moving forward.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events_schema::{OrderId, OrderStatusRecord};
use rusqlite::params;
use rusqlite::types::Value;

use super::{map_err, SqliteDb};
use order_ports::{
    check_customer_orders_query, into_status_page, CustomerOrdersQuery, StatusPage, StatusStore,
    StoreError, Upserted,
};
use order_ports::{check_pending_limit, pending_order, PendingPage, PendingPosition};

/// [`StatusStore`] on the `order_status` table. The full record is kept as JSON (column
/// `record`, the same camelCase shape as the DynamoDB item); `version`, `status`,
/// `customer_id`, `created_at` and `updated_at` are also columns, for the version guard and
/// the `(customer_id, created_at, order_id)` index that [`StatusStore::list_by_customer`]
/// walks backwards (keyset pagination: the cursor is the last row's `(created_at, order_id)`).
#[derive(Clone, Debug)]
pub struct SqliteStatusStore {
    pub(super) db: SqliteDb,
}

#[async_trait]
impl StatusStore for SqliteStatusStore {
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
        let key = order_id.to_string();
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT record FROM order_status WHERE order_id = ?1")
                    .map_err(map_err)?;
                let mut rows = stmt.query([&key]).map_err(map_err)?;
                match rows.next().map_err(map_err)? {
                    Some(row) => decode(&row.get::<_, String>(0).map_err(map_err)?).map(Some),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError> {
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Rejected(format!("status record: {e}")))?;
        let r = record.clone();
        self.db.write(move |tx| upsert_row(tx, &r, &json)).await
    }

    /// Reads in chunks of [`GET_MANY_CHUNK`] ids, each one `IN (…)` statement, all in one
    /// read transaction (one snapshot).
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        let keys: Vec<String> = order_ids.iter().map(ToString::to_string).collect();
        self.db
            .read(move |conn| {
                conn.execute_batch("BEGIN").map_err(map_err)?;
                let found = read_many(conn, &keys);
                let _ = conn.execute_batch("COMMIT");
                found
            })
            .await
    }

    /// One write job (so one transaction: all the records or none), one statement per record.
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        let encoded: Result<Vec<(OrderStatusRecord, String)>, StoreError> = records
            .iter()
            .map(|r| {
                serde_json::to_string(r)
                    .map(|json| (r.clone(), json))
                    .map_err(|e| StoreError::Rejected(format!("status record: {e}")))
            })
            .collect();
        let encoded = match encoded {
            Ok(encoded) => encoded,
            Err(e) => return records.iter().map(|_| Err(e.clone())).collect(),
        };
        let written = self
            .db
            .write(move |tx| {
                encoded
                    .iter()
                    .map(|(r, json)| upsert_row(tx, r, json))
                    .collect::<Result<Vec<Upserted>, StoreError>>()
            })
            .await;
        match written {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) => records.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn list_by_customer(
        &self,
        query: &CustomerOrdersQuery,
    ) -> Result<StatusPage, StoreError> {
        let after = check_customer_orders_query(query)?;
        let limit = query.limit;
        // One statement per combination of filter and cursor, rather than `?n IS NULL OR …`
        // clauses that would keep SQLite from seeking the index to the cursor.
        let mut sql = String::from("SELECT record FROM order_status WHERE customer_id = ?");
        let mut args = vec![Value::Text(query.customer_id.as_str().to_owned())];
        if let Some(status) = query.status {
            sql.push_str(" AND status = ?");
            args.push(Value::Text(status.as_str().to_owned()));
        }
        if let Some(after) = after {
            sql.push_str(" AND (created_at, order_id) < (?, ?)");
            args.push(Value::Text(after.created_at));
            args.push(Value::Text(after.order_id.to_string()));
        }
        sql.push_str(" ORDER BY created_at DESC, order_id DESC LIMIT ?");
        // One more than the page: it tells whether there is a next page.
        args.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
        let records = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))
                    .map_err(map_err)?;
                rows.map(|r| decode(&r.map_err(map_err)?))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        into_status_page(records, limit)
    }

    async fn pending_before(
        &self,
        before: DateTime<Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        self.pending_page(before, cursor, limit).await
    }
}

/// The most ids one `IN (…)` of [`StatusStore::get_many`] binds.
const GET_MANY_CHUNK: usize = 500;

fn read_many(
    conn: &rusqlite::Connection,
    keys: &[String],
) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(GET_MANY_CHUNK) {
        let sql = format!(
            "SELECT record FROM order_status WHERE order_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(chunk), |r| r.get::<_, String>(0))
            .map_err(map_err)?;
        for row in rows {
            let record = decode(&row.map_err(map_err)?)?;
            found.insert(record.order_id, record);
        }
    }
    Ok(found)
}

/// The forward-only write of one record: only if none is stored or the stored one is older.
fn upsert_row(
    tx: &rusqlite::Connection,
    r: &OrderStatusRecord,
    json: &str,
) -> Result<Upserted, StoreError> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO order_status
                 (order_id, version, status, customer_id, created_at, updated_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (order_id) DO UPDATE SET
                 version = excluded.version,
                 status = excluded.status,
                 customer_id = excluded.customer_id,
                 created_at = excluded.created_at,
                 updated_at = excluded.updated_at,
                 record = excluded.record
             WHERE excluded.version > order_status.version",
        )
        .and_then(|mut s| {
            s.execute(params![
                r.order_id.to_string(),
                r.version.get(),
                r.status.as_str(),
                r.customer_id.as_str(),
                r.created_at,
                r.updated_at,
                json,
            ])
        })
        .map_err(map_err)?;
    Ok(if changed > 0 {
        Upserted::Written
    } else {
        Upserted::Stale
    })
}

fn decode(json: &str) -> Result<OrderStatusRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("order_status record: {e}")))
}

/// One page of pending orders after a `(updated_at, order_id)` position, plus one row to tell
/// whether there is more. Its status predicate is the one of the partial index
/// `order_status_pending` (schema in `sqlite/mod.rs`), which SQLite needs to use that index.
/// A view the reconciler set aside at its current version (`pending_set_aside`, ADR 11) is
/// left out: one primary-key probe per pending row, on a table that holds only broken orders.
const PENDING_PAGE: &str =
    "SELECT o.order_id, o.status, o.updated_at, o.version FROM order_status o
     WHERE o.status IN ('RECEIVED', 'PROCESSING')
       AND o.updated_at < ?1 AND (o.updated_at, o.order_id) > (?2, ?3)
       AND NOT EXISTS (SELECT 1 FROM pending_set_aside s
                       WHERE s.order_id = o.order_id AND s.version = o.version)
     ORDER BY o.updated_at, o.order_id LIMIT ?4";

impl SqliteStatusStore {
    /// [`StatusStore::pending_before`] on the partial index `order_status_pending`
    /// (`updated_at, order_id`, only non-terminal rows): a keyset walk by `(updated_at,
    /// order_id)`, reading one row more than the page to know whether there is a next one.
    async fn pending_page(
        &self,
        before: DateTime<Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError> {
        check_pending_limit(limit)?;
        let after = cursor.as_deref().map(PendingPosition::decode).transpose()?;
        if after.as_ref().is_some_and(|p| p.shard != 0) {
            return Err(StoreError::Rejected(format!(
                "not a cursor of this store: {cursor:?}"
            )));
        }
        let before = events_schema::envelope::format_timestamp(before);
        let (after_time, after_order) = after
            .map(|p| (p.sort_key, p.order_id.to_string()))
            .unwrap_or_default();
        let wanted = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let rows: Vec<(String, String, String, i64)> = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(PENDING_PAGE).map_err(map_err)?;
                let rows = stmt
                    .query_map(params![before, after_time, after_order, wanted], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err)).collect()
            })
            .await?;
        let more = rows.len() > limit;
        let mut orders = Vec::with_capacity(limit.min(rows.len()));
        let mut last = None;
        for (order_id, status, updated_at, version) in rows.into_iter().take(limit) {
            orders.push(pending_order(&order_id, &status, version, &updated_at)?);
            last = Some(updated_at);
        }
        let next = match (more, last, orders.last()) {
            (true, Some(updated_at), Some(order)) => Some(
                PendingPosition {
                    shard: 0,
                    sort_key: updated_at,
                    order_id: order.order_id,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(PendingPage { orders, next })
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[tokio::test]
    async fn the_pending_query_reads_the_partial_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("t.db")).expect("open");
        let plan: Vec<String> = db
            .read(|conn| {
                let mut stmt = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {PENDING_PAGE}"))
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params!["z", "", "", 10], |r| r.get::<_, String>(3))
                    .map_err(map_err)?;
                rows.map(|r| r.map_err(map_err))
                    .collect::<Result<_, StoreError>>()
            })
            .await
            .expect("plan");
        let plan = plan.join("\n");
        assert!(plan.contains("order_status_pending"), "{plan}");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "sorts instead of walking the index: {plan}"
        );
    }
}
