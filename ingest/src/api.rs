use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use events_schema::{
    decide_cancel, CancelRequest, CorrelationId, CustomerId, EventEnvelope, NotCancellable,
    OrderEvent, OrderId, OrderRequest, OrderStatus, OrderStatusRecord, OrderView, StoredEvent,
    ValidOrder, Version,
};
use order_ports::metrics::{self, Metric};
use order_ports::{
    AppendError, CustomerOrdersQuery, EventStore, OrderIntake, StatusStore, StoreError,
    MAX_CUSTOMER_ORDERS_LIMIT,
};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::auth::Caller;
use crate::doc_types;
use crate::problem::ApiError;

/// Largest accepted request body (256 KiB); larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// An oversized body is still read (and dropped) up to this size before the `413` goes out:
/// closing the connection on a client that is still sending makes it see a broken pipe instead
/// of the answer. Beyond this size the connection is simply closed.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;
/// Longest accepted `Idempotency-Key` header.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const CORRELATION_ID: &str = "x-correlation-id";

/// What the API needs: the intake (log and work queue together), the event log to read
/// histories, and the status view.
#[derive(Clone)]
pub struct AppState {
    pub intake: Arc<dyn OrderIntake>,
    pub events: Arc<dyn EventStore>,
    pub status: Arc<dyn StatusStore>,
}

/// The order routes and `/health`; [`crate::router`] adds the document, the fallbacks and the
/// correlation layer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/orders/{id}/events", get(get_events))
        .route("/health", get(health))
        // The body limit is enforced by `read_body`, which answers 413 politely.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The answer to an accepted order, and to a cancellation (then with status `CANCELLED`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Accepted {
    #[schema(value_type = String, format = Uuid)]
    order_id: OrderId,
    #[schema(value_type = doc_types::OrderStatusDoc)]
    status: OrderStatus,
    links: Links,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Links {
    /// `/orders/{id}`.
    #[serde(rename = "self")]
    this: String,
    /// `/orders/{id}/events`.
    events: String,
}

/// Place an order.
///
/// Validates the body, appends `OrderReceived` to the order's log and queues it for processing.
/// With an `Idempotency-Key` the order id is `UUIDv5(customerId, key)`: a retry with the same key
/// and body gets the same `202` (and queues the order again), the same key with another body a
/// `422`. Every problem of the body is named in `errors`. The body is at most 262144 bytes
/// (256 KiB, `413` beyond); a `Content-Type` other than `application/json` (or
/// `application/*+json`) is a `415`.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
            pattern = r"^[!-~]{1,255}$",
            description = "Makes retries safe: 1 to 255 visible ASCII characters (no spaces). Keys are per customer."),
        ("X-Correlation-Id" = Option<String>, Header, min_length = 1, max_length = 128,
            pattern = r"^[A-Za-z0-9._:@-]{1,128}$",
            description = "Stored on every event of the order; generated when absent. 1 to 128 of [A-Za-z0-9-_.:@]."),
    ),
    request_body(
        content = doc_types::OrderRequestDoc,
        content_type = "application/json",
        description = "The order. At most 262144 bytes (256 KiB); larger bodies get 413.",
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: the order is in the log, and queued (or, if the queue refused it, left to the reconciler). Sent once the order is stored, whatever happens to the enqueue.", body = Accepted,
            headers(("Location" = String, description = "/orders/{orderId}"))),
        (status = 400, description = "Malformed JSON, an unreadable body or an invalid header.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time (`orders serve --body-timeout`).", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 262144 bytes.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The Content-Type is not JSON.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid order (every bad field in `errors`) or an Idempotency-Key reused with another order.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Authentication is on and the order names another customer than the token.", body = doc_types::Problem, content_type = "application/problem+json"),
        doc_types::CommonProblems,
    ),
)]
#[tracing::instrument(skip_all, fields(order_id, idempotent))]
pub(crate) async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json_content_type(&headers)?;
    let body = read_body(&headers, body).await?;
    let key = idempotency_key(&headers)?;
    let correlation_id = correlation_id(&headers)?;
    let json: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let order = OrderRequest::validate(&json).map_err(ApiError::Validation)?;
    caller.may_act_for(&order.customer_id)?;

    let order_id = match &key {
        Some(key) => OrderId::derived(&order.customer_id, key),
        None => OrderId::new_random(),
    };
    tracing::Span::current()
        .record("order_id", tracing::field::display(order_id))
        .record("idempotent", key.is_some());

    let received = EventEnvelope::new(
        order_id,
        Version::FIRST,
        correlation_id,
        OrderEvent::OrderReceived(order.clone()),
    );
    // The write runs in its own task, so a client that hangs up (which drops this future)
    // cannot cancel it half-way and leave an order logged but never queued.
    let write = tokio::spawn(
        async move { hand_off(&state, &received, &order).await }
            .instrument(tracing::Span::current()),
    );
    write.await.map_err(|e| ApiError::Internal(Box::new(e)))??;

    Ok(answer(order_id, OrderStatus::Received))
}

