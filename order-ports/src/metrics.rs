//! The service's own numbers, behind one small port: the functions call [`record`] with a
//! [`Metric`]; the recorder installed at start renders it — [`Emf`] (CloudWatch Embedded Metric
//! Format lines on stdout) in the Lambdas, [`Prometheus`](crate::metrics::Prometheus) (a
//! registry served at `GET /metrics`, feature `prometheus`) in `orders serve`.
//!
//! Nothing installed (a test, a CLI command) makes [`record`] a no-op. [`scoped`] installs a
//! recorder for one future only, so tests can capture what a handler records without a global.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One thing that happened, as the service counts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric<'a> {
    /// `202` to a `POST /orders` (an idempotent retry counts again: it is accepted again).
    OrderAccepted,
    /// An order stored in the log (so accepted) that could not be put on the work queue, even
    /// after a few tries: the reconciler will enqueue it.
    OrderNotQueued,
    /// A `POST /orders` refused with a 4xx; `reason` is a short stable code (`invalid_order`).
    OrderRejected { reason: &'a str },
    /// The processor appended `OrderCompleted`; `latency` is from `OrderReceived`'s
    /// `occurredAt` to that append.
    OrderCompleted { latency: Duration },
    /// The processor appended `OrderFailed` (a business outcome, e.g. over the credit limit).
    OrderFailed,
    /// From an event's creation (its `occurredAt`, ≈ its stream record) to its view written.
    ProjectorLag(Duration),
    /// One notification published (SNS, or the local `notifications` table).
    NotificationPublished,
    /// Messages or stream records a batch reported failed (they come again, or go to a DLQ).
    BatchItemFailures(u64),
    /// Stream records a consumer could never handle and set aside in the stream failure queue
    /// (`failed_events` locally), letting the rest of its batch go on.
    RecordsSetAside(u64),
}

/// The CloudWatch namespace of the EMF metrics; `template.yaml`'s alarms and dashboard use it.
pub const NAMESPACE: &str = "Orders";

/// A backend for [`Metric`]s. Recording must not fail or block for long: it runs on the
/// request path; a backend that cannot write drops the sample.
pub trait Metrics: Send + Sync {
    fn record(&self, metric: &Metric<'_>);
}

static GLOBAL: OnceLock<Arc<dyn Metrics>> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Arc<dyn Metrics>;
}

/// Installs the process's recorder; the first call wins (a Lambda's init, `orders serve`).
pub fn install(recorder: Arc<dyn Metrics>) {
    let _ = GLOBAL.set(recorder);
}

/// Records `metric` with the recorder of the current [`scoped`] future, else the installed one.
pub fn record(metric: Metric<'_>) {
    let scoped = SCOPED.try_with(|r| {
        r.record(&metric);
    });
    if scoped.is_err() {
        if let Some(recorder) = GLOBAL.get() {
            recorder.record(&metric);
        }
    }
}

/// Runs `future` with `recorder` in place of the installed one (tests). Tasks it spawns do not
/// inherit it.
pub async fn scoped<F: std::future::Future>(recorder: Arc<dyn Metrics>, future: F) -> F::Output {
    SCOPED.scope(recorder, future).await
}

/// Embedded Metric Format: one JSON line per metric, written whole to stdout, which CloudWatch
/// Logs turns into metrics in [`NAMESPACE`] with the dimension `FunctionName` (and `Reason` for
/// rejections). A line per sample rather than a flush per invocation: nothing is lost when an
/// invocation fails or times out, and the volume is a few lines per order.
pub struct Emf {
    function_name: String,
    sink: Box<dyn Fn(&str) + Send + Sync>,
}

impl Emf {
    /// Writes to stdout, named after `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda itself).
    pub fn stdout() -> Self {
        let function_name =
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".to_owned());
        Self::with_sink(function_name, |line| {
            use std::io::Write;
            // One write of the whole line, so it cannot interleave with a log line.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(format!("{line}\n").as_bytes());
            let _ = out.flush();
        })
    }

    pub fn with_sink(
        function_name: impl Into<String>,
        sink: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        Self {
            function_name: function_name.into(),
            sink: Box::new(sink),
        }
    }

