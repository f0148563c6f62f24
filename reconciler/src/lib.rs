//! The reconciler: repairs the orders whose view has stayed `RECEIVED` or `PROCESSING` longer
//! than a threshold — puts them back on the work queue, re-projects them from their log, or sets
//! them aside once when their log cannot be folded (ADR 6, ADR 11).
//!
//! Why: on AWS, ingest appends `OrderReceived` to DynamoDB and then sends the order id to SQS.
//! The two cannot share a transaction, so a failed `SendMessage`, or a function that dies
//! between the two calls, leaves the order at `RECEIVED` with nothing to move it on (ADR 1). A
//! work message dead-lettered during an outage does the same to an order already started. And
//! a stream outage longer than the mapping's maximum record age leaves a view behind a log
//! that is already terminal: re-enqueuing that order changes nothing (the processor sees it is
//! done), so only re-projecting it repairs it.
//!
//! For each pending order found, the reconciler loads its history ([`EventStore::load_many`]),
//! folds it ([`order_ports::reproject::fold_log`]) and decides:
//! - the log is not terminal: **re-enqueue** (safe: the processor folds the history and
//!   appends only the next step);
//! - the log is terminal and the view behind it: **re-project**, forward-only, with the code
//!   of `orders rebuild` ([`order_ports::reproject::reproject`]);
//! - the log cannot be folded (no events, an event that does not decode, a history the fold
//!   rejects), or is terminal with the view still pending at or after its version (which a
//!   forward-only write cannot fix): **report it once and leave it alone**
//!   ([`StatusRepair::set_aside_pending`] takes the view out of the pending walk until it is
//!   written again), instead of re-enqueuing it to cycle through the dead letters every run.
//!
//! Stuck orders are found with [`StatusStore::pending_before`]: a sparse, sharded index of the
//! non-terminal orders on DynamoDB, a partial index on SQLite (ADR 6), so a run costs in
//! proportion to what is pending, not to the history. It runs as the `reconciler` Lambda on a
//! schedule ([`lambda`]) and from the CLI ([`reconcile`] is all a command needs).

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod lambda;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events_schema::envelope::format_timestamp;
use events_schema::{OrderId, OrderStatus, Version};
use futures::{StreamExt, TryStreamExt};
use order_ports::reproject::{fold_log, reproject, FoldedLog};
use order_ports::{
    EventStore, PendingOrder, StatusRepair, StatusStore, StoreError, Upserted, WorkQueue,
};
use serde::Serialize;

/// The threshold when none is configured. Well above the normal time from ingest to a
/// terminal status (seconds), and about the time a message failing transiently takes to reach
/// the dead-letter queue with the template's defaults.
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(300);

/// Orders read per [`StatusStore::pending_before`] page (and histories per
/// [`EventStore::load_many`]).
const PAGE: usize = 100;

/// Repairs (sends, writes) in flight at once: one run can repair a large backlog within a
/// Lambda timeout.
const CONCURRENT_REPAIRS: usize = 16;

/// The ports a run uses: the view's pending orders, their logs, the writes that repair them and
/// the work queue.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub events: &'a dyn EventStore,
    pub status: &'a dyn StatusStore,
    pub repair: &'a dyn StatusRepair,
    pub queue: &'a dyn WorkQueue,
}

/// What the reconciler does (or, on a dry run, would do) with one stuck order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Its log is not terminal: sent to the work queue again.
    Reenqueued,
    /// Its log is terminal and the view was behind: the view was written from the log.
    Reprojected,
    /// Its log cannot be folded: reported once and set aside (not re-enqueued).
    Unfoldable,
    /// Its log is terminal but the view is pending at the same or a later version: a
    /// forward-only write cannot fix it (`orders rebuild --force` can); reported once and set
    /// aside.
    ViewAhead,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reenqueued => "re-enqueued",
            Action::Reprojected => "re-projected",
            Action::Unfoldable => "unfoldable",
            Action::ViewAhead => "view-ahead",
        }
    }
}

