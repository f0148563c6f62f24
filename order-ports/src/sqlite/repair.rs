//! [`StatusRepair`] on the `order_status` table, for `orders rebuild --force`.

use async_trait::async_trait;
use events_schema::{OrderStatusRecord, Version};
use rusqlite::params;

use super::{map_err, SqliteStatusStore};
use crate::ports::{StatusRepair, StoreError, Upserted};

#[async_trait]
impl StatusRepair for SqliteStatusStore {
    async fn replace(
        &self,
        record: &OrderStatusRecord,
        expected: Version,
    ) -> Result<Upserted, StoreError> {
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Rejected(format!("status record: {e}")))?;
        let r = record.clone();
        let changed = self
            .db
            .write(move |tx| {
                tx.prepare_cached(
                    "UPDATE order_status SET version = ?2, status = ?3, customer_id = ?4,
                         created_at = ?5, updated_at = ?6, record = ?7
                     WHERE order_id = ?1 AND version = ?8",
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
                        expected.get(),
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
