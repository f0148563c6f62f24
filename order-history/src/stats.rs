//! Stats: per hour or day of receipt, how many orders came in, how they ended, what they
//! brought in, and how long they took — with a fixed-size estimator for the percentiles, so
//! memory is bounded by the number of buckets (each a few counters, a total per currency and at
//! most 3,776 latency bins), whatever the size of the log walked (see [`walk`](crate::walk)).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events_schema::{OrderStatus, OrderView};

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Hour,
    Day,
}

impl By {
    pub fn seconds(self) -> i64 {
        match self {
            By::Hour => 3600,
            By::Day => 86_400,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            By::Hour => "hour",
            By::Day => "day",
        }
    }

    /// The start of the bucket holding `t`, in seconds since the epoch.
    pub fn start(self, t: DateTime<Utc>) -> i64 {
        let s = t.timestamp();
        s - s.rem_euclid(self.seconds())
    }

    /// The bucket starting at `start` as shown in a table.
    pub fn label(self, start: i64) -> String {
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
pub struct Bucket {
    pub received: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Minor units of the completed orders, per currency.
    pub totals: BTreeMap<String, i128>,
    /// From OrderReceived to OrderCompleted.
    pub completion: Latencies,
}

impl Bucket {
    /// Counts `view` (an order received in this bucket, as it is now).
    pub fn add(&mut self, view: &OrderView) {
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

    /// Received and not yet completed, failed or cancelled.
    pub fn pending(&self) -> u64 {
        self.received - self.completed - self.failed - self.cancelled
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Bucket) {
        self.received += other.received;
        self.completed += other.completed;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        for (currency, total) in &other.totals {
            *self.totals.entry(currency.clone()).or_default() += total;
        }
        self.completion.merge(&other.completion);
    }
}

/// Durations in milliseconds, counted in log-scale bins: one bin per value below 128, then 64
/// bins per power of two (each at most 1/64 of its values wide), so a bucket never holds more
/// than 3,776 counters however many orders it has — held sparsely, only the bins used.
#[derive(Debug, Default)]
pub struct Latencies {
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
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

impl Latencies {
    pub fn record(&mut self, ms: u64) {
        if self.count == 0 {
            (self.min, self.max) = (ms, ms);
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.count += 1;
        *self.bins.entry(bin_of(ms)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Latencies) {
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
    pub fn quantile(&self, q: f64) -> Option<u64> {
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

    pub fn percentiles(&self) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(0.50)?,
            p95: self.quantile(0.95)?,
            p99: self.quantile(0.99)?,
        })
    }
}

/// Orders counted in the bucket of their receipt, those received in `[since, until)` only.
#[derive(Debug)]
pub struct StatsByReceipt {
    pub by: By,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// By the start of the bucket, in seconds since the epoch.
    pub buckets: BTreeMap<i64, Bucket>,
}

impl StatsByReceipt {
    pub fn new(by: By, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        Self {
            by,
            since,
            until,
            buckets: BTreeMap::new(),
        }
    }

    /// Counts `view` (an order as it is now) in the bucket of its receipt, if it was received
    /// in the window.
    pub fn add(&mut self, view: &OrderView) {
        let received = view.created_at;
        if self.since.is_some_and(|s| received < s) || self.until.is_some_and(|u| received >= u) {
            return;
        }
        self.buckets
            .entry(self.by.start(received))
            .or_default()
            .add(view);
    }

    /// Every bucket together.
    pub fn all(&self) -> Bucket {
        let mut all = Bucket::default();
        for b in self.buckets.values() {
            all.merge(b);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

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
        let t = parse_time("2025-03-01T13:45:10.5+01:00");
        assert_eq!(By::Hour.label(By::Hour.start(t)), "2025-03-01 12:00");
        assert_eq!(By::Day.label(By::Day.start(t)), "2025-03-01");
        let before_epoch = parse_time("1969-12-31T23:30:00Z");
        assert_eq!(By::Day.label(By::Day.start(before_epoch)), "1969-12-31");
    }
}
