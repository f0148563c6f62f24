//! The stored event: envelope + typed payload, and its wire form ([`StoredEvent`]).
//!
//! The wire form is what lands in the `OrderEvents` table (and in the SQLite log, and in exports):
//! a flat record whose `payload` is a native map, so stream filters and analysts can read it.
//! Reading goes through [`StoredEvent::decode`], which upcasts old `schemaVersion`s, so the rest
//! of the code only ever sees the current shapes.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::ids::{CorrelationId, EventId, OrderId};
use crate::money::{Currency, MinorUnits};
use crate::validation::ValidOrder;

/// An event's position in its order's history: 1-based and gapless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(u32);

impl Version {
    pub const FIRST: Version = Version(1);

    pub fn new(v: u32) -> Option<Self> {
        (v >= 1).then_some(Self(v))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What happened to an order. Past tense: these are facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// The order was accepted by the API (always version 1).
    OrderReceived(ValidOrder),
    /// A worker took the order.
    OrderProcessingStarted,
    /// The order was fulfilled and charged `total` (minor units of the order's currency).
    OrderCompleted { total: MinorUnits },
    /// The order can never be fulfilled (a business rule said no). Terminal.
    OrderFailed { reason: String },
    /// The customer withdrew the order while it was `RECEIVED` or `PROCESSING`, with the reason
    /// they gave, if any. Terminal.
    OrderCancelled { reason: Option<String> },
}

impl OrderEvent {
    /// The customer the event names: only the order's `OrderReceived` does.
    pub fn customer_id(&self) -> Option<&crate::CustomerId> {
        match self {
            OrderEvent::OrderReceived(order) => Some(&order.customer_id),
            OrderEvent::OrderProcessingStarted
            | OrderEvent::OrderCompleted { .. }
            | OrderEvent::OrderFailed { .. }
            | OrderEvent::OrderCancelled { .. } => None,
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            OrderEvent::OrderReceived(_) => EventType::OrderReceived,
            OrderEvent::OrderProcessingStarted => EventType::OrderProcessingStarted,
            OrderEvent::OrderCompleted { .. } => EventType::OrderCompleted,
            OrderEvent::OrderFailed { .. } => EventType::OrderFailed,
            OrderEvent::OrderCancelled { .. } => EventType::OrderCancelled,
        }
    }

    /// The schema version written for this event today.
    pub fn schema_version(&self) -> u32 {
        self.event_type().schema_version()
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            OrderEvent::OrderReceived(order) => serde_json::to_value(order).unwrap_or_default(),
            OrderEvent::OrderProcessingStarted => serde_json::json!({}),
            OrderEvent::OrderCompleted { total } => serde_json::json!({ "total": total }),
            OrderEvent::OrderFailed { reason } => serde_json::json!({ "reason": reason }),
            // No reason given: an empty map, not a null (stream filters and analysts read it).
            OrderEvent::OrderCancelled { reason: None } => serde_json::json!({}),
            OrderEvent::OrderCancelled {
                reason: Some(reason),
            } => serde_json::json!({ "reason": reason }),
        }
    }
}

/// One event of one order, with everything needed to store, route and trace it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredEvent", try_from = "StoredEvent")]
pub struct EventEnvelope {
    pub event_id: EventId,
    pub order_id: OrderId,
    pub version: Version,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: CorrelationId,
    pub event: OrderEvent,
}

impl EventEnvelope {
    /// A new event, stamped now, truncated to the millisecond the wire form keeps.
    pub fn new(
        order_id: OrderId,
        version: Version,
        correlation_id: CorrelationId,
        event: OrderEvent,
    ) -> Self {
        Self::at(order_id, version, correlation_id, event, Utc::now())
    }

    pub fn at(
        order_id: OrderId,
        version: Version,
        correlation_id: CorrelationId,
        event: OrderEvent,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id: EventId::new(),
            order_id,
            version,
            occurred_at: truncate_to_millis(occurred_at),
            correlation_id,
            event,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            order_id: self.order_id,
            version: self.version,
            event_id: self.event_id,
            event_type: self.event.event_type().as_str().to_owned(),
            schema_version: self.event.schema_version(),
            occurred_at: format_timestamp(self.occurred_at),
            correlation_id: self.correlation_id.as_str().to_owned(),
            payload: self.event.payload(),
        }
    }

    /// The DynamoDB item (generic `serde_dynamo` form; convert with `serde_dynamo`'s SDK feature).
    pub fn to_item(&self) -> Result<serde_dynamo::Item, serde_dynamo::Error> {
        serde_dynamo::to_item(self.to_stored())
    }

    /// Reads an item of the `OrderEvents` table or a stream `NewImage`, upcasting old versions.
    pub fn from_item(item: serde_dynamo::Item) -> Result<Self, DecodeError> {
        let stored: StoredEvent =
            serde_dynamo::from_item(item).map_err(|e| DecodeError::Shape(e.to_string()))?;
        stored.decode()
    }
}

/// RFC 3339, UTC, millisecond precision: sorts as text and round-trips exactly.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The wire form of an event, field for field what is stored. Deserialize this from any store,
/// then [`decode`](StoredEvent::decode) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub order_id: OrderId,
    pub version: Version,
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: String,
    pub correlation_id: String,
    pub payload: serde_json::Value,
}

