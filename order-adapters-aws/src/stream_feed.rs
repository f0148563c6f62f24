//! A [`Feed`] on the event table's DynamoDB stream (feature `stream-feed`), for `orders serve
//! --backend aws`: the same consumer loop and handlers as the SQLite feed, without deploying the
//! stream Lambdas.
//!
//! How it reads the stream:
//!
//! * `DescribeStream` (paginated) lists the shards; it is repeated every
//!   [`DESCRIBE_EVERY`] and as soon as a shard is exhausted, to find its children.
//! * A shard is read only once its parent is exhausted (or is no longer in the stream's
//!   description, i.e. trimmed), so the records of one partition keep their order across a
//!   shard split. Ready shards are read round-robin, one `GetRecords` (up to 1000 records) per
//!   poll.
//! * `GetShardIterator`: from the durable checkpoint (`AFTER_SEQUENCE_NUMBER`), else
//!   `TRIM_HORIZON` (or `LATEST`, see below); `AT_SEQUENCE_NUMBER` of a record whose handling
//!   failed transiently, so it is delivered again. `GetRecords` returning no
//!   `NextShardIterator` means the shard is closed and fully read.
//! * Only `INSERT` records are events (the log is append-only); their `NewImage` is decoded with
//!   [`EventEnvelope::from_item`], exactly as the Lambdas do.
//!
//! Positions are durable ([`StreamCheckpoints`], a local SQLite file): every
//! [`commit`](Feed::commit) saves the shard's last handled sequence number, and [`open`]
//! resumes each shard after it, so a restart neither replays the stream nor skips a record.
//! A consumer that has never run on the stream starts where `open` is told (`serve`: the
//! projector at `TRIM_HORIZON`, the notifier at `LATEST` — taken before the API accepts
//! requests); from its second start on, a shard without a checkpoint (new, or where nothing was
//! handled yet) is read from `TRIM_HORIZON`. For a consumer that first started at `LATEST`, that
//! read skips the records created before its first start (minus [`CLOCK_MARGIN`]), so it never
//! delivers what it was told to ignore, and never loses what came after.
//!
//! Read errors keep the place. A `GetRecords` that fails on throttling, a 5xx or the network
//! keeps the shard iterator (a failed read does not consume it) and the next poll of that shard
//! tries it again. `ExpiredIteratorException` acquires a new one from the checkpoint.
//! `TrimmedDataAccessException` (from either call: the checkpoint is older than the stream's 24
//! hours) is logged at error level — records were lost to this consumer — and the shard resumes
//! at `TRIM_HORIZON`.
//!
//! [`open`]: StreamFeed::open

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use events_schema::EventEnvelope;

use super::service_code;
use super::stream_checkpoints::{Registration, StartAt, StreamCheckpoints};
use order_ports::feed::{Feed, FeedRecord};
use order_ports::poison::RecordRef;
use order_ports::{SetAside, StoreError};

/// How often the shard list is refreshed when no shard has been exhausted.
pub const DESCRIBE_EVERY: Duration = Duration::from_secs(10);
/// `GetRecords`' maximum.
const RECORDS_PER_CALL: i32 = 1000;
/// Pause after an empty `GetRecords`: DynamoDB allows about 5 reads per second per shard, shared
/// by every reader (here the projector and the notifier).
const IDLE_POLL: Duration = Duration::from_millis(400);
/// How far this host's clock may be ahead of DynamoDB's when a consumer first started at
/// `LATEST` skips the records created before it: records of this margin before the first start
/// may be delivered (at least once), none after it is lost.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(60);
/// How long a write may take to show up in the stream: a draining consumer stops only after
/// its polls have brought nothing for this long.
const STREAM_SETTLE: Duration = Duration::from_secs(2);

/// A record's place in the stream: its shard and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    pub shard_id: String,
    pub sequence_number: String,
}

impl std::fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.shard_id, self.sequence_number)
    }
}

/// Where to (re)acquire a shard iterator. `Latest` is only used when a consumer first opens the
/// stream: once that iterator is taken, the shard's resume point is `TrimHorizon` (filtered by
/// `skip_before`) until a record is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resume {
    TrimHorizon,
    Latest,
    At(String),
    After(String),
}

#[derive(Debug)]
struct Shard {
    parent: Option<String>,
    resume: Resume,
    iterator: Option<String>,
    /// `GetRecords` returned no next iterator: closed, and every record was polled.
    exhausted: bool,
}

