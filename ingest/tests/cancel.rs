//! `POST /orders/{id}/cancel` through the one router, on the SQLite adapters: the answers
//! (202, the same 202 again, 404, 409, 4xx for bad input), what each one stores, and the race
//! with the processor settled by the log's optimistic concurrency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use events_schema::{
    EventEnvelope, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView,
};
use ingest::{router, AppState};
use order_adapters_sqlite::test_util::TempSqlite;
use order_ports::{AppendError, EventPage, EventStore, StatusStore, StoreError};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Api {
    tmp: TempSqlite,
    app: Router,
}

fn api() -> Api {
    api_with(|events| events)
}

/// The API with its event store wrapped by `wrap` (the intake writes to the plain log).
fn api_with(wrap: impl FnOnce(Arc<dyn EventStore>) -> Arc<dyn EventStore>) -> Api {
    let tmp = TempSqlite::new();
    let db = tmp.db().clone();
    let app = router(AppState {
        intake: Arc::new(db.intake()),
        events: wrap(Arc::new(db.event_store())),
        status: Arc::new(db.status_store()),
    });
    Api { tmp, app }
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    if !status.is_success() {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn cancel(id: &str, body: Option<&str>) -> Request<Body> {
    let request = Request::post(format!("/orders/{id}/cancel"));
    match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned())),
        None => request.body(Body::empty()),
    }
    .expect("request")
}

