//! The projector Lambda: a DynamoDB stream batch of the event table in, the first transiently
//! failed record out (`DynamoDbEventResponse`); records it can never project are set aside in the
//! stream failure queue (`order_lambda::handle_stream_batch`).

use std::sync::Arc;

use order_adapters_aws::iam::Permission;
use order_adapters_aws::{iam, AwsClients, DynamoEventStore, DynamoStatusStore, SqsStreamFailures};
use order_lambda::{init_logging, run_stream_function, EnvReader, FromEnv};

use crate::Projector;

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    pub status_table: String,
    /// Where records that can never be projected are set aside (the stream failure queue).
    pub stream_failure_queue_url: String,
}

impl FromEnv for Config {
    /// The environment variables [`Config`] requires (`template.yaml` sets each of them).
    const REQUIRED: &'static [&'static str] =
        &["EVENTS_TABLE", "STATUS_TABLE", "STREAM_FAILURE_QUEUE_URL"];
    /// The environment variables [`Config`] reads if set (`template.yaml` sets no others).
    const OPTIONAL: &'static [&'static str] = &[];

    fn read(env: &mut EnvReader<'_>) -> Self {
        Config {
            events_table: env.required("EVENTS_TABLE"),
            status_table: env.required("STATUS_TABLE"),
            stream_failure_queue_url: env.required("STREAM_FAILURE_QUEUE_URL"),
        }
    }
}

/// What this function's role must grant, built from the adapters' per-method constants:
/// [`Projector::project_batch`](crate::Projector::project_batch) reads the batch's views at once
/// and upserts them (and [`Projector::project`](crate::Projector::project) reads one when a
/// view does not decode) and, on a gap, loads the order's history; it sets aside the records it
/// can never project in the stream failure queue itself; the stream mapping reads the stream and
/// sends the batches it discards to the same queue.
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoStatusStore::GET,
    DynamoStatusStore::GET_MANY,
    DynamoStatusStore::UPSERT,
    DynamoEventStore::LOAD,
    SqsStreamFailures::SET_ASIDE,
    iam::STREAM_EVENT_SOURCE,
    iam::STREAM_ON_FAILURE,
    iam::LOGS,
];

/// Wires the [`Config`], the DynamoDB client and the runtime.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let projector = Projector::new(
        Arc::new(DynamoEventStore::new(
            clients.dynamodb.clone(),
            config.events_table,
        )),
        Arc::new(DynamoStatusStore::new(
            clients.dynamodb,
            config.status_table,
        )),
    );
    let set_aside = Arc::new(SqsStreamFailures::new(
        clients.sqs,
        config.stream_failure_queue_url,
    ));
    run_stream_function(projector, "projector", set_aside).await
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
                ("STATUS_TABLE", "s"),
                ("STREAM_FAILURE_QUEUE_URL", "q"),
            ],
            &asked,
        ))
        .unwrap();
        assert_eq!(
            config,
            Config {
                events_table: "e".into(),
                status_table: "s".into(),
                stream_failure_queue_url: "q".into(),
            }
        );
    }
}
