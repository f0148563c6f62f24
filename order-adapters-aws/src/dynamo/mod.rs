//! DynamoDB adapters: the `OrderEvents` table ([`DynamoEventStore`]) and the `OrderStatus`
//! view ([`DynamoStatusStore`]).

use futures::StreamExt;

use super::classify;

mod event_scan;
mod event_table;
pub(crate) mod pending;
mod status_repair;
pub(crate) mod status_table;

pub use event_table::DynamoEventStore;
use event_table::*;
pub use pending::PENDING_SHARDS;
use pending::{pending_shard, PENDING_SHARD};
pub use status_table::DynamoStatusStore;

pub(super) const NEW_KEY_ONLY: &str = "attribute_not_exists(orderId)";

/// Runs `calls` at most `limit` at a time; outcome `i` is call `i`'s. The calls are built up
/// front by the caller: a lazy `map` inside the stream trips the `Send` check of async_trait.
pub(super) async fn at_most<F: std::future::Future>(limit: usize, calls: Vec<F>) -> Vec<F::Output> {
    futures::stream::iter(calls).buffered(limit).collect().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use events_schema::OrderId;
    use order_ports::StoreError;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let id = OrderId::new_random();
        let key = parse_cursor(&format!("{id}|7")).expect("cursor");
        assert_eq!(format_cursor(&key).expect("format"), format!("{id}|7"));
        for bad in [
            "",
            "x|1",
            &format!("{id}"),
            &format!("{id}|0"),
            &format!("{id}|-1"),
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::Rejected(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn pending_shards_are_stable_and_spread_evenly() {
        let id = OrderId::parse("0192f0c4-5e6a-7b3c-8d9e-0f1a2b3c4d5e").expect("uuid");
        assert_eq!(pending_shard(id), pending_shard(id));
        let mut counts = [0u32; PENDING_SHARDS as usize];
        for n in 0..16_000 {
            let customer =
                events_schema::CustomerId::parse(format!("cust-{}", n % 7)).expect("customer");
            for id in [
                OrderId::new_random(),
                OrderId::derived(&customer, &n.to_string()),
            ] {
                counts[pending_shard(id) as usize] += 1;
            }
        }
        // 32,000 ids over the shards (250 each with 128); six standard deviations either side
        // (sqrt of the expected count, ~16 with 128 shards) is a bound a fair hash never misses.
        let expected = 32_000 / PENDING_SHARDS;
        let spread = 6 * expected.isqrt();
        assert!(
            counts
                .iter()
                .all(|&n| (expected - spread..=expected + spread).contains(&n)),
            "uneven around {expected} ± {spread}: {counts:?}"
        )
    }
}
