//! The AWS path end to end on the emulator (ministack): the six function bootstraps (the
//! archive deploys too, idle here; archive_aws.rs drives it), deployed from `template.yaml` with
//! `scripts/deploy.sh` — the command users run — and driven through
//! the HTTP API, the queues and the tables exactly as a client, an operator and a downstream
//! service would.
//!
//! Needs `ORDERS_TEST_AWS_ENDPOINT` (a running ministack) and `ORDERS_TEST_LAMBDA_ZIPS` (a
//! directory of `<function>/bootstrap.zip`); `scripts/test.sh` provides both, the zips made from
//! the test build's own binaries (`scripts/test-lambda-zips.sh`). The release zips of
//! `cargo lambda` deploy the same way (`ORDERS_TEST_LAMBDA_ZIPS=target/lambda`). Without them
//! these tests fail: they never skip silently.
//!
//! Which guarantee is proven where:
//! - Ingest idempotency, processor, projector and notifier working together as deployed
//!   (mappings, filters, function environment, API routes, payload format 2.0): here, through
//!   the real bootstraps. IAM is not: the emulator stores policies without enforcing them.
//! - SQS partial batch failure → DLQ after `maxReceiveCount`: here (ministack honours
//!   `ReportBatchItemFailures` for SQS).
//! - Stream retries: here only at the *invocation* level — a projector that fails as a whole
//!   is retried until it works, and the batch is then applied once. ministack ignores
//!   `ReportBatchItemFailures`, `MaximumRetryAttempts` and `BisectBatchOnFunctionError` for
//!   streams, so the *record*-level contract (the response names the first failed record;
//!   re-delivered records are harmless thanks to the version guard) belongs to handler-level
//!   tests of `order_lambda::handle_stream_batch` and of the projector, without AWS.
//! - The stream on-failure destination: here, through `MaximumRecordAgeInSeconds` (the one
//!   give-up condition ministack applies); `RetryAttemptsExhausted` cannot be shown on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use events_schema::{EventEnvelope, OrderStatus, OrderStatusRecord, OrderView};
use futures::StreamExt;
use order_adapters_aws::AwsClients;
use serde_json::{json, Value};

use crate::support::{client, get_json, order_body, post_order, ProblemResponse};

const ENDPOINT_VAR: &str = "ORDERS_TEST_AWS_ENDPOINT";
const ZIPS_VAR: &str = "ORDERS_TEST_LAMBDA_ZIPS";

pub(crate) fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set. This test deploys template.yaml to a running AWS emulator with the \
             built Lambda zips: run scripts/test.sh, which zips the test build's binaries, starts \
             ministack and exports {ENDPOINT_VAR} and {ZIPS_VAR} before `cargo test`."
        ),
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the orders crate lives in the workspace root")
        .to_owned()
}

/// A stack name no other run (or test) uses: stacks, buckets and function names derive from it.
fn unique_stack_name(purpose: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    format!(
        "e2e-{purpose}-{}-{}",
        std::process::id(),
        millis % 100_000_000
    )
}

/// A deployed stack of `template.yaml` on the emulator, and clients to look inside it.
pub(crate) struct Stack {
    pub(crate) name: String,
    pub(crate) endpoint: String,
    outputs: BTreeMap<String, String>,
    pub(crate) aws: AwsClients,
}

