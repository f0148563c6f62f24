//! The contract, pinned: given/when/then tests of the state machine, golden wire files, and
//! properties of the codecs and the fold.

use chrono::{DateTime, Utc};
use events_schema::envelope::format_timestamp;
use events_schema::order::{decide_cancel, NotCancellable};
use events_schema::{
    decide_next, CorrelationId, CustomerId, DecodeError, EventEnvelope, EventId, EventType,
    FoldError, LineItem, OrderEvent, OrderId, OrderStatus, OrderStatusRecord, OrderView,
    ProcessingPolicy, ProductId, StoredEvent, ValidOrder, Version,
};
use proptest::prelude::*;
use support::arb_order;
use uuid::Uuid;

mod support;

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
                event_type: EventType::OrderCompleted
            }
        );
        assert_eq!(view.status, OrderStatus::Received, "state unchanged");
    }

    #[test]
    fn nothing_may_follow_a_terminal_status() {
        for terminal in [
            OrderEvent::OrderCompleted { total: 1 },
            OrderEvent::OrderFailed { reason: "x".into() },
            OrderEvent::OrderCancelled { reason: None },
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
                OrderEvent::OrderCancelled { reason: None },
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
    fn a_received_or_processing_order_is_cancelled_with_the_reason_given() {
        for history in [
            vec![received()],
            vec![received(), event(2, OrderEvent::OrderProcessingStarted)],
        ] {
            let mut view = given(&history);
            let cancel = decide_cancel(&view, Some("too slow".into()))
                .expect("cancellable")
                .expect("an event to append");
            assert_eq!(
                cancel,
                OrderEvent::OrderCancelled {
                    reason: Some("too slow".into())
                }
            );
            let next = view.version.next().get();
            view.apply(&event(next, cancel)).expect("legal");
            assert_eq!(view.status, OrderStatus::Cancelled);
            assert_eq!(view.updated_at, at(i64::from(next)));
            assert_eq!(view.completed_at, None);
            assert_eq!(view.failure_reason, None);
        }
    }

    #[test]
    fn cancelling_a_cancelled_order_appends_nothing_and_a_finished_one_is_refused() {
        let cancelled = given(&[
            received(),
            event(2, OrderEvent::OrderCancelled { reason: None }),
        ]);
        assert_eq!(decide_cancel(&cancelled, None), Ok(None));
        assert_eq!(decide_cancel(&cancelled, Some("again".into())), Ok(None));
        for (terminal, status) in [
            (
                OrderEvent::OrderCompleted { total: 1 },
                OrderStatus::Completed,
            ),
            (
                OrderEvent::OrderFailed { reason: "x".into() },
                OrderStatus::Failed,
            ),
        ] {
            let view = given(&[
                received(),
                event(2, OrderEvent::OrderProcessingStarted),
                event(3, terminal),
            ]);
            assert_eq!(decide_cancel(&view, None), Err(NotCancellable { status }));
            assert_eq!(
                NotCancellable { status }.to_string(),
                format!(
                    "order is {} and can no longer be cancelled",
                    status.as_str()
                )
            );
        }
    }

    #[test]
    fn the_processor_does_nothing_to_a_cancelled_order() {
        let view = given(&[
            received(),
            event(2, OrderEvent::OrderProcessingStarted),
            event(3, OrderEvent::OrderCancelled { reason: None }),
        ]);
        assert_eq!(view.status, OrderStatus::Cancelled);
        assert_eq!(decide_next(&view, &ProcessingPolicy::default()), None);
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

    #[test]
    fn an_order_received_at_a_later_version_does_not_start_a_history() {
        let late = event(2, OrderEvent::OrderReceived(order()));
        assert_eq!(
            OrderView::start(&late),
            Err(FoldError::NotStarted {
                event_type: EventType::OrderReceived,
                version: Version::new(2).expect("≥ 1"),
            })
        );
    }

    #[test]
    fn an_order_exactly_at_the_credit_limit_completes_and_one_unit_over_fails() {
        let view = given(&[received(), event(2, OrderEvent::OrderProcessingStarted)]);
        let at_limit = ProcessingPolicy {
            credit_limit: view.total,
        };
        assert_eq!(
            decide_next(&view, &at_limit),
            Some(OrderEvent::OrderCompleted { total: view.total })
        );
        let below = ProcessingPolicy {
            credit_limit: view.total - 1,
        };
        assert!(matches!(
            decide_next(&view, &below),
            Some(OrderEvent::OrderFailed { reason }) if reason.contains("credit check refused")
        ));
    }

    #[test]
    fn only_completed_failed_and_cancelled_are_terminal_and_the_processor_stops_exactly_there() {
        let policy = ProcessingPolicy::default();
        let mut view = given(&[received()]);
        for status in [
            OrderStatus::Received,
            OrderStatus::Processing,
            OrderStatus::Completed,
            OrderStatus::Failed,
            OrderStatus::Cancelled,
        ] {
            view.status = status;
            let terminal = matches!(
                status,
                OrderStatus::Completed | OrderStatus::Failed | OrderStatus::Cancelled
            );
            assert_eq!(status.is_terminal(), terminal, "{status:?}");
            assert_eq!(
                decide_next(&view, &policy).is_none(),
                terminal,
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_status_name_is_its_wire_form() {
        for (status, name) in [
            (OrderStatus::Received, "RECEIVED"),
            (OrderStatus::Processing, "PROCESSING"),
            (OrderStatus::Completed, "COMPLETED"),
            (OrderStatus::Failed, "FAILED"),
            (OrderStatus::Cancelled, "CANCELLED"),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(serde_json::to_value(status).expect("serialize"), name);
        }
    }
}

/// The value types print and expose exactly what they hold.
mod values {
    use super::*;

    #[test]
    fn versions_start_at_one_and_show_their_number() {
        assert_eq!(Version::new(0), None);
        let v = Version::new(41).expect("≥ 1");
        assert_eq!(v.get(), 41);
        assert_eq!(v.next().get(), 42);
        assert_eq!(Version::FIRST.get(), 1);
        assert_eq!(v.to_string(), "41");
    }

    #[test]
    fn ids_show_as_their_hyphenated_uuid() {
        let text = "01938a3c-0000-7000-8000-00000000000e";
        let uuid = Uuid::parse_str(text).expect("uuid");
        let order = OrderId::parse(text).expect("valid");
        assert_eq!(order.as_uuid(), uuid);
        assert_eq!(order.to_string(), text);
        assert_eq!(EventId::from_uuid(uuid).to_string(), text);
    }

    #[test]
    fn a_currency_shows_as_its_code() {
        let eur = events_schema::Currency::parse("EUR").expect("valid");
        assert_eq!(eur.to_string(), "EUR");
        assert_eq!(events_schema::Currency::USD.to_string(), "USD");
    }
}

/// One test drives every event type, enumerated from [`EventType::ALL`], through its golden files
/// and the round-trip property; a new type fails it until it has both.
mod every_event_type {
    use super::*;
    use proptest::test_runner::{Config, TestRunner};

    /// The example pinned in the golden files, and the version it takes in its order's history.
    fn example(t: EventType) -> (u32, OrderEvent) {
        match t {
            EventType::OrderReceived => (1, OrderEvent::OrderReceived(order())),
            EventType::OrderProcessingStarted => (2, OrderEvent::OrderProcessingStarted),
            EventType::OrderCompleted => (3, OrderEvent::OrderCompleted { total: 5997 }),
            EventType::OrderFailed => (
                3,
                OrderEvent::OrderFailed {
                    reason: "credit check refused".into(),
                },
            ),
            EventType::OrderCancelled => (
                2,
                OrderEvent::OrderCancelled {
                    reason: Some("ordered by mistake".into()),
                },
            ),
        }
    }

    /// `OrderProcessingStarted` → `order_processing_started`: the golden files' naming convention.
    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    fn golden_dir() -> String {
        format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"))
    }

    fn golden_name(t: EventType, schema_version: u32) -> String {
        format!("{}_v{schema_version}.json", snake_case(t.as_str()))
    }

    fn fixed(t: EventType) -> EventEnvelope {
        let (version, e) = example(t);
        let mut envelope = event(version, e);
        envelope.event_id = EventId::from_uuid(
            Uuid::parse_str("01938a3c-0000-7000-8000-00000000000e").expect("uuid"),
        );
        envelope
    }

    /// The current version's file must be byte-for-byte what is written today; every older one must
    /// still decode (upcast) to the same event.
    fn check_golden(t: EventType, schema_version: u32, envelope: &EventEnvelope) {
        let current = schema_version == t.schema_version();
        let path = format!("{}/{}", golden_dir(), golden_name(t, schema_version));
        let written = serde_json::to_string_pretty(&envelope.to_stored()).expect("serialize");
        // A deliberate format change is re-pinned with UPDATE_GOLDEN=1 and reviewed in the diff.
        if current && std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, format!("{written}\n")).expect("write golden");
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            if current {
                panic!("missing golden file for {t} v{schema_version}: {path}: {e}\n(write it from this output, or run with UPDATE_GOLDEN=1:\n{written})")
            } else {
                panic!("missing golden file for {t} v{schema_version}: {path}: {e}\n(every schema version that is still read needs a stored example)")
            }
        });
        if current {
            assert_eq!(
                written.trim(),
                golden.trim(),
                "wire format of {t} v{schema_version} changed"
            );
        }
        let stored: StoredEvent = serde_json::from_str(&golden)
            .unwrap_or_else(|e| panic!("{path} is not a stored event: {e}"));
        assert_eq!(stored.schema_version, schema_version, "{path}");
        assert_eq!(
            &stored
                .decode()
                .unwrap_or_else(|e| panic!("{path} does not decode: {e}")),
            envelope,
            "{path} decodes to another event"
        );
    }

    fn arb_event_of(t: EventType) -> BoxedStrategy<OrderEvent> {
        match t {
            EventType::OrderReceived => arb_order().prop_map(OrderEvent::OrderReceived).boxed(),
            EventType::OrderProcessingStarted => Just(OrderEvent::OrderProcessingStarted).boxed(),
            EventType::OrderCompleted => (0i64..i64::MAX / 2)
                .prop_map(|total| OrderEvent::OrderCompleted { total })
                .boxed(),
            EventType::OrderFailed => ".{0,200}"
                .prop_map(|reason| OrderEvent::OrderFailed { reason })
                .boxed(),
            EventType::OrderCancelled => proptest::option::of(".{0,200}")
                .prop_map(|reason| OrderEvent::OrderCancelled { reason })
                .boxed(),
        }
    }

    pub(super) fn arb_event() -> impl Strategy<Value = OrderEvent> {
        prop::sample::select(EventType::ALL).prop_flat_map(arb_event_of)
    }

    pub(super) fn round_trips(e: OrderEvent, v: u32, ms: i64) -> Result<(), TestCaseError> {
        let envelope = EventEnvelope::at(
            OrderId::new_random(),
            Version::new(v).expect("≥1"),
            CorrelationId::generate(),
            e,
            at(ms),
        );
        let json = serde_json::to_string(&envelope).expect("serialize");
        let back: EventEnvelope = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(&back, &envelope);
        let item = envelope.to_item().expect("item");
        prop_assert_eq!(EventEnvelope::from_item(item).expect("from item"), envelope);
        Ok(())
    }

    #[test]
    fn every_event_type_matches_its_golden_files_and_round_trips() {
        for &t in EventType::ALL {
            let envelope = fixed(t);
            assert_eq!(
                envelope.event_type(),
                t,
                "the example of {t} is of another type"
            );
            assert_eq!(envelope.to_stored().event_type, t.as_str());
            assert_eq!(envelope.to_stored().schema_version, t.schema_version());
            for schema_version in 1..=t.schema_version() {
                check_golden(t, schema_version, &envelope);
            }
            TestRunner::new(Config::with_cases(64))
                .run(
                    &(arb_event_of(t), 1u32..1000, 0i64..10_000_000_000),
                    |(e, v, ms)| round_trips(e, v, ms),
                )
                .unwrap_or_else(|e| panic!("{t} does not round-trip: {e}"));
        }
    }

    #[test]
    fn every_golden_file_is_a_schema_version_that_is_still_read() {
        let expected: Vec<String> = EventType::ALL
            .iter()
            .flat_map(|&t| (1..=t.schema_version()).map(move |v| golden_name(t, v)))
            .collect();
        for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
            let name = entry.expect("dir entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                expected.iter().any(|e| *e == name),
                "{name} belongs to no event type and schema version in EventType::ALL"
            );
        }
    }

    #[test]
    fn an_unknown_schema_version_of_a_known_type_is_a_typed_decode_error() {
        for &t in EventType::ALL {
            for schema_version in [0, t.schema_version() + 1] {
                let mut stored = fixed(t).to_stored();
                stored.schema_version = schema_version;
                assert_eq!(
                    stored.decode(),
                    Err(DecodeError::UnknownSchemaVersion {
                        event_type: t,
                        schema_version
                    })
                );
            }
        }
    }

    #[test]
    fn order_received_v1_without_currency_is_upcast_to_usd() {
        let path = format!("{}/order_received_v1.json", golden_dir());
        let golden = std::fs::read_to_string(path).expect("golden file");
        let stored: StoredEvent = serde_json::from_str(&golden).expect("parses");
        assert_eq!(stored.schema_version, 1);
        assert!(!golden.contains("currency"));
        let decoded = stored.decode().expect("upcasts");
        assert_eq!(decoded.event, OrderEvent::OrderReceived(order()));
    }

    #[test]
    fn an_unknown_event_type_is_a_typed_decode_error() {
        let mut stored = fixed(EventType::OrderProcessingStarted).to_stored();
        stored.event_type = "OrderTeleported".into();
        assert_eq!(
            stored.decode(),
            Err(DecodeError::UnknownType {
                event_type: "OrderTeleported".into(),
                schema_version: 1
            })
        );
    }

    #[test]
    fn a_cancellation_without_a_reason_is_stored_as_an_empty_payload() {
        let e = event(2, OrderEvent::OrderCancelled { reason: None });
        let stored = e.to_stored();
        assert_eq!(stored.payload, serde_json::json!({}));
        assert_eq!(stored.decode().expect("decodes"), e);
        let mut with_null = e.to_stored();
        with_null.payload = serde_json::json!({ "reason": null });
        assert_eq!(with_null.decode().expect("null is no reason"), e);
        let mut unknown = e.to_stored();
        unknown.payload = serde_json::json!({ "why": "x" });
        assert!(matches!(
            unknown.decode(),
            Err(DecodeError::Payload {
                event_type: EventType::OrderCancelled,
                ..
            })
        ));
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_a_typed_decode_error() {
        let mut stored = fixed(EventType::OrderCompleted).to_stored();
        stored.payload = serde_json::json!({ "total": 1, "extra": true });
        assert!(matches!(
            stored.decode(),
            Err(DecodeError::Payload {
                event_type: EventType::OrderCompleted,
                ..
            })
        ));
    }

    #[test]
    fn the_dynamodb_item_codec_round_trips_events_and_status_records() {
        for &t in EventType::ALL {
            let envelope = fixed(t);
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

proptest! {
    #[test]
    fn encode_then_decode_gives_back_the_same_event(e in every_event_type::arb_event(), v in 1u32..1000, ms in 0i64..10_000_000_000) {
        every_event_type::round_trips(e, v, ms)?;
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

/// A customer's cancellation races the processor on the same log. Each side reads the log,
/// decides on the folded state, and appends at the next version only if no one appended since
/// it read (the log's optimistic concurrency); on a conflict it reads again and decides again.
/// Whatever the interleaving, the log ends with exactly one terminal event, and the customer's
/// answer agrees with it.
mod cancel_race {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Answer {
        Cancelled,
        Refused(OrderStatus),
    }

    /// One side of the race: what it last read, if it still has a decision to take.
    struct Side {
        read: Option<OrderView>,
        done: bool,
    }

    impl Side {
        fn new() -> Self {
            Self {
                read: None,
                done: false,
            }
        }
    }

    /// Appends `e` at the version after `read`, unless the log has moved on since (a conflict).
    fn append(log: &mut Vec<EventEnvelope>, read: &OrderView, e: OrderEvent) -> bool {
        if log.len() != read.version.get() as usize {
            return false;
        }
        let next = read.version.next().get();
        log.push(event(next, e));
        true
    }

    fn step_processor(side: &mut Side, log: &mut Vec<EventEnvelope>, policy: &ProcessingPolicy) {
        let Some(read) = side.read.take() else {
            side.read = Some(given(log));
            return;
        };
        match decide_next(&read, policy) {
            // Appended or conflicted: either way, read again before the next decision.
            Some(e) => {
                append(log, &read, e);
            }
            None => side.done = true,
        }
    }

    fn step_customer(side: &mut Side, log: &mut Vec<EventEnvelope>, answer: &mut Option<Answer>) {
        let Some(read) = side.read.take() else {
            side.read = Some(given(log));
            return;
        };
        match decide_cancel(&read, Some("changed my mind".into())) {
            Ok(Some(e)) => {
                if append(log, &read, e) {
                    *answer = Some(Answer::Cancelled);
                    side.done = true;
                }
            }
            Ok(None) => {
                *answer = Some(Answer::Cancelled);
                side.done = true;
            }
            Err(NotCancellable { status }) => {
                *answer = Some(Answer::Refused(status));
                side.done = true;
            }
        }
    }

    fn is_terminal_event(e: &EventEnvelope) -> bool {
        match e.event {
            OrderEvent::OrderCompleted { .. }
            | OrderEvent::OrderFailed { .. }
            | OrderEvent::OrderCancelled { .. } => true,
            OrderEvent::OrderReceived(_) | OrderEvent::OrderProcessingStarted => false,
        }
    }

    proptest! {
        #[test]
        fn a_cancellation_racing_the_processor_ends_with_exactly_one_terminal_event(
            // Who moves at each step: true = the processor, false = the customer.
            schedule in prop::collection::vec(any::<bool>(), 0..24),
            over_limit in any::<bool>(),
        ) {
            let policy = ProcessingPolicy {
                credit_limit: if over_limit { 1 } else { 1_000_000 },
            };
            let mut log = vec![received()];
            let (mut processor, mut customer) = (Side::new(), Side::new());
            let mut answer = None;
            // The schedule, then each side in turn until both are done.
            let turns = schedule.into_iter().chain([true, false].into_iter().cycle());
            for processor_moves in turns.take(200) {
                if processor.done && customer.done {
                    break;
                }
                if processor_moves && !processor.done {
                    step_processor(&mut processor, &mut log, &policy);
                } else if !customer.done {
                    step_customer(&mut customer, &mut log, &mut answer);
                }
            }
            prop_assert!(processor.done && customer.done, "the race did not settle: {log:?}");
            let view = given(&log);
            prop_assert!(view.status.is_terminal());
            prop_assert_eq!(log.iter().filter(|e| is_terminal_event(e)).count(), 1);
            prop_assert!(log.last().is_some_and(is_terminal_event));
            let expected = match view.status {
                OrderStatus::Cancelled => Answer::Cancelled,
                other => Answer::Refused(other),
            };
            prop_assert_eq!(answer, Some(expected));
        }
    }
}
