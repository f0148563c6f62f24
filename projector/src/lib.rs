//! The projector: keeps the `OrderStatus` view in step with the event log.
//!
//! Idempotent and order-independent: an event is applied only when its version is exactly the
//! view's version + 1. An older or equal version is a duplicate (no-op). A newer one means events
//! were missed or arrived out of order; the projector then folds the order's full history from
//! the log, which also covers everything it skipped.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod lambda;

use std::collections::HashMap;
use std::sync::Arc;

use events_schema::{EventEnvelope, OrderId, OrderStatusRecord, OrderView, Version};
use order_ports::{BatchOutcome, ConsumeError, EventConsumer, EventStore, StatusStore, Upserted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// The event moved the view one version forward.
    Applied(Version),
    /// The view already had this event.
    Duplicate,
    /// A gap: the view was rebuilt from the log, up to this version.
    Repaired(Version),
}

#[derive(Clone)]
pub struct Projector {
    events: Arc<dyn EventStore>,
    status: Arc<dyn StatusStore>,
}

impl Projector {
    pub fn new(events: Arc<dyn EventStore>, status: Arc<dyn StatusStore>) -> Self {
        Self { events, status }
    }

    #[tracing::instrument(skip_all, fields(orderId = %event.order_id, version = %event.version, correlationId = %event.correlation_id))]
    pub async fn project(&self, event: &EventEnvelope) -> Result<Projected, ConsumeError> {
        let current = self.status.get(event.order_id).await?;
        let next_view = match &current {
            Some(record) if record.version >= event.version => return Ok(Projected::Duplicate),
            // The fold accepts only the view's next version (and `start` only version 1), so
            // anything else — a gap, or a record that does not parse — falls through to repair.
            Some(record) => OrderView::try_from(record)
                .ok()
                .and_then(|mut view| view.apply(event).ok().map(|()| view)),
            None => OrderView::start(event).ok(),
        };
        let projected = match next_view {
            Some(view) => self.write(&view, Projected::Applied(view.version)).await,
            None => self.repair(event).await,
        };
        if let Ok(Projected::Applied(_) | Projected::Repaired(_)) = projected {
            order_ports::telemetry::projected(event);
        }
        projected
    }

    async fn repair(&self, event: &EventEnvelope) -> Result<Projected, ConsumeError> {
        let history = self.events.load(event.order_id).await?;
        let view = OrderView::fold(&history)
            .map_err(|e| ConsumeError::Permanent(e.to_string()))?
            .ok_or_else(|| {
                ConsumeError::Permanent(format!(
                    "event {} of order {} is not in the log",
                    event.event_id, event.order_id
                ))
            })?;
        tracing::info!(to = %view.version, "view repaired from the log");
        self.write(&view, Projected::Repaired(view.version)).await
    }

    async fn write(&self, view: &OrderView, outcome: Projected) -> Result<Projected, ConsumeError> {
        match self.status.upsert(&view.into()).await? {
            Upserted::Written => Ok(outcome),
            // Another projector instance got there first; the view is at least as new.
            Upserted::Stale => Ok(Projected::Duplicate),
        }
    }
}

/// One order's share of a batch: the indexes of its events, and what the batch makes of them.
struct OrderPlan {
    order_id: OrderId,
    /// Indexes into the batch, in batch order.
    events: Vec<usize>,
    /// The view to write once for the whole batch, when it moved forward.
    write: Option<OrderView>,
    /// Events that cannot be handled (permanent), with the reason.
    permanent: Vec<(usize, String)>,
    /// Why the order failed transiently (then nothing of it was written).
    transient: Option<String>,
}

