//! The shipped queries (`docs/queries/*.sql`) held to the CLI, whatever runs them: DuckDB over
//! a local `orders archive` (`archive.rs`) or Athena over the stack's archive (`archive_aws.rs`).
//! Each side gives the query runner and the CLI; the comparisons are written once, here.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Every file of `docs/queries`, sorted.
pub(crate) const QUERIES: [&str; 5] = [
    "completed_totals_by_currency.sql",
    "completion_latency_by_day.sql",
    "events_of_order.sql",
    "order_state_as_of.sql",
    "orders_by_day_and_status.sql",
];

/// A query's rows, each by column name.
pub(crate) type Rows = Vec<BTreeMap<String, Value>>;

/// A runner's answer (`{"columns": [...], "rows": [[...], ...]}`, as scripts/archive-query.py
/// and scripts/archive-athena.py print it) as rows, each column named by `name`.
pub(crate) fn rows_of(answer: &Value, name: impl Fn(&str) -> String) -> Rows {
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| name(c.as_str().expect("a name")))
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

/// Runs one shipped query with its parameters.
pub(crate) type Query<'a> = dyn Fn(&str, &[(&str, &str)]) -> Rows + 'a;

/// How a test reaches the archive and the log.
pub(crate) struct Sides<'a> {
    /// One shipped query with its parameters.
    pub query: &'a Query<'a>,
    /// `orders <args> --json`'s answer on the same log.
    pub cli_json: &'a dyn Fn(&[&str]) -> Value,
    /// `orders events --order ID`'s rows, keyed as the query runner keys its columns.
    pub cli_events: &'a dyn Fn(&str) -> Rows,
}

/// Every shipped query's answer, with the parameters the comparisons use.
pub(crate) fn every_answer(sides: &Sides, ids: &[String], times: &[String]) -> Vec<Rows> {
    let mut answers = Vec::new();
    for file in QUERIES {
        match file {
            "events_of_order.sql" => {
                for id in ids {
                    answers.push((sides.query)(file, &[("order_id", id)]));
                }
            }
            "order_state_as_of.sql" => {
                for t in times {
                    answers.push((sides.query)(file, &[("as_of", t)]));
                }
            }
            _ => answers.push((sides.query)(file, &[])),
        }
    }
    answers
}

/// What the CLI's answers were compared on, for a test's own pinned values.
pub(crate) struct Compared {
    pub by_status: Rows,
    pub latency: Rows,
    /// Completed totals per currency, and how many completed orders they sum.
    pub totals: BTreeMap<String, Value>,
    pub completed: u64,
}

/// Every shipped query against the CLI: `events --order` row for row for each of `ids`;
/// `stats --by day` (counts by status, completion percentiles within 1/64, totals); and
/// `replay --as-of` at each of `times`, summed and order by order.
pub(crate) fn assert_queries_answer_as_the_cli(
    sides: &Sides,
    ids: &[String],
    times: &[String],
) -> Compared {
    for id in ids {
        let queried = (sides.query)("events_of_order.sql", &[("order_id", id)]);
        assert!(
            !queried.is_empty(),
            "order {id} has no events in the archive"
        );
        assert_eq!(queried, (sides.cli_events)(id), "order {id}");
    }

    let stats = (sides.cli_json)(&["stats", "--by", "day", "--json"]);
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert!(!buckets.is_empty(), "{stats}");
    let by_status = (sides.query)("orders_by_day_and_status.sql", &[]);
    let latency = (sides.query)("completion_latency_by_day.sql", &[]);
    for bucket in buckets {
        let day = &bucket["start"].as_str().expect("start")[..10];
        let count = |status: Option<&str>| {
            by_status
                .iter()
                .filter(|r| r["day"] == day && status.is_none_or(|s| r["status"] == s))
                .map(|r| r["orders"].as_u64().expect("a count"))
                .sum::<u64>()
        };
        assert_eq!(json!(count(None)), bucket["received"], "{day}");
        assert_eq!(
            json!(count(Some("COMPLETED"))),
            bucket["completed"],
            "{day}"
        );
        assert_eq!(json!(count(Some("FAILED"))), bucket["failed"], "{day}");
        assert_eq!(
            json!(count(Some("CANCELLED"))),
            bucket["cancelled"],
            "{day}"
        );
        assert_eq!(
            json!(count(Some("RECEIVED")) + count(Some("PROCESSING"))),
            bucket["pending"],
            "{day}"
        );
        let row = latency.iter().find(|r| r["day"] == day);
        if count(Some("COMPLETED")) == 0 {
            assert!(row.is_none(), "a latency row for {day} without completions");
            continue;
        }
        let row = row.unwrap_or_else(|| panic!("no latency row for {day}: {latency:?}"));
        assert_eq!(row["completed"], bucket["completed"], "{day}");
        for p in ["p50", "p95", "p99"] {
            close(&bucket["completionMs"][p], &row[&format!("{p}_ms")]);
        }
    }

    let currency_rows = (sides.query)("completed_totals_by_currency.sql", &[]);
    let totals: BTreeMap<String, Value> = currency_rows
        .iter()
        .map(|r| {
            (
                r["currency"].as_str().expect("currency").to_owned(),
                r["total"].clone(),
            )
        })
        .collect();
    assert_eq!(json!(totals), stats["all"]["totals"]);
    let completed: u64 = currency_rows
        .iter()
        .map(|r| r["orders"].as_u64().expect("a count"))
        .sum();
    assert_eq!(json!(completed), stats["all"]["completed"]);

    for t in times {
        assert_state_as_of(sides, t);
    }
    Compared {
        by_status,
        latency,
        totals,
        completed,
    }
}

/// Every order as of `t`: `orders replay --as-of T`, summed, and each order's record.
fn assert_state_as_of(sides: &Sides, t: &str) {
    let states = (sides.query)("order_state_as_of.sql", &[("as_of", t)]);
    let replay = (sides.cli_json)(&["replay", "--as-of", t, "--json"]);
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
        let record = (sides.cli_json)(&["replay", "--as-of", t, "--order", order, "--json"]);
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

/// Within 1/64 of `want`: `orders stats` estimates percentiles in log-scale bins.
fn close(got: &Value, want: &Value) {
    let (got, want) = (
        got.as_f64().expect("a number"),
        want.as_f64().expect("a number"),
    );
    assert!((got - want).abs() <= want / 64.0, "{got} vs {want}");
}
