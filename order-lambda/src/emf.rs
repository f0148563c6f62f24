//! The EMF recorder of the metrics port: what the Lambdas install.

use std::time::Duration;

use order_ports::metrics::{Metric, Metrics, NAMESPACE};

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
            Metric::OrderCancelled => ("OrdersCancelled", "Count", 1.0),
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
}
