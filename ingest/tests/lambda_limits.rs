//! The body limits hold on the Lambda path too: API Gateway (HTTP API, payload 2.0) events as
//! the function receives them, turned into requests by `lambda_http` and answered by the one
//! router — as `ingest::lambda::run` does. Every body from just over
//! [`ingest::MAX_BODY_BYTES`] up to the largest event Lambda accepts gets a `413` problem
//! document, plain or base64-encoded, never a 5xx.
//!
//! This is the adapter level, up to the largest event; `orders/tests/e2e/aws_stack.rs` also
//! posts a 5 MiB body through the emulator's API Gateway (which enforces neither AWS limit).

use std::sync::Arc;

use axum::body::to_bytes;
use base64::Engine;
use ingest::limits::LAMBDA_INVOKE_PAYLOAD_LIMIT;
use ingest::{router, AppState, MAX_BODY_BYTES};
use order_adapters_sqlite::test_util::TempSqlite;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An HTTP API (payload format 2.0) event for `POST /orders` with `body`.
fn event(body: &str, base64: bool, content_type: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /orders",
        "rawPath": "/orders",
        "rawQueryString": "",
        "headers": {
            "content-type": content_type,
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/orders",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "test",
            },
            "requestId": "r-1",
            "routeKey": "POST /orders",
            "stage": "$default",
            "time": "30/Nov/2026:07:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": base64,
    })
    .to_string()
}

/// An order padded with an unknown field to `len` bytes of JSON.
fn padded_order(len: usize) -> String {
    let head =
        r#"{"customerId":"c-1","items":[{"productId":"p","quantity":1,"unitPrice":1}],"pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// The answer of the router to `event`, as the Lambda would give it: status, content type, body.
async fn answer(event: &str) -> (u16, String, Value) {
    let tmp = TempSqlite::new();
    let db = tmp.db().clone();
    let app = router(AppState {
        intake: Arc::new(db.intake()),
        events: Arc::new(db.event_store()),
        status: Arc::new(db.status_store()),
    });
    let request = lambda_http::request::from_str(event).expect("an API Gateway v2 event");
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_too_large(what: &str, (status, content_type, problem): (u16, String, Value)) {
    assert_eq!(status, 413, "{what}: {problem}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(problem["errors"][0]["field"], "body", "{what}: {problem}");
}

#[tokio::test]
async fn a_body_just_over_the_limit_is_a_413_problem_and_one_at_it_is_read() {
    let over = padded_order(MAX_BODY_BYTES + 1);
    assert_too_large(
        "one byte over",
        answer(&event(&over, false, "application/json")).await,
    );
    // At the limit the body is read and judged: the pad is an unknown field.
    let at = padded_order(MAX_BODY_BYTES);
    let (status, _, problem) = answer(&event(&at, false, "application/json")).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "pad", "{problem}");
}

#[tokio::test]
async fn the_largest_event_lambda_accepts_is_a_413_problem_plain_or_base64() {
    // The event's own fields take some room: fill the rest of the invoke limit with body.
    // (The quotes of the body are escaped in the event: one byte more each.)
    let frame = event("", false, "application/json").len();
    let escaped = |body: &str| event(body, false, "application/json").len() - frame;
    let first = padded_order(LAMBDA_INVOKE_PAYLOAD_LIMIT - frame);
    let plain = padded_order(first.len() - (escaped(&first) - first.len()));
    let plain_event = event(&plain, false, "application/json");
    assert_eq!(plain_event.len(), LAMBDA_INVOKE_PAYLOAD_LIMIT);
    assert_too_large("plain, at the invoke limit", answer(&plain_event).await);

    // A body API Gateway passes base64-encoded grows by a third on the way.
    let raw = padded_order((LAMBDA_INVOKE_PAYLOAD_LIMIT - frame) / 4 * 3);
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let encoded_event = event(&encoded, true, "application/json");
    assert!(encoded_event.len() <= LAMBDA_INVOKE_PAYLOAD_LIMIT);
    assert_too_large("base64, at the invoke limit", answer(&encoded_event).await);
}
