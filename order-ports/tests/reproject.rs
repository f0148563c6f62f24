//! Folding a log read back for re-projection: what is unfoldable, what is an error.

use events_schema::{CorrelationId, OrderEvent};

use events_schema::OrderView;
use order_ports::reproject::{fold_log, FoldedLog};
use order_ports::StoreError;
use order_test_support::order_received;

#[test]
fn a_corrupt_log_is_unfoldable_and_an_unavailable_one_is_an_error() {
    let corrupt = fold_log(Err(StoreError::Corrupt("event 2: unknown type".into())));
    assert!(
        matches!(&corrupt, Ok(FoldedLog::Unfoldable(why)) if why.contains("unknown type")),
        "{corrupt:?}"
    );
    let down = fold_log(Err(StoreError::Unavailable("throttled".into())));
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    assert_eq!(fold_log(Ok(Vec::new())), Ok(FoldedLog::Empty));
}

#[test]
fn a_history_the_fold_rejects_is_unfoldable_and_a_good_one_is_its_view() {
    let first = order_received(1, 100);
    let view = OrderView::start(&first).expect("start");
    let started = view.next_envelope(
        OrderEvent::OrderProcessingStarted,
        CorrelationId::generate(),
    );
    let good = fold_log(Ok(vec![first.clone(), started.clone()])).expect("folds");
    match good {
        FoldedLog::View { record, events } => {
            assert_eq!(events, 2);
            assert_eq!(record.version.get(), 2);
        }
        other => panic!("{other:?}"),
    }
    // Version 2 without version 1: a gap.
    let gap = fold_log(Ok(vec![started])).expect("no store error");
    assert!(matches!(gap, FoldedLog::Unfoldable(_)), "{gap:?}");
}
