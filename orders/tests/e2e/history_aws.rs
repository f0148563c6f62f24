//! The analyst commands on `--backend aws` over a history made by the real pipeline: `orders
//! serve --backend aws` on the emulator takes the orders, then `orders events` (NDJSON, CSV,
//! Parquet, filters), `orders replay` and `orders stats` read the tables back, each checked
//! against the event table itself. The export's external sort is forced to spill runs of a few
//! events, so its merge runs here too. Needs `ORDERS_TEST_AWS_ENDPOINT`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use events_schema::{EventEnvelope, OrderId, OrderStatus, OrderView};
use order_adapters_aws::{DynamoEventStore, DynamoStatusStore};
use order_ports::{ExportPosition, StatusStore};
use serde_json::{json, Value};

use crate::events_export::{batches, expected_row, parquet_rows, COLUMNS};
use crate::serve_aws::{endpoint, provision_stack, start_serve, Stack};
use crate::support::*;
use crate::tools::{stderr, stdout};

/// Events per sorted run of the export: a history of a few dozen events spills several.
const RUN: &str = "7";

/// Runs `orders <command> --backend aws …` on the stack, with the export's debug log on stderr.
fn orders_aws(endpoint: &str, stack: &Stack, command: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(command)
        .args(["--backend", "aws", "--endpoint-url", endpoint])
        .args(["--events-table", &stack.events_table])
        .args(["--status-table", &stack.status_table])
        .env("ORDERS_LOG", "warn,orders::events=debug")
        .env_remove("ORDERS_DATA")
        .env_remove("ORDERS_BACKEND")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run orders");
    assert!(
        output.status.success(),
        "orders {command:?}: {}",
        stderr(&output)
    );
    output
}

