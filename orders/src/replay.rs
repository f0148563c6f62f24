//! `orders replay`: time travel. One order's status record as it was at a moment (or at a
//! version), or every order's status counts and completed totals as of a moment — folded from
//! the log order by order, so memory stays bounded whatever its size.
//!
//! Every order is walked with [`histories`]. On SQLite whole histories are read a page of
//! about 10,000 events at a time in order-id order (a range read of the `(order_id, version)`
//! index); on DynamoDB the order ids come from [`OrderScan`] (key-only parallel Scan segments)
//! and each history from [`EventStore::load`] (a Query per order). What is held at once: two
//! pages of histories on SQLite; on DynamoDB a page of ids per segment plus a channel of 1,000
//! ids and at most `--concurrency` histories; and the result — four counters and one total per
//! currency here, per bucket for `orders stats`. Nothing grows with the number of orders or
//! events.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use events_schema::{EventEnvelope, OrderId, OrderStatus, OrderStatusRecord, OrderView};
use futures::stream::BoxStream;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use order_adapters_sqlite::SqliteEventStore;
use order_ports::{EventStore, OrderScan, StoreError};

use crate::backend::{open_log_and_view, BackendArgs};
use crate::dlq::parse_order_id;
use crate::walk::all_orders;
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

/// Where an order's history is cut.
#[derive(Debug, Clone, Copy)]
enum Cut {
    AsOf(DateTime<Utc>),
    AtVersion(u32),
}

impl Cut {
    /// The prefix of `events` (in version order) that had happened by then.
    fn prefix(self, events: &[EventEnvelope]) -> &[EventEnvelope] {
        let kept = match self {
            Cut::AsOf(t) => events.iter().take_while(|e| e.occurred_at <= t).count(),
            Cut::AtVersion(n) => events.iter().take_while(|e| e.version.get() <= n).count(),
        };
        &events[..kept]
    }
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
        (None, Cut::AsOf(as_of)) => {
            let local = log.local.as_ref().map(|db| db.event_store());
            replay_all(
                log.events,
                log.scan,
                local,
                as_of,
                args.concurrency,
                args.json,
            )
            .await
        }
        (None, Cut::AtVersion(_)) => Err(CliError::Config(
            "replay: --at-version needs --order".into(),
        )),
    }
}

