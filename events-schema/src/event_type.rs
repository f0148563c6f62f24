//! The closed set of event types, and each one's wire name and current schema version.
//!
//! Every `match` on an event type in this workspace is exhaustive, so a new type does not compile
//! until it has a decoder, a schema version and a fold rule; the golden-file test, driven by
//! [`EventType::ALL`], then fails until it has its golden files.

use std::fmt;
use std::str::FromStr;

/// Declares [`EventType`] and [`EventType::ALL`] from one list, so `ALL` cannot miss a variant.
macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)+) => {
        /// What kind of fact an event records. The wire name is the `eventType` attribute.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)+
        }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The name stored in `eventType`. Part of the wire contract: never change one.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $wire,)+
                }
            }
        }
    };
}

event_types! {
    /// The order was accepted by the API (always version 1).
    OrderReceived => "OrderReceived",
    /// A worker took the order.
    OrderProcessingStarted => "OrderProcessingStarted",
    /// The order was fulfilled and charged.
    OrderCompleted => "OrderCompleted",
    /// The order can never be fulfilled. Terminal.
    OrderFailed => "OrderFailed",
    /// The customer withdrew the order before it finished. Terminal.
    OrderCancelled => "OrderCancelled",
}

impl EventType {
    /// The schema version written for this type today. Every version from 1 up to this one is
    /// still read (upcast) by [`StoredEvent::decode`](crate::StoredEvent::decode).
    pub const fn schema_version(self) -> u32 {
        match self {
            EventType::OrderReceived => 2,
            EventType::OrderProcessingStarted => 1,
            EventType::OrderCompleted => 1,
            EventType::OrderFailed => 1,
            EventType::OrderCancelled => 1,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, UnknownEventType> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_parses_back_from_its_wire_name() {
        for &t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
    }

    #[test]
    fn wire_names_are_unique_and_parsing_is_case_sensitive() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert_eq!(
            "orderreceived".parse::<EventType>(),
            Err(UnknownEventType("orderreceived".into()))
        );
        assert!("".parse::<EventType>().is_err());
    }
}
