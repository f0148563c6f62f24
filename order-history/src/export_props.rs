//! The export row's round trip, for arbitrary events: an NDJSON line or a CSV record of
//! the export holds the whole event, so an analyst can rebuild it exactly (the payload's
//! fields are those of its event type). Text is arbitrary: commas, quotes, newlines and any
//! Unicode must survive the CSV quoting.

use std::sync::Mutex;

use chrono::DateTime;
use events_schema::{
    CorrelationId, Currency, CustomerId, EventType, OrderEvent, OrderId, ProductId, StoredEvent,
    ValidOrder, Version,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::export_row::payload_columns;

/// A writer the test can read back after the sink has taken it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn export(format: Format, events: &[EventEnvelope]) -> Vec<u8> {
    let out = Shared::default();
    let mut sink = sink(format, Box::new(out.clone())).expect("a sink");
    for event in events {
        sink.write(event).expect("a row");
    }
    sink.finish().expect("finished");
    let bytes = out.0.lock().expect("lock").clone();
    bytes
}

/// The event a row describes: the envelope's columns, and the payload columns of its type.
fn event_of(row: &Map<String, Value>) -> EventEnvelope {
    let event_type: EventType = row["eventType"]
        .as_str()
        .expect("eventType")
        .parse()
        .expect("a known event type");
    let payload_columns = payload_columns(event_type);
    let mut wire: Map<String, Value> = COLUMNS[..7]
        .iter()
        .map(|c| ((*c).to_owned(), row[*c].clone()))
        .collect();
    let payload: Map<String, Value> = payload_columns
        .iter()
        .map(|c| ((*c).to_owned(), row[*c].clone()))
        .collect();
    wire.insert("payload".to_owned(), Value::Object(payload));
    let stored: StoredEvent = serde_json::from_value(Value::Object(wire)).expect("a wire event");
    stored.decode().expect("decodes")
}

/// A CSV record as the JSON row it stands for: numbers and `items` parsed back, and an empty
/// `reason` of a cancellation as no reason (a cancellation's reason is never empty).
fn csv_row(record: &csv::StringRecord) -> Map<String, Value> {
    let cancelled = record.get(3) == Some(EventType::OrderCancelled.as_str());
    COLUMNS
        .iter()
        .zip(record.iter())
        .map(|(column, field)| {
            let value = match *column {
                "reason" if cancelled && field.is_empty() => Value::Null,
                "version" | "schemaVersion" | "total" if !field.is_empty() => {
                    json!(field.parse::<i64>().expect("a number"))
                }
                "items" if !field.is_empty() => serde_json::from_str(field).expect("items JSON"),
                _ => json!(field),
            };
            ((*column).to_owned(), value)
        })
        .collect()
}

fn arb_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:@-]{1,64}"
}

fn arb_event() -> impl Strategy<Value = OrderEvent> {
    let order = (
        arb_id(),
        prop::collection::vec((arb_id(), 1u32..=10_000, 0i64..=100_000_000_000), 1..5),
        "[A-Z]{3}",
    )
        .prop_map(|(customer, items, currency)| {
            OrderEvent::OrderReceived(ValidOrder {
                customer_id: CustomerId::parse(customer).expect("valid"),
                items: items
                    .into_iter()
                    .map(|(p, quantity, unit_price)| LineItem {
                        product_id: ProductId::parse(p).expect("valid"),
                        quantity,
                        unit_price,
                    })
                    .collect(),
                currency: Currency::parse(&currency).expect("valid"),
            })
        });
    // Every event type, by an exhaustive match: a new type does not compile until it is here.
    let order = order.boxed();
    prop::sample::select(EventType::ALL).prop_flat_map(move |event_type| match event_type {
        EventType::OrderReceived => order.clone(),
        EventType::OrderProcessingStarted => Just(OrderEvent::OrderProcessingStarted).boxed(),
        EventType::OrderCompleted => any::<i64>()
            .prop_map(|total| OrderEvent::OrderCompleted { total })
            .boxed(),
        EventType::OrderFailed => any::<String>()
            .prop_map(|reason| OrderEvent::OrderFailed { reason })
            .boxed(),
        // A cancellation gives a reason or none, never an empty one (the API refuses it).
        EventType::OrderCancelled => proptest::option::of("(?s).{1,40}")
            .prop_map(|reason| OrderEvent::OrderCancelled { reason })
            .boxed(),
    })
}

prop_compose! {
    fn arb_envelope()(
        id in any::<u128>(),
        version in 1u32..,
        correlation in "[A-Za-z0-9_.:@-]{1,128}",
        ms in 0i64..10_000_000_000_000,
        event in arb_event(),
    ) -> EventEnvelope {
        EventEnvelope::at(
            OrderId::parse(&uuid_text(id)).expect("a UUID"),
            Version::new(version).expect("≥ 1"),
            CorrelationId::parse(correlation).expect("valid"),
            event,
            DateTime::from_timestamp_millis(ms).expect("in range"),
        )
    }
}

fn uuid_text(n: u128) -> String {
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

proptest! {
    #[test]
    fn each_row_fills_exactly_the_payload_columns_of_its_event_type(event in arb_envelope()) {
        let text = String::from_utf8(export(Format::Ndjson, std::slice::from_ref(&event))).expect("UTF-8");
        let row: Map<String, Value> = serde_json::from_str(text.trim_end()).expect("a JSON row");
        let filled: Vec<&str> = COLUMNS[7..]
            .iter()
            .copied()
            .filter(|c| !row[*c].is_null())
            .collect();
        // Those of its type that it carries (a cancellation's reason is optional).
        let payload = event.to_stored().payload;
        let carried: Vec<&str> = payload_columns(event.event_type())
            .iter()
            .copied()
            .filter(|c| payload.get(*c).is_some())
            .collect();
        prop_assert_eq!(filled, carried);
    }

    #[test]
    fn every_ndjson_row_rebuilds_its_event(events in prop::collection::vec(arb_envelope(), 0..8)) {
        let text = String::from_utf8(export(Format::Ndjson, &events)).expect("UTF-8");
        let rebuilt: Vec<EventEnvelope> = text
            .lines()
            .map(|line| match serde_json::from_str(line).expect("a JSON line") {
                Value::Object(row) => event_of(&row),
                other => panic!("not an object: {other}"),
            })
            .collect();
        prop_assert_eq!(rebuilt, events);
    }

    #[test]
    fn every_csv_record_rebuilds_its_event(events in prop::collection::vec(arb_envelope(), 0..8)) {
        let bytes = export(Format::Csv, &events);
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<&str> = reader.headers().expect("a header").iter().collect();
        prop_assert_eq!(header, COLUMNS.to_vec());
        let rebuilt: Vec<EventEnvelope> = reader
            .records()
            .map(|r| event_of(&csv_row(&r.expect("a record"))))
            .collect();
        prop_assert_eq!(rebuilt, events);
    }
}
