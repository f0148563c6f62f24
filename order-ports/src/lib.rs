//! The order service's ports and their adapters.
//!
//! * [`ports`]: the four ports — [`EventStore`], [`WorkQueue`], [`StatusStore`], [`Publisher`] —
//!   each documenting its error contract.
//! * `sqlite` (feature `sqlite`): the embedded adapters, one SQLite file for everything.
//! * `aws` (feature `aws`): DynamoDB, SQS and SNS adapters.

pub mod ports;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use ports::*;
