//! Fixtures for the tests of the crates built on the ports (feature `test-util`, enabled only in
//! `[dev-dependencies]`, so no function binary compiles this module).

pub mod fault;

#[cfg(feature = "sqlite")]
pub use self::temp_sqlite::TempSqlite;

use events_schema::{
    CorrelationId, EventEnvelope, MinorUnits, OrderEvent, OrderId, OrderRequest, ValidOrder,
    Version,
};

/// A valid order of customer `c`: `quantity` × product `p` at `unit_price`, in the default
/// currency. Panics if validation refuses those numbers.
pub fn sample_order(quantity: u32, unit_price: MinorUnits) -> ValidOrder {
    OrderRequest::validate(&serde_json::json!({
        "customerId": "c",
        "items": [{"productId": "p", "quantity": quantity, "unitPrice": unit_price}],
    }))
    .expect("sample_order: a valid order")
}

/// The first event of a new order: `OrderReceived` of [`sample_order`], with a fresh id and
/// correlation id.
pub fn order_received(quantity: u32, unit_price: MinorUnits) -> EventEnvelope {
    EventEnvelope::new(
        OrderId::new_random(),
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(sample_order(quantity, unit_price)),
    )
}

/// One order's happy path, as the benches and tests of stream consumers feed it: received (three
/// line items), processing started, completed with the order's total.
pub fn completed_history() -> [EventEnvelope; 3] {
    let body = serde_json::json!({"customerId": "customer-42", "currency": "EUR", "items": [
        {"productId": "sku-1", "quantity": 2, "unitPrice": 1999},
        {"productId": "sku-2", "quantity": 1, "unitPrice": 4500},
        {"productId": "sku-3", "quantity": 10, "unitPrice": 99}]});
    let order = OrderRequest::validate(&body).expect("a valid order");
    let total: MinorUnits = order.total();
    let order_id = OrderId::new_random();
    let correlation_id = CorrelationId::generate();
    let version = |v| Version::new(v).expect("≥ 1");
    [
        EventEnvelope::new(
            order_id,
            version(1),
            correlation_id.clone(),
            OrderEvent::OrderReceived(order),
        ),
        EventEnvelope::new(
            order_id,
            version(2),
            correlation_id.clone(),
            OrderEvent::OrderProcessingStarted,
        ),
        EventEnvelope::new(
            order_id,
            version(3),
            correlation_id,
            OrderEvent::OrderCompleted { total },
        ),
    ]
}

/// A variable lookup for `Config::from_lookup` tests of the functions: answers from `vars` and
/// records in `asked` every name looked up.
pub fn env_lookup<'a>(
    vars: &'a [(&'a str, &'a str)],
    asked: &'a std::cell::RefCell<std::collections::BTreeSet<String>>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        asked.borrow_mut().insert(name.to_owned());
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Asserts what every function's `Config` must do: read from an empty environment, it fails
/// naming exactly `required` (in that order), and it looks up no variable beyond `required` and
/// `optional` — so the `REQUIRED_ENV`/`OPTIONAL_ENV` a function declares (and the template test
/// checks) cannot drift from what its code reads.
#[cfg(feature = "lambda")]
pub fn assert_config_reads_exactly<T: std::fmt::Debug>(
    read: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> Result<T, crate::lambda::ConfigError>,
    required: &[&str],
    optional: &[&str],
) {
    let asked = std::cell::RefCell::default();
    let err = {
        let lookup = env_lookup(&[], &asked);
        read(&lookup).expect_err("an empty environment must not be a valid configuration")
    };
    let missing: Vec<&str> = err.0.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(missing, required);
    let declared: std::collections::BTreeSet<String> = required
        .iter()
        .chain(optional)
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(asked.into_inner(), declared);
}

/// A [`SetAside`](crate::SetAside) that keeps what it is given in memory (or, built with
/// [`SetAsideLog::failing`], refuses everything as an unavailable queue would).
#[derive(Debug, Default)]
pub struct SetAsideLog {
    fail: bool,
    records: std::sync::Mutex<Vec<crate::SetAsideRecord>>,
}

impl SetAsideLog {
    /// Every `set_aside` fails with `Unavailable`.
    pub fn failing() -> Self {
        Self {
            fail: true,
            records: std::sync::Mutex::default(),
        }
    }

    /// What was set aside, in order.
    pub fn records(&self) -> Vec<crate::SetAsideRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl crate::SetAside for SetAsideLog {
    async fn set_aside(&self, record: &crate::SetAsideRecord) -> Result<(), crate::StoreError> {
        if self.fail {
            return Err(crate::StoreError::Unavailable(
                "stream failure queue unavailable".into(),
            ));
        }
        if let Ok(mut records) = self.records.lock() {
            records.push(record.clone());
        }
        Ok(())
    }
}

#[cfg(feature = "sqlite")]
mod temp_sqlite {
    use std::sync::Arc;

    use events_schema::{EventEnvelope, MinorUnits};
    use tempfile::TempDir;

    use crate::sqlite::SqliteDb;
    use crate::EventStore;

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

        /// Appends the `OrderReceived` of a new order (see [`super::order_received`]) and
        /// returns that event; its `order_id` is the new order's id. Panics if the append fails.
        pub async fn append_received_order(
            &self,
            quantity: u32,
            unit_price: MinorUnits,
        ) -> EventEnvelope {
            let received = super::order_received(quantity, unit_price);
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
}
