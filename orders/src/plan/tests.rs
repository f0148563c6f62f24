//! The plan against the numbers it is made of: each limit is reached exactly where its
//! published figure and the measured work per order put it, raising its parameter moves the
//! first limit elsewhere, the ramp's growing limits stop throttling when AWS's rules say, and
//! the cost is BENCHMARKS.md's.

use super::config::Config;
use super::limits::{self, measured};
use super::model::{self, Durations, Kind, PerOrder};
use super::ramp;

fn config(params: &[&str]) -> Config {
    let owned: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
    Config::from_built_in(&owned).expect("a valid configuration")
}

fn checks_at(params: &[&str], rate: f64) -> Vec<model::Check> {
    let config = config(params);
    let per = PerOrder::new(&config, Durations::Measured);
    model::checks(&config, &per, rate)
}

fn max_of(params: &[&str], id: &str) -> f64 {
    checks_at(params, 1.0)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no limit {id}"))
        .max_orders_per_second
        .unwrap_or_else(|| panic!("{id} is never reached"))
}

fn first(params: &[&str]) -> String {
    checks_at(params, 1.0)
        .into_iter()
        .find(|c| c.max_orders_per_second.is_some())
        .expect("some limit")
        .id
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

#[test]
fn a_new_on_demand_event_table_is_saturated_at_1334_orders_a_second_by_three_writes_an_order() {
    let id = "dynamodb.events.writes.warm";
    assert!(close(max_of(&[], id), 4_000.0 / 3.0, 1e-9));
    let at = |rate: f64| {
        checks_at(&[], rate)
            .into_iter()
            .find(|c| c.id == id)
            .expect("the event table's warm writes")
    };
    assert!(!at(1_333.0).below_rate, "1,333 orders/s is 3,999 writes/s");
    let over = at(1_334.0);
    assert!(over.below_rate, "1,334 orders/s is 4,002 writes/s");
    assert_eq!(over.need, 4_002.0);
    assert_eq!(over.effect, model::Effect::Refused);
    assert_eq!(over.lever, "EventsWarmWriteUnits");
}

#[test]
fn each_limit_is_reached_at_the_rate_its_published_figure_implies() {
    let expected: [(&str, f64); 10] = [
        ("api.stage-rate", 1_000.0),
        ("api.account-rate", limits::API_ACCOUNT_RATE.value),
        ("dynamodb.events.writes.table-quota", 40_000.0 / 3.0),
        ("dynamodb.events.reads.warm", 12_000.0 / 4.0),
        ("dynamodb.status.writes.warm", 4_000.0 / measured::VIEW_WRU),
        ("dynamodb.byCustomer.writes.warm", 4_000.0),
        ("dynamodb.pending.writes.warm", 4_000.0 / 2.0),
        ("dynamodb.pending.writes.per-key", 128.0 * 1_000.0 / 2.0),
        ("sns.publish", 30_000.0),
        // 1,000 concurrent batches of 10 orders, each batch one invocation of 333 ms.
        (
            "sqs.processor-mapping",
            1_000.0 * 10.0 / (measured::PROCESSOR.1 / measured::PROCESSOR.0 / 0.125 / 1_000.0),
        ),
    ];
    for (id, rate) in expected {
        assert!(
            close(max_of(&[], id), rate, 1e-9),
            "{id}: {} != {rate}",
            max_of(&[], id)
        );
    }
}

#[test]
fn every_limit_holds_just_below_its_rate_and_is_exceeded_just_above_it() {
    for params in [
        &[][..],
        &[
            "Architecture=x86_64",
            "ProcessorMaxPollers=400",
            "IngestReservedConcurrency=300",
        ][..],
        &["CapacityMode=PROVISIONED", "StreamBatchingWindowSeconds=30"][..],
    ] {
        for check in checks_at(params, 1.0) {
            let Some(max) = check.max_orders_per_second else {
                continue;
            };
            let find = |rate: f64| {
                checks_at(params, rate)
                    .into_iter()
                    .find(|c| c.id == check.id)
                    .expect("the same limit")
            };
            let under = find(max * 0.999);
            let over = find(max * 1.001);
            assert!(
                !under.below_rate && under.utilisation <= 1.0,
                "{params:?} {}",
                check.id
            );
            assert!(
                over.below_rate && over.utilisation > 1.0,
                "{params:?} {}",
                check.id
            );
        }
    }
}

/// Seconds of a busy shard's batch: the projector's 100 records (StreamBatchSize) are 33
/// orders, two rounds of 32; the notifier's quarter second of a shard's completions (83) three.
fn projector_batch_seconds() -> f64 {
    measured::PROJECTOR.1 / measured::PROJECTOR.0 / 0.125 / 1000.0 * 2.0
}

const NOTIFIER_BATCH: f64 = 1_000.0 / 3.0 / 4.0;

fn notifier_batch_seconds() -> f64 {
    measured::NOTIFIER.1 / measured::NOTIFIER.0 / 0.125 / 1000.0 * 3.0
}

#[test]
fn the_lambda_account_limit_is_the_five_functions_concurrency_by_littles_law() {
    // Per order/s: ingest one invocation (97.9 ms measured, but at least 1/10 s: an
    // environment serves 10 requests/s), the processor a tenth of a 333 ms invocation, the
    // projector three records and the notifier one of their full batches' time.
    let ms = |(inv, gb_ms): (f64, f64)| gb_ms / inv / 0.125;
    let projector = 3.0 * projector_batch_seconds() / 100.0;
    let per_order = (ms(measured::INGEST) / 1000.0).max(0.1)
        + ms(measured::PROCESSOR) / 1000.0 / 10.0
        + projector
        + notifier_batch_seconds() / NOTIFIER_BATCH;
    assert!(close(
        max_of(&[], "lambda.account-concurrency"),
        1_000.0 / per_order,
        1e-9
    ));
    // Reserving concurrency for one function takes it out of the others' pool.
    let reserved = max_of(
        &["ProjectorReservedConcurrency=100"],
        "lambda.account-concurrency",
    );
    assert!(close(reserved, 900.0 / (per_order - projector), 1e-9));
}

#[test]
fn raising_a_limits_parameter_moves_the_first_limit_elsewhere() {
    // On the measured (emulator) durations, one projector batch at a time falls behind a
    // single shard first; then the notifier; then the API stage's own throttle; then the
    // tables' warm throughput.
    let mut params: Vec<&str> = Vec::new();
    for (raise, next) in [
        ("", "stream.projector"),
        ("ProjectorParallelizationFactor=10", "stream.notifier"),
        ("NotifierParallelizationFactor=2", "api.stage-rate"),
        ("ApiThrottleRate=50000", "dynamodb.events.writes.warm"),
        ("EventsWarmWriteUnits=300000", "dynamodb.status.writes.warm"),
        ("StatusWarmWriteUnits=300000", "dynamodb.events.reads.warm"),
    ] {
        if !raise.is_empty() {
            params.push(raise);
        }
        assert_eq!(first(&params), next, "after {params:?}");
    }
    // The on-demand ceiling is a limit of its own, and a cost ceiling: set below the rest, it
    // comes first.
    assert_eq!(
        first(&[
            "ProjectorParallelizationFactor=10",
            "NotifierParallelizationFactor=2",
            "ApiThrottleRate=50000",
            "OnDemandMaxWriteUnits=3000"
        ]),
        "dynamodb.events.writes.on-demand-max"
    );
    assert!(close(
        max_of(
            &["OnDemandMaxWriteUnits=3000"],
            "dynamodb.events.writes.on-demand-max"
        ),
        1_000.0,
        1e-9
    ));
}

#[test]
fn parallelization_lets_the_stream_readers_keep_up_with_a_full_shard() {
    // Measured, a projector batch of 100 records takes two 158 ms rounds: one batch at a time
    // keeps up with 316 records/s (105 orders/s) on a shard; four at a time with more than the
    // 1,000 a shard can carry, so the limit is gone.
    let one = max_of(&[], "stream.projector");
    assert!(
        close(one, 100.0 / projector_batch_seconds() / 3.0, 1e-9),
        "{one}"
    );
    let three = max_of(&["ProjectorParallelizationFactor=3"], "stream.projector");
    assert!(close(three, 3.0 * one, 1e-9));
    for params in [
        ["ProjectorParallelizationFactor=4"],
        ["ProjectorParallelizationFactor=10"],
    ] {
        let found = checks_at(&params, 1e6)
            .into_iter()
            .find(|c| c.id == "stream.projector")
            .expect("projector");
        assert_eq!(found.max_orders_per_second, None, "{params:?}");
        assert!(!found.below_rate);
    }
    // The notifier: 83 completions in three rounds of 114 ms, 244 a second, short of a full
    // shard's 333; two at a time keep up.
    assert!(close(
        max_of(&[], "stream.notifier"),
        NOTIFIER_BATCH / notifier_batch_seconds(),
        1e-9
    ));
    let two = checks_at(&["NotifierParallelizationFactor=2"], 1e6)
        .into_iter()
        .find(|c| c.id == "stream.notifier")
        .expect("notifier");
    assert_eq!(two.max_orders_per_second, None);
}

#[test]
fn provisioned_pollers_lift_the_sqs_mappings_thousand_batches() {
    let standard = max_of(&[], "sqs.processor-mapping");
    let capped = max_of(&["ProcessorMaxConcurrency=100"], "sqs.processor-mapping");
    assert!(close(capped, standard / 10.0, 1e-9));
    let pollers = max_of(&["ProcessorMaxPollers=400"], "sqs.processor-mapping");
    assert!(
        close(pollers, standard * 4.0, 1e-9),
        "400 pollers of 10 batches"
    );
}

#[test]
fn a_stream_batching_window_removes_most_pending_index_writes() {
    let without = max_of(&[], "dynamodb.pending.writes.per-key");
    let with = max_of(
        &["StreamBatchingWindowSeconds=5", "StreamBatchSize=10000"],
        "dynamodb.pending.writes.per-key",
    );
    // An order lives ~1.5 s: a 5 s window splits 30% of them.
    assert!(close(with, without / 0.3, 1e-9));
    // ... as long as a batch holds the window: a busy shard fills 10,000 records in 10 s, 100
    // in a tenth of a second.
    let longer = max_of(
        &["StreamBatchingWindowSeconds=30", "StreamBatchSize=10000"],
        "dynamodb.pending.writes.per-key",
    );
    assert!(close(longer, without / 0.15, 1e-9));
    let small_batches = max_of(
        &["StreamBatchingWindowSeconds=5"],
        "dynamodb.pending.writes.per-key",
    );
    assert!(close(small_batches, without, 1e-9));
    assert!(close(
        max_of(&["PendingShards=256"], "dynamodb.pending.writes.per-key"),
        without * 2.0,
        1e-9
    ));
}

#[test]
fn provisioned_capacity_is_bounded_by_the_auto_scaling_maximum_not_by_warm_throughput() {
    let checks = checks_at(&["CapacityMode=PROVISIONED"], 1.0);
    assert!(checks.iter().all(|c| !c.id.ends_with(".warm")));
    assert!(close(
        max_of(
            &["CapacityMode=PROVISIONED"],
            "dynamodb.events.writes.provisioned-max"
        ),
        4_000.0 / 3.0,
        1e-9
    ));
}

#[test]
fn the_cost_per_million_orders_is_benchmarks_cost_section() {
    // BENCHMARKS.md, Cost per order: scripts/cost.py price, "this code, on demand 8.231" and
    // "provisioned at 70% 4.643" (x86_64, 128 MB).
    let config = config(&["Architecture=x86_64"]);
    let per = PerOrder::new(&config, Durations::Measured);
    let on_demand = model::cost(&config, &per, false);
    let provisioned = model::cost(&config, &per, true);
    assert!(close(on_demand.total, 8.231, 0.001), "{on_demand:?}");
    assert!(close(provisioned.total, 4.643, 0.001), "{provisioned:?}");
    assert!(close(on_demand.dynamodb_writes, 5.300, 0.001));
    assert!(close(on_demand.lambda_gb_seconds, 0.328, 0.002));
    // With a window, between that and "stream window ESTIMATED, on demand 5.871" (every
    // order's events in one batch): a batch of 10,000 holds 10 s of a busy shard, so 15% of
    // the orders (1.5 s of life over 10 s) still pay a second view write and the pending
    // index's put and delete.
    let windowed = config_cost(&[
        "Architecture=x86_64",
        "StreamBatchingWindowSeconds=300",
        "StreamBatchSize=10000",
    ]);
    let writes = 3.0 + (1.0 + 1.48 * 0.15) + 1.0 + 2.0 * 0.15;
    let reads = 4.0 + (1.0 + 1.48 * 0.15);
    let saved = (8.48 - writes) * 0.625 + (6.48 - reads) * 0.125;
    assert!(close(windowed, 8.231 - saved, 1e-3), "{windowed}");
    assert!(5.871 < windowed && windowed < 8.231);
    // arm64 (the template's default) pays less per GB-s.
    assert!(config_cost(&[]) < on_demand.total);
}

fn config_cost(params: &[&str]) -> f64 {
    let config = config(params);
    let per = PerOrder::new(&config, Durations::Measured);
    model::cost(&config, &per, false).total
}

fn simulate(params: &[&str], from: f64, to: f64, seconds: u64) -> ramp::Ramp {
    let config = config(params);
    let per = PerOrder::new(&config, Durations::Measured);
    let checks = model::checks(&config, &per, to);
    ramp::simulate(&config, &per, &checks, from, to, seconds)
}

fn throttled<'r>(ramp: &'r ramp::Ramp, id: &str) -> Option<&'r ramp::Throttled> {
    ramp.throttled.iter().find(|t| t.id == id)
}

