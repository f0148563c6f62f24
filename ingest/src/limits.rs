//! The time limit on reading a request body, for servers that read bodies from the network
//! themselves (`orders serve`; behind API Gateway the Lambda is handed a whole body).
//!
//! The size limits live next to the handlers ([`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES),
//! [`MAX_IDEMPOTENCY_KEY_LEN`](crate::MAX_IDEMPOTENCY_KEY_LEN)) and hold on every deployment,
//! since the one router enforces them.

/// The largest synchronous Lambda invocation (the whole API Gateway event, body included, as
/// JSON): 6 MiB. A larger request never reaches the function: API Gateway answers it itself
/// (see docs/security.md). Everything from [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES) up to this
/// is answered by the function with a `413` problem document.
pub const LAMBDA_INVOKE_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use http_body::{Frame, SizeHint};

/// The body was not complete within its deadline: the client gets `408`.
#[derive(Debug, thiserror::Error)]
#[error("the body was not received within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Gives `request`'s body `limit` from now to arrive whole; after that reading it fails with
/// [`BodyTimedOut`] (the API answers `408`). A total deadline, not one between chunks: a client
/// trickling a byte at a time cannot hold a connection for ever.
pub fn with_body_deadline(request: Request<Body>, limit: Duration) -> Request<Body> {
    request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    })
}

struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body error is a [`BodyTimedOut`], however it was wrapped on the way.
pub(crate) fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}
