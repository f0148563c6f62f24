//! The status view: table `order_status`, one row per order, only ever moving forward.

use async_trait::async_trait;
use events_schema::{CustomerId, OrderId, OrderStatusRecord};
use rusqlite::params;

use super::{map_err, SqliteDb};
use crate::ports::{StatusStore, StoreError, Upserted};

/// [`StatusStore`] on the `order_status` table. The full record is kept as JSON (column
/// `record`, the same camelCase shape as the DynamoDB item); `version`, `status`,
/// `customer_id`, `created_at` and `updated_at` are also columns, for the version guard and
/// the `(customer_id, created_at)` index.
#[derive(Clone, Debug)]
pub struct SqliteStatusStore {
    pub(super) db: SqliteDb,
}

impl SqliteStatusStore {
    /// Up to `limit` records of one customer, oldest `createdAt` first (like a DynamoDB query
    /// on the `byCustomer` index with the default ascending order).
    pub async fn list_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<OrderStatusRecord>, StoreError> {
        let customer = customer.as_str().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT record FROM order_status WHERE customer_id = ?1
                         ORDER BY created_at, order_id LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![customer, limit], |r| r.get::<_, String>(0))
                    .map_err(map_err)?;
                rows.map(|r| decode(&r.map_err(map_err)?)).collect()
            })
            .await
    }
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
}

fn decode(json: &str) -> Result<OrderStatusRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("order_status record: {e}")))
}
