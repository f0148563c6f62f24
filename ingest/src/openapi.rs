//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the types they answer with, served at `GET /openapi.json` by the one router (so by the
//! Lambda and by `orders serve` alike) and committed as `docs/openapi.json`.
//!
//! `ingest/tests/openapi.rs` fails when the committed file differs from [`document_json`] and
//! when a limit in the document differs from the constant the code enforces; regenerate with
//! `ORDERS_UPDATE_OPENAPI=1 cargo test -p ingest --test openapi`.
//!
//! The shapes that belong to the domain crate (`events-schema` stays free of HTTP concerns) are
//! described here by `*Doc` types that are never built: schemathesis, run against
//! `orders serve` by the test command, checks every response against them.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::api;
use crate::problem::ProblemBody;

/// The problem document of every error.
pub(crate) type Problem = ProblemBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orders",
        description = "An event-sourced order service: place orders, read their status and \
history, list a customer's orders. Every error is an RFC 7807 problem document \
(application/problem+json). Limits: a request body is at most 262144 bytes (256 KiB, 413 beyond); \
an order has 1 to 100 items; customerId and productId are 1 to 64 of [A-Za-z0-9-_.:@]; \
Idempotency-Key is 1 to 255 visible ASCII characters; X-Correlation-Id is 1 to 128 of \
[A-Za-z0-9-_.:@]. Money is integer minor units (cents).",
    ),
    paths(
        api::create_order,
        api::list_orders,
        api::get_order,
        api::get_events,
        api::health,
        openapi_json,
    ),
    components(schemas(Problem, FieldErrorDoc)),
    modifiers(&OptionalBearer),
    tags(
        (name = "orders", description = "Orders and their history."),
        (name = "operations", description = "Health and this document."),
    ),
)]
struct ApiDoc;

/// The `bearer` scheme the order routes accept: optional, since authentication is off unless
/// the deployment turns it on (template `AuthIssuer`/`AuthAudience`, `orders serve --auth-jwks`).
struct OptionalBearer;

impl utoipa::Modify for OptionalBearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "Only when authentication is on: a JWT whose claim (`sub` by default) names the \
                 caller's customer; it may then create and read only that customer's orders \
                 (403 for another customer, 404 for another customer's order ids).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document, as an object.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    json.push('\n');
    json
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object)),
)]
async fn openapi_json() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The handler of `GET /openapi.json`.
pub(crate) async fn serve_document() -> Response {
    openapi_json().await
}

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

/// Where an order is in its life: `RECEIVED → PROCESSING → COMPLETED` or `→ FAILED`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = OrderStatus)]
#[allow(dead_code)]
pub(crate) enum OrderStatusDoc {
    Received,
    Processing,
    Completed,
    Failed,
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
    /// `OrderCompleted {total}`, `OrderFailed {reason}`.
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
}

/// One problem with one field.
#[derive(Deserialize, ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub(crate) struct FieldErrorDoc {
    /// A body path such as `items[2].quantity`, a header, a query parameter or `id`.
    field: String,
    message: String,
}

/// `{"status": "ok"}`.
#[derive(Deserialize, ToSchema)]
#[schema(as = Health)]
#[allow(dead_code)]
pub(crate) struct HealthDoc {
    #[schema(pattern = "^ok$")]
    status: String,
}