impl Projector {
    /// Projects a batch: the views of its orders read at once ([`StatusStore::get_many`]), each
    /// order's events folded in memory (a gap loads the order's history, as in
    /// [`project`](Self::project)), and each changed view written once
    /// ([`StatusStore::upsert_many`]). The outcome names the first event of the first order
    /// (in batch order) that was not written: every event before it is done, since each order
    /// that failed has all its events at or after its first one.
    pub async fn project_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        let mut plans: Vec<OrderPlan> = Vec::new();
        let mut by_order: HashMap<OrderId, usize> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            let plan = *by_order.entry(event.order_id).or_insert_with(|| {
                plans.push(OrderPlan {
                    order_id: event.order_id,
                    events: Vec::new(),
                    write: None,
                    permanent: Vec::new(),
                    transient: None,
                });
                plans.len() - 1
            });
            plans[plan].events.push(index);
        }
        let ids: Vec<OrderId> = plans.iter().map(|p| p.order_id).collect();
        let mut current = match self.status.get_many(&ids).await {
            Ok(current) => current,
            Err(e) if e.is_transient() => {
                return BatchOutcome::from_failures(Vec::new(), [(0, e.to_string())]);
            }
            // A record that does not decode: only its order's events may fail, so go one by one.
            Err(_) => return self.project_one_by_one(events).await,
        };
        for plan in &mut plans {
            let stored = current.remove(&plan.order_id);
            self.plan_order(plan, stored, events).await;
        }

        let writing: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].write.is_some())
            .collect();
        let records: Vec<OrderStatusRecord> = writing
            .iter()
            .filter_map(|&i| plans[i].write.as_ref().map(OrderStatusRecord::from))
            .collect();
        let outcomes = if records.is_empty() {
            Vec::new()
        } else {
            self.status.upsert_many(&records).await
        };
        for (n, &i) in writing.iter().enumerate() {
            let plan = &mut plans[i];
            match outcomes.get(n) {
                Some(Ok(Upserted::Written)) => {
                    for &index in &plan.events {
                        order_ports::telemetry::projected(&events[index]);
                    }
                }
                // Stale: another projector instance got there first; the view is as new.
                Some(Ok(Upserted::Stale)) => {}
                Some(Err(e)) if !e.is_transient() => {
                    let reason = e.to_string();
                    let failed: Vec<usize> = plan.events.clone();
                    plan.permanent
                        .extend(failed.into_iter().map(|index| (index, reason.clone())));
                }
                Some(Err(e)) => plan.transient = Some(e.to_string()),
                None => plan.transient = Some("the status store lost a write".to_owned()),
            }
        }

        let mut permanent = Vec::new();
        let mut transient = Vec::new();
        for plan in plans {
            match plan.transient {
                Some(reason) => transient.push((plan.events[0], reason)),
                None => permanent.extend(plan.permanent),
            }
        }
        permanent.sort_by_key(|(index, _)| *index);
        permanent.dedup_by_key(|(index, _)| *index);
        BatchOutcome::from_failures(permanent, transient)
    }

    /// Folds one order's events of the batch onto its stored view, in memory.
    async fn plan_order(
        &self,
        plan: &mut OrderPlan,
        stored: Option<OrderStatusRecord>,
        events: &[EventEnvelope],
    ) {
        let stored_version = stored.as_ref().map(|r| r.version);
        // `None` with a stored record: it does not parse, so any new event needs a repair.
        let mut view = stored.as_ref().and_then(|r| OrderView::try_from(r).ok());
        let mut changed = false;
        for (n, &index) in plan.events.iter().enumerate() {
            let event = &events[index];
            let known = view.as_ref().map(|v| v.version).or(stored_version);
            if known.is_some_and(|v| v >= event.version) {
                continue;
            }
            let applied = match (&mut view, stored_version) {
                (Some(v), _) => v.apply(event).is_ok(),
                (None, None) => match OrderView::start(event) {
                    Ok(started) => {
                        view = Some(started);
                        true
                    }
                    Err(_) => false,
                },
                (None, Some(_)) => false,
            };
            if applied {
                changed = true;
                continue;
            }
            // A gap, or a stored record that does not parse: the log covers this event and
            // every later one of the batch.
            match self.repaired_view(event).await {
                Ok(repaired) => {
                    tracing::info!(order_id = %plan.order_id, to = %repaired.version, "view repaired from the log");
                    view = Some(repaired);
                    changed = true;
                }
                Err(ConsumeError::Transient(reason)) => {
                    plan.transient = Some(reason);
                    return;
                }
                Err(ConsumeError::Permanent(reason)) => {
                    // As one by one: each later event would hit the same wall.
                    plan.permanent.extend(
                        plan.events[n..]
                            .iter()
                            .filter(|&&later| {
                                stored_version.is_none_or(|v| events[later].version > v)
                            })
                            .map(|&later| (later, reason.clone())),
                    );
                    break;
                }
            }
            break;
        }
        if changed {
            plan.write = view;
        }
    }

    /// The order's view folded from the log; `Permanent` when the history does not fold or
    /// does not reach `event`'s order at all.
    async fn repaired_view(&self, event: &EventEnvelope) -> Result<OrderView, ConsumeError> {
        let history = self.events.load(event.order_id).await?;
        OrderView::fold(&history)
            .map_err(|e| ConsumeError::Permanent(e.to_string()))?
            .ok_or_else(|| {
                ConsumeError::Permanent(format!(
                    "event {} of order {} is not in the log",
                    event.event_id, event.order_id
                ))
            })
    }

    async fn project_one_by_one(&self, events: &[EventEnvelope]) -> BatchOutcome {
        let mut permanent = Vec::new();
        for (index, event) in events.iter().enumerate() {
            match self.project(event).await {
                Ok(_) => {}
                Err(ConsumeError::Permanent(reason)) => permanent.push((index, reason)),
                Err(ConsumeError::Transient(reason)) => {
                    return BatchOutcome::from_failures(permanent, [(index, reason)]);
                }
            }
        }
        BatchOutcome::from_failures(permanent, [])
    }
}

