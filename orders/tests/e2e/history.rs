//! `orders replay` and `orders stats` as an analyst runs them: on a history with chosen times
//! (written straight into a file through the SQLite event store), and on one made by the real
//! pipeline while `orders serve` still runs on the file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events_schema::{
    CorrelationId, EventEnvelope, OrderEvent, OrderId, OrderRequest, OrderStatusRecord, OrderView,
    Version,
};
use order_adapters_sqlite::SqliteDb;
use order_ports::EventStore;
use serde_json::{json, Value};

use crate::support::*;
use crate::tools::{orders, stderr, stdout};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .with_timezone(&Utc)
}

/// One order's events with chosen times: its first is an `OrderReceived` of `quantity` ×
/// `unit_price` in `currency`, then the rest at the given times.
fn history(
    currency: &str,
    quantity: u32,
    unit_price: i64,
    received: &str,
    rest: &[(OrderEvent, &str)],
) -> Vec<EventEnvelope> {
    let order = OrderRequest::validate(&json!({
        "customerId": "c-history",
        "items": [{"productId": "p", "quantity": quantity, "unitPrice": unit_price}],
        "currency": currency,
    }))
    .expect("a valid order");
    let id = OrderId::new_random();
    let correlation = CorrelationId::generate();
    let mut events = vec![EventEnvelope::at(
        id,
        Version::FIRST,
        correlation.clone(),
        OrderEvent::OrderReceived(order),
        at(received),
    )];
    for (event, time) in rest {
        let version = events.last().expect("one").version.next();
        events.push(EventEnvelope::at(
            id,
            version,
            correlation.clone(),
            event.clone(),
            at(time),
        ));
    }
    events
}

/// The known history: four orders in the 10:00 hour of 2025-01-01, one the next day.
pub(crate) struct Known {
    /// EUR 5 × 100: received 10:00:00, processing 10:00:01, completed (500) 10:00:02.
    pub(crate) a: Vec<EventEnvelope>,
    /// EUR: received 10:00:01.500, processing 10:00:03, failed 10:00:04.
    pub(crate) b: Vec<EventEnvelope>,
    /// EUR: received 10:00:05, never processed.
    pub(crate) c: Vec<EventEnvelope>,
    /// USD: received 10:00:00.500, processing 10:00:06, completed (1234) 10:00:07.
    pub(crate) d: Vec<EventEnvelope>,
    /// EUR: received 2025-01-02T00:30:00, completed (42) 250 ms later.
    pub(crate) e: Vec<EventEnvelope>,
}

pub(crate) const BEFORE_FIRST: &str = "2025-01-01T09:59:59.999Z";
pub(crate) const BETWEEN: &str = "2025-01-01T10:00:01.500Z";
pub(crate) const AFTER_LAST: &str = "2025-01-03T00:00:00Z";

pub(crate) fn known() -> Known {
    use OrderEvent::*;
    Known {
        a: history(
            "EUR",
            5,
            100,
            "2025-01-01T10:00:00Z",
            &[
                (OrderProcessingStarted, "2025-01-01T10:00:01Z"),
                (OrderCompleted { total: 500 }, "2025-01-01T10:00:02Z"),
            ],
        ),
        b: history(
            "EUR",
            1,
            700,
            "2025-01-01T10:00:01.500Z",
            &[
                (OrderProcessingStarted, "2025-01-01T10:00:03Z"),
                (
                    OrderFailed {
                        reason: "credit".into(),
                    },
                    "2025-01-01T10:00:04Z",
                ),
            ],
        ),
        c: history("EUR", 2, 50, "2025-01-01T10:00:05Z", &[]),
        d: history(
            "USD",
            1,
            1234,
            "2025-01-01T10:00:00.500Z",
            &[
                (OrderProcessingStarted, "2025-01-01T10:00:06Z"),
                (OrderCompleted { total: 1234 }, "2025-01-01T10:00:07Z"),
            ],
        ),
        e: history(
            "EUR",
            1,
            42,
            "2025-01-02T00:30:00Z",
            &[
                (OrderProcessingStarted, "2025-01-02T00:30:00.100Z"),
                (OrderCompleted { total: 42 }, "2025-01-02T00:30:00.250Z"),
            ],
        ),
    }
}

