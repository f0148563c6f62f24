//! Slow and greedy clients against the real `orders serve`: hundreds of connections that send
//! half a request, or headers and then a trickle of body, do not stop `/health` and
//! `POST /orders` from answering; the server closes the first after `--header-timeout`, answers
//! the second `408` after `--body-timeout`; and an address over `--max-connections-per-ip` has
//! its extra connections closed at once while other clients are served. And a client that sends
//! a whole `POST /orders` and hangs up before the answer still has its order taken in and
//! completed.
//!
//! The greedy clients connect from other loopback addresses (127.0.0.2, 127.0.0.3) than the
//! well-behaved one (127.0.0.1), as different hosts would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::customer_orders::walk_customer_orders;
use crate::support::{client, order_body, Server};

fn server_addr(server: &Server) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .expect("http base")
        .parse()
        .expect("socket address")
}

/// A connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("source address"))
        .expect("bind the source address");
    socket.connect(to).await.expect("connect")
}

/// Opens `n` connections from `from` and sends `prefix` on each, all at once.
async fn open_many(n: usize, from: &str, to: SocketAddr, prefix: &[u8]) -> Vec<TcpStream> {
    futures::future::join_all((0..n).map(|_| async {
        let mut stream = connect_from(from, to).await;
        stream.write_all(prefix).await.expect("send the prefix");
        stream
    }))
    .await
}

/// What the server does with `stream` within `within`: `Some(bytes)` once it has closed the
/// connection (what it sent before closing, maybe nothing), `None` if it is still open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// `/health` and one `POST /orders` from 127.0.0.1 each answer within `within`.
async fn assert_served(server: &Server, within: Duration) {
    let client = client();
    let started = Instant::now();
    let health = tokio::time::timeout(within, client.get(format!("{}/health", server.base)).send())
        .await
        .unwrap_or_else(|_| panic!("GET /health took over {within:?}"))
        .expect("GET /health");
    assert_eq!(health.status(), 200);
    let posted = tokio::time::timeout(
        within,
        client
            .post(format!("{}/orders", server.base))
            .json(&order_body("slow-test", 1))
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("POST /orders took over {within:?}"))
    .expect("POST /orders");
    assert_eq!(posted.status(), 202);
    eprintln!("health and one order answered in {:?}", started.elapsed());
}

#[tokio::test]
async fn hundreds_of_slow_clients_neither_stop_the_service_nor_keep_their_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let server = Server::start_with_args(&[
        "--data",
        data.to_str().expect("utf-8 path"),
        "--header-timeout",
        "3",
        "--body-timeout",
        "3",
    ]);
    let addr = server_addr(&server);

    let mut half_heads = open_many(
        400,
        "127.0.0.2",
        addr,
        b"POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Ty",
    )
    .await;
    let mut slow_bodies = open_many(
        200,
        "127.0.0.3",
        addr,
        b"POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n\
          Content-Length: 200\r\n\r\n{\"customerId\":",
    )
    .await;
    let held_since = Instant::now();

    assert_served(&server, Duration::from_secs(2)).await;

    // Every half head is closed once its 3 s are up (with room for 600 connections' worth of
    // scheduling on a busy machine), without an answer.
    let mut closed = 0;
    for stream in &mut half_heads {
        let left = Duration::from_secs(8).saturating_sub(held_since.elapsed());
        if closed_within(stream, left).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        half_heads.len(),
        "half-sent heads still held after {:?}",
        held_since.elapsed()
    );

    // Every trickled body gets a 408 problem, then the connection is closed.
    for stream in &mut slow_bodies {
        let left = Duration::from_secs(8).saturating_sub(held_since.elapsed());
        let answer = closed_within(stream, left.max(Duration::from_secs(1)))
            .await
            .expect("a slow body's connection is closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }

    assert_served(&server, Duration::from_secs(2)).await;
    server.terminate();
}

#[tokio::test]
async fn an_address_over_its_connection_cap_is_closed_at_once_while_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let server = Server::start_with_args(&[
        "--data",
        data.to_str().expect("utf-8 path"),
        "--max-connections-per-ip",
        "100",
        "--header-timeout",
        "60",
    ]);
    let addr = server_addr(&server);

    // One at a time, so which ones are over the cap is known: the last 50.
    let mut greedy = Vec::new();
    for _ in 0..150 {
        let mut stream = connect_from("127.0.0.2", addr).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\n")
            .await
            .expect("send");
        greedy.push(stream);
    }
    let outcomes = futures::future::join_all(
        greedy
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(2))),
    )
    .await;
    let closed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| outcome.is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed, (100..150).collect::<Vec<_>>());
    assert_served(&server, Duration::from_secs(2)).await;

    // A place freed is a place taken again.
    drop(greedy.remove(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.2", addr).await;
    again
        .write_all(b"GET /health HTTP/1.1\r\nHost: orders\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(2), again.read_exact(&mut buf))
        .await
        .expect("answered in time")
        .expect("read the status line");
    assert_eq!(&buf, b"HTTP/1.1 200");
    // Hung up first, so the graceful stop does not wait out their half-sent heads.
    drop((greedy, again));
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_whole_order_whose_client_hangs_up_before_the_answer_is_completed() {
    const CLIENTS: u32 = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("orders.db");
    let server = Server::start(&data);
    let addr = server_addr(&server);
    // Unique, so the listing below can only find the orders of these clients.
    let customer = format!("hang-up-{}", std::process::id());

    // Each client writes a complete request and closes its socket at once, without reading:
    // the server sees the end of the stream while (or before) it handles the request.
    let clients = (0..CLIENTS).map(|n| {
        let body = order_body(&customer, n).to_string();
        async move {
            let request = format!(
                "POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("send the request");
            drop(stream);
        }
    });
    futures::future::join_all(clients).await;

    // Nobody got a 202 to poll by id: the customer's listing is where they show up.
    let client = client();
    let query = format!("customerId={customer}&limit=100");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let orders: Vec<serde_json::Value> = walk_customer_orders(&client, &server.base, &query)
            .await
            .into_iter()
            .flatten()
            .collect();
        let completed = orders.iter().filter(|o| o["status"] == "COMPLETED").count();
        if completed == CLIENTS as usize && orders.len() == CLIENTS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, {} of {CLIENTS} hung-up orders are listed, {completed} completed",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.terminate();
}