fn ndjson(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// The number of runs the export says it spilled.
fn spilled_runs(output: &Output) -> usize {
    // Without the log's colours (ESC [ … m).
    let mut err = String::new();
    let mut in_escape = false;
    for c in stderr(output).chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => err.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    let at = err
        .find("spilled_runs=")
        .unwrap_or_else(|| panic!("no spill count in the debug log: {err}"));
    err[at + "spilled_runs=".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// What every order's fold of the events that occurred by `as_of` (all of them with `None`)
/// says: the status counts and the completed totals per currency.
fn folded(
    log: &[EventEnvelope],
    as_of: Option<DateTime<Utc>>,
) -> (BTreeMap<&'static str, u64>, BTreeMap<String, i64>, u64) {
    let mut histories: HashMap<OrderId, Vec<EventEnvelope>> = HashMap::new();
    for e in log {
        if as_of.is_none_or(|t| e.occurred_at <= t) {
            histories.entry(e.order_id).or_default().push(e.clone());
        }
    }
    let mut by_status = BTreeMap::new();
    let mut totals = BTreeMap::new();
    for status in ["RECEIVED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"] {
        by_status.insert(status, 0);
    }
    for history in histories.values_mut() {
        history.sort_by_key(|e| e.version);
        let view = OrderView::fold(history.iter())
            .expect("folds")
            .expect("exists");
        *by_status.get_mut(view.status.as_str()).expect("a status") += 1;
        if view.status == OrderStatus::Completed {
            *totals.entry(view.currency.as_str().to_owned()).or_default() += view.total;
        }
    }
    (by_status, totals, histories.len() as u64)
}

/// Waits until the projector has every order at version 3 in the status table, and the
/// byCustomer index lists every order of each customer (what `--customer` reads).
async fn wait_for_the_view(stack: &Stack, customers: &HashMap<String, HashSet<OrderId>>) {
    let status = DynamoStatusStore::new(stack.clients.dynamodb.clone(), &stack.status_table);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (customer, ids) in customers {
        loop {
            let page = status
                .list_by_customer(&order_ports::CustomerOrdersQuery {
                    customer_id: events_schema::CustomerId::parse(customer.as_str())
                        .expect("a customer"),
                    status: Some(OrderStatus::Completed),
                    limit: 100,
                    cursor: None,
                })
                .await
                .expect("byCustomer");
            let listed: HashSet<OrderId> = page.records.iter().map(|r| r.order_id).collect();
            if &listed == ids {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{customer}: {} of {} orders projected after 60 s",
                listed.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_replay_and_stats_on_aws_read_every_event_of_a_pipeline_history_once_in_order() {
    let endpoint = endpoint();
    let stack = provision_stack(&endpoint).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_serve(&endpoint, &stack, &dir.path().join("checkpoints.db"));
    let client = client();
    let mut customers: HashMap<String, HashSet<OrderId>> = HashMap::new();
    for n in 0..15u32 {
        let customer = ["cust-a", "cust-b", "cust-c"][n as usize % 3];
        let (status, body) = post_order(&client, &server.base, &order_body(customer, n), None)
            .await
            .expect("POST /orders");
        assert_eq!(status, 202, "{body}");
        let id = OrderId::parse(body["orderId"].as_str().expect("orderId")).expect("an id");
        customers.entry(customer.to_owned()).or_default().insert(id);
    }
    let ids: HashSet<String> = customers
        .values()
        .flatten()
        .map(|id| id.to_string())
        .collect();
    wait_until_completed(&client, &server.base, &ids).await;
    wait_for_the_view(&stack, &customers).await;
    server.terminate();

    let table = DynamoEventStore::new(stack.clients.dynamodb.clone(), &stack.events_table);
    let mut log = table.scan_all_parallel(1).await.expect("the event table");
    log.sort_by_key(ExportPosition::of);
    assert_eq!(log.len(), 45, "received, started, completed each");
    let expected: Vec<Value> = log.iter().map(expected_row).collect();

    // NDJSON: every event once, in export order, through spilled runs.
    let out = orders_aws(&endpoint, &stack, &["events", "--sort-run-events", RUN]);
    assert_eq!(ndjson(&out), expected);
    assert!(spilled_runs(&out) >= 45 / 7, "{}", stderr(&out));
    // One segment or many, and no spill at all: the same rows.
    let out = orders_aws(&endpoint, &stack, &["events", "--scan-segments", "1"]);
    assert_eq!(spilled_runs(&out), 0);
    assert_eq!(ndjson(&out), expected);

    // CSV: the header, then every event as its documented row.
    let csv_path = dir.path().join("events.csv");
    let csv_arg = csv_path.to_str().expect("utf-8");
    orders_aws(
        &endpoint,
        &stack,
        &["events", "--format", "csv", "--output", csv_arg],
    );
    let mut reader = csv::Reader::from_path(&csv_path).expect("the CSV file");
    assert_eq!(
        reader
            .headers()
            .expect("a header")
            .iter()
            .collect::<Vec<_>>(),
        COLUMNS
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    assert_eq!(records.len(), expected.len());
    for (record, row) in records.iter().zip(&expected) {
        for (field, column) in record.iter().zip(COLUMNS) {
            let want = match &row[column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, want, "{column} of {row}");
        }
    }

    // Parquet, read back by the Arrow reader.
    let parquet = dir.path().join("events.parquet");
    orders_aws(
        &endpoint,
        &stack,
        &[
            "events",
            "--format",
            "parquet",
            "--output",
            parquet.to_str().expect("utf-8"),
            "--sort-run-events",
            RUN,
        ],
    );
    assert_eq!(parquet_rows(&batches(&parquet)), expected);

    // The filters: one order (a Query), one customer (byCustomer, then a Query per order), a
    // type within a time window (the Scan).
    let one = log[7].order_id;
    let rows = |keep: &dyn Fn(&EventEnvelope) -> bool| -> Vec<Value> {
        log.iter().filter(|e| keep(e)).map(expected_row).collect()
    };
    let out = orders_aws(&endpoint, &stack, &["events", "--order", &one.to_string()]);
    assert_eq!(ndjson(&out), rows(&|e| e.order_id == one));
    let of_b = &customers["cust-b"];
    let out = orders_aws(
        &endpoint,
        &stack,
        &["events", "--customer", "cust-b", "--sort-run-events", RUN],
    );
    assert_eq!(ndjson(&out), rows(&|e| of_b.contains(&e.order_id)));
    assert_eq!(ndjson(&out).len(), 15);
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (since, until) = (log[10].occurred_at, log[40].occurred_at);
    let out = orders_aws(
        &endpoint,
        &stack,
        &[
            "events",
            "--type",
            "OrderCompleted",
            "--since",
            &stamp(since),
            "--until",
            &stamp(until),
        ],
    );
    let window = rows(&|e| {
        e.event_type().as_str() == "OrderCompleted"
            && e.occurred_at >= since
            && e.occurred_at < until
    });
    assert!(!window.is_empty());
    assert_eq!(ndjson(&out), window);

    // replay --as-of, halfway through the history and after it, against the fold of the log.
    for as_of in [log[22].occurred_at, log[44].occurred_at] {
        let out = orders_aws(
            &endpoint,
            &stack,
            &["replay", "--as-of", &stamp(as_of), "--json"],
        );
        let got: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let (by_status, totals, orders) = folded(&log, Some(as_of));
        assert_eq!(
            got,
            json!({
                "asOf": as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "orders": orders,
                "byStatus": by_status,
                "totals": totals,
            })
        );
    }

    // stats: every order received, completed or failed as the log says, the same totals.
    let out = orders_aws(&endpoint, &stack, &["stats", "--json"]);
    let stats: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let (by_status, totals, orders) = folded(&log, None);
    let all = &stats["all"];
    assert_eq!(all["received"], orders, "{stats}");
    assert_eq!(all["completed"], by_status["COMPLETED"], "{stats}");
    assert_eq!(all["failed"], by_status["FAILED"], "{stats}");
    assert_eq!(all["pending"], 0, "{stats}");
    assert_eq!(all["totals"], json!(totals), "{stats}");
}
