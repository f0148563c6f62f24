//! `orders replay`: time travel, wired. The flags, the output and the walk's warnings are
//! here; the cut, the fold and the summary are `order_history::replay`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use events_schema::{OrderId, OrderStatus, OrderStatusRecord, OrderView};
use futures::StreamExt;
use order_history::replay::STATUSES;
use order_history::{order_as_of, AsOf, Cut, Summary};

use crate::backend::{open_log_and_view, BackendArgs, LogAndView};
use crate::flags::{parse_order_id, parse_time, show_time};
use crate::progress::log_bar;
use crate::CliError;

/// The exit code of `replay --order` when the order did not exist yet at `--as-of`.
pub const NOT_YET: u8 = 3;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
With --order: the order's status record (the JSON of GET /orders/{id} with --json, one field \
per line otherwise) folded from its events up to --as-of (or --at-version). Exit code 3, and \
nothing on stdout, when the order did not exist yet at that time.

Without --order: every order as of that time. With --json, one object: \
{\"asOf\": T, \"orders\": N, \"byStatus\": {\"RECEIVED\": n, \"PROCESSING\": n, \"COMPLETED\": n, \
\"FAILED\": n}, \"totals\": {\"<currency>\": <minor units of the COMPLETED orders>}}. \
An order whose history cannot be read or folded is reported on stderr and left out; the exit \
code is then 1.

An order's history is cut before its first event that occurred after --as-of (events are in \
version order, and their times normally never go back). Reads only: safe while `orders serve` \
runs on the same file. A progress bar is drawn on stderr when it is a terminal.")]
pub struct ReplayArgs {
    /// Fold only the events that occurred at or before this time (RFC 3339, e.g.
    /// 2025-03-01T12:00:00Z).
    #[arg(long, value_name = "TIME", required_unless_present = "at_version")]
    as_of: Option<String>,
    /// Only this order: its status record as it was.
    #[arg(long, value_parser = parse_order_id)]
    order: Option<OrderId>,
    /// With --order, instead of a time: fold versions 1 to N.
    #[arg(long, value_name = "N", requires = "order", conflicts_with = "as_of")]
    at_version: Option<u32>,
    /// JSON on stdout instead of a readable table.
    #[arg(long)]
    json: bool,
    /// Orders read at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

pub async fn replay(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let cut = match (&args.as_of, args.at_version) {
        (_, Some(0)) => return Err(CliError::Config("--at-version: versions start at 1".into())),
        (_, Some(n)) => Cut::AtVersion(n),
        (Some(t), None) => Cut::AsOf(parse_time("--as-of", t)?),
        (None, None) => {
            return Err(CliError::Config(
                "replay: give --as-of TIME (or --order ID --at-version N)".into(),
            ))
        }
    };
    let log = open_log_and_view(&args.backend, "replay").await?;
    match (args.order, cut) {
        (Some(id), cut) => replay_order(log.events.as_ref(), id, cut, args.json).await,
        (None, Cut::AsOf(as_of)) => replay_all(&log, as_of, args.concurrency, args.json).await,
        (None, Cut::AtVersion(_)) => Err(CliError::Config(
            "replay: --at-version needs --order".into(),
        )),
    }
}

async fn replay_order(
    events: &dyn order_ports::EventStore,
    id: OrderId,
    cut: Cut,
    json: bool,
) -> Result<ExitCode, CliError> {
    let record = match order_as_of(events, id, cut).await? {
        AsOf::Record(record) => record,
        AsOf::NotYet { first_at } => {
            eprintln!(
                "order {id} did not exist yet: its first event occurred at {}",
                show_time(first_at)
            );
            return Ok(ExitCode::from(NOT_YET));
        }
    };
    if json {
        let line = serde_json::to_string(&record)
            .map_err(|e| CliError::Config(format!("cannot write the record as JSON: {e}")))?;
        println!("{line}");
    } else {
        print_record(&record);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_record(r: &OrderStatusRecord) {
    let mut fields = vec![
        ("order", r.order_id.to_string()),
        ("status", r.status.as_str().to_owned()),
        ("version", r.version.to_string()),
        ("customer", r.customer_id.as_str().to_owned()),
        ("items", r.item_count.to_string()),
        (
            "total",
            format!("{} {} (minor units)", r.total, r.currency.as_str()),
        ),
        ("created", r.created_at.clone()),
        ("updated", r.updated_at.clone()),
    ];
    if let Some(t) = &r.completed_at {
        fields.push(("completed", t.clone()));
    }
    if let Some(why) = &r.failure_reason {
        fields.push(("failure", why.clone()));
    }
    for (name, value) in fields {
        println!("{name:<10} {value}");
    }
}

/// In the order of the lifecycle (a map would sort them by name).
#[derive(serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct ByStatus {
    received: u64,
    processing: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryJson<'a> {
    as_of: String,
    orders: u64,
    by_status: ByStatus,
    totals: &'a BTreeMap<String, i128>,
}

async fn replay_all(
    log: &LogAndView,
    as_of: DateTime<Utc>,
    concurrency: usize,
    json: bool,
) -> Result<ExitCode, CliError> {
    let bar = log_bar(log.scan.as_ref()).await?;
    let mut summary = Summary::default();
    let mut histories = log.histories(concurrency);
    while let Some(next) = histories.next().await {
        let (id, history) = next?;
        let history = match history {
            Ok(history) => history,
            Err(reason) => {
                bar.suspend(|| eprintln!("warning: order {id}: unreadable, left out: {reason}"));
                summary.skipped += 1;
                continue;
            }
        };
        bar.inc(u64::try_from(history.len()).unwrap_or(u64::MAX));
        match OrderView::fold(Cut::AsOf(as_of).prefix(&history)) {
            Ok(Some(view)) => summary.add(&view),
            Ok(None) => {}
            Err(e) => {
                bar.suspend(|| eprintln!("warning: order {id}: does not fold, left out: {e}"));
                summary.skipped += 1;
            }
        }
    }
    bar.finish_and_clear();
    if json {
        let out = SummaryJson {
            as_of: show_time(as_of),
            orders: summary.orders,
            by_status: ByStatus {
                received: summary.count(OrderStatus::Received),
                processing: summary.count(OrderStatus::Processing),
                completed: summary.count(OrderStatus::Completed),
                failed: summary.count(OrderStatus::Failed),
                cancelled: summary.count(OrderStatus::Cancelled),
            },
            totals: &summary.totals,
        };
        let line = serde_json::to_string(&out)
            .map_err(|e| CliError::Config(format!("cannot write the summary as JSON: {e}")))?;
        println!("{line}");
    } else {
        println!("as of {}: {} orders", show_time(as_of), summary.orders);
        for s in STATUSES {
            println!("  {:<12}{:>12}", s.as_str(), summary.count(s));
        }
        println!("completed totals (minor units):");
        if summary.totals.is_empty() {
            println!("  none");
        }
        for (currency, total) in &summary.totals {
            println!("  {currency:<12}{total:>12}");
        }
    }
    if summary.skipped > 0 {
        eprintln!(
            "{} orders left out (see above; `orders verify` says more)",
            summary.skipped
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
