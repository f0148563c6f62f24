//! Identifiers. Each newtype validates on construction, so holding one is proof it is well formed.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be a UUID")]
    NotAUuid,
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may only contain letters, digits and - _ . : @")]
    BadCharacter,
}

/// The namespace for order ids derived from `(customerId, Idempotency-Key)`.
const IDEMPOTENT_ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7273_4000_8000_6964_656d_706f);

/// An order's id: a UUID. Random (v7) for plain POSTs, derived (v5) when the client sends an
/// `Idempotency-Key`, so that a retry lands on the same order without a lookup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new_random() -> Self {
        Self(Uuid::now_v7())
    }

    /// The same customer and key always give the same id; different customers never share one.
    pub fn derived(customer: &CustomerId, idempotency_key: &str) -> Self {
        let name = format!("{}\u{0}{}", customer.as_str(), idempotency_key);
        Self(Uuid::new_v5(&IDEMPOTENT_ORDER_NAMESPACE, name.as_bytes()))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::try_parse(s).map(Self).map_err(|_| IdError::NotAUuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Reads a work-queue message: its body is the order id as text (`Display`), which is what
    /// the queues send. Surrounding whitespace is tolerated; anything else is not an order id.
    /// Here rather than in the processor so it can be fuzzed without the AWS SDKs.
    pub fn from_work_message(body: &str) -> Result<Self, IdError> {
        Self::parse(body.trim())
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A unique event id (UUIDv7: time-ordered, so exports sort naturally). Consumers dedup on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

macro_rules! bounded_text_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate_text_id(&s, Self::MAX_LEN)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn validate_text_id(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { max });
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

bounded_text_id!(
    /// The customer who placed the order (1..=64 characters of `[A-Za-z0-9-_.:@]`).
    CustomerId,
    64
);
bounded_text_id!(
    /// A catalogue product (1..=64 characters of `[A-Za-z0-9-_.:@]`).
    ProductId,
    64
);
bounded_text_id!(
    /// Ties together everything caused by one request (1..=128 characters of `[A-Za-z0-9-_.:@]`).
    CorrelationId,
    128
);

impl CorrelationId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7().hyphenated().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_order_ids_are_stable_per_customer_and_key() {
        let alice = CustomerId::parse("alice").unwrap();
        let bob = CustomerId::parse("bob").unwrap();
        assert_eq!(
            OrderId::derived(&alice, "k1"),
            OrderId::derived(&alice, "k1")
        );
        assert_ne!(OrderId::derived(&alice, "k1"), OrderId::derived(&bob, "k1"));
        assert_ne!(
            OrderId::derived(&alice, "k1"),
            OrderId::derived(&alice, "k2")
        );
    }

    #[test]
    fn text_ids_reject_empty_long_and_odd_characters() {
        assert_eq!(CustomerId::parse(""), Err(IdError::Empty));
        assert_eq!(
            CustomerId::parse("x".repeat(65)),
            Err(IdError::TooLong { max: 64 })
        );
        assert_eq!(CustomerId::parse("a b"), Err(IdError::BadCharacter));
        assert!(CustomerId::parse("cust-42@shop:eu.1_a").is_ok());
    }

    #[test]
    fn order_ids_parse_only_uuids() {
        assert_eq!(OrderId::parse("nope"), Err(IdError::NotAUuid));
        let id = OrderId::new_random();
        assert_eq!(OrderId::parse(&id.to_string()), Ok(id));
    }
}
