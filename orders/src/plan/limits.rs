//! Every number `orders plan` reasons with, in one place, each with where it comes from: AWS's
//! published limits (looked up in AWS's documentation, URL given), this service's measured
//! per-order work (BENCHMARKS.md, "Cost per order"), and the list prices `scripts/cost.py`
//! prices it with. Change a number here and the plan, its tests and docs/scaling.md's tables
//! follow; nothing else in the plan hard-codes one.

/// A published AWS limit or behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Fact {
    pub value: f64,
    pub unit: &'static str,
    pub statement: &'static str,
    pub source: &'static str,
}

/// A new on-demand table (and, by the same page, each new GSI) serves this many writes per
/// second at once.
pub const ON_DEMAND_NEW_WRITES: Fact = Fact {
    value: 4_000.0,
    unit: "write request units/s",
    statement: "New on-demand tables will be able to sustain up to 4,000 writes per second and \
                12,000 reads per second; default warm throughput of a new on-demand table (and \
                GSI): 12,000 read and 4,000 write units/s",
    source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html \
             (and the pre-warming page, https://docs.amazonaws.cn/en_us/amazondynamodb/latest/developerguide/pre-warming-on-demand-capacity-mode.html)",
};

pub const ON_DEMAND_NEW_READS: Fact = Fact {
    value: 12_000.0,
    unit: "read request units/s",
    statement: "New on-demand tables ... 12,000 reads per second",
    source: ON_DEMAND_NEW_WRITES.source,
};

/// On demand doubles: throttling can occur above twice the previous peak within 30 minutes.
pub const ON_DEMAND_DOUBLING_SECONDS: Fact = Fact {
    value: 1_800.0,
    unit: "s",
    statement: "The table won't be throttled if it doesn't exceed twice its previous peak \
                traffic; throttling can occur if the throughput exceeds twice the previous peak \
                within the same 30 minutes",
    source: "https://docs.amazonaws.cn/en_us/amazondynamodb/latest/developerguide/pre-warming-on-demand-capacity-mode.html; \
             https://repost.aws/knowledge-center/on-demand-table-throttling-dynamodb",
};

/// One partition (of a table or of a GSI) takes at most this many writes per second.
pub const PARTITION_WRITES: Fact = Fact {
    value: 1_000.0,
    unit: "write units/s",
    statement: "each individual partition is limited to 1,000 write units per second and 3,000 \
                read units per second",
    source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html",
};

pub const PARTITION_READS: Fact = Fact {
    value: 3_000.0,
    unit: "read units/s",
    statement: PARTITION_WRITES.statement,
    source: PARTITION_WRITES.source,
};

/// A GSI short of write capacity throttles the writes to its base table.
pub const GSI_BACK_PRESSURE: Fact = Fact {
    value: 1.0,
    unit: "",
    statement: "When a GSI has insufficient write capacity, throttling results in write \
                operations that fail on the base table or any of its GSIs",
    source:
        "https://aws.amazon.com/premiumsupport/knowledge-center/dynamodb-gsi-throttling-table/; \
             https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/gsi-throttling.html",
};

/// The account's default per-table throughput quota (on demand: request units/s per table).
pub const TABLE_QUOTA: Fact = Fact {
    value: 40_000.0,
    unit: "request units/s per table",
    statement: "By default ... your on-demand throughput rate is bounded by 40,000 table-level \
                read and write throughput AWS service quota ... you can request an increase",
    source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html; \
             https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html",
};

/// Lambda's ParallelizationFactor on a stream mapping: 1 (default) to 10.
pub const STREAM_PARALLELIZATION_MAX: Fact = Fact {
    value: 10.0,
    unit: "concurrent batches per shard",
    statement: "ParallelizationFactor: default 1, maximum 10 (the number of batches to process \
                concurrently from each shard)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html",
};

/// At most two processes should read one stream shard.
pub const STREAM_READERS_PER_SHARD: Fact = Fact {
    value: 2.0,
    unit: "readers per shard",
    statement: "More than 2 processes are reading from the same streams shard at the same time. \
                Exceeding this limit may result in request throttling (LimitExceededException)",
    source: "https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/dynamodb/aws.sdk.kotlin.services.dynamodb.model/-limit-exceeded-exception",
};

/// NOT documented: DynamoDB does not publish how many stream shards a table has. The plan
/// assumes one per partition, i.e. one per 1,000 writes/s (`DescribeStream` shows the truth).
pub const SHARD_WRITES_ASSUMED: Fact = Fact {
    value: PARTITION_WRITES.value,
    unit: "writes/s per stream shard (assumed)",
    statement: "ASSUMPTION: one stream shard per table partition; the search of AWS's \
                documentation found no published shard count",
    source: "none found (see PARTITION_WRITES)",
};

/// How often Lambda reads a stream shard when it is not busy: the most a batch without a
/// batching window gathers is what a shard carries in a quarter second.
pub const STREAM_POLLS_PER_SECOND: Fact = Fact {
    value: 4.0,
    unit: "polls per second per shard",
    statement: "ASSUMPTION: Lambda polls each DynamoDB stream shard at a base rate of 4 times a \
                second (as AWS's Lambda guide says; the search did not find the sentence, so it \
                is marked here as an assumption)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html (not found by the search)",
};

/// Lambda's SQS mapping, standard mode.
pub const SQS_ESM_START: Fact = Fact {
    value: 5.0,
    unit: "concurrent batches",
    statement: "Lambda starts processing five batches at a time with five concurrent \
                invocations",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html",
};

pub const SQS_ESM_RAMP_PER_MINUTE: Fact = Fact {
    value: 300.0,
    unit: "concurrent batches per minute",
    statement: "Lambda increases the number of processes that are reading batches by up to 300 \
                more instances per minute",
    source: SQS_ESM_START.source,
};

pub const SQS_ESM_MAX: Fact = Fact {
    value: 1_000.0,
    unit: "concurrent batches",
    statement: "The maximum number of batches that an event source mapping can process \
                simultaneously is 1,000 (ScalingConfig.MaximumConcurrency: 2 to 1,000). \
                (The Chinese edition of the same page says 1,250; the English one is used.)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html; \
             https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-eventsourcemapping-scalingconfig.html",
};

/// Provisioned mode of the SQS mapping: per poller, up to 10 concurrent invocations; the mapping
/// scales by up to 1,000 concurrency a minute; 2 to 2,000 pollers.
pub const SQS_POLLER_INVOCATIONS: Fact = Fact {
    value: 10.0,
    unit: "concurrent invocations per poller",
    statement: "With provisioned mode, each event poller can handle up to 1 MB/s of throughput, \
                up to 10 concurrent invokes ... scaling concurrency by up to 1,000 per minute; \
                MaximumPollers 1-2000 (SQS: at least 2)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html (per-poller \
             figures read on its mirror https://docs.amazonaws.cn/lambda/latest/dg/services-sqs-scaling.md); \
             https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-eventsourcemapping-provisionedpollerconfig.html",
};

pub const SQS_POLLER_RAMP_PER_MINUTE: Fact = Fact {
    value: 1_000.0,
    unit: "concurrency per minute",
    statement: SQS_POLLER_INVOCATIONS.statement,
    source: SQS_POLLER_INVOCATIONS.source,
};

/// A standard queue holds at most about this many messages in flight.
pub const SQS_IN_FLIGHT: Fact = Fact {
    value: 120_000.0,
    unit: "messages in flight",
    statement: "For most standard queues ... a maximum of approximately 120,000 in flight \
                messages; to request a quota increase, submit a support request. (Standard \
                queues support a nearly unlimited number of API calls per second.)",
    source: "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html; \
             https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/DistributedQueues.html",
};

/// Lambda's default concurrency quota, shared by every function of the account and Region.
pub const LAMBDA_ACCOUNT_CONCURRENCY: Fact = Fact {
    value: 1_000.0,
    unit: "concurrent executions",
    statement: "Concurrent executions: default quota 1,000, can be increased up to tens of \
                thousands",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html",
};

/// Each function adds at most 1,000 execution environments every 10 seconds.
pub const LAMBDA_SCALING_PER_10S: Fact = Fact {
    value: 1_000.0,
    unit: "environments per 10 s per function",
    statement: "for each function, your concurrency scaling rate is 1,000 execution environment \
                instances every 10 seconds (or 10,000 requests per second every 10 seconds)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html",
};

/// ... which is also 10 requests per second per environment.
pub const LAMBDA_REQUESTS_PER_ENVIRONMENT: Fact = Fact {
    value: 10.0,
    unit: "requests/s per execution environment",
    statement: "1,000 execution environment instances ... or 10,000 requests per second: an \
                environment serves at most 10 requests per second, however short they are",
    source: LAMBDA_SCALING_PER_10S.source,
};

/// API Gateway's account throttle per Region (HTTP, REST and WebSocket APIs together).
pub const API_ACCOUNT_RATE: Fact = Fact {
    value: 10_000.0,
    unit: "requests/s",
    statement: "Throttle quota per account, per Region across HTTP APIs, REST APIs, WebSocket \
                APIs: 10,000 requests per second (can be increased), burst bucket of 5,000 \
                (set by the service team from the rate quota)",
    source: "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html",
};

pub const API_ACCOUNT_BURST: Fact = Fact {
    value: 5_000.0,
    unit: "requests",
    statement: API_ACCOUNT_RATE.statement,
    source: "https://docs.amazonaws.cn/en_us/apigateway/latest/developerguide/limits.md",
};

/// SNS messages published per second per account in us-east-1 (Publish and PublishBatch
/// messages together; other Regions are lower: 9,000, 1,500 or 300).
pub const SNS_PUBLISH_US_EAST_1: Fact = Fact {
    value: 30_000.0,
    unit: "messages/s",
    statement: "Publish API throttling per account, US East (N. Virginia): 30,000 messages per \
                second (standard topics), counting Publish and PublishBatch messages; soft",
    source: "https://docs.aws.amazon.com/general/latest/gr/sns.html",
};

/// Every published limit and assumption above, by name: `orders plan --json` lists them with
/// their sources.
pub const ALL: [(&str, Fact); 25] = [
    ("ON_DEMAND_NEW_WRITES", ON_DEMAND_NEW_WRITES),
    ("ON_DEMAND_NEW_READS", ON_DEMAND_NEW_READS),
    ("ON_DEMAND_DOUBLING_SECONDS", ON_DEMAND_DOUBLING_SECONDS),
    ("PARTITION_WRITES", PARTITION_WRITES),
    ("PARTITION_READS", PARTITION_READS),
    ("GSI_BACK_PRESSURE", GSI_BACK_PRESSURE),
    ("TABLE_QUOTA", TABLE_QUOTA),
    ("STREAM_PARALLELIZATION_MAX", STREAM_PARALLELIZATION_MAX),
    ("STREAM_READERS_PER_SHARD", STREAM_READERS_PER_SHARD),
    ("SHARD_WRITES_ASSUMED", SHARD_WRITES_ASSUMED),
    ("STREAM_POLLS_PER_SECOND", STREAM_POLLS_PER_SECOND),
    ("SQS_ESM_START", SQS_ESM_START),
    ("SQS_ESM_RAMP_PER_MINUTE", SQS_ESM_RAMP_PER_MINUTE),
    ("SQS_ESM_MAX", SQS_ESM_MAX),
    ("SQS_POLLER_INVOCATIONS", SQS_POLLER_INVOCATIONS),
    ("SQS_POLLER_RAMP_PER_MINUTE", SQS_POLLER_RAMP_PER_MINUTE),
    ("SQS_IN_FLIGHT", SQS_IN_FLIGHT),
    ("LAMBDA_ACCOUNT_CONCURRENCY", LAMBDA_ACCOUNT_CONCURRENCY),
    ("LAMBDA_SCALING_PER_10S", LAMBDA_SCALING_PER_10S),
    ("LAMBDA_REQUESTS_PER_ENVIRONMENT", LAMBDA_REQUESTS_PER_ENVIRONMENT),
    ("API_ACCOUNT_RATE", API_ACCOUNT_RATE),
    ("API_ACCOUNT_BURST", API_ACCOUNT_BURST),
    ("SNS_PUBLISH_US_EAST_1", SNS_PUBLISH_US_EAST_1),
    ("ORDER_LIFE_SECONDS", Fact {
        value: ORDER_LIFE_SECONDS,
        unit: "s",
        statement: "an order's life from OrderReceived to its last event (template.yaml, StreamBatchingWindowSeconds)",
        source: "template.yaml; BENCHMARKS.md, Cost per order",
    }),
    ("PROCESSOR_ROUND", Fact {
        value: PROCESSOR_ROUND,
        unit: "orders at once",
        statement: "LOAD_CONCURRENCY, APPEND_CONCURRENCY and UPSERT_CONCURRENCY of order-ports' DynamoDB stores",
        source: "order-ports/src/aws/dynamo.rs",
    }),
];

/// The `pending` index's partition key takes this many values (`pendingShard`), each one a key
/// of its own and so at most one partition's writes.
pub const PENDING_SHARDS: f64 = order_adapters_aws::PENDING_SHARDS as f64;

/// The processor, the projector and the notifier load, append or upsert at most this many
/// orders of a batch at once (`LOAD_CONCURRENCY`, `APPEND_CONCURRENCY`, `UPSERT_CONCURRENCY` in
/// order-ports' DynamoDB stores): a batch with more orders takes another round.
pub const PROCESSOR_ROUND: f64 = 32.0;

/// How long an order takes from `OrderReceived` to its last event (template.yaml,
/// StreamBatchingWindowSeconds: "about 1-2 s"): a stream batching window longer than this puts
/// most of an order's three events in one projector batch.
pub const ORDER_LIFE_SECONDS: f64 = 1.5;

/// What the service does per order, measured: BENCHMARKS.md, "Cost per order", the
/// `scripts/cost.py price` output of the 2026-11-30 run (300 orders from 16 clients on the
/// emulator, default template, 128 MB): "WRU 8.48 RRU 6.48 SQS 1.20 SNS 0.110 API 1", the WRU
/// and RRU by table and index, and each function's invocations and GB-ms per order.
pub mod measured {
    pub const SOURCE: &str =
        "BENCHMARKS.md, Cost per order: scripts/cost.py price, 300 orders from 16 clients (2026-11-30)";
    /// Write request units per order.
    pub const EVENTS_WRU: f64 = 3.0;
    pub const VIEW_WRU: f64 = 2.48;
    pub const BY_CUSTOMER_WRU: f64 = 1.0;
    pub const PENDING_WRU: f64 = 2.0;
    /// Read request units per order (strongly consistent reads of items under 4 KB).
    pub const EVENTS_RRU: f64 = 4.0;
    pub const VIEW_RRU: f64 = 2.48;
    /// Billed requests per order (a 64 KB chunk each): one SendMessage plus Lambda's polling.
    pub const SQS_REQUESTS: f64 = 1.20;
    /// PublishBatch requests per order (10 messages each).
    pub const SNS_REQUESTS: f64 = 0.110;
    /// Messages published per order: one per OrderCompleted (every order here completes).
    pub const SNS_MESSAGES: f64 = 1.0;
    pub const API_REQUESTS: f64 = 1.0;
    /// The memory every function had in the run (MB): GB-s scale with MemorySize from it.
    pub const MEMORY_MB: f64 = 128.0;
    /// Invocations per order and GB-ms per order, per function.
    pub const INGEST: (f64, f64) = (1.000, 12.239);
    pub const PROCESSOR: (f64, f64) = (0.100, 4.164);
    pub const PROJECTOR: (f64, f64) = (0.107, 2.113);
    pub const NOTIFIER: (f64, f64) = (0.083, 1.179);
    /// Stream records per order the projector sees (its filter takes every INSERT).
    pub const RECORDS_PER_ORDER: f64 = 3.0;
    /// Stream records per order the notifier sees (its filter takes only OrderCompleted).
    pub const COMPLETIONS_PER_ORDER: f64 = 1.0;
    /// The processor's SQS batch in that run (ProcessorBatchSize default).
    pub const PROCESSOR_BATCH: f64 = 10.0;
}

/// `scripts/cost.py`'s `ESTIMATED_MS` (BENCHMARKS.md, "the ESTIMATED lines"): what each
/// invocation would take on AWS at ~5 ms per DynamoDB call and ~10 ms per SQS/SNS call plus
/// 2 ms. An assumption, not a measurement; `--durations estimated` uses it.
pub mod estimated_ms {
    pub const SOURCE: &str =
        "BENCHMARKS.md, Cost per order: scripts/cost.py ESTIMATED_MS (an assumption)";
    pub const INGEST: f64 = 17.0;
    pub const PROCESSOR: f64 = 27.0;
    pub const PROJECTOR: f64 = 12.0;
    pub const NOTIFIER: f64 = 17.0;
}

/// List prices, us-east-1, as `scripts/cost.py` `PRICES` has them (dated 2026-11-30), so the
/// plan's cost is BENCHMARKS.md's. The search of AWS's pages found only third-party copies of
/// these prices (e.g. DynamoDB on demand 0.625 $ / 0.125 $ per million); the pages they come
/// from are https://aws.amazon.com/api-gateway/pricing/, https://aws.amazon.com/lambda/pricing/,
/// https://aws.amazon.com/dynamodb/pricing/, https://aws.amazon.com/sqs/pricing/ and
/// https://aws.amazon.com/sns/pricing/.
pub mod prices {
    pub const SOURCE: &str = "scripts/cost.py PRICES (us-east-1 list prices of 2026-11-30)";
    pub const HTTP_API_PER_MILLION: f64 = 1.00;
    pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
    pub const LAMBDA_GB_SECOND_X86: f64 = 0.000_016_666_7;
    pub const LAMBDA_GB_SECOND_ARM: f64 = 0.000_013_333_4;
    pub const WRU_PER_MILLION: f64 = 0.625;
    pub const RRU_PER_MILLION: f64 = 0.125;
    pub const WCU_HOUR: f64 = 0.000_65;
    pub const RCU_HOUR: f64 = 0.000_13;
    pub const SQS_PER_MILLION: f64 = 0.40;
    pub const SNS_PUBLISH_PER_MILLION: f64 = 0.50;
    /// The template's target tracking utilisation: provisioned capacity is bought at 70%.
    pub const PROVISIONED_UTILISATION: f64 = 0.70;
}