/// A `202` naming the order, its status and its links, with `Location: /orders/{id}`.
fn answer(order_id: OrderId, status: OrderStatus) -> Response {
    let location = format!("/orders/{order_id}");
    let body = Accepted {
        order_id,
        status,
        links: Links {
            events: format!("{location}/events"),
            this: location.clone(),
        },
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Takes the order in: log and queue. A retried `Idempotency-Key` of the same order is
/// enqueued again: that heals a hand-off cut short after the append on AWS (see
/// [`order_ports::AppendThenEnqueue`]) or work that was dead-lettered; the processor is
/// idempotent, so a duplicate message is harmless.
///
/// Once the order is in the log it is accepted: a send that fails after it (here, or inside
/// [`OrderIntake::accept`]) is logged and counted and left to the reconciler, never answered
/// with an error — a client told to retry an order that was stored would, without a key, place
/// it twice. An error here means nothing was stored.
async fn hand_off(
    state: &AppState,
    received: &EventEnvelope,
    order: &ValidOrder,
) -> Result<(), ApiError> {
    match state.intake.accept(received).await {
        Ok(()) => Ok(()),
        Err(AppendError::Conflict { order_id, .. }) => {
            ensure_same_order(state, order_id, order).await?;
            // Stored by an earlier request: accepted, whatever happens to this send.
            if let Err(e) = state.intake.requeue(order_id).await {
                order_ports::left_to_reconciler(order_id, &e);
            }
            Ok(())
        }
        Err(AppendError::Store(e)) => Err(e.into()),
    }
}

/// A retried `Idempotency-Key`: the same order gets the same answer, another order a 422.
async fn ensure_same_order(
    state: &AppState,
    order_id: OrderId,
    order: &ValidOrder,
) -> Result<(), ApiError> {
    let history = state.events.load(order_id).await?;
    match history.first().map(|e| &e.event) {
        Some(OrderEvent::OrderReceived(existing)) if existing == order => Ok(()),
        Some(_) => Err(ApiError::IdempotencyKeyReused),
        None => Err(ApiError::Unavailable(StoreError::Unavailable(format!(
            "order {order_id} conflicted on append but its history read empty"
        )))),
    }
}

/// Reads at most [`MAX_BODY_BYTES`]; see [`DRAIN_LIMIT`] for what happens to larger bodies.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let too_large = ApiError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large);
    }
    let mut stream = body.into_data_stream();
    let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES));
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let e = e.into_inner();
            if crate::limits::is_timeout(&*e) {
                ApiError::BodyTimeout
            } else {
                ApiError::BadBody(e.to_string())
            }
        })?;
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            return Err(too_large);
        }
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(too_large);
    }
    Ok(Bytes::from(kept))
}

fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = |message: String| ApiError::BadHeader {
        header: "Idempotency-Key",
        message,
    };
    let key = value
        .to_str()
        .map_err(|_| bad("must be visible ASCII".to_owned()))?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(bad(format!(
            "must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("must be visible ASCII without spaces".to_owned()));
    }
    Ok(Some(key.to_owned()))
}

fn correlation_id(headers: &HeaderMap) -> Result<CorrelationId, ApiError> {
    match headers.get(CORRELATION_ID) {
        None => Ok(CorrelationId::generate()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|s| CorrelationId::parse(s).ok())
            .ok_or_else(|| ApiError::BadHeader {
                header: "X-Correlation-Id",
                message: "must be 1 to 128 characters of [A-Za-z0-9-_.:@]".to_owned(),
            }),
    }
}

fn parse_order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|_| ApiError::BadOrderId(raw.chars().take(64).collect()))
}

/// One order's status.
///
/// A finished order is read from the status view; an order still in flight from its event log,
/// so a client reads its own write and never sees an order move backwards.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order id (a UUID).")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The order's status record.", body = doc_types::OrderStatusRecordDoc),
        (status = 400, description = "The id is not a UUID.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order.", body = doc_types::Problem, content_type = "application/problem+json"),
        doc_types::CommonProblems,
    ),
)]
#[tracing::instrument(skip(state, caller))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderStatusRecord>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let viewed = state.status.get(order_id).await?;
    if let Some(record) = viewed.as_ref().filter(|r| r.status.is_terminal()) {
        visible_to(&caller, order_id, &record.customer_id)?;
        return Ok(Json(record.clone()));
    }
    // The view is eventually consistent and may lag the log: right after a POST it has no
    // record yet, and while the projector catches up it can hold an older state than a client
    // already read from the log. So an order in flight is answered from its log: a client reads
    // its own write and never sees an order move backwards.
    let history = state.events.load(order_id).await?;
    let record = match (OrderView::fold(&history)?, viewed) {
        (Some(view), _) => OrderStatusRecord::from(&view),
        (None, Some(record)) => record,
        (None, None) => return Err(ApiError::OrderNotFound(order_id.to_string())),
    };
    visible_to(&caller, order_id, &record.customer_id)?;
    Ok(Json(record))
}

/// How many times a cancellation reloads and decides again after losing the append race to the
/// processor before it answers `503`. The processor moves an order at most three steps, so a
/// cancellation that keeps losing means something else is wrong.
const MAX_CANCEL_RACES: usize = 5;

