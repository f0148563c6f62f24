//! Tests of the fault layer (`order_test_support::fault`), over the SQLite adapters.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use events_schema::{EventEnvelope, EventId, OrderId, OrderStatusRecord};
use order_ports::feed::{Feed, FeedRecord};
use order_ports::{
    AppendError, Delivery, EventStore, Notification, Publisher, StatusStore, StoreError, Upserted,
    WorkQueue,
};

use events_schema::OrderView;

use order_adapters_sqlite::test_util::TempSqlite;
use order_ports::feed::catch_up_once;
use order_ports::{ConsumeError, EventConsumer};
use order_test_support::fault::*;
use order_test_support::order_received;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const VISIBILITY: Duration = Duration::from_secs(30);

struct Ports {
    db: TempSqlite,
    events: FaultyEventStore,
    queue: FaultyWorkQueue,
    status: FaultyStatusStore,
    publisher: FaultyPublisher,
}

fn faulty_ports(config: FaultConfig) -> (Ports, Arc<Faults>) {
    let db = TempSqlite::new();
    let faults = Faults::new(config);
    let ports = Ports {
        events: FaultyEventStore::new(db.events(), faults.clone()),
        queue: FaultyWorkQueue::new(Arc::new(db.db().work_queue(100)), faults.clone()),
        status: FaultyStatusStore::new(Arc::new(db.db().status_store()), faults.clone()),
        publisher: FaultyPublisher::new(Arc::new(db.db().publisher()), faults.clone()),
        db,
    };
    (ports, faults)
}

fn notification(event: &EventEnvelope) -> Notification {
    Notification {
        event_id: event.event_id,
        message: "{}".to_owned(),
        attributes: BTreeMap::new(),
    }
}

#[tokio::test]
async fn a_fault_rate_of_zero_passes_every_call_through() {
    let (p, faults) = faulty_ports(FaultConfig::new(7, 0.0));
    let received = order_received(1, 10);
    let id = received.order_id;
    p.events
        .append(std::slice::from_ref(&received))
        .await
        .unwrap();
    assert_eq!(
        p.events.load(id).await.unwrap(),
        std::slice::from_ref(&received)
    );
    assert_eq!(p.events.read_all(None, 10).await.unwrap().events.len(), 1);
    p.queue.send(id).await.unwrap();
    let got = p.queue.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, id.to_string());
    p.queue.ack(&got[0]).await.unwrap();
    let view = OrderView::start(&received).unwrap();
    let record = OrderStatusRecord::from(&view);
    assert_eq!(p.status.upsert(&record).await.unwrap(), Upserted::Written);
    assert_eq!(p.status.get(id).await.unwrap(), Some(record));
    p.publisher.publish(&notification(&received)).await.unwrap();
    assert_eq!(p.publisher.published()[&received.event_id], 1);
    assert_eq!(faults.total(), 0, "{}", faults.report());
    assert_eq!(p.queue.pending_redeliveries(), 0);
}

#[tokio::test]
async fn a_fault_rate_of_one_fails_every_call() {
    let (p, faults) = faulty_ports(FaultConfig::new(7, 1.0));
    let received = order_received(1, 10);
    let id = received.order_id;
    let unavailable = |e: StoreError| assert!(e.is_transient(), "{e}");
    match p.events.append(std::slice::from_ref(&received)).await {
        Err(AppendError::Store(e)) => unavailable(e),
        other => panic!("append: {other:?}"),
    }
    unavailable(p.events.load(id).await.unwrap_err());
    unavailable(p.events.read_all(None, 10).await.unwrap_err());
    unavailable(p.queue.send(id).await.unwrap_err());
    unavailable(p.queue.receive(10, VISIBILITY).await.unwrap_err());
    let delivery = Delivery {
        message_id: "m".to_owned(),
        receipt: "r".to_owned(),
        body: id.to_string(),
        receive_count: 1,
    };
    unavailable(p.queue.ack(&delivery).await.unwrap_err());
    unavailable(p.queue.fail(&delivery).await.unwrap_err());
    let record = OrderStatusRecord::from(&OrderView::start(&received).unwrap());
    unavailable(p.status.upsert(&record).await.unwrap_err());
    unavailable(p.status.get(id).await.unwrap_err());
    unavailable(
        p.publisher
            .publish(&notification(&received))
            .await
            .unwrap_err(),
    );
    assert_eq!(faults.total(), 10, "{}", faults.report());
}

