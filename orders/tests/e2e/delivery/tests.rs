use std::time::Instant;

use events_schema::OrderEvent;

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use super::stream::{Poison, Stream};
use super::stream_mapping::{Invocation, StreamMapping};
use super::template::{matches, MappingSettings, StreamMappingSettings};
use super::{Run, RunSettings};

/// Seeds per run of the test command; `ORDERS_HARNESS_SEEDS` asks for more (a soak).
fn seeds() -> u64 {
    std::env::var("ORDERS_HARNESS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

fn fail_with_problems(settings: &RunSettings, problems: &[String]) -> ! {
    panic!(
        "seed {} ({settings:?}): {} problems, the first: {:#?}",
        settings.seed,
        problems.len(),
        &problems[..problems.len().min(10)]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_aws_delivery_rules_and_faults_every_order_ends_by_its_log_notified_within_the_bound_and_only_poison_is_set_aside(
) {
    let first = std::env::var("ORDERS_HARNESS_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for seed in first..first + seeds() {
        let started = Instant::now();
        let settings = RunSettings::for_seed(seed, 1_000);
        let mut run = Run::new(settings.clone());
        run.run().await;
        let figures = run
            .check()
            .await
            .unwrap_or_else(|problems| fail_with_problems(&settings, &problems));
        assert_eq!(figures.completed + figures.failed, 1_000);
        assert!(
            figures.failed > 0,
            "the mix holds orders over the credit limit"
        );
        assert!(
            figures.faults > 0 && figures.timeouts > 0,
            "faults were injected: {figures:?}"
        );
        eprintln!(
            "delivery harness: seed {seed}, {} shards, lanes {}/{}: {} completed, {} failed, \
             {} set aside, at most {} copies (bound {}), {} stream invocations ({} failed as a \
             whole, {} timeouts), {} faults, {} re-enqueued by the reconciler, {} ticks, {:.1}s",
            settings.shards,
            settings.projector_lanes,
            settings.notifier_lanes,
            figures.completed,
            figures.failed,
            figures.set_aside,
            figures.max_copies,
            run.duplicate_bound(),
            figures.invocations,
            figures.function_errors,
            figures.timeouts,
            figures.faults,
            figures.reenqueued,
            figures.ticks,
            started.elapsed().as_secs_f64()
        );
        if seed == first {
            // The operator's check agrees on the file the functions wrote.
            let data = run.db.dir().join("orders.db");
            let verify = crate::tools::orders(&[
                "verify",
                "--pending-after",
                "0s",
                "--data",
                data.to_str().expect("utf-8 path"),
            ]);
            assert!(
                verify.status.success(),
                "orders verify: {}{}",
                crate::tools::stdout(&verify),
                crate::tools::stderr(&verify)
            );
        }
    }
}

#[tokio::test]
async fn poison_records_anywhere_among_the_orders_are_set_aside_and_hold_back_nothing() {
    let settings = RunSettings {
        poison: 12,
        ..RunSettings::calm(7, 200)
    };
    let mut run = Run::new(settings.clone());
    run.run().await;
    let figures = run
        .check()
        .await
        .unwrap_or_else(|problems| fail_with_problems(&settings, &problems));
    // Projector: every poison record; notifier: those its filter lets through (2 of 3 kinds).
    assert_eq!(figures.set_aside, 12 + 8, "{figures:?}");
    assert_eq!(
        figures.max_copies, 1,
        "a calm run notifies each completion once"
    );
}

#[tokio::test]
async fn orders_whose_messages_are_dead_lettered_are_sent_back_by_the_reconciler_and_complete() {
    // One receive each: any failed processing attempt dead-letters the message on its next
    // receive, as a long outage would with the template's five.
    let settings = RunSettings {
        failure_rate: 0.05,
        max_receive_count: Some(1),
        ..RunSettings::calm(11, 200)
    };
    let mut run = Run::new(settings.clone());
    run.run().await;
    let figures = run
        .check()
        .await
        .unwrap_or_else(|problems| fail_with_problems(&settings, &problems));
    assert!(
        figures.reenqueued > 0,
        "the run dead-lettered nothing, so it proves nothing: {figures:?}"
    );
    assert_eq!(figures.completed + figures.failed, 200, "{figures:?}");
}

#[test]
fn the_mappings_are_read_from_the_template() {
    let m = MappingSettings::from_template();
    for stream in [&m.projector, &m.notifier] {
        assert!(stream.report_batch_item_failures && stream.bisect_on_function_error);
        assert!(stream.has_on_failure_destination);
        assert!(stream.max_retry_attempts.is_some(), "retries are bounded");
        assert!(stream.batch_size >= 1);
    }
    assert!(m.processor.report_batch_item_failures);
    assert!(m.processor.max_receive_count >= 1);
    let completion = serde_json::json!({
        "eventName": "INSERT",
        "dynamodb": {"NewImage": {"eventType": {"S": "OrderCompleted"}}}
    });
    let started = serde_json::json!({
        "eventName": "INSERT",
        "dynamodb": {"NewImage": {"eventType": {"S": "OrderProcessingStarted"}}}
    });
    assert!(m.notifier.filters.iter().any(|f| matches(f, &completion)));
    assert!(!m.notifier.filters.iter().any(|f| matches(f, &started)));
    // The notifier's filter lets through exactly the event types it announces.
    for &event_type in events_schema::EventType::ALL {
        let example = match event_type {
            events_schema::EventType::OrderReceived => {
                order_test_support::order_received(1, 100).event
            }
            events_schema::EventType::OrderProcessingStarted => OrderEvent::OrderProcessingStarted,
            events_schema::EventType::OrderCompleted => OrderEvent::OrderCompleted { total: 1 },
            events_schema::EventType::OrderFailed => OrderEvent::OrderFailed { reason: "x".into() },
            events_schema::EventType::OrderCancelled => OrderEvent::OrderCancelled { reason: None },
        };
        let record = serde_json::json!({
            "eventName": "INSERT",
            "dynamodb": {"NewImage": {"eventType": {"S": event_type.as_str()}}}
        });
        assert_eq!(
            m.notifier.filters.iter().any(|f| matches(f, &record)),
            notifier::is_announced(&example),
            "{event_type}"
        );
    }
    assert!(m.projector.filters.iter().any(|f| matches(f, &started)));
}

// ---- the mapping model's own rules, each against AWS's documented behaviour ----

fn settings(batch_size: usize, retries: u32) -> StreamMappingSettings {
    StreamMappingSettings {
        batch_size,
        batching_window: std::time::Duration::ZERO,
        parallelization_factor: 1,
        max_retry_attempts: Some(retries),
        max_record_age: None,
        bisect_on_function_error: true,
        report_batch_item_failures: true,
        filters: Vec::new(),
        has_on_failure_destination: true,
    }
}

fn stream_of(n: usize) -> Stream {
    let mut stream = Stream::new(1);
    let event = order_test_support::order_received(1, 100);
    for _ in 0..n {
        stream.push_event(&event, 0);
    }
    stream
}

fn sequence_numbers(ready: &super::stream_mapping::Ready) -> Vec<String> {
    ready
        .event
        .records
        .iter()
        .filter_map(|r| r.change.sequence_number.clone())
        .collect()
}

fn failing_at(sequence_number: &str) -> Invocation {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number.to_owned());
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    Invocation::Response(response)
}

#[test]
fn a_reported_failure_makes_the_mapping_resume_from_the_lowest_sequence_number_reported() {
    let stream = stream_of(6);
    let mut mapping = StreamMapping::new(settings(10, 3));
    let ready = mapping.ready(&stream, 0).pop().expect("a batch");
    let seqs = sequence_numbers(&ready);
    let mut response = DynamoDbEventResponse::default();
    for at in [4, 2] {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(seqs[at].clone());
        response.batch_item_failures.push(failure);
    }
    mapping.complete(ready, Invocation::Response(response));
    let again = mapping.ready(&stream, 0).pop().expect("the retry");
    assert_eq!(sequence_numbers(&again), seqs[2..]);
    mapping.complete(
        again,
        Invocation::Response(DynamoDbEventResponse::default()),
    );
    assert!(mapping.caught_up(&stream));
    assert!(mapping.discarded.is_empty());
}

#[test]
fn a_function_error_halves_the_batch_without_spending_a_retry() {
    let stream = stream_of(8);
    let mut mapping = StreamMapping::new(settings(8, 0));
    let ready = mapping.ready(&stream, 0).pop().expect("a batch");
    let seqs = sequence_numbers(&ready);
    mapping.complete(ready, Invocation::FunctionError);
    let first_half = mapping.ready(&stream, 0).pop().expect("the first half");
    assert_eq!(sequence_numbers(&first_half), seqs[..4]);
    mapping.complete(
        first_half,
        Invocation::Response(DynamoDbEventResponse::default()),
    );
    let second_half = mapping.ready(&stream, 0).pop().expect("the second half");
    assert_eq!(sequence_numbers(&second_half), seqs[4..]);
    assert!(
        mapping.discarded.is_empty(),
        "splitting spent no retry (0 allowed)"
    );
}

#[test]
fn a_record_failing_past_its_retries_is_discarded_to_the_on_failure_destination_and_the_rest_go_on()
{
    let stream = stream_of(3);
    let mut mapping = StreamMapping::new(settings(3, 2));
    let seqs: Vec<String> = stream.shards[0]
        .iter()
        .map(|r| r.sequence_number.clone())
        .collect();
    // The first record fails on every attempt: 1 try + 2 retries.
    for _ in 0..3 {
        let ready = mapping.ready(&stream, 0).pop().expect("a batch");
        let first = sequence_numbers(&ready)[0].clone();
        mapping.complete(ready, failing_at(&first));
    }
    assert_eq!(mapping.discarded.len(), 1);
    assert_eq!(mapping.discarded[0].condition, "RetryAttemptsExhausted");
    assert_eq!(
        mapping.discarded[0].sequence_numbers, seqs,
        "the whole rest of the batch goes with it"
    );
    assert!(mapping.caught_up(&stream));
}

#[test]
fn an_item_identifier_that_names_no_record_fails_the_whole_batch() {
    let stream = stream_of(2);
    let mut mapping = StreamMapping::new(StreamMappingSettings {
        bisect_on_function_error: false,
        ..settings(2, 5)
    });
    let ready = mapping.ready(&stream, 0).pop().expect("a batch");
    let seqs = sequence_numbers(&ready);
    mapping.complete(ready, failing_at("not-a-sequence-number"));
    let again = mapping
        .ready(&stream, 0)
        .pop()
        .expect("the whole batch again");
    assert_eq!(sequence_numbers(&again), seqs);
}

#[test]
fn records_older_than_the_max_record_age_are_discarded_before_the_function_sees_them() {
    let stream = stream_of(2);
    let mut mapping = StreamMapping::new(StreamMappingSettings {
        max_record_age: Some(std::time::Duration::from_secs(60)),
        ..settings(2, 5)
    });
    assert!(mapping.ready(&stream, 61_000).is_empty());
    assert_eq!(mapping.discarded[0].condition, "MaxRecordAgeExceeded");
    assert!(mapping.caught_up(&stream));
}

#[test]
fn one_batch_is_in_flight_per_lane_and_an_item_stays_in_one_lane() {
    let mut stream = Stream::new(1);
    let events: Vec<_> = (0..40)
        .map(|_| order_test_support::order_received(1, 100))
        .collect();
    for e in &events {
        stream.push_event(e, 0);
    }
    let mut mapping = StreamMapping::new(StreamMappingSettings {
        parallelization_factor: 3,
        ..settings(100, 5)
    });
    let ready = mapping.ready(&stream, 0);
    assert!(ready.len() > 1 && ready.len() <= 3, "{} lanes", ready.len());
    let handed: usize = ready.iter().map(|r| r.event.records.len()).sum();
    assert_eq!(handed, 40, "every record in exactly one lane");
    assert!(
        mapping.ready(&stream, 0).is_empty(),
        "no second batch of a lane while one is in flight"
    );
}

#[test]
fn each_poison_kind_is_undecodable_and_valid_records_decode() {
    let mut stream = Stream::new(1);
    let event = order_test_support::order_received(1, 100);
    stream.push_event(&event, 0);
    for kind in Poison::ALL {
        stream.push_poison(kind, &event, 4, 0);
    }
    let decoded: Vec<bool> = stream.shards[0]
        .iter()
        .map(|r| {
            let image =
                serde_json::from_value(r.json["dynamodb"]["NewImage"].clone()).expect("an item");
            events_schema::EventEnvelope::from_item(image).is_ok()
        })
        .collect();
    assert_eq!(decoded, [true, false, false, false]);
}
