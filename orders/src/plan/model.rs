//! The steady-state plan: for a rate of orders per second and a [`Config`], what each resource
//! needs (units, concurrency by Little's law, shards, requests), against each limit that bounds
//! it, and the rate at which each limit is reached. Every number comes from [`limits`].

use serde::Serialize;

use super::config::{Config, Function};
use super::limits::{self, estimated_ms, measured, prices};

/// Which per-invocation durations Little's law runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durations {
    /// The emulator run's billed durations (BENCHMARKS.md): an upper bound, AWS calls there
    /// are round trips to one shared Python process.
    Measured,
    /// scripts/cost.py's ESTIMATED_MS: ~5 ms a DynamoDB call, ~10 ms an SQS/SNS call.
    Estimated,
}

/// What bounds a limit: a template parameter, an account quota only AWS can raise, or a
/// constant in this service's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Template,
    Quota,
    Code,
}

/// What a client sees when the limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Requests are refused (429/503): the order is not taken.
    Refused,
    /// The order is taken; a later stage falls behind (queue depth, iterator age, view lag).
    Delayed,
}

/// One limit of one resource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub id: String,
    pub resource: String,
    /// What the resource needs at the rate, in `unit`.
    pub need: f64,
    pub limit: f64,
    pub unit: &'static str,
    /// need / limit.
    pub utilisation: f64,
    /// The rate at which `need` reaches `limit` (`None`: never).
    pub max_orders_per_second: Option<f64>,
    pub below_rate: bool,
    pub kind: Kind,
    pub effect: Effect,
    /// What moves the limit.
    pub lever: String,
    pub source: &'static str,
}

/// What one order takes from each resource under a configuration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerOrder {
    pub events_write_units: f64,
    pub events_read_units: f64,
    pub view_write_units: f64,
    pub view_read_units: f64,
    pub by_customer_write_units: f64,
    pub pending_write_units: f64,
    pub api_requests: f64,
    pub sqs_requests: f64,
    pub sns_requests: f64,
    pub sns_messages: f64,
    /// Lambda concurrency per order/s (Little's law, at least one environment per 10
    /// requests/s), by function.
    pub ingest_concurrency: f64,
    pub processor_concurrency: f64,
    pub projector_concurrency: f64,
    pub notifier_concurrency: f64,
    /// Seconds of the processor holding an order's message (its batch's invocation).
    pub processor_seconds: f64,
    /// Seconds of one concurrent stream batch per record, for each consumer (full batches).
    pub projector_seconds_per_record: f64,
    pub notifier_seconds_per_record: f64,
    /// A busy shard's batch (records) and how long its invocation takes, for each consumer:
    /// keep them under the functions' Timeout.
    pub projector_batch_records: f64,
    pub projector_batch_seconds: f64,
    pub notifier_batch_records: f64,
    pub notifier_batch_seconds: f64,
    pub invocations: f64,
    pub gb_seconds: f64,
}