impl Stack {
    /// Runs `scripts/deploy.sh --stack NAME --endpoint-url URL --arch x86_64 --zips-dir DIR
    /// --param K=V …` and reads its JSON outputs.
    pub(crate) async fn deploy(purpose: &str, params: &[(&str, &str)]) -> Stack {
        let endpoint = required_env(ENDPOINT_VAR);
        let zips = required_env(ZIPS_VAR);
        let name = unique_stack_name(purpose);
        let mut command = Command::new(repo_root().join("scripts/deploy.sh"));
        command.args([
            "--stack",
            &name,
            "--endpoint-url",
            &endpoint,
            "--arch",
            "x86_64",
            "--zips-dir",
            &zips,
        ]);
        for (key, value) in params {
            command.args(["--param", &format!("{key}={value}")]);
        }
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("deploy thread")
            .expect("run scripts/deploy.sh");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "scripts/deploy.sh --stack {name} failed ({}):\n{stderr}",
            output.status
        );
        let outputs: BTreeMap<String, String> = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| {
                panic!(
                    "deploy.sh stdout is not the outputs JSON ({e}):\n{}\nstderr:\n{stderr}",
                    String::from_utf8_lossy(&output.stdout)
                )
            });
        eprintln!(
            "aws_stack: deployed {name} in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let aws = AwsClients::from_env(Some(&endpoint)).await;
        Stack {
            name,
            endpoint,
            outputs,
            aws,
        }
    }

    pub(crate) fn output(&self, key: &str) -> &str {
        self.outputs.get(key).unwrap_or_else(|| {
            panic!(
                "stack {} has no output {key}: {:?}",
                self.name, self.outputs
            )
        })
    }

    /// The API base URL in the emulator's path form (`…/_aws/execute-api/<apiId>`).
    pub(crate) fn api(&self) -> &str {
        self.output("EmulatorApiUrl")
    }

    fn function(&self, bin: &str) -> String {
        format!("{}-{bin}", self.name)
    }

    /// Every `OrderStatus` item, decoded with the documented reader.
    async fn status_records(&self) -> Vec<OrderStatusRecord> {
        let table = self.output("StatusTableName");
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .aws
                .dynamodb
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("Scan {table}: {}", DisplayErrorContext(&e)));
            records.extend(
                page.items
                    .unwrap_or_default()
                    .into_iter()
                    .map(decode_status),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                return records;
            }
        }
    }

    /// The `OrderStatus` item of one order, if the projector wrote it.
    pub(crate) async fn status_record(&self, order_id: &str) -> Option<OrderStatusRecord> {
        let table = self.output("StatusTableName");
        self.aws
            .dynamodb
            .get_item()
            .table_name(table)
            .key("orderId", AttributeValue::S(order_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetItem {table} {order_id}: {}", DisplayErrorContext(&e)))
            .item
            .map(decode_status)
    }

    /// The order's events from `OrderEvents`, in version order (a Query on the partition).
    pub(crate) async fn history(&self, order_id: &str) -> Vec<EventEnvelope> {
        let table = self.output("EventsTableName");
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .aws
                .dynamodb
                .query()
                .table_name(table)
                .key_condition_expression("orderId = :id")
                .expression_attribute_values(":id", AttributeValue::S(order_id.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("Query {table} {order_id}: {}", DisplayErrorContext(&e))
                });
            for item in page.items.unwrap_or_default() {
                let envelope = EventEnvelope::from_item(serde_dynamo::Item::from(item))
                    .unwrap_or_else(|e| panic!("an OrderEvents item of {order_id}: {e}"));
                events.push(envelope);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return events;
            }
        }
    }

    async fn events_table_count(&self) -> i32 {
        let table = self.output("EventsTableName");
        self.aws
            .dynamodb
            .scan()
            .table_name(table)
            .select(Select::Count)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Scan {table}: {}", DisplayErrorContext(&e)))
            .count
    }

    /// One ReceiveMessage (up to 10 messages, long poll of `wait_seconds`).
    async fn receive(&self, queue_url: &str, wait_seconds: i32) -> Vec<Message> {
        self.aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage {queue_url}: {}", DisplayErrorContext(&e)))
            .messages
            .unwrap_or_default()
    }

    /// Creates an SQS queue and subscribes it to the order topic (no raw delivery: the body is
    /// the SNS JSON envelope, as on AWS). Returns the queue URL.
    async fn subscribe_queue(&self) -> String {
        let sqs = &self.aws.sqs;
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{}-subscriber", self.name))
            // Long enough that a received message never comes back during the test.
            .attributes(QueueAttributeName::VisibilityTimeout, "600")
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue: {}", DisplayErrorContext(&e)))
            .queue_url
            .expect("CreateQueue returns the queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes: {}", DisplayErrorContext(&e)))
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("the subscriber queue has an ARN");
        self.aws
            .sns
            .subscribe()
            .topic_arn(self.output("TopicArn"))
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Subscribe: {}", DisplayErrorContext(&e)));
        queue_url
    }

    /// Sets one environment variable of a deployed function (UpdateFunctionConfiguration) and
    /// waits until the update is done. ministack kills the warm workers of a function whose
    /// `Environment` changes (`_update_config`, lambda_svc.py), so the next invocation starts a
    /// fresh bootstrap with the new environment.
    fn set_function_env(&self, bin: &str, name: &str, value: &str) {
        self.boto3(SET_FUNCTION_ENV_PY, &[&self.function(bin), name, value]);
    }

    /// How many times the function was invoked so far: the `START RequestId` lines in its log
    /// group (ministack writes them for failed invocations too).
    fn invocations(&self, bin: &str) -> usize {
        let group = format!("/aws/lambda/{}", self.function(bin));
        let count = self.boto3(COUNT_STARTS_PY, &[&group]);
        count
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("invocation count of {group} {count:?}: {e}"))
    }

    /// Runs a boto3 snippet with the tools venv's Python (the control-plane calls this test
    /// needs once or twice; cheaper than compiling aws-sdk-lambda and aws-sdk-cloudwatchlogs).
    /// The snippet gets `session`, `endpoint` and `args`. Returns its stdout.
    pub(crate) fn boto3(&self, snippet: &str, args: &[&str]) -> String {
        let venv = Command::new(repo_root().join("scripts/emulator-venv.sh"))
            .output()
            .expect("run scripts/emulator-venv.sh");
        assert!(venv.status.success(), "scripts/emulator-venv.sh failed");
        let python = PathBuf::from(String::from_utf8_lossy(&venv.stdout).trim()).join("bin/python");
        let script = format!("{BOTO3_PREAMBLE}{snippet}");
        let output = Command::new(&python)
            .args(["-c", &script, &self.endpoint])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        assert!(
            output.status.success(),
            "boto3 {args:?} against {} failed:\n{}",
            self.endpoint,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The same credentials and region rules as scripts/deploy.py and `AwsClients::from_env`.
const BOTO3_PREAMBLE: &str = r#"
import os, sys, time
import boto3
endpoint, args = sys.argv[1], sys.argv[2:]
kwargs = {"region_name": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
if not os.environ.get("AWS_ACCESS_KEY_ID"):
    kwargs.update(aws_access_key_id="test", aws_secret_access_key="test")
session = boto3.session.Session(**kwargs)
"#;

const SET_FUNCTION_ENV_PY: &str = r#"
function, name, value = args
client = session.client("lambda", endpoint_url=endpoint)
variables = client.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
variables[name] = value
client.update_function_configuration(FunctionName=function, Environment={"Variables": variables})
for _ in range(100):
    if client.get_function_configuration(FunctionName=function).get("LastUpdateStatus") == "Successful":
        sys.exit(0)
    time.sleep(0.1)
sys.exit(f"{function}: the configuration update did not complete")
"#;

const COUNT_STARTS_PY: &str = r#"
(group,) = args
client = session.client("logs", endpoint_url=endpoint)
starts = 0
for page in client.get_paginator("filter_log_events").paginate(logGroupName=group):
    starts += sum(1 for e in page["events"] if e["message"].startswith("START RequestId"))
print(starts)
"#;

fn decode_status(item: HashMap<String, AttributeValue>) -> OrderStatusRecord {
    let shown = format!("{item:?}");
    OrderStatusRecord::from_item(serde_dynamo::Item::from(item))
        .unwrap_or_else(|e| panic!("an OrderStatus item does not decode ({e}): {shown}"))
}

/// What the projection must hold for a history: its fold.
fn folded(history: &[EventEnvelope]) -> OrderStatusRecord {
    let view = OrderView::fold(history)
        .expect("the history folds")
        .expect("the history is not empty");
    OrderStatusRecord::from(&view)
}

fn versions_and_types(history: &[EventEnvelope]) -> Vec<(u32, &'static str)> {
    history
        .iter()
        .map(|e| (e.version.get(), e.event_type().as_str()))
        .collect()
}

const COMPLETED_HISTORY: [(u32, &str); 3] = [
    (1, "OrderReceived"),
    (2, "OrderProcessingStarted"),
    (3, "OrderCompleted"),
];

/// POSTs one order without a key and returns its id.
async fn post_one(http: &reqwest::Client, api: &str, customer: &str, n: u32) -> String {
    let (status, body) = post_order(http, api, &order_body(customer, n), None)
        .await
        .expect("POST /orders through the API");
    assert_eq!(status, 202, "POST /orders: {body}");
    body["orderId"].as_str().expect("orderId").to_owned()
}

async fn wait_for_history(stack: &Stack, order_id: &str, len: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let history = stack.history(order_id).await;
        if history.len() >= len {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "order {order_id} has {:?} after {within:?}, expected {len} events",
            versions_and_types(&history)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the API answered for the burst of orders in the pipeline test.
struct Accepted {
    /// Every distinct order id answered with a 202.
    ids: HashSet<String>,
    /// Idempotency key → the order ids its requests were answered with (one, if keys work).
    by_key: HashMap<String, HashSet<String>>,
    customer_of: HashMap<String, String>,
}

/// The template's throughput knobs away from their defaults (docs/scaling.md): the stack
/// deploys and the pipeline works with them. The emulator stores the stream mappings' settings
/// and accepts and ignores the tables', the functions' and the provisioned pollers' ones
/// (docs/emulator.md). Not `ProcessorMaxConcurrency`: the emulator's CloudFormation stores it as
/// text and its SQS poller then fails for every mapping.
const THROUGHPUT_KNOBS: [(&str, &str); 11] = [
    ("EventsWarmReadUnits", "20000"),
    ("EventsWarmWriteUnits", "30000"),
    ("StatusWarmReadUnits", "15000"),
    ("StatusWarmWriteUnits", "25000"),
    ("OnDemandMaxReadUnits", "90000"),
    ("OnDemandMaxWriteUnits", "60000"),
    ("ProjectorParallelizationFactor", "2"),
    ("NotifierParallelizationFactor", "2"),
    ("ProcessorMaxPollers", "20"),
    ("IngestReservedConcurrency", "100"),
    ("ProcessorReservedConcurrency", "50"),
];

/// The 100-order burst also carries, in its middle, two records the deployed functions cannot
/// decode (issue 17, ADR 7): they are set aside by the projector and the notifier themselves and
/// every order around them completes and is notified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_orders_posted_through_the_deployed_api_around_poison_records_complete_once_each_and_are_notified_once(
) {
    let stack = Stack::deploy("pipeline", &THROUGHPUT_KNOBS).await;
    let api = stack.api().to_owned();
    let subscriber = stack.subscribe_queue().await;
    let http = client();
    let started = Instant::now();

    the_health_route_answers_through_the_api(&http, &api).await;
    let (accepted, poison) =
        a_burst_with_keyed_and_duplicated_posts_and_two_poison_records_is_answered_one_order_per_request(
            &stack, &http, &api,
        )
        .await;
    eprintln!(
        "aws_stack: 130 POSTs answered in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let records =
        every_accepted_order_becomes_completed_in_the_status_table(&stack, &accepted).await;
    eprintln!(
        "aws_stack: all orders COMPLETED in OrderStatus after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let completed_event_of = each_history_is_received_started_completed_and_its_view_is_its_fold(
        &stack, &records, &accepted,
    )
    .await;
    each_order_is_notified_exactly_once_with_its_attributes_and_event_id(
        &stack,
        &subscriber,
        &accepted,
        &completed_event_of,
    )
    .await;
    the_poison_records_are_set_aside_by_the_consumers_themselves_in_the_stream_failure_queue(
        &stack, &poison,
    )
    .await;
    a_late_retry_gets_the_same_order_and_a_reused_key_gets_422(&http, &api, &accepted).await;
    the_read_routes_answer_through_the_api(&http, &api, &accepted).await;
    a_customers_orders_are_listed_newest_first_through_the_api(&http, &api, &records).await;
    bad_requests_get_problem_documents_and_write_nothing(&stack, &http, &api, poison.len()).await;
    the_functions_emit_their_metrics_and_the_dashboard_and_alarms_exist(&stack, &http, &api).await;
    an_order_is_cancelled_through_the_api_projected_and_notified(
        &stack,
        &http,
        &api,
        &subscriber,
        &accepted,
    )
    .await;
    eprintln!(
        "aws_stack: pipeline test done in {:.1}s after deploy",
        started.elapsed().as_secs_f64()
    );
}

/// POSTs `/orders/{id}/cancel` with `body` (none: an empty body); returns (status, body).
async fn post_cancel(
    http: &reqwest::Client,
    api: &str,
    id: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = http.post(format!("{api}/orders/{id}/cancel"));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("POST /orders/{id}/cancel");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /orders/{id}/cancel` through API Gateway, on an order the processor never got (its
/// `OrderReceived` written straight into the table, so it stays RECEIVED and the answer is
/// certain): 202, the same 202 again, the log ends with one `OrderCancelled`, the projector
/// writes CANCELLED, and the notifier publishes it with its attributes (its mapping's filter
/// passes `OrderCancelled`). A completed order of the burst is a 409, an unknown one a 404.
async fn an_order_is_cancelled_through_the_api_projected_and_notified(
    stack: &Stack,
    http: &reqwest::Client,
    api: &str,
    subscriber: &str,
    accepted: &Accepted,
) {
    let received = order_test_support::order_received(2, 300);
    stack.put_event(&received).await;
    let id = received.order_id.to_string();
    let reason = json!({"reason": "e2e: ordered twice"});
    let (status, first) = post_cancel(http, api, &id, Some(&reason)).await;
    assert_eq!(status, 202, "POST /orders/{id}/cancel: {first}");
    assert_eq!(first["status"], "CANCELLED", "{first}");
    assert_eq!(first["orderId"], id.as_str(), "{first}");
    let (status, again) = post_cancel(http, api, &id, None).await;
    assert_eq!((status, &again), (202, &first), "cancelling again");

    wait_for_history(stack, &id, 2, Duration::from_secs(10)).await;
    let history = stack.history(&id).await;
    assert_eq!(
        versions_and_types(&history),
        [(1, "OrderReceived"), (2, "OrderCancelled")]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = stack.status_record(&id).await;
        if record
            .as_ref()
            .is_some_and(|r| r.status == OrderStatus::Cancelled)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the view of {id} after 30 s: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    'notified: loop {
        for message in stack.receive(subscriber, 1).await {
            let envelope: Value =
                serde_json::from_str(message.body().expect("body")).expect("an SNS JSON envelope");
            let attribute = |name: &str| envelope["MessageAttributes"][name]["Value"].clone();
            if attribute("orderId") != id.as_str() {
                continue;
            }
            assert_eq!(attribute("eventType"), "OrderCancelled", "{envelope}");
            assert_eq!(
                attribute("customerId"),
                received
                    .event
                    .customer_id()
                    .map(|c| c.as_str())
                    .expect("a customer"),
                "{envelope}"
            );
            let body: Value =
                serde_json::from_str(envelope["Message"].as_str().expect("Message is a string"))
                    .expect("the notification is JSON");
            assert_eq!(body["eventId"], history[1].event_id.to_string(), "{body}");
            assert_eq!(body["reason"], "e2e: ordered twice", "{body}");
            break 'notified;
        }
        assert!(
            Instant::now() < deadline,
            "no OrderCancelled notification for {id} after 30 s"
        );
    }

    let completed = accepted.ids.iter().next().expect("a completed order");
    let (status, problem) = post_cancel(http, api, completed, None).await;
    assert_eq!(status, 409, "cancelling a COMPLETED order: {problem}");
    assert_eq!(problem["title"], "Order not cancellable", "{problem}");
    let unknown = events_schema::OrderId::new_random().to_string();
    let (status, problem) = post_cancel(http, api, &unknown, None).await;
    assert_eq!(status, 404, "cancelling an unknown order: {problem}");
}

async fn the_health_route_answers_through_the_api(http: &reqwest::Client, api: &str) {
    let (status, health) = get_json(http, &format!("{api}/health")).await;
    assert_eq!(
        status, 200,
        "GET /health through the emulator's API: {health}"
    );
}

/// A record the deployed projector (and, for one of them, the notifier) cannot decode, put into
/// `OrderEvents` in the middle of the burst.
struct Poison {
    order_id: String,
    version: u64,
    /// The consumers whose mapping delivers it: the notifier's filter passes only
    /// `eventType` `OrderCompleted` and `OrderCancelled`.
    read_by: &'static [&'static str],
    /// What the reason for setting it aside names.
    reason_names: &'static str,
}

/// The two poison records of the burst, as a newer writer in a rolling deploy would write them
/// (ADR 7): an event type this build does not know, and a schema version of `OrderCompleted` it
/// does not know — each a whole `OrderEvents` item with the table's real keys, for an order of
/// its own. Returns the items and what is expected of each.
fn poison_items() -> Vec<(HashMap<String, AttributeValue>, Poison)> {
    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};
    let item = |version: u32, event: OrderEvent| {
        let envelope = EventEnvelope::new(
            OrderId::new_random(),
            Version::new(version).expect("≥ 1"),
            CorrelationId::generate(),
            event,
        );
        let item: HashMap<String, AttributeValue> = envelope.to_item().expect("item").into();
        (envelope.order_id.to_string(), item)
    };
    let (unknown_type, mut teleported) = item(1, OrderEvent::OrderProcessingStarted);
    teleported.insert(
        "eventType".to_owned(),
        AttributeValue::S("OrderTeleported".to_owned()),
    );
    let (future_version, mut completed_v99) = item(3, OrderEvent::OrderCompleted { total: 100 });
    completed_v99.insert(
        "schemaVersion".to_owned(),
        AttributeValue::N("99".to_owned()),
    );
    vec![
        (
            teleported,
            Poison {
                order_id: unknown_type,
                version: 1,
                read_by: &["projector"],
                reason_names: "OrderTeleported",
            },
        ),
        (
            completed_v99,
            Poison {
                order_id: future_version,
                version: 3,
                read_by: &["notifier", "projector"],
                reason_names: "schema version 99",
            },
        ),
    ]
}

/// 100 orders: 0..60 without a key, 60..100 with one; 70..100 are sent twice, back to back, so
/// the two copies race. The two [`poison_items`] are put into the event table in the middle of
/// the burst (after the 65th request was started, with requests in flight on either side).
async fn a_burst_with_keyed_and_duplicated_posts_and_two_poison_records_is_answered_one_order_per_request(
    stack: &Stack,
    http: &reqwest::Client,
    api: &str,
) -> (Accepted, Vec<Poison>) {
    #[derive(Clone)]
    enum Step {
        Post(u32, Option<String>),
        Put(HashMap<String, AttributeValue>),
    }
    let mut steps: Vec<Step> = (0..100u32)
        .flat_map(|n| {
            let key = (n >= 60).then(|| format!("key-{n}"));
            let copies = if n >= 70 { 2 } else { 1 };
            std::iter::repeat_n(Step::Post(n, key), copies)
        })
        .collect();
    assert_eq!(steps.len(), 130);
    let (items, poison): (Vec<_>, Vec<_>) = poison_items().into_iter().unzip();
    for (at, item) in [65, 67].into_iter().zip(items) {
        steps.insert(at, Step::Put(item));
    }
    let responses: Vec<_> = futures::stream::iter(steps)
        .map(|step| {
            let (http, api) = (http.clone(), api.to_owned());
            async move {
                let (n, key) = match step {
                    Step::Post(n, key) => (n, key),
                    Step::Put(item) => {
                        stack.put_item(item).await;
                        return None;
                    }
                };
                let customer = format!("cust-{}", n % 7);
                let (status, body) =
                    post_order(&http, &api, &order_body(&customer, n), key.as_deref())
                        .await
                        .unwrap_or_else(|e| panic!("POST /orders (order {n}): {e}"));
                Some((n, key, status, body))
            }
        })
        .buffer_unordered(16)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    assert_eq!(responses.len(), 130);

    let mut accepted = Accepted {
        ids: HashSet::new(),
        by_key: HashMap::new(),
        customer_of: HashMap::new(),
    };
    for (n, key, status, body) in &responses {
        assert_eq!(*status, 202, "order {n} (key {key:?}): {body}");
        assert_eq!(body["status"], "RECEIVED", "order {n}: {body}");
        let id = body["orderId"].as_str().expect("orderId").to_owned();
        assert_eq!(body["links"]["self"], format!("/orders/{id}"));
        if let Some(key) = key {
            accepted
                .by_key
                .entry(key.clone())
                .or_default()
                .insert(id.clone());
        }
        accepted
            .customer_of
            .insert(id.clone(), format!("cust-{}", n % 7));
        accepted.ids.insert(id);
    }
    assert_eq!(accepted.ids.len(), 100, "one order per distinct request");
    for (key, ids) in &accepted.by_key {
        assert_eq!(
            ids.len(),
            1,
            "retries of {key} answered different orders: {ids:?}"
        );
    }
    (accepted, poison)
}

/// Every order COMPLETED at version 3, read from the table itself, and nothing else there.
async fn every_accepted_order_becomes_completed_in_the_status_table(
    stack: &Stack,
    accepted: &Accepted,
) -> Vec<OrderStatusRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let records = stack.status_records().await;
        let completed = records
            .iter()
            .filter(|r| r.status == OrderStatus::Completed)
            .count();
        if completed >= accepted.ids.len() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "only {completed} of {} orders COMPLETED in OrderStatus after 60 s; statuses: {:?}",
            accepted.ids.len(),
            records
                .iter()
                .map(|r| (r.order_id.to_string(), r.status, r.version.get()))
                .filter(|(_, s, _)| *s != OrderStatus::Completed)
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let projected: HashSet<String> = records.iter().map(|r| r.order_id.to_string()).collect();
    assert_eq!(
        projected, accepted.ids,
        "OrderStatus holds exactly the accepted orders"
    );
    records
}

/// The log holds exactly versions 1..3 per order, and the projection is their fold. Returns the
/// `eventId` of each order's `OrderCompleted`.
async fn each_history_is_received_started_completed_and_its_view_is_its_fold(
    stack: &Stack,
    records: &[OrderStatusRecord],
    accepted: &Accepted,
) -> HashMap<String, String> {
    let mut completed_event_of = HashMap::new();
    for record in records {
        let id = record.order_id.to_string();
        let history = stack.history(&id).await;
        assert_eq!(
            versions_and_types(&history),
            COMPLETED_HISTORY,
            "history of {id} in OrderEvents"
        );
        assert_eq!(record.version.get(), 3, "{record:?}");
        assert_eq!(
            record.customer_id.as_str(),
            accepted.customer_of[&id],
            "{record:?}"
        );
        assert_eq!(
            *record,
            folded(&history),
            "OrderStatus of {id} is the fold of its events"
        );
        completed_event_of.insert(id, history[2].event_id.to_string());
    }
    completed_event_of
}

/// One message per order on a queue subscribed to the topic, with its attributes and the
/// `eventId` of its `OrderCompleted`: polled until every order was seen, then two more empty
/// long polls to catch duplicates.
async fn each_order_is_notified_exactly_once_with_its_attributes_and_event_id(
    stack: &Stack,
    subscriber: &str,
    accepted: &Accepted,
    completed_event_of: &HashMap<String, String>,
) {
    let mut per_order: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_rounds = 0;
    while quiet_rounds < 2 {
        let messages = stack.receive(subscriber, 1).await;
        if messages.is_empty() && per_order.len() == accepted.ids.len() {
            quiet_rounds += 1;
        }
        for message in messages {
            let envelope: Value =
                serde_json::from_str(message.body().expect("body")).expect("an SNS JSON envelope");
            assert_eq!(envelope["Type"], "Notification", "{envelope}");
            assert_eq!(envelope["TopicArn"], stack.output("TopicArn"), "{envelope}");
            let body: Value =
                serde_json::from_str(envelope["Message"].as_str().expect("Message is a string"))
                    .expect("the notification is JSON");
            let attribute = |name: &str| envelope["MessageAttributes"][name]["Value"].clone();
            let order_id = attribute("orderId")
                .as_str()
                .unwrap_or_else(|| panic!("no orderId attribute: {envelope}"))
                .to_owned();
            assert_eq!(attribute("eventType"), "OrderCompleted", "{envelope}");
            assert_eq!(
                attribute("customerId").as_str(),
                accepted.customer_of.get(&order_id).map(String::as_str),
                "customerId attribute: {envelope}"
            );
            assert_eq!(body["orderId"], order_id.as_str(), "{envelope}");
            assert_eq!(
                body["eventId"].as_str(),
                completed_event_of.get(&order_id).map(String::as_str),
                "the message carries the eventId of the order's OrderCompleted: {envelope}"
            );
            *per_order.entry(order_id).or_default() += 1;
        }
        assert!(
            Instant::now() < deadline,
            "notifications for {} of {} orders after 30 s",
            per_order.len(),
            accepted.ids.len()
        );
    }
    let duplicated: Vec<_> = per_order.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicated.is_empty(),
        "orders notified more than once: {duplicated:?}"
    );
    assert_eq!(
        per_order.keys().cloned().collect::<HashSet<_>>(),
        accepted.ids,
        "one notification per order"
    );
}

/// ADR 7 as deployed: each poison record is on `StreamFailureQueue` once per consumer whose
/// mapping delivers it, as that consumer's own set-aside record (`setAsideBy`, the record's
/// stream sequence number, its table keys, the reason) — not as a mapping's on-failure record
/// (the function did not fail, so the mapping discarded nothing) — and `orders dlq records
/// --stack` lists them. The 100 orders around them were projected and notified (the steps
/// before), and no poison record reached the view or the topic.
async fn the_poison_records_are_set_aside_by_the_consumers_themselves_in_the_stream_failure_queue(
    stack: &Stack,
    poison: &[Poison],
) {
    let expected: usize = poison.iter().map(|p| p.read_by.len()).sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let output = Command::new(env!("CARGO_BIN_EXE_orders"))
            .args(["dlq", "records", "--json", "--backend", "aws"])
            .args(["--endpoint-url", &stack.endpoint, "--stack", &stack.name])
            .output()
            .expect("run orders dlq records");
        assert!(
            output.status.success(),
            "orders dlq records --stack {}: {}",
            stack.name,
            String::from_utf8_lossy(&output.stderr)
        );
        let records: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        if records.len() >= expected {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected} set-aside records on StreamFailureQueue after 30 s: {records:?}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        records.len(),
        expected,
        "only the consumers' own records, each once: {records:?}"
    );
    for record in &records {
        assert_eq!(
            record["kind"], "setAside",
            "not a mapping's on-failure record: {record}"
        );
    }
    for p in poison {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["orderId"] == p.order_id.as_str())
            .collect();
        let mut by: Vec<&str> = mine
            .iter()
            .filter_map(|r| r["setAsideBy"].as_str())
            .collect();
        by.sort_unstable();
        assert_eq!(by, p.read_by, "who set {} aside: {mine:?}", p.order_id);
        for record in &mine {
            assert_eq!(record["version"], p.version, "{record}");
            assert!(
                record["sequenceNumber"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "the stream sequence number: {record}"
            );
            assert_eq!(
                record["sequenceNumber"], mine[0]["sequenceNumber"],
                "{mine:?}"
            );
            assert!(
                record["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(p.reason_names)),
                "{record}"
            );
        }
        assert_eq!(
            stack.status_record(&p.order_id).await,
            None,
            "a poison record reached the view"
        );
    }
    // The messages themselves name the stream the records came from.
    let queue = order_adapters_aws::SqsStreamFailures::new(
        stack.aws.sqs.clone(),
        stack.output("StreamFailureQueueUrl"),
    );
    let messages = queue.list().await.expect("list StreamFailureQueue");
    assert_eq!(messages.len(), expected);
    for message in messages {
        match message.failure {
            order_ports::StreamFailure::SetAside(record) => assert_eq!(
                record.event_source_arn.as_deref(),
                Some(stack.output("EventsStreamArn")),
                "{record:?}"
            ),
            other => panic!("not a consumer's set-aside record: {other}"),
        }
    }
}

async fn a_late_retry_gets_the_same_order_and_a_reused_key_gets_422(
    http: &reqwest::Client,
    api: &str,
    accepted: &Accepted,
) {
    let (status, body) = post_order(http, api, &order_body("cust-5", 75), Some("key-75"))
        .await
        .expect("late retry");
    assert_eq!(status, 202, "{body}");
    assert!(accepted.by_key["key-75"].contains(body["orderId"].as_str().expect("orderId")));
    let (status, body) = post_order(http, api, &order_body("cust-5", 999), Some("key-75"))
        .await
        .expect("conflicting retry");
    assert_eq!(status, 422, "the same key with another order: {body}");
}

async fn the_read_routes_answer_through_the_api(
    http: &reqwest::Client,
    api: &str,
    accepted: &Accepted,
) {
    for id in accepted.ids.iter().take(10) {
        let (status, view) = get_json(http, &format!("{api}/orders/{id}")).await;
        assert_eq!(status, 200, "GET /orders/{id}: {view}");
        assert_eq!(view["status"], "COMPLETED", "{view}");
        assert_eq!(view["version"], 3, "{view}");
        let (status, history) = get_json(http, &format!("{api}/orders/{id}/events")).await;
        assert_eq!(status, 200, "GET /orders/{id}/events: {history}");
        let versions: Vec<u64> = history["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events array: {history}"))
            .iter()
            .filter_map(|e| e["version"].as_u64())
            .collect();
        assert_eq!(versions, [1, 2, 3], "GET /orders/{id}/events: {history}");
    }
}

/// `GET /orders?customerId=` through API Gateway and the `byCustomer` index: a customer with
/// more orders than the page size is walked completely, newest first, each order once.
async fn a_customers_orders_are_listed_newest_first_through_the_api(
    http: &reqwest::Client,
    api: &str,
    records: &[OrderStatusRecord],
) {
    let customer = "cust-3";
    let mut expected: Vec<&OrderStatusRecord> = records
        .iter()
        .filter(|r| r.customer_id.as_str() == customer)
        .collect();
    expected.sort_by(|a, b| (&b.created_at, b.order_id).cmp(&(&a.created_at, a.order_id)));
    let expected: Vec<String> = expected.iter().map(|r| r.order_id.to_string()).collect();
    assert!(
        expected.len() > 4,
        "{customer} has {} orders",
        expected.len()
    );
    // The index is eventually consistent: it may trail the table a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pages = crate::customer_orders::walk_customer_orders(
            http,
            api,
            &format!("customerId={customer}&limit=4"),
        )
        .await;
        assert!(pages.iter().all(|p| p.len() <= 4), "pages over the limit");
        let listed = pages.concat();
        let ids: Vec<String> = listed
            .iter()
            .map(|o| o["orderId"].as_str().expect("orderId").to_owned())
            .collect();
        if ids == expected {
            crate::customer_orders::assert_newest_first(&listed);
            assert!(listed.iter().all(|o| o["status"] == "COMPLETED"));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET /orders?customerId={customer} walked {ids:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A 4xx problem+json naming the fields, through API Gateway; the log holds only the 100 orders
/// (and the `poison` records put into it).
async fn bad_requests_get_problem_documents_and_write_nothing(
    stack: &Stack,
    http: &reqwest::Client,
    api: &str,
    poison: usize,
) {
    let response = http
        .post(format!("{api}/orders"))
        .header("content-type", "application/json")
        .body(json!({"customerId": 42, "items": "many"}).to_string())
        .send()
        .await
        .expect("POST a bad order");
    let answer = ProblemResponse::read(response).await;
    let problem = &answer.body;
    assert_eq!(answer.status, 422, "{problem}");
    assert_eq!(answer.content_type, "application/problem+json", "{problem}");
    let fields = answer.fields();
    assert_eq!(fields, ["customerId", "items"], "{problem}");
    let (status, problem) = get_json(http, &format!("{api}/orders/not-a-uuid")).await;
    assert_eq!(status, 400, "GET /orders/not-a-uuid: {problem}");
    // A body far over the API's limit that a Lambda invocation can still carry (5 MiB of the
    // 6 MiB) reaches the function through API Gateway and gets the same 413 as locally.
    let large = format!(
        r#"{{"customerId":"c","items":[],"pad":"{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let response = http
        .post(format!("{api}/orders"))
        .header("content-type", "application/json")
        .body(large)
        .send()
        .await
        .expect("POST a 5 MiB body");
    let answer = ProblemResponse::read(response).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.fields(), ["body"], "{}", answer.body);
    assert_eq!(
        usize::try_from(stack.events_table_count().await).expect("a count"),
        300 + poison,
        "100 orders × 3 events, the poison records and nothing else in OrderEvents"
    );
}

/// Operations on the deployed stack (docs/operations.md): the correlation id is echoed through
/// API Gateway; each function wrote EMF lines of its metrics to its log group (the emulator keeps
/// them as log events; it does not turn them into metrics); and CloudFormation created the
/// dashboard and every alarm in CloudWatch.
async fn the_functions_emit_their_metrics_and_the_dashboard_and_alarms_exist(
    stack: &Stack,
    http: &reqwest::Client,
    api: &str,
) {
    let response = http
        .get(format!("{api}/orders/not-a-uuid"))
        .header("X-Correlation-Id", "e2e-ops-1")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers()["x-correlation-id"], "e2e-ops-1");

    let functions: Vec<String> = ["ingest", "processor", "projector", "notifier"]
        .iter()
        .map(|f| stack.function(f))
        .collect();
    let mut args = vec![stack.name.as_str()];
    args.extend(functions.iter().map(String::as_str));
    let found: Value =
        serde_json::from_str(&stack.boto3(OPERATIONS_PY, &args)).expect("the snippet prints JSON");
    for (function, expected) in functions.iter().zip([
        &["OrdersAccepted", "OrdersRejected"][..],
        &["OrdersCompleted", "ProcessingLatency"],
        &["ProjectorLag"],
        &["NotificationsPublished"],
    ]) {
        let emitted: Vec<&str> = found["metrics"][function]
            .as_array()
            .unwrap_or_else(|| panic!("no EMF lines from {function}: {found}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for name in expected {
            assert!(
                emitted.contains(name),
                "{function} emitted {emitted:?}, not {name}"
            );
        }
    }
    let alarms = found["alarms"].as_object().expect("alarms");
    assert!(alarms.len() >= 15, "the stack's alarms: {alarms:?}");
    for (logical_id, in_cloudwatch) in alarms {
        assert_eq!(
            in_cloudwatch.as_bool(),
            Some(true),
            "{logical_id} is not in DescribeAlarms"
        );
    }
    let dashboard = found["dashboard"].as_str().expect("dashboard body");
    for metric in ["OrdersAccepted", "ProcessingLatency", "IteratorAge", "5xx"] {
        assert!(dashboard.contains(metric), "the dashboard lacks {metric}");
    }
}

/// args: stack name, then function names. Prints `{metrics: {function: [EMF metric names]},
/// alarms: {logical id: found in DescribeAlarms}, dashboard: body}`.
const OPERATIONS_PY: &str = r#"
import json
stack, functions = args[0], args[1:]
logs = session.client("logs", endpoint_url=endpoint)
cloudwatch = session.client("cloudwatch", endpoint_url=endpoint)
cfn = session.client("cloudformation", endpoint_url=endpoint)
metrics = {}
for function in functions:
    names = set()
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName="/aws/lambda/" + function)
    for page in pages:
        for event in page["events"]:
            for line in event["message"].splitlines():
                line = line.strip()
                if not line.startswith("{") or '"_aws"' not in line:
                    continue
                document = json.loads(line)
                for directive in document["_aws"]["CloudWatchMetrics"]:
                    names.update(m["Name"] for m in directive["Metrics"])
    metrics[function] = sorted(names)
resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
alarm_ids = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources
             if r["ResourceType"] == "AWS::CloudWatch::Alarm"}
described = set()
for page in cloudwatch.get_paginator("describe_alarms").paginate():
    described.update(a["AlarmName"] for a in page["MetricAlarms"])
alarms = {logical: physical in described for logical, physical in alarm_ids.items()}
dashboard_name = next(r["PhysicalResourceId"] for r in resources
                      if r["ResourceType"] == "AWS::CloudWatch::Dashboard")
dashboard = cloudwatch.get_dashboard(DashboardName=dashboard_name)["DashboardBody"]
print(json.dumps({"metrics": metrics, "alarms": alarms, "dashboard": dashboard}))
"#;

const MAX_RECEIVE_COUNT: u32 = 2;
const VISIBILITY_TIMEOUT_SECONDS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_work_message_ends_in_the_dead_letter_queue_after_max_receive_count_receives() {
    let visibility = VISIBILITY_TIMEOUT_SECONDS.to_string();
    let max_receive_count = MAX_RECEIVE_COUNT.to_string();
    let stack = Stack::deploy(
        "dlq",
        &[
            ("MaxReceiveCount", &max_receive_count),
            ("Timeout", &visibility),
            ("WorkQueueVisibilityTimeout", &visibility),
        ],
    )
    .await;
    let started = Instant::now();
    stack
        .aws
        .sqs
        .send_message()
        .queue_url(stack.output("WorkQueueUrl"))
        .message_body("not-an-order-id")
        .send()
        .await
        .unwrap_or_else(|e| panic!("SendMessage: {}", DisplayErrorContext(&e)));

    let dlq = stack.output("WorkDlqUrl");
    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        if let Some(message) = stack.receive(dlq, 1).await.into_iter().next() {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message is not in the DLQ after 30 s"
        );
    };
    let waited = started.elapsed();
    assert_eq!(message.body(), Some("not-an-order-id"));
    let receives: u32 = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse().ok())
        .expect("ApproximateReceiveCount");
    // The processor received it maxReceiveCount times (our receive from the DLQ adds one).
    assert!(
        receives > MAX_RECEIVE_COUNT,
        "receive count {receives} after moving to the DLQ"
    );
    assert!(
        waited >= Duration::from_secs(VISIBILITY_TIMEOUT_SECONDS * u64::from(MAX_RECEIVE_COUNT - 1)),
        "the message reached the DLQ after {waited:?}: it was not retried after the visibility timeout"
    );
    assert!(
        stack
            .receive(stack.output("WorkQueueUrl"), 0)
            .await
            .is_empty(),
        "the poison message left the work queue"
    );
    assert_eq!(
        stack.events_table_count().await,
        0,
        "a poison message writes no event"
    );
    eprintln!(
        "aws_stack: poison message in the DLQ after {:.1}s",
        waited.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_whose_invocation_fails_is_retried_until_it_succeeds_and_is_applied_once() {
    let stack = Stack::deploy("retry", &[]).await;
    let api = stack.api().to_owned();
    let http = client();

    // The projector now fails at init ("missing required environment variable(s):
    // STATUS_TABLE"): every invocation is a function error, so ministack keeps the shard
    // position and retries the batch about once a second.
    stack.set_function_env("projector", "STATUS_TABLE", "");
    let started = Instant::now();
    let invocations_before = stack.invocations("projector");
    let order_id = post_one(&http, &api, "cust-retry", 1).await;
    wait_for_history(&stack, &order_id, 3, Duration::from_secs(20)).await;

    // Hold the failure for at least 3 s and until the batch has failed at least twice (the
    // first delivery and a retry), checking all along that nothing reached the view.
    let deadline = started + Duration::from_secs(30);
    let failed_invocations = loop {
        assert_eq!(
            stack.status_record(&order_id).await,
            None,
            "the projector is failing, yet OrderStatus has {order_id}"
        );
        let failed = stack.invocations("projector") - invocations_before;
        if failed >= 2 && started.elapsed() >= Duration::from_secs(3) {
            break failed;
        }
        assert!(
            Instant::now() < deadline,
            "the failing projector was invoked {failed} time(s) in 30 s: the stream did not \
             retry the batch"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Nothing is written to the event table from here on: what appears next comes from the
    // stream re-delivering the batch it already failed with.
    stack.set_function_env("projector", "STATUS_TABLE", stack.output("StatusTableName"));
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(20);
    let record = loop {
        match stack.status_record(&order_id).await {
            Some(record) if record.version.get() == 3 => break record,
            other => assert!(
                Instant::now() < deadline,
                "after the projector was fixed, OrderStatus of {order_id} is {other:?} after 20 s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let history = stack.history(&order_id).await;
    assert_eq!(versions_and_types(&history), COMPLETED_HISTORY);
    assert_eq!(record.status, OrderStatus::Completed);
    assert_eq!(
        record,
        folded(&history),
        "the retried batch was applied exactly as the fold of the order's events"
    );
    assert!(
        stack
            .receive(stack.output("StreamFailureQueueUrl"), 0)
            .await
            .is_empty(),
        "the retried batch must not have been given up on"
    );
    eprintln!(
        "aws_stack: {failed_invocations} failed projector invocations; projected {:.1}s after \
         the fix",
        healed.elapsed().as_secs_f64()
    );
}

const STREAM_MAX_RECORD_AGE_SECONDS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_failing_longer_than_the_max_record_age_goes_to_the_failure_queue() {
    let age = STREAM_MAX_RECORD_AGE_SECONDS.to_string();
    let stack = Stack::deploy("age", &[("StreamMaxRecordAgeSeconds", &age)]).await;
    let api = stack.api().to_owned();
    let http = client();
    stack.set_function_env("projector", "STATUS_TABLE", "");
    let order_id = post_one(&http, &api, "cust-age", 2).await;

    let failure_queue = stack.output("StreamFailureQueueUrl");
    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        if let Some(message) = stack.receive(failure_queue, 1).await.into_iter().next() {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "nothing on StreamFailureQueue 30 s after the projector started failing"
        );
    };
    let record: Value =
        serde_json::from_str(message.body().expect("body")).expect("an on-failure record");
    assert_eq!(
        record["requestContext"]["condition"], "MaxRecordAgeExceeded",
        "{record}"
    );
    assert!(
        record["requestContext"]["functionArn"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(&format!(":{}", stack.function("projector")))),
        "the projector's batch was given up on: {record}"
    );
    assert_eq!(
        record["DDBStreamBatchInfo"]["streamArn"],
        stack.output("EventsStreamArn"),
        "{record}"
    );
    // The shard moved on past the batch: it was never applied.
    assert_eq!(stack.status_record(&order_id).await, None);
}

/// Invokes a deployed function synchronously through the Lambda API with a `Payload` and
/// prints the function's answer; exits non-zero on a function error.
const INVOKE_PY: &str = r#"
from botocore.config import Config
function, payload = args
client = session.client("lambda", endpoint_url=endpoint,
                        config=Config(read_timeout=120, retries={"max_attempts": 0}))
out = client.invoke(FunctionName=function, Payload=payload.encode())
answer = out["Payload"].read().decode()
if out.get("FunctionError"):
    sys.exit(f"{function} failed ({out['FunctionError']}): {answer}")
print(answer)
"#;

/// The schedule expressions of the EventBridge rules targeting a function, as a JSON list.
const SCHEDULES_OF_PY: &str = r#"
import json
(function,) = args
arn = session.client("lambda", endpoint_url=endpoint).get_function_configuration(FunctionName=function)["FunctionArn"]
events = session.client("events", endpoint_url=endpoint)
names = events.list_rule_names_by_target(TargetArn=arn)["RuleNames"]
print(json.dumps([events.describe_rule(Name=n).get("ScheduleExpression") for n in names]))
"#;

/// What EventBridge sends a scheduled target (the reconciler ignores it, but must accept it).
const SCHEDULED_EVENT: &str = r#"{"version":"0","id":"e2e","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","time":"2025-11-30T12:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#;

impl Stack {
    /// Runs the reconciler function once, as its schedule would, and returns its report.
    fn run_reconciler(&self) -> Value {
        let answer = self.boto3(
            INVOKE_PY,
            &[self.output("ReconcilerFunctionName"), SCHEDULED_EVENT],
        );
        serde_json::from_str(answer.trim()).unwrap_or_else(|e| {
            panic!("the reconciler's answer is not its JSON report ({e}): {answer}")
        })
    }

    /// Writes an event straight into `OrderEvents`, as ingest's `PutItem` does.
    async fn put_event(&self, event: &EventEnvelope) {
        self.put_item(event.to_item().expect("event item").into())
            .await;
    }

    /// Writes an item straight into `OrderEvents` with ingest's condition (a new key).
    async fn put_item(&self, item: HashMap<String, AttributeValue>) {
        let table = self.output("EventsTableName");
        self.aws
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(orderId)")
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutItem {table}: {}", DisplayErrorContext(&e)));
    }
}

fn reported_order<'r>(report: &'r Value, order_id: &str) -> Option<&'r Value> {
    report["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("the report has no orders list: {report}"))
        .iter()
        .find(|o| o["orderId"] == order_id)
}

/// An order stranded between ingest's two calls — its `OrderReceived` in the log (so the stream
/// projects it as RECEIVED) but no message on the work queue — is COMPLETED after the reconciler
/// function runs, and the next run finds nothing: the terminal view left the sparse index.
///
/// The event is written an hour in the past, so the order is older than the function's default
/// 5-minute threshold without waiting. The function is invoked directly through the Lambda API
/// with the event EventBridge sends: the template's rule fires every 5 minutes (ministack fires
/// `rate()` rules too, but only a full interval after it created them), too slow for a test; the
/// test checks that the rule targets the function with that schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranded_order_is_completed_after_the_reconciler_function_runs() {
    use events_schema::{CorrelationId, OrderEvent, OrderId, OrderRequest, Version};
    let stack = Stack::deploy("reconcile", &[]).await;
    let order_id = OrderId::new_random();
    let id = order_id.to_string();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    let received = EventEnvelope::at(
        order_id,
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(
            OrderRequest::validate(&order_body("cust-stranded", 3)).expect("a valid order"),
        ),
        an_hour_ago.into(),
    );
    stack.put_event(&received).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.status_record(&id).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the stranded order was not projected within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stranded: nothing is going to move it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        versions_and_types(&stack.history(&id).await),
        [(1, "OrderReceived")]
    );
    let record = stack.status_record(&id).await.expect("projected");
    assert_eq!(record.status, OrderStatus::Received);

    let started = Instant::now();
    let report = stack.run_reconciler();
    assert_eq!(report["olderThanSeconds"], 300, "{report}");
    assert_eq!(report["dryRun"], false, "{report}");
    let found = reported_order(&report, &id)
        .unwrap_or_else(|| panic!("the reconciler did not find {id}: {report}"));
    assert_eq!(found["status"], "RECEIVED", "{report}");
    assert_eq!(found["action"], "reenqueued", "{report}");
    assert_eq!(found["updatedAt"], record.updated_at.as_str(), "{report}");
    assert_eq!(
        report["reenqueued"],
        report["orders"].as_array().map_or(0, Vec::len),
        "{report}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        match stack.status_record(&id).await {
            Some(record) if record.status == OrderStatus::Completed => break record,
            other => assert!(
                Instant::now() < deadline,
                "30 s after the reconciler ran, OrderStatus of {id} is {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let history = stack.history(&id).await;
    assert_eq!(versions_and_types(&history), COMPLETED_HISTORY);
    assert_eq!(record, folded(&history));
    eprintln!(
        "aws_stack: stranded order COMPLETED {:.1}s after the reconciler ran",
        started.elapsed().as_secs_f64()
    );

    let again = stack.run_reconciler();
    assert!(
        reported_order(&again, &id).is_none(),
        "a COMPLETED order is still listed as pending: {again}"
    );
    assert_eq!(again["reenqueued"], 0, "nothing else is pending: {again}");

    let schedules = stack.boto3(SCHEDULES_OF_PY, &[&stack.function("reconciler")]);
    assert_eq!(
        schedules.trim(),
        r#"["rate(5 minutes)"]"#,
        "the rules targeting the reconciler"
    );
}
