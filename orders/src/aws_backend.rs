//! `--backend aws` (every command): where the AWS resources are.
//!
//! Names come from flags / environment variables (the same variables the Lambdas read) and,
//! for whatever those leave out, from the outputs of a CloudFormation stack (`--stack`). The
//! event table's stream ARN comes from `--events-stream-arn`, else the stack output
//! `EventsStreamArn`, else `DescribeTable` on the event table. The AWS calls are
//! `order_adapters_aws::resources`'; what is here is which flag, variable and output names a
//! resource, and the messages that say so.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_config::SdkConfig;
use order_adapters_aws::resources::{self, ResourceError};

use crate::CliError;

/// Options of the `aws` backend (ignored by `sqlite`).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "AWS backend (--backend aws)")]
pub struct AwsArgs {
    /// Endpoint URL for every AWS service (an emulator such as ministack). Without it, the SDK's
    /// usual configuration applies. Region and credentials come from the standard AWS
    /// environment / profile (AWS_REGION, AWS_ACCESS_KEY_ID, …; with an endpoint URL and no
    /// credentials in the environment, dummy ones are used).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Take the resource names from this CloudFormation stack's outputs (EventsTableName,
    /// StatusTableName, WorkQueueUrl, TopicArn, EventsStreamArn). Flags and their environment
    /// variables override single outputs.
    #[arg(long, env = "ORDERS_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// The OrderEvents table (stack output EventsTableName).
    #[arg(long, env = "EVENTS_TABLE", value_name = "NAME")]
    pub events_table: Option<String>,
    /// The OrderStatus table (stack output StatusTableName).
    #[arg(long, env = "STATUS_TABLE", value_name = "NAME")]
    pub status_table: Option<String>,
    /// The work queue's URL (stack output WorkQueueUrl).
    #[arg(long, env = "WORK_QUEUE_URL", value_name = "URL")]
    pub work_queue_url: Option<String>,
    /// The work queue's dead-letter queue, for `orders dlq` (stack output WorkDlqUrl).
    #[arg(long, env = "WORK_DLQ_URL", value_name = "URL")]
    pub work_dlq_url: Option<String>,
    /// The stream failure queue (stack output StreamFailureQueueUrl): where `serve`'s projector and
    /// notifier set aside each stream record they can never handle (an event type or schema
    /// version this build cannot read), as the Lambdas do, and where the stream mappings put the
    /// batches they discarded; read by `orders verify` and `orders dlq records`. Without it,
    /// `serve` only logs such records.
    #[arg(long, env = "STREAM_FAILURE_QUEUE_URL", value_name = "URL")]
    pub stream_failure_queue_url: Option<String>,
    /// The SNS topic completions are published to (stack output TopicArn).
    #[arg(long, env = "TOPIC_ARN", value_name = "ARN")]
    pub topic_arn: Option<String>,
    /// The OrderEvents table's stream (stack output EventsStreamArn; by default looked up with
    /// DescribeTable).
    #[arg(long, env = "EVENTS_STREAM_ARN", value_name = "ARN")]
    pub events_stream_arn: Option<String>,
    /// Reset the notifier: forget its saved stream positions and publish again every completion
    /// still in the stream (TRIM_HORIZON, up to 24 h; subscribers deduplicate on eventId).
    /// Without it the notifier resumes after the last completion it handled (see --checkpoints),
    /// and on its very first run on a stream it starts at LATEST: only events written after
    /// startup are notified.
    #[arg(long)]
    pub replay_notifications: bool,
    /// The local SQLite file holding the projector's and the notifier's stream positions (per
    /// stream and shard, saved at every commit), so a restart resumes after the last record each
    /// handled. Deleting it makes the next start a first start.
    #[arg(
        long,
        env = "ORDERS_AWS_CHECKPOINTS",
        value_name = "FILE",
        default_value = order_adapters_aws::DEFAULT_CHECKPOINTS_FILE
    )]
    pub checkpoints: PathBuf,
}

/// Everything the aws backend needs, resolved.
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub events_table: String,
    pub status_table: String,
    pub work_queue_url: String,
    pub topic_arn: String,
    pub events_stream_arn: String,
    /// Optional for `serve`: where its stream consumers set poison aside.
    pub stream_failure_queue_url: Option<String>,
}

/// A resource a command needs: its flag, variable and stack output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    EventsTable,
    StatusTable,
    WorkQueueUrl,
    TopicArn,
    WorkDlqUrl,
    StreamFailureQueueUrl,
}

