//! `orders serve --backend aws` against the AWS emulator: the real binary, fresh DynamoDB tables,
//! SQS queue and SNS topic, the processor on SQS and the projector / notifier on the event
//! table's DynamoDB stream. Needs `ORDERS_TEST_AWS_ENDPOINT` (scripts/test.sh sets it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::QueueAttributeName;
use events_schema::{CorrelationId, EventEnvelope, OrderEvent, OrderId, OrderStatus, Version};
use futures::future::join_all;
use order_adapters_aws::{provision, AwsClients, DynamoEventStore, DynamoStatusStore};
use order_ports::{EventStore, StatusStore};
use serde_json::Value;

use crate::support::*;

pub(crate) fn endpoint() -> String {
    std::env::var("ORDERS_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ORDERS_TEST_AWS_ENDPOINT is not set: these tests need the AWS emulator. Run \
                 scripts/test.sh, or start one with `EP=$(scripts/emulator-start.sh \
                 target/emulator-serve)` and set ORDERS_TEST_AWS_ENDPOINT=$EP"
            )
        })
}

pub(crate) struct Stack {
    pub(crate) clients: AwsClients,
    pub(crate) events_table: String,
    pub(crate) status_table: String,
    queue_url: String,
    topic_arn: String,
    /// Subscribed to the topic (SNS → SQS): what a downstream consumer receives.
    subscriber_url: String,
}

pub(crate) async fn provision_stack(endpoint: &str) -> Stack {
    let clients = AwsClients::from_env(Some(endpoint)).await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let prefix = format!("serve-aws-{}-{nanos}", std::process::id());
    let events_table = format!("{prefix}-events");
    let status_table = format!("{prefix}-status");
    provision::create_tables(&clients, &events_table, &status_table)
        .await
        .expect("create tables");
    let (queue_url, _dlq) =
        provision::create_queue_with_dlq(&clients, &format!("{prefix}-work"), 5)
            .await
            .expect("create work queue");
    let topic_arn = provision::create_topic(&clients, &format!("{prefix}-topic"))
        .await
        .expect("create topic");
    let subscriber_url = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-subscriber"))
        .send()
        .await
        .expect("create subscriber queue")
        .queue_url
        .expect("QueueUrl");
    let subscriber_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&subscriber_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("QueueArn");
    clients
        .sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(subscriber_arn)
        .send()
        .await
        .expect("subscribe the queue to the topic");
    Stack {
        clients,
        events_table,
        status_table,
        queue_url,
        topic_arn,
        subscriber_url,
    }
}

/// `orders serve --backend aws` on the stack, its stream positions in `checkpoints`.
pub(crate) fn start_serve(endpoint: &str, stack: &Stack, checkpoints: &Path) -> Server {
    let checkpoints = checkpoints.to_str().expect("a UTF-8 temp path");
    Server::start_with_args(&[
        "--checkpoints",
        checkpoints,
        "--backend",
        "aws",
        "--endpoint-url",
        endpoint,
        "--events-table",
        &stack.events_table,
        "--status-table",
        &stack.status_table,
        "--work-queue-url",
        &stack.queue_url,
        "--topic-arn",
        &stack.topic_arn,
        "--visibility-timeout",
        "5",
    ])
}

/// Drains the subscriber queue until `expected` distinct orders have a message and then a
/// quiet second has passed (so duplicates would show); returns the messages per orderId.
async fn drain_notifications(
    stack: &Stack,
    expected: &HashSet<String>,
    counts: &mut BTreeMap<String, usize>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since: Option<Instant> = None;
    loop {
        let out = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(&stack.subscriber_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        for message in &messages {
            let body = message.body.as_deref().expect("body");
            let envelope: Value = serde_json::from_str(body).expect("SNS envelope JSON");
            let inner: Value = match &envelope["Message"] {
                Value::String(text) => serde_json::from_str(text).expect("message JSON"),
                _ => envelope.clone(),
            };
            assert_eq!(inner["eventType"], "OrderCompleted", "{inner}");
            assert!(inner["eventId"].is_string(), "{inner}");
            let order_id = inner["orderId"].as_str().expect("orderId").to_owned();
            if let Some(attributes) = envelope.get("MessageAttributes") {
                assert_eq!(attributes["eventType"]["Value"], "OrderCompleted");
                assert_eq!(attributes["orderId"]["Value"], order_id.as_str());
            }
            *counts.entry(order_id).or_insert(0) += 1;
            stack
                .clients
                .sqs
                .delete_message()
                .queue_url(&stack.subscriber_url)
                .receipt_handle(message.receipt_handle.as_deref().expect("receipt"))
                .send()
                .await
                .expect("DeleteMessage");
        }
        let all_there = expected.iter().all(|id| counts.contains_key(id));
        if messages.is_empty() && all_there {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                return;
            }
        } else {
            quiet_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "notifications missing after 60 s: {} of {} orders notified",
            expected
                .iter()
                .filter(|id| counts.contains_key(*id))
                .count(),
            expected.len()
        );
    }
}

