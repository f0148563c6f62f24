//! The service's own numbers, behind one small port: the functions call [`record`] with a
//! [`Metric`]; the recorder installed at start renders it — `order_lambda::Emf` (CloudWatch
//! Embedded Metric Format lines on stdout) in the Lambdas, the Prometheus registry served at
//! `GET /metrics` (`orders/src/prometheus.rs`) in `orders serve`. The recorders are adapters and
//! live with what runs them; this is only the port.
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
    /// A customer's `POST /orders/{id}/cancel` appended `OrderCancelled` (asking again for an
    /// order already cancelled appends nothing and counts nothing).
    OrderCancelled,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scoped_recorder_sees_what_is_recorded_inside_its_future_only() {
        let captured = Arc::new(Captured::default());
        scoped(captured.clone(), async { record(Metric::OrderAccepted) }).await;
        record(Metric::OrderFailed);
        assert_eq!(captured.taken(), ["OrderAccepted"]);
    }
}
