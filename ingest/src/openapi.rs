//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the types they answer with, served at `GET /openapi.json` by the one router (so by the
//! Lambda and by `orders serve` alike) and committed as `docs/openapi.json`.
//!
//! `ingest/tests/openapi.rs` fails when the committed file differs from [`document_json`] and
//! when a limit in the document differs from the constant the code enforces; regenerate with
//! `ORDERS_UPDATE_OPENAPI=1 cargo test -p ingest --test openapi`.
//!
//! The shapes it describes but the handlers never build are in `doc_types`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::api;
use crate::doc_types::Problem;
use crate::problem::FieldErrorDoc;

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
        api::cancel_order,
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
