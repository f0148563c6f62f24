//! Round trips of the list cursors, for arbitrary positions: the `GET /orders?customerId=` page
//! cursor (one codec for both backends) and the pending-orders walk of the reconciler. A cursor
//! a client hands back must land exactly where the page ended, and any text at all must decode
//! to a position or to `Rejected`, never panic or to something else.

use events_schema::envelope::format_timestamp;
use events_schema::OrderId;
use proptest::prelude::*;

use crate::ports::{CustomerOrdersPosition, PendingPosition};
use crate::StoreError;

fn arb_order_id() -> impl Strategy<Value = OrderId> {
    any::<u128>().prop_map(|n| {
        OrderId::parse(&uuid::Uuid::from_u128(n).to_string()).expect("a UUID is an order id")
    })
}

proptest! {
    #[test]
    fn a_customer_orders_cursor_decodes_to_the_position_it_encodes(
        created_at in ".{1,60}",
        order_id in arb_order_id(),
    ) {
        let position = CustomerOrdersPosition { created_at, order_id };
        let cursor = position.encode().expect("a position encodes");
        prop_assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{cursor} must be safe in a query string as it is");
        prop_assert_eq!(CustomerOrdersPosition::decode(&cursor).expect("decodes"), position);
    }

    #[test]
    fn any_text_as_a_customer_orders_cursor_is_a_position_or_rejected(cursor in ".{0,120}") {
        if let Err(e) = CustomerOrdersPosition::decode(&cursor) {
            prop_assert!(matches!(e, StoreError::Rejected(_)), "{e:?}");
        }
    }

    #[test]
    fn a_pending_cursor_decodes_to_the_position_it_encodes(
        shard in any::<u32>(),
        ms in 0i64..10_000_000_000_000,
        order_id in arb_order_id(),
    ) {
        let sort_key = format_timestamp(
            chrono::DateTime::from_timestamp_millis(ms).expect("in range"),
        );
        let position = PendingPosition { shard, sort_key, order_id };
        prop_assert_eq!(PendingPosition::decode(&position.encode()).expect("decodes"), position);
    }

    #[test]
    fn any_text_as_a_pending_cursor_is_a_position_or_rejected(cursor in ".{0,120}") {
        if let Err(e) = PendingPosition::decode(&cursor) {
            prop_assert!(matches!(e, StoreError::Rejected(_)), "{e:?}");
        }
    }
}