impl PerOrder {
    pub fn new(config: &Config, durations: Durations) -> PerOrder {
        let ms = |(invocations, gb_ms): (f64, f64), estimated: f64| match durations {
            Durations::Measured => gb_ms / invocations / (measured::MEMORY_MB / 1024.0),
            Durations::Estimated => estimated,
        };
        let ingest_ms = ms(measured::INGEST, estimated_ms::INGEST);
        let processor_ms = ms(measured::PROCESSOR, estimated_ms::PROCESSOR);
        let projector_ms = ms(measured::PROJECTOR, estimated_ms::PROJECTOR);
        let notifier_ms = ms(measured::NOTIFIER, estimated_ms::NOTIFIER);
        // A batch holds what a busy shard (one partition's 1,000 writes/s) carries while the
        // mapping gathers: a poll's quarter second, or the projector's batching window, up to
        // StreamBatchSize; the notifier's filter passes a third of the records. The projector
        // reads and writes one view per order of a batch, the notifier loads one history per
        // completion, each 32 at a time (order-ports' DynamoDB stores): a batch takes as many
        // of the measured invocation's rounds as it has 32s of orders (the run's invocations
        // had 28 records, 9 orders: one round).
        let rounds = |items: f64| (items / limits::PROCESSOR_ROUND).ceil().max(1.0);
        let shard = limits::SHARD_WRITES_ASSUMED.value;
        let poll = 1.0 / limits::STREAM_POLLS_PER_SECOND.value;
        let projector_batch = config
            .stream_batch_size
            .min(shard * config.stream_window_seconds.max(poll));
        let notifier_batch = config
            .stream_batch_size
            .min(shard * measured::COMPLETIONS_PER_ORDER / measured::RECORDS_PER_ORDER * poll);
        let projector_batch_seconds =
            projector_ms / 1000.0 * rounds(projector_batch / measured::RECORDS_PER_ORDER);
        let notifier_batch_seconds = notifier_ms / 1000.0 * rounds(notifier_batch);
        let projector_per_record = projector_batch_seconds / projector_batch;
        let notifier_per_record = notifier_batch_seconds / notifier_batch;
        let per_environment = 1.0 / limits::LAMBDA_REQUESTS_PER_ENVIRONMENT.value;
        let batch = config.processor_batch_size;
        // With a stream batching window, the orders whose three events still land in two
        // batches (about an order's life over the window) pay the second view write and the
        // pending index's put and delete; the others one view write and none. A batch closes
        // when full, so the window that counts is at most the time a busy shard takes to fill
        // one.
        let window = config.stream_window_seconds.min(projector_batch / shard);
        let split = if window <= 0.0 {
            1.0
        } else {
            (limits::ORDER_LIFE_SECONDS / window).min(1.0)
        };
        let view = 1.0 + (measured::VIEW_WRU - 1.0) * split;
        let invocations = measured::INGEST.0
            + measured::PROCESSOR.0 * measured::PROCESSOR_BATCH / batch
            + measured::PROJECTOR.0
            + measured::NOTIFIER.0;
        let memory_scale = config.memory_mb / measured::MEMORY_MB;
        let gb_seconds = match durations {
            Durations::Measured => {
                (measured::INGEST.1
                    + measured::PROCESSOR.1
                    + measured::PROJECTOR.1
                    + measured::NOTIFIER.1)
                    / 1000.0
                    * memory_scale
            }
            Durations::Estimated => {
                (measured::INGEST.0 * ingest_ms
                    + measured::PROCESSOR.0 * processor_ms
                    + measured::PROJECTOR.0 * projector_ms
                    + measured::NOTIFIER.0 * notifier_ms)
                    / 1000.0
                    * config.memory_mb
                    / 1024.0
            }
        };
        PerOrder {
            events_write_units: measured::EVENTS_WRU,
            events_read_units: measured::EVENTS_RRU,
            view_write_units: view,
            view_read_units: 1.0 + (measured::VIEW_RRU - 1.0) * split,
            by_customer_write_units: measured::BY_CUSTOMER_WRU,
            pending_write_units: measured::PENDING_WRU * split,
            api_requests: measured::API_REQUESTS,
            sqs_requests: measured::SQS_REQUESTS,
            sns_requests: measured::SNS_REQUESTS,
            sns_messages: measured::SNS_MESSAGES,
            ingest_concurrency: (ingest_ms / 1000.0).max(per_environment),
            processor_concurrency: (processor_ms / 1000.0).max(per_environment) / batch,
            projector_concurrency: measured::RECORDS_PER_ORDER * projector_per_record,
            notifier_concurrency: measured::COMPLETIONS_PER_ORDER * notifier_per_record,
            processor_seconds: processor_ms / 1000.0,
            projector_seconds_per_record: projector_per_record,
            notifier_seconds_per_record: notifier_per_record,
            projector_batch_records: projector_batch,
            projector_batch_seconds,
            notifier_batch_records: notifier_batch,
            notifier_batch_seconds,
            invocations,
            gb_seconds,
        }
    }

