//! `orders loadtest`: a load generator for the HTTP API (`orders serve`, or an API Gateway URL),
//! measuring how fast orders are accepted and, with `--wait`, how long they take from their
//! `202` to a terminal status in the view.

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::flags::parse_duration;
use crate::CliError;

/// The most orders one run may send.
const MAX_ORDERS: u64 = 10_000_000;
/// How often the pending orders are looked at with `--wait`.
const POLL_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Only against your own service: the URL's host must be a loopback address (127.0.0.1, ::1, \
localhost) unless --allow-remote is given, which you may do only for a deployment you own. \
Every run is bounded: --orders is required (at most 10,000,000) and the whole run, waiting \
included, stops after --max-duration.

Closed loop (default): --concurrency connections, each sending its next order as soon as the \
previous answer came. Open loop (--rate R): orders are scheduled R per second whatever the \
answers, with at most --concurrency in flight; an order's accept latency then counts from its \
scheduled time, so a server falling behind shows in the latency rather than hiding it.

With --wait, every accepted order is then followed until its view is COMPLETED or FAILED: every \
50 ms a pass over the pending orders, oldest first, --concurrency GETs at a time, ending early \
after a round in which none of them had finished (bounded effort; an order is timed when a \
poll first sees it finished, so the figures include up to one pass of delay).

The URL is the API's base: `http://127.0.0.1:3000` for `orders serve`, or an API Gateway URL \
with its stage if it has one (`https://ID.execute-api.REGION.amazonaws.com/prod`); `/orders` is \
appended. https is verified against the platform's root certificates (rustls); --insecure \
accepts any certificate, for a test endpoint with a self-signed one only.

Output: a table, or with --json one object (accepted, errors by status, latencies in ms). Exit \
code 0 when every order was accepted (and, with --wait, finished), 1 otherwise.")]
pub struct LoadtestArgs {
    /// The API's base URL.
    #[arg(long)]
    url: String,
    /// How many orders to send (required: a run is always bounded).
    #[arg(long)]
    orders: u64,
    /// Connections (closed loop), or the most requests in flight (open loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open loop: orders per second, on a schedule.
    #[arg(long)]
    rate: Option<f64>,
    /// Send an `Idempotency-Key` (unique per order) with every order.
    #[arg(long)]
    idempotency: bool,
    /// Follow every accepted order until its view is COMPLETED or FAILED.
    #[arg(long)]
    wait: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Allow a host that is not a loopback address (only a deployment you own).
    #[arg(long)]
    allow_remote: bool,
    /// https only: accept the server's certificate without checking it (a self-signed test
    /// endpoint; never a real deployment).
    #[arg(long)]
    insecure: bool,
    /// Stop everything (sending and waiting) after this long: e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    max_duration: Duration,
}

/// What one POST came to.
enum Outcome {
    Accepted { order_id: String },
    Status(u16),
    Connection(String),
}

struct Sample {
    latency: Duration,
    outcome: Outcome,
}

/// An accepted order, followed until it finishes.
struct Accepted {
    order_id: String,
    at: Instant,
}

#[derive(Default)]
struct WaitReport {
    completed: u64,
    failed: u64,
    unfinished: u64,
    /// `202` → terminal, per finished order.
    latencies: Vec<Duration>,
    /// When the last order finished, since the start.
    last_finished: Option<Duration>,
    poll_errors: u64,
}