/// An order found pending since before the cutoff, and what was done with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StuckOrder {
    pub order_id: OrderId,
    /// The view's status.
    pub status: OrderStatus,
    /// The view's version.
    pub version: Version,
    /// When its view last changed.
    #[serde(serialize_with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    pub action: Action,
    /// Why, when the action needs saying: what the log holds for a re-projection, what is
    /// wrong with it for an order set aside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl StuckOrder {
    fn new(order: &PendingOrder, action: Action, detail: Option<String>) -> Self {
        Self {
            order_id: order.order_id,
            status: order.status,
            version: order.version,
            updated_at: order.updated_at,
            action,
            detail,
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
    /// Every order found, in the order the store listed them, each with the action taken (on a
    /// dry run, the action it would take).
    pub orders: Vec<StuckOrder>,
    /// How many were sent to the work queue (0 on a dry run).
    pub reenqueued: usize,
    /// How many views were written from their log (0 on a dry run).
    pub reprojected: usize,
    /// How many were set aside because their log cannot be folded (0 on a dry run).
    pub unfoldable: usize,
    /// How many were set aside because their view is pending at or after their terminal log's
    /// version (0 on a dry run).
    pub view_ahead: usize,
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
            write!(f, "dry run, nothing done")?;
        } else {
            write!(
                f,
                "{} re-enqueued, {} re-projected, {} unfoldable, {} view ahead (set aside)",
                self.reenqueued, self.reprojected, self.unfoldable, self.view_ahead
            )?;
        }
        for order in &self.orders {
            write!(
                f,
                "\n{}  {:<10}  v{}  {}  {}",
                order.order_id,
                order.status.as_str(),
                order.version,
                format_timestamp(order.updated_at),
                order.action.as_str()
            )?;
            if let Some(detail) = &order.detail {
                write!(f, ": {detail}")?;
            }
        }
        Ok(())
    }
}

/// Decides what to do with one pending order from its loaded history.
///
/// A history that could not be read for a transient reason is re-enqueued: the processor reads
/// it itself, which is what the reconciler did before it read logs, so an event-table hiccup
/// never stops a run nor sets an order aside.
fn decide(
    order: &PendingOrder,
    loaded: Result<Vec<events_schema::EventEnvelope>, StoreError>,
) -> (
    Action,
    Option<String>,
    Option<events_schema::OrderStatusRecord>,
) {
    let folded = match fold_log(loaded) {
        Ok(folded) => folded,
        Err(e) => {
            return (
                Action::Reenqueued,
                Some(format!("log not read ({e}): left to the processor")),
                None,
            )
        }
    };
    match folded {
        FoldedLog::Empty => (
            Action::Unfoldable,
            Some("no event in the log for this view".into()),
            None,
        ),
        FoldedLog::Unfoldable(why) => (Action::Unfoldable, Some(why), None),
        FoldedLog::View { record, .. } if !record.status.is_terminal() => {
            (Action::Reenqueued, None, None)
        }
        FoldedLog::View { record, .. } => {
            let detail = format!(
                "log at version {} {}, view at version {} {}",
                record.version,
                record.status.as_str(),
                order.version,
                order.status.as_str()
            );
            if record.version > order.version {
                (Action::Reprojected, Some(detail), Some(*record))
            } else {
                (
                    Action::ViewAhead,
                    Some(format!(
                        "{detail}: only `orders rebuild --force` replaces it"
                    )),
                    None,
                )
            }
        }
    }
}

/// Finds every order whose view has been `RECEIVED` or `PROCESSING` since before
/// `now - older_than`, decides for each from its log (module docs) and, unless `dry_run`,
/// re-enqueues it, re-projects it or sets it aside.
///
/// Walks [`StatusStore::pending_before`] page by page, loading each page's histories in one
/// [`EventStore::load_many`] and repairing the page (a few at a time) before reading the next,
/// so memory holds one page of work plus the report.
///
/// Errors: `Rejected` when `now - older_than` is out of range; the first error of the walk or
/// of a repair, which ends the run — nothing is lost, since an order not repaired is still
/// pending and the next run finds it again. A repair error names the order. A history that
/// cannot be loaded for a transient reason does not end the run: that order is re-enqueued.
pub async fn reconcile(
    ports: Ports<'_>,
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
        reprojected: 0,
        unfoldable: 0,
        view_ahead: 0,
    };
    let mut cursor = None;
    loop {
        let page = ports.status.pending_before(cutoff, cursor, PAGE).await?;
        let ids: Vec<OrderId> = page.orders.iter().map(|o| o.order_id).collect();
        let histories = ports.events.load_many(&ids).await;
        let decided: Vec<_> = page
            .orders
            .iter()
            .zip(histories)
            .map(|(order, loaded)| {
                let (action, detail, record) = decide(order, loaded);
                (StuckOrder::new(order, action, detail), record)
            })
            .collect();
        let stuck = if dry_run {
            decided.into_iter().map(|(stuck, _)| stuck).collect()
        } else {
            futures::stream::iter(decided)
                .map(|(stuck, record)| repair_one(ports, stuck, record))
                .buffered(CONCURRENT_REPAIRS)
                .try_collect::<Vec<_>>()
                .await?
        };
        for order in stuck {
            if !dry_run {
                match order.action {
                    Action::Reenqueued => report.reenqueued += 1,
                    Action::Reprojected => report.reprojected += 1,
                    Action::Unfoldable => report.unfoldable += 1,
                    Action::ViewAhead => report.view_ahead += 1,
                }
            }
            report.orders.push(order);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(report),
        }
    }
}

