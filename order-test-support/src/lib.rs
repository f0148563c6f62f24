//! Fixtures for the tests of the crates built on the ports: orders and histories, the
//! functions' configuration checks, an in-memory [`SetAside`](order_ports::SetAside), and the
//! fault layer ([`fault`]). A dev-dependency only, never a normal one, so no function binary
//! compiles it: `cargo tree -p processor -e normal,features | grep -i test-support` prints
//! nothing.
//!
//! Fixtures that must return an adapter crate's own types stay in that crate, behind its
//! `test-util` feature (`TempSqlite` of the SQLite adapter crate, `provision` of the AWS one), so
//! its unit tests see one copy of its types.

pub mod fault;

use order_lambda::{ConfigError, FromEnv};

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

/// Asserts what every function's [`FromEnv`] config must do: read from an empty environment,
/// it fails naming exactly [`FromEnv::REQUIRED`] (in that order), and it looks up no variable
/// beyond `REQUIRED` and [`FromEnv::OPTIONAL`] — so what a function declares (and the template
/// test checks) cannot drift from what its code reads.
pub fn assert_config_reads_exactly<C: FromEnv + std::fmt::Debug>() {
    let asked = std::cell::RefCell::default();
    let err = C::from_lookup(env_lookup(&[], &asked))
        .expect_err("an empty environment must not be a valid configuration");
    let missing: Vec<&str> = err.0.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(missing, C::REQUIRED);
    let declared: std::collections::BTreeSet<String> = C::REQUIRED
        .iter()
        .chain(C::OPTIONAL)
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(asked.into_inner(), declared);
}

/// `C` read from exactly `vars` (nothing else set).
pub fn config_from<C: FromEnv>(vars: &[(&str, &str)]) -> Result<C, ConfigError> {
    let asked = std::cell::RefCell::default();
    C::from_lookup(env_lookup(vars, &asked))
}

/// A [`SetAside`](order_ports::SetAside) that keeps what it is given in memory (or, built with
/// [`SetAsideLog::failing`], refuses everything as an unavailable queue would).
#[derive(Debug, Default)]
pub struct SetAsideLog {
    fail: bool,
    records: std::sync::Mutex<Vec<order_ports::SetAsideRecord>>,
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
    pub fn records(&self) -> Vec<order_ports::SetAsideRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl order_ports::SetAside for SetAsideLog {
    async fn set_aside(
        &self,
        record: &order_ports::SetAsideRecord,
    ) -> Result<(), order_ports::StoreError> {
        if self.fail {
            return Err(order_ports::StoreError::Unavailable(
                "stream failure queue unavailable".into(),
            ));
        }
        if let Ok(mut records) = self.records.lock() {
            records.push(record.clone());
        }
        Ok(())
    }
}
