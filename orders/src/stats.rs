//! `orders stats`: per hour or day of receipt, how many orders came in, how they ended, what
//! they brought in, and how long they took — streamed over the log order by order, with a
//! fixed-size estimator for the percentiles, so memory is bounded by the number of buckets (each
//! a few counters, a total per currency and at most 3,776 latency bins), on either backend: the
//! log is walked as [`histories`] says.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use events_schema::{OrderStatus, OrderView};
use futures::StreamExt;

use crate::backend::{open_log_and_view, BackendArgs};
use crate::replay::{histories, parse_time, progress, show_time};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Hour,
    Day,
}

impl By {
    fn seconds(self) -> i64 {
        match self {
            By::Hour => 3600,
            By::Day => 86_400,
        }
    }

    fn name(self) -> &'static str {
        match self {
            By::Hour => "hour",
            By::Day => "day",
        }
    }

    /// The start of the bucket holding `t`, in seconds since the epoch.
    fn start(self, t: DateTime<Utc>) -> i64 {
        let s = t.timestamp();
        s - s.rem_euclid(self.seconds())
    }

    fn label(self, start: i64) -> String {
        let Some(t) = DateTime::from_timestamp(start, 0) else {
            return start.to_string();
        };
        match self {
            By::Hour => t.format("%Y-%m-%d %H:00").to_string(),
            By::Day => t.format("%Y-%m-%d").to_string(),
        }
    }
}

/// The counts of one bucket.
#[derive(Debug, Default)]
struct Bucket {
    received: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    /// Minor units of the completed orders, per currency.
    totals: BTreeMap<String, i128>,
    completion: Latencies,
}

impl Bucket {
    fn add(&mut self, view: &OrderView) {
        self.received += 1;
        match view.status {
            OrderStatus::Completed => {
                self.completed += 1;
                *self
                    .totals
                    .entry(view.currency.as_str().to_owned())
                    .or_default() += i128::from(view.total);
                if let Some(done) = view.completed_at {
                    let ms = (done - view.created_at).num_milliseconds();
                    // A clock that went back between two processes: as good as instant.
                    self.completion.record(u64::try_from(ms).unwrap_or(0));
                }
            }
            OrderStatus::Failed => self.failed += 1,
            OrderStatus::Cancelled => self.cancelled += 1,
            OrderStatus::Received | OrderStatus::Processing => {}
        }
    }

    fn pending(&self) -> u64 {
        self.received - self.completed - self.failed - self.cancelled
    }

    fn to_json(&self, start: Option<String>) -> BucketJson<'_> {
        BucketJson {
            start,
            received: self.received,
            completed: self.completed,
            failed: self.failed,
            cancelled: self.cancelled,
            pending: self.pending(),
            totals: &self.totals,
            completion_ms: self.completion.percentiles(),
        }
    }
}

