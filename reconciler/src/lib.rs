//! The reconciler: puts orders that have stayed `RECEIVED` or `PROCESSING` longer than a
//! threshold back on the work queue.
//!
//! Why: on AWS, ingest appends `OrderReceived` to DynamoDB and then sends the order id to SQS.
//! The two cannot share a transaction, so a failed `SendMessage`, or a function that dies
//! between the two calls, leaves the order at `RECEIVED` with nothing to move it on (ADR 1). A
//! work message dead-lettered during an outage does the same to an order already started.
//!
//! Re-enqueuing is safe: the processor folds the order's history and appends only the next step,
//! so a message for an order that is in fact moving, or already done, changes nothing.
//!
//! Stuck orders are found with [`StatusStore::pending_before`]: a sparse, sharded index of the
//! non-terminal orders on DynamoDB, a partial index on SQLite (ADR 6), so a run costs in
//! proportion to what is pending, not to the history. It runs as the `reconciler` Lambda on a
//! schedule ([`lambda`]) and from the CLI ([`reconcile`] is all a command needs).

pub mod lambda;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events_schema::envelope::format_timestamp;
use events_schema::{OrderId, OrderStatus};
use futures::{StreamExt, TryStreamExt};
use order_ports::{PendingOrder, StatusStore, StoreError, WorkQueue};
use serde::Serialize;

/// The threshold when none is configured. Well above the normal time from ingest to a
/// terminal status (seconds), and about the time a message failing transiently takes to reach
/// the dead-letter queue with the template's defaults.
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(300);

/// Orders read per [`StatusStore::pending_before`] page.
const PAGE: usize = 100;

/// Messages in flight at once: one run can re-enqueue a large backlog within a Lambda timeout.
const CONCURRENT_SENDS: usize = 16;

/// An order found pending since before the cutoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StuckOrder {
    pub order_id: OrderId,
    pub status: OrderStatus,
    /// When its view last changed.
    #[serde(serialize_with = "timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl From<PendingOrder> for StuckOrder {
    fn from(o: PendingOrder) -> Self {
        Self {
            order_id: o.order_id,
            status: o.status,
            updated_at: o.updated_at,
        }
    }
}

/// What one run found and did. Serializes as camelCase JSON (what the Lambda logs and
/// returns); `Display` is the human form for a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// Orders last updated before this instant were looked for.
    #[serde(serialize_with = "timestamp")]
    pub cutoff: DateTime<Utc>,
    pub older_than_seconds: u64,
    pub dry_run: bool,
    /// Every order found, in the order the store listed them.
    pub orders: Vec<StuckOrder>,
    /// How many of them were sent to the work queue (0 on a dry run).
    pub reenqueued: usize,
}

fn timestamp<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*t))
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found = self.orders.len();
        write!(
            f,
            "{found} order{} pending since before {} (older than {} s): ",
            if found == 1 { "" } else { "s" },
            format_timestamp(self.cutoff),
            self.older_than_seconds
        )?;
        if self.dry_run {
            write!(f, "dry run, none re-enqueued")?;
        } else {
            write!(f, "{} re-enqueued", self.reenqueued)?;
        }
        for order in &self.orders {
            write!(
                f,
                "\n{}  {:<10}  {}",
                order.order_id,
                order.status.as_str(),
                format_timestamp(order.updated_at)
            )?;
        }
        Ok(())
    }
}

