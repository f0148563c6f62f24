//! `orders archive` and the shipped queries (`docs/queries/*.sql`) as an analyst runs them: the
//! known history of `history.rs` archived in two runs (the second adds only what is new), then
//! every query run on DuckDB over the archive (`scripts/archive-query.py`, the tools
//! virtualenv's duckdb) and its answer compared with what `orders events`, `stats` and
//! `replay` say on the same log. A duplicated row (an event stored twice, as the at-least-once
//! AWS path may) changes no answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use events_schema::EventEnvelope;
use order_adapters_sqlite::SqliteDb;
use order_ports::EventStore;
use serde_json::{json, Value};

use crate::history::{id, json_of, known, run, Known, AFTER_LAST, BEFORE_FIRST, BETWEEN};
use crate::tools::{orders, stderr, stdout};

const QUERIES: [&str; 5] = [
    "completed_totals_by_currency.sql",
    "completion_latency_by_day.sql",
    "events_of_order.sql",
    "order_state_as_of.sql",
    "orders_by_day_and_status.sql",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One shipped query's answer on DuckDB over `archive`: `{"columns", "rows"}`, each row an
/// object by column name.
fn query(archive: &Path, file: &str, params: &[(&str, &str)]) -> Vec<BTreeMap<String, Value>> {
    // Not canonicalized: the venv's python is a symlink, and only called through it does it
    // find the venv's packages.
    let python = root().join(".venv-tools/bin/python");
    assert!(
        python.exists(),
        "the tools virtualenv .venv-tools is missing: run scripts/emulator-venv.sh, which \
         installs duckdb (the shipped queries are run with it)"
    );
    let output = Command::new(&python)
        .arg(root().join("scripts/archive-query.py"))
        .arg(archive)
        .arg(root().join("docs/queries").join(file))
        .args(params.iter().map(|(k, v)| format!("{k}={v}")))
        .output()
        .expect("run the virtualenv's python");
    assert!(
        output.status.success(),
        "{file} on DuckDB: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the runner's JSON");
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("a name").to_owned())
        .collect();
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            columns
                .iter()
                .cloned()
                .zip(row.as_array().expect("a row").iter().cloned())
                .collect()
        })
        .collect()
}

async fn append(data: &Path, histories: &[&Vec<EventEnvelope>]) {
    let db = SqliteDb::open(data).expect("open the file");
    let store = db.event_store();
    for h in histories {
        store.append(h).await.expect("append");
    }
}

fn archive(data: &Path, dir: &Path) -> String {
    let out = run(data, &["archive", "--output", dir.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Every file under `dir`'s partitions, relative to `dir`, with its bytes.
fn part_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for partition in std::fs::read_dir(dir).expect("list") {
        let partition = partition.expect("entry").path();
        if !partition.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&partition).expect("list") {
            let file = file.expect("entry").path();
            let name = file.strip_prefix(dir).expect("under dir");
            files.insert(
                name.to_string_lossy().into_owned(),
                std::fs::read(&file).expect("read"),
            );
        }
    }
    files
}

/// The known history, archived in two runs: A to D, then E (the next day). Checks what each
/// run added.
async fn archived_known_history(data: &Path, dir: &Path) -> Known {
    let k = known();
    append(data, &[&k.a, &k.b, &k.c, &k.d]).await;
    let first = archive(data, dir);
    assert!(
        first.starts_with("archived 10 events (sequence 1 to 10) in 1 new files"),
        "{first}"
    );
    let after_first = part_files(dir);
    assert_eq!(
        after_first.keys().collect::<Vec<_>>(),
        ["day=2025-01-01/part-00000000000000000001-00000000000000000010.parquet"]
    );

    append(data, &[&k.e]).await;
    let second = archive(data, dir);
    assert!(
        second.starts_with("archived 3 events (sequence 11 to 13) in 1 new files"),
        "{second}"
    );
    let after_second = part_files(dir);
    assert_eq!(
        after_second.keys().collect::<Vec<_>>(),
        [
            "day=2025-01-01/part-00000000000000000001-00000000000000000010.parquet",
            "day=2025-01-02/part-00000000000000000011-00000000000000000013.parquet"
        ]
    );
    for (name, bytes) in &after_first {
        assert_eq!(&after_second[name], bytes, "{name} was rewritten");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("_archive.json")).expect("the manifest"))
            .expect("JSON");
    assert_eq!(
        manifest,
        json!({"format": 1, "lastSeq": 13, "events": 13, "files": 2})
    );
    let third = archive(data, dir);
    assert!(third.starts_with("nothing new"), "{third}");
    assert_eq!(part_files(dir), after_second);
    k
}