/// Every order: COMPLETED at version 3 through the API and in the status table (written by
/// the projector polling the stream), versions 1..3 in the event table.
async fn assert_completed(
    client: &reqwest::Client,
    base: &str,
    stack: &Stack,
    ids: &HashSet<String>,
) {
    wait_until_completed(client, base, ids).await;
    let events = DynamoEventStore::new(stack.clients.dynamodb.clone(), &stack.events_table);
    let status = DynamoStatusStore::new(stack.clients.dynamodb.clone(), &stack.status_table);
    for id in ids {
        let (code, view) = get_json(client, &format!("{base}/orders/{id}")).await;
        assert_eq!(code, 200, "{view}");
        assert_eq!(view["status"], "COMPLETED", "{view}");
        assert_eq!(view["version"], 3, "{view}");

        // GET answers from the log until the view has the order: wait for the projector.
        let order_id = OrderId::parse(id).expect("order id");
        let deadline = Instant::now() + Duration::from_secs(30);
        let record = loop {
            let record = status.get(order_id).await.expect("status table");
            match record {
                Some(record) if record.version.get() >= 3 => break record,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("{id} not projected at version 3 after 30 s: {other:?}"),
            }
        };
        assert_eq!(record.status, OrderStatus::Completed, "{id}");
        assert_eq!(record.version.get(), 3, "{id}");

        let history = events.load(order_id).await.expect("event table");
        let versions: Vec<u32> = history.iter().map(|e| e.version.get()).collect();
        assert_eq!(versions, vec![1, 2, 3], "history of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_on_aws_completes_every_order_and_notifies_each_once_across_a_restart() {
    let endpoint = endpoint();
    let stack = provision_stack(&endpoint).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints.db");
    let server = start_serve(&endpoint, &stack, &checkpoints);
    let client = client();
    let base = server.base.clone();

    // 20 orders; the last 5 carry an Idempotency-Key and are sent twice at once.
    let posts = (0..20u32).flat_map(|n| {
        let key = (n >= 15).then(|| format!("aws-key-{n}"));
        let copies = if key.is_some() { 2 } else { 1 };
        let (client, base) = (client.clone(), base.clone());
        (0..copies).map(move |_| {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            async move {
                let (status, body) = post_order(
                    &client,
                    &base,
                    &order_body(&format!("aws-cust-{}", n % 3), n),
                    key.as_deref(),
                )
                .await
                .expect("POST /orders");
                (n, key, status, body)
            }
        })
    });
    let responses = join_all(posts).await;
    assert_eq!(responses.len(), 25);
    let mut ids = HashSet::new();
    let mut by_key: HashMap<String, HashSet<String>> = HashMap::new();
    for (n, key, status, body) in &responses {
        assert_eq!(*status, 202, "order {n}: {body}");
        let id = body["orderId"].as_str().expect("orderId").to_owned();
        if let Some(key) = key {
            by_key.entry(key.clone()).or_default().insert(id.clone());
        }
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20, "one order per distinct request");
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "a retried key answers the same orderId: {by_key:?}"
    );

    assert_completed(&client, &base, &stack, &ids).await;
    let mut counts = BTreeMap::new();
    drain_notifications(&stack, &ids, &mut counts).await;
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "SNS messages for {id}");
    }
    assert_eq!(
        counts.len(),
        20,
        "no message for an unknown order: {counts:?}"
    );

    // A restart resumes both consumers after their durable checkpoints: the 20 are not
    // notified again, a new order is, once.
    server.terminate();
    let server = start_serve(&endpoint, &stack, &checkpoints);
    let base = server.base.clone();
    let (status, body) = post_order(&client, &base, &order_body("aws-cust-late", 99), None)
        .await
        .expect("POST /orders after the restart");
    assert_eq!(status, 202, "{body}");
    let late: HashSet<String> =
        HashSet::from([body["orderId"].as_str().expect("orderId").to_owned()]);
    assert_completed(&client, &base, &stack, &late).await;
    assert_completed(&client, &base, &stack, &ids).await;
    let mut after_restart = BTreeMap::new();
    drain_notifications(&stack, &late, &mut after_restart).await;
    let expected: BTreeMap<String, usize> = late.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        after_restart, expected,
        "after the restart only the new order is notified"
    );
    server.terminate();
}