async fn append_known(store: &dyn EventStore) -> Known {
    let known = known();
    for h in [&known.a, &known.b, &known.c, &known.d, &known.e] {
        store.append(h).await.expect("append");
    }
    known
}

/// The known history in a new SQLite file at `data`.
async fn known_history(data: &Path) -> Known {
    let db = SqliteDb::open(data).expect("create the file");
    append_known(&db.event_store()).await
}

pub(crate) fn id(h: &[EventEnvelope]) -> String {
    h[0].order_id.to_string()
}

/// `orders <command> --data <data>`.
pub(crate) fn run(data: &Path, command: &[&str]) -> std::process::Output {
    let mut args = command.to_vec();
    args.extend(["--data", data.to_str().expect("utf-8 path")]);
    orders(&args)
}

/// Runs a command that must succeed and print one JSON document.
pub(crate) fn json_of(data: &Path, command: &[&str]) -> Value {
    let out = run(data, command);
    assert!(
        out.status.success(),
        "{command:?}: {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{command:?} printed no JSON ({e}): {}", stdout(&out)))
}

/// What `replay --order` must print: the record of the fold of the first `n` events.
fn record_of(h: &[EventEnvelope], n: usize) -> Value {
    let view = OrderView::fold(&h[..n]).expect("folds").expect("exists");
    serde_json::to_value(OrderStatusRecord::from(&view)).expect("JSON")
}

fn summary(as_of: &str, by_status: [u64; 4], totals: Value) -> Value {
    json!({
        "asOf": as_of,
        "orders": by_status.iter().sum::<u64>(),
        "byStatus": {
            "RECEIVED": by_status[0],
            "PROCESSING": by_status[1],
            "COMPLETED": by_status[2],
            "FAILED": by_status[3],
            "CANCELLED": 0,
        },
        "totals": totals,
    })
}

