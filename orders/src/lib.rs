//! The `orders` command line.

mod archive;
mod aws_backend;
mod backend;
mod dlq;
mod events;
mod flags;
mod loadtest;
mod notifications;
mod plan;
mod progress;
mod prometheus;
mod rebuild;
mod reconcile;
mod replay;
mod serve;
mod stats;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orders",
    version,
    about = "Event-sourced order service: run it locally, inspect it"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline in one process: the HTTP API plus the processor, projector and
    /// notifier workers — on one SQLite file (default), or on AWS / an emulator (`--backend aws`:
    /// DynamoDB tables, SQS queue, SNS topic, the event table's stream) without deploying any
    /// function.
    Serve(serve::ServeArgs),
    /// Show the notifications published so far (the local stand-in for the SNS topic).
    Notifications(notifications::NotificationsArgs),
    /// Check every order: versions gapless from 1, only legal transitions, the view equal to
    /// the fold of the log, nothing pending for too long, (locally) every completion notified
    /// once, and no event a consumer could not decode. One line per problem; exit code 1 if
    /// there is any.
    Verify(verify::VerifyArgs),
    /// Recompute the status view from the log (every order, or one): forward-only writes, so
    /// a projector running meanwhile is never overwritten by older state.
    Rebuild(rebuild::RebuildArgs),
    /// The work queue's dead letters: list them, send them back to be processed.
    Dlq(dlq::DlqArgs),
    /// Put the orders that have stayed RECEIVED or PROCESSING longer than --older-than back
    /// on the work queue (safe: the processor is idempotent); --dry-run only lists them.
    Reconcile(reconcile::ReconcileArgs),
    /// Time travel: one order's status record as it was at a moment (or a version), or every
    /// order's status counts and completed totals as of a moment. Exit code 3 when the order
    /// did not exist yet.
    Replay(replay::ReplayArgs),
    /// Per hour or day of receipt: orders received, completed and failed, completed totals by
    /// currency, and the time from receipt to completion (p50, p95, p99).
    Stats(stats::StatsArgs),
    /// Export the event history — filtered by order, customer, type or time — as NDJSON
    /// (default), CSV or Parquet, ordered by occurredAt, orderId, version.
    Events(events::EventsArgs),
    /// Write the local log as Parquet files partitioned by day (DIR/day=YYYY-MM-DD/…), the
    /// layout Athena and DuckDB query; a second run adds only what is new.
    Archive(archive::ArchiveArgs),
    /// Load the HTTP API (loopback, or with --allow-remote a deployment you own): accepted/s,
    /// accept latency, errors, and with --wait the time from 202 to COMPLETED per order.
    Loadtest(loadtest::LoadtestArgs),
    /// Size the AWS stack for a rate of orders/s: what each resource needs against each AWS
    /// limit and template setting, what breaks first and what moves it, a ramp's throttling,
    /// and the cost per million orders (docs/scaling.md).
    Plan(plan::PlanArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: order_ports::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    /// Missing or unusable configuration (the message names the flag / variable).
    #[error("{0}")]
    Config(String),
    #[error("order {order_id}: {source}")]
    Order {
        order_id: events_schema::OrderId,
        source: order_ports::StoreError,
    },
    #[error(transparent)]
    Store(#[from] order_ports::StoreError),
    #[error(transparent)]
    History(#[from] order_history::HistoryError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub async fn run(cli: Cli) -> ExitCode {
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format(),
        _ => order_ports::telemetry::LogFormat::Text,
    };
    init_tracing(log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Notifications(args) => notifications::show(args).await.map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::verify(args).await,
        Command::Rebuild(args) => rebuild::rebuild(args).await,
        Command::Dlq(args) => dlq::dlq(args).await,
        Command::Reconcile(args) => reconcile::reconcile(args).await,
        Command::Replay(args) => replay::replay(args).await,
        Command::Stats(args) => stats::stats(args).await,
        Command::Events(args) => events::events(args).await.map(|()| ExitCode::SUCCESS),
        Command::Archive(args) => archive::archive(args).await.map(|()| ExitCode::SUCCESS),
        Command::Loadtest(args) => loadtest::loadtest(args).await,
        Command::Plan(args) => plan::plan(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: order_ports::telemetry::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ORDERS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // JSON as on Lambda: the event's fields at the top level, the current span's under `span`.
    let _ = match format {
        order_ports::telemetry::LogFormat::Text => builder.try_init(),
        order_ports::telemetry::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::aws_backend::AwsArgs;

    const AWS_HEADING: &str = "AWS backend (--backend aws)";

    fn all_commands(command: &clap::Command) -> Vec<clap::Command> {
        let mut found = vec![command.clone()];
        for sub in command.get_subcommands() {
            found.extend(all_commands(sub));
        }
        found
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn only_the_aws_options_appear_under_the_aws_heading_in_every_help() {
        let aws_ids: Vec<String> = <AwsArgs as clap::Args>::augment_args(clap::Command::new("x"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(aws_ids.iter().any(|id| id == "endpoint_url"));
        let mut misplaced = Vec::new();
        let mut under_heading = 0;
        for command in all_commands(&Cli::command()) {
            for arg in command.get_arguments() {
                if arg.get_help_heading() == Some(AWS_HEADING) {
                    under_heading += 1;
                    if !aws_ids.iter().any(|id| id == arg.get_id().as_str()) {
                        misplaced.push(format!("{} --{}", command.get_name(), arg.get_id()));
                    }
                }
            }
        }
        assert!(under_heading > 0, "no command shows the AWS options");
        assert!(misplaced.is_empty(), "under the AWS heading: {misplaced:?}");
    }
}
