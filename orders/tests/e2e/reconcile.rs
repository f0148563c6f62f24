//! `orders reconcile` as an operator runs it: a stuck order (in the log and the view, on no
//! queue — what a request dropped between the append and the enqueue used to leave) is listed
//! by a dry run, put back on the work queue by a real run, and processed to its end; a view left
//! behind a completed log is re-projected instead, and an order whose log does not fold is
//! reported once and left alone (ADR 11); on the SQLite file and on the emulator.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use events_schema::{CorrelationId, OrderEvent, OrderId, OrderStatusRecord, OrderView};
use order_adapters_sqlite::SqliteDb;
use order_ports::{EventStore, StatusStore, WorkQueue};
use order_test_support::order_received;
use serde_json::Value;

use crate::support::*;
use crate::tools::{orders, stderr, stdout};

fn on_file(data: &Path, command: &[&str]) -> std::process::Output {
    let mut args = command.to_vec();
    args.extend(["--data", data.to_str().expect("utf-8 path")]);
    orders(&args)
}

fn json_report(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    serde_json::from_str(stdout(out).trim()).expect("one JSON object")
}

/// The ids of a JSON report's orders.
fn listed(report: &Value) -> Vec<String> {
    report["orders"]
        .as_array()
        .expect("orders array")
        .iter()
        .map(|o| o["orderId"].as_str().expect("orderId").to_owned())
        .collect()
}

/// Appends an order's `OrderReceived` and projects it, without queuing it: stranded.
async fn stranded_order(data: &Path) -> OrderId {
    let db = SqliteDb::open(data).expect("open the file");
    let events: Arc<dyn EventStore> = Arc::new(db.event_store());
    let status: Arc<dyn StatusStore> = Arc::new(db.status_store());
    let first = order_received(2, 150);
    events
        .append(std::slice::from_ref(&first))
        .await
        .expect("append");
    projector::Projector::new(events, status)
        .project(&first)
        .await
        .expect("project");
    first.order_id
}

async fn queue_depth(data: &Path) -> u64 {
    let db = SqliteDb::open(data).expect("open the file");
    db.work_queue_default().depth().await.expect("depth")
}

#[tokio::test]
async fn a_stranded_order_on_sqlite_is_listed_by_a_dry_run_then_re_enqueued_and_completed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let stuck = stranded_order(&data).await;
    let id = stuck.to_string();
    assert_eq!(queue_depth(&data).await, 0);

    // verify sees the problem reconcile is for.
    let before = on_file(&data, &["verify", "--pending-after", "0s"]);
    assert_eq!(before.status.code(), Some(1), "{}", stderr(&before));
    assert!(
        stdout(&before).contains(&format!("order {id}: pending: RECEIVED since")),
        "{}",
        stdout(&before)
    );

    // Too young for a 5-minute threshold: nothing found.
    let young = on_file(&data, &["reconcile", "--older-than", "5m", "--json"]);
    assert_eq!(listed(&json_report(&young)), Vec::<String>::new());

    let dry = on_file(&data, &["reconcile", "--older-than", "0s", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let out = stdout(&dry);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("1 order pending since before ")
            && lines[0].ends_with("(older than 0 s): dry run, nothing done"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&id)
            && lines[1].contains("RECEIVED")
            && lines[1].ends_with("re-enqueued"),
        "{out}"
    );
    assert_eq!(queue_depth(&data).await, 0, "a dry run enqueues nothing");

    let run = on_file(&data, &["reconcile", "--older-than", "0s", "--json"]);
    let report = json_report(&run);
    assert_eq!(listed(&report), std::slice::from_ref(&id));
    assert_eq!(report["orders"][0]["status"], "RECEIVED");
    assert_eq!(report["dryRun"], false);
    assert_eq!(report["olderThanSeconds"], 0);
    assert_eq!(report["reenqueued"], 1);
    assert_eq!(report["orders"][0]["action"], "reenqueued");
    assert_eq!(report["reprojected"], 0);
    assert_eq!(queue_depth(&data).await, 1);

    // Served, the re-enqueued order is processed to its end, and notified once.
    let server = Server::start(&data);
    let ids: HashSet<String> = [id.clone()].into_iter().collect();
    assert_all_completed_once(&client(), &server.base, &data, &ids).await;
    server.terminate();

    let verify = on_file(&data, &["verify", "--pending-after", "0s"]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    assert_eq!(stdout(&verify).trim(), "verified 1 orders: 0 problems");
    let again = on_file(&data, &["reconcile", "--older-than", "0s"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).starts_with("0 orders pending since before "),
        "{}",
        stdout(&again)
    );
}

/// Appends `log` and projects only its first event: a view left behind its log, as a stream
/// outage longer than the mapping's maximum record age leaves it on AWS.
async fn left_behind(data: &Path, log: &[events_schema::EventEnvelope]) {
    let db = SqliteDb::open(data).expect("open the file");
    let events: Arc<dyn EventStore> = Arc::new(db.event_store());
    let status: Arc<dyn StatusStore> = Arc::new(db.status_store());
    events.append(log).await.expect("append");
    projector::Projector::new(events, status)
        .project(&log[0])
        .await
        .expect("project");
}

/// The report entry of one order.
fn entry<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["orders"]
        .as_array()
        .and_then(|orders| orders.iter().find(|o| o["orderId"] == id))
        .unwrap_or_else(|| panic!("{id} not in {report}"))
}

