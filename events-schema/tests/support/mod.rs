//! Strategies shared by the property tests of this crate.

use events_schema::{CustomerId, LineItem, ProductId, ValidOrder};
use proptest::prelude::*;

pub fn arb_text_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:@-]{1,64}"
}

pub fn arb_order() -> impl Strategy<Value = ValidOrder> {
    (
        arb_text_id(),
        prop::collection::vec(
            (arb_text_id(), 1u32..=10_000, 0i64..=100_000_000_000),
            1..20,
        ),
        "[A-Z]{3}",
    )
        .prop_map(|(customer, items, currency)| ValidOrder {
            customer_id: CustomerId::parse(customer).expect("strategy makes valid ids"),
            items: items
                .into_iter()
                .map(|(p, quantity, unit_price)| LineItem {
                    product_id: ProductId::parse(p).expect("valid"),
                    quantity,
                    unit_price,
                })
                .collect(),
            currency: events_schema::Currency::parse(&currency).expect("valid"),
        })
}
