//! The IAM permissions the AWS adapters need, declared per adapter method.
//!
//! Each adapter method has a [`Permission`] constant here (e.g. [`DynamoEventStore::APPEND`]):
//! the IAM actions its SDK calls need, on the deployed resource the adapter is built for. A
//! Lambda declares what its role must grant by listing the constants of exactly the port
//! methods its code path calls, plus what its event source mapping needs
//! ([`SQS_EVENT_SOURCE`], [`STREAM_EVENT_SOURCE`], [`STREAM_ON_FAILURE`]) and [`LOGS`]
//! (`AWS_PERMISSIONS` in each `*/src/lambda.rs`). `orders/tests/template.rs` asserts that each
//! function's role in `template.yaml` grants exactly that set, on those resources only.
//!
//! The constants are tied to the code by this module's tests: they scan the adapter sources for
//! every SDK operation call and fail when one maps to an IAM action that no constant of that
//! adapter file declares (or when a declared action is called nowhere).
//!
//! Notes on the mapping from SDK operations to IAM actions:
//! - `TransactWriteItems` is not an IAM action: IAM authorises each contained operation, so a
//!   transaction of `Put`s needs `dynamodb:PutItem` (a `ConditionCheck` would need
//!   `dynamodb:ConditionCheckItem`).
//! - `SendMessageBatch` is authorised as `sqs:SendMessage`.

use std::collections::BTreeSet;

use super::{
    DynamoEventStore, DynamoStatusStore, SnsPublisher, SqsDeadLetters, SqsStreamFailures,
    SqsWorkQueue,
};

/// A deployed resource a function may be granted actions on (`template.yaml` logical ids in
/// the docs of each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The `OrderEvents` table (`!GetAtt OrderEvents.Arn`).
    EventsTable,
    /// The `OrderEvents` stream (`!GetAtt OrderEvents.StreamArn`).
    EventsStream,
    /// The `OrderStatus` table (`!GetAtt OrderStatus.Arn`).
    StatusTable,
    /// The indexes of the `OrderStatus` table (`!Sub "${OrderStatus.Arn}/index/*"`).
    StatusTableIndex,
    /// The work queue (`!GetAtt WorkQueue.Arn`).
    WorkQueue,
    /// The work queue's dead-letter queue (`!GetAtt WorkDlq.Arn`); only the operator tools
    /// (`orders dlq`) touch it.
    WorkDlq,
    /// The on-failure destination of the stream mappings (`!GetAtt StreamFailureQueue.Arn`).
    StreamFailureQueue,
    /// The completion topic (`!Ref OrderTopic`).
    OrderTopic,
    /// The function's own log group (`!GetAtt <Function>LogGroup.Arn`).
    OwnLogGroup,
}

/// Actions on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub resource: Resource,
    pub actions: &'static [&'static str],
}

/// The set of `(resource, action)` pairs a list of permissions grants.
pub fn grants(permissions: &[Permission]) -> BTreeSet<(Resource, &'static str)> {
    permissions
        .iter()
        .flat_map(|p| p.actions.iter().map(move |a| (p.resource, *a)))
        .collect()
}

impl DynamoEventStore {
    /// [`EventStore::append`](order_ports::EventStore::append) and
    /// [`append_many`](order_ports::EventStore::append_many): `PutItem` (one event) or
    /// `TransactWriteItems` of `Put`s (several), and the consistent `GetItem` of the previous
    /// version (the gapless check).
    pub const APPEND: Permission = Permission {
        resource: Resource::EventsTable,
        actions: &["dynamodb:PutItem", "dynamodb:GetItem"],
    };
    /// [`EventStore::load`](order_ports::EventStore::load): `Query` on the order's partition.
    pub const LOAD: Permission = Permission {
        resource: Resource::EventsTable,
        actions: &["dynamodb:Query"],
    };
    /// [`EventStore::read_all`](order_ports::EventStore::read_all) and
    /// [`DynamoEventStore::scan_all_parallel`]: `Scan`.
    pub const READ_ALL: Permission = Permission {
        resource: Resource::EventsTable,
        actions: &["dynamodb:Scan"],
    };
}

