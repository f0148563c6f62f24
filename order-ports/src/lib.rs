//! The order service's ports: what the handler libraries need from the outside world, each with
//! its error contract, and nothing else — the adapters live in their own crates
//! (`order-adapters-sqlite`, `order-adapters-aws`), the Lambda plumbing in `order-lambda`.
//!
//! * [`ports`], one concern per file: the error contract ([`StoreError`], [`AppendError`]);
//!   [`EventStore`], [`WorkQueue`] and its [`retry_delay`], [`StatusStore`] (with the pending
//!   orders the reconciler walks), [`Publisher`]; [`OrderIntake`], the hand-off of a new order
//!   to the log and the queue ([`AppendThenEnqueue`] where they share no transaction); the
//!   consumer contract ([`EventConsumer`], [`BatchOutcome`]); [`SetAside`] for stream records
//!   that can never be handled; and the operator tools' ports ([`OrderScan`], [`StatusRepair`],
//!   [`DeadLetters`], [`EventExport`]).
//! * [`feed`]: the change-feed port [`Feed`] and the consumer loop over it ([`run_subscriber_draining`]).
//! * [`poison`]: setting aside a stream record a consumer can never handle, shared by the
//!   stream Lambdas (`order-lambda`) and the feed loop.
//! * [`reproject`]: a view written from its log, forward-only (`orders rebuild` and the
//!   reconciler's repair share it).
//! * [`metrics`]: the service's own numbers behind one port (the recorders are adapters: EMF in
//!   `order-lambda`, Prometheus in `orders`); [`telemetry`]: what each step logs and counts
//!   about an order.
//!
//! The contract suite every adapter passes is `tests/contract`.

pub mod feed;
pub mod metrics;
pub mod poison;
pub mod ports;
pub mod reproject;
pub mod telemetry;

#[cfg(test)]
mod cursor_props;
#[cfg(test)]
mod test_set_aside;

pub use feed::{catch_up_once, run_subscriber_draining, stopped, Feed, FeedRecord};
pub use ports::*;
