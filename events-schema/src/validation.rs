//! An incoming order, checked field by field. Every problem is collected, so a client fixes its
//! request in one round trip.
//!
//! Limits (documented in the README):
//! * `customerId`: required, 1..=64 characters of `[A-Za-z0-9-_.:@]`;
//! * `items`: required, 1..=100 entries, each `{productId, quantity, unitPrice}`;
//! * `productId`: 1..=64 characters of `[A-Za-z0-9-_.:@]`;
//! * `quantity`: integer 1..=10,000;
//! * `unitPrice`: integer minor units (cents) 0..=100,000,000,000;
//! * `currency`: optional ISO 4217 code (three upper-case letters), default `USD`;
//! * unknown fields are rejected (a typo such as `customerID` must not silently drop data).
//!
//! A cancellation's optional body ([`CancelRequest`]) is checked the same way.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{CustomerId, ProductId};
use crate::money::{Currency, MinorUnits};

pub const MAX_ITEMS: usize = 100;
pub const MAX_QUANTITY: u32 = 10_000;
pub const MAX_UNIT_PRICE: MinorUnits = 100_000_000_000;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineItem {
    pub product_id: ProductId,
    pub quantity: u32,
    pub unit_price: MinorUnits,
}

/// An order that passed validation: the payload of `OrderReceived`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidOrder {
    pub customer_id: CustomerId,
    pub items: Vec<LineItem>,
    pub currency: Currency,
}

impl ValidOrder {
    /// Sum of `quantity × unitPrice`. The limits keep it far below `i64::MAX`
    /// (100 × 10⁴ × 10¹¹ = 10¹⁷), so it cannot overflow.
    pub fn total(&self) -> MinorUnits {
        self.items
            .iter()
            .map(|i| i64::from(i.quantity) * i.unit_price)
            .sum()
    }

    pub fn item_count(&self) -> u32 {
        self.items.iter().map(|i| i.quantity).sum()
    }
}

/// One problem with one field. `field` is a path such as `items[2].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a request, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid order: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

/// Namespace for the order-request parser.
pub struct OrderRequest;

impl OrderRequest {
    /// Validates a parsed JSON body.
    pub fn validate(body: &Value) -> Result<ValidOrder, ValidationErrors> {
        let mut errors = Errors::default();
        let Some(obj) = body.as_object() else {
            errors.push::<()>("", "the body must be a JSON object");
            return Err(ValidationErrors(errors.0));
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "customerId" | "items" | "currency") {
                errors.push::<()>(key, "unknown field");
            }
        }
        let customer_id = match obj.get("customerId") {
            None | Some(Value::Null) => errors.push("customerId", "is required"),
            Some(Value::String(s)) => CustomerId::parse(s.as_str())
                .map_err(|e| errors.push::<()>("customerId", e.to_string()))
                .ok(),
            Some(_) => errors.push("customerId", "must be a string"),
        };
        let currency = match obj.get("currency") {
            None | Some(Value::Null) => Some(Currency::USD),
            Some(Value::String(s)) => Currency::parse(s).or_else(|| {
                errors.push(
                    "currency",
                    "must be an ISO 4217 code of three upper-case letters",
                )
            }),
            Some(_) => errors.push("currency", "must be a string"),
        };
        let items = match obj.get("items") {
            None | Some(Value::Null) => errors.push("items", "is required"),
            Some(Value::Array(list)) if list.is_empty() => {
                errors.push("items", "must contain at least one item")
            }
            Some(Value::Array(list)) if list.len() > MAX_ITEMS => errors.push(
                "items",
                format!(
                    "must contain at most {MAX_ITEMS} items (got {})",
                    list.len()
                ),
            ),
            Some(Value::Array(list)) => {
                let parsed: Vec<Option<LineItem>> = list
                    .iter()
                    .enumerate()
                    .map(|(i, item)| line_item(i, item, &mut errors))
                    .collect();
                parsed.into_iter().collect::<Option<Vec<_>>>()
            }
            Some(_) => errors.push("items", "must be an array"),
        };
        match (customer_id, items, currency) {
            (Some(customer_id), Some(items), Some(currency)) if errors.0.is_empty() => {
                Ok(ValidOrder {
                    customer_id,
                    items,
                    currency,
                })
            }
            _ => Err(ValidationErrors(errors.0)),
        }
    }
}

/// Longest `reason` a cancellation may give, in characters.
pub const MAX_CANCEL_REASON_CHARS: usize = 500;

/// Namespace for the cancellation-request parser. The body is optional; when there is one it is
/// `{"reason": "..."}`: `reason` optional, 1..=500 characters, no control characters; unknown
/// fields are rejected, as in an order.
pub struct CancelRequest;