#[tokio::test]
async fn a_view_behind_its_completed_log_is_re_projected_and_a_log_that_does_not_fold_is_reported_once(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    // Completed in the log, RECEIVED in the view.
    let first = order_received(2, 150);
    let mut view = OrderView::start(&first).expect("start");
    let mut log = vec![first];
    for event in [
        OrderEvent::OrderProcessingStarted,
        OrderEvent::OrderCompleted { total: 300 },
    ] {
        let next = view.next_envelope(event, CorrelationId::generate());
        view.apply(&next).expect("apply");
        log.push(next);
    }
    left_behind(&data, &log).await;
    let behind = log[0].order_id.to_string();
    // OrderCompleted straight after OrderReceived: logged, but the fold rejects it.
    let first = order_received(1, 100);
    let illegal = view_less_event(&first, OrderEvent::OrderCompleted { total: 100 });
    left_behind(&data, &[first.clone(), illegal]).await;
    let broken = first.order_id.to_string();

    let before = on_file(&data, &["verify", "--pending-after", "0s"]);
    assert!(
        stdout(&before).contains(&format!("order {behind}: view: disagrees")),
        "{}",
        stdout(&before)
    );

    let dry = json_report(&on_file(
        &data,
        &["reconcile", "--older-than", "0s", "--dry-run", "--json"],
    ));
    assert_eq!(entry(&dry, &behind)["action"], "reprojected", "{dry}");
    assert_eq!(entry(&dry, &broken)["action"], "unfoldable", "{dry}");
    assert_eq!(dry["reprojected"], 0, "{dry}");

    let run = json_report(&on_file(
        &data,
        &["reconcile", "--older-than", "0s", "--json"],
    ));
    assert_eq!(entry(&run, &behind)["action"], "reprojected", "{run}");
    assert_eq!(entry(&run, &broken)["action"], "unfoldable", "{run}");
    assert!(
        entry(&run, &broken)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("does not fold")),
        "{run}"
    );
    assert_eq!(
        (&run["reprojected"], &run["unfoldable"], &run["reenqueued"]),
        (&Value::from(1), &Value::from(1), &Value::from(0)),
        "{run}"
    );
    assert_eq!(
        queue_depth(&data).await,
        0,
        "neither goes to the work queue"
    );

    // The re-projected view is the fold of its log: verify finds nothing wrong with its view.
    // The unfoldable order is still a problem for verify, and reported no more by reconcile.
    let after = on_file(&data, &["verify", "--pending-after", "0s"]);
    let out = stdout(&after);
    assert!(!out.contains(&format!("order {behind}: view")), "{out}");
    assert!(
        out.contains(&format!("order {broken}: transition")),
        "{out}"
    );
    assert_eq!(after.status.code(), Some(1), "{out}");
    let again = json_report(&on_file(
        &data,
        &["reconcile", "--older-than", "0s", "--json"],
    ));
    assert_eq!(listed(&again), Vec::<String>::new(), "{again}");
    assert_eq!(queue_depth(&data).await, 0);
}

