//! The order service's contract, shared by every function and by services outside this repository.
//!
//! * [`envelope`]: the stored event (`EventEnvelope`) and its wire form, with upcasting of old
//!   schema versions.
//! * [`event_type`]: the closed set of event types; every match on one is exhaustive.
//! * [`order`]: the status state machine — `decide` what happens next, `fold` events into an
//!   [`OrderView`].
//! * [`validation`]: an incoming order checked field by field, every error collected.
//! * [`status`]: the `OrderStatus` read-model record and its DynamoDB item codec.
//!
//! This crate is pure: no AWS SDK, no async runtime, no I/O.

// Every match on an event type (or status) names each variant: adding one does not compile
// until each place has decided (CONTRIBUTING.md, "Adding an event type").
#![deny(clippy::wildcard_enum_match_arm)]

pub mod envelope;
pub mod event_type;
pub mod ids;
pub mod money;
pub mod order;
pub mod status;
pub mod validation;

pub use envelope::{DecodeError, EventEnvelope, OrderEvent, StoredEvent, Version};
pub use event_type::{EventType, UnknownEventType};
pub use ids::{CorrelationId, CustomerId, EventId, IdError, OrderId, ProductId};
pub use money::{Currency, MinorUnits};
pub use order::{
    decide_cancel, decide_next, FoldError, NotCancellable, OrderStatus, OrderView, ProcessingPolicy,
};
pub use status::{OrderStatusRecord, RecordError};
pub use validation::{
    CancelRequest, FieldError, LineItem, OrderRequest, ValidOrder, ValidationErrors,
};