impl CancelRequest {
    /// Validates a parsed JSON body; the reason it gives, if any. A `null` body gives none.
    pub fn validate(body: &Value) -> Result<Option<String>, ValidationErrors> {
        let mut errors = Errors::default();
        if body.is_null() {
            return Ok(None);
        }
        let Some(obj) = body.as_object() else {
            errors.push::<()>("", "the body must be a JSON object");
            return Err(ValidationErrors(errors.0));
        };
        for key in obj.keys() {
            if key != "reason" {
                errors.push::<()>(key, "unknown field");
            }
        }
        let reason = match obj.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => errors.push(
                "reason",
                "must not be empty (leave it out to give no reason)",
            ),
            Some(Value::String(s)) if s.chars().count() > MAX_CANCEL_REASON_CHARS => errors.push(
                "reason",
                format!("must be at most {MAX_CANCEL_REASON_CHARS} characters"),
            ),
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                errors.push("reason", "must not contain control characters")
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => errors.push("reason", "must be a string"),
        };
        if errors.0.is_empty() {
            Ok(reason)
        } else {
            Err(ValidationErrors(errors.0))
        }
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// Records a problem; returns `None` so a match arm can both record and yield "no value".
    fn push<T>(&mut self, field: impl Into<String>, message: impl Into<String>) -> Option<T> {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        None
    }
}

/// A JSON number that is a whole number, written `2` or `2.0` alike: JSON does not tell them
/// apart, nor does JSON Schema's `integer` (the API's OpenAPI document). Fractions stay errors.
fn whole_number(v: &Value) -> Option<i64> {
    // 2^53: every whole f64 below it is exact, and every limit of an order is far below it.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < EXACT)
            .map(|f| f as i64)
    })
}

