//! DynamoDB stream records as the projector and notifier Lambdas receive them: the input is a
//! whole stream event (`aws_lambda_events::dynamodb::Event`, as `lambda_runtime` deserializes
//! it) or a single `NewImage`; each `INSERT` image goes through `EventEnvelope::from_item`, the
//! decoding `order_ports::lambda::handle_stream_batch` and the stream feed use. Besides "never
//! panics", whatever decodes must encode and decode again to the same envelope (upcasting is
//! done once, on the first read).
#![no_main]

use events_schema::EventEnvelope;
use libfuzzer_sys::fuzz_target;

fn check(image: serde_dynamo::Item) {
    let Ok(envelope) = EventEnvelope::from_item(image) else {
        return;
    };
    let item = envelope.to_item().expect("a decoded envelope is an item");
    assert_eq!(
        EventEnvelope::from_item(item).as_ref(),
        Ok(&envelope),
        "decode, encode, decode"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<aws_lambda_events::dynamodb::Event>(data) {
        for record in event.records {
            if record.event_name == "INSERT" {
                check(record.change.new_image);
            }
        }
    } else if let Ok(image) = serde_json::from_slice::<serde_dynamo::Item>(data) {
        check(image);
    }
});
