//! Round trips of the codecs not covered in `domain.rs` (which has the envelope's wire JSON and
//! DynamoDB item): the POST body, the status record (DynamoDB item and API JSON) and the
//! work-queue message. Each for arbitrary values, not examples.

use events_schema::{
    Currency, CustomerId, OrderId, OrderRequest, OrderStatus, OrderStatusRecord, ValidOrder,
    Version,
};
use proptest::prelude::*;
use serde_json::json;
use support::{arb_order, arb_text_id};
use uuid::Uuid;

mod support;

/// The body a client POSTs for `order`, as the README documents it.
fn request_body(order: &ValidOrder) -> serde_json::Value {
    let items: Vec<_> = order
        .items
        .iter()
        .map(|i| json!({"productId": i.product_id.as_str(), "quantity": i.quantity, "unitPrice": i.unit_price}))
        .collect();
    json!({"customerId": order.customer_id.as_str(), "items": items, "currency": order.currency.as_str()})
}

fn arb_status() -> impl Strategy<Value = OrderStatus> {
    prop::sample::select(vec![
        OrderStatus::Received,
        OrderStatus::Processing,
        OrderStatus::Completed,
        OrderStatus::Failed,
    ])
}

prop_compose! {
    fn arb_record()(
        id in any::<u128>(),
        status in arb_status(),
        customer in arb_text_id(),
        item_count in any::<u32>(),
        total in any::<i64>(),
        currency in "[A-Z]{3}",
        version in 1u32..,
        created_at in ".{0,40}",
        updated_at in ".{0,40}",
        completed_at in proptest::option::of(".{0,40}"),
        failure_reason in proptest::option::of(".{0,200}"),
    ) -> OrderStatusRecord {
        OrderStatusRecord {
            order_id: OrderId::parse(&Uuid::from_u128(id).to_string()).expect("a UUID"),
            status,
            customer_id: CustomerId::parse(customer).expect("strategy makes valid ids"),
            item_count,
            total,
            currency: Currency::parse(&currency).expect("three capitals"),
            version: Version::new(version).expect("≥ 1"),
            created_at,
            updated_at,
            completed_at,
            failure_reason,
        }
    }
}

proptest! {
    #[test]
    fn a_valid_order_posted_as_json_validates_to_the_same_order(order in arb_order()) {
        let body = request_body(&order);
        prop_assert_eq!(OrderRequest::validate(&body), Ok(order));
    }

    #[test]
    fn a_status_record_survives_its_dynamodb_item(record in arb_record()) {
        let item = record.to_item().expect("a record is an item");
        prop_assert_eq!(OrderStatusRecord::from_item(item).expect("the item reads back"), record);
    }

    #[test]
    fn a_status_record_survives_the_json_the_api_answers_with(record in arb_record()) {
        let json = serde_json::to_string(&record).expect("a record serializes");
        let back: OrderStatusRecord = serde_json::from_str(&json).expect("and reads back");
        prop_assert_eq!(back, record);
    }

    #[test]
    fn an_order_id_survives_the_work_queue_message(id in any::<u128>(), pad in "[ \t\r\n]{0,3}") {
        let order_id = OrderId::parse(&Uuid::from_u128(id).to_string()).expect("a UUID");
        let body = order_id.to_string();
        prop_assert_eq!(OrderId::from_work_message(&body), Ok(order_id));
        prop_assert_eq!(OrderId::from_work_message(&format!("{pad}{body}{pad}")), Ok(order_id));
    }

    #[test]
    fn a_work_message_that_is_not_an_order_id_is_refused_not_misread(body in "[^0-9a-fA-F]{0,40}") {
        prop_assert!(OrderId::from_work_message(&body).is_err());
    }
}

/// Fuzzing finding (stream_record): an `occurredAt` finer than a millisecond decoded to an
/// envelope that encoding and decoding again changed.
#[test]
fn an_occurred_at_finer_than_a_millisecond_is_read_at_the_millisecond_the_wire_form_keeps() {
    use events_schema::{EventEnvelope, StoredEvent};
    let stored = |occurred_at: &str| -> StoredEvent {
        serde_json::from_value(json!({
            "orderId": "01938a3c-0000-7000-8000-000000000001", "version": 3,
            "eventId": "01938a3c-0000-7000-8000-00000000000e", "eventType": "OrderCompleted",
            "schemaVersion": 1, "occurredAt": occurred_at, "correlationId": "corr-1",
            "payload": {"total": 5997},
        }))
        .expect("a wire event")
    };
    let fine = stored("2025-11-24T16:00:00.003999999Z")
        .decode()
        .expect("decodes");
    let exact = stored("2025-11-24T16:00:00.003Z")
        .decode()
        .expect("decodes");
    assert_eq!(fine, exact);
    let again = EventEnvelope::from_item(fine.to_item().expect("an item")).expect("decodes");
    assert_eq!(again, fine);
}
