//! No order left behind, on the embedded default: clients that hang up mid-request, and a server
//! killed with SIGKILL at random moments under load. Whatever got into the log must end
//! `COMPLETED` or `FAILED`, exactly once, and `orders verify` must find nothing wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use events_schema::{EventEnvelope, OrderEvent};
use order_adapters_sqlite::SqliteDb;
use order_ports::EventStore;
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Every order of the log with its history, read page by page through the adapter (while the
/// server may still be running on the same file: readers never block the writer).
async fn histories(data: &Path) -> BTreeMap<String, Vec<EventEnvelope>> {
    let db = SqliteDb::open(data).expect("open the data file");
    let events = db.event_store();
    let mut out: BTreeMap<String, Vec<EventEnvelope>> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = events.read_all(cursor, 1000).await.expect("read the log");
        for event in page.events {
            out.entry(event.order_id.to_string())
                .or_default()
                .push(event);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

fn is_finished(history: &[EventEnvelope]) -> bool {
    matches!(
        history.last().map(|e| &e.event),
        Some(OrderEvent::OrderCompleted { .. } | OrderEvent::OrderFailed { .. })
    )
}

/// Waits until the log holds at least one order and every order in it is finished; returns them.
async fn wait_until_every_logged_order_is_finished(
    data: &Path,
    within: Duration,
) -> BTreeMap<String, Vec<EventEnvelope>> {
    let deadline = Instant::now() + within;
    loop {
        let all = histories(data).await;
        let pending: Vec<&String> = all
            .iter()
            .filter(|(_, h)| !is_finished(h))
            .map(|(id, _)| id)
            .collect();
        if !all.is_empty() && pending.is_empty() {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders in the log are still pending after {within:?}, e.g. {:?}",
            pending.len(),
            all.len(),
            pending.first()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `orders verify` on the file and asserts it exits 0.
fn assert_verify_is_clean(data: &Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["verify", "--pending-after", "0s", "--data"])
        .arg(data)
        .output()
        .expect("run orders verify");
    assert!(
        output.status.success(),
        "orders verify found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_clients_that_hang_up_right_after_sending_leave_no_order_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let server = Server::start(&data);
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("an http base URL")
        .to_owned();

    // Each client sends a whole, valid request and closes the connection without reading the
    // answer, after 0 to 29 ms: some before the server has even read the request, most while
    // the request is in flight.
    let clients = (0..300u32).map(|n| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let body = order_body("hang-up", n).to_string();
            let request = format!(
                "POST /orders HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("send the request");
            tokio::time::sleep(Duration::from_millis(u64::from(n % 30))).await;
            drop(stream);
        })
    });
    for client in futures::future::join_all(clients).await {
        client.expect("client task");
    }

    let all = wait_until_every_logged_order_is_finished(&data, Duration::from_secs(60)).await;
    eprintln!(
        "hang-up storm: {} of 300 orders reached the log, all finished",
        all.len()
    );
    assert!(all.len() <= 300);
    for (id, history) in &all {
        let versions: Vec<u32> = history.iter().map(|e| e.version.get()).collect();
        assert_eq!(versions, [1, 2, 3], "history of {id}");
    }
    server.terminate();
    assert_verify_is_clean(&data);
}

/// A small xorshift, seeded from the clock and printed, so a failing run can be replayed.
struct Dice(u64);

impl Dice {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

const CRASH_LOOP_ORDERS: u32 = 3_000;
const CRASHES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_three_times_at_random_moments_completes_every_accepted_order_once() {
    let seed = std::env::var("ORDERS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash loop: ORDERS_TEST_SEED={seed}");
    let mut dice = Dice(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let client = client();

    // Orders still to send (every one keyed, so a retry after a crash is the same order), and
    // the order id each one was answered with.
    let to_send: Arc<Mutex<Vec<u32>>> =
        Arc::new(Mutex::new((0..CRASH_LOOP_ORDERS).rev().collect()));
    let accepted: Arc<Mutex<HashMap<u32, String>>> = Arc::default();

    for round in 0..=CRASHES {
        let server = Server::start(&data);
        let down = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..16)
            .map(|_| {
                let (client, base) = (client.clone(), server.base.clone());
                let (to_send, accepted, down) = (to_send.clone(), accepted.clone(), down.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(n) = to_send.lock().expect("lock").pop() else {
                            return;
                        };
                        let key = format!("crash-loop-{n}");
                        let sent =
                            post_order(&client, &base, &order_body("crash", n), Some(&key)).await;
                        match sent {
                            Ok((202, body)) => {
                                let id = body["orderId"].as_str().expect("orderId").to_owned();
                                let previous = accepted.lock().expect("lock").insert(n, id.clone());
                                assert!(
                                    previous.is_none_or(|p| p == id),
                                    "a retry of order {n} got another id"
                                );
                            }
                            Ok((503, _)) => to_send.lock().expect("lock").push(n),
                            Ok((status, body)) => panic!("order {n}: unexpected {status}: {body}"),
                            Err(e) => {
                                // The server is gone: this order's fate is unknown; send it
                                // again (same key) to the next server.
                                to_send.lock().expect("lock").push(n);
                                assert!(
                                    down.load(Ordering::SeqCst),
                                    "order {n}: the server failed while up: {e}"
                                );
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        if round < CRASHES {
            let wait = dice.between(150, 700);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            down.store(true, Ordering::SeqCst);
            server.kill();
            eprintln!(
                "crash loop: SIGKILL {} after {wait} ms, {} orders accepted so far",
                round + 1,
                accepted.lock().expect("lock").len()
            );
            for sender in futures::future::join_all(senders).await {
                sender.expect("sender task");
            }
        } else {
            for sender in futures::future::join_all(senders).await {
                sender.expect("sender task");
            }
            let ids: HashSet<String> = accepted.lock().expect("lock").values().cloned().collect();
            assert_eq!(
                ids.len(),
                CRASH_LOOP_ORDERS as usize,
                "every order was accepted once"
            );
            assert_all_completed_once(&client, &server.base, &data, &ids).await;
            let logged = histories(&data).await;
            assert_eq!(
                logged.keys().cloned().collect::<HashSet<_>>(),
                ids,
                "the log holds exactly the accepted orders: keyed retries made no second order"
            );
            server.terminate();
        }
    }
    assert_verify_is_clean(&data);
}
