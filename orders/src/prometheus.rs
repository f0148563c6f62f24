//! The Prometheus recorder of the metrics port: the registry `orders serve` serves at
//! `GET /metrics`. Not in the Lambda binaries (they record EMF lines, `order_lambda::Emf`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use order_ports::metrics::{Metric, Metrics};

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
    cancelled: Counter,
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
            cancelled: Counter::default(),
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
            "cancelled",
            "Orders cancelled by their customer",
            me.cancelled.clone(),
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
            Metric::OrderCancelled => {
                self.cancelled.inc();
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
