//! The contract suite against the AWS adapters (DynamoDB, SQS, SNS) on the emulator, plus what
//! only the AWS path can show: the transaction conflict names the failing version, redrive to
//! the DLQ after `maxReceiveCount`, gap rejection, batch send, parallel scan, corrupt items.
//!
//! The emulator's URL comes from `ORDERS_TEST_AWS_ENDPOINT` (the project's test script starts
//! ministack and sets it). Without it every test here FAILS: the AWS path is never skipped
//! silently. Every check gets its own freshly created, uniquely named tables, queues and topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use events_schema::{EventId, OrderEvent, OrderId, Version};
use order_adapters_aws::{
    provision, AwsClients, DynamoEventStore, DynamoStatusStore, SnsPublisher, SqsWorkQueue,
};
use order_ports::{
    AppendError, EventStore, Notification, Publisher, StatusRepair, StatusStore, StoreError,
    WorkQueue,
};
use tokio::sync::Mutex;

use crate::suite::{event_at, history, received, Backend};

/// The environment variable naming the emulator's endpoint, e.g. `http://127.0.0.1:4566`.
const ENDPOINT_VAR: &str = "ORDERS_TEST_AWS_ENDPOINT";
/// Fewer receives than the deployed default keeps the redrive checks fast.
const MAX_RECEIVES: u32 = 3;

fn endpoint() -> String {
    match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{ENDPOINT_VAR} is not set: the AWS contract tests need the emulator. Run the \
             project's test command (it starts ministack and sets {ENDPOINT_VAR}), or start one \
             with `scripts/emulator-start.sh target/emulator` and export \
             {ENDPOINT_VAR}=$(cat target/emulator/endpoint)."
        ),
    }
}

async fn clients() -> AwsClients {
    AwsClients::from_env(Some(&endpoint())).await
}

/// A name no other test uses: `{prefix}-{32 hex}`.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", OrderId::new_random().as_uuid().simple())
}

/// Fresh resources for one check: event and status tables, a work queue with its DLQ, and a
/// topic with an SQS queue subscribed so published notifications can be observed.
struct AwsBackend {
    clients: AwsClients,
    events_table: String,
    status_table: String,
    queue_url: String,
    dlq_url: String,
    topic_arn: String,
    subscriber_url: String,
    seen: Mutex<Vec<Notification>>,
}

impl AwsBackend {
    async fn new() -> Self {
        let clients = clients().await;
        let events_table = unique("events");
        let status_table = unique("status");
        provision::create_tables(&clients, &events_table, &status_table)
            .await
            .expect("create tables");
        let (queue_url, dlq_url) =
            provision::create_queue_with_dlq(&clients, &unique("work"), MAX_RECEIVES)
                .await
                .expect("create queues");
        let topic_arn = provision::create_topic(&clients, &unique("topic"))
            .await
            .expect("create topic");
        let subscriber_url = subscribe_queue(&clients, &topic_arn).await;
        Self {
            clients,
            events_table,
            status_table,
            queue_url,
            dlq_url,
            topic_arn,
            subscriber_url,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn events(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.clients.dynamodb.clone(), &self.events_table)
    }

    fn statuses(&self) -> DynamoStatusStore {
        DynamoStatusStore::new(self.clients.dynamodb.clone(), &self.status_table)
    }

    /// The work queue with failed messages visible again at once: the suite's and the redrive
    /// checks' receives poll for about a second, which a retry delay would outlast.
    /// [`a_failed_message_stays_hidden_for_the_retry_delay_of_its_receive_count`] checks the
    /// default backoff.
    fn queue(&self) -> SqsWorkQueue {
        SqsWorkQueue::new(self.clients.sqs.clone(), &self.queue_url)
            .with_retry_delay(|_| Duration::ZERO)
    }

    fn dead_letters(&self) -> SqsWorkQueue {
        SqsWorkQueue::new(self.clients.sqs.clone(), &self.dlq_url)
    }
}

/// Creates a queue and subscribes it to the topic (SNS envelope delivery, not raw).
async fn subscribe_queue(clients: &AwsClients, topic_arn: &str) -> String {
    let url = clients
        .sqs
        .create_queue()
        .queue_name(unique("sub"))
        .send()
        .await
        .expect("create subscriber queue")
        .queue_url
        .expect("queue url");
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue arn");
    clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .expect("subscribe");
    url
}

/// Turns an SNS-to-SQS envelope back into the notification that was published. The event id
/// travels inside the message (`eventId`), as consumers see it.
fn from_envelope(body: &str) -> Notification {
    let envelope: serde_json::Value = serde_json::from_str(body).expect("SNS envelope is JSON");
    let message = envelope["Message"]
        .as_str()
        .expect("envelope has a Message")
        .to_owned();
    let inner: serde_json::Value = serde_json::from_str(&message).expect("message is JSON");
    let event_id = inner["eventId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .map(EventId::from_uuid)
        .expect("message has an eventId");
    let attributes = envelope["MessageAttributes"]
        .as_object()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, v)| {
                    assert_eq!(v["Type"], "String", "attribute {name}: {v}");
                    let value = v["Value"].as_str().expect("attribute value").to_owned();
                    (name.clone(), value)
                })
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    Notification {
        event_id,
        message,
        attributes,
    }
}