/// Carries out one decision; returns the order as it ends up in the report.
async fn repair_one(
    ports: Ports<'_>,
    mut stuck: StuckOrder,
    record: Option<events_schema::OrderStatusRecord>,
) -> Result<StuckOrder, StoreError> {
    let id = stuck.order_id;
    let failed = |what: &str, e: StoreError| with_context(e, &format!("{what} order {id}"));
    match (stuck.action, record) {
        (Action::Reprojected, Some(record)) => {
            if reproject(ports.status, &record)
                .await
                .map_err(|e| failed("re-projecting", e))?
                == Upserted::Stale
            {
                // The projector wrote this version or a later one since the view was read.
                let detail = stuck.detail.take().unwrap_or_default();
                stuck.detail = Some(format!("{detail} (already written meanwhile)"));
            }
        }
        (Action::Unfoldable | Action::ViewAhead, _) => {
            let reason = format!(
                "{}: {}",
                stuck.action.as_str(),
                stuck.detail.as_deref().unwrap_or("")
            );
            // Stale: the view moved on since it was read; the next run looks at it afresh.
            ports
                .repair
                .set_aside_pending(id, stuck.version, &reason)
                .await
                .map_err(|e| failed("setting aside", e))?;
            tracing::warn!(
                orderId = %id,
                version = stuck.version.get(),
                action = stuck.action.as_str(),
                reason = %reason,
                "pending order set aside by the reconciler: its log cannot repair its view"
            );
        }
        _ => ports
            .queue
            .send(id)
            .await
            .map_err(|e| failed("re-enqueuing", e))?,
    }
    Ok(stuck)
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
    use events_schema::{CorrelationId, EventEnvelope, OrderEvent, OrderStatusRecord, OrderView};
    use order_adapters_sqlite::{SqliteDb, SqliteEventStore, SqliteStatusStore, SqliteWorkQueue};
    use order_ports::{AppendError, Delivery, EventPage};
    use order_test_support::order_received;

    use super::*;

    struct Local {
        dir: tempfile::TempDir,
        events: SqliteEventStore,
        status: SqliteStatusStore,
        queue: SqliteWorkQueue,
        now: DateTime<Utc>,
    }

    fn local() -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(dir.path().join("orders.db")).expect("open");
        Local {
            events: db.event_store(),
            status: db.status_store(),
            queue: db.work_queue_default(),
            dir,
            now: Utc::now(),
        }
    }

    /// The events of one order from `OrderReceived` to `status`.
    fn history_to(status: OrderStatus) -> Vec<EventEnvelope> {
        let first = order_received(1, 100);
        let mut view = OrderView::start(&first).expect("start");
        let mut events = vec![first];
        let steps: &[OrderEvent] = match status {
            OrderStatus::Received => &[],
            OrderStatus::Processing => &[OrderEvent::OrderProcessingStarted],
            OrderStatus::Completed => &[
                OrderEvent::OrderProcessingStarted,
                OrderEvent::OrderCompleted { total: 100 },
            ],
            OrderStatus::Failed => &[
                OrderEvent::OrderProcessingStarted,
                OrderEvent::OrderFailed {
                    reason: "card declined".into(),
                },
            ],
            OrderStatus::Cancelled => &[
                OrderEvent::OrderProcessingStarted,
                OrderEvent::OrderCancelled { reason: None },
            ],
        };
        for step in steps {
            let next = view.next_envelope(step.clone(), CorrelationId::generate());
            view.apply(&next).expect("apply");
            events.push(next);
        }
        events
    }

    impl Local {
        fn ports(&self) -> Ports<'_> {
            Ports {
                events: &self.events,
                status: &self.status,
                repair: &self.status,
                queue: &self.queue,
            }
        }

        /// Writes the view of the first `view_events` of `log` (already appended), as last
        /// updated `age` ago: a view behind its log when `view_events < log.len()`.
        async fn view_of(&self, log: &[EventEnvelope], view_events: usize, age: Duration) {
            let view = OrderView::fold(&log[..view_events])
                .expect("folds")
                .expect("not empty");
            let updated =
                format_timestamp(self.now - chrono::Duration::from_std(age).expect("age"));
            let record = OrderStatusRecord {
                created_at: updated.clone(),
                updated_at: updated,
                ..OrderStatusRecord::from(&view)
            };
            self.status.upsert(&record).await.expect("upsert");
        }

        /// An order whose log and view are both at `status`, the view last updated `age` ago.
        async fn order(&self, status: OrderStatus, age: Duration) -> OrderId {
            let log = history_to(status);
            self.events.append(&log).await.expect("append");
            self.view_of(&log, log.len(), age).await;
            log[0].order_id
        }

        /// An order whose log reached `status` while its view stayed at `RECEIVED` (a stream
        /// outage longer than the mapping's maximum record age).
        async fn order_behind(&self, status: OrderStatus, age: Duration) -> OrderId {
            let log = history_to(status);
            self.events.append(&log).await.expect("append");
            self.view_of(&log, 1, age).await;
            log[0].order_id
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
            reconcile(self.ports(), DEFAULT_OLDER_THAN, dry_run, self.now)
                .await
                .expect("reconcile")
        }
    }

    const STALE: Duration = Duration::from_secs(3_600);
    const FRESH: Duration = Duration::from_secs(10);

    fn ids(report: &ReconcileReport) -> BTreeSet<OrderId> {
        report.orders.iter().map(|o| o.order_id).collect()
    }

    fn action_of(report: &ReconcileReport, id: OrderId) -> Action {
        report
            .orders
            .iter()
            .find(|o| o.order_id == id)
            .map(|o| o.action)
            .unwrap_or_else(|| panic!("{id} not in the report: {report}"))
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
        assert_eq!(action_of(&report, stuck_received), Action::Reenqueued);
        let queued: BTreeSet<OrderId> = l.queued().await.into_iter().collect();
        assert_eq!(queued, BTreeSet::from([stuck_received, stuck_processing]));
        assert!(!queued.contains(&fresh));
        let received = report
            .orders
            .iter()
            .find(|o| o.order_id == stuck_received)
            .expect("listed");
        assert_eq!(received.status, OrderStatus::Received);
        assert_eq!(received.version, Version::FIRST);
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
        l.order(OrderStatus::Cancelled, STALE * 24).await;

        let report = l.reconcile(false).await;

        assert!(report.orders.is_empty(), "{report}");
        assert_eq!(report.reenqueued, 0);
        assert!(l.queued().await.is_empty());
    }

    #[tokio::test]
    async fn a_pending_view_whose_log_is_completed_is_reprojected_not_reenqueued() {
        let l = local();
        let completed = l.order_behind(OrderStatus::Completed, STALE).await;
        let failed = l.order_behind(OrderStatus::Failed, STALE).await;
        let cancelled = l.order_behind(OrderStatus::Cancelled, STALE).await;
        let pending = l.order(OrderStatus::Received, STALE).await;

        let report = l.reconcile(false).await;

        assert_eq!(action_of(&report, completed), Action::Reprojected);
        assert_eq!(action_of(&report, failed), Action::Reprojected);
        assert_eq!(action_of(&report, cancelled), Action::Reprojected);
        assert_eq!(action_of(&report, pending), Action::Reenqueued);
        assert_eq!((report.reprojected, report.reenqueued), (3, 1), "{report}");
        assert_eq!(
            l.queued().await,
            [pending],
            "only the unfinished order is queued"
        );
        for (id, status) in [
            (completed, OrderStatus::Completed),
            (failed, OrderStatus::Failed),
            (cancelled, OrderStatus::Cancelled),
        ] {
            // Exactly what `orders rebuild` writes: the fold of the log.
            let log = l.events.load(id).await.expect("load");
            let expected =
                OrderStatusRecord::from(&OrderView::fold(&log).expect("folds").expect("not empty"));
            let view = l.status.get(id).await.expect("get").expect("a view");
            assert_eq!(view.status, status);
            assert_eq!(view, expected);
        }
        let detail = report
            .orders
            .iter()
            .find(|o| o.order_id == completed)
            .and_then(|o| o.detail.clone())
            .expect("a detail");
        assert!(
            detail.contains("log at version 3 COMPLETED, view at version 1 RECEIVED"),
            "{detail}"
        );

        // Repaired for good: the next run finds only the re-enqueued order.
        let again = l.reconcile(false).await;
        assert_eq!(ids(&again), BTreeSet::from([pending]), "{again}");
    }

    #[tokio::test]
    async fn an_order_whose_history_does_not_fold_is_reported_once_and_not_reenqueued() {
        let l = local();
        // OrderCompleted straight after OrderReceived: the store appends it (it checks versions,
        // not transitions), the fold rejects it, the view stays RECEIVED.
        let first = order_received(1, 100);
        let illegal = EventEnvelope::new(
            first.order_id,
            Version::FIRST.next(),
            CorrelationId::generate(),
            OrderEvent::OrderCompleted { total: 100 },
        );
        let log = [first, illegal];
        l.events.append(&log).await.expect("append");
        l.view_of(&log, 1, STALE).await;
        let broken = log[0].order_id;
        // A view with no log at all: the processor would find no order and dead-letter it.
        let orphan = {
            let first = order_received(1, 100);
            let record = OrderStatusRecord {
                updated_at: format_timestamp(
                    l.now - chrono::Duration::from_std(STALE).expect("age"),
                ),
                ..OrderStatusRecord::from(&OrderView::start(&first).expect("start"))
            };
            l.status.upsert(&record).await.expect("upsert");
            first.order_id
        };

        // A dry run says what it would do and sets nothing aside.
        let dry = l.reconcile(true).await;
        assert_eq!(action_of(&dry, broken), Action::Unfoldable);
        assert_eq!(dry.unfoldable, 0);
        let report = l.reconcile(false).await;

        assert_eq!(ids(&report), BTreeSet::from([broken, orphan]), "{report}");
        assert_eq!(action_of(&report, broken), Action::Unfoldable);
        assert_eq!(action_of(&report, orphan), Action::Unfoldable);
        assert_eq!((report.unfoldable, report.reenqueued), (2, 0), "{report}");
        let text = report.to_string();
        assert!(text.contains("is not allowed when the order is"), "{text}");
        assert!(text.contains("no event in the log"), "{text}");
        assert!(
            l.queued().await.is_empty(),
            "nothing goes to the work queue"
        );

        // Once: the next runs neither report nor enqueue them.
        for _ in 0..2 {
            let again = l.reconcile(false).await;
            assert!(again.orders.is_empty(), "{again}");
        }
        assert!(l.queued().await.is_empty());
        // The view itself is left as it was.
        let view = l.status.get(broken).await.expect("get").expect("a view");
        assert_eq!(
            (view.status, view.version),
            (OrderStatus::Received, Version::FIRST)
        );
    }

    #[tokio::test]
    async fn an_order_whose_log_does_not_decode_is_reported_once_and_not_reenqueued() {
        let l = local();
        let log = history_to(OrderStatus::Processing);
        l.events.append(&log).await.expect("append");
        l.view_of(&log, 1, STALE).await;
        let id = log[0].order_id;
        // An event type this build does not know (a newer writer): the log does not decode.
        let conn = rusqlite::Connection::open(l.dir.path().join("orders.db")).expect("open");
        conn.execute(
            "UPDATE events SET event_type = 'OrderRefunded' WHERE order_id = ?1 AND version = 2",
            [id.to_string()],
        )
        .expect("corrupt the event");
        drop(conn);

        let report = l.reconcile(false).await;
        assert_eq!(action_of(&report, id), Action::Unfoldable, "{report}");
        assert!(
            report.orders[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("log unreadable")),
            "{report}"
        );
        assert!(l.queued().await.is_empty());
        assert!(l.reconcile(false).await.orders.is_empty());
    }

    #[tokio::test]
    async fn a_view_pending_at_the_version_of_its_terminal_log_is_set_aside_not_re_enqueued() {
        let l = local();
        let log = history_to(OrderStatus::Completed);
        l.events.append(&log).await.expect("append");
        // A view at version 3 that says PROCESSING: it disagrees with the log at the same
        // version, which only `orders rebuild --force` replaces.
        let record = OrderStatusRecord {
            status: OrderStatus::Processing,
            updated_at: format_timestamp(l.now - chrono::Duration::from_std(STALE).expect("age")),
            ..OrderStatusRecord::from(&OrderView::fold(&log).expect("folds").expect("one"))
        };
        l.status.upsert(&record).await.expect("upsert");

        let report = l.reconcile(false).await;
        assert_eq!(action_of(&report, log[0].order_id), Action::ViewAhead);
        assert_eq!(report.view_ahead, 1);
        assert!(report.to_string().contains("rebuild --force"), "{report}");
        assert!(l.queued().await.is_empty());
        assert!(l.reconcile(false).await.orders.is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_lists_the_stuck_orders_and_changes_nothing() {
        let l = local();
        let stuck = l.order(OrderStatus::Received, STALE).await;
        let behind = l.order_behind(OrderStatus::Completed, STALE).await;

        let report = l.reconcile(true).await;

        assert_eq!(ids(&report), BTreeSet::from([stuck, behind]));
        assert!(report.dry_run);
        assert_eq!(action_of(&report, stuck), Action::Reenqueued);
        assert_eq!(action_of(&report, behind), Action::Reprojected);
        assert_eq!((report.reenqueued, report.reprojected), (0, 0));
        assert!(l.queued().await.is_empty());
        let view = l.status.get(behind).await.expect("get").expect("a view");
        assert_eq!(
            view.status,
            OrderStatus::Received,
            "a dry run writes nothing"
        );
        assert!(
            report.to_string().contains("dry run, nothing done"),
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
        let behind = l.order_behind(OrderStatus::Completed, STALE * 2).await;
        let report = l.reconcile(false).await;
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["olderThanSeconds"], 300);
        assert_eq!(json["dryRun"], false);
        assert_eq!(json["reenqueued"], 1);
        assert_eq!(json["reprojected"], 1);
        assert_eq!(json["unfoldable"], 0);
        assert_eq!(json["viewAhead"], 0);
        assert_eq!(json["cutoff"], format_timestamp(report.cutoff));
        // Oldest first on SQLite.
        assert_eq!(json["orders"][0]["orderId"], behind.to_string());
        assert_eq!(json["orders"][0]["action"], "reprojected");
        assert_eq!(json["orders"][1]["orderId"], stuck.to_string());
        assert_eq!(json["orders"][1]["status"], "PROCESSING");
        assert_eq!(json["orders"][1]["version"], 2);
        assert_eq!(json["orders"][1]["action"], "reenqueued");
        assert!(json["orders"][1].get("detail").is_none(), "{json}");
        assert_eq!(
            json["orders"][1]["updatedAt"],
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
        let ports = Ports {
            queue: &queue,
            ..l.ports()
        };
        let err = reconcile(ports, DEFAULT_OLDER_THAN, false, l.now)
            .await
            .expect_err("the queue fails");
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("re-enqueuing order"), "{err}");
        assert!(err.to_string().contains("throttled"), "{err}");
    }

    /// An event table that is down: every load fails transiently.
    struct DownLog;

    #[async_trait]
    impl EventStore for DownLog {
        async fn append(&self, _: &[EventEnvelope]) -> Result<(), AppendError> {
            Err(StoreError::Unavailable("down".into()).into())
        }
        async fn load(&self, _: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
            Err(StoreError::Unavailable("Query: throttled".into()))
        }
        async fn read_all(&self, _: Option<String>, _: usize) -> Result<EventPage, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn an_order_whose_log_cannot_be_read_for_now_is_re_enqueued_not_set_aside() {
        let l = local();
        let behind = l.order_behind(OrderStatus::Completed, STALE).await;
        let ports = Ports {
            events: &DownLog,
            ..l.ports()
        };
        let report = reconcile(ports, DEFAULT_OLDER_THAN, false, l.now)
            .await
            .expect("the run goes on");
        assert_eq!(action_of(&report, behind), Action::Reenqueued);
        assert!(report.to_string().contains("throttled"), "{report}");
        assert_eq!(l.queued().await, [behind]);
        // Not set aside: once the log reads again, the next run re-projects it.
        assert_eq!(
            action_of(&l.reconcile(false).await, behind),
            Action::Reprojected
        );
    }

    #[tokio::test]
    async fn an_age_reaching_before_the_start_of_time_is_rejected() {
        let l = local();
        let err = reconcile(l.ports(), Duration::from_secs(u64::MAX), true, l.now)
            .await
            .expect_err("out of range");
        assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    }
}
