//! What every step logs and counts about an order, in one place, so the four steps name their
//! fields alike: `orderId`, `version`, `correlationId` (the client's `X-Correlation-Id`, stored on
//! every event). At info level only ids and outcomes are logged, never a payload or a customer's
//! data. Each function also records its [`metrics`](crate::metrics) here.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use events_schema::{EventEnvelope, OrderEvent};

use crate::metrics::{self, Metric};

/// A span for work on one event of an order: every line logged inside it carries the ids.
pub fn order_span(step: &'static str, event: &EventEnvelope) -> tracing::Span {
    tracing::info_span!(
        "order",
        step,
        orderId = %event.order_id,
        version = %event.version,
        correlationId = %event.correlation_id,
    )
}

/// The processor appended `event` to an order received at `received_at`. Logs the step and,
/// when it is terminal, counts the outcome (and the latency of a completion).
pub fn processed(event: &EventEnvelope, received_at: chrono::DateTime<chrono::Utc>) {
    let _span = order_span("processor", event).entered();
    tracing::info!(eventType = %event.event_type(), "appended");
    match &event.event {
        OrderEvent::OrderCompleted { .. } => {
            let latency = elapsed(received_at, event.occurred_at);
            metrics::record(Metric::OrderCompleted { latency });
        }
        OrderEvent::OrderFailed { .. } => metrics::record(Metric::OrderFailed),
        // A cancellation is the customer's, appended by the API, which counts it there.
        OrderEvent::OrderReceived(_)
        | OrderEvent::OrderProcessingStarted
        | OrderEvent::OrderCancelled { .. } => {}
    }
}

/// The projector wrote the view up to `event` (or past it).
pub fn projected(event: &EventEnvelope) {
    let _span = order_span("projector", event).entered();
    let lag = elapsed(event.occurred_at, chrono::Utc::now());
    tracing::info!(eventType = %event.event_type(), lag_ms = lag.as_millis() as u64, "view written");
    metrics::record(Metric::ProjectorLag(lag));
}

/// The notifier published the completion `event`.
pub fn notified(event: &EventEnvelope) {
    let _span = order_span("notifier", event).entered();
    tracing::info!(eventId = %event.event_id, "notification published");
    metrics::record(Metric::NotificationPublished);
}

fn elapsed(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// An error and every `source()` under it, `outer: inner: innermost`: the line an operator
/// needs when the error is logged where it is handled (once).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The log format of a process: text for a person at a terminal, JSON for a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Text when stderr is a terminal, JSON otherwise.
    pub fn for_stderr() -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_in_order() {
        let e = Outer(Inner(std::io::Error::other("disk on fire")));
        assert_eq!(ErrorChain(&e).to_string(), "outer: inner: disk on fire");
    }
}
