//! `orders reconcile`: repairs the orders whose view has stayed `RECEIVED` or `PROCESSING` too
//! long — re-enqueues them, re-projects them from a terminal log, or sets them aside once when
//! their log cannot be folded (ADR 11) — the scheduled reconciler's run, on demand, on either
//! backend.

use std::process::ExitCode;
use std::time::Duration;

use crate::backend::{open_reconcile_ports, BackendArgs};
use crate::flags::parse_duration;
use crate::CliError;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Output: the summary `N orders pending since before <cutoff> (older than S s): R re-enqueued, P \
re-projected, U unfoldable, A view ahead (set aside)` (or `dry run, nothing done`), then one line \
per order found: `<id>  <status>  v<version>  <updatedAt>  <action>[: <detail>]`, the action \
being re-enqueued (its log is not terminal), re-projected (its log is terminal and the view was \
behind: written from the log, forward-only, as `orders rebuild` does), unfoldable (its log is \
empty, does not decode or does not fold) or view-ahead (its view is pending at or after its \
terminal log's version: only `orders rebuild --force` replaces it). An unfoldable or view-ahead \
order is reported once and set aside: later runs skip it until its view is written again; \
`orders verify` still reports it. With --json, the report as one JSON object instead (cutoff, \
olderThanSeconds, dryRun, orders [{orderId, status, version, updatedAt, action, detail?}], \
reenqueued, reprojected, unfoldable, viewAhead; on a dry run the counts are 0 and each action is \
the one it would take). Exit code 0 when the run went through, 1 with an `error:` line on stderr \
when it could not (an order not repaired stays pending: run it again).

Safe to run at any time, also while the pipeline runs: the processor is idempotent, so an order \
queued twice is processed once, and a re-projection only ever moves a view forward. Orders are \
found through the view's index of pending orders (a partial index on SQLite, the sparse \
`pending` index on DynamoDB), and their histories read with one consistent query each: the \
cost follows what is pending, not the size of the history.")]
pub struct ReconcileArgs {
    /// Repair the orders whose view has not changed for this long: e.g. 90s, 5m, 2h.
    #[arg(long, value_parser = parse_duration)]
    older_than: Duration,
    /// Only list the orders and what it would do with each; change nothing.
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
    let ports = open_reconcile_ports(&args.backend, "reconcile").await?;
    let report = reconciler::reconcile(
        reconciler::Ports {
            events: ports.events.as_ref(),
            status: ports.status.as_ref(),
            repair: ports.repair.as_ref(),
            queue: ports.queue.as_ref(),
        },
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