async fn replay_order(
    events: &dyn EventStore,
    id: OrderId,
    cut: Cut,
    json: bool,
) -> Result<ExitCode, CliError> {
    let history = events.load(id).await.map_err(|source| CliError::Order {
        order_id: id,
        source,
    })?;
    let Some(first) = history.first() else {
        return Err(CliError::Config(format!("order {id} is not in the log")));
    };
    let view = OrderView::fold(cut.prefix(&history))
        .map_err(|e| CliError::Config(format!("order {id}: its history does not fold: {e}")))?;
    let Some(view) = view else {
        // Only a time can come before version 1.
        eprintln!(
            "order {id} did not exist yet: its first event occurred at {}",
            show_time(first.occurred_at)
        );
        return Ok(ExitCode::from(NOT_YET));
    };
    let record = OrderStatusRecord::from(&view);
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

/// Every order as of a moment.
#[derive(Debug, Default)]
struct Summary {
    orders: u64,
    by_status: [u64; 5],
    /// Minor units of the COMPLETED orders, per currency (i128: no sum of i64 totals overflows).
    totals: BTreeMap<String, i128>,
    /// Orders left out because their history could not be read or folded.
    skipped: u64,
}

const STATUSES: [OrderStatus; 5] = [
    OrderStatus::Received,
    OrderStatus::Processing,
    OrderStatus::Completed,
    OrderStatus::Failed,
    OrderStatus::Cancelled,
];

fn status_index(s: OrderStatus) -> usize {
    match s {
        OrderStatus::Received => 0,
        OrderStatus::Processing => 1,
        OrderStatus::Completed => 2,
        OrderStatus::Failed => 3,
        OrderStatus::Cancelled => 4,
    }
}

impl Summary {
    fn add(&mut self, view: &OrderView) {
        self.orders += 1;
        self.by_status[status_index(view.status)] += 1;
        if view.status == OrderStatus::Completed {
            *self
                .totals
                .entry(view.currency.as_str().to_owned())
                .or_default() += i128::from(view.total);
        }
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
    events: Arc<dyn EventStore>,
    scan: Arc<dyn OrderScan>,
    local: Option<SqliteEventStore>,
    as_of: DateTime<Utc>,
    concurrency: usize,
    json: bool,
) -> Result<ExitCode, CliError> {
    let bar = progress(scan.as_ref()).await?;
    let mut summary = Summary::default();
    let mut histories = std::pin::pin!(histories(events, scan, local, concurrency));
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
                received: summary.by_status[0],
                processing: summary.by_status[1],
                completed: summary.by_status[2],
                failed: summary.by_status[3],
                cancelled: summary.by_status[4],
            },
            totals: &summary.totals,
        };
        let line = serde_json::to_string(&out)
            .map_err(|e| CliError::Config(format!("cannot write the summary as JSON: {e}")))?;
        println!("{line}");
    } else {
        println!("as of {}: {} orders", show_time(as_of), summary.orders);
        for s in STATUSES {
            println!(
                "  {:<12}{:>12}",
                s.as_str(),
                summary.by_status[status_index(s)]
            );
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

/// One order's whole history, or why it cannot be read (an undecodable event: the caller
/// reports it and goes on).
pub(crate) type History = (OrderId, Result<Vec<EventEnvelope>, String>);

/// Every order's history, in no particular order: memory holds a few pages of ids and at most
/// `concurrency` histories. On SQLite (`local`) whole histories are read a page at a time in
/// order-id order instead, one range read per page rather than one query per order. A failure
/// to read the log (other than an undecodable event) ends the stream with an error.
pub(crate) fn histories(
    events: Arc<dyn EventStore>,
    scan: Arc<dyn OrderScan>,
    local: Option<SqliteEventStore>,
    concurrency: usize,
) -> BoxStream<'static, Result<History, CliError>> {
    if let Some(store) = local {
        return local_histories(store);
    }
    all_orders(scan)
        .map(move |id| {
            let events = events.clone();
            async move {
                let id = id?;
                match events.load(id).await {
                    Ok(history) => Ok((id, Ok(history))),
                    Err(StoreError::Corrupt(reason)) => Ok((id, Err(reason))),
                    Err(source) => Err(CliError::Order {
                        order_id: id,
                        source,
                    }),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .boxed()
}

/// Events read per page by [`local_histories`].
const LOCAL_PAGE_EVENTS: usize = 10_000;

fn local_histories(store: SqliteEventStore) -> BoxStream<'static, Result<History, CliError>> {
    // The next page is read while the caller folds this one.
    crate::walk::produced(2, |tx| async move {
        let mut after = None;
        loop {
            let page = store
                .histories_after(after, LOCAL_PAGE_EVENTS)
                .await
                .map_err(CliError::from);
            let (histories, next) = match page {
                Ok(page) => (Ok(page.histories), page.next),
                Err(e) => (Err(e), None),
            };
            if tx.send(histories).await.is_err() {
                return;
            }
            match next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    })
    .flat_map(|page| match page {
        Ok(histories) => futures::stream::iter(histories.into_iter().map(Ok)).left_stream(),
        Err(e) => futures::stream::iter([Err(e)]).right_stream(),
    })
    .boxed()
}

/// A bar of the log's events on stderr when it is a terminal; hidden (and the events not
/// counted: on DynamoDB that is a whole extra Scan) otherwise.
pub(crate) async fn progress(scan: &dyn OrderScan) -> Result<ProgressBar, CliError> {
    if !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    let total = scan.count_events().await?;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{wide_bar} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

/// Parses an RFC 3339 time given to `flag`; one clear line otherwise.
pub(crate) fn parse_time(flag: &str, s: &str) -> Result<DateTime<Utc>, CliError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            CliError::Config(format!(
                "{flag}: {s:?} is not an RFC 3339 time such as 2025-03-01T12:00:00Z ({e})"
            ))
        })
}

/// A time as shown to the user: UTC, with as many fractional digits as it has.
pub(crate) fn show_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{CorrelationId, OrderEvent, OrderRequest, Version};

    fn at(s: &str) -> DateTime<Utc> {
        parse_time("t", s).expect("a time")
    }

    fn history() -> Vec<EventEnvelope> {
        let order = OrderRequest::validate(&serde_json::json!({
            "customerId": "c",
            "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}],
        }))
        .expect("valid");
        let id = OrderId::new_random();
        let c = CorrelationId::generate();
        let v = |n| Version::new(n).expect("version");
        vec![
            EventEnvelope::at(
                id,
                v(1),
                c.clone(),
                OrderEvent::OrderReceived(order),
                at("2025-01-01T10:00:00Z"),
            ),
            EventEnvelope::at(
                id,
                v(2),
                c.clone(),
                OrderEvent::OrderProcessingStarted,
                at("2025-01-01T10:00:01Z"),
            ),
            EventEnvelope::at(
                id,
                v(3),
                c,
                OrderEvent::OrderCompleted { total: 100 },
                at("2025-01-01T10:00:02Z"),
            ),
        ]
    }

    #[test]
    fn a_cut_at_a_time_keeps_the_events_that_occurred_at_or_before_it() {
        let h = history();
        let kept = |t: &str| Cut::AsOf(at(t)).prefix(&h).len();
        assert_eq!(kept("2025-01-01T09:59:59.999Z"), 0);
        assert_eq!(kept("2025-01-01T10:00:00Z"), 1);
        assert_eq!(kept("2025-01-01T10:00:01.5Z"), 2);
        assert_eq!(kept("2025-01-01T12:00:00+02:00"), 1);
        assert_eq!(kept("2030-01-01T00:00:00Z"), 3);
    }

    #[test]
    fn a_cut_stops_at_the_first_later_event_even_if_a_clock_went_back_after_it() {
        let mut h = history();
        h[2].occurred_at = at("2025-01-01T09:00:00Z");
        // Version 3 claims an earlier time than version 2, which is after the cut: keeping it
        // would leave a gap in the versions.
        assert_eq!(Cut::AsOf(at("2025-01-01T10:00:00.5Z")).prefix(&h).len(), 1);
    }

    #[test]
    fn a_cut_at_a_version_keeps_versions_up_to_it() {
        let h = history();
        assert_eq!(Cut::AtVersion(2).prefix(&h).len(), 2);
        assert_eq!(Cut::AtVersion(9).prefix(&h).len(), 3);
    }

    #[test]
    fn a_time_that_is_not_rfc_3339_is_one_clear_error() {
        let e = parse_time("--as-of", "yesterday").expect_err("not a time");
        let msg = e.to_string();
        assert!(
            msg.starts_with("--as-of: \"yesterday\" is not an RFC 3339 time"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
    }

    #[test]
    fn the_summary_counts_every_status_and_totals_only_completed_orders() {
        let h = history();
        let mut s = Summary::default();
        for cut in [
            "2025-01-01T10:00:00Z",
            "2025-01-01T10:00:01Z",
            "2025-01-01T11:00:00Z",
        ] {
            let view = OrderView::fold(Cut::AsOf(at(cut)).prefix(&h))
                .expect("folds")
                .expect("exists");
            s.add(&view);
        }
        assert_eq!(s.orders, 3);
        assert_eq!(s.by_status, [1, 1, 1, 0, 0]);
        assert_eq!(s.totals.get("USD"), Some(&100));
    }
}