/// What a poll does after a failed `GetRecords` (see [`Shard::after_read_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterReadError {
    /// The iterator expired: a new one is taken from the resume point on the next poll.
    Reacquire,
    /// The resume point is older than the stream: resume at the trim horizon (records lost).
    Trimmed,
    /// The shard is gone: the next poll's `GetShardIterator` finds out and retires it.
    Gone,
    /// Throttling, a 5xx, the network: the same iterator is tried again on the next poll.
    Retry,
}

/// What `GetShardIterator` found.
#[derive(Debug, PartialEq, Eq)]
enum Acquired {
    Iterator(String),
    /// The shard no longer exists.
    Gone,
    /// The requested sequence number is older than the stream's retention.
    Trimmed,
}

impl Shard {
    /// The state transition after a failed `GetRecords`, by the service's error code (`None`
    /// for errors that never reached the service: timeouts, connection failures).
    fn after_read_error(&mut self, code: Option<&str>) -> AfterReadError {
        match code {
            Some("ExpiredIteratorException") => {
                self.iterator = None;
                AfterReadError::Reacquire
            }
            Some("TrimmedDataAccessException") => {
                self.iterator = None;
                self.resume = Resume::TrimHorizon;
                AfterReadError::Trimmed
            }
            Some("ResourceNotFoundException") => {
                self.iterator = None;
                AfterReadError::Gone
            }
            // A failed read does not consume the iterator: keep it, and with it the place.
            _ => AfterReadError::Retry,
        }
    }
}

/// One consumer's reader of a DynamoDB stream, with durable positions (see the module docs).
pub struct StreamFeed {
    client: Client,
    stream_arn: String,
    consumer: &'static str,
    shards: BTreeMap<String, Shard>,
    next_describe: Instant,
    /// The shard id read last, for round-robin.
    last_read: Option<String>,
    checkpoints: StreamCheckpoints,
    /// Records created before this (Unix seconds) are not delivered: set when the consumer first
    /// started at `LATEST`.
    skip_before: Option<i64>,
    /// Where records the consumer can never handle are set aside
    /// ([`with_set_aside`](StreamFeed::with_set_aside)); without it they are only logged.
    set_aside: Option<Arc<dyn SetAside>>,
    /// The table keys (`orderId`, `version`) of the undecodable records of the last poll, by
    /// sequence number: what names them when they are set aside.
    undecodable_keys: HashMap<String, (Option<String>, Option<u64>)>,
}

impl StreamFeed {
    /// Lists the shards and resumes each after `consumer`'s checkpoint in `checkpoints`. A
    /// consumer that has never run on this stream starts at `first_start` and is registered; for
    /// [`StartAt::Latest`] the `LATEST` iterator of every open shard is taken now, so that every
    /// record written after this returns is delivered. `config` is the process's SDK
    /// configuration ([`sdk_config`](super::sdk_config)).
    ///
    /// Errors: `Unavailable` if the stream cannot be described (missing, access denied, down) or
    /// the checkpoint file cannot be read or written; `Corrupt` if it is not a checkpoint file.
    pub async fn open(
        config: &SdkConfig,
        stream_arn: impl Into<String>,
        consumer: &'static str,
        first_start: StartAt,
        checkpoints: StreamCheckpoints,
    ) -> Result<Self, StoreError> {
        let stream_arn = stream_arn.into();
        let registration = checkpoints.registration(&stream_arn, consumer).await?;
        let saved = checkpoints.load(&stream_arn, consumer).await?;
        let now = chrono::Utc::now().timestamp();
        let (start, registered) = match registration {
            Some(registration) => (StartAt::TrimHorizon, registration),
            None => (
                first_start,
                Registration {
                    first_start,
                    registered_at: now,
                },
            ),
        };
        let mut feed = StreamFeed {
            client: Client::new(config),
            stream_arn,
            consumer,
            shards: BTreeMap::new(),
            next_describe: Instant::now(),
            last_read: None,
            checkpoints,
            skip_before: skip_before(registered),
            set_aside: None,
            undecodable_keys: HashMap::new(),
        };
        feed.describe(start).await?;
        let resumed = feed.resume_from(&saved);
        let ids: Vec<String> = feed.shards.keys().cloned().collect();
        for id in ids {
            let wanted = feed
                .shards
                .get(&id)
                .is_some_and(|s| s.resume == Resume::Latest && !s.exhausted);
            if wanted {
                let acquired = feed.shard_iterator(&id, &Resume::Latest).await?;
                if let Some(shard) = feed.shards.get_mut(&id) {
                    shard.iterator = match acquired {
                        Acquired::Iterator(iterator) => Some(iterator),
                        Acquired::Gone | Acquired::Trimmed => None,
                    };
                    shard.resume = Resume::TrimHorizon;
                }
            }
        }
        if registration.is_none() {
            feed.checkpoints
                .register(&feed.stream_arn, consumer, registered)
                .await?;
        }
        tracing::info!(consumer, stream = %feed.stream_arn, shards = feed.shards.len(), resumed,
            first_run = registration.is_none(), ?start, checkpoints = %feed.checkpoints.path().display(),
            "stream feed opened");
        Ok(feed)
    }

