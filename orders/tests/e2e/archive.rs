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

use crate::archive_answers::{
    assert_queries_answer_as_the_cli, every_answer, rows_of, Rows, Sides, QUERIES,
};
use crate::history::{id, json_of, known, run, Known, AFTER_LAST, BEFORE_FIRST, BETWEEN};
use crate::tools::{orders, stderr, stdout};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One shipped query's answer on DuckDB over `archive`: `{"columns", "rows"}`, each row an
/// object by column name.
fn query(archive: &Path, file: &str, params: &[(&str, &str)]) -> Rows {
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
    rows_of(&answer, str::to_owned)
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

/// `f` given DuckDB over `dir` and the CLI on `data`.
fn with_sides<R>(data: &Path, dir: &Path, f: impl FnOnce(&Sides) -> R) -> R {
    let query_fn = |file: &str, params: &[(&str, &str)]| query(dir, file, params);
    let cli_json = |args: &[&str]| json_of(data, args);
    let cli_events = |order: &str| -> Rows {
        stdout(&run(data, &["events", "--order", order]))
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON"))
            .collect()
    };
    f(&Sides {
        query: &query_fn,
        cli_json: &cli_json,
        cli_events: &cli_events,
    })
}

fn ids(k: &Known) -> Vec<String> {
    [&k.a, &k.b, &k.c, &k.d, &k.e].map(|h| id(h)).to_vec()
}

fn times() -> Vec<String> {
    [BEFORE_FIRST, BETWEEN, AFTER_LAST]
        .map(str::to_owned)
        .to_vec()
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

    let compared = with_sides(&data, &out, |sides| {
        assert_queries_answer_as_the_cli(sides, &ids(&k), &times())
    });

    // The known values, so that both sides cannot be wrong alike.
    for h in [&k.a, &k.b, &k.c, &k.d, &k.e] {
        let rows = query(&out, "events_of_order.sql", &[("order_id", &id(h))]);
        assert_eq!(rows.len(), h.len(), "order {}", id(h));
    }
    let days: Vec<&Value> = compared.latency.iter().map(|r| &r["day"]).collect();
    assert_eq!(days, [&json!("2025-01-01"), &json!("2025-01-02")]);
    // 2 s and 6.5 s on the first day.
    assert_eq!(
        compared
            .latency
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
    assert_eq!(json!(compared.totals), json!({"EUR": 542, "USD": 1234}));
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
    let answers = || with_sides(&data, &out, |sides| every_answer(sides, &ids(&k), &times()));
    let before = answers();

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
    assert_eq!(answers(), before);
}
