//! The contract, pinned: given/when/then tests of the state machine, golden wire files, and
//! properties of the codecs and the fold.

use chrono::{DateTime, Utc};
use events_schema::envelope::format_timestamp;
use events_schema::{
    decide_next, CorrelationId, CustomerId, EventEnvelope, EventId, FoldError, LineItem,
    OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView, ProcessingPolicy, ProductId,
    StoredEvent, ValidOrder, Version,
};
use proptest::prelude::*;
use uuid::Uuid;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_764_000_000_000 + ms).expect("valid time")
}

fn order() -> ValidOrder {
    ValidOrder {
        customer_id: CustomerId::parse("c-1").expect("valid"),
        items: vec![LineItem {
            product_id: ProductId::parse("p-1").expect("valid"),
            quantity: 3,
            unit_price: 1999,
        }],
        currency: events_schema::Currency::USD,
    }
}

fn order_id() -> OrderId {
    OrderId::parse("01938a3c-0000-7000-8000-000000000001").expect("valid")
}

fn event(version: u32, event: OrderEvent) -> EventEnvelope {
    EventEnvelope::at(
        order_id(),
        Version::new(version).expect("≥ 1"),
        CorrelationId::parse("corr-1").expect("valid"),
        event,
        at(i64::from(version)),
    )
}

fn received() -> EventEnvelope {
    event(1, OrderEvent::OrderReceived(order()))
}

/// Given a history, when one more event is applied, then…
fn given(history: &[EventEnvelope]) -> OrderView {
    OrderView::fold(history)
        .expect("valid history")
        .expect("not empty")
}

mod state_machine {
    use super::*;

    #[test]
    fn a_received_order_is_received_with_its_totals() {
        let view = given(&[received()]);
        assert_eq!(view.status, OrderStatus::Received);
        assert_eq!(view.total, 3 * 1999);
        assert_eq!(view.item_count, 3);
        assert_eq!(view.version, Version::FIRST);
    }

    #[test]
    fn processing_started_moves_received_to_processing() {
        let mut view = given(&[received()]);
        view.apply(&event(2, OrderEvent::OrderProcessingStarted))
            .expect("legal");
        assert_eq!(view.status, OrderStatus::Processing);
        assert_eq!(view.updated_at, at(2));
    }

    #[test]
    fn completion_moves_processing_to_completed_and_stamps_it() {
        let mut view = given(&[received(), event(2, OrderEvent::OrderProcessingStarted)]);
        view.apply(&event(3, OrderEvent::OrderCompleted { total: 42 }))
            .expect("legal");
        assert_eq!(view.status, OrderStatus::Completed);
        assert_eq!(view.total, 42);
        assert_eq!(view.completed_at, Some(at(3)));
    }

    #[test]
    fn failure_moves_processing_to_failed_with_the_reason() {
        let mut view = given(&[received(), event(2, OrderEvent::OrderProcessingStarted)]);
        view.apply(&event(
            3,
            OrderEvent::OrderFailed {
                reason: "no".into(),
            },
        ))
        .expect("legal");
        assert_eq!(view.status, OrderStatus::Failed);
        assert_eq!(view.failure_reason.as_deref(), Some("no"));
    }

    #[test]
    fn completing_an_order_that_is_not_processing_is_illegal() {
        let mut view = given(&[received()]);
        let err = view
            .apply(&event(2, OrderEvent::OrderCompleted { total: 1 }))
            .unwrap_err();
        assert_eq!(
            err,
            FoldError::IllegalTransition {
                from: OrderStatus::Received,
                event_type: "OrderCompleted"
            }
        );
        assert_eq!(view.status, OrderStatus::Received, "state unchanged");
    }

    #[test]
    fn nothing_may_follow_a_terminal_status() {
        for terminal in [
            OrderEvent::OrderCompleted { total: 1 },
            OrderEvent::OrderFailed { reason: "x".into() },
        ] {
            let mut view = given(&[
                received(),
                event(2, OrderEvent::OrderProcessingStarted),
                event(3, terminal),
            ]);
            for next in [
                OrderEvent::OrderProcessingStarted,
                OrderEvent::OrderCompleted { total: 1 },
                OrderEvent::OrderFailed { reason: "y".into() },
                OrderEvent::OrderReceived(order()),
            ] {
                assert!(matches!(
                    view.apply(&event(4, next)),
                    Err(FoldError::IllegalTransition { .. })
                ));
            }
        }
    }

