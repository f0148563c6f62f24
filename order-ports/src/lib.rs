//! The order service's ports and their adapters.
//!
//! * [`ports`]: the four ports — [`EventStore`], [`WorkQueue`], [`StatusStore`], [`Publisher`] —
//!   each documenting its error contract; [`OrderIntake`], the hand-off of a new order to the log
//!   and the queue (atomic on SQLite, [`AppendThenEnqueue`] elsewhere); [`retry_delay`], the
//!   backoff of failed work.
//! * `sqlite` (feature `sqlite`): the embedded adapters, one SQLite file for everything.
//! * `aws` (feature `aws`): DynamoDB, SQS and SNS adapters.
//! * `lambda` (feature `lambda`): what every function binary shares — configuration from the
//!   environment, logging, and the stream-batch contract.

pub mod ports;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use ports::*;
