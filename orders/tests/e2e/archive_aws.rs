//! The AWS archive end to end on the emulator (issue 19): the stack deployed with
//! `Archive=true` (the template's default), orders placed through the API (some over the credit
//! limit, so FAILED), the event log carried OrderEvents → Kinesis → Firehose (the archiver
//! bootstrap as its processor, Parquet from the Glue table's columns) → S3, then every shipped
//! query (`docs/queries/*.sql`) run through **Athena** (`scripts/archive-athena.py`, boto3) and
//! its answer compared with what `orders events`, `stats` and `replay` say on the tables
//! (`--backend aws`), as `archive.rs` does with DuckDB over a local archive. A Kinesis record
//! put on the stream twice changes no answer.
//!
//! Two steps stand in for what ministack 1.5.33 does not do (docs/emulator.md):
//! - its CloudFormation ignores the table's `KinesisStreamSpecification`: the test calls
//!   `EnableKinesisStreamingDestination` itself, with the stack's stream;
//! - its DynamoDB fan-out appends the change records to the Kinesis stream without handing them
//!   to Firehose (only the Kinesis `PutRecord`/`PutRecords` APIs do): the test reads the stream
//!   and puts each record back with `PutRecord`, unchanged, which is what Firehose would have
//!   read. The records are the emulator's own change records (its DynamoDB Streams shape, which
//!   differs in details from AWS's Kinesis-destination records: docs/emulator.md), so the
//!   archiver's reading of that shape is tested here; the table-to-Firehose hand-off is not.
//!
//! ministack delivers each record as it is put (no buffering: `ArchiveBufferSeconds` is stored
//! and ignored), one Parquet object per record, and Athena reads the Glue table's files with
//! DuckDB. Needs `ORDERS_TEST_AWS_ENDPOINT` and `ORDERS_TEST_LAMBDA_ZIPS` (scripts/test.sh).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::DestinationStatus;
use events_schema::OrderStatus;
use serde_json::{json, Value};

use crate::archive_answers::{
    assert_queries_answer_as_the_cli, every_answer, rows_of, Rows, Sides,
};
use crate::aws_stack::Stack;
use crate::support::{client, order_body, post_order};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Kinesis stream the stack's Firehose reads (its `Source`).
const STREAM_ARN_PY: &str = r#"
(stack,) = args
firehose = session.client("firehose", endpoint_url=endpoint)
description = firehose.describe_delivery_stream(DeliveryStreamName=f"{stack}-archive")
print(description["DeliveryStreamDescription"]["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"])
"#;

/// Every record on the stream from its start, put back with PutRecord (so Firehose reads it).
/// With a record number N, only the Nth record (0-based), put back once. Prints how many.
const RELAY_PY: &str = r#"
arn, which = args[0], (int(args[1]) if len(args) > 1 else None)
kinesis = session.client("kinesis", endpoint_url=endpoint)
name = arn.split("/")[-1]
records = []
for shard in kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]:
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        # The table's own records only: not the ones this script put back earlier.
        records += [r for r in page["Records"] if r["PartitionKey"] != "relayed"]
        if not page["Records"]:
            break
        iterator = page.get("NextShardIterator")
if which is not None:
    records = [sorted(records, key=lambda r: r["SequenceNumber"])[which]]
for record in records:
    kinesis.put_record(StreamName=name, Data=record["Data"], PartitionKey="relayed")
print(len(records))
"#;

/// The keys of the Parquet objects Firehose wrote under `events/`, and of any under `errors/`.
const OBJECTS_PY: &str = r#"
(bucket,) = args
s3 = session.client("s3", endpoint_url=endpoint)
import json
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])]
print(json.dumps(keys))
"#;

fn objects(stack: &Stack) -> Vec<String> {
    let out = stack.boto3(OBJECTS_PY, &[stack.output("ArchiveBucketName")]);
    serde_json::from_str(out.trim()).expect("a JSON list of keys")
}

