//! Work-queue messages as the processor Lambda receives them: the input is a whole SQS event
//! (`aws_lambda_events::sqs::SqsEvent`) or a single message body; each body goes through
//! `OrderId::from_work_message`, the decoding `processor::Processor::process` starts with.
//! Besides "never panics", an order id read from a body must read back from the body the
//! queues send for it (its `Display`).
#![no_main]

use events_schema::OrderId;
use libfuzzer_sys::fuzz_target;

fn check(body: &str) {
    if let Ok(order_id) = OrderId::from_work_message(body) {
        assert_eq!(
            OrderId::from_work_message(&order_id.to_string()),
            Ok(order_id),
            "{body:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<aws_lambda_events::sqs::SqsEvent>(data) {
        for message in event.records {
            check(message.body.as_deref().unwrap_or_default());
        }
    } else if let Ok(body) = std::str::from_utf8(data) {
        check(body);
    }
});