#[test]
fn a_new_event_table_refuses_the_excess_for_thirty_minutes_then_doubles() {
    // Everything else out of the way: a burst to 2,000 orders/s on a new stack.
    let params = [
        "ApiThrottleRate=100000",
        "EventsWarmReadUnits=100000",
        "StatusWarmWriteUnits=100000",
        "StatusWarmReadUnits=100000",
        "AccountConcurrency=100000",
        "ProcessorMaxPollers=400",
        "ProjectorParallelizationFactor=10",
        "NotifierParallelizationFactor=10",
    ];
    let ramp = simulate(&params, 0.0, 2_000.0, 0);
    let events = throttled(&ramp, "dynamodb.events.writes.warm").expect("throttled");
    assert_eq!(events.first_throttled_second, 0);
    assert_eq!(events.stops_throttling_second, Some(1_800));
    let refused_per_second = 2_000.0 - 4_000.0 / 3.0;
    assert!(close(
        events.orders_over,
        refused_per_second * 1_800.0,
        1e-3
    ));
    assert!(
        close(ramp.refused_orders, refused_per_second * 1_800.0, 0.05),
        "{ramp:?}"
    );
    assert_eq!(ramp.stops_refusing_second, Some(1_800));
    // Pre-warmed for the burst, nothing of the table is refused.
    let warmed = [&params[..], &["EventsWarmWriteUnits=6000"]].concat();
    let ramp = simulate(&warmed, 0.0, 2_000.0, 0);
    assert!(
        throttled(&ramp, "dynamodb.events.writes.warm").is_none(),
        "{ramp:?}"
    );
}

