//! The reconciler Lambda, invoked by the `ReconcileSchedule` rule of `template.yaml` (EventBridge,
//! `rate(5 minutes)` by default) or by hand (`aws lambda invoke`). The event is ignored: one run
//! reconciles everything pending longer than the configured age (re-enqueues, re-projects or
//! sets aside each order: ADR 11), logs the report as JSON and returns it.

use std::time::Duration;

use lambda_runtime::{service_fn, LambdaEvent};
use order_adapters_aws::iam::Permission;
use order_adapters_aws::{iam, AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue};
use order_lambda::{init_logging, EnvReader, FromEnv};
use order_ports::StoreError;

use crate::{reconcile, Ports, ReconcileReport, DEFAULT_OLDER_THAN};

const OLDER_THAN_VAR: &str = "RECONCILE_OLDER_THAN_SECONDS";

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`reconcile`] queries the sparse `pending` index of the status table and reads the views it
/// points to, loads those orders' histories from the event table, and then sends to the work
/// queue, re-projects a view (the projector's conditional `PutItem`) or sets one aside (a
/// conditional `UpdateItem`). `orders/tests/template.rs` checks the role in `template.yaml`
/// grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoStatusStore::PENDING_BEFORE,
    DynamoStatusStore::GET_MANY,
    DynamoEventStore::LOAD,
    DynamoStatusStore::UPSERT,
    DynamoStatusStore::SET_ASIDE_PENDING,
    SqsWorkQueue::SEND,
    iam::LOGS,
];

/// The most orders one log line lists (a CloudWatch log event holds at most 256 KB); the
/// returned report has them all.
const LOGGED_ORDERS: usize = 1_000;

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    pub status_table: String,
    pub work_queue_url: String,
    /// `RECONCILE_OLDER_THAN_SECONDS`: whole seconds >= 1, [`DEFAULT_OLDER_THAN`] when unset.
    pub older_than: Duration,
}

impl FromEnv for Config {
    /// The environment variables [`run`] requires (`template.yaml` sets exactly these).
    const REQUIRED: &'static [&'static str] = &["EVENTS_TABLE", "STATUS_TABLE", "WORK_QUEUE_URL"];
    /// The environment variables [`run`] reads when they are set: the age in whole seconds after
    /// which a pending order is re-enqueued ([`DEFAULT_OLDER_THAN`] when unset).
    const OPTIONAL: &'static [&'static str] = &[OLDER_THAN_VAR];

    fn read(env: &mut EnvReader<'_>) -> Self {
        Config {
            events_table: env.required("EVENTS_TABLE"),
            status_table: env.required("STATUS_TABLE"),
            work_queue_url: env.required("WORK_QUEUE_URL"),
            older_than: env
                .optional_parsed::<std::num::NonZeroU64>(
                    OLDER_THAN_VAR,
                    "must be a whole number of seconds >= 1",
                )
                .map_or(DEFAULT_OLDER_THAN, |s| Duration::from_secs(s.get())),
        }
    }
}

/// One run: reconciles as of now, then logs the report (a warning when it found anything).
pub async fn handle(ports: Ports<'_>, older_than: Duration) -> Result<ReconcileReport, StoreError> {
    let report = reconcile(ports, older_than, false, chrono::Utc::now()).await?;
    let logged = log_form(&report);
    if report.orders.is_empty() {
        tracing::info!(found = 0, report = %logged, "nothing pending too long");
    } else {
        tracing::warn!(
            found = report.orders.len(),
            reenqueued = report.reenqueued,
            reprojected = report.reprojected,
            unfoldable = report.unfoldable,
            viewAhead = report.view_ahead,
            report = %logged,
            "repaired orders pending too long"
        );
    }
    Ok(report)
}