impl DynamoStatusStore {
    /// [`StatusStore::get`](order_ports::StatusStore::get): `GetItem`.
    pub const GET: Permission = Permission {
        resource: Resource::StatusTable,
        actions: &["dynamodb:GetItem"],
    };
    /// [`StatusStore::upsert`](order_ports::StatusStore::upsert): conditional `PutItem`.
    pub const UPSERT: Permission = Permission {
        resource: Resource::StatusTable,
        actions: &["dynamodb:PutItem"],
    };
    /// [`StatusStore::get_many`](order_ports::StatusStore::get_many): consistent `BatchGetItem`s.
    /// ([`StatusStore::upsert_many`](order_ports::StatusStore::upsert_many) is [`Self::UPSERT`].)
    pub const GET_MANY: Permission = Permission {
        resource: Resource::StatusTable,
        actions: &["dynamodb:BatchGetItem"],
    };
    /// [`StatusStore::list_by_customer`](order_ports::StatusStore::list_by_customer): `Query` on the
    /// key-only `byCustomer` index (the index ARN, not the table's), plus [`Self::GET_MANY`]
    /// for the views its entries point to.
    pub const LIST_BY_CUSTOMER: Permission = Permission {
        resource: Resource::StatusTableIndex,
        actions: &["dynamodb:Query"],
    };
    /// [`StatusStore::pending_before`](order_ports::StatusStore::pending_before): `Query` on the
    /// sparse, key-only `pending` index, one per shard, plus [`Self::GET_MANY`] for the views
    /// its entries point to.
    pub const PENDING_BEFORE: Permission = Permission {
        resource: Resource::StatusTableIndex,
        actions: &["dynamodb:Query"],
    };
}

impl DynamoEventStore {
    /// [`OrderScan::list_orders`](order_ports::OrderScan::list_orders) and
    /// [`OrderScan::count_events`](order_ports::OrderScan::count_events): key-only and `COUNT` `Scan`s
    /// (operator tools only).
    pub const LIST_ORDERS: Permission = Permission {
        resource: Resource::EventsTable,
        actions: &["dynamodb:Scan"],
    };
}

impl DynamoStatusStore {
    /// [`StatusRepair::replace`](order_ports::StatusRepair::replace): a conditional `PutItem`
    /// (`orders rebuild --force`).
    pub const REPLACE: Permission = Permission {
        resource: Resource::StatusTable,
        actions: &["dynamodb:PutItem"],
    };
    /// [`StatusRepair::set_aside_pending`](order_ports::StatusRepair::set_aside_pending): a
    /// conditional `UpdateItem` (the reconciler, ADR 11).
    pub const SET_ASIDE_PENDING: Permission = Permission {
        resource: Resource::StatusTable,
        actions: &["dynamodb:UpdateItem"],
    };
}

impl SqsDeadLetters {
    /// [`DeadLetters::list`](order_ports::DeadLetters::list): `ReceiveMessage`, then
    /// `ChangeMessageVisibility` to make each message visible again.
    pub const LIST: Permission = Permission {
        resource: Resource::WorkDlq,
        actions: &["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"],
    };
    /// [`DeadLetters::redrive`](order_ports::DeadLetters::redrive) on the DLQ: receive, delete what
    /// was redriven, release the rest.
    pub const REDRIVE: Permission = Permission {
        resource: Resource::WorkDlq,
        actions: &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
        ],
    };
    /// [`DeadLetters::redrive`](order_ports::DeadLetters::redrive) on the work queue: `SendMessage`.
    pub const REDRIVE_SEND: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:SendMessage"],
    };
}

impl SqsWorkQueue {
    /// [`WorkQueue::send`](order_ports::WorkQueue::send): `SendMessage`.
    pub const SEND: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:SendMessage"],
    };
    /// [`SqsWorkQueue::send_batch`]: `SendMessageBatch`, authorised as `sqs:SendMessage`.
    pub const SEND_BATCH: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:SendMessage"],
    };
    /// [`WorkQueue::receive`](order_ports::WorkQueue::receive): `ReceiveMessage`.
    pub const RECEIVE: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:ReceiveMessage"],
    };
    /// [`WorkQueue::ack`](order_ports::WorkQueue::ack): `DeleteMessage`.
    pub const ACK: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:DeleteMessage"],
    };
    /// [`WorkQueue::ack_many`](order_ports::WorkQueue::ack_many): `DeleteMessageBatch`, authorised
    /// as `sqs:DeleteMessage`.
    pub const ACK_MANY: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:DeleteMessage"],
    };
    /// [`WorkQueue::fail`](order_ports::WorkQueue::fail): `ChangeMessageVisibility` (the retry
    /// delay). Also what the processor Lambda needs to back off the failed messages of its
    /// batch, which it does through `fail`.
    pub const FAIL: Permission = Permission {
        resource: Resource::WorkQueue,
        actions: &["sqs:ChangeMessageVisibility"],
    };
}

