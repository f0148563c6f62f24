//! The shapes the OpenAPI document describes but the handlers never build: the domain crate
//! (`events-schema`) stays free of HTTP concerns, so its wire forms are described here, and
//! the answers several routes share are listed once. schemathesis, run against `orders serve`
//! by the test command, checks every response against them.
//!
//! This module imports nothing of the handlers, so `api` and `openapi` can both use it.

use serde::Deserialize;
use utoipa::{IntoResponses, ToSchema};

use crate::problem::ProblemBody;

/// The problem document of every error.
pub(crate) type Problem = ProblemBody;

/// The body of `POST /orders`. Unknown fields are rejected (`422`), at the top level and in
/// items, so a typo such as `customerID` never silently drops data.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = OrderRequest)]
#[allow(dead_code)] // a description, never built
pub(crate) struct OrderRequestDoc {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:@-]{1,64}$")]
    customer_id: String,
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<LineItemDoc>,
    /// ISO 4217 code of three upper-case letters; `USD` when absent or null.
    #[schema(pattern = r"^[A-Z]{3}$", min_length = 3, max_length = 3)]
    currency: Option<String>,
}

/// One line of an order.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = LineItem)]
#[allow(dead_code)]
pub(crate) struct LineItemDoc {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:@-]{1,64}$")]
    product_id: String,
    #[schema(minimum = 1, maximum = 10000)]
    quantity: u32,
    /// Integer minor units (cents) of the order's currency.
    #[schema(minimum = 0, maximum = 100000000000_i64)]
    unit_price: i64,
}

/// Where an order is in its life: `RECEIVED → PROCESSING → COMPLETED` or `→ FAILED`; a
/// customer may cancel it (`→ CANCELLED`) while it is `RECEIVED` or `PROCESSING`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = OrderStatus)]
#[allow(dead_code)]
pub(crate) enum OrderStatusDoc {
    Received,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

/// The optional body of `POST /orders/{id}/cancel`. Unknown fields are rejected (`422`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CancelRequest)]
#[allow(dead_code)] // a description, never built
pub(crate) struct CancelRequestDoc {
    /// Why the customer cancels: 1 to 500 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,500}$"
    )]
    reason: Option<String>,
}

/// An order's status: the record of the status view (see the README's status table contract).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OrderStatusRecord)]
#[allow(dead_code)]
pub(crate) struct OrderStatusRecordDoc {
    #[schema(format = Uuid)]
    order_id: String,
    status: OrderStatusDoc,
    customer_id: String,
    /// The sum of the items' quantities.
    #[schema(minimum = 0)]
    item_count: u32,
    /// Integer minor units of `currency`.
    #[schema(minimum = 0)]
    total: i64,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String,
    /// The last event version applied.
    #[schema(minimum = 1)]
    version: u32,
    /// RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Once `COMPLETED`.
    #[serde(default)]
    #[schema(format = DateTime, required = false, nullable = false)]
    completed_at: Option<String>,
    /// Once `FAILED`.
    #[serde(default)]
    #[schema(required = false, nullable = false)]
    failure_reason: Option<String>,
}

/// One event of an order's log, in its wire form.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StoredEvent)]
#[allow(dead_code)]
pub(crate) struct StoredEventDoc {
    #[schema(format = Uuid)]
    order_id: String,
    /// 1, 2, 3… within the order.
    #[schema(minimum = 1)]
    version: u32,
    /// UUIDv7; consumers deduplicate on it.
    #[schema(format = Uuid)]
    event_id: String,
    event_type: EventTypeDoc,
    #[schema(minimum = 1)]
    schema_version: u32,
    #[schema(format = DateTime)]
    occurred_at: String,
    correlation_id: String,
    /// `OrderReceived {customerId, items, currency}`, `OrderProcessingStarted {}`,
    /// `OrderCompleted {total}`, `OrderFailed {reason}`, `OrderCancelled {reason?}`.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// The kinds of event.
#[derive(Deserialize, ToSchema)]
#[schema(as = EventType)]
#[allow(dead_code, clippy::enum_variant_names)] // the wire names
pub(crate) enum EventTypeDoc {
    OrderReceived,
    OrderProcessingStarted,
    OrderCompleted,
    OrderFailed,
    OrderCancelled,
}

/// `{"status": "ok"}`.
#[derive(Deserialize, ToSchema)]
#[schema(as = Health)]
#[allow(dead_code)]
pub(crate) struct HealthDoc {
    #[schema(pattern = "^ok$")]
    status: String,
}

/// The answers every order route may give besides its own: authentication and the server's
/// failures. Listed once here, named in each route's `responses(...)`.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description, never built
pub(crate) enum CommonProblems {
    /// Authentication is on and the bearer token is missing or invalid (WWW-Authenticate: Bearer).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// A server failure (logged; nothing of it is shown).
    #[response(status = 500, content_type = "application/problem+json")]
    ServerFailure(Problem),
    /// A backend is temporarily unavailable: retry (Retry-After). On `POST /orders`, nothing was
    /// stored (once an order is stored the answer is 202).
    #[response(
        status = 503,
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait before retrying."))
    )]
    Unavailable(Problem),
}
