//! `orders reconcile`: puts the orders whose view has stayed `RECEIVED` or `PROCESSING` too
//! long back on the work queue — the scheduled reconciler's run, on demand, on either backend.

use std::process::ExitCode;
use std::time::Duration;

use crate::backend::{open_status_and_queue, BackendArgs};
use crate::walk::parse_duration;
use crate::CliError;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Output: the summary `N orders pending since before <cutoff> (older than S s): K re-enqueued` \
(or `dry run, none re-enqueued`), then one line per order found: `<id>  <status>  <updatedAt>`. \
With --json, the report as one JSON object instead (cutoff, olderThanSeconds, dryRun, orders \
[{orderId, status, updatedAt}], reenqueued). Exit code 0 when the run went through, 1 with an \
`error:` line on stderr when it could not (an order not re-enqueued stays pending: run it again).

Safe to run at any time, also while the pipeline runs: the processor is idempotent, so an order \
queued twice is processed once. Orders are found through the view's index of pending orders \
(a partial index on SQLite, the sparse `pending` index on DynamoDB): the cost follows what is \
pending, not the size of the history.")]
pub struct ReconcileArgs {
    /// Re-enqueue the orders whose view has not changed for this long: e.g. 90s, 5m, 2h.
    #[arg(long, value_parser = parse_duration)]
    older_than: Duration,
    /// Only list the orders it would re-enqueue.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

pub async fn reconcile(args: ReconcileArgs) -> Result<ExitCode, CliError> {
    let (status, queue) = open_status_and_queue(&args.backend, "reconcile").await?;
    let report = reconciler::reconcile(
        status.as_ref(),
        queue.as_ref(),
        args.older_than,
        args.dry_run,
        chrono::Utc::now(),
    )
    .await?;
    if args.json {
        let json = serde_json::to_string(&report)
            .map_err(|e| CliError::Config(format!("internal: the report as JSON: {e}")))?;
        println!("{json}");
    } else {
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