/// The next event of `first`'s order as written, whatever the fold says of it.
fn view_less_event(
    first: &events_schema::EventEnvelope,
    event: OrderEvent,
) -> events_schema::EventEnvelope {
    events_schema::EventEnvelope::new(
        first.order_id,
        first.version.next(),
        CorrelationId::generate(),
        event,
    )
}

#[test]
fn reconcile_says_in_one_line_what_is_wrong_with_its_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("no-such.db");
    let out = on_file(&data, &["reconcile", "--older-than", "5m"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: reconcile: no database at"), "{err}");
    assert!(!data.exists(), "reconcile created the file");

    // A duration it cannot read is refused by the parser, before anything is opened.
    let out = on_file(&data, &["reconcile", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
}

mod aws {
    use super::*;
    use order_adapters_aws::{
        provision, AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue,
    };

    fn endpoint() -> String {
        std::env::var("ORDERS_TEST_AWS_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "ORDERS_TEST_AWS_ENDPOINT is not set: these tests need the AWS emulator. \
                     Run scripts/test.sh, or start one with `EP=$(scripts/emulator-start.sh \
                     target/emulator)` and set ORDERS_TEST_AWS_ENDPOINT=$EP"
                )
            })
    }

    fn prefix() -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        format!("reconcile-{}-{nanos}", std::process::id())
    }

    async fn received_ids(queue: &SqsWorkQueue) -> Vec<String> {
        let got = queue
            .receive(10, Duration::from_secs(60))
            .await
            .expect("receive");
        got.into_iter().map(|d| d.body).collect()
    }

    #[tokio::test]
    async fn a_received_order_on_dynamodb_is_listed_by_a_dry_run_then_sent_to_the_work_queue() {
        let endpoint = endpoint();
        let clients = AwsClients::from_env(Some(&endpoint)).await;
        let prefix = prefix();
        let (events_table, status_table) = (format!("{prefix}-events"), format!("{prefix}-status"));
        provision::create_tables(&clients, &events_table, &status_table)
            .await
            .expect("create tables");
        let (queue_url, _dlq_url) = provision::create_queue_with_dlq(&clients, &prefix, 5)
            .await
            .expect("create queues");
        let status = DynamoStatusStore::new(clients.dynamodb.clone(), &status_table);
        let events = DynamoEventStore::new(clients.dynamodb.clone(), &events_table);
        let queue = SqsWorkQueue::new(clients.sqs.clone(), &queue_url);

        // One order stuck at RECEIVED, on no queue; one completed (out of the pending index).
        let first = order_received(1, 500);
        let stuck = first.order_id.to_string();
        events
            .append(std::slice::from_ref(&first))
            .await
            .expect("append the stuck order");
        status
            .upsert(&OrderStatusRecord::from(
                &OrderView::start(&first).expect("start"),
            ))
            .await
            .expect("upsert the stuck view");
        let done = order_received(3, 100);
        let mut view = OrderView::start(&done).expect("start");
        for event in [
            OrderEvent::OrderProcessingStarted,
            OrderEvent::OrderCompleted { total: 300 },
        ] {
            let next = view.next_envelope(event, CorrelationId::generate());
            view.apply(&next).expect("apply");
        }
        status
            .upsert(&OrderStatusRecord::from(&view))
            .await
            .expect("upsert the completed view");
        // One view left RECEIVED behind a completed log: re-projected, not re-enqueued.
        let first = order_received(2, 100);
        let mut behind_view = OrderView::start(&first).expect("start");
        let mut log = vec![first.clone()];
        for event in [
            OrderEvent::OrderProcessingStarted,
            OrderEvent::OrderCompleted { total: 200 },
        ] {
            let next = behind_view.next_envelope(event, CorrelationId::generate());
            behind_view.apply(&next).expect("apply");
            log.push(next);
        }
        events.append(&log).await.expect("append the completed log");
        status
            .upsert(&OrderStatusRecord::from(
                &OrderView::start(&first).expect("start"),
            ))
            .await
            .expect("upsert the view left behind");
        let behind = first.order_id.to_string();
        // One view without a log: unfoldable, set aside (out of the pending index) once.
        let orphan = order_received(1, 100);
        status
            .upsert(&OrderStatusRecord::from(
                &OrderView::start(&orphan).expect("start"),
            ))
            .await
            .expect("upsert the orphan view");
        let orphan = orphan.order_id.to_string();

        let run = |extra: &[&str]| {
            let mut a = vec!["reconcile", "--older-than", "0s", "--json"];
            a.extend_from_slice(extra);
            a.extend([
                "--backend",
                "aws",
                "--endpoint-url",
                &endpoint,
                "--status-table",
                &status_table,
                "--work-queue-url",
                &queue_url,
                "--events-table",
                &events_table,
            ]);
            orders(&a)
        };
        let found = |report: &Value| -> HashSet<String> { listed(report).into_iter().collect() };
        let all: HashSet<String> = [stuck.clone(), behind.clone(), orphan.clone()].into();

        // The pending index is eventually consistent: wait until it lists all three.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let dry = loop {
            let dry = json_report(&run(&["--dry-run"]));
            if found(&dry) == all || std::time::Instant::now() > deadline {
                break dry;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(found(&dry), all, "{dry}");
        assert_eq!(entry(&dry, &stuck)["status"], "RECEIVED");
        assert_eq!(entry(&dry, &stuck)["action"], "reenqueued");
        assert_eq!(entry(&dry, &behind)["action"], "reprojected");
        assert_eq!(entry(&dry, &orphan)["action"], "unfoldable");
        assert_eq!(dry["dryRun"], true);
        assert_eq!(dry["reenqueued"], 0);
        assert!(
            received_ids(&queue).await.is_empty(),
            "a dry run sends nothing"
        );

        let report = json_report(&run(&[]));
        assert_eq!(found(&report), all, "{report}");
        assert_eq!(report["reenqueued"], 1);
        assert_eq!(report["reprojected"], 1);
        assert_eq!(report["unfoldable"], 1);
        assert_eq!(received_ids(&queue).await, std::slice::from_ref(&stuck));
        let repaired = status
            .get(OrderId::parse(&behind).expect("id"))
            .await
            .expect("get")
            .expect("a view");
        assert_eq!(repaired, OrderStatusRecord::from(&behind_view));

        // The orphan left the pending index; the re-projected view too. Only the re-enqueued
        // order (still RECEIVED: no processor runs here) is found again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let again = json_report(&run(&["--dry-run"]));
            if listed(&again) == [stuck.clone()] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still pending after the run: {again}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[test]
    fn reconcile_on_aws_names_what_is_missing_in_one_line() {
        let endpoint = endpoint();
        let base = ["reconcile", "--older-than", "5m", "--backend", "aws"];
        let mut unknown = base.to_vec();
        unknown.extend(["--endpoint-url", &endpoint, "--stack", "no-such-stack-here"]);
        let mut no_queue = base.to_vec();
        no_queue.extend([
            "--endpoint-url",
            &endpoint,
            "--status-table",
            "no-such-table-here",
        ]);
        let mut no_table = no_queue.clone();
        no_table.extend([
            "--work-queue-url",
            "http://localhost:1/000000000000/no-such-queue-here",
            "--events-table",
            "no-such-events-table-here",
        ]);
        for (args, expected) in [
            (unknown, "error: --stack no-such-stack-here"),
            (no_queue, "error: --backend aws needs --work-queue-url"),
            (no_table, "error: table no-such-table-here (--status-table"),
        ] {
            let out = orders(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with(expected), "{args:?}: {err}");
        }
    }
}
