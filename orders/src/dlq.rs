//! `orders dlq list`, `redrive` and `prune`: the work queue's dead letters, on either backend
//! (`prune` locally only), and `orders dlq records`: the stream records set aside.

use std::process::ExitCode;

use events_schema::OrderId;
use order_ports::{DeadLetterMessage, RedriveFilter, SetAsideRecord, StreamFailure};

use crate::backend::{
    open_dead_letters, open_existing_sqlite, open_set_aside, Backend, BackendArgs, SetAsideRecords,
};
use crate::flags::{parse_duration, parse_order_id};
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
    /// The stream records the projector and the notifier set aside because they can never
    /// handle them (an event this build cannot decode, a permanent failure): the `failed_events`
    /// table locally, the stream failure queue on AWS — which also holds the batches a stream
    /// mapping discarded after its retries. One line per record; nothing is removed. The records
    /// stay in the log: with a binary that reads them, `orders rebuild` writes their views.
    Records {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        // Last: the backend's AWS options set a help heading that would also take the ones above.
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Delete the dead letters dead-lettered longer ago than --older-than (SQLite only: the
    /// local `dead_letters` table also keeps only the newest 10,000, dropping the oldest; on AWS
    /// the work DLQ drops a message itself once its retention period — 14 days in the
    /// template — has passed). An order whose message is pruned is not lost: while it is
    /// pending, `orders reconcile` finds it. Prints how many were deleted.
    Prune {
        /// Delete what was dead-lettered before now minus this: e.g. 7d, 12h, 30m.
        #[arg(long, value_parser = parse_duration)]
        older_than: std::time::Duration,
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
        DlqCommand::Records { backend, json } => {
            let records = list_set_aside(&open_set_aside(&backend, "dlq records").await?).await?;
            for record in &records {
                if json {
                    println!("{}", record_json(record));
                } else {
                    println!("{}", record.line());
                }
            }
            eprintln!("{} stream records set aside", records.len());
        }
        DlqCommand::Prune {
            older_than,
            backend,
        } => {
            if backend.backend == Backend::Aws {
                return Err(CliError::Config(
                    "dlq prune: only the local dead_letters table is pruned; the SQS work DLQ \
                     drops messages after its MessageRetentionPeriod (delete one by hand with \
                     `aws sqs delete-message`)"
                        .into(),
                ));
            }
            let before = chrono::Duration::from_std(older_than)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
                .ok_or_else(|| CliError::Config("dlq prune: --older-than is too long".into()))?;
            let db = open_existing_sqlite(&backend.data, "dlq prune")?;
            let queue = db.work_queue_default();
            let pruned = queue.prune_dead_letters(before).await?;
            let left = queue.dead_letter_count().await?;
            println!("pruned {pruned} dead letters; {left} left");
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

/// One entry of `orders dlq records`, on either backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetAsideEntry {
    /// The SQS message id, or `failed_events:<id>` locally.
    pub id: String,
    /// When it was set aside (RFC 3339).
    pub at: String,
    pub failure: StreamFailure,
}

impl SetAsideEntry {
    fn line(&self) -> String {
        format!("{}\t{}\t{}", self.id, self.at, self.failure)
    }
}

/// Every record set aside, oldest first: `failed_events` page by page, or the stream failure
/// queue.
pub(crate) async fn list_set_aside(from: &SetAsideRecords) -> Result<Vec<SetAsideEntry>, CliError> {
    match from {
        SetAsideRecords::Sqlite(db) => {
            let mut entries = Vec::new();
            let mut after = 0;
            loop {
                let page = db.failed_events(after, 500).await?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (id, f) in page {
                    entries.push(SetAsideEntry {
                        id: format!("failed_events:{id}"),
                        at: f.failed_at.clone(),
                        failure: StreamFailure::SetAside(SetAsideRecord {
                            set_aside_by: f.consumer,
                            sequence_number: Some(f.seq.to_string()),
                            event_source_arn: None,
                            order_id: f.order_id,
                            version: None,
                            event_id: f.event_id,
                            reason: f.reason,
                            at: f.failed_at,
                        }),
                    });
                }
            }
            Ok(entries)
        }
        SetAsideRecords::Aws(queue) => Ok(queue
            .list()
            .await?
            .into_iter()
            .map(|m| SetAsideEntry {
                id: m.message_id,
                at: m.at,
                failure: m.failure,
            })
            .collect()),
    }
}

fn record_json(entry: &SetAsideEntry) -> serde_json::Value {
    match &entry.failure {
        StreamFailure::SetAside(r) => serde_json::json!({
            "id": entry.id,
            "kind": "setAside",
            "setAsideBy": r.set_aside_by,
            "sequenceNumber": r.sequence_number,
            "orderId": r.order_id,
            "version": r.version,
            "eventId": r.event_id,
            "reason": r.reason,
            "at": r.at,
        }),
        StreamFailure::Discarded(b) => serde_json::json!({
            "id": entry.id,
            "kind": "discardedBatch",
            "functionArn": b.function_arn,
            "condition": b.condition,
            "shardId": b.shard_id,
            "startSequenceNumber": b.start_sequence_number,
            "endSequenceNumber": b.end_sequence_number,
            "batchSize": b.batch_size,
            "at": entry.at,
        }),
        StreamFailure::Unknown(body) => serde_json::json!({
            "id": entry.id,
            "kind": "unknown",
            "body": body,
            "at": entry.at,
        }),
    }
}
