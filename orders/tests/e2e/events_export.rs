//! `orders events` over a history made by the real pipeline: every row of each format checked
//! against the log, the filters, the Parquet file read back by the Arrow reader and by DuckDB,
//! and the one-line errors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use events_schema::{EventEnvelope, StoredEvent};
use order_adapters_sqlite::SqliteDb;
use order_ports::{EventStore, ExportPosition};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

use crate::support::*;
use crate::tools::{orders, stderr, stdout};

pub(crate) const COLUMNS: [&str; 12] = [
    "orderId",
    "version",
    "eventId",
    "eventType",
    "schemaVersion",
    "occurredAt",
    "correlationId",
    "customerId",
    "currency",
    "items",
    "total",
    "reason",
];

/// Serves a fresh file, posts `n` orders over three customers, waits until they are all
/// completed, stops the server. Returns the file and its log in export order.
async fn history(dir: &Path, n: u32) -> (PathBuf, Vec<EventEnvelope>) {
    let data = dir.join("orders.db");
    let server = Server::start(&data);
    let client = client();
    let mut ids = HashSet::new();
    for i in 0..n {
        let customer = ["cust-a", "cust-b", "cust-c"][i as usize % 3];
        let (status, body) = post_order(&client, &server.base, &order_body(customer, i), None)
            .await
            .expect("POST /orders");
        assert_eq!(status, 202, "{body}");
        ids.insert(body["orderId"].as_str().expect("orderId").to_owned());
    }
    wait_until_completed(&client, &server.base, &ids).await;
    server.terminate();
    let mut log = read_log(&data).await;
    log.sort_by_key(ExportPosition::of);
    assert_eq!(
        log.len(),
        3 * n as usize,
        "received, started, completed each"
    );
    (data, log)
}

async fn read_log(data: &Path) -> Vec<EventEnvelope> {
    let store = SqliteDb::open(data).expect("open").event_store();
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.read_all(cursor, 500).await.expect("read_all");
        events.extend(page.events);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return events,
        }
    }
}

/// The documented row of an event, built from its wire form: the envelope's fields, then the
/// payload's, null where the payload has none.
pub(crate) fn expected_row(event: &EventEnvelope) -> Value {
    let wire = serde_json::to_value(StoredEvent::from(event.clone())).expect("wire form");
    let mut row = serde_json::Map::new();
    for column in &COLUMNS[..7] {
        row.insert((*column).to_owned(), wire[*column].clone());
    }
    for column in &COLUMNS[7..] {
        row.insert((*column).to_owned(), wire["payload"][*column].clone());
    }
    Value::Object(row)
}

fn run(data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["events", "--data", data.to_str().expect("utf-8 path")];
    all.extend(args);
    let output = orders(&all);
    assert!(
        output.status.success(),
        "orders {all:?}: {}",
        stderr(&output)
    );
    output
}

