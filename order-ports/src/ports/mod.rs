//! The ports: what the handler libs need from the outside world, and nothing more.
//!
//! Error contract shared by every port: [`StoreError::Unavailable`] is transient (throttling, a
//! timeout, a 5xx, a busy database) and the caller may retry the whole operation;
//! [`StoreError::Corrupt`] and [`StoreError::Rejected`] are permanent — retrying cannot help.
//! Adapters already retry transient faults a bounded number of times before returning them.
//!
//! Async traits: native `async fn` where a trait is used generically ([`EventConsumer`],
//! [`Feed`](crate::Feed)); `#[async_trait]` only for the four held as `Arc<dyn …>`.

mod consumer;
mod dead_letters;
mod error;
mod event_store;
mod export;
mod intake;
mod pending;
mod publisher;
mod repair;
mod retry;
mod scan;
mod set_aside;
mod status_store;
mod work_queue;

pub use consumer::*;
pub use dead_letters::*;
pub use error::*;
pub use event_store::*;
pub use export::*;
pub use intake::*;
pub use pending::*;
pub use publisher::*;
pub use repair::*;
pub use retry::*;
pub use scan::*;
pub use set_aside::*;
pub use status_store::*;
pub use work_queue::*;
