//! `orders rebuild`: recomputes the status view from the log.
//!
//! Each order's history is folded and written with the projector's own forward-only upsert,
//! so a projector running at the same time is never overwritten by older state, and a rebuild
//! interrupted and run again ends in the same table. What a forward-only write cannot fix — a
//! view *ahead* of its log, or one that disagrees with it at the same version — is reported and
//! left alone unless `--force`, which replaces it with a compare-and-set on the version it
//! read (so a projector that moves the order on meanwhile still wins).

use std::process::ExitCode;

use events_schema::OrderId;
use futures::StreamExt;
use order_history::all_orders;
use order_ports::reproject::{fold_log, reproject, FoldedLog};
use order_ports::Upserted;

use crate::backend::{open_log_and_view, BackendArgs, LogAndView};
use crate::flags::parse_order_id;
use crate::progress::events_bar;
use crate::CliError;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Output: one line per order that could not be rebuilt (`order <id>: <why>`), then the summary \
`rebuilt N orders: W written, F forced, U unchanged, K problems`; exit code 1 if K > 0. A \
progress bar (events/s, ETA) is drawn on stderr when it is a terminal.

Forward-only: a view behind its log (or missing) is written; a view ahead of its log or \
disagreeing with it at the same version is a problem that only --force repairs.")]
pub struct RebuildArgs {
    /// Only this order.
    #[arg(long, value_parser = parse_order_id)]
    order: Option<OrderId>,
    /// Also replace a view that is ahead of its log or disagrees with it at the same version
    /// (conditional on the version read, so concurrent projection still wins).
    #[arg(long)]
    force: bool,
    /// Orders rebuilt at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

/// What happened to one order.
enum Outcome {
    Written,
    Forced,
    Unchanged,
    Problem(String),
}

pub async fn rebuild(args: RebuildArgs) -> Result<ExitCode, CliError> {
    let log = open_log_and_view(&args.backend, "rebuild").await?;
    let log = &log;
    let force = args.force;
    let (mut written, mut forced, mut unchanged, mut problems, mut orders) = (0, 0, 0, 0, 0u64);
    let mut tally = |id: OrderId, outcome: Outcome| {
        orders += 1;
        match outcome {
            Outcome::Written => written += 1,
            Outcome::Forced => forced += 1,
            Outcome::Unchanged => unchanged += 1,
            Outcome::Problem(why) => {
                problems += 1;
                println!("order {id}: {why}");
            }
        }
    };
    if let Some(id) = args.order {
        let (outcome, events) = rebuild_order(log, id, force).await?;
        if events == 0 {
            return Err(CliError::Config(format!("order {id} has no events")));
        }
        tally(id, outcome);
    } else {
        let total = log.scan.count_events().await?;
        let bar = events_bar(Some(total));
        let mut results = all_orders(log.scan.clone())
            .map(|id| async move {
                let id = id?;
                let (outcome, events) = rebuild_order(log, id, force).await?;
                Ok::<_, CliError>((id, outcome, events))
            })
            .buffer_unordered(args.concurrency.max(1));
        while let Some(result) = results.next().await {
            let (id, outcome, events) = result?;
            bar.inc(events);
            tally(id, outcome);
        }
        bar.finish_and_clear();
    }
    println!(
        "rebuilt {orders} orders: {written} written, {forced} forced, {unchanged} unchanged, \
         {problems} problems"
    );
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Rebuilds one order's view; returns what happened and how many events it has.
async fn rebuild_order(
    log: &LogAndView,
    id: OrderId,
    force: bool,
) -> Result<(Outcome, u64), CliError> {
    let order_error = |source| CliError::Order {
        order_id: id,
        source,
    };
    // The fold and the forward-only write are `order_ports::reproject`'s, shared with the
    // reconciler's repair (ADR 11).
    let (record, count) = match fold_log(log.events.load(id).await).map_err(order_error)? {
        FoldedLog::View { record, events } => (*record, u64::try_from(events).unwrap_or(u64::MAX)),
        FoldedLog::Empty => return Ok((Outcome::Unchanged, 0)),
        FoldedLog::Unfoldable(why) => {
            return Ok((Outcome::Problem(format!("{why}; view left alone")), 1))
        }
    };
    let stored = log.status.get(id).await.map_err(order_error)?;
    let outcome = match stored {
        Some(s) if s == record => Outcome::Unchanged,
        Some(s) if s.version >= record.version => {
            if !force {
                Outcome::Problem(format!(
                    "view at version {} {} vs log at version {} {}: not changed (forward-only); \
                     --force replaces it",
                    s.version,
                    s.status.as_str(),
                    record.version,
                    record.status.as_str()
                ))
            } else {
                match log
                    .repair
                    .replace(&record, s.version)
                    .await
                    .map_err(order_error)?
                {
                    Upserted::Written => Outcome::Forced,
                    Upserted::Stale => Outcome::Problem(
                        "the view changed while it was being replaced: run again".into(),
                    ),
                }
            }
        }
        // Missing or behind: the projector's own write. Stale means someone (the projector)
        // wrote the same or a later version meanwhile: nothing left to do.
        _ => match reproject(log.status.as_ref(), &record)
            .await
            .map_err(order_error)?
        {
            Upserted::Written => Outcome::Written,
            Upserted::Stale => Outcome::Unchanged,
        },
    };
    Ok((outcome, count))
}