fn line_item(index: usize, item: &Value, errors: &mut Errors) -> Option<LineItem> {
    let at = |name: &str| format!("items[{index}].{name}");
    let Some(obj) = item.as_object() else {
        return errors.push(format!("items[{index}]"), "must be an object");
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "productId" | "quantity" | "unitPrice") {
            errors.push::<()>(at(key), "unknown field");
        }
    }
    let product_id = match obj.get("productId") {
        None | Some(Value::Null) => errors.push(at("productId"), "is required"),
        Some(Value::String(s)) => ProductId::parse(s.as_str())
            .map_err(|e| errors.push::<()>(at("productId"), e.to_string()))
            .ok(),
        Some(_) => errors.push(at("productId"), "must be a string"),
    };
    let quantity = match obj.get("quantity") {
        None | Some(Value::Null) => errors.push(at("quantity"), "is required"),
        Some(v) => match whole_number(v) {
            Some(q) if (1..=i64::from(MAX_QUANTITY)).contains(&q) => u32::try_from(q).ok(),
            _ => errors.push(
                at("quantity"),
                format!("must be an integer from 1 to {MAX_QUANTITY}"),
            ),
        },
    };
    let unit_price = match obj.get("unitPrice") {
        None | Some(Value::Null) => errors.push(at("unitPrice"), "is required"),
        Some(v) => match whole_number(v) {
            Some(p) if (0..=MAX_UNIT_PRICE).contains(&p) => Some(p),
            _ => errors.push(
                at("unitPrice"),
                format!(
                    "must be an integer number of minor units (cents) from 0 to {MAX_UNIT_PRICE}"
                ),
            ),
        },
    };
    Some(LineItem {
        product_id: product_id?,
        quantity: quantity?,
        unit_price: unit_price?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cancellation_gives_its_reason_or_none() {
        assert_eq!(CancelRequest::validate(&json!({})), Ok(None));
        assert_eq!(CancelRequest::validate(&Value::Null), Ok(None));
        assert_eq!(CancelRequest::validate(&json!({"reason": null})), Ok(None));
        assert_eq!(
            CancelRequest::validate(&json!({"reason": "  too slow  "})),
            Ok(Some("  too slow  ".to_owned()))
        );
        let at_limit = "é".repeat(MAX_CANCEL_REASON_CHARS);
        assert_eq!(
            CancelRequest::validate(&json!({ "reason": at_limit })),
            Ok(Some(at_limit))
        );
    }

    #[test]
    fn each_problem_of_a_cancellation_is_named() {
        let over = "é".repeat(MAX_CANCEL_REASON_CHARS + 1);
        for (body, field, message) in [
            (
                json!({ "reason": over }),
                "reason",
                "must be at most 500 characters",
            ),
            (
                json!({"reason": ""}),
                "reason",
                "must not be empty (leave it out to give no reason)",
            ),
            (
                json!({"reason": "a\nb"}),
                "reason",
                "must not contain control characters",
            ),
            (json!({"reason": 1}), "reason", "must be a string"),
            (json!({"why": "x"}), "why", "unknown field"),
            (json!("x"), "", "the body must be a JSON object"),
        ] {
            let errors = CancelRequest::validate(&body).unwrap_err().0;
            assert_eq!(
                errors,
                [FieldError {
                    field: field.to_owned(),
                    message: message.to_owned()
                }],
                "{body}"
            );
        }
    }

    fn fields(body: Value) -> Vec<String> {
        OrderRequest::validate(&body)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_good_order_is_accepted_with_usd_by_default() {
        let order = OrderRequest::validate(&json!({
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2, "unitPrice": 1250}]
        }))
        .unwrap();
        assert_eq!(order.currency, Currency::USD);
        assert_eq!(order.total(), 2500);
        assert_eq!(order.item_count(), 2);
    }

    #[test]
    fn a_whole_number_as_a_float_is_read_only_below_two_to_the_53_where_every_one_is_exact() {
        let below = 9_007_199_254_740_991.0_f64;
        assert_eq!(whole_number(&json!(below)), Some(9_007_199_254_740_991));
        assert_eq!(whole_number(&json!(9_007_199_254_740_992.0_f64)), None);
        assert_eq!(whole_number(&json!(-9_007_199_254_740_992.0_f64)), None);
        assert_eq!(whole_number(&json!(1e300)), None);
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_that_number_and_a_fraction_is_refused() {
        let order = OrderRequest::validate(&json!({
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2.0, "unitPrice": 1e3}]
        }))
        .unwrap();
        assert_eq!(
            (order.items[0].quantity, order.items[0].unit_price),
            (2, 1000)
        );
        assert_eq!(
            fields(json!({
                "customerId": "c-1",
                "items": [{"productId": "p-1", "quantity": 2.5, "unitPrice": 1e20}]
            })),
            vec!["items[0].quantity", "items[0].unitPrice"]
        );
    }

    #[test]
    fn missing_customer_and_items_are_both_reported() {
        assert_eq!(fields(json!({})), vec!["customerId", "items"]);
    }

    #[test]
    fn every_bad_item_field_is_named() {
        let got = fields(json!({
            "customerId": 7,
            "items": [
                {"productId": "p", "quantity": 0, "unitPrice": 1},
                {"productId": "", "quantity": -3, "unitPrice": 1.5},
                {"quantity": "2", "unitPrice": 1, "colour": "red"},
                "nope"
            ],
            "currency": "usd",
            "note": "x"
        }));
        assert_eq!(
            got,
            vec![
                "note",
                "customerId",
                "currency",
                "items[0].quantity",
                "items[1].productId",
                "items[1].quantity",
                "items[1].unitPrice",
                "items[2].colour",
                "items[2].productId",
                "items[2].quantity",
                "items[3]",
            ]
        );
    }

    #[test]
    fn item_count_limits_are_enforced() {
        assert_eq!(
            fields(json!({"customerId": "c", "items": []})),
            vec!["items"]
        );
        let many: Vec<Value> = (0..=MAX_ITEMS)
            .map(|_| json!({"productId": "p", "quantity": 1, "unitPrice": 1}))
            .collect();
        assert_eq!(
            fields(json!({"customerId": "c", "items": many})),
            vec!["items"]
        );
    }

    #[test]
    fn quantity_bounds_are_inclusive() {
        let with_qty = |q: i64| {
            OrderRequest::validate(&json!({
                "customerId": "c",
                "items": [{"productId": "p", "quantity": q, "unitPrice": 1}]
            }))
        };
        assert!(with_qty(1).is_ok());
        assert!(with_qty(i64::from(MAX_QUANTITY)).is_ok());
        assert!(with_qty(0).is_err());
        assert!(with_qty(i64::from(MAX_QUANTITY) + 1).is_err());
    }

    #[test]
    fn a_non_object_body_is_one_error() {
        assert_eq!(fields(json!([1, 2])), vec![""]);
    }

    #[test]
    fn exactly_the_maximum_number_of_items_is_accepted() {
        let items: Vec<Value> = (0..MAX_ITEMS)
            .map(|_| json!({"productId": "p", "quantity": 1, "unitPrice": 1}))
            .collect();
        let order = OrderRequest::validate(&json!({"customerId": "c", "items": items})).unwrap();
        assert_eq!(order.items.len(), MAX_ITEMS);
    }

    #[test]
    fn unit_price_bounds_are_inclusive() {
        let with_price = |p: i64| {
            OrderRequest::validate(&json!({
                "customerId": "c",
                "items": [{"productId": "p", "quantity": 1, "unitPrice": p}]
            }))
        };
        assert!(with_price(0).is_ok());
        assert!(with_price(MAX_UNIT_PRICE).is_ok());
        assert!(with_price(-1).is_err());
        assert!(with_price(MAX_UNIT_PRICE + 1).is_err());
    }

    #[test]
    fn an_unknown_field_alone_rejects_an_otherwise_good_order() {
        assert_eq!(
            fields(json!({
                "customerId": "c",
                "items": [{"productId": "p", "quantity": 1, "unitPrice": 1}],
                "customerID": "typo"
            })),
            vec!["customerID"]
        );
    }
}
