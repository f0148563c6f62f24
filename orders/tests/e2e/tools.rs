//! The operator commands as a user runs them: `orders verify`, `orders rebuild`, `orders dlq`,
//! on a file `orders serve` wrote (corrupted on purpose through raw SQL), and their one-line
//! errors.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// Runs `orders <args>` to its end.
pub fn orders(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(args)
        .env("ORDERS_LOG", "warn")
        .env_remove("ORDERS_DATA")
        .env_remove("ORDERS_BACKEND")
        // Without a region the SDK logs a warning of its own when it probes for one; the
        // error lines are what these tests count.
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run orders")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data_args(data: &Path) -> Vec<&str> {
    vec!["--data", data.to_str().expect("utf-8 path")]
}

fn run_on(data: &Path, command: &[&str]) -> Output {
    let mut args = command.to_vec();
    args.extend(data_args(data));
    orders(&args)
}

fn sql(data: &Path, statement: &str, params: &[&str]) -> usize {
    let conn = rusqlite::Connection::open(data).expect("open the file");
    conn.execute(statement, rusqlite::params_from_iter(params.iter()))
        .expect(statement)
}

/// A fresh uuid-shaped id made by SQLite itself.
const NEW_UUID: &str = "printf('%s-%s-4%s-a%s-%s', lower(hex(randomblob(4))), \
    lower(hex(randomblob(2))), substr(lower(hex(randomblob(2))), 2), \
    substr(lower(hex(randomblob(2))), 2), lower(hex(randomblob(6))))";

/// Serves `data`, posts `n` orders, waits until each is completed and notified, stops.
async fn completed_orders(data: &Path, n: u32) -> Vec<String> {
    let server = Server::start(data);
    let client = client();
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = post_order(&client, &server.base, &order_body("c-tools", i), None)
            .await
            .expect("POST");
        assert_eq!(status, 202, "{body}");
        ids.push(body["orderId"].as_str().expect("orderId").to_owned());
    }
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_all_completed_once(&client, &server.base, data, &set).await;
    server.terminate();
    ids
}

fn lines_about<'a>(out: &'a str, id: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(id)).collect()
}

#[tokio::test]
async fn verify_passes_a_clean_history_then_catches_each_injected_corruption_and_rebuild_repairs_the_views(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let ids = completed_orders(&data, 5).await;

    let clean = run_on(&data, &["verify"]);
    assert!(
        clean.status.success(),
        "{}{}",
        stdout(&clean),
        stderr(&clean)
    );
    assert_eq!(stdout(&clean).trim(), "verified 5 orders: 0 problems");

    let (gap, twice, disagrees, missing) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    // A missing version.
    assert_eq!(
        sql(
            &data,
            "DELETE FROM events WHERE order_id = ?1 AND version = 2",
            &[gap]
        ),
        1
    );
    // An illegal transition: a second OrderCompleted.
    let insert = format!(
        "INSERT INTO events (order_id, version, event_id, event_type, schema_version, \
         occurred_at, correlation_id, payload) SELECT order_id, 4, {NEW_UUID}, event_type, \
         schema_version, occurred_at, correlation_id, payload FROM events \
         WHERE order_id = ?1 AND version = 3"
    );
    assert_eq!(sql(&data, &insert, &[twice]), 1);
    // A view that disagrees with its log at the same version, and one that is missing.
    assert_eq!(
        sql(
            &data,
            "UPDATE order_status SET status = 'FAILED', \
             record = json_set(record, '$.status', 'FAILED') WHERE order_id = ?1",
            &[disagrees]
        ),
        1
    );
    assert_eq!(
        sql(
            &data,
            "DELETE FROM order_status WHERE order_id = ?1",
            &[missing]
        ),
        1
    );

    let broken = run_on(&data, &["verify"]);
    let out = stdout(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(
        lines_about(&out, gap)
            .iter()
            .any(|l| l.contains("versions: missing version 2")),
        "{out}"
    );
    assert!(
        lines_about(&out, twice)
            .iter()
            .any(|l| l.contains("transition:") && l.contains("OrderCompleted")),
        "{out}"
    );
    assert!(
        lines_about(&out, disagrees)
            .iter()
            .any(|l| l.contains("view: disagrees")),
        "{out}"
    );
    assert!(
        lines_about(&out, missing)
            .iter()
            .any(|l| l.contains("view: missing")),
        "{out}"
    );
    assert!(lines_about(&out, &ids[4]).is_empty(), "{out}");
    assert!(out.ends_with("verified 5 orders: 4 problems\n"), "{out}");

    // Forward-only: the missing view is written, the disagreeing one is only reported.
    let rebuild = run_on(&data, &["rebuild"]);
    let out = stdout(&rebuild);
    assert_eq!(rebuild.status.code(), Some(1), "{out}");
    assert!(
        lines_about(&out, disagrees)
            .iter()
            .any(|l| l.contains("--force")),
        "{out}"
    );
    let forced = run_on(&data, &["rebuild", "--force", "--order", disagrees]);
    assert!(
        forced.status.success(),
        "{}{}",
        stdout(&forced),
        stderr(&forced)
    );
    assert!(stdout(&forced).contains("1 forced"), "{}", stdout(&forced));

    // Run again: same table, nothing left to write.
    let again = run_on(&data, &["rebuild"]);
    assert!(
        stdout(&again).contains("0 written, 0 forced"),
        "{}",
        stdout(&again)
    );
    let after = run_on(&data, &["verify"]);
    let out = stdout(&after);
    assert!(lines_about(&out, disagrees).is_empty(), "{out}");
    assert!(lines_about(&out, missing).is_empty(), "{out}");
    assert!(out.ends_with("verified 5 orders: 2 problems\n"), "{out}");
}

#[tokio::test]
async fn an_undecodable_event_is_recorded_in_failed_events_and_the_feed_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let ids = completed_orders(&data, 1).await;
    // An event of a type this build does not know (written by "a newer binary"), for an
    // order of its own.
    let insert = format!(
        "INSERT INTO events (order_id, version, event_id, event_type, schema_version, \
         occurred_at, correlation_id, payload) SELECT {NEW_UUID}, 1, {NEW_UUID}, \
         'OrderTeleported', 9, occurred_at, correlation_id, '{{}}' FROM events \
         WHERE order_id = ?1 AND version = 1"
    );
    assert_eq!(sql(&data, &insert, &[&ids[0]]), 1);

    // Orders accepted after it are still projected and notified.
    let later = completed_orders(&data, 2).await;
    assert_eq!(later.len(), 2);

    let conn = rusqlite::Connection::open(&data).expect("open");
    let consumers: Vec<String> = conn
        .prepare("SELECT consumer FROM failed_events WHERE reason LIKE '%OrderTeleported%' ORDER BY consumer")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(consumers, ["notifier", "projector"]);

    let verify = run_on(&data, &["verify"]);
    let out = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("failed_events:") && l.contains("OrderTeleported"))
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("undecodable:") && l.contains("OrderTeleported")),
        "{out}"
    );

    // `orders dlq records` lists the same two, one JSON object each, with their position.
    let records = run_on(&data, &["dlq", "records", "--json"]);
    assert!(records.status.success(), "{}", stderr(&records));
    let listed: Vec<serde_json::Value> = stdout(&records)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let mut by: Vec<&str> = listed
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|x| x.contains("OrderTeleported"))
        })
        .map(|r| r["setAsideBy"].as_str().unwrap_or("?"))
        .collect();
    by.sort_unstable();
    assert_eq!(by, ["notifier", "projector"], "{listed:?}");
    assert!(
        listed.iter().all(|r| r["sequenceNumber"].is_string()),
        "{listed:?}"
    );
}