    #[test]
    fn receiving_twice_is_illegal() {
        let mut view = given(&[received()]);
        assert!(matches!(
            view.apply(&event(2, OrderEvent::OrderReceived(order()))),
            Err(FoldError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_gap_in_versions_is_rejected() {
        let mut view = given(&[received()]);
        let err = view
            .apply(&event(3, OrderEvent::OrderProcessingStarted))
            .unwrap_err();
        assert!(matches!(err, FoldError::VersionGap { .. }));
    }

    #[test]
    fn a_history_must_start_with_order_received() {
        let err = OrderView::fold(&[event(1, OrderEvent::OrderProcessingStarted)]).unwrap_err();
        assert!(matches!(err, FoldError::NotStarted { .. }));
        assert_eq!(OrderView::fold(&[]), Ok(None));
    }

    #[test]
    fn another_orders_event_is_rejected() {
        let mut view = given(&[received()]);
        let mut other = event(2, OrderEvent::OrderProcessingStarted);
        other.order_id = OrderId::new_random();
        assert!(matches!(
            view.apply(&other),
            Err(FoldError::WrongOrder { .. })
        ));
    }

    #[test]
    fn the_processor_decides_start_then_complete_then_nothing() {
        let policy = ProcessingPolicy::default();
        let mut view = given(&[received()]);
        assert_eq!(
            decide_next(&view, &policy),
            Some(OrderEvent::OrderProcessingStarted)
        );
        view.apply(&event(2, OrderEvent::OrderProcessingStarted))
            .expect("legal");
        assert_eq!(
            decide_next(&view, &policy),
            Some(OrderEvent::OrderCompleted { total: 3 * 1999 })
        );
        view.apply(&event(3, OrderEvent::OrderCompleted { total: 5997 }))
            .expect("legal");
        assert_eq!(decide_next(&view, &policy), None);
    }

    #[test]
    fn an_order_over_the_credit_limit_fails_instead_of_completing() {
        let policy = ProcessingPolicy { credit_limit: 100 };
        let view = given(&[received(), event(2, OrderEvent::OrderProcessingStarted)]);
        assert!(matches!(
            decide_next(&view, &policy),
            Some(OrderEvent::OrderFailed { .. })
        ));
    }

    #[test]
    fn the_status_record_converts_back_to_the_same_view() {
        let view = given(&[
            received(),
            event(2, OrderEvent::OrderProcessingStarted),
            event(3, OrderEvent::OrderCompleted { total: 5997 }),
        ]);
        let record = OrderStatusRecord::from(&view);
        assert_eq!(OrderView::try_from(&record), Ok(view));
    }
}

mod golden {
    use super::*;

    fn fixed(version: u32, e: OrderEvent) -> EventEnvelope {
        let mut envelope = event(version, e);
        envelope.event_id = EventId::from_uuid(
            Uuid::parse_str("01938a3c-0000-7000-8000-00000000000e").expect("uuid"),
        );
        envelope
    }

    fn check(name: &str, envelope: &EventEnvelope) {
        let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let written = serde_json::to_string_pretty(&envelope.to_stored()).expect("serialize");
        // A deliberate format change is re-pinned with UPDATE_GOLDEN=1 and reviewed in the diff.
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, format!("{written}\n")).expect("write golden");
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (write it from this output:\n{written})"));
        assert_eq!(
            written.trim(),
            golden.trim(),
            "wire format of {name} changed"
        );
        let stored: StoredEvent = serde_json::from_str(&golden).expect("golden parses");
        assert_eq!(&stored.decode().expect("decodes"), envelope);
    }

    #[test]
    fn order_received_v2_wire_format_is_pinned() {
        check(
            "order_received_v2",
            &fixed(1, OrderEvent::OrderReceived(order())),
        );
    }

    #[test]
    fn order_processing_started_v1_wire_format_is_pinned() {
        check(
            "order_processing_started_v1",
            &fixed(2, OrderEvent::OrderProcessingStarted),
        );
    }

    #[test]
    fn order_completed_v1_wire_format_is_pinned() {
        check(
            "order_completed_v1",
            &fixed(3, OrderEvent::OrderCompleted { total: 5997 }),
        );
    }

    #[test]
    fn order_failed_v1_wire_format_is_pinned() {
        check(
            "order_failed_v1",
            &fixed(
                3,
                OrderEvent::OrderFailed {
                    reason: "credit check refused".into(),
                },
            ),
        );
    }

    #[test]
    fn order_received_v1_without_currency_is_upcast_to_usd() {
        let path = format!(
            "{}/tests/golden/order_received_v1.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let golden = std::fs::read_to_string(path).expect("golden file");
        let stored: StoredEvent = serde_json::from_str(&golden).expect("parses");
        assert_eq!(stored.schema_version, 1);
        let decoded = stored.decode().expect("upcasts");
        assert_eq!(decoded.event, OrderEvent::OrderReceived(order()));
    }

    #[test]
    fn an_unknown_event_type_is_a_typed_decode_error() {
        let mut stored = fixed(2, OrderEvent::OrderProcessingStarted).to_stored();
        stored.event_type = "OrderTeleported".into();
        assert!(matches!(
            stored.decode(),
            Err(events_schema::DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn the_dynamodb_item_codec_round_trips_events_and_status_records() {
        for envelope in [
            fixed(1, OrderEvent::OrderReceived(order())),
            fixed(3, OrderEvent::OrderCompleted { total: 5997 }),
        ] {
            let item = envelope.to_item().expect("to item");
            assert_eq!(EventEnvelope::from_item(item).expect("from item"), envelope);
        }
        let view = given(&[received()]);
        let record = OrderStatusRecord::from(&view);
        let item = record.to_item().expect("to item");
        assert_eq!(
            OrderStatusRecord::from_item(item).expect("from item"),
            record
        );
    }
}

fn arb_text_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:@-]{1,64}"
}

fn arb_order() -> impl Strategy<Value = ValidOrder> {
    (
        arb_text_id(),
        prop::collection::vec(
            (arb_text_id(), 1u32..=10_000, 0i64..=100_000_000_000),
            1..20,
        ),
        "[A-Z]{3}",
    )
        .prop_map(|(customer, items, currency)| ValidOrder {
            customer_id: CustomerId::parse(customer).expect("strategy makes valid ids"),
            items: items
                .into_iter()
                .map(|(p, quantity, unit_price)| LineItem {
                    product_id: ProductId::parse(p).expect("valid"),
                    quantity,
                    unit_price,
                })
                .collect(),
            currency: events_schema::Currency::parse(&currency).expect("valid"),
        })
}

fn arb_event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        arb_order().prop_map(OrderEvent::OrderReceived),
        Just(OrderEvent::OrderProcessingStarted),
        (0i64..i64::MAX / 2).prop_map(|total| OrderEvent::OrderCompleted { total }),
        ".{0,200}".prop_map(|reason| OrderEvent::OrderFailed { reason }),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_gives_back_the_same_event(e in arb_event(), v in 1u32..1000, ms in 0i64..10_000_000_000) {
        let envelope = EventEnvelope::at(OrderId::new_random(), Version::new(v).expect("≥1"), CorrelationId::generate(), e, at(ms));
        let json = serde_json::to_string(&envelope).expect("serialize");
        let back: EventEnvelope = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(&back, &envelope);
        let item = envelope.to_item().expect("item");
        prop_assert_eq!(EventEnvelope::from_item(item).expect("from item"), envelope);
    }

    #[test]
    fn folding_the_same_history_twice_gives_the_same_view(o in arb_order(), steps in 0usize..=2, fail in any::<bool>(), reason in ".{0,50}") {
        let mut history = vec![event(1, OrderEvent::OrderReceived(o))];
        if steps >= 1 { history.push(event(2, OrderEvent::OrderProcessingStarted)); }
        if steps >= 2 {
            history.push(event(3, if fail { OrderEvent::OrderFailed { reason } } else { OrderEvent::OrderCompleted { total: 7 } }));
        }
        let a = OrderView::fold(&history);
        let b = OrderView::fold(&history);
        prop_assert!(a.is_ok());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn the_timestamp_format_round_trips_at_millisecond_precision(ms in 0i64..10_000_000_000) {
        let t = at(ms);
        prop_assert_eq!(events_schema::envelope::parse_timestamp(&format_timestamp(t)), Some(t));
    }
}