#[async_trait]
impl Backend for AwsBackend {
    async fn event_store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.events())
    }
    async fn work_queue(&self) -> Arc<dyn WorkQueue> {
        Arc::new(self.queue())
    }
    async fn status_store(&self) -> Arc<dyn StatusStore> {
        Arc::new(self.statuses())
    }
    async fn status_repair(&self) -> Arc<dyn StatusRepair> {
        Arc::new(self.statuses())
    }
    async fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::new(SnsPublisher::new(self.clients.sns.clone(), &self.topic_arn))
    }
    fn max_receives(&self) -> u32 {
        MAX_RECEIVES
    }
    /// Drains the subscribed queue into the list of everything observed so far.
    async fn published(&self) -> Vec<Notification> {
        let mut seen = self.seen.lock().await;
        loop {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.subscriber_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive from subscriber queue");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                seen.push(from_envelope(m.body().expect("body")));
                self.clients
                    .sqs
                    .delete_message()
                    .queue_url(&self.subscriber_url)
                    .receipt_handle(m.receipt_handle().expect("receipt"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
        seen.clone()
    }
}

all_checks!(contract_tests; AwsBackend::new());
pending_checks!(contract_tests; AwsBackend::new());

// ---------------------------------------------------------------------------------------------
// AWS only

/// `TransactWriteItems` cancelled by one `ConditionalCheckFailed` names that event's version.
#[tokio::test]
async fn a_transaction_conflict_names_the_version_that_exists() {
    let b = AwsBackend::new().await;
    let store = b.events();
    let order = OrderId::new_random();
    let events = history(order, 4);
    store.append(&events[..2]).await.expect("append v1..v2");
    let theirs = event_at(order, 3, OrderEvent::OrderProcessingStarted);
    store
        .append(std::slice::from_ref(&theirs))
        .await
        .expect("their v3");
    let err = store
        .append(&events[2..4])
        .await
        .expect_err("v3..v4 conflicts");
    assert_eq!(
        err,
        AppendError::Conflict {
            order_id: order,
            version: Version::new(3).expect("v3"),
        }
    );
    let loaded = store.load(order).await.expect("load");
    assert_eq!(loaded.len(), 3, "v4 must not be written");
}

/// The first version must be current + 1: a gap is rejected (and writes nothing).
#[tokio::test]
async fn appending_past_a_gap_is_rejected() {
    let b = AwsBackend::new().await;
    let store = b.events();
    let order = OrderId::new_random();
    let events = history(order, 4);
    store.append(&events[..1]).await.expect("append v1");
    for batch in [&events[2..3], &events[2..4]] {
        let err = store.append(batch).await.expect_err("gap");
        assert!(
            matches!(err, AppendError::Store(StoreError::Rejected(_))),
            "{err:?}"
        );
    }
    // A new order cannot start above version 1 either.
    let fresh = OrderId::new_random();
    let err = store
        .append(&history(fresh, 2)[1..])
        .await
        .expect_err("gap");
    assert!(
        matches!(err, AppendError::Store(StoreError::Rejected(_))),
        "{err:?}"
    );
    assert_eq!(store.load(order).await.expect("load").len(), 1);
    assert!(store.load(fresh).await.expect("load").is_empty());
}

/// `fail()` (here with visibility 0) `maxReceiveCount` times: SQS's redrive moves the message to the DLQ.
#[tokio::test]
async fn a_message_failed_max_times_lands_in_the_dlq() {
    let b = AwsBackend::new().await;
    let q = b.queue();
    let order = OrderId::new_random();
    q.send(order).await.expect("send");
    let mut message_id = None;
    for n in 1..=MAX_RECEIVES {
        let got = q
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
        message_id = Some(got[0].message_id.clone());
        q.fail(&got[0]).await.expect("fail");
    }
    // The next receive finds it over the limit and redrives it instead of delivering it.
    assert!(q
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive")
        .is_empty());
    let dlq = b.dead_letters();
    let mut dead = Vec::new();
    for _ in 0..5 {
        dead = dlq
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive dlq");
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead.len(), 1, "message not in the DLQ");
    assert_eq!(dead[0].body, order.to_string());
    assert_eq!(Some(dead[0].message_id.clone()), message_id);
}

/// The default backoff: `ChangeMessageVisibility` to `retry_delay(receive count)`.
#[tokio::test]
async fn a_failed_message_stays_hidden_for_the_retry_delay_of_its_receive_count() {
    let b = AwsBackend::new().await;
    let q = SqsWorkQueue::new(b.clients.sqs.clone(), &b.queue_url);
    q.send(OrderId::new_random()).await.expect("send");
    let next = || async {
        for _ in 0..10 {
            let got = q
                .receive(1, Duration::from_secs(30))
                .await
                .expect("receive");
            if let Some(d) = got.into_iter().next() {
                return (d, std::time::Instant::now());
            }
        }
        panic!("no message within 10 receives");
    };
    let (mut delivery, _) = next().await;
    for receive_count in 1..=2 {
        assert_eq!(delivery.receive_count, receive_count);
        let failed_at = std::time::Instant::now();
        q.fail(&delivery).await.expect("fail");
        let (back, at) = next().await;
        let hidden = at - failed_at;
        let delay = order_ports::retry_delay(receive_count);
        // SQS counts whole seconds from its own clock: allow it a little slack.
        assert!(
            hidden + Duration::from_millis(300) >= delay,
            "back after {hidden:?}, before {delay:?}"
        );
        delivery = back;
    }
    q.ack(&delivery).await.expect("ack");
}

/// Stale receipts: `fail` after `ack` is not an error either.
#[tokio::test]
async fn failing_a_stale_receipt_is_not_an_error() {
    let b = AwsBackend::new().await;
    let q = b.queue();
    q.send(OrderId::new_random()).await.expect("send");
    let got = q
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    q.ack(&got[0]).await.expect("ack");
    q.fail(&got[0]).await.expect("fail after ack");
}

#[tokio::test]
async fn send_batch_enqueues_every_order() {
    let b = AwsBackend::new().await;
    let q = b.queue();
    let orders: Vec<OrderId> = (0..23).map(|_| OrderId::new_random()).collect();
    q.send_batch(&orders).await.expect("send_batch");
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let got = q
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        for d in got {
            q.ack(&d).await.expect("ack");
            bodies.push(d.body);
        }
        if bodies.len() >= orders.len() {
            break;
        }
    }
    let mut expected: Vec<String> = orders.iter().map(ToString::to_string).collect();
    expected.sort();
    bodies.sort();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn a_parallel_scan_returns_every_event_once() {
    let b = AwsBackend::new().await;
    let store = b.events();
    let mut written = Vec::new();
    for n in 0..9 {
        let events = history(OrderId::new_random(), n % 4 + 1);
        store.append(&events).await.expect("append");
        written.extend(events);
    }
    for segments in [1, 3] {
        let mut got = store.scan_all_parallel(segments).await.expect("scan");
        got.sort_by_key(|e| (e.order_id, e.version));
        written.sort_by_key(|e| (e.order_id, e.version));
        assert_eq!(got, written, "{segments} segments");
    }
    let err = store.scan_all_parallel(0).await.expect_err("0 segments");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
}

/// An event stored by something else than this adapter, with a payload that is not an event,
/// is `Corrupt` on load, not a panic or `Unavailable`.
#[tokio::test]
async fn a_corrupt_item_is_reported_as_corrupt() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let b = AwsBackend::new().await;
    let order = OrderId::new_random();
    let mut item: std::collections::HashMap<String, AttributeValue> =
        received(order, "cust-1").to_item().expect("item").into();
    item.insert(
        "eventType".into(),
        AttributeValue::S("OrderTeleported".into()),
    );
    b.clients
        .dynamodb
        .put_item()
        .table_name(&b.events_table)
        .set_item(Some(item))
        .send()
        .await
        .expect("raw put");
    let err = b.events().load(order).await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

/// SNS refuses a message over 256 KiB with `InvalidParameter`: permanent, so `Rejected`.
#[tokio::test]
async fn an_oversized_notification_is_rejected() {
    let b = AwsBackend::new().await;
    let publisher = b.publisher().await;
    let n = Notification {
        event_id: EventId::new(),
        message: "x".repeat(300_000),
        attributes: BTreeMap::new(),
    };
    let err = publisher.publish(&n).await.expect_err("too large");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
}

/// A table that does not exist is an environment problem, reported as `Unavailable` (the
/// message is retried and dead-lettered rather than dropped), never a panic.
#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let clients = clients().await;
    let store = DynamoEventStore::new(clients.dynamodb.clone(), unique("missing"));
    let err = store
        .load(OrderId::new_random())
        .await
        .expect_err("no table");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