/// Cancel an order.
///
/// Appends `OrderCancelled` to the order's log while it is `RECEIVED` or `PROCESSING`; the
/// processor then leaves it alone. The body is optional: `{"reason": "..."}` (1 to 500
/// characters, no control characters; unknown fields are a `422`). Cancelling an order that is
/// already cancelled is answered exactly as the first time (nothing more is stored, whatever
/// the reason); a `COMPLETED` or `FAILED` order is a `409`. A race with the processor is
/// settled by the log: whichever appends the next version first wins, and the other reads the
/// order again and decides again.
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = "orders",
    params(
        ("id" = String, Path, format = Uuid, description = "The order id (a UUID)."),
        ("X-Correlation-Id" = Option<String>, Header, min_length = 1, max_length = 128,
            pattern = r"^[A-Za-z0-9._:@-]{1,128}$",
            description = "Stored on the cancellation; generated when absent. 1 to 128 of [A-Za-z0-9-_.:@]."),
    ),
    request_body(
        content = Option<doc_types::CancelRequestDoc>,
        content_type = "application/json",
        description = "Optional. At most 262144 bytes (256 KiB); larger bodies get 413.",
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Cancelled: `OrderCancelled` is in the log (now or by an earlier request); the status view follows.", body = Accepted,
            headers(("Location" = String, description = "/orders/{orderId}"))),
        (status = 400, description = "The id is not a UUID, malformed JSON, an unreadable body or an invalid header.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or, with authentication on, another customer's).", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is COMPLETED or FAILED: it can no longer be cancelled.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time (`orders serve --body-timeout`).", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 262144 bytes.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The Content-Type is not JSON.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid body (every bad field in `errors`).", body = doc_types::Problem, content_type = "application/problem+json"),
        doc_types::CommonProblems,
    ),
)]
#[tracing::instrument(skip(state, caller, headers, body))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&id)?;
    require_json_content_type(&headers)?;
    let body = read_body(&headers, body).await?;
    let reason = if body.is_empty() {
        None
    } else {
        let json: Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        CancelRequest::validate(&json).map_err(ApiError::InvalidCancellation)?
    };
    let correlation_id = correlation_id(&headers)?;
    for _ in 0..MAX_CANCEL_RACES {
        let history = state.events.load(order_id).await?;
        let view = OrderView::fold(&history)?
            .ok_or_else(|| ApiError::OrderNotFound(order_id.to_string()))?;
        visible_to(&caller, order_id, &view.customer_id)?;
        let event = match decide_cancel(&view, reason.clone()) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(cancelled(order_id)),
            Err(NotCancellable { status }) => {
                return Err(ApiError::NotCancellable { order_id, status })
            }
        };
        let next = view.next_envelope(event, correlation_id.clone());
        match state.events.append(std::slice::from_ref(&next)).await {
            Ok(()) => {
                let _span = order_ports::telemetry::order_span("ingest", &next).entered();
                tracing::info!(eventType = %next.event_type(), "appended");
                metrics::record(Metric::OrderCancelled);
                return Ok(cancelled(order_id));
            }
            // The processor appended first: read the order again and decide again.
            Err(AppendError::Conflict { .. }) => continue,
            Err(AppendError::Store(e)) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(StoreError::Unavailable(format!(
        "order {order_id}: the cancellation lost the append race {MAX_CANCEL_RACES} times"
    ))))
}

/// The `202` of a cancellation, the same whether this request or an earlier one cancelled it.
fn cancelled(order_id: OrderId) -> Response {
    answer(order_id, OrderStatus::Cancelled)
}

/// Another customer's order is answered exactly as one that does not exist.
fn visible_to(caller: &Caller, order_id: OrderId, owner: &CustomerId) -> Result<(), ApiError> {
    if caller.may_see(owner) {
        Ok(())
    } else {
        Err(ApiError::OrderNotFound(order_id.to_string()))
    }
}

/// An order's history.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct History {
    #[schema(value_type = String, format = Uuid)]
    order_id: OrderId,
    /// In version order, from 1.
    #[schema(value_type = Vec<doc_types::StoredEventDoc>)]
    events: Vec<StoredEvent>,
}

/// One order's history: every event, in version order.
#[utoipa::path(
    get,
    path = "/orders/{id}/events",
    tag = "orders",
    params(("id" = String, Path, format = Uuid, description = "The order id (a UUID).")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The events of the order.", body = History),
        (status = 400, description = "The id is not a UUID.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order.", body = doc_types::Problem, content_type = "application/problem+json"),
        doc_types::CommonProblems,
    ),
)]
#[tracing::instrument(skip(state, caller))]
pub(crate) async fn get_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<History>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let history = state.events.load(order_id).await?;
    match history.first().map(|e| &e.event) {
        None => return Err(ApiError::OrderNotFound(order_id.to_string())),
        Some(OrderEvent::OrderReceived(order)) => {
            visible_to(&caller, order_id, &order.customer_id)?
        }
        // A history always starts with OrderReceived; one that does not has no owner to show
        // it to, so only an unauthenticated API serves it (as it always did).
        Some(_) if caller != Caller::Anyone => {
            return Err(ApiError::OrderNotFound(order_id.to_string()))
        }
        Some(_) => {}
    }
    Ok(Json(History {
        order_id,
        events: history.iter().map(EventEnvelope::to_stored).collect(),
    }))
}

