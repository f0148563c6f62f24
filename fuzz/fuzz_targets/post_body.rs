//! The body of `POST /orders` as `ingest::api::create_order` reads it: JSON, then
//! `OrderRequest::validate`. Besides "never panics", an accepted order must survive the
//! envelope's codecs (wire JSON and DynamoDB item) unchanged, and a refusal must name a field.
#![no_main]

use events_schema::{
    CorrelationId, EventEnvelope, OrderEvent, OrderId, OrderRequest, StoredEvent, Version,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let order = match OrderRequest::validate(&json) {
        Ok(order) => order,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal without a reason");
            return;
        }
    };
    let envelope = EventEnvelope::new(
        OrderId::derived(&order.customer_id, "fuzz"),
        Version::FIRST,
        CorrelationId::generate(),
        OrderEvent::OrderReceived(order),
    );
    let wire = serde_json::to_vec(&envelope.to_stored()).expect("an envelope serializes");
    let stored: StoredEvent = serde_json::from_slice(&wire).expect("its wire form reads back");
    assert_eq!(
        stored.decode().as_ref(),
        Ok(&envelope),
        "wire JSON round trip"
    );
    let item = envelope.to_item().expect("an envelope is an item");
    assert_eq!(
        EventEnvelope::from_item(item).as_ref(),
        Ok(&envelope),
        "DynamoDB item round trip"
    );
});
