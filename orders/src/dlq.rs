//! `orders dlq list` and `orders dlq redrive`: the work queue's dead letters, on either backend.

use std::process::ExitCode;

use events_schema::OrderId;
use order_ports::{DeadLetterMessage, RedriveFilter};

use crate::backend::{open_dead_letters, BackendArgs};
use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// One line per dead letter: message id, body (the order id), receive count, when. Nothing
    /// is removed (on SQS each message is received and made visible again).
    List {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        // Last: the backend's AWS options set a help heading that would also take the ones above.
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Send dead letters back to the work queue (safe: the processor is idempotent) and remove
    /// them from the dead letters. One line per message redriven.
    Redrive {
        /// Only this order's messages.
        #[arg(long, value_parser = parse_order_id, conflicts_with = "all", required_unless_present = "all")]
        order: Option<OrderId>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        // Last: the backend's AWS options set a help heading that would also take the ones above.
        #[command(flatten)]
        backend: BackendArgs,
    },
}

pub(crate) fn parse_order_id(s: &str) -> Result<OrderId, String> {
    OrderId::parse(s).map_err(|e| format!("not an order id: {e}"))
}

pub async fn dlq(args: DlqArgs) -> Result<ExitCode, CliError> {
    match args.command {
        DlqCommand::List { backend, json } => {
            let dead = open_dead_letters(&backend, "dlq list").await?;
            let letters = dead.list().await?;
            for letter in &letters {
                print_letter(letter, json);
            }
            eprintln!("{} dead letters", letters.len());
        }
        DlqCommand::Redrive {
            backend,
            order,
            all: _,
            json,
        } => {
            let dead = open_dead_letters(&backend, "dlq redrive").await?;
            let filter = match order {
                Some(id) => RedriveFilter::Order(id),
                None => RedriveFilter::All,
            };
            let redriven = dead.redrive(&filter).await?;
            for letter in &redriven {
                print_letter(letter, json);
            }
            eprintln!("redrove {} dead letters to the work queue", redriven.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_letter(letter: &DeadLetterMessage, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "messageId": letter.message_id,
                "body": letter.body,
                "receiveCount": letter.receive_count,
                "at": letter.at,
            })
        );
    } else {
        println!(
            "{}\t{}\treceives={}\t{}",
            letter.message_id, letter.body, letter.receive_count, letter.at
        );
    }
}
