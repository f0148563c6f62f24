//! A Lambda event source mapping on a DynamoDB stream, as AWS documents it:
//! - one batch in flight per shard, or per lane of a shard with `ParallelizationFactor` — Lambda
//!   keeps records of one *item* (partition and sort key) in order, not of one partition key, so
//!   an order's events (one item per version) may be handled out of order across lanes
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>, "Concurrent reads of shards");
//! - up to `BatchSize` records per batch, gathered for up to `MaximumBatchingWindowInSeconds`;
//! - records that match none of the `FilterCriteria` are dropped, never handed over
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>);
//! - with `ReportBatchItemFailures`, a response naming failed records makes Lambda checkpoint
//!   before the *lowest* sequence number named and retry from it; an empty or unknown
//!   `itemIdentifier` fails the whole batch
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html>);
//! - a function error (an `Err`, a timeout) fails the whole batch; with
//!   `BisectBatchOnFunctionError` it is split in two and each half retried, and splitting does
//!   not count against `MaximumRetryAttempts`; a batch whose retries run out, or whose records are
//!   older than `MaximumRecordAgeInSeconds`, is discarded and described to the on-failure
//!   destination (<https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>,
//!   <https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html>).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;

use super::stream::{Stream, StreamRecord};
use super::template::{matches, StreamMappingSettings};

/// What one invocation of the function gave the mapping.
#[derive(Debug)]
pub enum Invocation {
    Response(DynamoDbEventResponse),
    /// The function failed as a whole: an error, a crash, a timeout.
    FunctionError,
}

/// Which lane of which shard a batch comes from.
pub type LaneId = (usize, usize);

/// What the mapping sends its on-failure destination for a discarded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    pub condition: &'static str,
    pub sequence_numbers: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Batch {
    start: usize,
    end: usize,
    attempts: u32,
}

#[derive(Debug, Default)]
struct Lane {
    records: Vec<Arc<StreamRecord>>,
    /// Everything before it is done (the checkpoint).
    next: usize,
    /// The batches to hand over, in order, contiguous from `next` (more than one after a split).
    batches: VecDeque<Batch>,
    /// A batch of this lane is with the function.
    in_flight: bool,
}

/// A batch ready to invoke the function with.
pub struct Ready {
    pub lane: LaneId,
    pub event: DynamoDbEvent,
    batch: Batch,
}

pub struct StreamMapping {
    pub settings: StreamMappingSettings,
    lanes: BTreeMap<LaneId, Lane>,
    /// Per shard, how many of its records were routed to lanes.
    routed: Vec<usize>,
    pub discarded: Vec<Discarded>,
    pub invocations: u64,
    pub function_errors: u64,
    pub filtered_out: u64,
}

impl StreamMapping {
    pub fn new(settings: StreamMappingSettings) -> Self {
        Self {
            settings,
            lanes: BTreeMap::new(),
            routed: Vec::new(),
            discarded: Vec::new(),
            invocations: 0,
            function_errors: 0,
            filtered_out: 0,
        }
    }

    fn route(&mut self, stream: &Stream) {
        self.routed.resize(stream.shards.len(), 0);
        let lanes = self.settings.parallelization_factor.max(1) as u64;
        for (shard, records) in stream.shards.iter().enumerate() {
            for record in &records[self.routed[shard]..] {
                let passes = self.settings.filters.is_empty()
                    || self
                        .settings
                        .filters
                        .iter()
                        .any(|f| matches(f, &record.json));
                if !passes {
                    self.filtered_out += 1;
                    continue;
                }
                let mut h = DefaultHasher::new();
                record.item_key.hash(&mut h);
                let lane = (h.finish() % lanes) as usize;
                self.lanes
                    .entry((shard, lane))
                    .or_default()
                    .records
                    .push(Arc::clone(record));
            }
            self.routed[shard] = records.len();
        }
    }

