//! The atomic hand-off: an order's `OrderReceived` and its work message commit together.

use async_trait::async_trait;
use events_schema::{EventEnvelope, OrderId};

use super::event_store::AppendRows;
use super::queue::enqueue_in;
use super::SqliteDb;
use order_ports::{check_intake, AppendError, OrderIntake, StoreError};

/// [`OrderIntake`] on the one SQLite file: the event row and the queue row are written by one
/// write job, so they commit together or not at all — an order is in the log if and only if it
/// is queued or was processed.
#[derive(Clone, Debug)]
pub struct SqliteIntake {
    db: SqliteDb,
}

impl SqliteDb {
    pub fn intake(&self) -> SqliteIntake {
        SqliteIntake { db: self.clone() }
    }
}

#[async_trait]
impl OrderIntake for SqliteIntake {
    async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError> {
        check_intake(received)?;
        let rows = AppendRows::new(std::slice::from_ref(received))?;
        let body = received.order_id.to_string();
        self.db
            .write(move |tx| {
                rows.append_in(tx)?;
                enqueue_in(tx, &body)?;
                Ok::<_, AppendError>(())
            })
            .await?;
        self.db.queue_signal().notify_waiters();
        Ok(())
    }

    async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError> {
        let body = order_id.to_string();
        self.db.write(move |tx| enqueue_in(tx, &body)).await?;
        self.db.queue_signal().notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use events_schema::{CorrelationId, OrderEvent, OrderRequest, Version};

    use super::*;
    use order_ports::{EventStore, WorkQueue};

    fn temp_db() -> (tempfile::TempDir, SqliteDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open db");
        (dir, db)
    }

    fn received(order_id: OrderId) -> EventEnvelope {
        let order = OrderRequest::validate(&serde_json::json!({
            "customerId": "c", "items": [{"productId": "p", "quantity": 1, "unitPrice": 5}]
        }))
        .expect("valid order");
        EventEnvelope::new(
            order_id,
            Version::FIRST,
            CorrelationId::generate(),
            OrderEvent::OrderReceived(order),
        )
    }

    async fn queued_bodies(db: &SqliteDb) -> Vec<String> {
        db.work_queue_default()
            .receive(100, Duration::from_secs(30))
            .await
            .expect("receive")
            .into_iter()
            .map(|d| d.body)
            .collect()
    }

    #[tokio::test]
    async fn accepting_an_order_logs_and_queues_it() {
        let (_dir, db) = temp_db();
        let order = OrderId::new_random();
        let event = received(order);
        db.intake().accept(&event).await.expect("accept");
        assert_eq!(db.event_store().load(order).await.expect("load"), [event]);
        assert_eq!(queued_bodies(&db).await, [order.to_string()]);
    }

    #[tokio::test]
    async fn a_conflicting_version_1_leaves_the_queue_untouched() {
        let (_dir, db) = temp_db();
        let order = OrderId::new_random();
        let first = received(order);
        db.event_store()
            .append(std::slice::from_ref(&first))
            .await
            .expect("append");
        let err = db
            .intake()
            .accept(&received(order))
            .await
            .expect_err("version 1 exists");
        assert!(
            matches!(err, AppendError::Conflict { order_id, .. } if order_id == order),
            "{err:?}"
        );
        assert_eq!(db.work_queue_default().depth().await.expect("depth"), 0);
        assert_eq!(db.event_store().load(order).await.expect("load"), [first]);
    }

    #[tokio::test]
    async fn an_enqueue_that_fails_takes_the_append_back_with_it() {
        let (_dir, db) = temp_db();
        rusqlite::Connection::open(db.path())
            .expect("raw connection")
            .execute_batch("DROP TABLE queue")
            .expect("drop the queue table");
        let order = OrderId::new_random();
        let err = db
            .intake()
            .accept(&received(order))
            .await
            .expect_err("no queue to write to");
        assert!(matches!(err, AppendError::Store(_)), "{err:?}");
        assert!(db.event_store().load(order).await.expect("load").is_empty());
        assert_eq!(db.head_seq().await.expect("head"), 0);
    }

    #[tokio::test]
    async fn only_a_version_1_order_received_is_taken_in() {
        let (_dir, db) = temp_db();
        let order = OrderId::new_random();
        let mut later = received(order);
        later.version = Version::new(2).expect("v2");
        let err = db.intake().accept(&later).await.expect_err("version 2");
        assert!(
            matches!(err, AppendError::Store(StoreError::Rejected(_))),
            "{err:?}"
        );
        let started = EventEnvelope::new(
            order,
            Version::FIRST,
            CorrelationId::generate(),
            OrderEvent::OrderProcessingStarted,
        );
        let err = db
            .intake()
            .accept(&started)
            .await
            .expect_err("not received");
        assert!(
            matches!(err, AppendError::Store(StoreError::Rejected(_))),
            "{err:?}"
        );
        assert_eq!(db.head_seq().await.expect("head"), 0);
        assert_eq!(db.work_queue_default().depth().await.expect("depth"), 0);
    }

    #[tokio::test]
    async fn a_requeue_sends_the_order_again() {
        let (_dir, db) = temp_db();
        let order = OrderId::new_random();
        db.intake().accept(&received(order)).await.expect("accept");
        db.intake().requeue(order).await.expect("requeue");
        assert_eq!(
            queued_bodies(&db).await,
            [order.to_string(), order.to_string()]
        );
        assert_eq!(db.head_seq().await.expect("head"), 1);
    }
}
