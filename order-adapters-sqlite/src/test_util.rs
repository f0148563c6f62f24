//! Fixtures for tests that need this crate's own types (feature `test-util`, enabled only in
//! `[dev-dependencies]`, so no function binary compiles this module).

use std::sync::Arc;

use events_schema::{EventEnvelope, MinorUnits};
use tempfile::TempDir;

use order_ports::EventStore;

use crate::SqliteDb;

/// A fresh SQLite database in a temporary directory, deleted when this is dropped (keep it
/// alive as long as the ports built from [`db`](Self::db) are used).
pub struct TempSqlite {
    db: SqliteDb,
    // Dropped after `db`: fields drop in declaration order.
    dir: TempDir,
}

impl TempSqlite {
    /// Panics if the directory or the database cannot be created.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open the database");
        Self { db, dir }
    }

    pub fn db(&self) -> &SqliteDb {
        &self.db
    }

    /// The directory holding the database file (for tests that open it again).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The event store, as the handler libs take it.
    pub fn events(&self) -> Arc<dyn EventStore> {
        Arc::new(self.db.event_store())
    }

    /// Appends the `OrderReceived` of a new order (see [`order_test_support::order_received`]) and
    /// returns that event; its `order_id` is the new order's id. Panics if the append fails.
    pub async fn append_received_order(
        &self,
        quantity: u32,
        unit_price: MinorUnits,
    ) -> EventEnvelope {
        let received = order_test_support::order_received(quantity, unit_price);
        self.db
            .event_store()
            .append(std::slice::from_ref(&received))
            .await
            .expect("append OrderReceived");
        received
    }
}

impl Default for TempSqlite {
    fn default() -> Self {
        Self::new()
    }
}
