//! The order HTTP API.
//!
//! One axum [`Router`](axum::Router), built by [`router`], serves every deployment: the ingest
//! Lambda (through `lambda_http`) and `orders serve`. Routes:
//!
//! * `POST /orders` — validate, append `OrderReceived` (v1), enqueue → `202 Accepted`;
//! * `GET /orders?customerId=C[&status=S][&limit=N][&cursor=X]` — a customer's orders, newest
//!   first, a page at a time;
//! * `GET /orders/{id}` — the order's status;
//! * `GET /orders/{id}/events` — its history in version order;
//! * `GET /health`;
//! * `GET /openapi.json` — the OpenAPI 3.1 document of all of this ([`openapi`]).
//!
//! Every error is `application/problem+json` ([`ApiError`]). Every response carries the
//! request's `X-Correlation-Id` ([`correlation`]).

mod api;
pub mod auth;
pub mod correlation;
mod doc_types;
pub mod lambda;
pub mod limits;
pub mod openapi;
mod problem;

pub use api::{AppState, MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LEN};
pub use auth::{with_authentication, Authentication, Caller, JwtVerifier};

/// The API. Served unchanged by the Lambda and by `orders serve`: the routes of `api` and the
/// document of `openapi`, with problem answers for unknown routes and methods, inside the
/// correlation layer.
pub fn router(state: AppState) -> axum::Router {
    api::router(state)
        .route("/openapi.json", axum::routing::get(openapi::serve_document))
        // Last of the routes: it applies to the method routers registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(axum::middleware::from_fn(correlation::correlate))
}
pub use problem::ApiError;