/// The page size of `GET /orders` when the client names none.
pub const DEFAULT_CUSTOMER_ORDERS_LIMIT: usize = 50;

/// One page of a customer's orders.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomerOrders {
    /// Newest first (by `createdAt`, ties by `orderId`).
    #[schema(value_type = Vec<doc_types::OrderStatusRecordDoc>, max_items = 100)]
    orders: Vec<OrderStatusRecord>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Reads the query string of `GET /orders` into a [`CustomerOrdersQuery`]. Strict like the
/// body of a POST: an unknown or repeated parameter is a 400 too, so a typo such as
/// `customerID` or `status=completed` is never silently read as "no filter".
fn customer_orders_query(pairs: Vec<(String, String)>) -> Result<CustomerOrdersQuery, ApiError> {
    let bad = |field: &str, message: &str| ApiError::BadQuery {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let (mut customer, mut status, mut limit, mut cursor) = (None, None, None, None);
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "customerId" => &mut customer,
            "status" => &mut status,
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => {
                let field: String = name.chars().take(64).collect();
                return Err(bad(
                    &field,
                    "unknown query parameter (expected customerId, status, limit or cursor)",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(bad(&name, "given more than once"));
        }
    }
    let customer_id = customer
        .ok_or_else(|| bad("customerId", "required"))
        .and_then(|c| {
            CustomerId::parse(c).map_err(|_| {
                bad(
                    "customerId",
                    "must be 1 to 64 characters of [A-Za-z0-9-_.:@]",
                )
            })
        })?;
    let status = status
        .map(|s| {
            [
                OrderStatus::Received,
                OrderStatus::Processing,
                OrderStatus::Completed,
                OrderStatus::Failed,
                OrderStatus::Cancelled,
            ]
            .into_iter()
            .find(|known| known.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "status",
                    "must be RECEIVED, PROCESSING, COMPLETED, FAILED or CANCELLED",
                )
            })
        })
        .transpose()?;
    let limit = match limit {
        None => DEFAULT_CUSTOMER_ORDERS_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CUSTOMER_ORDERS_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadQuery {
                field: "limit".to_owned(),
                message: format!("must be an integer from 1 to {MAX_CUSTOMER_ORDERS_LIMIT}"),
            })?,
    };
    if cursor.as_deref() == Some("") {
        return Err(bad("cursor", "must be a nextCursor of a previous page"));
    }
    Ok(CustomerOrdersQuery {
        customer_id,
        status,
        limit,
        cursor,
    })
}

