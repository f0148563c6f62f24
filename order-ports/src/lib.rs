//! The order service's ports and their adapters.
//!
//! * [`ports`]: the four ports — [`EventStore`], [`WorkQueue`], [`StatusStore`], [`Publisher`] —
//!   each documenting its error contract; [`OrderIntake`], the hand-off of a new order to the log
//!   and the queue (atomic on SQLite, [`AppendThenEnqueue`] elsewhere); [`retry_delay`], the
//!   backoff of failed work.
//! * [`feed`]: the change-feed port [`Feed`] and the consumer loop over it ([`run_subscriber`]).
//! * [`poison`]: setting aside a stream record a consumer can never handle, shared by the
//!   stream Lambdas and the feed loop.
//! * `sqlite` (feature `sqlite`): the embedded adapters, one SQLite file for everything.
//! * `aws` (feature `aws`): DynamoDB, SQS and SNS adapters; with feature `stream-feed`, the
//!   DynamoDB stream as a [`Feed`].
//! * `lambda` (feature `lambda`): what every function binary shares — configuration from the
//!   environment, logging, and the stream-batch contract.
//! * [`reproject`]: a view written from its log, forward-only (`orders rebuild` and the
//!   reconciler's repair share it).
//! * [`metrics`]: the service's own numbers behind one port (EMF on Lambda, Prometheus with
//!   feature `prometheus`); [`telemetry`]: what each step logs and counts about an order.

pub mod feed;
pub mod metrics;
pub mod poison;
pub mod ports;
pub mod reproject;
pub mod telemetry;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(test)]
mod cursor_props;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use feed::{catch_up_once, run_subscriber, run_subscriber_draining, stopped, Feed, FeedRecord};
pub use ports::*;