fn ndjson(data: &Path, args: &[&str]) -> Vec<Value> {
    stdout(&run(data, args))
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

pub(crate) fn batches(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("the Parquet file");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("a reader")
        .collect::<Result<_, _>>()
        .expect("readable batches")
}

/// Every row of the Parquet file as the documented JSON row, each column read with its type.
pub(crate) fn parquet_rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut rows = Vec::new();
    for batch in batches {
        let text = |name: &str, i: usize| {
            let column = batch.column_by_name(name).expect(name).as_string::<i32>();
            if column.is_null(i) {
                Value::Null
            } else {
                json!(column.value(i))
            }
        };
        let uint = |name: &str, i: usize| {
            json!(batch
                .column_by_name(name)
                .expect(name)
                .as_primitive::<UInt32Type>()
                .value(i))
        };
        let total = batch
            .column_by_name("total")
            .expect("total")
            .as_primitive::<Int64Type>();
        let occurred = batch
            .column_by_name("occurredAt")
            .expect("occurredAt")
            .as_primitive::<TimestampMillisecondType>();
        let items = batch
            .column_by_name("items")
            .expect("items")
            .as_list::<i32>();
        for i in 0..batch.num_rows() {
            let at = chrono::DateTime::from_timestamp_millis(occurred.value(i)).expect("instant");
            let items = if items.is_null(i) {
                Value::Null
            } else {
                let list = items.value(i);
                let list = list.as_struct();
                let product = list.column(0).as_string::<i32>();
                let quantity = list.column(1).as_primitive::<UInt32Type>();
                let price = list.column(2).as_primitive::<Int64Type>();
                Value::Array(
                    (0..list.len())
                        .map(|j| {
                            json!({"productId": product.value(j), "quantity": quantity.value(j),
                                   "unitPrice": price.value(j)})
                        })
                        .collect(),
                )
            };
            rows.push(json!({
                "orderId": text("orderId", i),
                "version": uint("version", i),
                "eventId": text("eventId", i),
                "eventType": text("eventType", i),
                "schemaVersion": uint("schemaVersion", i),
                "occurredAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "correlationId": text("correlationId", i),
                "customerId": text("customerId", i),
                "currency": text("currency", i),
                "items": items,
                "total": if total.is_null(i) { Value::Null } else { json!(total.value(i)) },
                "reason": text("reason", i),
            }));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_holds_every_event_of_the_log_in_time_order_with_the_documented_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, log) = history(dir.path(), 12).await;
    let expected: Vec<Value> = log.iter().map(expected_row).collect();

    // NDJSON, the default, to stdout: the same objects, keys in the documented order.
    let lines = ndjson(&data, &[]);
    assert_eq!(lines, expected);
    // The keys in the documented order, as written (a parsed map would sort them).
    let text = stdout(&run(&data, &["--format", "ndjson"]));
    let first = text.lines().next().expect("a line");
    let at: Vec<usize> = COLUMNS
        .iter()
        .map(|c| first.find(&format!("\"{c}\":")).expect(c))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{first}");

    // CSV to a file: the header, then one record per event; items as JSON text.
    let csv_path = dir.path().join("events.csv");
    run(
        &data,
        &[
            "--format",
            "csv",
            "--output",
            csv_path.to_str().expect("utf-8"),
        ],
    );
    let mut reader = csv::Reader::from_path(&csv_path).expect("the CSV file");
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, COLUMNS);
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("a record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(records.len(), expected.len());
    for (record, row) in records.iter().zip(&expected) {
        for (field, column) in record.iter().zip(COLUMNS) {
            let want = match &row[column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, &want, "{column} of {row}");
        }
    }

    // Parquet, read back by the Arrow reader: the documented types, every row.
    let parquet_path = dir.path().join("events.parquet");
    run(
        &data,
        &[
            "--format",
            "parquet",
            "--output",
            parquet_path.to_str().expect("utf-8"),
        ],
    );
    let batches = batches(&parquet_path);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, COLUMNS);
    let type_of = |name: &str| {
        schema
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(
        type_of("occurredAt"),
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(type_of("version"), DataType::UInt32);
    assert_eq!(type_of("total"), DataType::Int64);
    let DataType::List(item) = type_of("items") else {
        panic!("items is {:?}", type_of("items"));
    };
    let DataType::Struct(fields) = item.data_type() else {
        panic!("an item is {:?}", item.data_type());
    };
    let item_columns: Vec<(&str, &DataType)> = fields
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        item_columns,
        [
            ("productId", &DataType::Utf8),
            ("quantity", &DataType::UInt32),
            ("unitPrice", &DataType::Int64)
        ]
    );
    assert_eq!(parquet_rows(&batches), expected);

    duckdb_reads(&parquet_path, &log);
}

/// DuckDB (from the tools virtualenv, which `scripts/emulator-venv.sh` installs) opens the file
/// unchanged: the row count, a timestamp with time zone, the first row, the nested items.
fn duckdb_reads(parquet: &Path, log: &[EventEnvelope]) {
    // Not canonicalized: the venv's python is a symlink, and only called through it does it
    // find the venv's packages.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/python");
    assert!(
        python.exists(),
        "the tools virtualenv .venv-tools is missing: run scripts/emulator-venv.sh, which \
         installs duckdb (the Parquet export is checked with it)"
    );
    let script = r#"
import json, sys, duckdb
path = sys.argv[1]
q = lambda sql: duckdb.sql(sql.replace("$F", f"read_parquet('{path}')")).fetchall()
print(json.dumps({
    "rows": q("select count(*) from $F")[0][0],
    "type": q("select typeof(occurredAt) from $F limit 1")[0][0],
    "first": [str(v) for v in q("select orderId, version, eventType from $F limit 1")[0]],
    "items": q("select sum(len(items)) from $F")[0][0],
    "quantities": q("select sum(i.quantity) from (select unnest(items) as i from $F)")[0][0],
    "total": q("select sum(total) from $F where eventType = 'OrderCompleted'")[0][0],
    "epoch_ms": q("select epoch_ms(max(occurredAt)) from $F")[0][0],
}))
"#;
    let output = Command::new(&python)
        .args(["-c", script])
        .arg(parquet)
        .output()
        .expect("run the virtualenv's python");
    assert!(
        output.status.success(),
        "DuckDB could not read the export (is duckdb installed in .venv-tools? run \
         scripts/emulator-venv.sh): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    let orders: Vec<&events_schema::ValidOrder> = log
        .iter()
        .filter_map(|e| match &e.event {
            events_schema::OrderEvent::OrderReceived(o) => Some(o),
            _ => None,
        })
        .collect();
    let total: i64 = log
        .iter()
        .filter_map(|e| match e.event {
            events_schema::OrderEvent::OrderCompleted { total } => Some(total),
            _ => None,
        })
        .sum();
    assert_eq!(seen["rows"], log.len(), "{seen}");
    assert_eq!(seen["type"], "TIMESTAMP WITH TIME ZONE", "{seen}");
    assert_eq!(
        seen["first"],
        json!([log[0].order_id.to_string(), "1", "OrderReceived"]),
        "{seen}"
    );
    let items: usize = orders.iter().map(|o| o.items.len()).sum();
    let quantities: u32 = orders.iter().map(|o| o.item_count()).sum();
    assert_eq!(seen["items"], items, "{seen}");
    assert_eq!(seen["quantities"], quantities, "{seen}");
    assert_eq!(seen["total"], total, "{seen}");
    let last = log.iter().map(|e| e.occurred_at).max().expect("events");
    assert_eq!(seen["epoch_ms"], last.timestamp_millis(), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_keeps_exactly_the_matching_events_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, log) = history(dir.path(), 9).await;
    let customer_of = |e: &EventEnvelope| {
        log.iter()
            .find_map(|r| match &r.event {
                events_schema::OrderEvent::OrderReceived(o) if r.order_id == e.order_id => {
                    Some(o.customer_id.to_string())
                }
                _ => None,
            })
            .expect("every order has its OrderReceived")
    };
    let rows = |keep: &dyn Fn(&EventEnvelope) -> bool| -> Vec<Value> {
        log.iter().filter(|e| keep(e)).map(expected_row).collect()
    };
    let one = log[4].order_id;
    let middle = log[log.len() / 2].occurred_at;
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cases: Vec<(Vec<String>, Vec<Value>)> = vec![
        (
            vec!["--order".into(), one.to_string()],
            rows(&|e| e.order_id == one),
        ),
        (
            vec!["--customer".into(), "cust-b".into()],
            rows(&|e| customer_of(e) == "cust-b"),
        ),
        (
            vec!["--type".into(), "OrderCompleted".into()],
            rows(&|e| e.event_type().as_str() == "OrderCompleted"),
        ),
        (
            vec!["--since".into(), stamp(middle)],
            rows(&|e| e.occurred_at >= middle),
        ),
        (
            // Another offset, same instant: --until is exclusive.
            vec![
                "--until".into(),
                middle
                    .with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"))
                    .to_rfc3339(),
            ],
            rows(&|e| e.occurred_at < middle),
        ),
        (
            vec![
                "--customer".into(),
                "cust-a".into(),
                "--type".into(),
                "OrderReceived".into(),
            ],
            rows(&|e| customer_of(e) == "cust-a" && e.version.get() == 1),
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(
            !expected.is_empty() && expected.len() < log.len(),
            "{args:?}"
        );
        assert_eq!(ndjson(&data, &args), expected, "orders events {args:?}");
    }
    let none = ndjson(&data, &["--customer", "nobody"]);
    assert!(none.is_empty());
    // An empty CSV export still names its columns.
    let csv = stdout(&run(&data, &["--customer", "nobody", "--format", "csv"]));
    assert_eq!(csv, format!("{}\n", COLUMNS.join(",")));
}

#[test]
fn a_bad_flag_or_file_is_one_error_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    SqliteDb::open(&data).expect("an empty log");
    let data = data.to_str().expect("utf-8");
    let missing = dir.path().join("nope.db");
    let missing = missing.to_str().expect("utf-8");
    for (args, says) in [
        (
            vec!["--since", "yesterday"],
            "--since \"yesterday\" is not an RFC 3339 time",
        ),
        (vec!["--until", "2024-13-01T00:00:00Z"], "--until"),
        (
            vec![
                "--since",
                "2024-05-02T00:00:00Z",
                "--until",
                "2024-05-01T00:00:00Z",
            ],
            "is not before --until",
        ),
        (vec!["--order", "42"], "--order \"42\" is not a UUID"),
        (
            vec!["--type", "OrderShipped"],
            "--type \"OrderShipped\" is not an event type",
        ),
        (vec!["--customer", "a b"], "--customer"),
        (
            vec!["--format", "parquet"],
            "--format parquet needs --output FILE",
        ),
    ] {
        let mut all = vec!["events", "--data", data];
        all.extend(&args);
        let output = orders(&all);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
    let output = orders(&["events", "--data", missing]);
    assert!(!output.status.success());
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(
        !Path::new(missing).exists(),
        "a read-back command creates no file"
    );

    // An output that cannot be created is one line too, and leaves nothing behind.
    let unwritable = dir.path().join("no-such-dir/events.parquet");
    let output = orders(&[
        "events",
        "--data",
        data,
        "--format",
        "parquet",
        "--output",
        unwritable.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
}
