//! The status view: table `order_status`, one row per order, only ever moving forward.

use async_trait::async_trait;
use events_schema::{OrderId, OrderStatusRecord};
use rusqlite::params;
use rusqlite::types::Value;

use super::{map_err, SqliteDb};
use crate::ports::{
    check_customer_orders_query, into_status_page, CustomerOrdersQuery, StatusPage, StatusStore,
    StoreError, Upserted,
};

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
        let changed = self
            .db
            .write(move |tx| {
                tx.prepare_cached(
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
                .map_err(map_err)
            })
            .await?;
        Ok(if changed > 0 {
            Upserted::Written
        } else {
            Upserted::Stale
        })
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
}

fn decode(json: &str) -> Result<OrderStatusRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("order_status record: {e}")))
}
