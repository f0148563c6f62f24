//! The Lambda path under AWS's own delivery rules, without AWS: the real handler functions of
//! the processor (`processor::lambda::handle`), projector and notifier
//! (`order_lambda::handle_stream_batch` over `Projector` / `Notifier`) driven by models of
//! the SQS and DynamoDB-stream event source mappings ([`sqs`], [`stream_mapping`]) configured
//! from `template.yaml` ([`template`]), over the real SQLite adapters with the fault layer, and
//! with the failures AWS adds: poison records, throttled calls, duplicate and reordered
//! deliveries, and functions that time out mid-batch.
//!
//! The emulator (ministack) ignores batch-item failures, retries and bisection
//! (docs/emulator.md); this is where those rules run against our code.

mod harness;
mod sqs;
mod stream;
mod stream_mapping;
mod template;

use std::sync::atomic::{AtomicU64, Ordering};

pub use harness::{Run, RunSettings};

/// Virtual time, in milliseconds: visibility timeouts, retry delays and record ages run on it,
/// so a run takes as long as its work, not as long as its timeouts.
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn advance_to(&self, ms: u64) {
        self.0.fetch_max(ms, Ordering::SeqCst);
    }
}

/// xorshift64*: deterministic choices from a seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

mod tests;