#[tokio::test]
async fn dead_letters_are_listed_and_redriven_then_processed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let ids = completed_orders(&data, 1).await;
    // A stuck order: received, never processed, its message in the dead letters; and a
    // second dead letter that stays.
    let conn = rusqlite::Connection::open(&data).expect("open");
    let stuck: String = conn
        .query_row(
            &format!(
                "INSERT INTO events (order_id, version, event_id, event_type, schema_version, \
                 occurred_at, correlation_id, payload) SELECT {NEW_UUID}, 1, {NEW_UUID}, \
                 event_type, schema_version, occurred_at, correlation_id, payload FROM events \
                 WHERE order_id = ?1 AND version = 1 RETURNING order_id"
            ),
            [&ids[0]],
            |r| r.get(0),
        )
        .expect("insert the stuck order");
    for (message, body) in [("m-stuck", stuck.as_str()), ("m-other", "not-an-order")] {
        conn.execute(
            "INSERT INTO dead_letters (message_id, body, receive_count, failed_at) \
             VALUES (?1, ?2, 5, '2026-11-30T00:00:00.000Z')",
            [message, body],
        )
        .expect("insert a dead letter");
    }
    drop(conn);

    let list = run_on(&data, &["dlq", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let out = stdout(&list);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(&format!("m-stuck\t{stuck}\treceives=5\t2026-11-30")),
        "{out}"
    );
    let json = run_on(&data, &["dlq", "list", "--json"]);
    let first: serde_json::Value =
        serde_json::from_str(stdout(&json).lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["messageId"], "m-stuck");
    assert_eq!(first["receiveCount"], 5);

    let redrive = run_on(&data, &["dlq", "redrive", "--order", &stuck]);
    assert!(redrive.status.success(), "{}", stderr(&redrive));
    assert_eq!(stdout(&redrive).lines().count(), 1, "{}", stdout(&redrive));
    let left = stdout(&run_on(&data, &["dlq", "list"]));
    assert_eq!(left.lines().collect::<Vec<_>>().len(), 1, "{left}");
    assert!(left.contains("m-other"), "{left}");

    // Served again, the redriven order is processed to its end.
    let server = Server::start(&data);
    let client = client();
    let set: HashSet<String> = [stuck.clone()].into_iter().collect();
    wait_until_completed(&client, &server.base, &set).await;
    server.terminate();
    let verify = run_on(&data, &["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert_eq!(stdout(&verify).trim(), "verified 2 orders: 0 problems");
}

/// Every command that reads a file refuses a path where there is none, in one line, without
/// creating it.
#[test]
fn every_command_says_in_one_line_that_the_data_file_does_not_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("no-such.db");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "this is not a database, it is a text file\n").expect("write");
    for command in [
        &["verify"][..],
        &["rebuild"],
        &["rebuild", "--order", "0191f4c6-3f0e-7c52-8a36-2b0c4e1f9d10"],
        &["dlq", "list"],
        &["dlq", "redrive", "--all"],
        &["dlq", "records"],
        &["notifications"],
    ] {
        for (file, expected) in [(&data, "no database at"), (&garbage, "not a database")] {
            let out = run_on(file, command);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{command:?}: {err}");
            assert!(err.starts_with("error: "), "{command:?}: {err}");
            assert!(err.contains(expected), "{command:?}: {err}");
            assert!(stdout(&out).is_empty(), "{command:?}");
        }
        assert!(!data.exists(), "{command:?} created the file");
    }
}
