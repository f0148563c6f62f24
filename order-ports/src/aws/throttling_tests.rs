//! Throttling as the SDKs surface it, through the real adapters: each service's throttling
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
use crate::ports::{EventStore, Notification, Publisher, StoreError, WorkQueue};

/// Answers every request with the same error response.
#[derive(Debug, Clone)]
struct Answers {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl HttpConnector for Answers {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(
            StatusCode::try_from(self.status).expect("a status code"),
            SdkBody::from(self.body.clone()),
        );
        for (name, value) in &self.headers {
            response.headers_mut().insert(*name, value.clone());
        }
        HttpConnectorFuture::ready(Ok(response))
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
fn clients(answers: Answers) -> AwsClients {
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