#[test]
fn a_table_that_served_the_previous_rate_takes_twice_it_at_once() {
    let params = ["ApiThrottleRate=100000", "AccountConcurrency=100000"];
    // Having served 1,000 orders/s (3,000 writes/s), 2,000 orders/s (6,000) is within double.
    let ramp = simulate(&params, 1_000.0, 2_000.0, 0);
    assert!(
        throttled(&ramp, "dynamodb.events.writes.warm").is_none(),
        "{ramp:?}"
    );
}

#[test]
fn the_sqs_mapping_adds_300_batches_a_minute_and_delays_what_it_cannot_take_yet() {
    let params = [
        "ApiThrottleRate=100000",
        "AccountConcurrency=100000",
        "EventsWarmWriteUnits=100000",
        "EventsWarmReadUnits=100000",
        "StatusWarmWriteUnits=100000",
        "StatusWarmReadUnits=100000",
        "ProjectorParallelizationFactor=10",
        "NotifierParallelizationFactor=10",
    ];
    // 3,000 orders/s keep 3,000 × 0.0333 = 100 batches busy; from 5, at 5 more a second.
    // The 5 more batches of each second serve in it: 100 are there in second 18.
    let ramp = simulate(&params, 0.0, 3_000.0, 0);
    let mapping = throttled(&ramp, "sqs.processor-mapping").expect("throttled");
    assert_eq!(mapping.effect, model::Effect::Delayed);
    assert_eq!(mapping.stops_throttling_second, Some(18));
    assert!(ramp.delayed_orders > 0.0, "{ramp:?}");
    assert_eq!(ramp.stops_delaying_second, Some(18));
    // Only the ingest function's first seconds refuse anything (300 environments, 2 s).
    assert_eq!(ramp.stops_refusing_second, Some(2), "{ramp:?}");
}

