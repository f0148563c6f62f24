//! [`AppendThenEnqueue`] over a real log (the SQLite adapter) and a queue that refuses: a stored
//! order is accepted even when it cannot be queued, and one that could not be stored is not;
//! [`send_after_append`]'s brief tries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events_schema::{OrderId, Version};
use order_adapters_sqlite::test_util::TempSqlite;
use order_ports::{
    send_after_append, AppendThenEnqueue, Delivery, EventStore, OrderIntake, StoreError, WorkQueue,
};
use order_test_support::order_received;

/// A queue whose sends fail with the listed errors first, in order, then succeed; it
/// counts the tries.
#[derive(Default)]
struct Refusing {
    failures: Mutex<Vec<StoreError>>,
    tries: Mutex<u32>,
}

impl Refusing {
    fn with(failures: Vec<StoreError>) -> Self {
        Self {
            failures: Mutex::new(failures),
            tries: Mutex::new(0),
        }
    }
    fn tries(&self) -> u32 {
        *self.tries.lock().expect("lock")
    }
}

#[async_trait]
impl WorkQueue for Refusing {
    async fn send(&self, _: OrderId) -> Result<(), StoreError> {
        *self.tries.lock().expect("lock") += 1;
        let mut failures = self.failures.lock().expect("lock");
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.remove(0))
        }
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

fn down() -> StoreError {
    StoreError::Unavailable("ThrottlingException".into())
}

#[tokio::test]
async fn a_stored_order_whose_send_keeps_failing_is_accepted_and_counted_as_not_queued() {
    let db = TempSqlite::new();
    let queue = Arc::new(Refusing::with(vec![down(), down(), down()]));
    let intake = AppendThenEnqueue {
        events: Arc::new(db.db().event_store()),
        queue: queue.clone(),
    };
    let received = order_received(1, 100);
    let captured = Arc::new(order_ports::metrics::Captured::default());
    let accepted = order_ports::metrics::scoped(captured.clone(), intake.accept(&received)).await;
    assert_eq!(accepted, Ok(()));
    assert_eq!(queue.tries(), 3);
    let logged = db.db().event_store().load(received.order_id).await;
    let ids: Vec<_> = logged.expect("load").iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec![received.event_id]);
    assert_eq!(captured.taken(), ["OrderNotQueued"]);
}

#[tokio::test]
async fn an_order_that_could_not_be_stored_is_not_accepted_and_nothing_is_sent() {
    let db = TempSqlite::new();
    let queue = Arc::new(Refusing::default());
    let intake = AppendThenEnqueue {
        events: Arc::new(db.db().event_store()),
        queue: queue.clone(),
    };
    let mut not_first = order_received(1, 100);
    not_first.version = Version::new(2).expect("2");
    assert!(intake.accept(&not_first).await.is_err());
    assert_eq!(queue.tries(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_send_that_fails_twice_transiently_gets_through_on_the_third_try() {
    let queue = Refusing::with(vec![down(), down()]);
    let started = tokio::time::Instant::now();
    send_after_append(&queue, OrderId::new_random(), None)
        .await
        .expect("the third try gets through");
    assert_eq!(queue.tries(), 3);
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_send_that_keeps_failing_is_given_up_after_three_tries() {
    let queue = Refusing::with(vec![down(), down(), down(), down()]);
    let result = send_after_append(&queue, OrderId::new_random(), None).await;
    assert_eq!(result, Err(down()));
    assert_eq!(queue.tries(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_send_refused_for_good_is_not_tried_again() {
    let refused = StoreError::Rejected("AccessDenied".into());
    let queue = Refusing::with(vec![refused.clone()]);
    let result = send_after_append(&queue, OrderId::new_random(), None).await;
    assert_eq!(result, Err(refused));
    assert_eq!(queue.tries(), 1);
}