#[tokio::test]
async fn replay_as_of_before_between_and_after_the_events_gives_the_states_of_those_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let k = known_history(&data).await;

    // Before the first event: no order existed.
    let before = run(
        &data,
        &["replay", "--as-of", BEFORE_FIRST, "--order", &id(&k.a)],
    );
    assert_eq!(before.status.code(), Some(3), "{}", stderr(&before));
    assert!(stdout(&before).is_empty(), "{}", stdout(&before));
    assert!(
        stderr(&before).contains("did not exist yet"),
        "{}",
        stderr(&before)
    );
    assert_eq!(
        json_of(&data, &["replay", "--as-of", BEFORE_FIRST, "--json"]),
        summary("2025-01-01T09:59:59.999Z", [0, 0, 0, 0], json!({}))
    );

    // Between events: A is processing, B was received at exactly that moment (≤ is inclusive),
    // C not yet, D received; the next day's E not yet.
    let between = |h: &[EventEnvelope]| {
        json_of(
            &data,
            &["replay", "--as-of", BETWEEN, "--order", &id(h), "--json"],
        )
    };
    assert_eq!(between(&k.a), record_of(&k.a, 2));
    assert_eq!(between(&k.a)["status"], "PROCESSING");
    assert_eq!(between(&k.b), record_of(&k.b, 1));
    assert_eq!(between(&k.d), record_of(&k.d, 1));
    let c_between = run(&data, &["replay", "--as-of", BETWEEN, "--order", &id(&k.c)]);
    assert_eq!(c_between.status.code(), Some(3));
    assert_eq!(
        json_of(&data, &["replay", "--as-of", BETWEEN, "--json"]),
        summary("2025-01-01T10:00:01.500Z", [2, 1, 0, 0], json!({}))
    );
    // Any offset names the same moment.
    assert_eq!(
        json_of(
            &data,
            &["replay", "--as-of", "2025-01-01T12:00:01.5+02:00", "--json"]
        )["byStatus"],
        json!({"RECEIVED": 2, "PROCESSING": 1, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 0})
    );

    // After the last event: everything, and the whole log's fold.
    for h in [&k.a, &k.b, &k.c, &k.d, &k.e] {
        assert_eq!(
            json_of(
                &data,
                &["replay", "--as-of", AFTER_LAST, "--order", &id(h), "--json"]
            ),
            record_of(h, h.len())
        );
    }
    assert_eq!(
        json_of(&data, &["replay", "--as-of", AFTER_LAST, "--json"]),
        summary(
            "2025-01-03T00:00:00Z",
            [1, 0, 3, 1],
            json!({"EUR": 542, "USD": 1234})
        )
    );

    // The statuses in the order of the lifecycle, as documented.
    let raw = stdout(&run(&data, &["replay", "--as-of", BETWEEN, "--json"]));
    assert!(
        raw.contains(
            r#""byStatus":{"RECEIVED":2,"PROCESSING":1,"COMPLETED":0,"FAILED":0,"CANCELLED":0}"#
        ),
        "{raw}"
    );

    // The readable forms.
    let table = run(&data, &["replay", "--as-of", BETWEEN]);
    assert!(table.status.success());
    let table = stdout(&table);
    assert!(
        table.starts_with("as of 2025-01-01T10:00:01.500Z: 3 orders\n"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["PROCESSING", "1"])),
        "{table}"
    );
    let one = stdout(&run(
        &data,
        &["replay", "--as-of", BETWEEN, "--order", &id(&k.a)],
    ));
    assert!(
        one.lines()
            .any(|l| l.split_whitespace().eq(["status", "PROCESSING"])),
        "{one}"
    );
}

#[tokio::test]
async fn replay_at_a_version_folds_that_many_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let k = known_history(&data).await;
    for (version, n) in [("1", 1), ("2", 2), ("3", 3), ("99", 3)] {
        let got = json_of(
            &data,
            &[
                "replay",
                "--order",
                &id(&k.b),
                "--at-version",
                version,
                "--json",
            ],
        );
        assert_eq!(got, record_of(&k.b, n), "--at-version {version}");
    }
    let failed = json_of(
        &data,
        &[
            "replay",
            "--order",
            &id(&k.b),
            "--at-version",
            "3",
            "--json",
        ],
    );
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["failureReason"], "credit");
}

