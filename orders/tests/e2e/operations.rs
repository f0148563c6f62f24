//! Operating `orders serve`: one correlation id followed through every step (responses, events,
//! notification, the log lines of the four steps), and `GET /metrics` counting exactly what
//! happened.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{client, get_json, order_body, wait_until_completed};

/// `orders serve` on a free port with JSON logs at info level into `log`.
struct Logged {
    child: Child,
    base: String,
}

impl Logged {
    fn start(data: &Path, log: &Path, extra: &[&str]) -> Logged {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_orders"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("ORDERS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start orders serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Logged { child, base }
    }

    /// SIGTERM and wait: every log line is written when this returns.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "orders serve exits 0 on SIGTERM, got {status}"
        );
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn notifications(data: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["notifications", "--data"])
        .arg(data)
        .output()
        .expect("orders notifications");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

async fn wait_for_notification(data: &Path, order_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(n) = notifications(data)
            .into_iter()
            .find(|n| n["attributes"]["orderId"] == order_id)
        {
            return n;
        }
        assert!(Instant::now() < deadline, "no notification for {order_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A field of a JSON log line: the event's own, else its current span's.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line.get(name)
        .or_else(|| line.get("span").and_then(|s| s.get(name)))
        .and_then(Value::as_str)
}

#[tokio::test]
async fn one_correlation_id_follows_an_order_through_every_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, log) = (dir.path().join("orders.db"), dir.path().join("serve.log"));
    let server = Logged::start(&data, &log, &[]);
    let http = client();
    let correlation = format!("ops-test-{}", std::process::id());

    let response = http
        .post(format!("{}/orders", server.base))
        .header("X-Correlation-Id", &correlation)
        .json(&order_body("cust-ops", 1))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.headers()["x-correlation-id"], correlation.as_str());
    let order_id = response.json::<Value>().await.expect("body")["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned();
    wait_until_completed(&http, &server.base, &HashSet::from([order_id.clone()])).await;

    // Every response echoes it: a read, and an error.
    for url in [
        format!("{}/orders/{order_id}", server.base),
        format!("{}/orders/not-a-uuid", server.base),
    ] {
        let response = http
            .get(&url)
            .header("X-Correlation-Id", &correlation)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            response.headers()["x-correlation-id"],
            correlation.as_str(),
            "{url}"
        );
    }
    // Without one, a response still carries a (generated) id.
    let response = http
        .get(format!("{}/orders/not-a-uuid", server.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 400);
    assert!(!response.headers()["x-correlation-id"].is_empty());

    let (_, history) = get_json(&http, &format!("{}/orders/{order_id}/events", server.base)).await;
    let events = history["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    for event in events {
        assert_eq!(event["correlationId"], correlation.as_str(), "{event}");
    }

    let notification = wait_for_notification(&data, &order_id).await;
    assert_eq!(
        notification["message"]["correlationId"],
        correlation.as_str()
    );
    assert_eq!(
        notification["attributes"]["correlationId"],
        correlation.as_str()
    );

    server.stop();
    let text = std::fs::read_to_string(&log).expect("read the log");
    let mut steps: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let line: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        if field(&line, "correlationId") != Some(correlation.as_str()) {
            continue;
        }
        if let Some(step) = field(&line, "step") {
            *steps.entry(step.to_owned()).or_default() += 1;
            if step != "ingest" {
                assert_eq!(field(&line, "orderId"), Some(order_id.as_str()), "{line}");
            }
        }
    }
    assert_eq!(
        steps.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["ingest", "processor", "projector", "notifier"]),
        "log lines with the correlation id, per step: {steps:?}"
    );
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to fail on anything else: `# HELP`/`# TYPE`/`# EOF`
/// comments, and `name{label="value",…} number` samples, each of a family with a `# TYPE`.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut families = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "untyped",
                            "unknown"
                        ]
                        .contains(&kind),
                        "{line}"
                    );
                    families.insert(name.to_owned());
                }
                (Some("HELP"), Some(_), _) | (Some("EOF"), None, None) => {}
                _ => panic!("not a Prometheus comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no # TYPE line"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map_or(0.0, |s| s.value)
}

async fn scrape(http: &reqwest::Client, base: &str) -> Vec<Sample> {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    parse_prometheus(&response.text().await.expect("body"))
}

async fn wait_for_status(http: &reqwest::Client, base: &str, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get_json(http, &format!("{base}/orders/{id}")).await;
        if body["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_metrics_count_exactly_what_was_accepted_rejected_completed_and_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, log) = (dir.path().join("orders.db"), dir.path().join("serve.log"));
    let server = Logged::start(&data, &log, &["--credit-limit", "5000"]);
    let http = client();
    let base = server.base.clone();

    let before = scrape(&http, &base).await;
    assert_eq!(value(&before, "orders_accepted_total", &[]), 0.0);
    assert_eq!(value(&before, "orders_queue_depth", &[]), 0.0);

    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{base}/orders");
        async move {
            let response = http.post(url).json(&body).send().await.expect("POST");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let mut completed = Vec::new();
    for n in 0..2 {
        let (status, body) = post(order_body("cust-metrics", n)).await;
        assert_eq!(status, 202);
        completed.push(body["orderId"].as_str().expect("id").to_owned());
    }
    let (status, body) = post(json!({
        "customerId": "cust-metrics",
        "items": [{"productId": "p-big", "quantity": 1, "unitPrice": 9000}]
    }))
    .await;
    assert_eq!(status, 202);
    let failed = body["orderId"].as_str().expect("id").to_owned();
    let (status, _) = post(json!({"customerId": "", "items": []})).await;
    assert_eq!(status, 422);
    let response = http
        .post(format!("{base}/orders"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 415);

    wait_until_completed(&http, &base, &completed.iter().cloned().collect()).await;
    wait_for_status(&http, &base, &failed, "FAILED").await;
    for id in &completed {
        wait_for_notification(&data, id).await;
    }
    // The projector's lag is observed once per event written (3 per order).
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let samples = scrape(&http, &base).await;
        if value(&samples, "orders_projector_lag_seconds_count", &[]) >= 9.0
            || Instant::now() > deadline
        {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(value(&after, "orders_accepted_total", &[]), 3.0);
    assert_eq!(
        value(
            &after,
            "orders_rejected_total",
            &[("reason", "invalid_order")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "orders_rejected_total",
            &[("reason", "unsupported_media_type")]
        ),
        1.0
    );
    assert_eq!(value(&after, "orders_completed_total", &[]), 2.0);
    assert_eq!(value(&after, "orders_failed_total", &[]), 1.0);
    assert_eq!(
        value(&after, "orders_processing_latency_seconds_count", &[]),
        2.0
    );
    assert!(value(&after, "orders_processing_latency_seconds_sum", &[]) > 0.0);
    assert_eq!(
        value(&after, "orders_notifications_published_total", &[]),
        2.0
    );
    assert_eq!(
        value(&after, "orders_projector_lag_seconds_count", &[]),
        9.0
    );
    assert_eq!(value(&after, "orders_queue_depth", &[]), 0.0);
    assert_eq!(value(&after, "orders_dead_letters", &[]), 0.0);
    server.stop();
}