/// Every shipped query's answer over `dir`, with the parameters the comparisons use.
fn every_answer(dir: &Path, k: &Known) -> Vec<Vec<BTreeMap<String, Value>>> {
    let mut answers = Vec::new();
    for file in QUERIES {
        match file {
            "events_of_order.sql" => {
                for h in [&k.a, &k.b, &k.c, &k.d, &k.e] {
                    answers.push(query(dir, file, &[("order_id", &id(h))]));
                }
            }
            "order_state_as_of.sql" => {
                for t in [BEFORE_FIRST, BETWEEN, AFTER_LAST] {
                    answers.push(query(dir, file, &[("as_of", t)]));
                }
            }
            _ => answers.push(query(dir, file, &[])),
        }
    }
    answers
}

fn close(got: &Value, want: &Value) {
    let (got, want) = (
        got.as_f64().expect("a number"),
        want.as_f64().expect("a number"),
    );
    assert!((got - want).abs() <= want / 64.0, "{got} vs {want}");
}

#[tokio::test]
async fn archive_twice_then_each_shipped_query_on_duckdb_answers_as_the_cli_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let out = dir.path().join("archive");
    let k = archived_known_history(&data, &out).await;

    // Every shipped query is compared below.
    let mut shipped: Vec<String> = std::fs::read_dir(root().join("docs/queries"))
        .expect("docs/queries")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    shipped.sort();
    assert_eq!(shipped, QUERIES);

    // One order's events: the rows of `orders events --order`, NDJSON, in version order.
    for h in [&k.a, &k.b, &k.c, &k.d, &k.e] {
        let exported: Vec<Value> = stdout(&run(&data, &["events", "--order", &id(h)]))
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON"))
            .collect();
        let queried: Vec<Value> = query(&out, "events_of_order.sql", &[("order_id", &id(h))])
            .into_iter()
            .map(|row| Value::Object(row.into_iter().collect()))
            .collect();
        assert_eq!(queried, exported, "order {}", id(h));
        assert_eq!(queried.len(), h.len());
    }

    // Per day: counts by status and completion percentiles, as `orders stats --by day`.
    let stats = json_of(&data, &["stats", "--by", "day", "--json"]);
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 2, "{stats}");
    let by_status = query(&out, "orders_by_day_and_status.sql", &[]);
    let latency = query(&out, "completion_latency_by_day.sql", &[]);
    for bucket in buckets {
        let day = &bucket["start"].as_str().expect("start")[..10];
        let count = |status: &str| {
            by_status
                .iter()
                .filter(|r| r["day"] == day && r["status"] == status)
                .map(|r| r["orders"].as_u64().expect("a count"))
                .sum::<u64>()
        };
        let received: u64 = by_status
            .iter()
            .filter(|r| r["day"] == day)
            .map(|r| r["orders"].as_u64().expect("a count"))
            .sum();
        assert_eq!(json!(received), bucket["received"], "{day}");
        assert_eq!(json!(count("COMPLETED")), bucket["completed"], "{day}");
        assert_eq!(json!(count("FAILED")), bucket["failed"], "{day}");
        assert_eq!(json!(count("CANCELLED")), bucket["cancelled"], "{day}");
        assert_eq!(
            json!(count("RECEIVED") + count("PROCESSING")),
            bucket["pending"],
            "{day}"
        );
        let row = latency
            .iter()
            .find(|r| r["day"] == day)
            .unwrap_or_else(|| panic!("no latency row for {day}: {latency:?}"));
        assert_eq!(row["completed"], bucket["completed"], "{day}");
        for p in ["p50", "p95", "p99"] {
            close(&bucket["completionMs"][p], &row[&format!("{p}_ms")]);
        }
    }
    // The known values, so that both cannot be wrong alike: 2 s and 6.5 s on the first day.
    assert_eq!(
        latency
            .iter()
            .map(|r| (
                r["day"].clone(),
                r["p50_ms"].clone(),
                r["p95_ms"].clone(),
                r["p99_ms"].clone()
            ))
            .collect::<Vec<_>>(),
        [
            (json!("2025-01-01"), json!(2000), json!(6500), json!(6500)),
            (json!("2025-01-02"), json!(250), json!(250), json!(250)),
        ]
    );

    // Completed totals per currency: `orders stats`' all row, and replay after the last event.
    let totals: BTreeMap<String, Value> = query(&out, "completed_totals_by_currency.sql", &[])
        .into_iter()
        .map(|r| {
            (
                r["currency"].as_str().expect("currency").to_owned(),
                r["total"].clone(),
            )
        })
        .collect();
    assert_eq!(json!(totals), stats["all"]["totals"]);
    assert_eq!(json!(totals), json!({"EUR": 542, "USD": 1234}));
    let completed: u64 = query(&out, "completed_totals_by_currency.sql", &[])
        .iter()
        .map(|r| r["orders"].as_u64().expect("a count"))
        .sum();
    assert_eq!(json!(completed), stats["all"]["completed"]);

    // Every order as of T: `orders replay --as-of T`, summed, and each order's record.
    for t in [BEFORE_FIRST, BETWEEN, AFTER_LAST] {
        let states = query(&out, "order_state_as_of.sql", &[("as_of", t)]);
        let replay = json_of(&data, &["replay", "--as-of", t, "--json"]);
        let mut by_status = BTreeMap::from([
            ("RECEIVED", 0u64),
            ("PROCESSING", 0),
            ("COMPLETED", 0),
            ("FAILED", 0),
            ("CANCELLED", 0),
        ]);
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for state in &states {
            *by_status
                .get_mut(state["status"].as_str().expect("status"))
                .expect("a known status") += 1;
            if state["status"] == "COMPLETED" {
                *totals
                    .entry(state["currency"].as_str().expect("currency").to_owned())
                    .or_default() += state["completed_total"].as_i64().expect("a total");
            }
        }
        assert_eq!(json!(states.len()), replay["orders"], "as of {t}");
        assert_eq!(json!(by_status), replay["byStatus"], "as of {t}");
        assert_eq!(json!(totals), replay["totals"], "as of {t}");
        for state in &states {
            let order = state["order_id"].as_str().expect("order_id");
            let record = json_of(&data, &["replay", "--as-of", t, "--order", order, "--json"]);
            assert_eq!(state["status"], record["status"], "{order} as of {t}");
            assert_eq!(state["version"], record["version"], "{order} as of {t}");
            assert_eq!(state["customer_id"], record["customerId"], "{order}");
            assert_eq!(state["currency"], record["currency"], "{order}");
            assert_eq!(state["created_at"], record["createdAt"], "{order}");
            assert_eq!(
                state["updated_at"], record["updatedAt"],
                "{order} as of {t}"
            );
            assert_eq!(
                state["failure_reason"],
                record.get("failureReason").cloned().unwrap_or(Value::Null),
                "{order} as of {t}"
            );
            if state["status"] == "COMPLETED" {
                assert_eq!(state["completed_total"], record["total"], "{order}");
            }
        }
    }
    assert_eq!(
        query(&out, "order_state_as_of.sql", &[("as_of", BETWEEN)]).len(),
        3,
        "A, B and D existed then"
    );

    // --help says where the files go.
    let help = stdout(&orders(&["archive", "--help"]));
    assert!(help.contains("day=YYYY-MM-DD"), "{help}");
}

#[tokio::test]
async fn an_event_stored_twice_in_the_archive_changes_no_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let out = dir.path().join("archive");
    let k = archived_known_history(&data, &out).await;
    let before = every_answer(&out, &k);

    // Each part file stored again under another name (as a redelivered batch would be), and
    // one day's events again in the other day's partition.
    for (name, bytes) in part_files(&out) {
        let copy = out.join(name.replace(".parquet", "-again.parquet"));
        std::fs::write(copy, &bytes).expect("copy");
        let elsewhere = out.join(if name.starts_with("day=2025-01-01") {
            "day=2025-01-02/elsewhere.parquet"
        } else {
            "day=2025-01-01/elsewhere.parquet"
        });
        std::fs::write(elsewhere, &bytes).expect("copy");
    }
    assert_eq!(part_files(&out).len(), 6, "each event stored three times");
    let copies = query(&out, "events_of_order.sql", &[("order_id", &id(&k.a))]);
    assert_eq!(copies.len(), k.a.len(), "one row per event, not three");
    assert_eq!(every_answer(&out, &k), before);
}
