//! The archiver Lambda: Firehose data-transformation batches in, one result per record out
//! (`KinesisFirehoseResponse`). It never fails an invocation: a record it cannot read is
//! `ProcessingFailed` on its own.

use aws_lambda_events::firehose::KinesisFirehoseResponse;
use lambda_runtime::{service_fn, LambdaEvent};
use order_adapters_aws::iam;
use order_adapters_aws::iam::Permission;
use order_lambda::{init_logging, EnvReader, FromEnv};

use crate::{transform, FirehoseEvent};

/// What the function reads from its environment: nothing. It calls no AWS service; Firehose
/// invokes it and does the reading and writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config;

impl FromEnv for Config {
    /// The environment variables [`Config`] requires: none.
    const REQUIRED: &'static [&'static str] = &[];
    /// The environment variables [`Config`] reads if set: none.
    const OPTIONAL: &'static [&'static str] = &[];

    fn read(_env: &mut EnvReader<'_>) -> Self {
        Config
    }
}

/// What this function's role must grant: its logs only. Firehose's own role is the one that
/// invokes it (`lambda:InvokeFunction`) and reads the stream.
pub const AWS_PERMISSIONS: &[Permission] = &[iam::LOGS];

/// Wires the [`Config`] and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let Config = Config::from_env()?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<FirehoseEvent>| async move {
        Ok::<KinesisFirehoseResponse, lambda_runtime::Error>(transform(event.payload))
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_environment_is_a_complete_config_and_no_variable_is_read() {
        // (`assert_config_reads_exactly` presumes some variable is required: none is here)
        let asked = std::cell::RefCell::default();
        let config = Config::from_lookup(order_test_support::env_lookup(&[], &asked));
        assert_eq!(config.ok(), Some(Config));
        assert!(asked.into_inner().is_empty());
        assert!(Config::REQUIRED.is_empty() && Config::OPTIONAL.is_empty());
    }
}