impl SqsStreamFailures {
    /// [`SetAside::set_aside`](order_ports::SetAside::set_aside): `SendMessage` to the stream
    /// failure queue. The same grant as the mappings' [`STREAM_ON_FAILURE`]: what the function
    /// sends itself and what its mapping sends with its role go to one queue.
    pub const SET_ASIDE: Permission = Permission {
        resource: Resource::StreamFailureQueue,
        actions: &["sqs:SendMessage"],
    };
    /// [`SqsStreamFailures::list`]: `ReceiveMessage`, then `ChangeMessageVisibility` to make
    /// each message visible again (operator tools only).
    pub const LIST: Permission = Permission {
        resource: Resource::StreamFailureQueue,
        actions: &["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"],
    };
}

impl SnsPublisher {
    /// [`Publisher::publish`](order_ports::Publisher::publish): `Publish`.
    pub const PUBLISH: Permission = Permission {
        resource: Resource::OrderTopic,
        actions: &["sns:Publish"],
    };
    /// [`Publisher::publish_batch`](order_ports::Publisher::publish_batch): `PublishBatch`,
    /// authorised as `sns:Publish`.
    pub const PUBLISH_BATCH: Permission = Permission {
        resource: Resource::OrderTopic,
        actions: &["sns:Publish"],
    };
}

/// What Lambda's SQS event source mapping calls with the function's role (the actions of the
/// AWS managed policy `AWSLambdaSQSQueueExecutionRole`). Failed items of a partial batch
/// response are not made visible by Lambda: they come back after their visibility timeout, so
/// the mapping needs no `sqs:ChangeMessageVisibility` (the processor sets that timeout to the
/// retry delay itself, with [`SqsWorkQueue::FAIL`]).
pub const SQS_EVENT_SOURCE: Permission = Permission {
    resource: Resource::WorkQueue,
    actions: &[
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ],
};

/// What Lambda's DynamoDB Streams event source mapping calls with the function's role (the
/// four actions Lambda's documentation requires). `dynamodb:ListStreams` has no resource-level
/// permission in IAM; it is listed on the stream ARN as AWS SAM's `DynamoDBStreamReadPolicy`
/// does, so the grant stays scoped (no `*`).
pub const STREAM_EVENT_SOURCE: Permission = Permission {
    resource: Resource::EventsStream,
    actions: &[
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ],
};

/// What a stream mapping's `DestinationConfig.OnFailure` (an SQS queue) needs: Lambda sends
/// the failed batch's metadata with the function's role.
pub const STREAM_ON_FAILURE: Permission = Permission {
    resource: Resource::StreamFailureQueue,
    actions: &["sqs:SendMessage"],
};