/// An order completed by another writer (the deployed Lambdas, say) while serve was down:
/// OrderReceived, OrderProcessingStarted and OrderCompleted appended straight to the event table.
async fn complete_an_order_behind_serves_back(stack: &Stack) -> String {
    let received = order_test_support::order_received(2, 750);
    let order_id = received.order_id;
    let correlation = CorrelationId::generate();
    let next = |version: u32, event: OrderEvent| {
        EventEnvelope::new(
            order_id,
            Version::new(version).expect("version"),
            correlation.clone(),
            event,
        )
    };
    let history = [
        received,
        next(2, OrderEvent::OrderProcessingStarted),
        next(3, OrderEvent::OrderCompleted { total: 1500 }),
    ];
    DynamoEventStore::new(stack.clients.dynamodb.clone(), &stack.events_table)
        .append(&history)
        .await
        .expect("append a completed order");
    order_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigterm_mid_load_on_aws_publishes_every_completion_and_a_restart_resumes_from_the_checkpoint(
) {
    let endpoint = endpoint();
    let stack = provision_stack(&endpoint).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints.db");
    let server = start_serve(&endpoint, &stack, &checkpoints);
    let client = client();
    let accepted = Arc::new(Mutex::new(HashSet::new()));

    let load = {
        let (client, base, accepted) = (client.clone(), server.base.clone(), accepted.clone());
        tokio::spawn(async move {
            let senders = (0..6u32).map(|s| {
                let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
                tokio::spawn(async move {
                    for i in 0..100u32 {
                        let body = order_body(&format!("aws-term-{s}"), s * 1000 + i);
                        // Connection errors after the stop are expected: never accepted.
                        match post_order(&client, &base, &body, None).await {
                            Ok((202, body)) => {
                                let id = body["orderId"].as_str().expect("orderId").to_owned();
                                accepted.lock().expect("lock").insert(id);
                            }
                            Ok((status, body)) => panic!("unexpected {status}: {body}"),
                            Err(_) => return,
                        }
                    }
                })
            });
            futures::future::join_all(senders).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.lock().expect("lock").len() < 40 {
        assert!(Instant::now() < deadline, "load never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGTERM while orders are being accepted, queued and processed; exits 0.
    server.terminate();
    for sender in load.await.expect("load task") {
        sender.expect("sender task");
    }
    let accepted = accepted.lock().expect("lock").clone();

    // Before any restart: every order completed by then was published, once — the API and the
    // processor stopped before the notifier, which caught up before the process exited.
    let events = DynamoEventStore::new(stack.clients.dynamodb.clone(), &stack.events_table);
    let mut completed_before = HashSet::new();
    for id in &accepted {
        let history = events
            .load(OrderId::parse(id).expect("order id"))
            .await
            .expect("event table");
        if history
            .iter()
            .any(|e| matches!(e.event, OrderEvent::OrderCompleted { .. }))
        {
            completed_before.insert(id.clone());
        }
    }
    assert!(
        !completed_before.is_empty(),
        "nothing completed before the stop: the test proved nothing"
    );
    eprintln!(
        "SIGTERM with {} accepted, {} completed",
        accepted.len(),
        completed_before.len()
    );
    let mut counts = BTreeMap::new();
    drain_notifications(&stack, &completed_before, &mut counts).await;
    for id in &completed_before {
        assert_eq!(counts.get(id), Some(&1), "{id}: completed before the stop");
    }

    // Completed while serve was down: only a notifier that resumes from its checkpoint (not
    // from LATEST) publishes it.
    let behind_its_back = complete_an_order_behind_serves_back(&stack).await;

    let server = start_serve(&endpoint, &stack, &checkpoints);
    let base = server.base.clone();
    assert_completed(&client, &base, &stack, &accepted).await;
    let mut everything = accepted.clone();
    everything.insert(behind_its_back.clone());
    drain_notifications(&stack, &everything, &mut counts).await;

    // Delivery to subscribers is at least once: a duplicate is allowed when the process dies
    // between a publish and the commit of its checkpoint (SIGKILL, power loss). A SIGTERM
    // commits everything it published and the restart resumes right after it, so here every
    // order is published exactly once, the one completed behind serve's back included.
    for id in &everything {
        assert_eq!(counts.get(id), Some(&1), "SNS messages for {id}");
    }
    // An order whose 202 was lost to the stop may have been notified too: once, like any other.
    assert!(
        counts.values().all(|n| *n == 1),
        "an order was notified more than once: {counts:?}"
    );
    server.terminate();
}
