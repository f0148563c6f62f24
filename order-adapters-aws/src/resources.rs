//! The operator's look at a deployment (feature `resources`, for `orders`; never in a Lambda,
//! whose resources come from its environment and whose role grants none of these calls): a
//! CloudFormation stack's outputs, whether a table or a queue exists, a table's stream.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::service_code;

/// Why a resource could not be looked up. Each is one line.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The call failed: the service's code and message when there is one, else the whole
    /// error chain.
    #[error("{0}")]
    Call(String),
    #[error("no such stack")]
    NoSuchStack,
    #[error("the table has no stream")]
    NoStream,
}

impl ResourceError {
    fn call<E>(err: &SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        ResourceError::Call(match (service_code(err), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => DisplayErrorContext(err).to_string(),
        })
    }
}

/// The outputs of CloudFormation stack `stack`, by output key.
pub async fn stack_outputs(
    config: &SdkConfig,
    stack: &str,
) -> Result<HashMap<String, String>, ResourceError> {
    let out = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| ResourceError::call(&e))?;
    let stack_found = out
        .stacks
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or(ResourceError::NoSuchStack)?;
    Ok(stack_found
        .outputs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| Some((o.output_key?, o.output_value?)))
        .collect())
}

/// Fails unless `table` exists (a tool would otherwise fail on its first read with the SDK's
/// error).
pub async fn check_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), ResourceError> {
    dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ResourceError::call(&e))
}

/// Fails unless the queue `url` exists.
pub async fn check_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(), ResourceError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| ResourceError::call(&e))
}

/// The ARN of `table`'s current stream.
pub async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, ResourceError> {
    let out = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| ResourceError::call(&e))?;
    out.table
        .and_then(|t| t.latest_stream_arn)
        .ok_or(ResourceError::NoStream)
}