#[tokio::test]
async fn stats_count_each_bucket_of_a_known_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    known_history(&data).await;

    let by_hour = json_of(&data, &["stats", "--by", "hour", "--json"]);
    let buckets = by_hour["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 2, "{by_hour}");
    let first = &buckets[0];
    assert_eq!(first["start"], "2025-01-01T10:00:00Z");
    assert_eq!(
        (
            &first["received"],
            &first["completed"],
            &first["failed"],
            &first["pending"]
        ),
        (&json!(4), &json!(2), &json!(1), &json!(1))
    );
    assert_eq!(first["totals"], json!({"EUR": 500, "USD": 1234}));
    // Two completions, of 2 s (A) and 6.5 s (D): p50 is A's, p99 D's (within the estimator's
    // 1/64).
    let close = |got: &Value, want: f64| {
        let got = got.as_f64().expect("a number");
        assert!((got - want).abs() <= want / 64.0, "{got} vs {want}");
    };
    close(&first["completionMs"]["p50"], 2000.0);
    close(&first["completionMs"]["p99"], 6500.0);
    assert_eq!(buckets[1]["start"], "2025-01-02T00:00:00Z");
    assert_eq!(buckets[1]["completionMs"]["p50"], 250);
    assert_eq!(
        by_hour["all"],
        json!({"received": 5, "completed": 3, "failed": 1, "cancelled": 0, "pending": 1,
               "totals": {"EUR": 542, "USD": 1234}, "completionMs": by_hour["all"]["completionMs"]})
    );

    // --since is inclusive, --until exclusive, on the time of receipt.
    let window = json_of(
        &data,
        &[
            "stats",
            "--since",
            "2025-01-01T10:00:00.500Z",
            "--until",
            "2025-01-01T10:00:05Z",
            "--json",
        ],
    );
    assert_eq!(window["by"], "day");
    assert_eq!(window["all"]["received"], 2, "B and D: {window}");
    assert_eq!(window["all"]["totals"], json!({"USD": 1234}));
    let empty = json_of(
        &data,
        &["stats", "--since", "2030-01-01T00:00:00Z", "--json"],
    );
    assert_eq!(empty["buckets"], json!([]));
    assert_eq!(empty["all"]["received"], 0);
    assert_eq!(empty["all"]["completionMs"], Value::Null);

    let table = stdout(&run(&data, &["stats"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "header, two days, all: {table}");
    assert_eq!(
        &rows[1][..6],
        &["2025-01-01", "4", "2", "1", "0", "1"],
        "{table}"
    );
    assert_eq!(&rows[3][..6], &["all", "5", "3", "1", "0", "1"], "{table}");
    assert!(
        rows[3].ends_with(&["EUR", "542,", "USD", "1234"]),
        "{table}"
    );
}

/// Polls until every order is COMPLETED or FAILED.
async fn wait_until_terminal(client: &reqwest::Client, base: &str, ids: &HashSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for id in ids {
        loop {
            let (_, body) = get_json(client, &format!("{base}/orders/{id}")).await;
            if body["status"] == "COMPLETED" || body["status"] == "FAILED" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never finished: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The status table as `orders serve` projected it: counts per status, completed totals.
fn status_table(data: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, i64>) {
    let conn = rusqlite::Connection::open(data).expect("open");
    let mut counts = BTreeMap::new();
    let mut statement = conn
        .prepare("SELECT status, COUNT(*) FROM order_status GROUP BY status")
        .expect("prepare");
    let rows = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
        .expect("query");
    for row in rows {
        let (status, n) = row.expect("row");
        counts.insert(status, n);
    }
    let mut totals = BTreeMap::new();
    let mut statement = conn
        .prepare(
            "SELECT json_extract(record, '$.currency'), SUM(json_extract(record, '$.total')) \
             FROM order_status WHERE status = 'COMPLETED' GROUP BY 1",
        )
        .expect("prepare");
    let rows = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("query");
    for row in rows {
        let (currency, total) = row.expect("row");
        totals.insert(currency, total);
    }
    (counts, totals)
}

#[tokio::test]
async fn replay_and_stats_read_a_history_made_by_the_pipeline_while_it_still_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let server = Server::start(&data);
    let client = client();
    let (mut ids, mut expected_total) = (HashSet::new(), 0i64);
    for n in 0..12u32 {
        let (status, body) = post_order(&client, &server.base, &order_body("c-stats", n), None)
            .await
            .expect("POST");
        assert_eq!(status, 202, "{body}");
        ids.insert(body["orderId"].as_str().expect("id").to_owned());
        // order_body: (1 + n % 5) × (100 + n), plus 2 × 250.
        expected_total += i64::from(1 + n % 5) * i64::from(100 + n) + 500;
    }
    // Over the credit limit: these end FAILED.
    for n in 0..3 {
        let body = json!({
            "customerId": "c-stats",
            "items": [{"productId": format!("big-{n}"), "quantity": 2, "unitPrice": 100_000_000_000i64}],
            "currency": "EUR"
        });
        let (status, body) = post_order(&client, &server.base, &body, None)
            .await
            .expect("POST");
        assert_eq!(status, 202, "{body}");
        ids.insert(body["orderId"].as_str().expect("id").to_owned());
    }
    wait_until_terminal(&client, &server.base, &ids).await;

    // The pipeline is idle but still running on the file: read beside it.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let replayed = json_of(&data, &["replay", "--as-of", &now, "--json"]);
    // The API answers an unfinished view from the log; the status table itself may still be a
    // moment behind: wait until the projector has written every order's last state.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (counts, totals) = loop {
        let (counts, totals) = status_table(&data);
        let terminal = counts.get("COMPLETED").unwrap_or(&0) + counts.get("FAILED").unwrap_or(&0);
        if terminal == 15 {
            break (counts, totals);
        }
        assert!(
            Instant::now() < deadline,
            "the view never caught up: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    assert_eq!(replayed["orders"], 15, "{replayed}");
    for status in ["RECEIVED", "PROCESSING", "COMPLETED", "FAILED"] {
        assert_eq!(
            replayed["byStatus"][status],
            count(status),
            "{status}: {replayed} vs {counts:?}"
        );
    }
    assert_eq!(count("COMPLETED"), 12);
    assert_eq!(count("FAILED"), 3);
    assert_eq!(replayed["totals"], json!(totals));
    assert_eq!(replayed["totals"], json!({"EUR": expected_total}));

    let stats = json_of(&data, &["stats", "--by", "hour", "--json"]);
    let all = &stats["all"];
    assert_eq!(
        (
            &all["received"],
            &all["completed"],
            &all["failed"],
            &all["pending"]
        ),
        (&json!(15), &json!(12), &json!(3), &json!(0)),
        "{stats}"
    );
    assert_eq!(all["totals"], json!({"EUR": expected_total}));
    let ms = |q: &str| all["completionMs"][q].as_u64().expect("a percentile");
    assert!(ms("p50") <= ms("p95") && ms("p95") <= ms("p99"), "{stats}");
    assert!(ms("p99") < 90_000, "{stats}");
    // The buckets add up to the whole.
    let buckets = stats["buckets"].as_array().expect("buckets");
    let sum = |field: &str| {
        buckets
            .iter()
            .map(|b| b[field].as_u64().expect("count"))
            .sum::<u64>()
    };
    assert_eq!(
        (sum("received"), sum("completed"), sum("failed")),
        (15, 12, 3)
    );

    // One order's record as of now is what the API serves.
    let some = ids.iter().next().expect("an order");
    let (_, served) = get_json(&client, &format!("{}/orders/{some}", server.base)).await;
    assert_eq!(
        json_of(
            &data,
            &["replay", "--as-of", &now, "--order", some, "--json"]
        ),
        served
    );
    server.terminate();
}

#[tokio::test]
async fn bad_input_is_one_clear_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let k = known_history(&data).await;
    let missing = dir.path().join("no-such.db");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "this is not a database, it is a text file\n").expect("write");
    let unknown = OrderId::new_random().to_string();
    let a = id(&k.a);
    let cases: Vec<(&Path, Vec<&str>, &str)> = vec![
        (&data, vec!["replay", "--as-of", "yesterday"], "--as-of"),
        (
            &data,
            vec!["replay", "--as-of", "2025-13-01T00:00:00Z", "--order", &a],
            "not an RFC 3339 time",
        ),
        (&data, vec!["stats", "--since", "2025-01-01"], "--since"),
        (&data, vec!["stats", "--until", "noon"], "--until"),
        (
            &data,
            vec![
                "stats",
                "--since",
                "2025-01-02T00:00:00Z",
                "--until",
                "2025-01-01T00:00:00Z",
            ],
            "is not before --until",
        ),
        (
            &data,
            vec!["replay", "--as-of", AFTER_LAST, "--order", &unknown],
            "is not in the log",
        ),
        (
            &data,
            vec!["replay", "--order", &a, "--at-version", "0"],
            "versions start at 1",
        ),
        (
            &missing,
            vec!["replay", "--as-of", AFTER_LAST],
            "no database at",
        ),
        (&missing, vec!["stats"], "no database at"),
        (
            &garbage,
            vec!["replay", "--as-of", AFTER_LAST],
            "not a database",
        ),
        (&garbage, vec!["stats"], "not a database"),
    ];
    for (file, command, expected) in cases {
        let out = run(file, &command);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{command:?}: {err}");
        assert!(err.starts_with("error: "), "{command:?}: {err}");
        assert!(err.contains(expected), "{command:?}: {err}");
        assert!(stdout(&out).is_empty(), "{command:?}: {}", stdout(&out));
    }
    assert!(!missing.exists(), "a read created the file");
    // Flags that do not go together are refused by the parser (its usage message, exit 2).
    for command in [
        vec!["replay"],
        vec![
            "replay",
            "--as-of",
            AFTER_LAST,
            "--at-version",
            "2",
            "--order",
            &a,
        ],
        vec!["replay", "--at-version", "2"],
        vec!["stats", "--by", "week"],
    ] {
        let out = run(&data, &command);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

/// The same known history in fresh DynamoDB tables of the emulator (needs
/// `ORDERS_TEST_AWS_ENDPOINT`, as tests/e2e/tools_aws.rs).
#[tokio::test]
async fn replay_and_stats_read_the_known_history_on_dynamodb() {
    use order_adapters_aws::{provision, AwsClients, DynamoEventStore};
    let endpoint = std::env::var("ORDERS_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .expect(
            "ORDERS_TEST_AWS_ENDPOINT is not set: this test needs the AWS emulator \
             (scripts/test.sh, or EP=$(scripts/emulator-start.sh target/emulator))",
        );
    let clients = AwsClients::from_env(Some(&endpoint)).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let prefix = format!("history-{}-{nanos}", std::process::id());
    let (events_table, status_table) = (format!("{prefix}-events"), format!("{prefix}-status"));
    provision::create_tables(&clients, &events_table, &status_table)
        .await
        .expect("create tables");
    let k = append_known(&DynamoEventStore::new(
        clients.dynamodb.clone(),
        &events_table,
    ))
    .await;
    let aws = |command: &[&str]| -> Value {
        let mut args = command.to_vec();
        args.extend([
            "--backend",
            "aws",
            "--endpoint-url",
            &endpoint,
            "--events-table",
            &events_table,
            "--status-table",
            &status_table,
        ]);
        let out = orders(&args);
        assert!(
            out.status.success(),
            "{command:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str(&stdout(&out)).expect("JSON")
    };
    assert_eq!(
        aws(&["replay", "--as-of", BETWEEN, "--json"]),
        summary("2025-01-01T10:00:01.500Z", [2, 1, 0, 0], json!({}))
    );
    assert_eq!(
        aws(&["replay", "--as-of", AFTER_LAST, "--json"]),
        summary(
            "2025-01-03T00:00:00Z",
            [1, 0, 3, 1],
            json!({"EUR": 542, "USD": 1234})
        )
    );
    assert_eq!(
        aws(&["replay", "--as-of", BETWEEN, "--order", &id(&k.a), "--json"]),
        record_of(&k.a, 2)
    );
    assert_eq!(
        aws(&[
            "replay",
            "--order",
            &id(&k.d),
            "--at-version",
            "3",
            "--json"
        ]),
        record_of(&k.d, 3)
    );
    let mut args = vec!["replay", "--as-of", BEFORE_FIRST];
    let a = id(&k.a);
    args.extend([
        "--order",
        &a,
        "--backend",
        "aws",
        "--endpoint-url",
        &endpoint,
    ]);
    args.extend([
        "--events-table",
        &events_table,
        "--status-table",
        &status_table,
    ]);
    assert_eq!(orders(&args).status.code(), Some(3));
    let stats = aws(&["stats", "--json"]);
    assert_eq!(
        (
            &stats["all"]["received"],
            &stats["all"]["completed"],
            &stats["all"]["failed"],
            &stats["all"]["pending"]
        ),
        (&json!(5), &json!(3), &json!(1), &json!(1)),
        "{stats}"
    );
}