#[test]
fn the_ingest_function_adds_1000_environments_every_10_seconds() {
    let params = [
        "ApiThrottleRate=100000",
        "ApiAccountRate=100000",
        "AccountConcurrency=100000",
        "EventsWarmWriteUnits=100000",
    ];
    // 5,000 orders/s need 500 environments (10 requests/s each), 100 more a second: the
    // 500th is there in second 4 (the fifth).
    let ramp = simulate(&params, 0.0, 5_000.0, 0);
    let ingest = throttled(&ramp, "lambda.ingest.scaling").expect("throttled");
    assert_eq!(ingest.stops_throttling_second, Some(4));
    assert_eq!(ingest.effect, model::Effect::Refused);
    // A ramp slower than the scaling rate refuses nothing for it.
    let ramp = simulate(&params, 0.0, 5_000.0, 60);
    assert!(
        throttled(&ramp, "lambda.ingest.scaling").is_none(),
        "{ramp:?}"
    );
}

#[test]
fn a_fixed_limit_below_the_target_never_stops_throttling() {
    let ramp = simulate(&[], 0.0, 1_500.0, 10);
    let stage = throttled(&ramp, "api.stage-rate").expect("throttled");
    assert_eq!(stage.stops_throttling_second, None);
    assert_eq!(ramp.stops_refusing_second, None);
}