impl EventConsumer for Projector {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        self.project(event).await.map(|_| ())
    }

    async fn consume_batch(&self, events: &[EventEnvelope]) -> BatchOutcome {
        self.project_batch(events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::{OrderEvent, OrderStatus};
    use order_adapters_sqlite::test_util::TempSqlite;

    struct World {
        _db: TempSqlite,
        events: Arc<dyn EventStore>,
        status: Arc<dyn StatusStore>,
        history: Vec<EventEnvelope>,
    }

    /// A completed order in the log, nothing projected yet.
    async fn given_a_completed_order_in_the_log() -> World {
        let db = TempSqlite::new();
        let history = a_completed_order(&db).await;
        World {
            events: db.events(),
            status: Arc::new(db.db().status_store()),
            history,
            _db: db,
        }
    }

    /// Appends a completed order (versions 1, 2, 3) to `db`'s log; returns its history.
    async fn a_completed_order(db: &TempSqlite) -> Vec<EventEnvelope> {
        let received = db.append_received_order(1, 10).await;
        let mk = |v: u32, e: OrderEvent| {
            let version = Version::new(v).unwrap();
            EventEnvelope::new(
                received.order_id,
                version,
                received.correlation_id.clone(),
                e,
            )
        };
        let history = vec![
            received.clone(),
            mk(2, OrderEvent::OrderProcessingStarted),
            mk(3, OrderEvent::OrderCompleted { total: 10 }),
        ];
        db.events().append(&history[1..]).await.unwrap();
        history
    }

    #[tokio::test]
    async fn events_in_order_are_applied_one_by_one() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        for (i, e) in w.history.iter().enumerate() {
            let v = Version::new(i as u32 + 1).unwrap();
            assert_eq!(projector.project(e).await.unwrap(), Projected::Applied(v));
        }
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record.status, OrderStatus::Completed);
        assert_eq!(record.version.get(), 3);
    }

    #[tokio::test]
    async fn a_duplicate_event_is_a_no_op() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        projector.project(&w.history[0]).await.unwrap();
        projector.project(&w.history[1]).await.unwrap();
        let before = w.status.get(w.history[0].order_id).await.unwrap();
        assert_eq!(
            projector.project(&w.history[0]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(
            projector.project(&w.history[1]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(w.status.get(w.history[0].order_id).await.unwrap(), before);
    }

    #[tokio::test]
    async fn a_gap_is_repaired_from_the_log_and_late_events_are_then_duplicates() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        // The stream delivers v3 first (v1, v2 delayed).
        assert_eq!(
            projector.project(&w.history[2]).await.unwrap(),
            Projected::Repaired(Version::new(3).unwrap())
        );
        assert_eq!(
            projector.project(&w.history[0]).await.unwrap(),
            Projected::Duplicate
        );
        assert_eq!(
            projector.project(&w.history[1]).await.unwrap(),
            Projected::Duplicate
        );
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        let folded = OrderView::fold(&w.history).unwrap().unwrap();
        assert_eq!(record, (&folded).into());
    }

    #[tokio::test]
    async fn every_delivery_order_ends_in_the_same_view() {
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let w = given_a_completed_order_in_the_log().await;
            let projector = Projector::new(w.events.clone(), w.status.clone());
            for i in order {
                projector.project(&w.history[i]).await.unwrap();
            }
            let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
            let folded = OrderView::fold(&w.history).unwrap().unwrap();
            assert_eq!(record, (&folded).into(), "delivery order {order:?}");
        }
    }

    #[tokio::test]
    async fn consuming_an_event_projects_it() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        projector.consume(&w.history[0]).await.unwrap();
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record.status, OrderStatus::Received);
    }

    #[tokio::test]
    async fn an_event_that_is_not_in_the_log_and_cannot_be_applied_is_a_permanent_failure() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        let mut stray = w.history[2].clone();
        stray.order_id = events_schema::OrderId::new_random();
        assert!(matches!(
            projector.consume(&stray).await,
            Err(ConsumeError::Permanent(_))
        ));
        assert_eq!(w.status.get(stray.order_id).await.unwrap(), None);
    }

    /// A status store that counts the records written, and fails the writes of one order
    /// (transiently) while `fail` holds it.
    struct Counting {
        inner: Arc<dyn StatusStore>,
        written: std::sync::Mutex<Vec<events_schema::OrderId>>,
        reads: std::sync::atomic::AtomicUsize,
        fail: std::sync::Mutex<Option<events_schema::OrderId>>,
        /// How the write of `fail`'s view fails (`Unavailable` when unset).
        fail_with: std::sync::Mutex<Option<order_ports::StoreError>>,
        /// What every `get_many` answers instead of reading, when set (`get` still reads).
        get_many_error: std::sync::Mutex<Option<order_ports::StoreError>>,
    }

    impl Counting {
        fn new(inner: Arc<dyn StatusStore>) -> Arc<Self> {
            Arc::new(Counting {
                inner,
                written: Default::default(),
                reads: Default::default(),
                fail: Default::default(),
                fail_with: Default::default(),
                get_many_error: Default::default(),
            })
        }
        fn written(&self) -> Vec<events_schema::OrderId> {
            self.written.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl StatusStore for Counting {
        async fn get(
            &self,
            id: events_schema::OrderId,
        ) -> Result<Option<OrderStatusRecord>, order_ports::StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.get(id).await
        }
        async fn get_many(
            &self,
            ids: &[events_schema::OrderId],
        ) -> Result<HashMap<events_schema::OrderId, OrderStatusRecord>, order_ports::StoreError>
        {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(e) = self.get_many_error.lock().unwrap().clone() {
                return Err(e);
            }
            self.inner.get_many(ids).await
        }
        async fn upsert(
            &self,
            record: &OrderStatusRecord,
        ) -> Result<Upserted, order_ports::StoreError> {
            self.upsert_many(std::slice::from_ref(record))
                .await
                .remove(0)
        }
        async fn upsert_many(
            &self,
            records: &[OrderStatusRecord],
        ) -> Vec<Result<Upserted, order_ports::StoreError>> {
            let fail = *self.fail.lock().unwrap();
            let (failed, passed): (Vec<_>, Vec<_>) =
                records.iter().partition(|r| Some(r.order_id) == fail);
            let passed: Vec<OrderStatusRecord> = passed.into_iter().cloned().collect();
            self.written
                .lock()
                .unwrap()
                .extend(passed.iter().map(|r| r.order_id));
            let mut outcomes = self.inner.upsert_many(&passed).await.into_iter();
            let failed: Vec<_> = failed.iter().map(|r| r.order_id).collect();
            let fail_with = self
                .fail_with
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| order_ports::StoreError::Unavailable("down".into()));
            records
                .iter()
                .map(|r| {
                    if failed.contains(&r.order_id) {
                        Err(fail_with.clone())
                    } else {
                        outcomes.next().unwrap()
                    }
                })
                .collect()
        }
        async fn list_by_customer(
            &self,
            q: &order_ports::CustomerOrdersQuery,
        ) -> Result<order_ports::StatusPage, order_ports::StoreError> {
            self.inner.list_by_customer(q).await
        }
        async fn pending_before(
            &self,
            before: chrono::DateTime<chrono::Utc>,
            cursor: Option<String>,
            limit: usize,
        ) -> Result<order_ports::PendingPage, order_ports::StoreError> {
            self.inner.pending_before(before, cursor, limit).await
        }
    }

    fn folded(history: &[EventEnvelope]) -> OrderStatusRecord {
        (&OrderView::fold(history).unwrap().unwrap()).into()
    }

    #[tokio::test]
    async fn a_batch_with_several_events_of_one_order_reads_and_writes_its_view_once() {
        let w = given_a_completed_order_in_the_log().await;
        let status = Counting::new(w.status.clone());
        let projector = Projector::new(w.events.clone(), status.clone());
        let outcome = projector.project_batch(&w.history).await;
        assert_eq!(outcome, BatchOutcome::default());
        assert_eq!(status.written(), vec![w.history[0].order_id]);
        assert_eq!(status.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record, folded(&w.history));
    }

    #[tokio::test]
    async fn a_batch_of_duplicates_writes_nothing_and_a_batch_on_a_projected_view_moves_it_on() {
        let w = given_a_completed_order_in_the_log().await;
        let status = Counting::new(w.status.clone());
        let projector = Projector::new(w.events.clone(), status.clone());
        projector.project(&w.history[0]).await.unwrap();
        let outcome = projector
            .project_batch(&[
                w.history[0].clone(),
                w.history[1].clone(),
                w.history[2].clone(),
            ])
            .await;
        assert_eq!(outcome, BatchOutcome::default());
        assert_eq!(
            status.written().len(),
            2,
            "one write for v1, one for the batch"
        );
        let again = projector.project_batch(&w.history).await;
        assert_eq!(again, BatchOutcome::default());
        assert_eq!(
            status.written().len(),
            2,
            "a batch of duplicates writes nothing"
        );
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record, folded(&w.history));
    }

    #[tokio::test]
    async fn every_delivery_order_of_a_batch_ends_in_the_same_view() {
        let orders = [
            vec![0, 1, 2],
            vec![0, 2, 1],
            vec![1, 0, 2],
            vec![1, 2, 0],
            vec![2, 0, 1],
            vec![2, 1, 0],
            vec![0, 0, 1, 1, 2, 2],
            vec![2, 2, 0],
        ];
        for order in orders {
            let w = given_a_completed_order_in_the_log().await;
            let projector = Projector::new(w.events.clone(), w.status.clone());
            let batch: Vec<EventEnvelope> = order.iter().map(|&i| w.history[i].clone()).collect();
            assert_eq!(
                projector.project_batch(&batch).await,
                BatchOutcome::default()
            );
            let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
            assert_eq!(record, folded(&w.history), "delivery order {order:?}");
        }
    }

    #[tokio::test]
    async fn a_transient_failure_mid_batch_reports_the_first_event_of_the_first_order_not_written()
    {
        let db = TempSqlite::new();
        let a = a_completed_order(&db).await;
        let b = a_completed_order(&db).await;
        let c = a_completed_order(&db).await;
        let status = Counting::new(Arc::new(db.db().status_store()));
        *status.fail.lock().unwrap() = Some(b[0].order_id);
        let projector = Projector::new(db.events(), status.clone());
        // Interleaved: a1 b1 a2 c1 b2 c2 a3 b3 c3; b's first event is at index 1.
        let batch = vec![
            a[0].clone(),
            b[0].clone(),
            a[1].clone(),
            c[0].clone(),
            b[1].clone(),
            c[1].clone(),
            a[2].clone(),
            b[2].clone(),
            c[2].clone(),
        ];
        let outcome = projector.project_batch(&batch).await;
        assert_eq!(outcome.permanent, vec![]);
        assert_eq!(outcome.transient.map(|(i, _)| i), Some(1));
        // The other orders were written whole (their events after index 1 come again, as
        // duplicates); b was not written at all.
        assert_eq!(status.get(a[0].order_id).await.unwrap(), Some(folded(&a)));
        assert_eq!(status.get(c[0].order_id).await.unwrap(), Some(folded(&c)));
        assert_eq!(status.get(b[0].order_id).await.unwrap(), None);

        // The retry from index 1 finishes b and finds the rest done.
        *status.fail.lock().unwrap() = None;
        assert_eq!(
            projector.project_batch(&batch[1..]).await,
            BatchOutcome::default()
        );
        assert_eq!(status.get(b[0].order_id).await.unwrap(), Some(folded(&b)));
    }

    #[tokio::test]
    async fn a_transient_failure_reading_the_batchs_views_reports_its_first_event_and_writes_nothing(
    ) {
        let db = TempSqlite::new();
        let a = a_completed_order(&db).await;
        let status = Counting::new(Arc::new(db.db().status_store()));
        *status.get_many_error.lock().unwrap() =
            Some(order_ports::StoreError::Unavailable("throttled".into()));
        let projector = Projector::new(db.events(), status.clone());
        let outcome = projector.project_batch(&a).await;
        assert_eq!(outcome.permanent, vec![]);
        assert_eq!(outcome.transient.map(|(i, _)| i), Some(0));
        assert_eq!(
            status.written(),
            vec![],
            "nothing written: the batch comes again"
        );
    }

    #[tokio::test]
    async fn a_view_that_does_not_decode_sends_the_batch_one_by_one_and_every_order_is_written() {
        let db = TempSqlite::new();
        let a = a_completed_order(&db).await;
        let b = a_completed_order(&db).await;
        let status = Counting::new(Arc::new(db.db().status_store()));
        *status.get_many_error.lock().unwrap() = Some(order_ports::StoreError::Corrupt(
            "a record that does not decode".into(),
        ));
        let projector = Projector::new(db.events(), status.clone());
        let batch: Vec<EventEnvelope> = a.iter().chain(&b).cloned().collect();
        assert_eq!(
            projector.project_batch(&batch).await,
            BatchOutcome::default()
        );
        assert_eq!(status.get(a[0].order_id).await.unwrap(), Some(folded(&a)));
        assert_eq!(status.get(b[0].order_id).await.unwrap(), Some(folded(&b)));
    }

    #[tokio::test]
    async fn a_view_write_refused_for_good_sets_that_orders_events_aside_and_the_batch_goes_on() {
        let db = TempSqlite::new();
        let a = a_completed_order(&db).await;
        let b = a_completed_order(&db).await;
        let status = Counting::new(Arc::new(db.db().status_store()));
        *status.fail.lock().unwrap() = Some(b[0].order_id);
        *status.fail_with.lock().unwrap() =
            Some(order_ports::StoreError::Rejected("item too large".into()));
        let projector = Projector::new(db.events(), status.clone());
        let batch = vec![a[0].clone(), b[0].clone(), a[1].clone(), b[1].clone()];
        let outcome = projector.project_batch(&batch).await;
        assert_eq!(outcome.transient, None);
        assert_eq!(
            outcome
                .permanent
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(
            status.get(a[0].order_id).await.unwrap(),
            Some(folded(&a[..2]))
        );
    }

    #[tokio::test]
    async fn a_log_that_does_not_fold_sets_aside_only_the_batchs_events_newer_than_the_stored_view()
    {
        let db = TempSqlite::new();
        let received = db.append_received_order(1, 10).await;
        let mk = |v: u32, e: OrderEvent| {
            EventEnvelope::new(
                received.order_id,
                Version::new(v).unwrap(),
                received.correlation_id.clone(),
                e,
            )
        };
        let started = mk(2, OrderEvent::OrderProcessingStarted);
        // Version 3 is illegal after PROCESSING: the log no longer folds.
        let illegal = mk(3, OrderEvent::OrderProcessingStarted);
        let completed = mk(4, OrderEvent::OrderCompleted { total: 10 });
        db.events()
            .append(&[started.clone(), illegal, completed.clone()])
            .await
            .unwrap();
        let status: Arc<dyn StatusStore> = Arc::new(db.db().status_store());
        let projector = Projector::new(db.events(), status.clone());
        assert_eq!(
            projector
                .project_batch(&[received.clone(), started.clone()])
                .await,
            BatchOutcome::default()
        );
        // v4 (a gap after the stored v2) and v2 again (a duplicate of the stored view).
        let outcome = projector.project_batch(&[completed, started]).await;
        assert_eq!(outcome.transient, None);
        assert_eq!(
            outcome
                .permanent
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            vec![0],
            "only the event the view has not reached is set aside"
        );
        assert_eq!(
            status
                .get(received.order_id)
                .await
                .unwrap()
                .map(|r| r.version.get()),
            Some(2)
        );
    }

    #[tokio::test]
    async fn consuming_a_batch_through_the_consumer_port_projects_it() {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        let outcome = EventConsumer::consume_batch(&projector, &w.history).await;
        assert_eq!(outcome, BatchOutcome::default());
        let record = w.status.get(w.history[0].order_id).await.unwrap();
        assert_eq!(record, Some(folded(&w.history)));
    }

    #[tokio::test]
    async fn a_gap_in_a_batch_is_repaired_from_the_log_and_a_stray_event_is_a_permanent_failure_of_its_own(
    ) {
        let w = given_a_completed_order_in_the_log().await;
        let projector = Projector::new(w.events.clone(), w.status.clone());
        let mut stray = w.history[1].clone();
        stray.order_id = events_schema::OrderId::new_random();
        // v3 before v1 and v2: a gap, repaired from the log; the stray order has no log.
        let outcome = projector
            .project_batch(&[w.history[2].clone(), stray.clone(), w.history[0].clone()])
            .await;
        assert_eq!(outcome.transient, None);
        assert_eq!(
            outcome
                .permanent
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            vec![1]
        );
        let record = w.status.get(w.history[0].order_id).await.unwrap().unwrap();
        assert_eq!(record, folded(&w.history));
        assert_eq!(w.status.get(stray.order_id).await.unwrap(), None);
    }
}
