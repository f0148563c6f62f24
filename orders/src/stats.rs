//! `orders stats`, wired: the flags, the walk's warnings and the output. The buckets and the
//! percentile estimator are `order_history::stats`; the log is walked as
//! [`LogAndView::histories`](crate::backend::LogAndView::histories) says.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::DateTime;
use events_schema::OrderView;
use futures::StreamExt;
use order_history::{Bucket, Percentiles, StatsByReceipt};

use crate::backend::{open_log_and_view, BackendArgs};
use crate::flags::{parse_time, show_time};
use crate::progress::log_bar;
use crate::CliError;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Orders are put in the bucket of their OrderReceived's occurredAt (UTC); --since is inclusive, \
--until exclusive. For each bucket, and for all of them (`all`): received, then how many of \
those are COMPLETED, FAILED and CANCELLED now, pending (the rest: RECEIVED or PROCESSING), the \
completed orders' totals per currency (minor units), and the time from OrderReceived to \
OrderCompleted (p50, p95, p99; exact below 128 ms, within 1.6 % above).

With --json, one object: {\"by\": \"day\", \"since\": T|null, \"until\": T|null, \"buckets\": \
[{\"start\": T, \"received\": n, \"completed\": n, \"failed\": n, \"cancelled\": n, \"pending\": n, \
\"totals\": {\"EUR\": n}, \"completionMs\": {\"p50\": n, \"p95\": n, \"p99\": n}|null}], \
\"all\": {the same without start}}.

An order whose history cannot be read or folded is reported on stderr and left out; the exit \
code is then 1. Reads only: safe while `orders serve` runs on the same file. A progress bar is \
drawn on stderr when it is a terminal.")]
pub struct StatsArgs {
    /// Only orders received at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only orders received before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Bucket size.
    #[arg(long, value_enum, default_value_t = By::Day)]
    by: By,
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

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Hour,
    Day,
}

impl From<By> for order_history::By {
    fn from(by: By) -> Self {
        match by {
            By::Hour => Self::Hour,
            By::Day => Self::Day,
        }
    }
}

/// `bucket` as its JSON object.
fn bucket_json(bucket: &Bucket, start: Option<String>) -> BucketJson<'_> {
    BucketJson {
        start,
        received: bucket.received,
        completed: bucket.completed,
        failed: bucket.failed,
        cancelled: bucket.cancelled,
        pending: bucket.pending(),
        totals: &bucket.totals,
        completion_ms: bucket.completion.percentiles(),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BucketJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    received: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    pending: u64,
    totals: &'a BTreeMap<String, i128>,
    completion_ms: Option<Percentiles>,
}

#[derive(serde::Serialize)]
struct StatsJson<'a> {
    by: &'static str,
    since: Option<String>,
    until: Option<String>,
    buckets: Vec<BucketJson<'a>>,
    all: BucketJson<'a>,
}

pub async fn stats(args: StatsArgs) -> Result<ExitCode, CliError> {
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time("--since", t))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time("--until", t))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(CliError::Config(format!(
                "--since {} is not before --until {}",
                show_time(s),
                show_time(u)
            )));
        }
    }
    let log = open_log_and_view(&args.backend, "stats").await?;
    let bar = log_bar(log.scan.as_ref()).await?;
    let mut stats = StatsByReceipt::new(args.by.into(), since, until);
    let mut skipped = 0u64;
    let mut histories = log.histories(args.concurrency);
    while let Some(next) = histories.next().await {
        let (id, history) = next?;
        let history = match history {
            Ok(history) => history,
            Err(reason) => {
                bar.suspend(|| eprintln!("warning: order {id}: unreadable, left out: {reason}"));
                skipped += 1;
                continue;
            }
        };
        bar.inc(u64::try_from(history.len()).unwrap_or(u64::MAX));
        match OrderView::fold(&history) {
            Ok(Some(view)) => stats.add(&view),
            Ok(None) => {}
            Err(e) => {
                bar.suspend(|| eprintln!("warning: order {id}: does not fold, left out: {e}"));
                skipped += 1;
            }
        }
    }
    bar.finish_and_clear();

    let all = stats.all();
    if args.json {
        let out = StatsJson {
            by: stats.by.name(),
            since: since.map(show_time),
            until: until.map(show_time),
            buckets: stats
                .buckets
                .iter()
                .map(|(start, b)| {
                    bucket_json(
                        b,
                        Some(
                            DateTime::from_timestamp(*start, 0)
                                .map(show_time)
                                .unwrap_or_else(|| start.to_string()),
                        ),
                    )
                })
                .collect(),
            all: bucket_json(&all, None),
        };
        let line = serde_json::to_string(&out)
            .map_err(|e| CliError::Config(format!("cannot write the stats as JSON: {e}")))?;
        println!("{line}");
    } else {
        print_table(stats.by, &stats.buckets, &all);
    }
    if skipped > 0 {
        eprintln!("{skipped} orders left out (see above; `orders verify` says more)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(by: order_history::By, buckets: &BTreeMap<i64, Bucket>, all: &Bucket) {
    let first = format!("{} (UTC)", by.name());
    println!(
        "{first:<17}{:>10}{:>11}{:>8}{:>11}{:>9}{:>9}{:>9}{:>9}  completed totals (minor units)",
        "received", "completed", "failed", "cancelled", "pending", "p50", "p95", "p99"
    );
    let row = |label: String, b: &Bucket| {
        let p = |q| {
            b.completion
                .quantile(q)
                .map_or_else(|| "-".to_owned(), show_ms)
        };
        let totals: Vec<String> = b.totals.iter().map(|(c, t)| format!("{c} {t}")).collect();
        println!(
            "{label:<17}{:>10}{:>11}{:>8}{:>11}{:>9}{:>9}{:>9}{:>9}  {}",
            b.received,
            b.completed,
            b.failed,
            b.cancelled,
            b.pending(),
            p(0.50),
            p(0.95),
            p(0.99),
            if totals.is_empty() {
                "-".to_owned()
            } else {
                totals.join(", ")
            }
        );
    };
    for (start, b) in buckets {
        row(by.label(*start), b);
    }
    row("all".to_owned(), all);
}

/// `812ms`, `1.25s`, `12.5m`, `3.2h`.
fn show_ms(ms: u64) -> String {
    let ms_f = ms as f64;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.2}s", ms_f / 1e3),
        60_000..3_600_000 => format!("{:.1}m", ms_f / 6e4),
        _ => format!("{:.1}h", ms_f / 3.6e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_unit_that_suits_them() {
        assert_eq!(show_ms(812), "812ms");
        assert_eq!(show_ms(1_250), "1.25s");
        assert_eq!(show_ms(750_000), "12.5m");
        assert_eq!(show_ms(3 * 3_600_000), "3.0h");
    }
}