/// Finds every order whose view has been `RECEIVED` or `PROCESSING` since before
/// `now - older_than` and, unless `dry_run`, sends each to the work queue again.
///
/// Walks [`StatusStore::pending_before`] page by page, re-enqueuing each page (a few sends at a
/// time) before reading the next, so memory holds one page of work plus the report.
///
/// Errors: `Rejected` when `now - older_than` is out of range; the first error of the walk or
/// of a send, which ends the run — nothing is lost, since an order not re-enqueued is still
/// pending and the next run finds it again. A send error names the order and how many were
/// re-enqueued before it.
pub async fn reconcile(
    status: &dyn StatusStore,
    queue: &dyn WorkQueue,
    older_than: Duration,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ReconcileReport, StoreError> {
    let cutoff = chrono::Duration::from_std(older_than)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| {
            StoreError::Rejected(format!(
                "an age of {} s reaches before the start of time",
                older_than.as_secs()
            ))
        })?;
    let mut report = ReconcileReport {
        cutoff,
        older_than_seconds: older_than.as_secs(),
        dry_run,
        orders: Vec::new(),
        reenqueued: 0,
    };
    let mut cursor = None;
    loop {
        let page = status.pending_before(cutoff, cursor, PAGE).await?;
        if !dry_run {
            let already = report.reenqueued;
            futures::stream::iter(&page.orders)
                .map(|order| async move {
                    queue.send(order.order_id).await.map_err(|e| {
                        with_context(
                            e,
                            &format!(
                                "re-enqueuing order {} (after {already} others)",
                                order.order_id
                            ),
                        )
                    })
                })
                .buffer_unordered(CONCURRENT_SENDS)
                .try_for_each(|()| async { Ok(()) })
                .await?;
            report.reenqueued += page.orders.len();
        }
        report
            .orders
            .extend(page.orders.into_iter().map(StuckOrder::from));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}

/// The same kind of error, with what was being done in front of its message.
fn with_context(e: StoreError, context: &str) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{context}: {m}")),
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{context}: {m}")),
        StoreError::Rejected(m) => StoreError::Rejected(format!("{context}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use events_schema::{Currency, CustomerId, OrderStatusRecord, Version};
    use order_ports::sqlite::{SqliteDb, SqliteStatusStore, SqliteWorkQueue};
    use order_ports::Delivery;

    use super::*;

    struct Local {
        _dir: tempfile::TempDir,
        status: SqliteStatusStore,
        queue: SqliteWorkQueue,
        now: DateTime<Utc>,
    }

    fn local() -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open");
        Local {
            status: db.status_store(),
            queue: db.work_queue_default(),
            _dir: dir,
            now: Utc::now(),
        }
    }

    impl Local {
        /// Projects an order at `status`, last updated `age` ago.
        async fn order(&self, status: OrderStatus, age: Duration) -> OrderId {
            let order_id = OrderId::new_random();
            let version = match status {
                OrderStatus::Received => 1,
                OrderStatus::Processing => 2,
                OrderStatus::Completed | OrderStatus::Failed => 3,
            };
            let updated =
                format_timestamp(self.now - chrono::Duration::from_std(age).expect("age"));
            let record = OrderStatusRecord {
                order_id,
                status,
                customer_id: CustomerId::parse("cust-1").expect("customer"),
                item_count: 1,
                total: 100,
                currency: Currency::USD,
                version: Version::new(version).expect("version"),
                created_at: updated.clone(),
                updated_at: updated,
                completed_at: None,
                failure_reason: None,
            };
            self.status.upsert(&record).await.expect("upsert");
            order_id
        }

        /// The order ids on the work queue (received, and left invisible).
        async fn queued(&self) -> Vec<OrderId> {
            let mut ids = Vec::new();
            loop {
                let got = self
                    .queue
                    .receive(10, Duration::from_secs(600))
                    .await
                    .expect("receive");
                if got.is_empty() {
                    return ids;
                }
                ids.extend(
                    got.iter()
                        .map(|d| OrderId::parse(&d.body).expect("an order id")),
                );
            }
        }

        async fn reconcile(&self, dry_run: bool) -> ReconcileReport {
            reconcile(
                &self.status,
                &self.queue,
                DEFAULT_OLDER_THAN,
                dry_run,
                self.now,
            )
            .await
            .expect("reconcile")
        }
    }

    const STALE: Duration = Duration::from_secs(3_600);
    const FRESH: Duration = Duration::from_secs(10);

    fn ids(report: &ReconcileReport) -> BTreeSet<OrderId> {
        report.orders.iter().map(|o| o.order_id).collect()
    }

    #[tokio::test]
    async fn an_order_pending_longer_than_the_threshold_is_re_enqueued_and_a_fresh_one_is_not() {
        let l = local();
        let stuck_received = l.order(OrderStatus::Received, STALE).await;
        let stuck_processing = l.order(OrderStatus::Processing, STALE).await;
        let fresh = l.order(OrderStatus::Received, FRESH).await;

        let report = l.reconcile(false).await;

        assert_eq!(
            ids(&report),
            BTreeSet::from([stuck_received, stuck_processing])
        );
        assert_eq!(report.reenqueued, 2);
        let queued: BTreeSet<OrderId> = l.queued().await.into_iter().collect();
        assert_eq!(queued, BTreeSet::from([stuck_received, stuck_processing]));
        assert!(!queued.contains(&fresh));
        let received = report
            .orders
            .iter()
            .find(|o| o.order_id == stuck_received)
            .expect("listed");
        assert_eq!(received.status, OrderStatus::Received);
        assert_eq!(
            format_timestamp(received.updated_at),
            format_timestamp(l.now - chrono::Duration::from_std(STALE).expect("age"))
        );
    }

    #[tokio::test]
    async fn a_terminal_order_is_never_re_enqueued_however_old() {
        let l = local();
        l.order(OrderStatus::Completed, STALE).await;
        l.order(OrderStatus::Failed, STALE * 24).await;

        let report = l.reconcile(false).await;

        assert!(report.orders.is_empty(), "{report}");
        assert_eq!(report.reenqueued, 0);
        assert!(l.queued().await.is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_lists_the_stuck_orders_and_enqueues_nothing() {
        let l = local();
        let stuck = l.order(OrderStatus::Received, STALE).await;

        let report = l.reconcile(true).await;

        assert_eq!(ids(&report), BTreeSet::from([stuck]));
        assert!(report.dry_run);
        assert_eq!(report.reenqueued, 0);
        assert!(l.queued().await.is_empty());
        assert!(
            report.to_string().contains("dry run, none re-enqueued"),
            "{report}"
        );
    }

    #[tokio::test]
    async fn more_stuck_orders_than_a_page_are_each_re_enqueued_once() {
        let l = local();
        let mut stuck = BTreeSet::new();
        for n in 0..(2 * PAGE + 7) {
            let age = STALE + Duration::from_secs(n as u64 % 5);
            stuck.insert(l.order(OrderStatus::Received, age).await);
        }

        let report = l.reconcile(false).await;

        assert_eq!(report.orders.len(), stuck.len());
        assert_eq!(ids(&report), stuck);
        assert_eq!(report.reenqueued, stuck.len());
        let queued = l.queued().await;
        assert_eq!(queued.len(), stuck.len(), "one message per order");
        assert_eq!(queued.into_iter().collect::<BTreeSet<_>>(), stuck);
    }

    #[tokio::test]
    async fn the_report_serializes_as_camel_case_json_with_millisecond_timestamps() {
        let l = local();
        let stuck = l.order(OrderStatus::Processing, STALE).await;
        let report = l.reconcile(false).await;
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["olderThanSeconds"], 300);
        assert_eq!(json["dryRun"], false);
        assert_eq!(json["reenqueued"], 1);
        assert_eq!(json["cutoff"], format_timestamp(report.cutoff));
        assert_eq!(json["orders"][0]["orderId"], stuck.to_string());
        assert_eq!(json["orders"][0]["status"], "PROCESSING");
        assert_eq!(
            json["orders"][0]["updatedAt"],
            format_timestamp(l.now - chrono::Duration::from_std(STALE).expect("age"))
        );
    }

    /// A queue whose sends fail after the first `ok` of them.
    struct FailingQueue {
        ok: usize,
        sent: Mutex<Vec<OrderId>>,
    }

    #[async_trait]
    impl WorkQueue for FailingQueue {
        async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
            let mut sent = self.sent.lock().expect("lock");
            if sent.len() >= self.ok {
                return Err(StoreError::Unavailable("SendMessage: throttled".into()));
            }
            sent.push(order_id);
            Ok(())
        }
        async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, StoreError> {
            Ok(Vec::new())
        }
        async fn ack(&self, _: &Delivery) -> Result<(), StoreError> {
            Ok(())
        }
        async fn fail(&self, _: &Delivery) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_send_ends_the_run_with_a_transient_error_naming_the_order() {
        let l = local();
        for _ in 0..3 {
            l.order(OrderStatus::Received, STALE).await;
        }
        let queue = FailingQueue {
            ok: 1,
            sent: Mutex::default(),
        };
        let err = reconcile(&l.status, &queue, DEFAULT_OLDER_THAN, false, l.now)
            .await
            .expect_err("the queue fails");
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("re-enqueuing order"), "{err}");
        assert!(err.to_string().contains("throttled"), "{err}");
    }

    #[tokio::test]
    async fn an_age_reaching_before_the_start_of_time_is_rejected() {
        let l = local();
        let err = reconcile(
            &l.status,
            &l.queue,
            Duration::from_secs(u64::MAX),
            true,
            l.now,
        )
        .await
        .expect_err("out of range");
        assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    }
}