    /// Sets aside in `to` (the stream failure queue) each record the consumer can never handle —
    /// it does not decode, or the consumer fails it permanently — as the stream Lambdas do: one
    /// [`SetAsideRecord`](order_ports::SetAsideRecord) with the record's sequence number, this stream's
    /// ARN, its table keys and the reason ([`catch_up_once`](order_ports::feed::catch_up_once)). If the
    /// send fails, the record is delivered again. Without it such records are only logged.
    pub fn with_set_aside(mut self, to: Arc<dyn SetAside>) -> Self {
        self.set_aside = Some(to);
        self
    }

    /// Points every known shard with a saved position after it; returns how many.
    fn resume_from(&mut self, saved: &BTreeMap<String, String>) -> usize {
        let mut resumed = 0;
        for (id, sequence_number) in saved {
            if let Some(shard) = self.shards.get_mut(id) {
                shard.resume = Resume::After(sequence_number.clone());
                shard.exhausted = false;
                resumed += 1;
            }
        }
        resumed
    }

    /// Refreshes the shard list. Shards seen for the first time start at `start`, except that a
    /// closed shard started at `LATEST` has nothing left to deliver and counts as exhausted.
    async fn describe(&mut self, start: StartAt) -> Result<(), StoreError> {
        let mut listed = Vec::new();
        let mut exclusive_start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(exclusive_start.take())
                .send()
                .await
                .map_err(|e| unavailable("DescribeStream", &e))?;
            let Some(description) = out.stream_description else {
                break;
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                let closed = shard
                    .sequence_number_range
                    .as_ref()
                    .is_some_and(|r| r.ending_sequence_number.is_some());
                listed.push((id, shard.parent_shard_id, closed));
            }
            match description.last_evaluated_shard_id {
                Some(last) => exclusive_start = Some(last),
                None => break,
            }
        }
        let listed_ids: Vec<&String> = listed.iter().map(|(id, _, _)| id).collect();
        // Forget exhausted shards that have been trimmed from the stream.
        self.shards
            .retain(|id, shard| !shard.exhausted || listed_ids.contains(&id));
        for (id, parent, closed) in listed {
            if self.shards.contains_key(&id) {
                continue;
            }
            let (resume, exhausted) = match start {
                StartAt::TrimHorizon => (Resume::TrimHorizon, false),
                StartAt::Latest => (Resume::Latest, closed),
            };
            tracing::debug!(consumer = self.consumer, shard = %id, ?parent, ?resume, "new shard");
            self.shards.insert(
                id,
                Shard {
                    parent,
                    resume,
                    iterator: None,
                    exhausted,
                },
            );
        }
        self.next_describe = Instant::now() + DESCRIBE_EVERY;
        Ok(())
    }

    /// A shard is ready when it has records left and its parent (if we know it) is exhausted.
    fn is_ready(&self, id: &str) -> bool {
        let Some(shard) = self.shards.get(id) else {
            return false;
        };
        !shard.exhausted
            && shard
                .parent
                .as_ref()
                .and_then(|p| self.shards.get(p))
                .is_none_or(|parent| parent.exhausted)
    }

    /// The next ready shard after the one read last.
    fn next_shard(&self) -> Option<String> {
        let ready: Vec<&String> = self.shards.keys().filter(|id| self.is_ready(id)).collect();
        let after = self.last_read.as_ref();
        ready
            .iter()
            .find(|id| after.is_some_and(|last| **id > last))
            .or_else(|| ready.first())
            .map(|id| (*id).clone())
    }

    async fn shard_iterator(
        &self,
        shard_id: &str,
        resume: &Resume,
    ) -> Result<Acquired, StoreError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        let request = match resume {
            Resume::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Resume::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Resume::At(seq) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(seq),
            Resume::After(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
        };
        match request.send().await {
            Ok(out) => Ok(out
                .shard_iterator
                .map_or(Acquired::Gone, Acquired::Iterator)),
            Err(e) => match service_code(&e) {
                Some("ResourceNotFoundException") => Ok(Acquired::Gone),
                Some("TrimmedDataAccessException") => Ok(Acquired::Trimmed),
                _ => Err(unavailable("GetShardIterator", &e)),
            },
        }
    }

    /// The record as a feed record, with its approximate creation time (Unix seconds) when the
    /// stream gives one and, when it does not decode, its table keys; `None` for records that
    /// are not events.
    fn decode(shard_id: &str, record: Record) -> Option<Decoded> {
        if record.event_name != Some(OperationType::Insert) {
            // The log is append-only; anything else is not an event of ours.
            return None;
        }
        let change = record.dynamodb?;
        let sequence_number = change.sequence_number?;
        let created = change.approximate_creation_date_time.map(|t| t.secs());
        // The table keys, in case the image does not decode: `Keys`, else the image's
        // attributes of the same names (two short strings, read before the image is consumed).
        let read = |name: &str| {
            change
                .keys
                .as_ref()
                .and_then(|k| k.get(name))
                .or_else(|| change.new_image.as_ref().and_then(|i| i.get(name)))
        };
        let order_id = read("orderId").and_then(|v| v.as_s().ok()).cloned();
        let version = read("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok());
        let event = match change.new_image {
            Some(image) => {
                EventEnvelope::from_item(serde_dynamo::Item::from(image)).map_err(|e| e.to_string())
            }
            None => Err("INSERT record without a NewImage (stream view type?)".to_owned()),
        };
        let keys = event.is_err().then_some((order_id, version));
        Some(Decoded {
            record: FeedRecord {
                position: StreamPosition {
                    shard_id: shard_id.to_owned(),
                    sequence_number,
                },
                event,
            },
            created,
            keys,
        })
    }
}

