//! The error contract every port shares: what is transient, what is permanent, and the typed
//! optimistic-lock failure of an append.

use events_schema::{OrderId, Version};

/// A failure of a port operation other than an append conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transient: the backend is busy, throttling, timing out or down. Retry later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Permanent: a stored record cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Permanent: the request itself is invalid (a bug in the caller, not bad luck).
    #[error("request rejected: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Why an append did not happen. Nothing was written in either case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Optimistic-lock failure: a version being appended already exists, so someone else moved
    /// the order on. Never retry blindly: reload the history and decide again.
    #[error("order {order_id} already has version {version}")]
    Conflict { order_id: OrderId, version: Version },
    #[error(transparent)]
    Store(#[from] StoreError),
}