/// A customer's orders, newest first, a page at a time.
///
/// Reads the status view (eventually consistent): an order accepted a moment ago may not be
/// listed yet. Walk the pages by passing `nextCursor` back as `cursor` (with the same
/// `customerId` and `status`) until it is `null`. An unknown or repeated parameter is a `400`.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    params(
        ("customerId" = String, Query, min_length = 1, max_length = 64,
            pattern = r"^[A-Za-z0-9._:@-]{1,64}$", description = "The customer."),
        ("status" = Option<doc_types::OrderStatusDoc>, Query, description = "Only the orders currently in this status."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Orders per page (default 50)."),
        ("cursor" = Option<String>, Query, min_length = 1,
            description = "The `nextCursor` of the previous page (opaque; anything else is a 400)."),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of the customer's orders.", body = CustomerOrders),
        (status = 400, description = "A missing, invalid, unknown or repeated query parameter, named in `errors`.", body = doc_types::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Authentication is on and customerId is not the token's customer.", body = doc_types::Problem, content_type = "application/problem+json"),
        doc_types::CommonProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<CustomerOrders>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::BadQuery {
        field: "query".to_owned(),
        message: e.body_text(),
    })?;
    let query = customer_orders_query(pairs)?;
    caller.may_act_for(&query.customer_id)?;
    let page = match state.status.list_by_customer(&query).await {
        Ok(page) => page,
        // The query was checked above, so what the store can still refuse is the cursor: one
        // it did not produce (truncated, edited, or not a cursor at all) is the client's fault.
        Err(StoreError::Rejected(_)) if query.cursor.is_some() => {
            return Err(ApiError::BadQuery {
                field: "cursor".to_owned(),
                message: "must be a nextCursor of a previous page".to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(CustomerOrders {
        orders: page.records,
        next_cursor: page.next_cursor,
    }))
}

/// Liveness: answers as long as the process serves requests.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The API is up.", body = doc_types::HealthDoc)),
)]
pub(crate) async fn health() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::Request;
    use order_adapters_sqlite::test_util::TempSqlite;
    use order_adapters_sqlite::{SqliteDb, SqliteWorkQueue};
    use order_ports::{AppendThenEnqueue, WorkQueue};
    use tower::ServiceExt;

    struct Api {
        _tmp: TempSqlite,
        app: Router,
        queue: SqliteWorkQueue,
        db: SqliteDb,
    }

    fn api() -> Api {
        let tmp = TempSqlite::new();
        let db = tmp.db().clone();
        let queue = db.work_queue_default();
        let app = router(AppState {
            intake: Arc::new(db.intake()),
            events: Arc::new(db.event_store()),
            status: Arc::new(db.status_store()),
        });
        Api {
            _tmp: tmp,
            app,
            queue,
            db,
        }
    }

    async fn call(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post(body: &Value, key: Option<&str>) -> Request<Body> {
        let mut request = Request::post("/orders").header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.body(Body::from(body.to_string())).unwrap()
    }

    fn order(quantity: u32) -> Value {
        serde_json::json!({"customerId": "c-1", "items": [{"productId": "p", "quantity": quantity, "unitPrice": 100}]})
    }

    #[tokio::test]
    async fn a_retried_key_gets_the_same_answer_and_is_enqueued_again() {
        let api = api();
        let (first_status, first_headers, first) = call(&api.app, post(&order(1), Some("k"))).await;
        let (second_status, _, second) = call(&api.app, post(&order(1), Some("k"))).await;
        assert_eq!(
            (first_status, second_status),
            (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
        );
        assert_eq!(first, second);
        assert_eq!(
            first_headers[header::LOCATION],
            format!("/orders/{}", first["orderId"].as_str().unwrap()).as_str()
        );
        assert_eq!(api.queue.depth().await.unwrap(), 2, "the retry re-enqueues");
        assert_eq!(api.db.head_seq().await.unwrap(), 1, "but appends nothing");
    }

    #[tokio::test]
    async fn a_reused_key_with_another_order_is_422_and_writes_nothing() {
        let api = api();
        call(&api.app, post(&order(1), Some("k"))).await;
        let (status, headers, problem) = call(&api.app, post(&order(2), Some("k"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(problem["title"], "Idempotency-Key reused");
        assert_eq!(api.queue.depth().await.unwrap(), 1);
        assert_eq!(api.db.head_seq().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_new_order_is_readable_before_the_projector_has_run() {
        let api = api();
        let (_, _, accepted) = call(&api.app, post(&order(3), None)).await;
        let id = accepted["orderId"].as_str().unwrap();
        let (status, _, view) = call(
            &api.app,
            Request::get(format!("/orders/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view["status"], "RECEIVED");
        assert_eq!(view["itemCount"], 3);
        assert_eq!(view["version"], 1);
    }

    #[tokio::test]
    async fn an_order_in_flight_is_answered_from_its_log_when_the_view_lags_behind() {
        let api = api();
        let (_, _, accepted) = call(&api.app, post(&order(3), None)).await;
        let id = OrderId::parse(accepted["orderId"].as_str().unwrap()).unwrap();
        let events = api.db.event_store();
        let mut history = events.load(id).await.unwrap();
        let mut view = OrderView::fold(&history).unwrap().unwrap();
        // The projector has written version 1 only; the log is at version 2.
        let status = api.db.status_store();
        status
            .upsert(&OrderStatusRecord::from(&view))
            .await
            .unwrap();
        let started = view.next_envelope(
            OrderEvent::OrderProcessingStarted,
            history[0].correlation_id.clone(),
        );
        events.append(std::slice::from_ref(&started)).await.unwrap();
        history.push(started);
        view = OrderView::fold(&history).unwrap().unwrap();

        let get = || {
            Request::get(format!("/orders/{id}"))
                .body(Body::empty())
                .unwrap()
        };
        let (status_code, _, answer) = call(&api.app, get()).await;
        assert_eq!(status_code, StatusCode::OK);
        assert_eq!(answer["status"], "PROCESSING");
        assert_eq!(answer["version"], 2);

        // A terminal view is final: it is the answer, whatever the log says.
        let mut done = OrderStatusRecord::from(&view);
        done.status = OrderStatus::Completed;
        done.version = Version::new(3).unwrap();
        status.upsert(&done).await.unwrap();
        let (_, _, answer) = call(&api.app, get()).await;
        assert_eq!(answer["status"], "COMPLETED");
        assert_eq!(answer["version"], 3);
    }

    /// A projected record of `customer`'s order created `minute` minutes past noon.
    fn record(customer: &str, minute: u32, status: OrderStatus) -> OrderStatusRecord {
        let at = format!("2024-05-01T12:{minute:02}:00.000Z");
        OrderStatusRecord {
            order_id: OrderId::new_random(),
            status,
            customer_id: CustomerId::parse(customer).unwrap(),
            item_count: 1,
            total: 100,
            currency: events_schema::Currency::USD,
            version: Version::FIRST,
            created_at: at.clone(),
            updated_at: at,
            completed_at: None,
            failure_reason: None,
        }
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    /// Follows `nextCursor` from `first` to the end; returns every page's order ids.
    async fn walk(app: &Router, first: &str) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut uri = first.to_owned();
        loop {
            let (status, _, body) = call(app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            let ids = body["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["orderId"].as_str().unwrap().to_owned())
                .collect();
            pages.push(ids);
            match &body["nextCursor"] {
                Value::Null => return pages,
                Value::String(cursor) => uri = format!("{first}&cursor={cursor}"),
                other => panic!("nextCursor {other}"),
            }
            assert!(pages.len() < 100, "the walk does not end");
        }
    }

    #[tokio::test]
    async fn a_customers_orders_are_walked_page_by_page_newest_first_exactly_once() {
        let api = api();
        let status = api.db.status_store();
        // Minutes repeat, so ties on createdAt are broken by orderId (descending).
        let mut mine = Vec::new();
        for minute in [5, 1, 9, 5, 3, 7, 5, 2] {
            let r = record("c-1", minute, OrderStatus::Completed);
            status.upsert(&r).await.unwrap();
            mine.push(r);
        }
        status
            .upsert(&record("c-2", 4, OrderStatus::Completed))
            .await
            .unwrap();
        mine.sort_by(|a, b| (&b.created_at, b.order_id).cmp(&(&a.created_at, a.order_id)));
        let expected: Vec<String> = mine.iter().map(|r| r.order_id.to_string()).collect();

        let pages = walk(&api.app, "/orders?customerId=c-1&limit=3").await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 2],
            "pages of at most the limit, no empty last page"
        );
        assert_eq!(pages.concat(), expected, "newest first, each order once");

        // The whole record is the status record GET /orders/{id} answers.
        let (_, _, body) = call(&api.app, get("/orders?customerId=c-1&limit=1")).await;
        assert_eq!(body["orders"][0], serde_json::to_value(&mine[0]).unwrap());
        assert!(body["nextCursor"].is_string());
    }

    #[tokio::test]
    async fn the_default_page_is_fifty_orders_and_a_status_filter_keeps_only_that_status() {
        let api = api();
        let status = api.db.status_store();
        for n in 0..55 {
            let state = if n % 5 == 0 {
                OrderStatus::Failed
            } else {
                OrderStatus::Completed
            };
            status.upsert(&record("c-1", n, state)).await.unwrap();
        }
        let (code, _, body) = call(&api.app, get("/orders?customerId=c-1")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["orders"].as_array().unwrap().len(), 50);
        assert!(body["nextCursor"].is_string());

        let failed = walk(&api.app, "/orders?customerId=c-1&status=FAILED&limit=4").await;
        assert_eq!(failed.concat().len(), 11);
        let (_, _, body) = call(&api.app, get("/orders?customerId=c-1&status=FAILED")).await;
        let statuses: Vec<&Value> = body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["status"])
            .collect();
        assert!(statuses.iter().all(|s| *s == "FAILED"), "{statuses:?}");
    }

    #[tokio::test]
    async fn an_unknown_customer_has_no_orders_and_no_cursor() {
        let api = api();
        let (code, _, body) = call(&api.app, get("/orders?customerId=nobody")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"orders": [], "nextCursor": null}));
    }

    #[tokio::test]
    async fn each_bad_query_parameter_is_a_400_naming_it() {
        let api = api();
        let forged = "eyJjcmVhdGVkQXQiOiIiLCJvcmRlcklkIjoieCJ9";
        for (query, field) in [
            ("", "customerId"),
            ("status=FAILED", "customerId"),
            ("customerId=", "customerId"),
            ("customerId=a%20b", "customerId"),
            ("customerId=c&status=done", "status"),
            ("customerId=c&status=failed", "status"),
            ("customerId=c&limit=0", "limit"),
            ("customerId=c&limit=101", "limit"),
            ("customerId=c&limit=ten", "limit"),
            ("customerId=c&limit=-1", "limit"),
            ("customerId=c&cursor=", "cursor"),
            ("customerId=c&cursor=not-a-cursor", "cursor"),
            (&format!("customerId=c&cursor={forged}"), "cursor"),
            ("customerId=c&customerId=d", "customerId"),
            ("customerID=c", "customerID"),
        ] {
            let (code, headers, problem) = call(&api.app, get(&format!("/orders?{query}"))).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{query}: {problem}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            assert_eq!(problem["title"], "Invalid query parameter", "{query}");
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
            assert_eq!(problem["errors"].as_array().unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_failing_status_view_leaks_nothing_on_a_customers_orders() {
        let (_dir, app) = broken_api(|s| s.status = Arc::new(Broken(StoreError::Unavailable)));
        assert_opaque_problem(
            &app,
            get("/orders?customerId=c-1"),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
        let (_dir, app) = broken_api(|s| s.status = Arc::new(Broken(StoreError::Corrupt)));
        assert_opaque_problem(
            &app,
            get("/orders?customerId=c-1&cursor=abc"),
            StatusCode::INTERNAL_SERVER_ERROR,
        )
        .await;
    }

    /// A port that takes its time (a slow disk, a slow network) before doing its work.
    struct Slow<T>(T);

    const SLOWNESS: std::time::Duration = std::time::Duration::from_millis(300);

    #[async_trait::async_trait]
    impl OrderIntake for Slow<order_adapters_sqlite::SqliteIntake> {
        async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError> {
            tokio::time::sleep(SLOWNESS).await;
            self.0.accept(received).await
        }
        async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError> {
            self.0.requeue(order_id).await
        }
    }

    #[async_trait::async_trait]
    impl WorkQueue for Slow<SqliteWorkQueue> {
        async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
            tokio::time::sleep(SLOWNESS).await;
            self.0.send(order_id).await
        }
        async fn receive(
            &self,
            max: usize,
            visibility: std::time::Duration,
        ) -> Result<Vec<order_ports::Delivery>, StoreError> {
            self.0.receive(max, visibility).await
        }
        async fn ack(&self, delivery: &order_ports::Delivery) -> Result<(), StoreError> {
            self.0.ack(delivery).await
        }
        async fn fail(&self, delivery: &order_ports::Delivery) -> Result<(), StoreError> {
            self.0.fail(delivery).await
        }
    }

    /// POSTs an order and hangs up long before the write can be done: the request future is
    /// dropped once the body has been read and the write has started.
    async fn post_and_hang_up(app: &Router) {
        let request = app.clone().oneshot(post(&order(1), None));
        let answered = tokio::time::timeout(SLOWNESS / 6, request).await;
        assert!(
            answered.is_err(),
            "answered before the hang-up: {answered:?}"
        );
    }

    /// Waits (at most 5 s) for one order in the log and one message in the queue, then checks
    /// the message is that order's.
    async fn assert_logged_and_queued(db: &SqliteDb) {
        let queue = db.work_queue_default();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while db.head_seq().await.unwrap() < 1 || queue.depth().await.unwrap() < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "after the hang-up: {} event(s) in the log, {} message(s) queued",
                db.head_seq().await.unwrap(),
                queue.depth().await.unwrap()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let logged = db.event_store().read_all(None, 10).await.unwrap().events;
        let queued = queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].event_type().as_str(), "OrderReceived");
        let bodies: Vec<String> = queued.into_iter().map(|d| d.body).collect();
        assert_eq!(bodies, vec![logged[0].order_id.to_string()]);
    }

    #[tokio::test]
    async fn a_client_hanging_up_during_the_sqlite_hand_off_still_gets_its_order_logged_and_queued()
    {
        let temp = TempSqlite::new();
        let db = temp.db().clone();
        let app = router(AppState {
            intake: Arc::new(Slow(db.intake())),
            events: Arc::new(db.event_store()),
            status: Arc::new(db.status_store()),
        });
        post_and_hang_up(&app).await;
        assert_logged_and_queued(&db).await;
    }

    /// The gap of issue 7: the append is done, the enqueue not yet, when the client hangs up.
    #[tokio::test]
    async fn a_client_hanging_up_between_append_and_enqueue_still_gets_its_order_queued() {
        let temp = TempSqlite::new();
        let db = temp.db().clone();
        let events: Arc<dyn EventStore> = Arc::new(db.event_store());
        let app = router(AppState {
            intake: Arc::new(AppendThenEnqueue {
                events: events.clone(),
                queue: Arc::new(Slow(db.work_queue_default())),
            }),
            events,
            status: Arc::new(db.status_store()),
        });
        post_and_hang_up(&app).await;
        assert_logged_and_queued(&db).await;
    }

    /// What an AWS failure's text carries and a client must never see.
    const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/OrderEvents";
    const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/work";
    const REQUEST_ID: &str = "7Q2KJ1M0VH5L4N8RSPT3BU6CDEFGAQ9ASUAAJG";

    /// A port whose every call fails with the error its `StoreError` constructor makes, the
    /// message full of deployment details as an SDK error's would be.
    #[derive(Clone, Copy)]
    struct Broken(fn(String) -> StoreError);

    impl Broken {
        fn error(self) -> StoreError {
            (self.0)(format!(
                "service error: ProvisionedThroughputExceededException on {ARN} \
                 (queue {QUEUE_URL}), RequestId: {REQUEST_ID}"
            ))
        }
    }

    #[async_trait::async_trait]
    impl EventStore for Broken {
        async fn append(&self, _: &[EventEnvelope]) -> Result<(), AppendError> {
            Err(self.error().into())
        }
        async fn load(&self, _: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
            Err(self.error())
        }
        async fn read_all(
            &self,
            _: Option<String>,
            _: usize,
        ) -> Result<order_ports::EventPage, StoreError> {
            Err(self.error())
        }
    }

    #[async_trait::async_trait]
    impl WorkQueue for Broken {
        async fn send(&self, _: OrderId) -> Result<(), StoreError> {
            Err(self.error())
        }
        async fn receive(
            &self,
            _: usize,
            _: std::time::Duration,
        ) -> Result<Vec<order_ports::Delivery>, StoreError> {
            Err(self.error())
        }
        async fn ack(&self, _: &order_ports::Delivery) -> Result<(), StoreError> {
            Err(self.error())
        }
        async fn fail(&self, _: &order_ports::Delivery) -> Result<(), StoreError> {
            Err(self.error())
        }
    }

    #[async_trait::async_trait]
    impl StatusStore for Broken {
        async fn get(&self, _: OrderId) -> Result<Option<OrderStatusRecord>, StoreError> {
            Err(self.error())
        }
        async fn upsert(&self, _: &OrderStatusRecord) -> Result<order_ports::Upserted, StoreError> {
            Err(self.error())
        }
        async fn get_many(
            &self,
            _: &[OrderId],
        ) -> Result<std::collections::HashMap<OrderId, OrderStatusRecord>, StoreError> {
            Err(self.error())
        }
        async fn upsert_many(
            &self,
            records: &[OrderStatusRecord],
        ) -> Vec<Result<order_ports::Upserted, StoreError>> {
            records.iter().map(|_| Err(self.error())).collect()
        }
        async fn list_by_customer(
            &self,
            _: &order_ports::CustomerOrdersQuery,
        ) -> Result<order_ports::StatusPage, StoreError> {
            Err(self.error())
        }
        async fn pending_before(
            &self,
            _: chrono::DateTime<chrono::Utc>,
            _: Option<String>,
            _: usize,
        ) -> Result<order_ports::PendingPage, StoreError> {
            Err(self.error())
        }
    }

    /// The ports behind [`AppendThenEnqueue`] and the API, for swapping in broken ones.
    struct Ports {
        events: Arc<dyn EventStore>,
        queue: Arc<dyn WorkQueue>,
        status: Arc<dyn StatusStore>,
    }

    /// The SQLite-backed API with some ports swapped for broken ones by `break_ports`; the
    /// intake is [`AppendThenEnqueue`] over the (possibly broken) log and queue.
    fn broken_api(break_ports: impl FnOnce(&mut Ports)) -> (TempSqlite, Router) {
        let temp = TempSqlite::new();
        let db = temp.db().clone();
        let mut ports = Ports {
            events: Arc::new(db.event_store()),
            queue: Arc::new(db.work_queue_default()),
            status: Arc::new(db.status_store()),
        };
        break_ports(&mut ports);
        let state = AppState {
            intake: Arc::new(AppendThenEnqueue {
                events: ports.events.clone(),
                queue: ports.queue,
            }),
            events: ports.events,
            status: ports.status,
        };
        (temp, router(state))
    }

    /// Calls the API and checks the answer is a problem document with `status` that gives away
    /// nothing of the failure behind it.
    async fn assert_opaque_problem(app: &Router, request: Request<Body>, status: StatusCode) {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(headers.contains_key(header::RETRY_AFTER));
        }
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        for secret in ["arn:", "123456789012", "amazonaws.com", REQUEST_ID] {
            assert!(!body.contains(secret), "{secret} leaked into {body}");
        }
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    #[tokio::test]
    async fn an_unavailable_event_store_is_a_503_that_leaks_nothing() {
        let (_dir, app) = broken_api(|s| s.events = Arc::new(Broken(StoreError::Unavailable)));
        assert_opaque_problem(&app, post(&order(1), None), StatusCode::SERVICE_UNAVAILABLE).await;
    }

    #[tokio::test]
    async fn a_corrupt_or_rejected_append_is_a_500_that_leaks_nothing() {
        for fault in [StoreError::Corrupt, StoreError::Rejected] {
            let (_dir, app) = broken_api(|s| s.events = Arc::new(Broken(fault)));
            assert_opaque_problem(
                &app,
                post(&order(1), None),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
            .await;
        }
    }

    #[tokio::test]
    async fn a_stored_order_whose_enqueue_keeps_failing_is_accepted_and_left_to_the_reconciler() {
        let (temp, app) = broken_api(|s| s.queue = Arc::new(Broken(StoreError::Unavailable)));
        let (status, _, accepted) = call(&app, post(&order(1), Some("k"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert_eq!(
            temp.db().head_seq().await.unwrap(),
            1,
            "the order is in the log"
        );
        assert_eq!(temp.db().work_queue_default().depth().await.unwrap(), 0);
        let id = OrderId::parse(accepted["orderId"].as_str().unwrap()).unwrap();
        let pending = temp
            .db()
            .event_store()
            .load(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type().as_str())
            .collect::<Vec<_>>();
        assert_eq!(pending, ["OrderReceived"]);
    }

    #[tokio::test]
    async fn a_retried_key_whose_requeue_fails_is_still_accepted() {
        let (temp, app) = broken_api(|s| s.queue = Arc::new(Broken(StoreError::Unavailable)));
        let (first, _, _) = call(&app, post(&order(1), Some("k"))).await;
        let (second, _, body) = call(&app, post(&order(1), Some("k"))).await;
        assert_eq!(
            (first, second),
            (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
            "{body}"
        );
        assert_eq!(temp.db().head_seq().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_queue_refusing_for_good_after_the_append_still_gets_a_202() {
        let (temp, app) = broken_api(|s| s.queue = Arc::new(Broken(StoreError::Rejected)));
        let (status, _, body) = call(&app, post(&order(1), None)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(temp.db().head_seq().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_failing_status_view_leaks_nothing_on_get() {
        for (fault, status) in [
            (
                StoreError::Unavailable as fn(String) -> StoreError,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (StoreError::Corrupt, StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let (_dir, app) = broken_api(|s| s.status = Arc::new(Broken(fault)));
            let request = Request::get(format!("/orders/{}", OrderId::new_random()))
                .body(Body::empty())
                .unwrap();
            assert_opaque_problem(&app, request, status).await;
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_and_writes_nothing() {
        let api = api();
        let big =
            serde_json::json!({"customerId": "c", "items": [], "pad": "x".repeat(MAX_BODY_BYTES)});
        let (status, _, problem) = call(&api.app, post(&big, None)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(problem["errors"][0]["field"], "body");
        assert_eq!(api.db.head_seq().await.unwrap(), 0);
    }
}