    /// The EMF document of one metric at `timestamp_ms` (Unix epoch milliseconds).
    pub fn render(&self, metric: &Metric<'_>, timestamp_ms: i64) -> serde_json::Value {
        let (name, unit, value) = match metric {
            Metric::OrderAccepted => ("OrdersAccepted", "Count", 1.0),
            Metric::OrderNotQueued => ("OrdersNotQueued", "Count", 1.0),
            Metric::OrderRejected { .. } => ("OrdersRejected", "Count", 1.0),
            Metric::OrderCompleted { .. } => ("OrdersCompleted", "Count", 1.0),
            Metric::OrderFailed => ("OrdersFailed", "Count", 1.0),
            Metric::ProjectorLag(lag) => ("ProjectorLag", "Milliseconds", millis(*lag)),
            Metric::NotificationPublished => ("NotificationsPublished", "Count", 1.0),
            Metric::BatchItemFailures(n) => ("BatchItemFailures", "Count", *n as f64),
            Metric::RecordsSetAside(n) => ("RecordsSetAside", "Count", *n as f64),
        };
        let mut metrics = vec![serde_json::json!({"Name": name, "Unit": unit})];
        let mut document = serde_json::json!({
            "FunctionName": self.function_name,
            name: value,
        });
        let mut dimensions = vec![serde_json::json!(["FunctionName"])];
        match metric {
            Metric::OrderRejected { reason } => {
                // Both sets: the total over every reason, and each reason on its own.
                dimensions.push(serde_json::json!(["FunctionName", "Reason"]));
                document["Reason"] = serde_json::json!(reason);
            }
            Metric::OrderCompleted { latency } => {
                metrics
                    .push(serde_json::json!({"Name": "ProcessingLatency", "Unit": "Milliseconds"}));
                document["ProcessingLatency"] = serde_json::json!(millis(*latency));
            }
            _ => {}
        }
        document["_aws"] = serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }],
        });
        document
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Metrics for Emf {
    fn record(&self, metric: &Metric<'_>) {
        let line = self
            .render(metric, chrono::Utc::now().timestamp_millis())
            .to_string();
        (self.sink)(&line);
    }
}

/// Keeps what is recorded, for tests: `scoped(recorder.clone(), …)` then
/// [`taken`](Captured::taken).
#[derive(Default)]
pub struct Captured(Mutex<Vec<String>>);

impl Captured {
    /// Each metric recorded so far, as its `Debug` form (`OrderAccepted`,
    /// `OrderRejected { reason: "invalid_order" }`…).
    pub fn taken(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Metrics for Captured {
    fn record(&self, metric: &Metric<'_>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{metric:?}"));
        }
    }
}

#[cfg(feature = "prometheus")]
pub use prometheus::Prometheus;

#[cfg(feature = "prometheus")]
mod prometheus {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    use super::{Metric, Metrics};

    /// The local backend: a Prometheus registry, rendered as text by [`Prometheus::render`]
    /// (`GET /metrics` of `orders serve`). The two gauges are set by the caller before each
    /// render (they are read from the queue, not counted).
    pub struct Prometheus {
        registry: Registry,
        accepted: Counter,
        not_queued: Counter,
        rejected: Family<Vec<(String, String)>, Counter>,
        completed: Counter,
        failed: Counter,
        latency: Histogram,
        lag: Histogram,
        published: Counter,
        batch_failures: Counter,
        set_aside: Counter,
        pub queue_depth: Gauge,
        pub dead_letters: Gauge,
    }

