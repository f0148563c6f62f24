//! The correlation id of a request, around every route: the client's `X-Correlation-Id` (else a
//! new one, put on the request so the handler stores that one on the order's events) is a field
//! of every line logged while the request runs, and is echoed on every response — errors
//! included. `POST /orders` answers are counted here too ([`Metric::OrderAccepted`],
//! [`Metric::OrderRejected`]), and logged once with the order id, so the ingest step of an
//! order has its line whatever the outcome.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use events_schema::CorrelationId;
use order_ports::metrics::{self, Metric};
use tracing::Instrument;

/// The request and response header.
pub const HEADER: &str = "x-correlation-id";

/// Why a `POST /orders` was refused, set by [`ApiError`](crate::ApiError) on its response for
/// the [`Metric::OrderRejected`] dimension: a short, stable code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RejectReason(pub &'static str);

/// The middleware (`axum::middleware::from_fn(correlate)`).
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let supplied = request.headers().get(HEADER).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|s| CorrelationId::parse(s).ok())
    });
    let id = match supplied {
        Some(Some(id)) => id,
        None => {
            let id = CorrelationId::generate();
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                request.headers_mut().insert(HEADER, value);
            }
            id
        }
        // Not a valid id: the handler refuses it (400) if it stores one; the answer and the
        // log lines carry a fresh id instead of echoing what the client sent.
        Some(None) => CorrelationId::generate(),
    };
    let is_order_post = *request.method() == Method::POST && request.uri().path() == "/orders";
    let span = tracing::info_span!(
        "request",
        correlationId = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    if is_order_post {
        let _entered = span.enter();
        count_order_post(&response);
    }
    response
}

fn count_order_post(response: &Response) {
    let status = response.status();
    if status == StatusCode::ACCEPTED {
        let order_id = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .unwrap_or("?");
        tracing::info!(orderId = order_id, step = "ingest", "order accepted");
        metrics::record(Metric::OrderAccepted);
    } else if status.is_client_error() {
        let reason = response
            .extensions()
            .get::<RejectReason>()
            .map_or("other", |r| r.0);
        tracing::info!(status = status.as_u16(), reason, "order rejected");
        metrics::record(Metric::OrderRejected { reason });
    }
}
