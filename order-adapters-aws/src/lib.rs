//! AWS adapters: [`DynamoEventStore`], [`DynamoStatusStore`], [`SqsWorkQueue`], [`SnsPublisher`],
//! and (feature `stream-feed`) `StreamFeed`, the event table's DynamoDB stream as a
//! [`Feed`](order_ports::Feed).
//!
//! Build one [`AwsClients`] per process (cold start) and clone the clients into the adapters;
//! SDK clients are cheap to clone and share one connection pool.
//!
//! Error mapping (see the port docs): the SDK's *standard* retry mode has already retried
//! throttling, 5xx, timeouts and connection errors [`MAX_ATTEMPTS`] times when an adapter
//! returns [`StoreError::Unavailable`]. Request-validation errors (`ValidationException`,
//! `InvalidParameter*`, a request the SDK could not build) are [`StoreError::Rejected`].
//! Anything else that is environmental — a missing table or queue, access denied, bad
//! credentials — is reported as `Unavailable`: it is not the caller's bug, and fixing the
//! deployment heals it, so work must be retried (and reach a DLQ) rather than dropped.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use order_ports::StoreError;

mod dynamo;
pub mod iam;
pub mod provision;
#[cfg(feature = "resources")]
pub mod resources;
#[cfg(test)]
mod service_answers_tests;
mod sns;
mod sqs;
#[cfg(feature = "stream-feed")]
pub mod stream_checkpoints;
#[cfg(feature = "stream-feed")]
pub mod stream_feed;

/// How many `pendingShard` keys the `pending` index spreads over: `orders plan` counts each as
/// one partition's writes.
pub use dynamo::PENDING_SHARDS;
pub use dynamo::{DynamoEventStore, DynamoStatusStore};
pub use sns::SnsPublisher;
pub use sqs::{SqsDeadLetters, SqsStreamFailures, SqsWorkQueue, StreamFailureMessage};
#[cfg(feature = "stream-feed")]
pub use stream_checkpoints::{StartAt, StreamCheckpoints, DEFAULT_CHECKPOINTS_FILE};
#[cfg(feature = "stream-feed")]
pub use stream_feed::StreamFeed;

/// Attempts per SDK call (1 try + retries) in the standard retry mode, with exponential
/// backoff and jitter. Lambda invocations are short: a few attempts, then let the caller decide.
pub const MAX_ATTEMPTS: u32 = 4;

/// The region used when neither the environment nor a profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The SDK clients of one process: DynamoDB, SQS, SNS. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

impl AwsClients {
    /// Loads the shared configuration from the environment (credentials chain, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, …) with the standard retry mode ([`MAX_ATTEMPTS`] attempts), a 3 s
    /// connect timeout and a 20 s per-attempt timeout; region [`DEFAULT_REGION`] when none is
    /// configured.
    ///
    /// `endpoint_url` overrides every service's endpoint (an emulator such as ministack). With
    /// an override and no `AWS_ACCESS_KEY_ID` in the environment, dummy static credentials are
    /// used, since emulators accept any and the default chain would probe instance metadata.
    pub async fn from_env(endpoint_url: Option<&str>) -> AwsClients {
        Self::from_config(&sdk_config(endpoint_url).await)
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> AwsClients {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
        }
    }
}

/// The shared SDK configuration behind [`AwsClients::from_env`], for any other SDK client the
/// process needs (streams, CloudFormation): standard retries, timeouts, default region, and
/// dummy credentials for an emulator endpoint.
pub async fn sdk_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "order-ports-emulator",
            ));
        }
    }
    loader.load().await
}

/// Error codes that mean "slow down / try again", whatever the service.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "TransactionInProgressException",
    "TransactionConflictException",
    "LimitExceededException",
    "InternalServerError",
    "InternalError",
    "InternalErrorException",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "KmsThrottlingException",
];

/// Error codes that mean "this request is malformed": retrying cannot help.
const REJECTED_CODES: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "SerializationException",
    "InvalidParameter",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "InvalidMessageContents",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "MissingParameter",
    "BatchRequestTooLong",
    "EmptyBatchRequest",
    "TooManyEntriesInBatchRequest",
    "BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId",
    "ItemCollectionSizeLimitExceededException",
];

/// Maps an SDK error (after the SDK's own retries) onto the port contract.
pub(crate) fn classify<E>(operation: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!("{operation}: {}", DisplayErrorContext(err));
    match err {
        SdkError::ConstructionFailure(_) => StoreError::Rejected(text),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            if TRANSIENT_CODES.contains(&code) || status >= 500 || status == 429 {
                StoreError::Unavailable(text)
            } else if REJECTED_CODES.contains(&code) {
                StoreError::Rejected(text)
            } else {
                StoreError::Unavailable(text)
            }
        }
        // Timeouts, dispatch (connection) failures, unparseable responses.
        _ => StoreError::Unavailable(text),
    }
}

/// The error code of a service error (`ResourceNotFoundException`, …), if the call reached the
/// service; any AWS SDK's operation errors.
pub fn service_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}