impl Name {
    fn flag_env_output(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Name::EventsTable => ("events-table", "EVENTS_TABLE", "EventsTableName"),
            Name::StatusTable => ("status-table", "STATUS_TABLE", "StatusTableName"),
            Name::WorkQueueUrl => ("work-queue-url", "WORK_QUEUE_URL", "WorkQueueUrl"),
            Name::TopicArn => ("topic-arn", "TOPIC_ARN", "TopicArn"),
            Name::WorkDlqUrl => ("work-dlq-url", "WORK_DLQ_URL", "WorkDlqUrl"),
            Name::StreamFailureQueueUrl => (
                "stream-failure-queue-url",
                "STREAM_FAILURE_QUEUE_URL",
                "StreamFailureQueueUrl",
            ),
        }
    }

    fn given(self, args: &AwsArgs) -> &Option<String> {
        match self {
            Name::EventsTable => &args.events_table,
            Name::StatusTable => &args.status_table,
            Name::WorkQueueUrl => &args.work_queue_url,
            Name::TopicArn => &args.topic_arn,
            Name::WorkDlqUrl => &args.work_dlq_url,
            Name::StreamFailureQueueUrl => &args.stream_failure_queue_url,
        }
    }

    /// How the user names it: `--events-table (env EVENTS_TABLE, stack output EventsTableName)`.
    pub fn describe(self) -> String {
        let (flag, env, output) = self.flag_env_output();
        format!("--{flag} (env {env}, stack output {output})")
    }
}

/// The values of `names`, in that order: flags/env first, then the stack's outputs; an error
/// names every missing one with its flag and variable (and an unknown stack is an error).
pub async fn resolve_names(
    args: &AwsArgs,
    config: &SdkConfig,
    names: &[Name],
) -> Result<(Vec<String>, HashMap<String, String>), CliError> {
    let outputs = match &args.stack {
        Some(stack) => stack_outputs(config, stack).await?,
        None => HashMap::new(),
    };
    let mut missing = Vec::new();
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let (_, _, output) = name.flag_env_output();
        let value = name
            .given(args)
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| outputs.get(output).cloned());
        match value {
            Some(v) => values.push(v),
            None => missing.push(name.describe()),
        }
    }
    if !missing.is_empty() {
        let hint = if args.stack.is_some() {
            ""
        } else {
            "; or name a CloudFormation stack with --stack"
        };
        return Err(CliError::Config(format!(
            "--backend aws needs {}{hint}",
            missing.join(", ")
        )));
    }
    Ok((values, outputs))
}

/// Resolves what `serve` needs: the four names, then the stream ARN (`--events-stream-arn`,
/// else the stack output, else `DescribeTable`), and the stream failure queue if it is named
/// (flag, variable or stack output).
pub async fn resolve(
    args: &AwsArgs,
    config: &SdkConfig,
    dynamodb: &aws_sdk_dynamodb::Client,
) -> Result<AwsResources, CliError> {
    let (values, outputs) = resolve_names(
        args,
        config,
        &[
            Name::EventsTable,
            Name::StatusTable,
            Name::WorkQueueUrl,
            Name::TopicArn,
        ],
    )
    .await?;
    let [events_table, status_table, work_queue_url, topic_arn]: [String; 4] = values
        .try_into()
        .map_err(|_| CliError::Config("internal: resolved the wrong number of names".into()))?;
    let events_stream_arn = match args
        .events_stream_arn
        .clone()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| outputs.get("EventsStreamArn").cloned())
    {
        Some(arn) => arn,
        None => latest_stream_arn(dynamodb, &events_table).await?,
    };
    let (_, _, failure_queue_output) = Name::StreamFailureQueueUrl.flag_env_output();
    let stream_failure_queue_url = Name::StreamFailureQueueUrl
        .given(args)
        .clone()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| outputs.get(failure_queue_output).cloned());
    Ok(AwsResources {
        events_table,
        status_table,
        work_queue_url,
        topic_arn,
        events_stream_arn,
        stream_failure_queue_url,
    })
}

/// Fails with one line naming the table and its flag unless `table` exists (for the tools,
/// which would otherwise fail on their first read with the SDK's error).
pub async fn check_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    name: Name,
) -> Result<(), CliError> {
    resources::check_table(dynamodb, table)
        .await
        .map_err(|e| CliError::Config(format!("table {table} ({}): {e}", name.describe())))
}

/// Fails with one line naming the queue and its flag unless the queue `url` exists.
pub async fn check_queue(sqs: &aws_sdk_sqs::Client, url: &str, name: Name) -> Result<(), CliError> {
    resources::check_queue(sqs, url)
        .await
        .map_err(|e| CliError::Config(format!("queue {url} ({}): {e}", name.describe())))
}

async fn stack_outputs(
    config: &SdkConfig,
    stack: &str,
) -> Result<HashMap<String, String>, CliError> {
    resources::stack_outputs(config, stack)
        .await
        .map_err(|e| match e {
            ResourceError::NoSuchStack => {
                CliError::Config(format!("--stack {stack}: no such stack"))
            }
            other => CliError::Config(format!("--stack {stack}: DescribeStacks failed: {other}")),
        })
}

async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, CliError> {
    resources::latest_stream_arn(dynamodb, table)
        .await
        .map_err(|e| match e {
            ResourceError::NoStream => CliError::Config(format!(
                "table {table} has no stream: enable NEW_IMAGE streams on it or pass --events-stream-arn"
            )),
            other => CliError::Config(format!(
                "DescribeTable {table} (to find its stream; or pass --events-stream-arn): {other}"
            )),
        })
}
