//! Retrying work: how long a failed work message stays hidden ([`retry_delay`]).

use std::time::Duration;

/// The first [`retry_delay`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The longest [`retry_delay`].
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How long a work message that failed on its `receive_count`-th receive stays hidden before
/// it is delivered again: 1 s after the first receive, then doubling — 2 s, 4 s, 8 s, 16 s,
/// 32 s — and 60 s from the seventh on. (`0` is taken as `1`.)
///
/// Why these values: a message dead-letters only when all its receives fail. With the default
/// 5 receives the fifth comes at least 1 + 2 + 4 + 8 = 15 s after the first, so a backend
/// outage shorter than that dead-letters nothing (a 2-second one is over by the third
/// receive), while a poison message still reaches the dead letters within about a quarter of a
/// minute. The cap keeps a message with many allowed receives from sleeping for hours.
pub fn retry_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    FIRST_RETRY_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_one_second_up_to_a_minute() {
        let delays: Vec<u64> = (0..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn with_five_receives_a_two_second_outage_cannot_dead_letter_a_message() {
        let before_the_fifth: Duration = (1..5).map(retry_delay).sum();
        assert!(
            before_the_fifth > Duration::from_secs(2),
            "{before_the_fifth:?}"
        );
        assert_eq!(before_the_fifth, Duration::from_secs(15));
    }
}