pub async fn loadtest(args: LoadtestArgs) -> Result<ExitCode, CliError> {
    let base = check_url(&args.url, args.allow_remote)?;
    if args.insecure && !base.starts_with("https://") {
        return Err(CliError::Config(
            "--insecure is for an https:// URL with a self-signed certificate".to_owned(),
        ));
    }
    if args.orders == 0 || args.orders > MAX_ORDERS {
        return Err(CliError::Config(format!(
            "--orders must be 1..={MAX_ORDERS}, got {}",
            args.orders
        )));
    }
    if args.concurrency == 0 || args.concurrency > 4096 {
        return Err(CliError::Config(format!(
            "--concurrency must be 1..=4096, got {}",
            args.concurrency
        )));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(CliError::Config(format!(
                "--rate must be a positive number, got {rate}"
            )));
        }
    }
    // rustls on the aws-lc-rs crypto the AWS SDKs already link (reqwest is built without a
    // provider of its own, so ring is not compiled in twice); an error only means a provider
    // is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .danger_accept_invalid_certs(args.insecure)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Config(format!("HTTP client: {e}")))?;

    let start = Instant::now();
    let deadline = start + args.max_duration;
    let bar = progress(args.orders, if args.wait { "finished" } else { "sent" });
    let (samples_tx, mut samples_rx) = mpsc::unbounded_channel::<Sample>();
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel::<Accepted>();
    let waiter = args.wait.then(|| {
        tokio::spawn(follow(
            client.clone(),
            base.clone(),
            accepted_rx,
            args.concurrency,
            deadline,
            bar.clone(),
        ))
    });
    let sender = Sender {
        client: client.clone(),
        orders_url: format!("{base}/orders"),
        run: run_id(),
        idempotency: args.idempotency,
        samples: samples_tx,
        accepted: args.wait.then_some(accepted_tx),
        bar: (!args.wait).then(|| bar.clone()),
    };
    match args.rate {
        None => closed_loop(sender, args.orders, args.concurrency, deadline).await,
        Some(rate) => open_loop(sender, args.orders, args.concurrency, rate, deadline).await,
    }
    let sending = start.elapsed();

    let mut accept_latencies = Vec::new();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut connection_errors: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(sample) = samples_rx.recv().await {
        match sample.outcome {
            Outcome::Accepted { .. } => accept_latencies.push(sample.latency),
            Outcome::Status(status) => *by_status.entry(status.to_string()).or_default() += 1,
            Outcome::Connection(kind) => *connection_errors.entry(kind).or_default() += 1,
        }
    }
    let wait = match waiter {
        Some(task) => Some(
            task.await
                .map_err(|e| CliError::Config(format!("the waiting task failed: {e}")))?,
        ),
        None => None,
    };
    bar.finish_and_clear();

    let accepted = accept_latencies.len() as u64;
    let sent = accepted + by_status.values().sum::<u64>() + connection_errors.values().sum::<u64>();
    let errors = sent - accepted;
    accept_latencies.sort_unstable();
    let report = json!({
        "url": base,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "orders": args.orders,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "sent": sent,
        "accepted": accepted,
        "errors": {
            "total": errors,
            "byStatus": by_status,
            "connection": connection_errors,
        },
        "sendingSeconds": sending.as_secs_f64(),
        "acceptedPerSecond": per_second(accepted, sending),
        "acceptLatencyMs": latency_summary(&accept_latencies),
        "wait": wait.as_ref().map(|w| {
            let mut latencies = w.latencies.clone();
            latencies.sort_unstable();
            json!({
                "finished": w.completed + w.failed,
                "completed": w.completed,
                "failed": w.failed,
                "unfinished": w.unfinished,
                "pollErrors": w.poll_errors,
                "lastFinishedSeconds": w.last_finished.map(|d| d.as_secs_f64()),
                "finishedPerSecond": w.last_finished.map(|d| per_second(w.completed + w.failed, d)),
                "acceptToFinishedMs": latency_summary(&latencies),
            })
        }),
    });
    if args.json {
        println!("{report:#}");
    } else {
        print_table(&report);
    }
    let clean =
        errors == 0 && sent == args.orders && wait.as_ref().is_none_or(|w| w.unfinished == 0);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The base URL without a trailing `/`, if its host is loopback or remote hosts are allowed.