    pub fn concurrency(&self, function: Function) -> f64 {
        match function {
            Function::Ingest => self.ingest_concurrency,
            Function::Processor => self.processor_concurrency,
            Function::Projector => self.projector_concurrency,
            Function::Notifier => self.notifier_concurrency,
            // Every 5 minutes, not per order.
            Function::Reconciler => 0.0,
        }
    }
}

/// A linear limit: `per_order` units an order against `limit`.
#[allow(clippy::too_many_arguments)]
fn linear(
    rate: f64,
    id: &str,
    resource: &str,
    per_order: f64,
    limit: f64,
    unit: &'static str,
    kind: Kind,
    effect: Effect,
    lever: &str,
    source: &'static str,
) -> Check {
    let max = (per_order > 0.0).then(|| limit / per_order);
    finish(
        Check {
            id: id.to_owned(),
            resource: resource.to_owned(),
            need: per_order * rate,
            limit,
            unit,
            utilisation: 0.0,
            max_orders_per_second: max,
            below_rate: false,
            kind,
            effect,
            lever: lever.to_owned(),
            source,
        },
        rate,
    )
}

fn finish(mut check: Check, rate: f64) -> Check {
    check.utilisation = if check.limit > 0.0 {
        check.need / check.limit
    } else {
        f64::INFINITY
    };
    check.below_rate = check.max_orders_per_second.is_some_and(|max| max < rate);
    check
}

/// A table or an index, and how an order uses it.
struct Store {
    key: &'static str,
    name: &'static str,
    writes: f64,
    reads: Option<f64>,
    warm_write: Option<f64>,
    warm_read: Option<f64>,
    warm_write_parameter: &'static str,
    warm_read_parameter: &'static str,
    /// Writes to it refuse orders (ingest's append) rather than delay them.
    write_effect: Effect,
}

