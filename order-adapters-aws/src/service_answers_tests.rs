//! The adapters against the services' own answers, in their wire forms, through the real SDK
//! clients (an HTTP connector that answers as the service would; no network).
//!
//! Throttling as the SDKs surface it: each service's throttling
//! error, in its wire form (DynamoDB's and SQS's JSON protocol, SNS's query XML), parsed by
//! the SDK and mapped by [`classify`](super::classify), must reach the port as a transient
//! `Unavailable` — the consumers then report the record for a retry instead of setting it aside
//! for good, and the processor retries the message (the delivery harness, orders/tests/e2e/
//! delivery, injects the port-level form of these errors).
//!
//! Codes: DynamoDB `ProvisionedThroughputExceededException`, `ThrottlingException`,
//! `RequestLimitExceeded`
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>);
//! SQS `RequestThrottled`, `KMS.ThrottlingException`
//! (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>);
//! SNS `Throttled`, `KMSThrottling`
//! (<https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use events_schema::OrderId;

use super::{AwsClients, DynamoEventStore, SnsPublisher, SqsWorkQueue};
use order_ports::{EventStore, Notification, Publisher, StoreError, WorkQueue};

/// One answer of the fake service.
#[derive(Debug, Clone)]
struct Answers {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

type Service = dyn Fn(&str) -> Answers + Send + Sync;

/// Answers each request with what `service` makes of its body.
#[derive(Clone)]
struct FakeService(std::sync::Arc<Service>);

impl std::fmt::Debug for FakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeService")
    }
}