    /// Every lane's next batch, if it has one due at `now_ms`.
    pub fn ready(&mut self, stream: &Stream, now_ms: u64) -> Vec<Ready> {
        self.route(stream);
        let settings = self.settings.clone();
        let mut ready = Vec::new();
        for (&id, lane) in &mut self.lanes {
            if lane.in_flight {
                continue;
            }
            loop {
                if lane.batches.is_empty() {
                    let available = lane.records.len() - lane.next;
                    if available == 0 {
                        break;
                    }
                    let window = settings.batching_window.as_millis() as u64;
                    let waited = now_ms.saturating_sub(lane.records[lane.next].arrival_ms);
                    if available < settings.batch_size && waited < window {
                        break;
                    }
                    lane.batches.push_back(Batch {
                        start: lane.next,
                        end: lane.next + available.min(settings.batch_size),
                        attempts: 0,
                    });
                }
                let Some(&batch) = lane.batches.front() else {
                    break;
                };
                let too_old = settings.max_record_age.is_some_and(|age| {
                    now_ms.saturating_sub(lane.records[batch.start].arrival_ms)
                        > age.as_millis() as u64
                });
                if too_old {
                    discard(lane, &mut self.discarded, "MaxRecordAgeExceeded");
                    continue;
                }
                let records: Vec<&serde_json::Value> = lane.records[batch.start..batch.end]
                    .iter()
                    .map(|r| &r.json)
                    .collect();
                let event: DynamoDbEvent =
                    serde_json::from_value(serde_json::json!({ "Records": records }))
                        .expect("the harness writes records Lambda's event type reads");
                lane.in_flight = true;
                ready.push(Ready {
                    lane: id,
                    event,
                    batch,
                });
                break;
            }
        }
        ready
    }

    /// Applies what an invocation of `ready` gave, as the mapping does.
    pub fn complete(&mut self, ready: Ready, invocation: Invocation) {
        self.invocations += 1;
        let settings = self.settings.clone();
        let lane = self
            .lanes
            .get_mut(&ready.lane)
            .expect("a ready batch's lane");
        lane.in_flight = false;
        let batch = ready.batch;
        let failed_at = match invocation {
            Invocation::Response(response) if settings.report_batch_item_failures => {
                let mut lowest: Option<usize> = None;
                let mut whole_batch = false;
                for failure in &response.batch_item_failures {
                    let position = failure.item_identifier.as_deref().and_then(|id| {
                        lane.records[batch.start..batch.end]
                            .iter()
                            .position(|r| r.sequence_number == id)
                    });
                    match position {
                        Some(p) => lowest = Some(lowest.map_or(p, |l| l.min(p))),
                        None => whole_batch = true,
                    }
                }
                if whole_batch {
                    Err(())
                } else {
                    Ok(lowest.map(|p| batch.start + p))
                }
            }
            // Without ReportBatchItemFailures a response is a success, whatever it says.
            Invocation::Response(_) => Ok(None),
            Invocation::FunctionError => {
                self.function_errors += 1;
                Err(())
            }
        };
        match failed_at {
            Ok(None) => {
                lane.batches.pop_front();
                lane.next = batch.end;
            }
            Ok(Some(at)) => {
                lane.next = at;
                let retry = Batch {
                    start: at,
                    end: batch.end,
                    attempts: batch.attempts + 1,
                };
                *lane.batches.front_mut().expect("the batch in flight") = retry;
                if exhausted(&settings, retry.attempts) {
                    discard(lane, &mut self.discarded, "RetryAttemptsExhausted");
                }
            }
            Err(()) => {
                if settings.bisect_on_function_error && batch.end - batch.start > 1 {
                    let mid = batch.start + (batch.end - batch.start) / 2;
                    lane.batches.pop_front();
                    lane.batches.push_front(Batch {
                        start: mid,
                        end: batch.end,
                        attempts: batch.attempts,
                    });
                    lane.batches.push_front(Batch {
                        start: batch.start,
                        end: mid,
                        attempts: batch.attempts,
                    });
                } else {
                    let retry = Batch {
                        attempts: batch.attempts + 1,
                        ..batch
                    };
                    *lane.batches.front_mut().expect("the batch in flight") = retry;
                    if exhausted(&settings, retry.attempts) {
                        discard(lane, &mut self.discarded, "RetryAttemptsExhausted");
                    }
                }
            }
        }
    }

    /// Every record routed to a lane has been handed over for good (done or discarded).
    pub fn caught_up(&self, stream: &Stream) -> bool {
        self.routed.len() == stream.shards.len()
            && self
                .routed
                .iter()
                .zip(&stream.shards)
                .all(|(routed, shard)| *routed == shard.len())
            && self
                .lanes
                .values()
                .all(|l| l.batches.is_empty() && l.next == l.records.len())
    }
}

fn exhausted(settings: &StreamMappingSettings, attempts: u32) -> bool {
    settings
        .max_retry_attempts
        .is_some_and(|max| attempts > max)
}

/// Gives up the front batch: its records go to the on-failure destination, the checkpoint
/// moves past them.
fn discard(lane: &mut Lane, discarded: &mut Vec<Discarded>, condition: &'static str) {
    if let Some(batch) = lane.batches.pop_front() {
        discarded.push(Discarded {
            condition,
            sequence_numbers: lane.records[batch.start..batch.end]
                .iter()
                .map(|r| r.sequence_number.clone())
                .collect(),
        });
        lane.next = batch.end;
    }
}