/// Waits until `count` objects are under `events/`; fails on any under `errors/`.
async fn wait_for_objects(stack: &Stack, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys = objects(stack);
        let errors: Vec<_> = keys.iter().filter(|k| k.starts_with("errors/")).collect();
        assert!(errors.is_empty(), "Firehose wrote errors: {errors:?}");
        let events = keys.iter().filter(|k| k.starts_with("events/")).count();
        if events >= count {
            assert_eq!(events, count, "{keys:?}");
            assert!(
                keys.iter()
                    .filter(|k| k.starts_with("events/"))
                    .all(|k| k.starts_with("events/day=") && k.ends_with(".parquet")),
                "{keys:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{events} of {count} objects in S3 after 60 s: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One shipped query's answer through Athena: each row an object by column name, lower case
/// (Athena's names; ministack keeps the Parquet columns' case).
fn athena(stack: &Stack, file: &str, params: &[(&str, &str)]) -> Rows {
    let python = root().join(".venv-tools/bin/python");
    let output = Command::new(&python)
        .arg(root().join("scripts/archive-athena.py"))
        .args(["--database", stack.output("ArchiveDatabaseName")])
        .args(["--table", stack.output("ArchiveTableName")])
        .args(["--workgroup", stack.output("ArchiveWorkGroupName")])
        .arg(root().join("docs/queries").join(file))
        .args(params.iter().map(|(k, v)| format!("{k}={v}")))
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{file} on Athena: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the runner's JSON");
    rows_of(&answer, str::to_lowercase)
}

/// `orders <command> --backend aws` on the stack's tables.
fn orders_aws(stack: &Stack, command: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(command)
        .args(["--backend", "aws", "--endpoint-url", &stack.endpoint])
        .args(["--events-table", stack.output("EventsTableName")])
        .args(["--status-table", stack.output("StatusTableName")])
        .env_remove("ORDERS_DATA")
        .env_remove("ORDERS_BACKEND")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run orders");
    assert!(
        output.status.success(),
        "orders {command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json_aws(stack: &Stack, command: &[&str]) -> Value {
    serde_json::from_slice(&orders_aws(stack, command).stdout).expect("JSON")
}

fn lower_keys(row: Value) -> BTreeMap<String, Value> {
    match row {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect(),
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_archived_through_kinesis_and_firehose_answer_each_shipped_query_on_athena_as_the_cli_does(
) {
    let stack = Stack::deploy("archive", &[]).await;
    let events_table = stack.output("EventsTableName").to_owned();

    // The table's Kinesis destination, which the emulator's CloudFormation does not set.
    let stream_arn = stack.boto3(STREAM_ARN_PY, &[&stack.name]).trim().to_owned();
    stack
        .aws
        .dynamodb
        .enable_kinesis_streaming_destination()
        .table_name(&events_table)
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "EnableKinesisStreamingDestination: {}",
                DisplayErrorContext(&e)
            )
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let described = stack
            .aws
            .dynamodb
            .describe_kinesis_streaming_destination()
            .table_name(&events_table)
            .send()
            .await
            .expect("DescribeKinesisStreamingDestination");
        if described
            .kinesis_data_stream_destinations()
            .iter()
            .any(|d| d.destination_status() == Some(&DestinationStatus::Active))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the destination is not ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Orders through the API: four that complete (two currencies), two over the credit limit.
    let http = client();
    let api = stack.api().to_owned();
    let mut orders = Vec::new();
    for n in 0..6u32 {
        let (body, want) = match n {
            1 | 4 => (
                json!({
                    "customerId": format!("archive-cust-{n}"),
                    "items": [{"productId": "yacht", "quantity": 2, "unitPrice": 90_000_000}],
                }),
                OrderStatus::Failed,
            ),
            3 => {
                let mut body = order_body("archive-cust-3", n);
                body["currency"] = json!("USD");
                (body, OrderStatus::Completed)
            }
            _ => (
                order_body(&format!("archive-cust-{n}"), n),
                OrderStatus::Completed,
            ),
        };
        let (status, answer) = post_order(&http, &api, &body, None)
            .await
            .expect("POST /orders");
        assert_eq!(status, 202, "{answer}");
        orders.push((
            answer["orderId"].as_str().expect("orderId").to_owned(),
            want,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, want) in &orders {
        loop {
            if let Some(record) = stack.status_record(id).await {
                if record.status == *want {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "order {id} is not {want:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut events = 0;
    for (id, _) in &orders {
        events += stack.history(id).await.len();
    }
    assert_eq!(events, 6 * 3, "three events per order");

    // The stream holds every change of the table; Firehose gets them as PutRecord would give.
    let relayed: usize = stack
        .boto3(RELAY_PY, &[&stream_arn])
        .trim()
        .parse()
        .expect("a count");
    assert_eq!(relayed, events, "one Kinesis record per event");
    wait_for_objects(&stack, events).await;

    let ids: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
    let all: Vec<Value> = orders_aws(&stack, &["events"])
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("NDJSON"))
        .collect();
    let mut occurred: Vec<String> = all
        .iter()
        .map(|e| e["occurredAt"].as_str().expect("occurredAt").to_owned())
        .collect();
    occurred.sort();
    // Before the first event, at the middle one, after the last.
    let times = vec![
        "2026-01-01T00:00:00Z".to_owned(),
        occurred[occurred.len() / 2].clone(),
        "2099-01-01T00:00:00Z".to_owned(),
    ];

    let query_fn = |file: &str, params: &[(&str, &str)]| athena(&stack, file, params);
    let cli_json = |args: &[&str]| json_aws(&stack, args);
    let cli_events = |order: &str| -> Rows {
        orders_aws(&stack, &["events", "--order", order])
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| lower_keys(serde_json::from_slice(l).expect("NDJSON")))
            .collect()
    };
    let sides = Sides {
        query: &query_fn,
        cli_json: &cli_json,
        cli_events: &cli_events,
    };
    let compared = assert_queries_answer_as_the_cli(&sides, &ids, &times);

    // The known values, so that both sides cannot be wrong alike.
    for id in &ids {
        let rows = athena(&stack, "events_of_order.sql", &[("order_id", id)]);
        assert_eq!(rows.len(), 3, "order {id}");
    }
    let count = |status: Option<&str>| -> u64 {
        compared
            .by_status
            .iter()
            .filter(|r| status.is_none_or(|s| r["status"] == s))
            .map(|r| r["orders"].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!(count(None), 6, "{:?}", compared.by_status);
    assert_eq!(count(Some("FAILED")), 2, "{:?}", compared.by_status);
    assert_eq!(
        compared.totals.len(),
        2,
        "EUR and USD: {:?}",
        compared.totals
    );
    assert_eq!(compared.completed, 4);
    assert!(athena(&stack, "order_state_as_of.sql", &[("as_of", &times[0])]).is_empty());
    assert_eq!(
        athena(&stack, "order_state_as_of.sql", &[("as_of", &times[2])]).len(),
        6
    );

    // A duplicated Kinesis record: one record put on the stream twice more. Both copies are
    // archived (two more objects) and no answer changes.
    let before = every_answer(&sides, &ids, &times);
    for _ in 0..2 {
        let again: usize = stack
            .boto3(RELAY_PY, &[&stream_arn, "7"])
            .trim()
            .parse()
            .expect("a count");
        assert_eq!(again, 1);
    }
    wait_for_objects(&stack, events + 2).await;
    assert_eq!(every_answer(&sides, &ids, &times), before);
}