/// Every limit at `rate` orders/s, sorted by the rate at which each is reached.
pub fn checks(config: &Config, per: &PerOrder, rate: f64) -> Vec<Check> {
    let mut all = Vec::new();
    // ---- API Gateway
    all.push(linear(
        rate,
        "api.stage-rate",
        "HTTP API $default stage throttle",
        per.api_requests,
        config.api_throttle_rate,
        "requests/s",
        Kind::Template,
        Effect::Refused,
        "ApiThrottleRate (and ApiThrottleBurst)",
        "template.yaml DefaultStage.DefaultRouteSettings",
    ));
    all.push(linear(
        rate,
        "api.account-rate",
        "API Gateway account throttle (per Region)",
        per.api_requests,
        config.api_account_rate,
        "requests/s",
        Kind::Quota,
        Effect::Refused,
        "quota increase: API Gateway throttle quota per account per Region (ApiAccountRate)",
        limits::API_ACCOUNT_RATE.source,
    ));
    // ---- Lambda
    let reserved_total: f64 = config.reserved.values().sum();
    let unreserved_per_order: f64 = Function::ALL
        .iter()
        .filter(|f| !config.reserved.contains_key(f))
        .map(|f| per.concurrency(*f))
        .sum();
    let pool = config.account_concurrency - reserved_total;
    let account_need = unreserved_per_order * rate + reserved_total;
    all.push(finish(
        Check {
            id: "lambda.account-concurrency".to_owned(),
            resource: "Lambda concurrency, all five functions (Little's law)".to_owned(),
            need: account_need,
            limit: config.account_concurrency,
            unit: "concurrent executions",
            utilisation: 0.0,
            max_orders_per_second: (unreserved_per_order > 0.0)
                .then(|| (pool / unreserved_per_order).max(0.0)),
            below_rate: false,
            kind: Kind::Quota,
            effect: Effect::Refused,
            lever: "quota increase: Lambda concurrent executions (AccountConcurrency)".to_owned(),
            source: limits::LAMBDA_ACCOUNT_CONCURRENCY.source,
        },
        rate,
    ));
    for (function, reserved) in &config.reserved {
        let effect = if *function == Function::Ingest {
            Effect::Refused
        } else {
            Effect::Delayed
        };
        all.push(linear(
            rate,
            &format!("lambda.{}.reserved", function.name()),
            &format!("{} reserved concurrency", function.name()),
            per.concurrency(*function),
            *reserved,
            "concurrent executions",
            Kind::Template,
            effect,
            function.reserved_parameter(),
            "template.yaml ReservedConcurrentExecutions",
        ));
    }
    // ---- the SQS mapping of the processor
    let (cap, lever) = match (
        config.processor_max_pollers,
        config.processor_max_concurrency,
    ) {
        (Some(pollers), _) => (
            pollers * limits::SQS_POLLER_INVOCATIONS.value,
            "ProcessorMaxPollers (2-2000, 10 batches each)",
        ),
        (None, Some(max)) => (
            max,
            "ProcessorMaxConcurrency (up to 1,000), then ProcessorMaxPollers",
        ),
        (None, None) => (
            limits::SQS_ESM_MAX.value,
            "ProcessorMaxPollers (provisioned mode: 10 batches per poller, up to 2,000 pollers)",
        ),
    };
    all.push(linear(
        rate,
        "sqs.processor-mapping",
        "processor's SQS mapping, concurrent batches",
        per.processor_concurrency,
        cap,
        "concurrent batches",
        Kind::Template,
        Effect::Delayed,
        lever,
        limits::SQS_ESM_MAX.source,
    ));
    all.push(linear(
        rate,
        "sqs.in-flight",
        "work queue, messages in flight",
        per.processor_seconds,
        limits::SQS_IN_FLIGHT.value,
        "messages",
        Kind::Quota,
        Effect::Delayed,
        "support request: SQS in-flight messages per queue",
        limits::SQS_IN_FLIGHT.source,
    ));
    // ---- the stream readers: per shard, ParallelizationFactor batches at once
    let shard_writes = limits::SHARD_WRITES_ASSUMED.value;
    for (id, name, per_record, records_per_order, parallel, parameter) in [
        (
            "stream.projector",
            "projector, per stream shard",
            per.projector_seconds_per_record,
            measured::RECORDS_PER_ORDER,
            config.projector_parallelization,
            "ProjectorParallelizationFactor (1-10)",
        ),
        (
            "stream.notifier",
            "notifier, per stream shard",
            per.notifier_seconds_per_record,
            measured::COMPLETIONS_PER_ORDER,
            config.notifier_parallelization,
            "NotifierParallelizationFactor (1-10)",
        ),
    ] {
        // A shard carries at most one partition's writes, of which these records are a share:
        // past that rate the stream has more shards, not fuller ones.
        let most_per_shard = shard_writes * records_per_order / measured::RECORDS_PER_ORDER;
        let per_shard = (records_per_order * rate).min(most_per_shard);
        let max = (most_per_shard * per_record > parallel)
            .then(|| parallel / per_record / records_per_order);
        all.push(finish(
            Check {
                id: id.to_owned(),
                resource: name.to_owned(),
                need: per_shard * per_record,
                limit: parallel,
                unit: "concurrent batches per shard",
                utilisation: 0.0,
                max_orders_per_second: max,
                below_rate: false,
                kind: Kind::Template,
                effect: Effect::Delayed,
                lever: parameter.to_owned(),
                source: limits::STREAM_PARALLELIZATION_MAX.source,
            },
            rate,
        ));
    }
    // ---- DynamoDB
    let stores = [
        Store {
            key: "events",
            name: "OrderEvents",
            writes: per.events_write_units,
            reads: Some(per.events_read_units),
            warm_write: config.events_warm_write,
            warm_read: config.events_warm_read,
            warm_write_parameter: "EventsWarmWriteUnits",
            warm_read_parameter: "EventsWarmReadUnits",
            write_effect: Effect::Refused,
        },
        Store {
            key: "status",
            name: "OrderStatus",
            writes: per.view_write_units,
            reads: Some(per.view_read_units),
            warm_write: config.status_warm_write,
            warm_read: config.status_warm_read,
            warm_write_parameter: "StatusWarmWriteUnits",
            warm_read_parameter: "StatusWarmReadUnits",
            write_effect: Effect::Delayed,
        },
        Store {
            key: "byCustomer",
            name: "OrderStatus index byCustomer",
            writes: per.by_customer_write_units,
            reads: None,
            warm_write: config.status_warm_write,
            warm_read: None,
            warm_write_parameter: "StatusWarmWriteUnits",
            warm_read_parameter: "StatusWarmReadUnits",
            write_effect: Effect::Delayed,
        },
        Store {
            key: "pending",
            name: "OrderStatus index pending",
            writes: per.pending_write_units,
            reads: None,
            warm_write: config.status_warm_write,
            warm_read: None,
            warm_write_parameter: "StatusWarmWriteUnits",
            warm_read_parameter: "StatusWarmReadUnits",
            write_effect: Effect::Delayed,
        },
    ];
    for store in &stores {
        let mut sides = vec![(
            "writes",
            store.writes,
            store.warm_write,
            limits::ON_DEMAND_NEW_WRITES.value,
            store.warm_write_parameter,
            config.on_demand_max_write,
            "OnDemandMaxWriteUnits",
            config.write_capacity_max,
            "WriteCapacityMax",
            store.write_effect,
        )];
        if let Some(reads) = store.reads {
            sides.push((
                "reads",
                reads,
                store.warm_read,
                limits::ON_DEMAND_NEW_READS.value,
                store.warm_read_parameter,
                config.on_demand_max_read,
                "OnDemandMaxReadUnits",
                config.read_capacity_max,
                "ReadCapacityMax",
                Effect::Delayed,
            ));
        }
        for (
            side,
            per_order,
            warm,
            new_table,
            warm_parameter,
            ceiling,
            ceiling_parameter,
            max,
            max_parameter,
            effect,
        ) in sides
        {
            let unit = if side == "writes" {
                "write units/s"
            } else {
                "read units/s"
            };
            let id = |what: &str| format!("dynamodb.{}.{side}.{what}", store.key);
            if config.provisioned {
                all.push(linear(
                    rate,
                    &id("provisioned-max"),
                    &format!("{} {side}, auto scaling maximum", store.name),
                    per_order,
                    max,
                    unit,
                    Kind::Template,
                    effect,
                    max_parameter,
                    "template.yaml (CapacityMode PROVISIONED)",
                ));
            } else {
                all.push(linear(
                    rate,
                    &id("warm"),
                    &format!(
                        "{} {side}, at once (warm throughput; doubles within 30 min)",
                        store.name
                    ),
                    per_order,
                    warm.unwrap_or(new_table),
                    unit,
                    Kind::Template,
                    effect,
                    warm_parameter,
                    limits::ON_DEMAND_NEW_WRITES.source,
                ));
                if let Some(ceiling) = ceiling {
                    all.push(linear(
                        rate,
                        &id("on-demand-max"),
                        &format!("{} {side}, on-demand ceiling", store.name),
                        per_order,
                        ceiling,
                        unit,
                        Kind::Template,
                        effect,
                        ceiling_parameter,
                        "template.yaml OnDemandThroughput",
                    ));
                }
            }
            all.push(linear(
                rate,
                &id("table-quota"),
                &format!("{} {side}, table quota", store.name),
                per_order,
                config.table_quota_units,
                unit,
                Kind::Quota,
                effect,
                "quota increase: DynamoDB table-level read/write throughput (TableQuotaUnits)",
                limits::TABLE_QUOTA.source,
            ));
        }
    }
    // Each `pendingShard` value is one key, so at most one partition's writes.
    all.push(linear(
        rate,
        "dynamodb.pending.writes.per-key",
        "OrderStatus index pending, one partition per pendingShard",
        per.pending_write_units,
        config.pending_shards * limits::PARTITION_WRITES.value,
        "write units/s",
        Kind::Code,
        Effect::Delayed,
        "PENDING_SHARDS in order-ports/src/aws/dynamo.rs (PendingShards; growing it is free, \
         ADR 6), or fewer pending writes with StreamBatchingWindowSeconds",
        limits::PARTITION_WRITES.source,
    ));
    // ---- SNS
    all.push(linear(
        rate,
        "sns.publish",
        "SNS messages published (us-east-1)",
        per.sns_messages,
        config.sns_publish_rate,
        "messages/s",
        Kind::Quota,
        Effect::Delayed,
        "quota increase: SNS Publish messages per second (SnsPublishRate; lower outside us-east-1)",
        limits::SNS_PUBLISH_US_EAST_1.source,
    ));
    all.sort_by(|a, b| {
        let key = |c: &Check| c.max_orders_per_second.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
    all
}

/// Limits that do not grow with the total rate but with one key's share of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerKey {
    pub id: &'static str,
    pub statement: String,
    pub max_orders_per_second_per_key: f64,
    pub source: &'static str,
}

pub fn per_key(per: &PerOrder) -> Vec<PerKey> {
    vec![PerKey {
        id: "dynamodb.byCustomer.hot-customer",
        statement: "one customerId is one key of the byCustomer index: one customer placing \
                    more orders than this per second throttles the index, and by back-pressure \
                    the projector's view writes (docs/scaling.md, the hot customer)"
            .to_owned(),
        max_orders_per_second_per_key: limits::PARTITION_WRITES.value / per.by_customer_write_units,
        source: limits::GSI_BACK_PRESSURE.source,
    }]
}

/// USD per 1,000,000 orders, by item, priced as scripts/cost.py prices them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    pub api: f64,
    pub lambda_requests: f64,
    pub lambda_gb_seconds: f64,
    pub dynamodb_writes: f64,
    pub dynamodb_reads: f64,
    pub sqs: f64,
    pub sns: f64,
    pub total: f64,
}