/// A stream record read by [`StreamFeed::decode`].
struct Decoded {
    record: FeedRecord<StreamPosition>,
    /// `ApproximateCreationDateTime`, Unix seconds.
    created: Option<i64>,
    /// `orderId` and `version` of an undecodable record, as far as they are readable.
    keys: Option<(Option<String>, Option<u64>)>,
}

impl Feed for StreamFeed {
    type Position = StreamPosition;

    async fn poll(&mut self) -> Result<Vec<FeedRecord<StreamPosition>>, StoreError> {
        if Instant::now() >= self.next_describe {
            // Shards found from now on are new: read them from their start.
            self.describe(StartAt::TrimHorizon).await?;
        }
        let Some(shard_id) = self.next_shard() else {
            return Ok(Vec::new());
        };
        self.last_read = Some(shard_id.clone());
        let (iterator, resume) = match self.shards.get(&shard_id) {
            Some(shard) => (shard.iterator.clone(), shard.resume.clone()),
            None => return Ok(Vec::new()),
        };
        let iterator = match iterator {
            Some(iterator) => iterator,
            None => match self.shard_iterator(&shard_id, &resume).await? {
                Acquired::Iterator(iterator) => iterator,
                Acquired::Gone => {
                    tracing::warn!(consumer = self.consumer, shard = %shard_id, "shard no longer exists");
                    if let Some(shard) = self.shards.get_mut(&shard_id) {
                        shard.exhausted = true;
                    }
                    self.next_describe = Instant::now();
                    return Ok(Vec::new());
                }
                Acquired::Trimmed => {
                    tracing::error!(consumer = self.consumer, shard = %shard_id, ?resume,
                        "the checkpoint is older than the stream (24 h): the records between were lost to this consumer; resuming at the trim horizon");
                    if let Some(shard) = self.shards.get_mut(&shard_id) {
                        shard.resume = Resume::TrimHorizon;
                    }
                    return Ok(Vec::new());
                }
            },
        };

        let result = self
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(RECORDS_PER_CALL)
            .send()
            .await;
        let Some(shard) = self.shards.get_mut(&shard_id) else {
            return Ok(Vec::new());
        };
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let code = service_code(&e);
                return match shard.after_read_error(code) {
                    AfterReadError::Reacquire | AfterReadError::Gone => Ok(Vec::new()),
                    AfterReadError::Trimmed => {
                        tracing::error!(consumer = self.consumer, shard = %shard_id, ?resume,
                            "records past the checkpoint were trimmed from the stream (older than 24 h); resuming at the trim horizon");
                        Ok(Vec::new())
                    }
                    AfterReadError::Retry => Err(unavailable("GetRecords", &e)),
                };
            }
        };
        shard.iterator = out.next_shard_iterator;
        if shard.iterator.is_none() {
            shard.exhausted = true;
            // Its children may be ready now.
            self.next_describe = Instant::now();
        }
        let mut delivered = Vec::new();
        let mut last_skipped = None;
        self.undecodable_keys.clear();
        for record in out.records.unwrap_or_default() {
            let Some(Decoded {
                record,
                created,
                keys,
            }) = Self::decode(&shard_id, record)
            else {
                continue;
            };
            let before_start =
                matches!((self.skip_before, created), (Some(cut), Some(at)) if at < cut);
            if before_start {
                last_skipped = Some(record.position);
            } else {
                if let Some(keys) = keys {
                    self.undecodable_keys
                        .insert(record.position.sequence_number.clone(), keys);
                }
                delivered.push(record);
            }
        }
        if let (true, Some(position)) = (delivered.is_empty(), last_skipped) {
            // Nothing to handle before it: move the checkpoint past the skipped records, so a
            // restart does not read them again.
            self.commit(&position).await?;
        }
        Ok(delivered)
    }

    /// Saves the position durably, then moves the resume point. If the save fails the shard is
    /// read again from its previous checkpoint, so what was polled since comes back — a closed
    /// shard too: its last page made it exhausted, and it must not stay so with records after
    /// its checkpoint unhandled (they would only come back after a restart, or never once the
    /// stream trims them).
    async fn commit(&mut self, position: &StreamPosition) -> Result<(), StoreError> {
        let saved = self
            .checkpoints
            .save(
                &self.stream_arn,
                self.consumer,
                &position.shard_id,
                &position.sequence_number,
            )
            .await;
        if let Some(shard) = self.shards.get_mut(&position.shard_id) {
            match saved {
                Ok(()) => shard.resume = Resume::After(position.sequence_number.clone()),
                Err(_) => {
                    shard.iterator = None;
                    shard.exhausted = false;
                }
            }
        }
        saved
    }

    fn retry_from(&mut self, position: &StreamPosition) {
        if let Some(shard) = self.shards.get_mut(&position.shard_id) {
            shard.resume = Resume::At(position.sequence_number.clone());
            shard.iterator = None;
            shard.exhausted = false;
        }
    }

    fn idle_pause(&self) -> Duration {
        IDLE_POLL
    }

    /// The stream failure queue given to [`with_set_aside`](StreamFeed::with_set_aside), the
    /// record named by its sequence number, this stream and (when it did not decode) its keys.
    fn set_aside_to(&self, position: &StreamPosition) -> Option<(&dyn SetAside, RecordRef)> {
        let to = self.set_aside.as_deref()?;
        let (order_id, version) = self
            .undecodable_keys
            .get(&position.sequence_number)
            .cloned()
            .unwrap_or_default();
        let record = RecordRef {
            sequence_number: Some(position.sequence_number.clone()),
            event_source_arn: Some(self.stream_arn.clone()),
            order_id,
            version,
        };
        Some((to, record))
    }

    /// Long enough for a write to reach the stream and for a round of polls over every ready
    /// shard.
    fn settle_time(&self) -> Duration {
        let ready = self.shards.keys().filter(|id| self.is_ready(id)).count();
        STREAM_SETTLE.max(IDLE_POLL * u32::try_from(ready).unwrap_or(u32::MAX))
    }
}