/// Why a stored record is not a readable event. Never retryable: the bytes will not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record does not have the event shape: {0}")]
    Shape(String),
    #[error("unknown event type {event_type:?} (schema version {schema_version})")]
    UnknownType {
        event_type: String,
        schema_version: u32,
    },
    #[error("{event_type} has no schema version {schema_version}")]
    UnknownSchemaVersion {
        event_type: EventType,
        schema_version: u32,
    },
    #[error("bad {event_type} payload: {reason}")]
    Payload {
        event_type: EventType,
        reason: String,
    },
    #[error("bad envelope field {field}: {reason}")]
    Envelope { field: &'static str, reason: String },
}

/// `OrderReceived` v1 predates multi-currency: every order was in USD.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrderReceivedV1 {
    customer_id: crate::ids::CustomerId,
    items: Vec<crate::validation::LineItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedV1 {
    total: MinorUnits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailedV1 {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelledV1 {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyV1 {}

impl StoredEvent {
    /// Turns the wire form into a typed envelope, upcasting older schema versions.
    pub fn decode(self) -> Result<EventEnvelope, DecodeError> {
        // Truncated to the millisecond the wire form keeps, as `EventEnvelope::at` does: a
        // finer timestamp written by another writer would otherwise decode to an envelope that
        // its own re-encoding no longer matches (found by fuzzing, see docs/fuzzing.md).
        let occurred_at = parse_timestamp(&self.occurred_at)
            .map(truncate_to_millis)
            .ok_or_else(|| DecodeError::Envelope {
                field: "occurredAt",
                reason: format!("{:?} is not an RFC 3339 timestamp", self.occurred_at),
            })?;
        let correlation_id =
            CorrelationId::parse(self.correlation_id).map_err(|e| DecodeError::Envelope {
                field: "correlationId",
                reason: e.to_string(),
            })?;
        // The one fallible step on the type: from here on every match on it is exhaustive.
        let event_type: EventType =
            self.event_type
                .parse()
                .map_err(|_| DecodeError::UnknownType {
                    event_type: self.event_type.clone(),
                    schema_version: self.schema_version,
                })?;
        let payload_error = |e: serde_json::Error| DecodeError::Payload {
            event_type,
            reason: e.to_string(),
        };
        let event = match (event_type, self.schema_version) {
            (EventType::OrderReceived, 2) => OrderEvent::OrderReceived(
                serde_json::from_value(self.payload).map_err(payload_error)?,
            ),
            (EventType::OrderReceived, 1) => {
                let v1: OrderReceivedV1 =
                    serde_json::from_value(self.payload).map_err(payload_error)?;
                OrderEvent::OrderReceived(ValidOrder {
                    customer_id: v1.customer_id,
                    items: v1.items,
                    currency: Currency::USD,
                })
            }
            (EventType::OrderProcessingStarted, 1) => {
                let _: EmptyV1 = serde_json::from_value(self.payload).map_err(payload_error)?;
                OrderEvent::OrderProcessingStarted
            }
            (EventType::OrderCompleted, 1) => {
                let p: CompletedV1 = serde_json::from_value(self.payload).map_err(payload_error)?;
                OrderEvent::OrderCompleted { total: p.total }
            }
            (EventType::OrderFailed, 1) => {
                let p: FailedV1 = serde_json::from_value(self.payload).map_err(payload_error)?;
                OrderEvent::OrderFailed { reason: p.reason }
            }
            (EventType::OrderCancelled, 1) => {
                let p: CancelledV1 = serde_json::from_value(self.payload).map_err(payload_error)?;
                OrderEvent::OrderCancelled { reason: p.reason }
            }
            // Listed type by type (no wildcard) so a new type does not compile without decoders.
            (
                EventType::OrderReceived
                | EventType::OrderProcessingStarted
                | EventType::OrderCompleted
                | EventType::OrderFailed
                | EventType::OrderCancelled,
                schema_version,
            ) => {
                return Err(DecodeError::UnknownSchemaVersion {
                    event_type,
                    schema_version,
                })
            }
        };
        Ok(EventEnvelope {
            event_id: self.event_id,
            order_id: self.order_id,
            version: self.version,
            occurred_at,
            correlation_id,
            event,
        })
    }
}

impl From<EventEnvelope> for StoredEvent {
    fn from(e: EventEnvelope) -> Self {
        e.to_stored()
    }
}

impl TryFrom<StoredEvent> for EventEnvelope {
    type Error = DecodeError;
    fn try_from(s: StoredEvent) -> Result<Self, DecodeError> {
        s.decode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderRequest;

    #[test]
    fn only_an_order_received_names_a_customer() {
        let order = OrderRequest::validate(&serde_json::json!({
            "customerId": "c-7",
            "items": [{"productId": "p", "quantity": 1, "unitPrice": 5}]
        }))
        .expect("a valid order");
        let received = OrderEvent::OrderReceived(order);
        assert_eq!(received.customer_id().map(|c| c.as_str()), Some("c-7"));
        for other in [
            OrderEvent::OrderProcessingStarted,
            OrderEvent::OrderCompleted { total: 5 },
            OrderEvent::OrderFailed {
                reason: "no".into(),
            },
            OrderEvent::OrderCancelled {
                reason: Some("changed my mind".into()),
            },
        ] {
            assert_eq!(other.customer_id(), None, "{other:?}");
        }
    }
}