impl HttpConnector for FakeService {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let answer = (self.0)(&body);
        let mut response = HttpResponse::new(
            StatusCode::try_from(answer.status).expect("a status code"),
            SdkBody::from(answer.body),
        );
        for (name, value) in answer.headers {
            response.headers_mut().insert(name, value);
        }
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for FakeService {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Answers {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        FakeService(std::sync::Arc::new({
            let answer = self.clone();
            move |_: &str| answer.clone()
        }))
        .call(_request)
    }
}

impl HttpClient for Answers {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Clients whose every call gets `answers`, with the SDK's own retries off (they would only
/// repeat the same answer, slowly).
fn clients(answers: impl HttpClient + 'static) -> AwsClients {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .retry_config(RetryConfig::disabled())
        .http_client(answers)
        .build();
    AwsClients::from_config(&config)
}

fn json_error(code: &str, query_code: Option<&str>) -> Answers {
    let mut headers = vec![("content-type", "application/x-amz-json-1.0".to_owned())];
    if let Some(query_code) = query_code {
        headers.push(("x-amzn-query-error", format!("{query_code};Sender")));
    }
    Answers {
        status: 400,
        headers,
        body: format!(r#"{{"__type":"com.amazonaws.service#{code}","message":"Rate exceeded"}}"#),
    }
}

fn xml_error(code: &str) -> Answers {
    Answers {
        status: 400,
        headers: vec![("content-type", "text/xml".to_owned())],
        body: format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ),
    }
}

/// Transient, and the reason names the code: the SDK parsed the service's answer (a response
/// it could not read would also be `Unavailable`, without the code).
fn assert_transient(code: &str, result: Result<(), StoreError>) {
    let what = code;
    match result {
        Err(StoreError::Unavailable(text)) => {
            assert!(
                text.contains(code),
                "{what}: the reason {text:?} does not name it"
            );
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn dynamodb_throttling_reaches_the_event_store_port_as_transient() {
    for code in [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    ] {
        let clients = clients(json_error(code, None));
        let store = DynamoEventStore::new(clients.dynamodb, "OrderEvents");
        assert_transient(code, store.load(OrderId::new_random()).await.map(|_| ()));
    }
}

#[tokio::test]
async fn sqs_throttling_reaches_the_work_queue_port_as_transient() {
    for (code, query_code) in [
        ("RequestThrottled", "RequestThrottled"),
        ("KmsThrottled", "KMS.ThrottlingException"),
    ] {
        let clients = clients(json_error(code, Some(query_code)));
        let queue = SqsWorkQueue::new(clients.sqs, "https://sqs.us-east-1.amazonaws.com/1/q");
        assert_transient(query_code, queue.send(OrderId::new_random()).await);
    }
}

#[tokio::test]
async fn sns_throttling_reaches_the_publisher_port_as_transient_naming_the_first_entry() {
    for code in ["Throttled", "KMSThrottling"] {
        let clients = clients(xml_error(code));
        let publisher = SnsPublisher::new(clients.sns, "arn:aws:sns:us-east-1:1:t");
        let notification = Notification {
            event_id: events_schema::EventId::new(),
            message: "{}".to_owned(),
            attributes: Default::default(),
        };
        let result = publisher
            .publish_batch(std::slice::from_ref(&notification))
            .await;
        let error = result.expect_err(code);
        assert_eq!(error.index, 0, "{code}: nothing of the batch went out");
        assert_transient(code, Err(error.error));
    }
}

/// SNS's `PublishBatch` as the service answers it
/// (<https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>): no entries is
/// `EmptyBatchRequest`, more than 10 is `TooManyEntriesInBatchRequest`; otherwise each entry
/// succeeds unless `fail(call, id)` says it fails (a server-side failure). Records the entry ids
/// of every call.
fn fake_sns(
    fail: impl Fn(usize, &str) -> bool + Send + Sync + 'static,
) -> (
    FakeService,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
) {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<String>>::new()));
    let seen = std::sync::Arc::clone(&calls);
    let service = FakeService(std::sync::Arc::new(move |body: &str| {
        let ids: Vec<String> = body
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(key, _)| {
                key.starts_with("PublishBatchRequestEntries.member.") && key.ends_with(".Id")
            })
            .map(|(_, id)| id.to_owned())
            .collect();
        let call = {
            let mut calls = seen.lock().expect("calls");
            calls.push(ids.clone());
            calls.len() - 1
        };
        if ids.is_empty() {
            return xml_error("EmptyBatchRequest");
        }
        if ids.len() > 10 {
            return xml_error("TooManyEntriesInBatchRequest");
        }
        let (failed, succeeded): (Vec<&String>, Vec<&String>) =
            ids.iter().partition(|id| fail(call, id));
        let successful: String = succeeded
            .iter()
            .map(|id| format!("<member><Id>{id}</Id><MessageId>m-{id}</MessageId></member>"))
            .collect();
        let failed: String = failed
            .iter()
            .map(|id| {
                format!(
                    "<member><Id>{id}</Id><Code>InternalError</Code><Message>try again</Message>\
                     <SenderFault>false</SenderFault></member>"
                )
            })
            .collect();
        Answers {
            status: 200,
            headers: vec![("content-type", "text/xml".to_owned())],
            body: format!(
                "<PublishBatchResponse><PublishBatchResult><Successful>{successful}</Successful>\
                 <Failed>{failed}</Failed></PublishBatchResult>\
                 <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>"
            ),
        }
    }));
    (service, calls)
}

fn notifications(n: usize) -> Vec<Notification> {
    (0..n)
        .map(|i| Notification {
            event_id: events_schema::EventId::new(),
            message: format!("m{i}"),
            attributes: Default::default(),
        })
        .collect()
}

#[tokio::test]
async fn twenty_five_notifications_go_to_sns_as_calls_of_ten_ten_and_five_entries() {
    let (service, calls) = fake_sns(|_, _| false);
    let publisher = SnsPublisher::new(clients(service).sns, "arn:aws:sns:us-east-1:1:t");
    publisher
        .publish_batch(&notifications(25))
        .await
        .expect("SNS accepts every call");
    let sizes: Vec<usize> = calls.lock().expect("calls").iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
}

#[tokio::test]
async fn a_failed_entry_of_the_second_call_is_named_by_its_index_in_the_whole_batch() {
    // SNS fails the entry with id 3 of the second call: the 14th notification (index 13).
    let (service, calls) = fake_sns(|call, id| call == 1 && id == "3");
    let publisher = SnsPublisher::new(clients(service).sns, "arn:aws:sns:us-east-1:1:t");
    let error = publisher
        .publish_batch(&notifications(25))
        .await
        .expect_err("an entry failed");
    assert_eq!(error.index, 13);
    assert!(
        matches!(error.error, StoreError::Unavailable(_)),
        "{error:?}"
    );
    assert_eq!(
        calls.lock().expect("calls").len(),
        2,
        "nothing after the failed call"
    );
}

#[tokio::test]
async fn an_empty_batch_is_refused_before_it_reaches_sns() {
    let (service, calls) = fake_sns(|_, _| false);
    let publisher = SnsPublisher::new(clients(service).sns, "arn:aws:sns:us-east-1:1:t");
    let error = publisher.publish_batch(&[]).await.expect_err("refused");
    assert!(matches!(error.error, StoreError::Rejected(_)), "{error:?}");
    assert!(calls.lock().expect("calls").is_empty());
}

/// A DynamoDB or SQS answer of 200 with `body` (JSON protocol).
#[cfg(feature = "resources")]
fn json_ok(body: &str) -> Answers {
    Answers {
        status: 200,
        headers: vec![("content-type", "application/x-amz-json-1.0".to_owned())],
        body: body.to_owned(),
    }
}

#[cfg(feature = "resources")]
#[tokio::test]
async fn a_missing_table_is_one_line_with_the_services_code_and_message() {
    let clients = clients(Answers {
        status: 400,
        headers: vec![("content-type", "application/x-amz-json-1.0".to_owned())],
        body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#.to_owned(),
    });
    let error = crate::resources::check_table(&clients.dynamodb, "OrderEvents")
        .await
        .expect_err("no such table");
    assert_eq!(
        error.to_string(),
        "ResourceNotFoundException: Requested resource not found"
    );
}

#[cfg(feature = "resources")]
#[tokio::test]
async fn a_tables_stream_is_its_latest_stream_arn_and_a_table_without_one_says_so() {
    let arn = "arn:aws:dynamodb:us-east-1:1:table/OrderEvents/stream/2026-01-01T00:00:00.000";
    let with = clients(json_ok(&format!(
        r#"{{"Table":{{"TableName":"OrderEvents","LatestStreamArn":"{arn}"}}}}"#
    )));
    assert_eq!(
        crate::resources::latest_stream_arn(&with.dynamodb, "OrderEvents")
            .await
            .expect("a stream"),
        arn
    );
    let without = clients(json_ok(r#"{"Table":{"TableName":"OrderEvents"}}"#));
    assert!(matches!(
        crate::resources::latest_stream_arn(&without.dynamodb, "OrderEvents").await,
        Err(crate::resources::ResourceError::NoStream)
    ));
}