fn check_url(url: &str, allow_remote: bool) -> Result<String, CliError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| CliError::Config(format!("--url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::Config(format!(
            "--url {url:?}: only http:// and https:// URLs"
        )));
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err(CliError::Config(format!(
            "--url {url:?} is not a loopback address; load only a deployment you own, and say so \
             with --allow-remote"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

struct Sender {
    client: reqwest::Client,
    orders_url: String,
    run: String,
    idempotency: bool,
    samples: mpsc::UnboundedSender<Sample>,
    accepted: Option<mpsc::UnboundedSender<Accepted>>,
    /// The bar counts sent orders when nothing is waited for.
    bar: Option<ProgressBar>,
}

impl Sender {
    /// Sends order number `n`; its latency counts from `since`.
    async fn send(&self, n: u64, since: Instant) {
        let mut request = self
            .client
            .post(&self.orders_url)
            .header("content-type", "application/json")
            .body(order_body(n).to_string());
        if self.idempotency {
            request = request.header("Idempotency-Key", format!("{}-{n}", self.run));
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().as_u16() == 202 => {
                match response.json::<Value>().await {
                    Ok(body) => match body["orderId"].as_str() {
                        Some(id) => Outcome::Accepted {
                            order_id: id.to_owned(),
                        },
                        None => Outcome::Connection("202 without an orderId".to_owned()),
                    },
                    Err(e) => Outcome::Connection(error_kind(&e)),
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the body, so the connection can be reused.
                let _ = response.bytes().await;
                Outcome::Status(status)
            }
            Err(e) => Outcome::Connection(error_kind(&e)),
        };
        let now = Instant::now();
        if let (Outcome::Accepted { order_id }, Some(accepted)) = (&outcome, &self.accepted) {
            let _ = accepted.send(Accepted {
                order_id: order_id.clone(),
                at: now,
            });
        }
        let _ = self.samples.send(Sample {
            latency: now.saturating_duration_since(since),
            outcome,
        });
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

/// `concurrency` workers, each sending its next order when the previous one was answered.
async fn closed_loop(sender: Sender, orders: u64, concurrency: usize, deadline: Instant) {
    let sender = Arc::new(sender);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let sender = sender.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= orders || Instant::now() >= deadline {
                        break;
                    }
                    sender.send(n, Instant::now()).await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Order `n` is due at `start + n / rate`; at most `concurrency` are in flight.
async fn open_loop(sender: Sender, orders: u64, concurrency: usize, rate: f64, deadline: Instant) {
    let sender = Arc::new(sender);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..orders {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let sender = sender.clone();
        tasks.spawn(async move {
            sender.send(n, due).await;
            drop(permit);
        });
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Follows accepted orders until each is COMPLETED or FAILED, or `deadline`.
async fn follow(
    client: reqwest::Client,
    base: String,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    concurrency: usize,
    deadline: Instant,
    bar: ProgressBar,
) -> WaitReport {
    let start = Instant::now();
    let mut report = WaitReport::default();
    let mut pending: VecDeque<Accepted> = VecDeque::new();
    let mut sending = true;
    loop {
        // Take in what was accepted since the last pass.
        loop {
            match accepted.try_recv() {
                Ok(order) => pending.push_back(order),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    sending = false;
                    break;
                }
            }
        }
        if !sending && pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // What is still pending, plus what was accepted but never taken in.
            report.unfinished = pending.len() as u64;
            while accepted.try_recv().is_ok() {
                report.unfinished += 1;
            }
            break;
        }
        let pass_started = Instant::now();
        let mut still = VecDeque::with_capacity(pending.len());
        // Oldest first, `concurrency` at a time; a round in which nothing had finished ends the
        // pass (orders finish roughly in the order they came), which bounds the effort.
        while !pending.is_empty() {
            let round: Vec<Accepted> = pending.drain(..concurrency.min(pending.len())).collect();
            let polled: Vec<(Accepted, Result<Option<&'static str>, ()>)> =
                futures::stream::iter(round)
                    .map(|order| {
                        let client = &client;
                        let url = format!("{base}/orders/{}", order.order_id);
                        async move { (order, poll_status(client, &url).await) }
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            let mut any_finished = false;
            for (order, result) in polled {
                match result {
                    Ok(Some(status)) => {
                        any_finished = true;
                        let now = Instant::now();
                        report
                            .latencies
                            .push(now.saturating_duration_since(order.at));
                        report.last_finished = Some(now.saturating_duration_since(start));
                        if status == "FAILED" {
                            report.failed += 1;
                        } else {
                            report.completed += 1;
                        }
                        bar.inc(1);
                    }
                    Ok(None) => still.push_back(order),
                    Err(()) => {
                        report.poll_errors += 1;
                        still.push_back(order);
                    }
                }
            }
            if !any_finished || Instant::now() >= deadline {
                break;
            }
        }
        // The unpolled rest keeps its place behind those polled.
        still.extend(pending.drain(..));
        pending = still;
        let next = (pass_started + POLL_EVERY).min(deadline);
        tokio::time::sleep_until(next).await;
    }
    report
}

/// `Some(status)` once the order's view is terminal, `None` while it is not (or not projected
/// yet: a 404), `Err` when the poll itself failed.
async fn poll_status(client: &reqwest::Client, url: &str) -> Result<Option<&'static str>, ()> {
    let response = client.get(url).send().await.map_err(|_| ())?;
    match response.status().as_u16() {
        200 => {
            let body: Value = response.json().await.map_err(|_| ())?;
            Ok(match body["status"].as_str() {
                Some("COMPLETED") => Some("COMPLETED"),
                Some("FAILED") => Some("FAILED"),
                _ => None,
            })
        }
        404 => {
            let _ = response.bytes().await;
            Ok(None)
        }
        _ => {
            let _ = response.bytes().await;
            Err(())
        }
    }
}

/// A varied but valid order.
fn order_body(n: u64) -> Value {
    json!({
        "customerId": format!("loadtest-{}", n % 100),
        "items": [
            {"productId": format!("p-{}", n % 1000), "quantity": 1 + n % 5, "unitPrice": 100 + n % 900},
            {"productId": "p-common", "quantity": 2, "unitPrice": 250}
        ],
        "currency": "EUR"
    })
}

/// Unique per run, so idempotency keys of two runs never collide.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("lt-{nanos:x}-{}", std::process::id())
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() && is_certificate_error(e) {
        // Its own kind, so a run against an endpoint whose certificate is not trusted says why.
        "certificate".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else if e.is_decode() || e.is_body() {
        "body".to_owned()
    } else {
        "request".to_owned()
    }
}

/// Whether the TLS handshake failed on the server's certificate (untrusted, expired, another
/// name), found in the error's cause chain.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(error) = cause {
        if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref::<rustls::Error>() {
            return true;
        }
        // rustls's error reaches here inside io::Errors (one from tokio-rustls, one around it
        // from the connector), whose source() skips what they wrap: unwrap them by hand.
        let mut wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        while let Some(inner) = wrapped {
            if let Some(rustls::Error::InvalidCertificate(_)) =
                inner.downcast_ref::<rustls::Error>()
            {
                return true;
            }
            wrapped = inner
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref);
        }
        cause = error.source();
    }
    false
}

fn per_second(n: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency_summary(sorted: &[Duration]) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    json!({
        "p50": ms(percentile(sorted, 50.0)),
        "p90": ms(percentile(sorted, 90.0)),
        "p99": ms(percentile(sorted, 99.0)),
        "max": ms(sorted[sorted.len() - 1]),
    })
}

fn progress(total: u64, what: &str) -> ProgressBar {
    // Hidden by indicatif itself when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{wide_bar}} {{human_pos}}/{{human_len}} {what}  {{per_sec}}"
    )) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_table(report: &Value) {
    let num = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let latency = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            format!(
                "p50 {} ms  p90 {} ms  p99 {} ms  max {} ms",
                num(&v["p50"]),
                num(&v["p90"]),
                num(&v["p99"]),
                num(&v["max"])
            )
        }
    };
    println!("url              {}", report["url"].as_str().unwrap_or("?"));
    println!(
        "mode             {} loop, concurrency {}{}",
        report["mode"].as_str().unwrap_or("?"),
        report["concurrency"],
        match report["rate"].as_f64() {
            Some(rate) => format!(", {rate} orders/s scheduled"),
            None => String::new(),
        }
    );
    println!(
        "sent             {} of {} in {} s",
        report["sent"],
        report["orders"],
        num(&report["sendingSeconds"])
    );
    println!(
        "accepted         {} ({}/s)",
        report["accepted"],
        num(&report["acceptedPerSecond"])
    );
    println!("accept latency   {}", latency(&report["acceptLatencyMs"]));
    let errors = &report["errors"];
    let mut kinds: Vec<String> = Vec::new();
    for (group, label) in [("byStatus", "HTTP "), ("connection", "")] {
        if let Some(map) = errors[group].as_object() {
            kinds.extend(map.iter().map(|(k, v)| format!("{label}{k}: {v}")));
        }
    }
    println!(
        "errors           {}{}",
        errors["total"],
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
    let wait = &report["wait"];
    if !wait.is_null() {
        println!(
            "finished         {} (completed {}, failed {}), unfinished {}, poll errors {}",
            wait["finished"],
            wait["completed"],
            wait["failed"],
            wait["unfinished"],
            wait["pollErrors"]
        );
        println!(
            "finished/s       {} (last one after {} s)",
            num(&wait["finishedPerSecond"]),
            num(&wait["lastFinishedSeconds"])
        );
        println!("202 → finished   {}", latency(&wait["acceptToFinishedMs"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_accepted_without_allow_remote() {
        for ok in [
            "http://127.0.0.1:3000",
            "http://localhost:3000/",
            "http://[::1]:3000",
            "http://127.0.0.1:4566/restapis/x/prod/_user_request_",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for remote in [
            "http://example.com",
            "http://10.0.0.1:3000",
            "http://[2001:db8::1]",
        ] {
            assert!(check_url(remote, false).is_err(), "{remote}");
            assert!(check_url(remote, true).is_ok(), "{remote}");
        }
        assert!(check_url("ftp://127.0.0.1", true).is_err());
    }

    #[test]
    fn https_urls_are_accepted_under_the_same_loopback_rule() {
        assert_eq!(
            check_url("https://127.0.0.1:8443/prod/", false).unwrap(),
            "https://127.0.0.1:8443/prod"
        );
        assert!(check_url("https://abc123.execute-api.eu-west-1.amazonaws.com", false).is_err());
        assert!(check_url("https://abc123.execute-api.eu-west-1.amazonaws.com", true).is_ok());
    }

    #[test]
    fn a_stage_prefix_is_kept_and_the_trailing_slash_dropped() {
        assert_eq!(
            check_url("http://127.0.0.1:4566/prod/", false).unwrap(),
            "http://127.0.0.1:4566/prod"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&values[..1], 99.0), Duration::from_millis(1));
    }
}