#[tokio::test]
async fn a_lost_response_is_an_error_for_a_write_that_happened() {
    let (p, faults) = faulty_ports(FaultConfig {
        lost_response_share: 1.0,
        ..FaultConfig::new(3, 1.0)
    });
    let received = order_received(1, 10);
    assert!(p
        .events
        .append(std::slice::from_ref(&received))
        .await
        .is_err());
    assert_eq!(faults.count(FaultKind::LostResponse), 1);
    // Reads are never lost responses: this one fails before reaching the store.
    assert!(p.events.load(received.order_id).await.is_err());
    assert_eq!(faults.count(FaultKind::Unavailable), 1);
    assert_eq!(
        p.db.events().load(received.order_id).await.unwrap(),
        [received]
    );
}

#[tokio::test]
async fn batch_writes_meet_lost_responses_item_by_item_having_written_everything() {
    let (p, faults) = faulty_ports(FaultConfig {
        lost_response_share: 1.0,
        ..FaultConfig::new(5, 1.0)
    });
    let (a, b) = (order_received(1, 10), order_received(2, 10));
    let outcomes = p
        .events
        .append_many(&[std::slice::from_ref(&a), std::slice::from_ref(&b)])
        .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(AppendError::Store(e)) if e.is_transient())),
        "{outcomes:?}"
    );
    assert_eq!(faults.count(FaultKind::LostResponse), 2);
    for e in [&a, &b] {
        assert_eq!(
            p.db.events().load(e.order_id).await.unwrap(),
            std::slice::from_ref(e)
        );
    }

    let batch = [notification(&a), notification(&b)];
    let err = p.publisher.publish_batch(&batch).await.unwrap_err();
    assert_eq!(err.index, 0, "a lost response names the first: {err}");
    assert!(err.error.is_transient());
    assert_eq!(p.publisher.published()[&a.event_id], 1);
    assert_eq!(p.publisher.published()[&b.event_id], 1);
    assert_eq!(faults.count(FaultKind::LostResponse), 3);
}

/// Whether each of `n` loads failed, under `seed`.
async fn fault_pattern(seed: u64, n: usize) -> Vec<bool> {
    let (p, _) = faulty_ports(FaultConfig::new(seed, 0.1));
    let id = OrderId::new_random();
    let mut pattern = Vec::with_capacity(n);
    for _ in 0..n {
        pattern.push(p.events.load(id).await.is_err());
    }
    pattern
}

#[tokio::test]
async fn the_same_seed_injects_the_same_faults() {
    let first = fault_pattern(42, 1000).await;
    assert_eq!(first, fault_pattern(42, 1000).await);
    assert_ne!(first, fault_pattern(43, 1000).await);
    let failed = first.iter().filter(|f| **f).count();
    assert!((60..=140).contains(&failed), "{failed} of 1000 at 10%");
}

#[tokio::test]
async fn a_received_message_is_delivered_again_before_it_is_acked() {
    let mut kinds = HashSet::new();
    for seed in 0..12 {
        let (p, faults) = faulty_ports(FaultConfig {
            redelivery_rate: 1.0,
            ..FaultConfig::new(seed, 0.0)
        });
        p.queue.send(OrderId::new_random()).await.unwrap();
        let first = p.queue.receive(1, VISIBILITY).await.unwrap();
        assert_eq!(first.len(), 1);
        let stashed = p.queue.pending_redeliveries() == 1;
        assert_eq!(faults.count(FaultKind::SpuriousFail), u64::from(!stashed));
        let again = p.queue.receive(1, VISIBILITY).await.unwrap();
        assert_eq!(again.len(), 1, "message not delivered again");
        assert_eq!(again[0].message_id, first[0].message_id);
        // Either the stashed copy (the same receipt) or the message made visible again
        // (a new receipt and one more receive).
        let expected = if stashed {
            assert_eq!(faults.count(FaultKind::Redelivered), 1);
            (first[0].receipt.clone(), 1)
        } else {
            assert_ne!(again[0].receipt, first[0].receipt);
            (again[0].receipt.clone(), 2)
        };
        assert_eq!((again[0].receipt.clone(), again[0].receive_count), expected);
        kinds.insert(expected.1);
    }
    assert_eq!(kinds.len(), 2, "both kinds of redelivery were tried");
}

