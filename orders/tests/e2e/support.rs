//! Starts `orders serve` as a child process and talks to it.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Server {
    child: Child,
    pub base: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts `orders serve` on a free port with the given data file.
    pub fn start(data: &Path) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orders"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--visibility-timeout",
                "2",
            ])
            .arg("--data")
            .arg(data);
        Server::spawn(command, data.to_owned())
    }

    /// Starts `orders serve --listen 127.0.0.1:0` followed by `args` (e.g. `--backend aws …`);
    /// `data` is empty.
    pub fn start_with_args(args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orders"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        Server::spawn(command, PathBuf::new())
    }

    fn spawn(mut command: Command, data: PathBuf) -> Server {
        let mut child = command
            .env("ORDERS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start orders serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, base, data }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "orders serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    // reqwest is built for rustls without a crypto provider of its own (`orders loadtest`
    // over https): a client needs the process's default provider, even for plain http.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn order_body(customer: &str, n: u32) -> Value {
    json!({
        "customerId": customer,
        "items": [
            {"productId": format!("p-{n}"), "quantity": 1 + n % 5, "unitPrice": 100 + n},
            {"productId": "p-common", "quantity": 2, "unitPrice": 250}
        ],
        "currency": "EUR"
    })
}

/// POSTs an order; returns (status, body).
pub async fn post_order(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Result<(u16, Value)> {
    let mut request = client
        .post(format!("{base}/orders"))
        .header("content-type", "application/json")
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await?;
    Ok((status, body))
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Polls until every order is COMPLETED at version 3 (or the deadline passes).
pub async fn wait_until_completed(client: &reqwest::Client, base: &str, ids: &HashSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: Vec<String> = ids.iter().cloned().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let (status, body) = get_json(client, &format!("{base}/orders/{id}")).await;
            assert_eq!(status, 200, "GET /orders/{id}: {body}");
            if body["status"] != "COMPLETED" {
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} orders never completed, e.g. {}",
                pending.len(),
                pending[0]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Asserts what every accepted order must look like at the end: COMPLETED at version 3, a
/// history of exactly versions 1, 2, 3, and exactly one notification.
pub async fn assert_all_completed_once(
    client: &reqwest::Client,
    base: &str,
    data: &Path,
    ids: &HashSet<String>,
) {
    wait_until_completed(client, base, ids).await;
    for id in ids {
        let (_, view) = get_json(client, &format!("{base}/orders/{id}")).await;
        assert_eq!(view["status"], "COMPLETED", "{view}");
        assert_eq!(view["version"], 3, "{view}");
        let (status, history) = get_json(client, &format!("{base}/orders/{id}/events")).await;
        assert_eq!(status, 200);
        let versions: Vec<u64> = history["events"]
            .as_array()
            .expect("events array")
            .iter()
            .map(|e| e["version"].as_u64().expect("version"))
            .collect();
        assert_eq!(versions, vec![1, 2, 3], "history of {id}");
        let types: Vec<&str> = history["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["eventType"].as_str().expect("type"))
            .collect();
        assert_eq!(
            types,
            vec!["OrderReceived", "OrderProcessingStarted", "OrderCompleted"]
        );
    }
    // Notifications are published by a subscriber that may trail the projection a little.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let per_order = notifications_per_order(data);
        let complete = ids.iter().all(|id| per_order.contains_key(id));
        if complete || Instant::now() > deadline {
            for id in ids {
                assert_eq!(per_order.get(id), Some(&1), "notifications for {id}");
            }
            // An order whose 202 was lost to a crash may exist too: once, like any other.
            assert!(
                per_order.values().all(|n| *n == 1),
                "an order was notified more than once: {per_order:?}"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `orders notifications` and counts the lines per orderId attribute.
pub fn notifications_per_order(data: &Path) -> BTreeMap<String, usize> {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["notifications", "--data"])
        .arg(data)
        .output()
        .expect("orders notifications");
    assert!(output.status.success(), "orders notifications failed");
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let n: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(n["attributes"]["eventType"], "OrderCompleted");
        assert_eq!(n["message"]["eventId"], n["eventId"]);
        let id = n["attributes"]["orderId"]
            .as_str()
            .expect("orderId")
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// An error answer of the API, taken apart: what every problem+json check looks at.
pub struct ProblemResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl ProblemResponse {
    pub async fn read(response: reqwest::Response) -> ProblemResponse {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.json().await.expect("a JSON problem document");
        ProblemResponse {
            status,
            content_type,
            body,
        }
    }

    /// The `field` of each entry of `errors` (empty when there is no such list).
    pub fn fields(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().expect("each error names a field"))
                    .collect()
            })
            .unwrap_or_default()
    }
}