    impl Default for Prometheus {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Prometheus {
        pub fn new() -> Self {
            let mut registry = Registry::with_prefix("orders");
            let me = Self {
                registry: Registry::default(),
                accepted: Counter::default(),
                not_queued: Counter::default(),
                rejected: Family::default(),
                completed: Counter::default(),
                failed: Counter::default(),
                // 1 ms … ~33 s.
                latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
                lag: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
                published: Counter::default(),
                batch_failures: Counter::default(),
                set_aside: Counter::default(),
                queue_depth: Gauge::default(),
                dead_letters: Gauge::default(),
            };
            // Counters get their `_total` suffix from the encoder.
            registry.register("accepted", "Orders accepted (202)", me.accepted.clone());
            registry.register(
                "not_queued",
                "Orders accepted but not queued (left to the reconciler)",
                me.not_queued.clone(),
            );
            registry.register(
                "rejected",
                "Orders refused with a 4xx, by reason",
                me.rejected.clone(),
            );
            registry.register("completed", "Orders completed", me.completed.clone());
            registry.register(
                "failed",
                "Orders failed (business outcome)",
                me.failed.clone(),
            );
            registry.register(
                "processing_latency_seconds",
                "From OrderReceived to OrderCompleted",
                me.latency.clone(),
            );
            registry.register(
                "projector_lag_seconds",
                "From an event's creation to its view written",
                me.lag.clone(),
            );
            registry.register(
                "notifications_published",
                "Notifications published",
                me.published.clone(),
            );
            registry.register(
                "batch_item_failures",
                "Messages or records a batch reported failed",
                me.batch_failures.clone(),
            );
            registry.register(
                "records_set_aside",
                "Stream records a consumer could never handle and set aside",
                me.set_aside.clone(),
            );
            registry.register(
                "queue_depth",
                "Messages in the work queue",
                me.queue_depth.clone(),
            );
            registry.register(
                "dead_letters",
                "Messages in the dead-letter queue",
                me.dead_letters.clone(),
            );
            Self { registry, ..me }
        }

        /// The registry in the text exposition format.
        pub fn render(&self) -> String {
            let mut out = String::new();
            // Writing to a String cannot fail.
            let _ = encode(&mut out, &self.registry);
            out
        }
    }

    impl Metrics for Prometheus {
        fn record(&self, metric: &Metric<'_>) {
            match metric {
                Metric::OrderAccepted => {
                    self.accepted.inc();
                }
                Metric::OrderNotQueued => {
                    self.not_queued.inc();
                }
                Metric::OrderRejected { reason } => {
                    self.rejected
                        .get_or_create(&vec![("reason".to_owned(), (*reason).to_owned())])
                        .inc();
                }
                Metric::OrderCompleted { latency } => {
                    self.completed.inc();
                    self.latency.observe(latency.as_secs_f64());
                }
                Metric::OrderFailed => {
                    self.failed.inc();
                }
                Metric::ProjectorLag(lag) => self.lag.observe(lag.as_secs_f64()),
                Metric::NotificationPublished => {
                    self.published.inc();
                }
                Metric::BatchItemFailures(n) => {
                    self.batch_failures.inc_by(*n);
                }
                Metric::RecordsSetAside(n) => {
                    self.set_aside.inc_by(*n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_is_counted_in_total_and_per_reason() {
        let emf = Emf::with_sink("fn-ingest", |_| {});
        let doc = emf.render(
            &Metric::OrderRejected {
                reason: "invalid_order",
            },
            1_700_000_000_000,
        );
        assert_eq!(doc["OrdersRejected"], 1.0);
        assert_eq!(doc["Reason"], "invalid_order");
        assert_eq!(doc["FunctionName"], "fn-ingest");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["FunctionName"], ["FunctionName", "Reason"]])
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
    }

    #[test]
    fn a_completion_carries_its_latency_in_milliseconds() {
        let emf = Emf::with_sink("fn-processor", |_| {});
        let doc = emf.render(
            &Metric::OrderCompleted {
                latency: Duration::from_millis(1500),
            },
            0,
        );
        assert_eq!(doc["OrdersCompleted"], 1.0);
        assert_eq!(doc["ProcessingLatency"], 1500.0);
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["OrdersCompleted", "ProcessingLatency"]);
    }

    #[tokio::test]
    async fn a_scoped_recorder_sees_what_is_recorded_inside_its_future_only() {
        let captured = Arc::new(Captured::default());
        scoped(captured.clone(), async { record(Metric::OrderAccepted) }).await;
        record(Metric::OrderFailed);
        assert_eq!(captured.taken(), ["OrderAccepted"]);
    }
}