/// Durations in milliseconds, counted in log-scale bins: one bin per value below 128, then 64
/// bins per power of two (each at most 1/64 of its values wide), so a bucket never holds more
/// than 3,776 counters however many orders it has — held sparsely, only the bins used.
#[derive(Debug, Default)]
struct Latencies {
    bins: BTreeMap<u16, u64>,
    count: u64,
    min: u64,
    max: u64,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const EXACT: u64 = 2 * SUB;

fn bin_of(v: u64) -> u16 {
    if v < EXACT {
        return v as u16;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    let sub = (v >> shift) - SUB;
    (EXACT + u64::from(shift - 1) * SUB + sub) as u16
}

/// The smallest value of a bin and its width.
fn bin_range(bin: u16) -> (u64, u64) {
    let bin = u64::from(bin);
    if bin < EXACT {
        return (bin, 1);
    }
    let k = bin - EXACT;
    let shift = k / SUB + 1;
    ((SUB + k % SUB) << shift, 1 << shift)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
struct Percentiles {
    p50: u64,
    p95: u64,
    p99: u64,
}

impl Latencies {
    fn record(&mut self, ms: u64) {
        if self.count == 0 {
            (self.min, self.max) = (ms, ms);
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.count += 1;
        *self.bins.entry(bin_of(ms)).or_default() += 1;
    }

    fn merge(&mut self, other: &Latencies) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (other.min, other.max);
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        for (bin, n) in &other.bins {
            *self.bins.entry(*bin).or_default() += n;
        }
    }

    /// The value of nearest rank `ceil(q × count)`: the middle of its bin, within the values seen.
    fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bin, n) in &self.bins {
            seen += n;
            if seen >= rank {
                let (low, width) = bin_range(*bin);
                return Some((low + (width - 1) / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    fn percentiles(&self) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(0.50)?,
            p95: self.quantile(0.95)?,
            p99: self.quantile(0.99)?,
        })
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
    let bar = progress(log.scan.as_ref()).await?;
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    let mut skipped = 0u64;
    let mut histories = std::pin::pin!(histories(
        log.events,
        log.scan,
        log.local.as_ref().map(|db| db.event_store()),
        args.concurrency,
    ));
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
        let view = match OrderView::fold(&history) {
            Ok(Some(view)) => view,
            Ok(None) => continue,
            Err(e) => {
                bar.suspend(|| eprintln!("warning: order {id}: does not fold, left out: {e}"));
                skipped += 1;
                continue;
            }
        };
        let received = view.created_at;
        if since.is_some_and(|s| received < s) || until.is_some_and(|u| received >= u) {
            continue;
        }
        buckets
            .entry(args.by.start(received))
            .or_default()
            .add(&view);
    }
    bar.finish_and_clear();

    let mut all = Bucket::default();
    for b in buckets.values() {
        all.received += b.received;
        all.completed += b.completed;
        all.failed += b.failed;
        all.cancelled += b.cancelled;
        for (currency, total) in &b.totals {
            *all.totals.entry(currency.clone()).or_default() += total;
        }
        all.completion.merge(&b.completion);
    }
    if args.json {
        let out = StatsJson {
            by: args.by.name(),
            since: since.map(show_time),
            until: until.map(show_time),
            buckets: buckets
                .iter()
                .map(|(start, b)| {
                    b.to_json(Some(
                        DateTime::from_timestamp(*start, 0)
                            .map(show_time)
                            .unwrap_or_else(|| start.to_string()),
                    ))
                })
                .collect(),
            all: all.to_json(None),
        };
        let line = serde_json::to_string(&out)
            .map_err(|e| CliError::Config(format!("cannot write the stats as JSON: {e}")))?;
        println!("{line}");
    } else {
        print_table(args.by, &buckets, &all);
    }
    if skipped > 0 {
        eprintln!("{skipped} orders left out (see above; `orders verify` says more)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(by: By, buckets: &BTreeMap<i64, Bucket>, all: &Bucket) {
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
    fn every_value_falls_in_a_bin_that_holds_it_and_is_at_most_a_64th_of_it_wide() {
        let mut values: Vec<u64> = (0..5_000).collect();
        values.extend((0..64).map(|k| 1u64 << k));
        values.extend((1..64).map(|k| (1u64 << k) - 1));
        values.push(u64::MAX);
        for v in values {
            let (low, width) = bin_range(bin_of(v));
            assert!(low <= v && v - low < width, "{v} not in [{low}, +{width})");
            if v >= EXACT {
                assert!(width <= v / 64, "{v}: bin of width {width}");
            } else {
                assert_eq!(width, 1);
            }
        }
        assert!(bin_of(u64::MAX) < 3_776);
    }

    #[test]
    fn percentiles_are_exact_for_small_values_and_close_for_large_ones() {
        let mut small = Latencies::default();
        for ms in 1..=100 {
            small.record(ms);
        }
        assert_eq!(
            small.percentiles(),
            Some(Percentiles {
                p50: 50,
                p95: 95,
                p99: 99
            })
        );
        let mut large = Latencies::default();
        for ms in 1..=100_000u64 {
            large.record(ms * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.95, 665_000.0), (0.99, 693_000.0)] {
            let got = large.quantile(q).expect("some") as f64;
            assert!(
                (got - exact).abs() / exact < 1.0 / 64.0,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merged_latencies_answer_as_if_recorded_together() {
        let (mut a, mut b, mut both) = (
            Latencies::default(),
            Latencies::default(),
            Latencies::default(),
        );
        for ms in [5, 900, 12_000, 3] {
            a.record(ms);
            both.record(ms);
        }
        for ms in [70, 1_000_000, 44] {
            b.record(ms);
            both.record(ms);
        }
        a.merge(&b);
        assert_eq!(a.percentiles(), both.percentiles());
        assert_eq!((a.min, a.max, a.count), (3, 1_000_000, 7));
        assert_eq!(Latencies::default().percentiles(), None);
    }

    #[test]
    fn buckets_start_at_the_hour_or_the_day_in_utc() {
        let t = parse_time("t", "2025-03-01T13:45:10.5+01:00").expect("time");
        assert_eq!(By::Hour.label(By::Hour.start(t)), "2025-03-01 12:00");
        assert_eq!(By::Day.label(By::Day.start(t)), "2025-03-01");
        let before_epoch = parse_time("t", "1969-12-31T23:30:00Z").expect("time");
        assert_eq!(By::Day.label(By::Day.start(before_epoch)), "1969-12-31");
    }

    #[test]
    fn durations_read_in_the_unit_that_suits_them() {
        assert_eq!(show_ms(812), "812ms");
        assert_eq!(show_ms(1_250), "1.25s");
        assert_eq!(show_ms(750_000), "12.5m");
        assert_eq!(show_ms(3 * 3_600_000), "3.0h");
    }
}
