//! The export row: one event as a flat record, the envelope's fields then the payload's, with
//! the wire format's names. Every export format and every consumer of the archive reads this
//! one definition, so a column cannot mean two things.

use std::io::Write;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use events_schema::envelope::format_timestamp;
use events_schema::{EventEnvelope, EventType, LineItem, OrderEvent};
use serde::Serialize;

/// The columns, in order: the wire names of the envelope, then of the payload's fields.
pub const COLUMNS: [&str; 12] = [
    "orderId",
    "version",
    "eventId",
    "eventType",
    "schemaVersion",
    "occurredAt",
    "correlationId",
    "customerId",
    "currency",
    "items",
    "total",
    "reason",
];

/// The payload columns an event of `event_type` fills; its other payload columns are null. The
/// one place that says so: the rows, `--help` and the export's tests follow it.
pub const fn payload_columns(event_type: EventType) -> &'static [&'static str] {
    match event_type {
        EventType::OrderReceived => &["customerId", "currency", "items"],
        EventType::OrderProcessingStarted => &[],
        EventType::OrderCompleted => &["total"],
        EventType::OrderFailed => &["reason"],
    }
}

/// One event as a row: the envelope, then the payload's fields (`None` where the event has no
/// such field). `Items` is how the format carries the line items (a nested array, JSON text).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row<'a, Items> {
    pub order_id: String,
    pub version: u32,
    pub event_id: String,
    pub event_type: &'static str,
    pub schema_version: u32,
    pub occurred_at: String,
    pub correlation_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub items: Option<Items>,
    pub total: Option<i64>,
    pub reason: Option<&'a str>,
}

/// `event` as a row, its items made into what the format carries by `items`.
#[deny(clippy::wildcard_enum_match_arm)]
pub fn row<'a, Items>(
    event: &'a EventEnvelope,
    items: impl FnOnce(&'a [LineItem]) -> Items,
) -> Row<'a, Items> {
    let mut row = Row {
        order_id: event.order_id.to_string(),
        version: event.version.get(),
        event_id: event.event_id.to_string(),
        event_type: event.event_type().as_str(),
        schema_version: event.event.schema_version(),
        occurred_at: format_timestamp(event.occurred_at),
        correlation_id: event.correlation_id.as_str(),
        customer_id: None,
        currency: None,
        items: None,
        total: None,
        reason: None,
    };
    match &event.event {
        OrderEvent::OrderReceived(order) => {
            row.customer_id = Some(order.customer_id.as_str());
            row.currency = Some(order.currency.as_str());
            row.items = Some(items(&order.items));
        }
        OrderEvent::OrderProcessingStarted => {}
        OrderEvent::OrderCompleted { total } => row.total = Some(*total),
        OrderEvent::OrderFailed { reason } => row.reason = Some(reason),
    }
    row
}

/// Writes `event` as one NDJSON line: its [`row`] as one JSON object (keys [`COLUMNS`], `items`
/// a nested array of `{productId, quantity, unitPrice}`), then `\n`. What `orders events
/// --format ndjson` writes for each event and what the archive's processor (the `archiver`
/// function) hands Firehose for each, so the two cannot differ.
pub fn write_json_line(event: &EventEnvelope, out: &mut impl Write) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, &row(event, |items| items))?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// The Arrow schema of the Parquet file.
pub fn arrow_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("orderId", false),
        Field::new("version", DataType::UInt32, false),
        text("eventId", false),
        text("eventType", false),
        Field::new("schemaVersion", DataType::UInt32, false),
        Field::new(
            "occurredAt",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        text("correlationId", false),
        text("customerId", true),
        text("currency", true),
        Field::new("items", DataType::List(item_field()), true),
        Field::new("total", DataType::Int64, true),
        text("reason", true),
    ]))
}

/// The fields of one line item in the Parquet `items` list.
pub fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new("productId", DataType::Utf8, false),
        Field::new("quantity", DataType::UInt32, false),
        Field::new("unitPrice", DataType::Int64, false),
    ])
}

/// The element of the Parquet `items` list.
pub fn item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(item_fields()), false))
}