/// The cut-off of a consumer first started at `LATEST` (see [`CLOCK_MARGIN`]).
fn skip_before(registration: Registration) -> Option<i64> {
    let margin = i64::try_from(CLOCK_MARGIN.as_secs()).unwrap_or(i64::MAX);
    (registration.first_start == StartAt::Latest)
        .then(|| registration.registered_at.saturating_sub(margin))
}

/// Stream errors after the SDK's retries: all are worth retrying later (throttling, a stream
/// that is being re-enabled, a network fault), never a reason to drop records.
fn unavailable<E>(operation: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(format!("{operation}: {}", DisplayErrorContext(err)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Region};
    use aws_sdk_dynamodbstreams::types::{AttributeValue, StreamRecord};
    use events_schema::{CorrelationId, OrderEvent, OrderId, Version};

    use super::*;

    /// A feed whose client is never called (no endpoint is reached by these tests).
    fn feed(shards: &[(&str, Option<&str>)]) -> StreamFeed {
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        StreamFeed {
            client: Client::from_conf(config),
            stream_arn: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x".to_owned(),
            consumer: "test",
            shards: shards
                .iter()
                .map(|(id, parent)| {
                    (
                        (*id).to_owned(),
                        Shard {
                            parent: parent.map(str::to_owned),
                            resume: Resume::TrimHorizon,
                            iterator: None,
                            exhausted: false,
                        },
                    )
                })
                .collect(),
            next_describe: Instant::now() + DESCRIBE_EVERY,
            last_read: None,
            checkpoints: StreamCheckpoints::in_memory().unwrap(),
            skip_before: None,
            set_aside: None,
            undecodable_keys: HashMap::new(),
        }
    }

    fn exhaust(feed: &mut StreamFeed, id: &str) {
        if let Some(shard) = feed.shards.get_mut(id) {
            shard.exhausted = true;
        }
    }

    #[test]
    fn a_child_shard_is_read_only_after_its_parent_is_exhausted() {
        // b is a's child, c's parent was trimmed (unknown): a and c are ready, b waits.
        let mut f = feed(&[("a", None), ("b", Some("a")), ("c", Some("gone"))]);
        assert!(f.is_ready("a"));
        assert!(!f.is_ready("b"));
        assert!(f.is_ready("c"));
        exhaust(&mut f, "a");
        assert!(!f.is_ready("a"));
        assert!(f.is_ready("b"));
    }

    #[test]
    fn ready_shards_are_read_round_robin() {
        let mut f = feed(&[("a", None), ("b", Some("a")), ("c", None)]);
        let mut order = Vec::new();
        for _ in 0..4 {
            let next = f.next_shard().unwrap();
            f.last_read = Some(next.clone());
            order.push(next);
        }
        assert_eq!(order, ["a", "c", "a", "c"]);
        exhaust(&mut f, "a");
        exhaust(&mut f, "c");
        assert_eq!(f.next_shard().as_deref(), Some("b"));
        exhaust(&mut f, "b");
        assert_eq!(f.next_shard(), None);
    }

    #[tokio::test]
    async fn a_commit_moves_the_resume_point_and_a_retry_rewinds_to_the_failed_record() {
        let mut f = feed(&[("a", None)]);
        {
            let shard = f.shards.get_mut("a").unwrap();
            shard.iterator = Some("it".to_owned());
            shard.exhausted = true;
        }
        let at = |seq: &str| StreamPosition {
            shard_id: "a".to_owned(),
            sequence_number: seq.to_owned(),
        };
        f.commit(&at("100")).await.unwrap();
        let shard = &f.shards["a"];
        assert_eq!(shard.resume, Resume::After("100".to_owned()));
        assert_eq!(
            shard.iterator.as_deref(),
            Some("it"),
            "a commit keeps reading on"
        );

        f.retry_from(&at("200"));
        let shard = &f.shards["a"];
        assert_eq!(shard.resume, Resume::At("200".to_owned()));
        assert_eq!(shard.iterator, None, "the next poll takes a new iterator");
        assert!(
            !shard.exhausted,
            "a closed shard is read again from the failed record"
        );
    }

    fn at(seq: &str) -> StreamPosition {
        StreamPosition {
            shard_id: "a".to_owned(),
            sequence_number: seq.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_commit_is_saved_durably_and_a_reopened_feed_resumes_after_it() {
        let mut f = feed(&[("a", None), ("b", Some("a"))]);
        f.commit(&at("100")).await.unwrap();
        f.commit(&at("250")).await.unwrap();
        let saved = f.checkpoints.load(&f.stream_arn, "test").await.unwrap();
        assert_eq!(saved, BTreeMap::from([("a".to_owned(), "250".to_owned())]));

        // What `open` does with the saved positions after describing the stream again.
        let mut restarted = feed(&[("a", None), ("b", Some("a")), ("gone", None)]);
        exhaust(&mut restarted, "a");
        let mut with_trimmed = saved.clone();
        with_trimmed.insert("trimmed-away".to_owned(), "1".to_owned());
        assert_eq!(restarted.resume_from(&with_trimmed), 1);
        let a = &restarted.shards["a"];
        assert_eq!(a.resume, Resume::After("250".to_owned()));
        assert!(!a.exhausted, "a shard with a checkpoint is read on from it");
        assert_eq!(
            restarted.shards["b"].resume,
            Resume::TrimHorizon,
            "a shard without a checkpoint is read from its start"
        );
        assert!(!restarted.shards.contains_key("trimmed-away"));
    }

    #[tokio::test]
    async fn a_commit_that_cannot_be_saved_rewinds_to_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoints.db");
        let mut f = feed(&[("a", None)]);
        f.checkpoints = StreamCheckpoints::open(&file).unwrap();
        f.commit(&at("100")).await.unwrap();
        f.shards.get_mut("a").unwrap().iterator = Some("past-200".to_owned());
        // Another process holds the write lock longer than the busy timeout allows? Simpler and
        // certain: make the table unwritable.
        {
            let other = rusqlite::Connection::open(&file).unwrap();
            other
                .execute_batch("DROP TABLE stream_checkpoints")
                .unwrap();
        }
        let failed = f.commit(&at("200")).await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
        let shard = &f.shards["a"];
        assert_eq!(shard.resume, Resume::After("100".to_owned()));
        assert_eq!(
            shard.iterator, None,
            "records polled after the last saved checkpoint are read again"
        );
    }

    #[tokio::test]
    async fn a_closed_shard_whose_commit_cannot_be_saved_is_read_again_not_stranded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoints.db");
        let mut f = feed(&[("a", None), ("b", Some("a"))]);
        f.checkpoints = StreamCheckpoints::open(&file).unwrap();
        f.commit(&at("100")).await.unwrap();
        // The last page of the closed shard was polled: no next iterator.
        f.shards.get_mut("a").unwrap().iterator = None;
        exhaust(&mut f, "a");
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch("DROP TABLE stream_checkpoints")
            .unwrap();
        // The handler failed at 300 and the commit of what came before it fails too (so the
        // consumer loop never gets to `retry_from`).
        assert!(f.commit(&at("200")).await.is_err());
        let shard = &f.shards["a"];
        assert!(
            !shard.exhausted,
            "the shard is read again from its checkpoint"
        );
        assert_eq!(shard.resume, Resume::After("100".to_owned()));
        assert_eq!(f.next_shard().as_deref(), Some("a"));
        assert!(!f.is_ready("b"), "its child still waits for it");
    }

    #[test]
    fn a_transient_read_error_keeps_the_iterator_and_the_place() {
        let mut f = feed(&[("a", None)]);
        let shard = f.shards.get_mut("a").unwrap();
        shard.resume = Resume::After("100".to_owned());
        for code in [
            None,
            Some("LimitExceededException"),
            Some("ProvisionedThroughputExceededException"),
            Some("InternalServerError"),
            Some("ThrottlingException"),
        ] {
            shard.iterator = Some("it-after-150".to_owned());
            assert_eq!(
                shard.after_read_error(code),
                AfterReadError::Retry,
                "{code:?}"
            );
            assert_eq!(
                shard.iterator.as_deref(),
                Some("it-after-150"),
                "{code:?}: the same iterator is tried again, records polled since the checkpoint are not read twice"
            );
            assert_eq!(shard.resume, Resume::After("100".to_owned()));
        }
    }

    #[test]
    fn an_expired_iterator_is_reacquired_from_the_checkpoint() {
        let mut f = feed(&[("a", None)]);
        let shard = f.shards.get_mut("a").unwrap();
        shard.resume = Resume::After("100".to_owned());
        shard.iterator = Some("old".to_owned());
        assert_eq!(
            shard.after_read_error(Some("ExpiredIteratorException")),
            AfterReadError::Reacquire
        );
        assert_eq!(shard.iterator, None);
        assert_eq!(shard.resume, Resume::After("100".to_owned()));

        // A failed record's retry point survives an expiry too.
        shard.resume = Resume::At("120".to_owned());
        shard.iterator = Some("old".to_owned());
        shard.after_read_error(Some("ExpiredIteratorException"));
        assert_eq!(shard.resume, Resume::At("120".to_owned()));
    }

    #[test]
    fn a_trimmed_checkpoint_resumes_at_the_trim_horizon_and_a_gone_shard_is_looked_up_again() {
        let mut f = feed(&[("a", None)]);
        let shard = f.shards.get_mut("a").unwrap();
        shard.resume = Resume::After("100".to_owned());
        shard.iterator = Some("old".to_owned());
        assert_eq!(
            shard.after_read_error(Some("TrimmedDataAccessException")),
            AfterReadError::Trimmed
        );
        assert_eq!(shard.iterator, None);
        assert_eq!(shard.resume, Resume::TrimHorizon);

        shard.resume = Resume::After("100".to_owned());
        shard.iterator = Some("old".to_owned());
        assert_eq!(
            shard.after_read_error(Some("ResourceNotFoundException")),
            AfterReadError::Gone
        );
        assert_eq!(shard.iterator, None);
        assert_eq!(shard.resume, Resume::After("100".to_owned()));
    }

    #[test]
    fn only_a_consumer_first_started_at_latest_skips_older_records() {
        let latest = Registration {
            first_start: StartAt::Latest,
            registered_at: 1_000_000,
        };
        let margin = i64::try_from(CLOCK_MARGIN.as_secs()).unwrap();
        assert_eq!(skip_before(latest), Some(1_000_000 - margin));
        let horizon = Registration {
            first_start: StartAt::TrimHorizon,
            ..latest
        };
        assert_eq!(skip_before(horizon), None);
    }

    #[test]
    fn a_draining_stream_consumer_waits_for_writes_to_reach_the_stream() {
        let f = feed(&[("a", None), ("b", None), ("c", Some("a"))]);
        assert_eq!(f.settle_time(), STREAM_SETTLE);
        let many: Vec<(String, Option<&str>)> =
            (0..20).map(|i| (format!("s{i:02}"), None)).collect();
        let many: Vec<(&str, Option<&str>)> =
            many.iter().map(|(id, p)| (id.as_str(), *p)).collect();
        assert_eq!(
            feed(&many).settle_time(),
            IDLE_POLL * 20,
            "one poll per ready shard"
        );
    }

    fn record(name: OperationType, image: Option<HashMap<String, AttributeValue>>) -> Record {
        let mut change = StreamRecord::builder().sequence_number("42");
        if let Some(image) = image {
            change = change.set_new_image(Some(image));
        }
        Record::builder()
            .event_name(name)
            .dynamodb(change.build())
            .build()
    }

    #[test]
    fn insert_images_decode_to_envelopes_and_other_records_are_ignored() {
        let envelope = EventEnvelope::new(
            OrderId::new_random(),
            Version::new(3).unwrap(),
            CorrelationId::generate(),
            OrderEvent::OrderCompleted { total: 1234 },
        );
        let image: HashMap<String, AttributeValue> = envelope.to_item().unwrap().into();

        let decoded = StreamFeed::decode("a", record(OperationType::Insert, Some(image.clone())))
            .expect("an INSERT is a record");
        assert_eq!(decoded.record.position.to_string(), "a/42");
        assert_eq!(decoded.record.event.unwrap(), envelope);
        assert_eq!(
            decoded.keys, None,
            "keys are kept only for undecodable records"
        );

        assert!(StreamFeed::decode("a", record(OperationType::Modify, Some(image))).is_none());
        assert!(StreamFeed::decode("a", record(OperationType::Remove, None)).is_none());

        let mut broken = HashMap::new();
        broken.insert("orderId".to_owned(), AttributeValue::N("1".to_owned()));
        let bad = StreamFeed::decode("a", record(OperationType::Insert, Some(broken))).unwrap();
        assert!(
            bad.record.event.is_err(),
            "an undecodable image is reported, not dropped"
        );
        let missing = StreamFeed::decode("a", record(OperationType::Insert, None)).unwrap();
        assert!(missing.record.event.is_err());
    }

    #[test]
    fn an_undecodable_record_is_set_aside_named_by_its_sequence_number_stream_and_table_keys() {
        let mut image: HashMap<String, AttributeValue> = EventEnvelope::new(
            OrderId::new_random(),
            Version::new(4).unwrap(),
            CorrelationId::generate(),
            OrderEvent::OrderProcessingStarted,
        )
        .to_item()
        .unwrap()
        .into();
        image.insert(
            "eventType".to_owned(),
            AttributeValue::S("OrderTeleported".to_owned()),
        );
        let keys = HashMap::from([
            ("orderId".to_owned(), AttributeValue::S("o-1".to_owned())),
            ("version".to_owned(), AttributeValue::N("4".to_owned())),
        ]);
        let change = StreamRecord::builder()
            .sequence_number("77")
            .set_keys(Some(keys))
            .set_new_image(Some(image))
            .build();
        let record = Record::builder()
            .event_name(OperationType::Insert)
            .dynamodb(change)
            .build();
        let decoded = StreamFeed::decode("a", record).expect("an INSERT is a record");
        assert!(decoded.record.event.is_err());
        assert_eq!(decoded.keys, Some((Some("o-1".to_owned()), Some(4))));

        let mut f = feed(&[("a", None)]);
        let position = decoded.record.position;
        assert!(
            f.set_aside_to(&position).is_none(),
            "without a failure queue nothing is named"
        );
        f = f.with_set_aside(Arc::new(order_test_support::SetAsideLog::default()));
        f.undecodable_keys
            .insert(position.sequence_number.clone(), decoded.keys.unwrap());
        let (_, named) = f.set_aside_to(&position).expect("a failure queue");
        assert_eq!(
            named,
            RecordRef {
                sequence_number: Some("77".to_owned()),
                event_source_arn: Some(f.stream_arn.clone()),
                order_id: Some("o-1".to_owned()),
                version: Some(4),
            }
        );
    }
}
