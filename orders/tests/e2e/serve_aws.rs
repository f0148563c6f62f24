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
    start_serve_with(endpoint, stack, checkpoints, &stack.queue_url, &[])
}

/// `orders serve --backend aws` on the stack with `queue_url` as its work queue, and `extra`
/// arguments.
fn start_serve_with(
    endpoint: &str,
    stack: &Stack,
    checkpoints: &Path,
    queue_url: &str,
    extra: &[&str],
) -> Server {
    let checkpoints = checkpoints.to_str().expect("a UTF-8 temp path");
    let mut args = vec![
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
        queue_url,
        "--topic-arn",
        &stack.topic_arn,
        "--visibility-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    Server::start_with_args(&args)
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

/// Runs the `orders` binary with `args`; fails the test unless it exits 0. Returns its stdout.
fn orders_ok(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(args)
        .output()
        .expect("run orders");
    assert!(
        output.status.success(),
        "orders {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A counter's value in a Prometheus scrape (`name value` line), 0 when it is not there.
fn counter(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Waits until the projector (polling the stream) has written the order's view.
async fn wait_for_view(stack: &Stack, order_id: OrderId) -> events_schema::OrderStatusRecord {
    let status = DynamoStatusStore::new(stack.clients.dynamodb.clone(), &stack.status_table);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(record) = status.get(order_id).await.expect("status table") {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "{order_id} not projected after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 17 / ADR 8: once `OrderReceived` is stored, `POST /orders` is a `202` whatever happens
/// to the enqueue; the order is counted as not queued and left to the reconciler.
///
/// How the queue refuses: serve's `--work-queue-url` names a queue that was never created (the
/// stack's own work queue URL with a suffix). `SendMessage` then fails at the service as on AWS
/// (`AWS.SimpleQueueService.NonExistentQueue`, HTTP 400) after the request reached it — an honest
/// refusal by the queue service, with no fault injected into our code, and the only one ministack
/// offers (it enforces no IAM or queue policy, so a `Deny` on `sqs:SendMessage` would not refuse
/// anything). The processor's receives fail the same way, so nothing else can take the order
/// off a queue: only `orders reconcile`, pointed at the working queue, gets it processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_whose_enqueue_is_refused_on_aws_is_accepted_counted_as_not_queued_and_completed_by_reconcile(
) {
    let endpoint = endpoint();
    let stack = provision_stack(&endpoint).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints.db");
    let refusing_queue = format!("{}-never-created", stack.queue_url);
    let server = start_serve_with(&endpoint, &stack, &checkpoints, &refusing_queue, &[]);
    let client = client();

    let (status, body) = post_order(&client, &server.base, &order_body("aws-unqueued", 7), None)
        .await
        .expect("POST /orders");
    assert_eq!(status, 202, "a stored order is accepted: {body}");
    assert_eq!(body["status"], "RECEIVED", "{body}");
    let id = body["orderId"].as_str().expect("orderId").to_owned();
    let order_id = OrderId::parse(&id).expect("order id");

    // Stored, and said to be not queued.
    let events = DynamoEventStore::new(stack.clients.dynamodb.clone(), &stack.events_table);
    let history = events.load(order_id).await.expect("event table");
    let versions: Vec<u32> = history.iter().map(|e| e.version.get()).collect();
    assert_eq!(versions, [1], "OrderReceived is in the log");
    let scrape = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert_eq!(
        counter(&scrape, "orders_not_queued_total"),
        1.0,
        "OrdersNotQueued counts the order:\n{scrape}"
    );
    assert_eq!(counter(&scrape, "orders_accepted_total"), 1.0, "{scrape}");

    // The projector (on the stream, which works) shows it pending; nothing processes it.
    let view = wait_for_view(&stack, order_id).await;
    assert_eq!(view.status, OrderStatus::Received);
    server.terminate();

    // serve again on the working queue: the order is on no queue, so it stays RECEIVED until
    // `orders reconcile` sends it there.
    let server = start_serve(&endpoint, &stack, &checkpoints);
    let versions: Vec<u32> = events
        .load(order_id)
        .await
        .expect("event table")
        .iter()
        .map(|e| e.version.get())
        .collect();
    assert_eq!(versions, [1], "nothing processed the unqueued order");
    let report: Value = serde_json::from_str(&orders_ok(&[
        "reconcile",
        "--older-than",
        "0s",
        "--json",
        "--backend",
        "aws",
        "--endpoint-url",
        &endpoint,
        "--events-table",
        &stack.events_table,
        "--status-table",
        &stack.status_table,
        "--work-queue-url",
        &stack.queue_url,
    ]))
    .expect("the reconcile report is JSON");
    let listed: Vec<&str> = report["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| o["orderId"].as_str())
        .collect();
    assert_eq!(listed, [id.as_str()], "{report}");
    assert_eq!(report["reenqueued"], 1, "{report}");

    let ids = HashSet::from([id.clone()]);
    assert_completed(&client, &server.base, &stack, &ids).await;
    let mut counts = BTreeMap::new();
    drain_notifications(&stack, &ids, &mut counts).await;
    assert_eq!(counts.get(&id), Some(&1), "notified once: {counts:?}");
    server.terminate();
}

/// The image of an event this build cannot read (a newer writer's type), with the table's real
/// keys, written straight into the event table with `PutItem` as a writer would.
async fn put_unknown_event(stack: &Stack) -> OrderId {
    let order_id = OrderId::new_random();
    let envelope = EventEnvelope::new(
        order_id,
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderProcessingStarted,
    );
    let mut item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        envelope.to_item().expect("item").into();
    item.insert(
        "eventType".to_owned(),
        aws_sdk_dynamodb::types::AttributeValue::S("OrderTeleported".to_owned()),
    );
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(&stack.events_table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(orderId)")
        .send()
        .await
        .expect("PutItem of the poison record");
    order_id
}

/// ADR 7 on `orders serve --backend aws`: a stream record the projector and the notifier cannot
/// decode is set aside in the stream failure queue by each of them — the same message the
/// Lambdas send — and the orders around it complete and are notified; `orders dlq records`
/// lists it. (serve's notifier reads the stream unfiltered, unlike the notifier Lambda, whose
/// mapping only passes `OrderCompleted`: both consumers meet the record here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_on_aws_sets_a_record_it_cannot_decode_aside_in_the_stream_failure_queue_and_goes_on()
{
    let endpoint = endpoint();
    let stack = provision_stack(&endpoint).await;
    let failure_queue = stack
        .clients
        .sqs
        .create_queue()
        .queue_name(format!(
            "{}-stream-failures",
            stack.events_table.trim_end_matches("-events")
        ))
        .send()
        .await
        .expect("create the stream failure queue")
        .queue_url
        .expect("QueueUrl");
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints.db");
    let server = start_serve_with(
        &endpoint,
        &stack,
        &checkpoints,
        &stack.queue_url,
        &["--stream-failure-queue-url", &failure_queue],
    );
    let client = client();
    let post = |n: u32| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let (status, body) = post_order(&client, &base, &order_body("aws-poison", n), None)
                .await
                .expect("POST /orders");
            assert_eq!(status, 202, "{body}");
            body["orderId"].as_str().expect("orderId").to_owned()
        }
    };
    let mut ids: HashSet<String> = join_all((0..5).map(post)).await.into_iter().collect();
    let poison = put_unknown_event(&stack).await;
    ids.extend(join_all((5..10).map(post)).await);

    assert_completed(&client, &server.base, &stack, &ids).await;
    let mut counts = BTreeMap::new();
    drain_notifications(&stack, &ids, &mut counts).await;
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");

    let listed = || {
        orders_ok(&[
            "dlq",
            "records",
            "--json",
            "--backend",
            "aws",
            "--endpoint-url",
            &endpoint,
            "--stream-failure-queue-url",
            &failure_queue,
        ])
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("one JSON object per line"))
        .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = listed();
        if records.len() >= 2 || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut by: Vec<&str> = records
        .iter()
        .map(|r| r["setAsideBy"].as_str().unwrap_or("?"))
        .collect();
    by.sort_unstable();
    assert_eq!(by, ["notifier", "projector"], "{records:?}");
    for record in &records {
        assert_eq!(record["kind"], "setAside", "{record}");
        assert_eq!(record["orderId"], poison.to_string(), "{record}");
        assert_eq!(record["version"], 1, "{record}");
        assert!(record["sequenceNumber"].is_string(), "{record}");
        assert!(
            record["reason"]
                .as_str()
                .is_some_and(|r| r.contains("OrderTeleported")),
            "{record}"
        );
    }
    assert_eq!(
        records[0]["sequenceNumber"], records[1]["sequenceNumber"],
        "the same stream record"
    );
    server.terminate();
}
