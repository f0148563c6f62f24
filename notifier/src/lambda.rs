//! The notifier Lambda: stream batches of `OrderCompleted` (the mapping's filter) in, SNS
//! messages out, the first failed record reported (`DynamoDbEventResponse`).

use std::sync::Arc;

use order_adapters_aws::iam::Permission;
use order_adapters_aws::{iam, AwsClients, DynamoEventStore, SnsPublisher, SqsStreamFailures};
use order_lambda::{init_logging, run_stream_function, EnvReader, FromEnv};

use crate::Notifier;

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    pub topic_arn: String,
    /// Where records that can never be notified are set aside (the stream failure queue).
    pub stream_failure_queue_url: String,
}

impl FromEnv for Config {
    /// The environment variables [`Config`] requires (`template.yaml` sets each of them).
    const REQUIRED: &'static [&'static str] =
        &["EVENTS_TABLE", "TOPIC_ARN", "STREAM_FAILURE_QUEUE_URL"];
    /// The environment variables [`Config`] reads if set (`template.yaml` sets no others).
    const OPTIONAL: &'static [&'static str] = &[];

    fn read(env: &mut EnvReader<'_>) -> Self {
        Config {
            events_table: env.required("EVENTS_TABLE"),
            topic_arn: env.required("TOPIC_ARN"),
            stream_failure_queue_url: env.required("STREAM_FAILURE_QUEUE_URL"),
        }
    }
}

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Notifier::notify_batch`](crate::Notifier::notify_batch) loads the orders' histories and publishes in batches; the
/// records it can never notify are set aside in the stream failure queue by the function
/// itself; the stream mapping reads the stream and sends the batches it discards to the same
/// queue.
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::LOAD,
    SnsPublisher::PUBLISH,
    SnsPublisher::PUBLISH_BATCH,
    SqsStreamFailures::SET_ASIDE,
    iam::STREAM_EVENT_SOURCE,
    iam::STREAM_ON_FAILURE,
    iam::LOGS,
];

/// Wires the [`Config`], the clients and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let notifier = Notifier::new(
        Arc::new(DynamoEventStore::new(clients.dynamodb, config.events_table)),
        Arc::new(SnsPublisher::new(clients.sns, config.topic_arn)),
    );
    let set_aside = Arc::new(SqsStreamFailures::new(
        clients.sqs,
        config.stream_failure_queue_url,
    ));
    run_stream_function(notifier, "notifier", set_aside).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    use order_test_support::env_lookup as lookup;

    #[test]
    fn an_empty_environment_names_exactly_the_required_variables_and_reads_only_declared_ones() {
        order_test_support::assert_config_reads_exactly::<Config>();
    }

    #[test]
    fn a_complete_environment_is_read_into_the_config() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(
            &[
                ("EVENTS_TABLE", "e"),
                ("TOPIC_ARN", "arn:t"),
                ("STREAM_FAILURE_QUEUE_URL", "q"),
            ],
            &asked,
        ))
        .unwrap();
        assert_eq!(
            config,
            Config {
                events_table: "e".into(),
                topic_arn: "arn:t".into(),
                stream_failure_queue_url: "q".into(),
            }
        );
    }
}
