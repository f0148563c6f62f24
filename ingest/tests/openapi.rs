//! The OpenAPI document: the committed `docs/openapi.json` is what the code generates, the API
//! serves it, and the limits it states are the ones the code enforces.
//!
//! Regenerate the committed file after changing the API:
//! `ORDERS_UPDATE_OPENAPI=1 cargo test -p ingest --test openapi`.

use std::path::PathBuf;

use events_schema::validation::{MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE};
use events_schema::{CorrelationId, CustomerId, ProductId};
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&ingest::openapi::document_json()).expect("the document is JSON")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = ingest::openapi::document_json();
    let path = committed_path();
    if std::env::var_os("ORDERS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the API's document: regenerate it with \
         ORDERS_UPDATE_OPENAPI=1 cargo test -p ingest --test openapi"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_route_of_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /health",
            "GET /openapi.json",
            "GET /orders",
            "GET /orders/{id}",
            "GET /orders/{id}/events",
            "POST /orders",
            "POST /orders/{id}/cancel",
        ]
    );
}

#[test]
fn every_error_response_is_a_problem_document() {
    let doc = document();
    let mut errors = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                if status.starts_with('2') {
                    continue;
                }
                errors += 1;
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert!(errors >= 15, "only {errors} error responses documented");
    let problem = &doc["components"]["schemas"]["Problem"];
    let mut required: Vec<&str> = problem["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["detail", "status", "title", "type"]);
}

#[test]
fn the_documented_limits_are_the_enforced_ones() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let order = &schemas["OrderRequest"]["properties"];
    let item = &schemas["LineItem"]["properties"];
    assert_eq!(order["customerId"]["maxLength"], CustomerId::MAX_LEN);
    assert_eq!(order["items"]["maxItems"], MAX_ITEMS);
    assert_eq!(item["productId"]["maxLength"], ProductId::MAX_LEN);
    assert_eq!(item["quantity"]["maximum"], MAX_QUANTITY);
    assert_eq!(item["unitPrice"]["maximum"], MAX_UNIT_PRICE);
    assert_eq!(schemas["OrderRequest"]["additionalProperties"], false);
    assert_eq!(schemas["LineItem"]["additionalProperties"], false);

    let post = &doc["paths"]["/orders"]["post"];
    let header = |name: &str| {
        post["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} parameter"))["schema"]
            .clone()
    };
    assert_eq!(
        header("Idempotency-Key")["maxLength"],
        ingest::MAX_IDEMPOTENCY_KEY_LEN
    );
    assert_eq!(
        header("X-Correlation-Id")["maxLength"],
        CorrelationId::MAX_LEN
    );
    let body_limit = ingest::MAX_BODY_BYTES.to_string();
    assert!(
        post["requestBody"]["description"]
            .as_str()
            .is_some_and(|d| d.contains(&body_limit)),
        "the request body's description names the {body_limit}-byte limit"
    );
    let list = doc["paths"]["/orders"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit")["schema"]
        .clone();
    assert_eq!(list["maximum"], order_ports::MAX_CUSTOMER_ORDERS_LIMIT);
}

#[test]
fn the_documented_event_types_and_statuses_are_the_domains() {
    let doc = document();
    let names = |schema: &str| -> Vec<String> {
        doc["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} is an enum"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let event_types: Vec<String> = events_schema::EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(names("EventType"), event_types);
    let statuses: Vec<String> = [
        events_schema::OrderStatus::Received,
        events_schema::OrderStatus::Processing,
        events_schema::OrderStatus::Completed,
        events_schema::OrderStatus::Failed,
        events_schema::OrderStatus::Cancelled,
    ]
    .iter()
    .map(|s| s.as_str().to_owned())
    .collect();
    assert_eq!(names("OrderStatus"), statuses);
}

#[tokio::test]
async fn the_router_serves_the_document_at_openapi_json() {
    use std::sync::Arc;
    use tower::ServiceExt;

    let tmp = order_adapters_sqlite::test_util::TempSqlite::new();
    let db = tmp.db().clone();
    let app = ingest::router(ingest::AppState {
        intake: Arc::new(db.intake()),
        events: Arc::new(db.event_store()),
        status: Arc::new(db.status_store()),
    });
    let request = axum::http::Request::get("/openapi.json")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(
        String::from_utf8_lossy(&body),
        ingest::openapi::document_json()
    );
}
