//! `orders verify`, `rebuild` and `dlq` with `--backend aws` against the emulator: fresh
//! tables and queues, histories written through the adapters, corruption written around them.
//! Needs `ORDERS_TEST_AWS_ENDPOINT` (scripts/test.sh sets it).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use events_schema::{
    CorrelationId, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView,
};
use order_adapters_aws::{
    provision, AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue,
};
use order_ports::{EventStore, StatusRepair, StatusStore, WorkQueue};

use crate::tools::{orders, stderr, stdout};

fn endpoint() -> String {
    std::env::var("ORDERS_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ORDERS_TEST_AWS_ENDPOINT is not set: these tests need the AWS emulator. Run \
                 scripts/test.sh, or start one with `EP=$(scripts/emulator-start.sh \
                 target/emulator-tools)` and set ORDERS_TEST_AWS_ENDPOINT=$EP"
            )
        })
}

fn prefix(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("tools-{what}-{}-{nanos}", std::process::id())
}

/// Appends a completed order's three events and projects them; returns its id.
async fn completed_order(events: &DynamoEventStore, status: &DynamoStatusStore) -> OrderId {
    let first = order_test_support::order_received(2, 150);
    let mut history = vec![first.clone()];
    let mut view = OrderView::start(&first).expect("start");
    for event in [
        OrderEvent::OrderProcessingStarted,
        OrderEvent::OrderCompleted { total: 300 },
    ] {
        let next = view.next_envelope(event, CorrelationId::generate());
        view.apply(&next).expect("apply");
        history.push(next);
    }
    events.append(&history).await.expect("append");
    status
        .upsert(&OrderStatusRecord::from(&view))
        .await
        .expect("upsert");
    first.order_id
}

#[tokio::test]
async fn verify_and_rebuild_work_on_dynamodb_and_find_an_order_without_version_1() {
    let endpoint = endpoint();
    let clients = AwsClients::from_env(Some(&endpoint)).await;
    let prefix = prefix("log");
    let (events_table, status_table) = (format!("{prefix}-events"), format!("{prefix}-status"));
    provision::create_tables(&clients, &events_table, &status_table)
        .await
        .expect("create tables");
    let events = DynamoEventStore::new(clients.dynamodb.clone(), &events_table);
    let status = DynamoStatusStore::new(clients.dynamodb.clone(), &status_table);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(completed_order(&events, &status).await);
    }
    let args = |command: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        for s in [
            "--backend",
            "aws",
            "--endpoint-url",
            &endpoint,
            "--events-table",
            &events_table,
            "--status-table",
            &status_table,
        ] {
            a.push(s.to_owned());
        }
        a
    };
    let run = |command: &[&str]| {
        let a = args(command);
        orders(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let clean = run(&["verify"]);
    assert!(
        clean.status.success(),
        "{}{}",
        stdout(&clean),
        stderr(&clean)
    );
    assert_eq!(stdout(&clean).trim(), "verified 6 orders: 0 problems");

    // No version 1: found by the key-only scan all the same.
    let (no_start, disagrees, missing) = (ids[0], ids[1], ids[2]);
    clients
        .dynamodb
        .delete_item()
        .table_name(&events_table)
        .key("orderId", AttributeValue::S(no_start.to_string()))
        .key("version", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("delete version 1");
    let mut wrong = status.get(disagrees).await.expect("get").expect("a view");
    wrong.status = OrderStatus::Failed;
    let version = wrong.version;
    status.replace(&wrong, version).await.expect("replace");
    clients
        .dynamodb
        .delete_item()
        .table_name(&status_table)
        .key("orderId", AttributeValue::S(missing.to_string()))
        .send()
        .await
        .expect("delete a view");

    let broken = run(&["verify"]);
    let out = stdout(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}{}", stderr(&broken));
    let about = |id: OrderId| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains(&id.to_string()))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        about(no_start)
            .iter()
            .any(|l| l.contains("versions: missing version 1")),
        "{out}"
    );
    assert!(
        about(disagrees)
            .iter()
            .any(|l| l.contains("view: disagrees")),
        "{out}"
    );
    assert!(
        about(missing).iter().any(|l| l.contains("view: missing")),
        "{out}"
    );
    assert!(out.ends_with("verified 6 orders: 3 problems\n"), "{out}");

    let rebuild = run(&["rebuild", "--force"]);
    let out = stdout(&rebuild);
    // The order without version 1 cannot be folded: reported, its view left alone.
    assert_eq!(rebuild.status.code(), Some(1), "{out}{}", stderr(&rebuild));
    assert!(out.contains("1 written, 1 forced"), "{out}");
    let after = run(&["verify"]);
    assert!(
        stdout(&after).ends_with("verified 6 orders: 1 problems\n"),
        "{}",
        stdout(&after)
    );
}

#[tokio::test]
async fn dead_letters_on_sqs_are_listed_and_redriven_to_the_work_queue() {
    let endpoint = endpoint();
    let clients = AwsClients::from_env(Some(&endpoint)).await;
    let (queue_url, dlq_url) = provision::create_queue_with_dlq(&clients, &prefix("work"), 5)
        .await
        .expect("create queues");
    let (wanted, other) = (OrderId::new_random(), OrderId::new_random());
    for id in [wanted, other] {
        clients
            .sqs
            .send_message()
            .queue_url(&dlq_url)
            .message_body(id.to_string())
            .send()
            .await
            .expect("send to the DLQ");
    }
    let run = |command: &[&str]| {
        let mut a = command.to_vec();
        a.extend([
            "--backend",
            "aws",
            "--endpoint-url",
            &endpoint,
            "--work-queue-url",
            &queue_url,
            "--work-dlq-url",
            &dlq_url,
        ]);
        orders(&a)
    };
    let list = run(&["dlq", "list"]);
    let out = stdout(&list);
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(out.lines().count(), 2, "{out}");
    // Listing leaves them there, visible: listing again finds both.
    assert_eq!(stdout(&run(&["dlq", "list"])).lines().count(), 2);

    let redrive = run(&["dlq", "redrive", "--order", &wanted.to_string()]);
    assert!(redrive.status.success(), "{}", stderr(&redrive));
    assert_eq!(stdout(&redrive).lines().count(), 1, "{}", stdout(&redrive));
    let left = stdout(&run(&["dlq", "list", "--json"]));
    assert_eq!(left.lines().count(), 1, "{left}");
    assert!(left.contains(&other.to_string()), "{left}");

    let work = SqsWorkQueue::new(clients.sqs.clone(), &queue_url);
    let got = work
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, wanted.to_string());
}

#[test]
fn every_aws_command_says_in_one_line_that_the_stack_does_not_exist() {
    let endpoint = endpoint();
    for command in [
        &["verify"][..],
        &["rebuild"],
        &["dlq", "list"],
        &["dlq", "redrive", "--all"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let mut a = command.to_vec();
        a.extend([
            "--backend",
            "aws",
            "--endpoint-url",
            &endpoint,
            "--stack",
            "no-such-stack-here",
        ]);
        let out = orders(&a);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{command:?}: {err}");
        assert!(
            err.starts_with("error: --stack no-such-stack-here"),
            "{command:?}: {err}"
        );
    }
    // A table that does not exist is named with its flag.
    let out = orders(&[
        "verify",
        "--backend",
        "aws",
        "--endpoint-url",
        &endpoint,
        "--events-table",
        "no-such-table-here",
        "--status-table",
        "no-such-table-either",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-table-here") && err.contains("--events-table"),
        "{err}"
    );
}
