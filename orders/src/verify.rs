//! `orders verify`: checks every order against the rules the pipeline promises, streaming the
//! log order by order (bounded memory, bounded concurrency).

use std::process::ExitCode;
use std::time::Duration;

use events_schema::{EventEnvelope, FoldError, OrderId, OrderStatus, OrderStatusRecord, OrderView};
use futures::StreamExt;
use order_history::all_orders;
use order_ports::StoreError;

use crate::backend::{
    open_log_and_view, open_stream_failures_if_named, Backend, BackendArgs, LogAndView,
};
use crate::flags::parse_duration;
use crate::CliError;

/// How long to wait before looking again at a view that is behind its log (a projector that is
/// running may simply not have caught up yet).
const LAG_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Output: one line per problem, `order <id>: <rule>: <detail>` (rules: versions, transition, \
undecodable, view, pending, notified), then `event seq <n>: failed_events: …` for each event a \
local consumer could not decode (on AWS: `stream record <sequence number>: set aside by …` for \
each record the projector or notifier set aside in the stream failure queue, and `stream batch …: \
discarded by the mapping …` for each batch a stream mapping gave up on), then the summary `verified N orders: K problems`. Exit code 0 \
when clean, 1 when there are problems or verify could not run (then an `error:` line on stderr).

Run it on an idle pipeline: a view a moment behind its log is looked at again after a second, \
but an order being processed right now may show as pending or not yet notified.

On DynamoDB the orders are found with key-only parallel Scans of the event table (every order \
with any event, including one whose version 1 is missing), then each history is read with a \
consistent Query.")]
pub struct VerifyArgs {
    /// An order still RECEIVED or PROCESSING after this long (since its last event) is a
    /// problem: e.g. 90s, 5m, 1h.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pending_after: Duration,
    /// Orders checked at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

/// One broken rule of one order.
struct Problem {
    rule: &'static str,
    detail: String,
}

fn problem(rule: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        rule,
        detail: detail.into(),
    }
}

pub async fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let log = open_log_and_view(&args.backend, "verify").await?;
    let log = &log;
    let pending_after = chrono::Duration::from_std(args.pending_after)
        .map_err(|_| CliError::Config("--pending-after is too long".into()))?;
    let mut checks = all_orders(log.scan.clone())
        .map(|id| async move {
            let id = id?;
            let problems = check_order(log, id, pending_after).await?;
            Ok::<_, CliError>((id, problems))
        })
        .buffer_unordered(args.concurrency.max(1));
    let (mut orders, mut problems) = (0u64, 0u64);
    while let Some(checked) = checks.next().await {
        let (id, found) = checked?;
        orders += 1;
        for p in found {
            problems += 1;
            println!("order {id}: {}: {}", p.rule, p.detail);
        }
    }
    if let Some(db) = &log.local {
        let mut after = 0;
        loop {
            let page = db.failed_events(after, 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, f) in page {
                problems += 1;
                println!(
                    "event seq {}: failed_events: the {} skipped it at {} (order {}, event {}): {}",
                    f.seq,
                    f.consumer,
                    f.failed_at,
                    f.order_id.as_deref().unwrap_or("?"),
                    f.event_id.as_deref().unwrap_or("?"),
                    f.reason
                );
            }
        }
    }
    match open_stream_failures_if_named(&args.backend).await {
        Some(queue) => {
            for message in queue.list().await? {
                problems += 1;
                println!("{}", message.failure);
            }
        }
        None if args.backend.backend == Backend::Aws => eprintln!(
            "note: the stream failure queue was not checked (name it with \
             --stream-failure-queue-url or --stack)"
        ),
        None => {}
    }
    println!("verified {orders} orders: {problems} problems");
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn check_order(
    log: &LogAndView,
    id: OrderId,
    pending_after: chrono::Duration,
) -> Result<Vec<Problem>, CliError> {
    let order_error = |source| CliError::Order {
        order_id: id,
        source,
    };
    let events = match log.events.load(id).await {
        Ok(events) => events,
        Err(StoreError::Corrupt(reason)) => return Ok(vec![problem("undecodable", reason)]),
        Err(e) => return Err(order_error(e)),
    };
    let mut problems = Vec::new();
    let gapless = check_versions(&events, &mut problems);
    let view = match OrderView::fold(&events) {
        Ok(view) => view,
        Err(e) => {
            // A gap is already reported; the fold then only says the same thing again.
            let same_as_gap = matches!(
                e,
                FoldError::VersionGap { .. } | FoldError::NotStarted { .. }
            ) && !gapless;
            if !same_as_gap {
                problems.push(problem("transition", e.to_string()));
            }
            return Ok(problems);
        }
    };
    let Some(view) = view else {
        return Ok(problems);
    };
    let expected = OrderStatusRecord::from(&view);
    let mut stored = log.status.get(id).await.map_err(order_error)?;
    if stored.as_ref().is_none_or(|s| s.version < expected.version) {
        tokio::time::sleep(LAG_GRACE).await;
        stored = log.status.get(id).await.map_err(order_error)?;
    }
    match &stored {
        None => problems.push(problem(
            "view",
            format!(
                "missing (the log is at version {} {})",
                expected.version,
                expected.status.as_str()
            ),
        )),
        Some(s) if *s != expected => problems.push(problem(
            "view",
            format!(
                "disagrees with the log: view at version {} {}, log at version {} {}{}",
                s.version,
                s.status.as_str(),
                expected.version,
                expected.status.as_str(),
                if s.version == expected.version && s.status == expected.status {
                    " (other fields differ)"
                } else {
                    ""
                }
            ),
        )),
        Some(_) => {}
    }
    if !view.status.is_terminal() {
        let age = chrono::Utc::now() - view.updated_at;
        if age > pending_after {
            problems.push(problem(
                "pending",
                format!(
                    "{} since {} ({}s, longer than --pending-after)",
                    view.status.as_str(),
                    expected.updated_at,
                    age.num_seconds()
                ),
            ));
        }
    }
    if let (Some(db), OrderStatus::Completed) = (&log.local, view.status) {
        // The notifier publishes the OrderCompleted event, keyed by its event id (unique in the
        // notifications table, so "once" is "at least once" here).
        if let Some(completed) = events.last() {
            if !db.notified(completed.event_id).await.map_err(order_error)? {
                problems.push(problem(
                    "notified",
                    format!(
                        "COMPLETED but event {} was never notified",
                        completed.event_id
                    ),
                ));
            }
        }
    }
    Ok(problems)
}

/// Versions must be exactly 1, 2, …, n. Returns whether they are.
fn check_versions(events: &[EventEnvelope], problems: &mut Vec<Problem>) -> bool {
    let mut expected = 1u32;
    let mut missing = Vec::new();
    for e in events {
        let v = e.version.get();
        while expected < v {
            missing.push(expected);
            expected += 1;
        }
        if v < expected {
            problems.push(problem("versions", format!("version {v} appears twice")));
            return false;
        }
        expected = v + 1;
    }
    if missing.is_empty() {
        return true;
    }
    let found: Vec<String> = events.iter().map(|e| e.version.to_string()).collect();
    let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
    problems.push(problem(
        "versions",
        format!(
            "missing version {} (found {})",
            missing.join(", "),
            found.join(", ")
        ),
    ));
    false
}