/// Every function writes its logs to its own, pre-created log group (so no
/// `logs:CreateLogGroup`).
pub const LOGS: Permission = Permission {
    resource: Resource::OwnLogGroup,
    actions: &["logs:CreateLogStream", "logs:PutLogEvents"],
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The adapter sources scanned, with the constants of the adapters each file defines.
    /// `lib.rs` and `dynamo/mod.rs` (client construction, error mapping, shared helpers) must call
    /// no operation. `provision.rs` is
    /// excluded on purpose: it creates tables, queues and topics for tests, is only compiled
    /// with the `test-util` feature and never into a Lambda, so its calls need no role
    /// permission. Nor is `stream_feed.rs` (the stream poller of `orders serve`; the Lambdas get
    /// the stream from their mapping), nor `resources.rs` (the lookups of `orders`' AWS
    /// backend, feature `resources`; no Lambda compiles it).
    fn adapter_files() -> Vec<(&'static str, &'static str, Vec<Permission>)> {
        vec![
            (
                "dynamo/event_table.rs",
                include_str!("dynamo/event_table.rs"),
                vec![
                    DynamoEventStore::APPEND,
                    DynamoEventStore::LOAD,
                    DynamoEventStore::READ_ALL,
                ],
            ),
            (
                "dynamo/event_scan.rs",
                include_str!("dynamo/event_scan.rs"),
                vec![DynamoEventStore::LIST_ORDERS],
            ),
            (
                "dynamo/status_table.rs",
                include_str!("dynamo/status_table.rs"),
                vec![
                    DynamoStatusStore::GET,
                    DynamoStatusStore::UPSERT,
                    DynamoStatusStore::GET_MANY,
                    DynamoStatusStore::LIST_BY_CUSTOMER,
                    // `StatusRepair::replace` (dynamo/status_repair.rs) writes through this
                    // file's conditional put (`put_status_if`).
                    DynamoStatusStore::REPLACE,
                ],
            ),
            (
                "dynamo/pending.rs",
                include_str!("dynamo/pending.rs"),
                vec![DynamoStatusStore::PENDING_BEFORE],
            ),
            (
                "dynamo/status_repair.rs",
                include_str!("dynamo/status_repair.rs"),
                vec![DynamoStatusStore::SET_ASIDE_PENDING],
            ),
            ("dynamo/mod.rs", include_str!("dynamo/mod.rs"), vec![]),
            (
                "sqs.rs",
                include_str!("sqs.rs"),
                vec![
                    SqsWorkQueue::SEND,
                    SqsWorkQueue::SEND_BATCH,
                    SqsWorkQueue::RECEIVE,
                    SqsWorkQueue::ACK,
                    SqsWorkQueue::ACK_MANY,
                    SqsWorkQueue::FAIL,
                    SqsDeadLetters::LIST,
                    SqsDeadLetters::REDRIVE,
                    SqsDeadLetters::REDRIVE_SEND,
                    SqsStreamFailures::SET_ASIDE,
                    SqsStreamFailures::LIST,
                ],
            ),
            (
                "sns.rs",
                include_str!("sns.rs"),
                vec![SnsPublisher::PUBLISH, SnsPublisher::PUBLISH_BATCH],
            ),
            ("lib.rs", include_str!("lib.rs"), vec![]),
        ]
    }

    const EXCLUDED_FILES: &[&str] = &[
        "iam.rs",
        "provision.rs",
        "resources.rs",
        // Unit tests only (the adapters against canned service answers).
        "service_answers_tests.rs",
        "stream_checkpoints.rs",
        "stream_feed.rs",
    ];

    /// SDK operation (fluent builder method on a client) → the IAM action it needs. `None`:
    /// not an IAM action itself; the contained operations are authorised one by one (see
    /// [`CONTAINED_OPERATIONS`]).
    const SDK_OPERATIONS: &[(&str, Option<&str>)] = &[
        ("get_item", Some("dynamodb:GetItem")),
        ("put_item", Some("dynamodb:PutItem")),
        ("update_item", Some("dynamodb:UpdateItem")),
        ("delete_item", Some("dynamodb:DeleteItem")),
        ("query", Some("dynamodb:Query")),
        ("scan", Some("dynamodb:Scan")),
        ("batch_get_item", Some("dynamodb:BatchGetItem")),
        ("batch_write_item", Some("dynamodb:BatchWriteItem")),
        ("transact_get_items", None),
        ("transact_write_items", None),
        ("send_message", Some("sqs:SendMessage")),
        ("send_message_batch", Some("sqs:SendMessage")),
        ("receive_message", Some("sqs:ReceiveMessage")),
        ("delete_message", Some("sqs:DeleteMessage")),
        ("delete_message_batch", Some("sqs:DeleteMessage")),
        (
            "change_message_visibility",
            Some("sqs:ChangeMessageVisibility"),
        ),
        (
            "change_message_visibility_batch",
            Some("sqs:ChangeMessageVisibility"),
        ),
        ("get_queue_attributes", Some("sqs:GetQueueAttributes")),
        ("get_queue_url", Some("sqs:GetQueueUrl")),
        ("publish", Some("sns:Publish")),
        ("publish_batch", Some("sns:Publish")),
    ];

    /// Operations inside a DynamoDB transaction, by the builder that makes them.
    const CONTAINED_OPERATIONS: &[(&str, &str)] = &[
        ("Put::builder()", "dynamodb:PutItem"),
        ("Update::builder()", "dynamodb:UpdateItem"),
        ("Delete::builder()", "dynamodb:DeleteItem"),
        ("ConditionCheck::builder()", "dynamodb:ConditionCheckItem"),
        ("Get::builder()", "dynamodb:GetItem"),
    ];

    /// Methods called on a client that are not service operations.
    const NOT_OPERATIONS: &[&str] = &["clone", "config"];

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// Every `client . <name> ( )` in `source` (whitespace and newlines allowed between the
    /// tokens, as rustfmt splits the chains): the SDK operations called on a client.
    fn client_calls(source: &str) -> Vec<String> {
        let mut calls = Vec::new();
        for (at, _) in source.match_indices("client") {
            let before = source[..at].chars().next_back();
            if before.is_some_and(is_ident) {
                continue;
            }
            let rest = &source[at + "client".len()..];
            if rest.chars().next().is_some_and(is_ident) {
                continue;
            }
            let Some(rest) = rest.trim_start().strip_prefix('.') else {
                continue;
            };
            let rest = rest.trim_start();
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            let after = rest[name.len()..].trim_start();
            let Some(after) = after.strip_prefix('(') else {
                continue;
            };
            if !name.is_empty() && after.trim_start().starts_with(')') {
                calls.push(name);
            }
        }
        calls
    }

    /// The IAM actions the SDK calls of `source` need.
    fn needed_actions(file: &str, source: &str) -> BTreeSet<&'static str> {
        let mut needed = BTreeSet::new();
        for call in client_calls(source) {
            if NOT_OPERATIONS.contains(&call.as_str()) {
                continue;
            }
            let Some((_, action)) = SDK_OPERATIONS.iter().find(|(op, _)| *op == call) else {
                panic!(
                    "{file} calls the SDK operation `{call}`, which this test does not know: add \
                     it with its IAM action to SDK_OPERATIONS (and declare the action)"
                );
            };
            match action {
                Some(action) => {
                    needed.insert(*action);
                }
                None => {
                    let contained: Vec<_> = CONTAINED_OPERATIONS
                        .iter()
                        .filter(|(builder, _)| source.contains(builder))
                        .map(|(_, action)| *action)
                        .collect();
                    assert!(
                        !contained.is_empty(),
                        "{file} calls `{call}` but builds none of its contained operations"
                    );
                    needed.extend(contained);
                }
            }
        }
        needed
    }

    #[test]
    fn the_scanner_finds_chained_and_split_client_calls() {
        let source = "self.client.put_item().x(); self\n  .client\n  .query()\n; \
                      clients.sqs.clone(); my_client.scan(); self.client.builder(arg)";
        assert_eq!(client_calls(source), vec!["put_item", "query"]);
    }

    #[test]
    fn every_sdk_operation_an_adapter_calls_has_its_iam_action_declared() {
        for (file, source, declared) in adapter_files() {
            let declared: BTreeSet<_> = grants(&declared).into_iter().map(|(_, a)| a).collect();
            let needed = needed_actions(file, source);
            let undeclared: Vec<_> = needed.difference(&declared).collect();
            assert!(
                undeclared.is_empty(),
                "{file} calls SDK operations needing {undeclared:?}, which no Permission \
                 constant of its adapters declares"
            );
            let stale: Vec<_> = declared.difference(&needed).collect();
            assert!(
                stale.is_empty(),
                "{file}: the constants declare {stale:?}, which no SDK call in it needs"
            );
        }
    }

    #[test]
    fn the_dynamo_adapters_call_what_the_design_says() {
        let needed: BTreeSet<_> = adapter_files()
            .into_iter()
            .filter(|(file, _, _)| file.starts_with("dynamo/"))
            .flat_map(|(file, source, _)| needed_actions(file, source))
            .collect();
        let expected: BTreeSet<_> = [
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            // The reconciler's setting aside of a view (ADR 11).
            "dynamodb:UpdateItem",
        ]
        .into_iter()
        .collect();
        assert_eq!(needed, expected);
    }

    #[test]
    fn every_adapter_source_file_is_scanned_or_explicitly_excluded() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut on_disk = BTreeSet::new();
        for dir in ["", "dynamo"] {
            for entry in std::fs::read_dir(src.join(dir)).expect("read src") {
                let name = entry.expect("dir entry").file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".rs") {
                    on_disk.insert(if dir.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{dir}/{name}")
                    });
                }
            }
        }
        let known: BTreeSet<String> = adapter_files()
            .iter()
            .map(|(file, _, _)| *file)
            .chain(EXCLUDED_FILES.iter().copied())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            on_disk, known,
            "a new file in src/ must be added to adapter_files() (with its constants) or, \
             if no Lambda ever runs it, to EXCLUDED_FILES"
        );
    }

    #[test]
    fn no_declared_action_is_a_transaction_or_a_wildcard() {
        for (_, _, declared) in adapter_files() {
            for (_, action) in grants(&declared) {
                assert!(!action.contains('*'), "{action}");
                assert_ne!(action, "dynamodb:TransactWriteItems");
                assert_ne!(action, "sqs:SendMessageBatch");
            }
        }
    }
}
