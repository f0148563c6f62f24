//! The contract suite: one set of checks every adapter of the ports must pass.
//!
//! * `suite`: the backend-agnostic checks, each an `async fn(&dyn Backend)` named as the
//!   sentence it proves.
//! * one module per backend: it builds fresh ports for every check (an empty queue, empty
//!   tables) and instantiates every check as a `#[tokio::test]` with `contract_tests!`, plus the
//!   tests only that backend can run.

#[macro_use]
mod suite;

mod sqlite;

mod aws;
