//! What every function binary shares, so that each function's `lambda.rs` is its own wiring
//! only:
//!
//! * [`config`]: its configuration from the environment ([`FromEnv`]: the variables it declares,
//!   read together, every problem reported at once);
//! * [`logging`]: logs as Lambda's logging config says, and the metrics as EMF lines ([`Emf`]);
//! * [`stream`]: the partial-failure contract of DynamoDB-stream batches
//!   ([`handle_stream_batch`], [`run_stream_function`]) for the projector and the notifier.

pub mod config;
mod emf;
pub mod logging;
pub mod stream;

pub use config::{ConfigError, ConfigProblem, EnvReader, FromEnv};
pub use emf::Emf;
pub use logging::init_logging;
pub use stream::{handle_stream_batch, run_stream_function, PoisonSink};