pub fn cost(config: &Config, per: &PerOrder, provisioned: bool) -> Cost {
    let million = 1e6;
    let wru = per.events_write_units
        + per.view_write_units
        + per.by_customer_write_units
        + per.pending_write_units;
    let rru = per.events_read_units + per.view_read_units;
    let gb_second_price = if config.arm64 {
        prices::LAMBDA_GB_SECOND_ARM
    } else {
        prices::LAMBDA_GB_SECOND_X86
    };
    let (dynamodb_writes, dynamodb_reads) = if provisioned {
        // A capacity unit-hour serves 3,600 unit-seconds; bought at 70%, 2,520 of them.
        let hour = 3_600.0 * prices::PROVISIONED_UTILISATION;
        (
            wru * prices::WCU_HOUR / hour * million,
            rru * prices::RCU_HOUR / hour * million,
        )
    } else {
        (wru * prices::WRU_PER_MILLION, rru * prices::RRU_PER_MILLION)
    };
    let mut cost = Cost {
        api: per.api_requests * prices::HTTP_API_PER_MILLION,
        lambda_requests: per.invocations * prices::LAMBDA_REQUESTS_PER_MILLION,
        lambda_gb_seconds: per.gb_seconds * gb_second_price * million,
        dynamodb_writes,
        dynamodb_reads,
        sqs: per.sqs_requests * prices::SQS_PER_MILLION,
        sns: per.sns_requests * prices::SNS_PUBLISH_PER_MILLION,
        total: 0.0,
    };
    cost.total = cost.api
        + cost.lambda_requests
        + cost.lambda_gb_seconds
        + cost.dynamodb_writes
        + cost.dynamodb_reads
        + cost.sqs
        + cost.sns;
    cost
}
