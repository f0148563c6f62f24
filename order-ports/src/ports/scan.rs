//! [`OrderScan`]: the log walked order by order (`orders verify`, `orders rebuild`; no handler
//! uses it).

use async_trait::async_trait;
use events_schema::OrderId;

use super::*;

/// One of `total` disjoint parts of the log an [`OrderScan`] can be walked in, in parallel
/// (DynamoDB's parallel `Scan` segments). Every order is in exactly one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSegment {
    pub index: u32,
    pub total: u32,
}

impl ScanSegment {
    /// The whole log as one segment.
    pub const WHOLE: ScanSegment = ScanSegment { index: 0, total: 1 };

    /// `Rejected` unless `index < total` and `total` is 1..=`max`.
    pub fn check(&self, max: u32) -> Result<(), StoreError> {
        if self.total == 0 || self.total > max || self.index >= self.total {
            return Err(StoreError::Rejected(format!(
                "scan segment {}/{} (at most {max} segments)",
                self.index, self.total
            )));
        }
        Ok(())
    }
}

/// A page of [`OrderScan::list_orders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIdPage {
    pub order_ids: Vec<OrderId>,
    /// Pass back to get the next page of the same segment; `None` when it is exhausted.
    pub next: Option<String>,
}

/// The log walked order by order, so a tool's memory stays bounded by a page (plus one order's
/// history), whatever the size of the log.
#[async_trait]
pub trait OrderScan: Send + Sync + 'static {
    /// How many [`ScanSegment`]s this store is best walked in (1 when it cannot be split).
    fn segments(&self) -> u32;

    /// A page of the ids of the orders that have **any** event (an order whose version 1 is
    /// missing included) in `segment`; over a full pass of the segment each such order comes
    /// exactly once. Start with `cursor = None`, pass [`OrderIdPage::next`] back until `None`.
    ///
    /// Errors: `Rejected` for a segment outside 0..[`segments`](Self::segments) or a cursor this
    /// store did not produce; `Unavailable` as usual.
    async fn list_orders(
        &self,
        segment: ScanSegment,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<OrderIdPage, StoreError>;

    /// How many events the log holds (for progress reports; exact at the time of the count).
    async fn count_events(&self) -> Result<u64, StoreError>;
}