/// A feed over a fixed list that, like the SQLite feed, polls from its checkpoint (up to
/// `page` records), and checks every commit against what the consumer finished.
struct ListFeed {
    events: Vec<EventEnvelope>,
    page: usize,
    /// The next position to deliver: the one after the checkpoint.
    next: usize,
    finished: Arc<Mutex<HashSet<EventId>>>,
    violations: Vec<String>,
}

impl Feed for ListFeed {
    type Position = usize;

    async fn poll(&mut self) -> Result<Vec<FeedRecord<usize>>, StoreError> {
        let end = (self.next + self.page).min(self.events.len());
        Ok((self.next..end)
            .map(|i| FeedRecord {
                position: i,
                event: Ok(self.events[i].clone()),
            })
            .collect())
    }

    async fn commit(&mut self, position: &usize) -> Result<(), StoreError> {
        let finished = lock(&self.finished);
        for i in 0..=*position {
            if !finished.contains(&self.events[i].event_id) {
                self.violations
                    .push(format!("commit of {position} before record {i} finished"));
            }
        }
        if *position + 1 < self.next {
            self.violations
                .push(format!("commit of {position} moved the checkpoint back"));
        }
        self.next = *position + 1;
        Ok(())
    }

    fn retry_from(&mut self, position: &usize) {
        if *position != self.next {
            self.violations.push(format!(
                "retry from {position}, but the checkpoint is before {}",
                self.next
            ));
        }
    }

    fn idle_pause(&self) -> Duration {
        Duration::ZERO
    }
}

/// Fails each event transiently the first time it sees it, one in three times.
struct Flaky {
    finished: Arc<Mutex<HashSet<EventId>>>,
    calls: Mutex<u64>,
}

impl EventConsumer for Flaky {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), ConsumeError> {
        let call = {
            let mut calls = lock(&self.calls);
            *calls += 1;
            *calls
        };
        if call % 3 == 0 && !lock(&self.finished).contains(&event.event_id) {
            return Err(ConsumeError::Transient("flaky".to_owned()));
        }
        lock(&self.finished).insert(event.event_id);
        Ok(())
    }
}

#[tokio::test]
async fn the_faulty_feed_never_commits_past_an_unfinished_record() {
    let finished = Arc::new(Mutex::new(HashSet::new()));
    let events: Vec<EventEnvelope> = (0..200).map(|_| order_received(1, 10)).collect();
    let inner = ListFeed {
        events: events.clone(),
        page: 16,
        next: 0,
        finished: finished.clone(),
        violations: Vec::new(),
    };
    let faults = Faults::new(FaultConfig::new(11, 0.3));
    let mut feed = FaultyFeed::new(inner, faults.clone(), "feed");
    let consumer = Flaky {
        finished: finished.clone(),
        calls: Mutex::new(0),
    };
    let mut rounds = 0;
    while feed.inner().next < events.len() {
        rounds += 1;
        assert!(rounds < 10_000, "the feed never caught up");
        let _ = catch_up_once(&mut feed, "test", &consumer).await;
    }
    let violations = &feed.inner().violations;
    assert!(
        violations.is_empty(),
        "{} violations of the commit contract, the first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    assert_eq!(lock(&finished).len(), events.len());
    for kind in [
        FaultKind::Unavailable,
        FaultKind::LostResponse,
        FaultKind::Duplicated,
        FaultKind::Reordered,
    ] {
        assert!(faults.count(kind) > 0, "no {kind:?}: {}", faults.report());
    }
}

#[tokio::test]
async fn the_faulty_feed_delivers_each_record_as_is_at_a_rate_of_zero() {
    let finished = Arc::new(Mutex::new(HashSet::new()));
    let events: Vec<EventEnvelope> = (0..40).map(|_| order_received(1, 10)).collect();
    let inner = ListFeed {
        events: events.clone(),
        page: 16,
        next: 0,
        finished: finished.clone(),
        violations: Vec::new(),
    };
    let mut feed = FaultyFeed::new(inner, Faults::new(FaultConfig::new(1, 0.0)), "feed");
    let batch = feed.poll().await.unwrap();
    let ids: Vec<EventId> = batch
        .iter()
        .map(|r| r.event.as_ref().unwrap().event_id)
        .collect();
    let expected: Vec<EventId> = events[..16].iter().map(|e| e.event_id).collect();
    assert_eq!(ids, expected);
    lock(&finished).extend(expected);
    feed.commit(&batch[15].position).await.unwrap();
    assert_eq!(feed.inner().next, 16);
    assert!(batch[3].position.to_string().starts_with("3 "));
}