#[test]
fn recommended_settings_leave_only_quotas_below_each_rate_on_either_durations() {
    // The settings docs/scaling.md recommends (its CLI test reads them from there too), on the
    // measured durations and on the estimated ones.
    for rate in [1_000, 10_000, 100_000] {
        let params = recommended(rate);
        let config = config(&params.iter().map(String::as_str).collect::<Vec<_>>());
        for durations in [Durations::Measured, Durations::Estimated] {
            let per = PerOrder::new(&config, durations);
            let below: Vec<(String, Kind)> = model::checks(&config, &per, rate as f64)
                .into_iter()
                .filter(|c| c.below_rate)
                .map(|c| (c.id, c.kind))
                .collect();
            assert!(
                below.iter().all(|(_, kind)| *kind == Kind::Quota),
                "{rate} {durations:?}: {below:?}"
            );
            if rate == 100_000 {
                assert!(!below.is_empty(), "100k orders/s needs quota increases");
            }
        }
    }
}

/// The `--param K=V`s of docs/scaling.md's `orders plan --rate RATE` command.
pub(crate) fn recommended(rate: u64) -> Vec<String> {
    let doc = include_str!("../../../docs/scaling.md");
    let marker = format!("\norders plan --rate {rate} ");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/scaling.md has no `{marker}` command"));
    let block = &doc[start..];
    let block = &block[..block.find("```").unwrap_or(block.len())];
    let tokens: Vec<&str> = block.split_whitespace().collect();
    let params: Vec<String> = tokens
        .windows(2)
        .filter(|w| w[0] == "--param")
        .map(|w| w[1].to_owned())
        .collect();
    assert!(
        !params.is_empty(),
        "`{marker}` in docs/scaling.md sets no --param"
    );
    params
}
