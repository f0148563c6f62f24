//! Errors of the API, mapped once to HTTP statuses and RFC 7807 problem documents.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use events_schema::{FieldError, ValidationErrors};
use order_ports::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("{0:?} is not a valid order id (expected a UUID)")]
    BadOrderId(String),
    #[error("header {header}: {message}")]
    BadHeader {
        header: &'static str,
        message: String,
    },
    #[error("this Idempotency-Key was already used with a different order")]
    IdempotencyKeyReused,
    #[error("no order with id {0}")]
    OrderNotFound(String),
    #[error("no such resource")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the body must be at most {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the body could not be read: {0}")]
    BadBody(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("temporarily unavailable, retry later: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::BadOrderId(_)
            | ApiError::BadHeader { .. }
            | ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::OrderNotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::Validation(_) => "Invalid order",
            ApiError::BadOrderId(_) => "Invalid order id",
            ApiError::BadHeader { .. } => "Invalid header",
            ApiError::IdempotencyKeyReused => "Idempotency-Key reused",
            ApiError::OrderNotFound(_) => "Order not found",
            ApiError::RouteNotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::BodyTooLarge { .. } => "Body too large",
            ApiError::BadBody(_) => "Unreadable body",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The fields the problem is about: every field error of a validation failure, or the one
    /// thing (header, path segment, body) at fault.
    fn field_errors(&self) -> Vec<FieldError> {
        let one = |field: &str, message: String| {
            vec![FieldError {
                field: field.to_owned(),
                message,
            }]
        };
        match self {
            ApiError::Validation(errors) => errors.0.clone(),
            ApiError::MalformedJson(m) => one("body", m.clone()),
            ApiError::BadBody(m) => one("body", m.clone()),
            ApiError::BodyTooLarge { limit } => {
                one("body", format!("must be at most {limit} bytes"))
            }
            ApiError::BadOrderId(_) => one("id", "must be a UUID".to_owned()),
            ApiError::BadHeader { header, message } => one(header, message.clone()),
            ApiError::UnsupportedMediaType => {
                one("Content-Type", "must be application/json".to_owned())
            }
            _ => Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // Internal details stay in the log, not in the response.
        let detail = match &self {
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let errors = self.field_errors();
        let body = ProblemBody {
            kind: "about:blank",
            title: self.title(),
            status: status.as_u16(),
            detail,
            errors: &errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