/// A placed order's id (through the API, so it is logged and queued).
async fn placed(app: &Router) -> OrderId {
    let body = json!({"customerId": "c-1", "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}]});
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let (status, accepted) = call(app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    OrderId::parse(accepted["orderId"].as_str().expect("an id")).expect("a uuid")
}

/// Moves the order on as the processor would: one step of `decide_next`.
async fn step(events: &dyn EventStore, id: OrderId, over_limit: bool) {
    let history = events.load(id).await.expect("load");
    let view = OrderView::fold(&history).expect("folds").expect("exists");
    let policy = events_schema::ProcessingPolicy {
        credit_limit: if over_limit { 0 } else { 1_000_000 },
    };
    let next = events_schema::decide_next(&view, &policy).expect("a next step");
    let next = view.next_envelope(next, history[0].correlation_id.clone());
    events.append(&[next]).await.expect("append");
}

async fn types(events: &dyn EventStore, id: OrderId) -> Vec<&'static str> {
    let history = events.load(id).await.expect("load");
    history.iter().map(|e| e.event_type().as_str()).collect()
}

fn expected_answer(id: OrderId) -> Value {
    json!({
        "orderId": id.to_string(),
        "status": "CANCELLED",
        "links": {"self": format!("/orders/{id}"), "events": format!("/orders/{id}/events")},
    })
}

#[tokio::test]
async fn a_received_order_is_cancelled_with_its_reason_and_reads_back_cancelled() {
    let api = api();
    let id = placed(&api.app).await;
    let mut request = cancel(&id.to_string(), Some(r#"{"reason": "ordered twice"}"#));
    request.headers_mut().insert(
        "x-correlation-id",
        "support-ticket-7".parse().expect("a value"),
    );
    let (status, body) = call(&api.app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, expected_answer(id));

    let events = api.tmp.events();
    let history = events.load(id).await.expect("load");
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1].event,
        OrderEvent::OrderCancelled {
            reason: Some("ordered twice".into())
        }
    );
    assert_eq!(history[1].correlation_id.as_str(), "support-ticket-7");
    let (status, view) = call(
        &api.app,
        Request::get(format!("/orders/{id}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["version"], 2);
}

#[tokio::test]
async fn a_processing_order_is_cancelled_without_a_body_and_the_processor_then_does_nothing() {
    let api = api();
    let id = placed(&api.app).await;
    let events = api.tmp.events();
    step(events.as_ref(), id, false).await;
    let (status, body) = call(&api.app, cancel(&id.to_string(), None)).await;
    assert_eq!(
        (status, &body),
        (StatusCode::ACCEPTED, &expected_answer(id))
    );
    assert_eq!(
        types(events.as_ref(), id).await,
        ["OrderReceived", "OrderProcessingStarted", "OrderCancelled"]
    );
    let history = events.load(id).await.expect("load");
    let view = OrderView::fold(&history).expect("folds").expect("exists");
    assert_eq!(
        events_schema::decide_next(&view, &Default::default()),
        None,
        "the processor finds nothing to do"
    );
}

#[tokio::test]
async fn cancelling_again_is_answered_as_the_first_time_and_stores_nothing_more() {
    let api = api();
    let id = placed(&api.app).await;
    let first = call(
        &api.app,
        cancel(&id.to_string(), Some(r#"{"reason": "a"}"#)),
    )
    .await;
    let again = call(
        &api.app,
        cancel(&id.to_string(), Some(r#"{"reason": "b"}"#)),
    )
    .await;
    let bare = call(&api.app, cancel(&id.to_string(), None)).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(first, again);
    assert_eq!(first, bare);
    assert_eq!(
        types(api.tmp.events().as_ref(), id).await,
        ["OrderReceived", "OrderCancelled"]
    );
}

#[tokio::test]
async fn a_completed_or_failed_order_is_a_409_problem_and_stores_nothing() {
    for (over_limit, status_name) in [(false, "COMPLETED"), (true, "FAILED")] {
        let api = api();
        let id = placed(&api.app).await;
        let events = api.tmp.events();
        step(events.as_ref(), id, over_limit).await;
        step(events.as_ref(), id, over_limit).await;
        let (status, problem) = call(&api.app, cancel(&id.to_string(), None)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(problem["title"], "Order not cancellable");
        assert_eq!(problem["status"], 409);
        assert_eq!(
            problem["detail"],
            format!("order {id} is {status_name} and can no longer be cancelled")
        );
        assert_eq!(events.load(id).await.expect("load").len(), 3);
    }
}

#[tokio::test]
async fn an_unknown_order_is_a_404_and_a_bad_id_a_400() {
    let api = api();
    let unknown = OrderId::new_random().to_string();
    let (status, problem) = call(&api.app, cancel(&unknown, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["title"], "Order not found");
    let (status, problem) = call(&api.app, cancel("not-a-uuid", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "id");
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_each_field_and_stores_nothing() {
    let api = api();
    let id = placed(&api.app).await;
    let long = "x".repeat(501);
    let cases = [
        (
            r#"{"reason": 7}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            json!({ "reason": long }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            r#"{"reason": ""}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            r#"{"reason": "a\u0007b"}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
        ),
        (
            r#"{"why": "x"}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "why",
        ),
        (
            r#"["reason"]"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (r#"{"reason": "#.to_owned(), StatusCode::BAD_REQUEST, "body"),
    ];
    for (body, expected, field) in cases {
        let (status, problem) = call(&api.app, cancel(&id.to_string(), Some(&body))).await;
        assert_eq!(status, expected, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        if expected == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(problem["title"], "Invalid cancellation", "{body}");
        }
    }
    let (status, _) = call(
        &api.app,
        Request::post(format!("/orders/{id}/cancel"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        types(api.tmp.events().as_ref(), id).await,
        ["OrderReceived"]
    );
    // 500 characters is the limit, not over it.
    let at_limit = json!({ "reason": "y".repeat(500) }).to_string();
    let (status, _) = call(&api.app, cancel(&id.to_string(), Some(&at_limit))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// The log, except that just before the first append of a cancellation the processor appends
/// its next step(s): the cancellation read the order before the processor moved it on.
struct ProcessorFirst {
    inner: Arc<dyn EventStore>,
    steps: usize,
    done: AtomicBool,
}

#[async_trait::async_trait]
impl EventStore for ProcessorFirst {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        let is_cancel = events
            .iter()
            .any(|e| matches!(e.event, OrderEvent::OrderCancelled { .. }));
        if is_cancel && !self.done.swap(true, Ordering::SeqCst) {
            for _ in 0..self.steps {
                step(self.inner.as_ref(), events[0].order_id, false).await;
            }
        }
        self.inner.append(events).await
    }

    async fn load(&self, id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.load(id).await
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.inner.read_all(cursor, limit).await
    }
}

/// The API where the processor appends `steps` steps just before the first cancellation does.
fn processor_goes_first(steps: usize) -> Api {
    api_with(|inner| {
        Arc::new(ProcessorFirst {
            inner,
            steps,
            done: AtomicBool::new(false),
        })
    })
}

#[tokio::test]
async fn a_cancellation_that_loses_the_race_decides_again_on_what_the_processor_wrote() {
    // The processor started the order first: the cancellation conflicts, reloads and cancels
    // the PROCESSING order at the next version.
    let api = processor_goes_first(1);
    let id = placed(&api.app).await;
    let (status, body) = call(&api.app, cancel(&id.to_string(), None)).await;
    assert_eq!(
        (status, &body),
        (StatusCode::ACCEPTED, &expected_answer(id))
    );
    assert_eq!(
        types(api.tmp.events().as_ref(), id).await,
        ["OrderReceived", "OrderProcessingStarted", "OrderCancelled"]
    );

    // The processor finished the order first: the cancellation conflicts, reloads, and the
    // order is no longer cancellable.
    let api = processor_goes_first(2);
    let id = placed(&api.app).await;
    let (status, problem) = call(&api.app, cancel(&id.to_string(), None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        types(api.tmp.events().as_ref(), id).await,
        ["OrderReceived", "OrderProcessingStarted", "OrderCompleted"]
    );
}

#[tokio::test]
async fn a_cancelled_order_is_listed_under_its_status() {
    let api = api();
    let id = placed(&api.app).await;
    call(&api.app, cancel(&id.to_string(), None)).await;
    // The projector's work: the fold of the log into the view.
    let events = api.tmp.events();
    let history = events.load(id).await.expect("load");
    let view = OrderView::fold(&history).expect("folds").expect("exists");
    assert_eq!(view.status, OrderStatus::Cancelled);
    api.tmp
        .db()
        .status_store()
        .upsert(&OrderStatusRecord::from(&view))
        .await
        .expect("upsert");
    let (status, page) = call(
        &api.app,
        Request::get("/orders?customerId=c-1&status=CANCELLED")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["orders"][0]["orderId"], id.to_string());
    assert_eq!(page["orders"][0]["status"], "CANCELLED");
}
