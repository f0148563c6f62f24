//! [`StatusRepair`] on the `order_status` table, for `orders rebuild --force`, and the
//! reconciler's `pending_set_aside` table (ADR 11).

use async_trait::async_trait;
use events_schema::{OrderId, OrderStatusRecord, Version};
use rusqlite::params;

use super::{map_err, SqliteStatusStore};
use order_ports::{StatusRepair, StoreError, Upserted};

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
                let changed = tx
                    .prepare_cached(
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
                    .map_err(map_err)?;
                if changed > 0 {
                    // A replaced view is a decision taken by hand: whatever the reconciler
                    // set aside at this order's old (or same) version no longer stands.
                    tx.prepare_cached("DELETE FROM pending_set_aside WHERE order_id = ?1")
                        .and_then(|mut s| s.execute(params![r.order_id.to_string()]))
                        .map_err(map_err)?;
                }
                Ok(changed)
            })
            .await?;
        Ok(if changed > 0 {
            Upserted::Written
        } else {
            Upserted::Stale
        })
    }

    /// One `INSERT … SELECT` from the view, so the row is only written while the view is
    /// pending at `version` (checked in the same write job, hence atomically).
    async fn set_aside_pending(
        &self,
        order_id: OrderId,
        version: Version,
        reason: &str,
    ) -> Result<Upserted, StoreError> {
        let reason = reason.to_owned();
        let at = events_schema::envelope::format_timestamp(chrono::Utc::now());
        let changed = self
            .db
            .write(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO pending_set_aside (order_id, version, reason, set_aside_at)
                     SELECT order_id, version, ?3, ?4 FROM order_status
                     WHERE order_id = ?1 AND version = ?2
                       AND status IN ('RECEIVED', 'PROCESSING')
                     ON CONFLICT (order_id) DO UPDATE SET
                         version = excluded.version,
                         reason = excluded.reason,
                         set_aside_at = excluded.set_aside_at",
                )
                .and_then(|mut s| {
                    s.execute(params![order_id.to_string(), version.get(), reason, at])
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