/// The report as one JSON line, its order list cut at [`LOGGED_ORDERS`] (`ordersOmitted` says
/// how many more there were).
fn log_form(report: &ReconcileReport) -> String {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if report.orders.len() > LOGGED_ORDERS {
        if let Some(orders) = value.get_mut("orders").and_then(|o| o.as_array_mut()) {
            orders.truncate(LOGGED_ORDERS);
        }
        value["ordersOmitted"] = (report.orders.len() - LOGGED_ORDERS).into();
    }
    value.to_string()
}

/// Wires configuration (`EVENTS_TABLE`, `STATUS_TABLE`, `WORK_QUEUE_URL`; optional
/// `RECONCILE_OLDER_THAN_SECONDS`), the SDK clients and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let Config {
        events_table,
        status_table,
        work_queue_url,
        older_than,
    } = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let events = DynamoEventStore::new(clients.dynamodb.clone(), events_table);
    let status = DynamoStatusStore::new(clients.dynamodb, status_table);
    let queue = SqsWorkQueue::new(clients.sqs, work_queue_url);
    let ports = Ports {
        events: &events,
        status: &status,
        repair: &status,
        queue: &queue,
    };
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(handle(ports, older_than).await?)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use events_schema::{OrderId, OrderStatus, Version};

    use super::*;
    use crate::{Action, StuckOrder};
    use order_lambda::ConfigError;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        order_test_support::config_from(vars)
    }

    #[test]
    fn the_age_is_whole_seconds_and_defaults_to_five_minutes() {
        let base = [
            ("EVENTS_TABLE", "e"),
            ("STATUS_TABLE", "s"),
            ("WORK_QUEUE_URL", "q"),
        ];
        assert_eq!(config(&base).map(|c| c.older_than), Ok(DEFAULT_OLDER_THAN));
        let with = |v: &'static str| {
            let mut vars = base.to_vec();
            vars.push((OLDER_THAN_VAR, v));
            config(&vars)
        };
        assert_eq!(with(" ").map(|c| c.older_than), Ok(DEFAULT_OLDER_THAN));
        assert_eq!(
            with("90").map(|c| c.older_than),
            Ok(Duration::from_secs(90))
        );
        for bad in ["0", "-5", "5m", "1.5"] {
            let err = with(bad).expect_err(bad);
            assert!(format!("{err}").contains(OLDER_THAN_VAR), "{err}");
        }
    }

    #[test]
    fn an_empty_environment_names_exactly_the_required_variables_and_reads_only_declared_ones() {
        order_test_support::assert_config_reads_exactly::<Config>();
    }

    #[test]
    fn a_huge_report_is_logged_with_its_first_orders_and_a_count_of_the_rest() {
        let now = chrono::Utc::now();
        let report = ReconcileReport {
            cutoff: now,
            older_than_seconds: 300,
            dry_run: false,
            orders: (0..LOGGED_ORDERS + 5)
                .map(|_| StuckOrder {
                    order_id: OrderId::new_random(),
                    status: OrderStatus::Received,
                    version: Version::FIRST,
                    updated_at: now,
                    action: Action::Reenqueued,
                    detail: None,
                })
                .collect(),
            reenqueued: LOGGED_ORDERS + 5,
            reprojected: 0,
            unfoldable: 0,
            view_ahead: 0,
        };
        let logged: serde_json::Value =
            serde_json::from_str(&log_form(&report)).expect("one JSON document");
        assert_eq!(
            logged["orders"].as_array().map(Vec::len),
            Some(LOGGED_ORDERS)
        );
        assert_eq!(logged["ordersOmitted"], 5);
        assert_eq!(logged["reenqueued"], LOGGED_ORDERS + 5);

        // Up to the limit, the report is logged whole, without an `ordersOmitted`.
        for kept in [2, LOGGED_ORDERS] {
            let small = ReconcileReport {
                orders: report.orders[..kept].to_vec(),
                ..report.clone()
            };
            let logged: serde_json::Value =
                serde_json::from_str(&log_form(&small)).expect("one JSON document");
            assert_eq!(
                logged,
                serde_json::to_value(&small).expect("json"),
                "{kept} orders"
            );
        }
    }
}
