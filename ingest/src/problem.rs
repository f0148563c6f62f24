//! Errors of the API, mapped once to HTTP statuses and RFC 7807 problem documents.
//!
//! A server-side failure keeps its cause for the log and shows the client a fixed sentence: the
//! causes carry SDK messages, table ARNs, queue URLs, account and request ids.

use std::error::Error;
use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use events_schema::{FieldError, FoldError, OrderId, OrderStatus, ValidationErrors};
use order_ports::StoreError;
use serde::Serialize;

/// What a client is told about a `503`, whatever the cause.
pub const UNAVAILABLE_DETAIL: &str = "the order service is temporarily unavailable; retry later";
/// What a client is told about a `500`, whatever the cause.
pub const INTERNAL_DETAIL: &str = "the request failed on the server; the failure has been logged";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The body of a cancellation does not pass [`events_schema::CancelRequest::validate`].
    #[error("invalid cancellation: {}", field_list(.0))]
    InvalidCancellation(ValidationErrors),
    /// The order finished another way before it could be cancelled.
    #[error("order {order_id} is {} and can no longer be cancelled", .status.as_str())]
    NotCancellable {
        order_id: OrderId,
        status: OrderStatus,
    },
    #[error("{0:?} is not a valid order id (expected a UUID)")]
    BadOrderId(String),
    #[error("query parameter {field}: {message}")]
    BadQuery { field: String, message: String },
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
    #[error("the body was not received in time")]
    BodyTimeout,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// Authentication is on and the request carries no valid token (see `auth`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Authentication is on and the token's customer is not the one the request is for.
    #[error("the token's customer may not act for this customer")]
    Forbidden,
    /// A transient failure of a backend; the client may retry.
    #[error("a backend is temporarily unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else that is the server's fault.
    #[error("internal error")]
    Internal(#[source] Box<dyn Error + Send + Sync>),
}

/// `field: message; field: message`, as the `detail` of a validation problem.
fn field_list(errors: &ValidationErrors) -> String {
    let each: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    each.join("; ")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e)
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

/// A stored history that does not fold is a corrupt log: the server's fault, not the client's.
impl From<FoldError> for ApiError {
    fn from(e: FoldError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

/// An error's `source()` chain, outermost first, joined by `: `.
struct Causes<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut next = self.0.source();
        let mut first = true;
        while let Some(cause) = next {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{cause}")?;
            first = false;
            next = cause.source();
        }
        Ok(())
    }
}

/// An RFC 7807 problem document (`application/problem+json`): every error of the API.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody {
    /// Always `about:blank`: `title` and `status` say what happened.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: &'static str,
    /// A fixed sentence per kind of problem, e.g. `Invalid order`.
    title: &'static str,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong. For 5xx a fixed sentence: causes are only logged.
    detail: String,
    /// Each field (body path such as `items[2].quantity`, header, query parameter or `id`) at
    /// fault and why; absent when the problem is about no field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorDoc>, required = false, min_items = 1)]
    errors: Vec<FieldError>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::BadOrderId(_)
            | ApiError::BadHeader { .. }
            | ApiError::BadQuery { .. }
            | ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_)
            | ApiError::InvalidCancellation(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotCancellable { .. } => StatusCode::CONFLICT,
            ApiError::OrderNotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::Validation(_) => "Invalid order",
            ApiError::InvalidCancellation(_) => "Invalid cancellation",
            ApiError::NotCancellable { .. } => "Order not cancellable",
            ApiError::BadOrderId(_) => "Invalid order id",
            ApiError::BadHeader { .. } => "Invalid header",
            ApiError::BadQuery { .. } => "Invalid query parameter",
            ApiError::IdempotencyKeyReused => "Idempotency-Key reused",
            ApiError::OrderNotFound(_) => "Order not found",
            ApiError::RouteNotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::BodyTooLarge { .. } => "Body too large",
            ApiError::BadBody(_) => "Unreadable body",
            ApiError::BodyTimeout => "Request timeout",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Unauthenticated(_) => "Unauthorized",
            ApiError::Forbidden => "Forbidden",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// The short code of a refused `POST /orders`, the `reason` of its rejection metric.
    fn reason(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadBody(_) => "malformed_body",
            ApiError::Validation(_) => "invalid_order",
            ApiError::BadHeader { .. } => "bad_header",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            _ => "other",
        }
    }

    /// What the client reads. For server errors a fixed sentence: the cause is only logged.
    fn detail(&self) -> String {
        match self {
            ApiError::Unavailable(_) => UNAVAILABLE_DETAIL.to_owned(),
            ApiError::Internal(_) => INTERNAL_DETAIL.to_owned(),
            other => other.to_string(),
        }
    }

    /// The one log line of a server error, with its whole cause chain: `warn` for a transient
    /// `503` (the client retries; an alarm on those would page for throttling), `error` otherwise.
    fn log(&self, status: StatusCode) {
        if !status.is_server_error() {
            return;
        }
        let causes = Causes(self);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(status = status.as_u16(), error = %self, cause = %causes, "request failed");
        } else {
            tracing::error!(status = status.as_u16(), error = %self, cause = %causes, "request failed");
        }
    }

    /// The fields the problem is about: every field error of a validation failure, or the one
    /// thing (header, query parameter, path segment, body) at fault.
    fn field_errors(&self) -> Vec<FieldError> {
        let one = |field: &str, message: String| {
            vec![FieldError {
                field: field.to_owned(),
                message,
            }]
        };
        match self {
            ApiError::Validation(errors) | ApiError::InvalidCancellation(errors) => {
                errors.0.clone()
            }
            ApiError::MalformedJson(m) => one("body", m.clone()),
            ApiError::BadBody(m) => one("body", m.clone()),
            ApiError::BodyTimeout => one("body", "was not received in time".to_owned()),
            ApiError::BodyTooLarge { limit } => {
                one("body", format!("must be at most {limit} bytes"))
            }
            ApiError::BadOrderId(_) => one("id", "must be a UUID".to_owned()),
            ApiError::BadHeader { header, message } => one(header, message.clone()),
            ApiError::BadQuery { field, message } => one(field, message.clone()),
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
        self.log(status);
        let body = ProblemBody {
            kind: "about:blank",
            title: self.title(),
            status: status.as_u16(),
            detail: self.detail(),
            errors: self.field_errors(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        response
            .extensions_mut()
            .insert(crate::correlation::RejectReason(self.reason()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// One problem with one field.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub(crate) struct FieldErrorDoc {
    /// A body path such as `items[2].quantity`, a header, a query parameter or `id`.
    field: String,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_cause_chain_holds_what_the_client_never_sees() {
        let leak = "arn:aws:dynamodb:us-east-1:123456789012:table/OrderEvents throttled";
        let error = ApiError::from(StoreError::Unavailable(leak.to_owned()));
        assert_eq!(
            Causes(&error).to_string(),
            format!("backend unavailable: {leak}")
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.detail().contains("123456789012"));
    }

    #[test]
    fn a_permanent_store_failure_is_internal_with_its_cause() {
        let error = ApiError::from(StoreError::Corrupt("bad item".to_owned()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Causes(&error).to_string(), "corrupt record: bad item");
        assert_eq!(error.detail(), INTERNAL_DETAIL);
    }
}
