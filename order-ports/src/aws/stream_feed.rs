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
//! * `GetShardIterator`: `TRIM_HORIZON` (or `LATEST`, see below) the first time,
//!   `AFTER_SEQUENCE_NUMBER` of the in-memory checkpoint when an iterator has to be acquired
//!   again (expired, or after an error), and `AT_SEQUENCE_NUMBER` of a record whose handling
//!   failed transiently, so it is delivered again. `GetRecords` returning no
//!   `NextShardIterator` means the shard is closed and fully read.
//! * Only `INSERT` records are events (the log is append-only); their `NewImage` is decoded with
//!   [`EventEnvelope::from_item`], exactly as the Lambdas do.
//!
//! Checkpoints live in memory only: a restart of `serve --backend aws` starts again from
//! `TRIM_HORIZON` (up to 24 hours of stream). For the projector that replay is harmless — its
//! version guard turns every event it already applied into a no-op. The notifier would publish
//! every completion in the stream again, so `serve` starts it at `LATEST` unless asked to replay
//! (`--replay-notifications`). The `LATEST` positions are taken when the feed is opened, before
//! the API accepts requests; shards that appear later are read from their start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{OperationType, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use events_schema::EventEnvelope;

use super::service_code;
use crate::feed::{Feed, FeedRecord};
use crate::ports::StoreError;

/// How often the shard list is refreshed when no shard has been exhausted.
pub const DESCRIBE_EVERY: Duration = Duration::from_secs(10);
/// `GetRecords`' maximum.
const RECORDS_PER_CALL: i32 = 1000;
/// Pause after an empty `GetRecords`: DynamoDB allows about 5 reads per second per shard, shared
/// by every reader (here the projector and the notifier).
const IDLE_POLL: Duration = Duration::from_millis(400);

/// Where a consumer starts reading the shards that exist when it opens the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written after the feed was opened.
    Latest,
}

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

/// Where to (re)acquire a shard iterator.
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

/// One consumer's reader of a DynamoDB stream. Checkpoints are in memory (see the module docs).
pub struct StreamFeed {
    client: Client,
    stream_arn: String,
    consumer: &'static str,
    shards: BTreeMap<String, Shard>,
    next_describe: Instant,
    /// The shard id read last, for round-robin.
    last_read: Option<String>,
}

impl StreamFeed {
    /// Lists the shards and, for [`StartAt::Latest`], takes the `LATEST` iterator of every open
    /// shard now, so that every record written after this returns is delivered. `config` is the
    /// process's SDK configuration ([`sdk_config`](super::sdk_config)).
    ///
    /// Errors: `Unavailable` if the stream cannot be described (missing, access denied, down).
    pub async fn open(
        config: &SdkConfig,
        stream_arn: impl Into<String>,
        consumer: &'static str,
        start: StartAt,
    ) -> Result<Self, StoreError> {
        let mut feed = StreamFeed {
            client: Client::new(config),
            stream_arn: stream_arn.into(),
            consumer,
            shards: BTreeMap::new(),
            next_describe: Instant::now(),
            last_read: None,
        };
        feed.describe(start).await?;
        let ids: Vec<String> = feed.shards.keys().cloned().collect();
        for id in ids {
            let wanted = feed
                .shards
                .get(&id)
                .is_some_and(|s| s.resume == Resume::Latest && !s.exhausted);
            if wanted {
                let iterator = feed.shard_iterator(&id, &Resume::Latest).await?;
                if let Some(shard) = feed.shards.get_mut(&id) {
                    shard.iterator = iterator;
                }
            }
        }
        tracing::info!(consumer, stream = %feed.stream_arn, shards = feed.shards.len(), ?start, "stream feed opened");
        Ok(feed)
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

    /// `Ok(None)` when the shard no longer exists.
    async fn shard_iterator(
        &self,
        shard_id: &str,
        resume: &Resume,
    ) -> Result<Option<String>, StoreError> {
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
            Ok(out) => Ok(out.shard_iterator),
            Err(e) if service_code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(unavailable("GetShardIterator", &e)),
        }
    }

    fn decode(shard_id: &str, record: Record) -> Option<FeedRecord<StreamPosition>> {
        if record.event_name != Some(OperationType::Insert) {
            // The log is append-only; anything else is not an event of ours.
            return None;
        }
        let change = record.dynamodb?;
        let sequence_number = change.sequence_number?;
        let event = match change.new_image {
            Some(image) => {
                EventEnvelope::from_item(serde_dynamo::Item::from(image)).map_err(|e| e.to_string())
            }
            None => Err("INSERT record without a NewImage (stream view type?)".to_owned()),
        };
        Some(FeedRecord {
            position: StreamPosition {
                shard_id: shard_id.to_owned(),
                sequence_number,
            },
            event,
        })
    }
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
            Some(iterator) => Some(iterator),
            None => self.shard_iterator(&shard_id, &resume).await?,
        };
        let Some(iterator) = iterator else {
            tracing::warn!(consumer = self.consumer, shard = %shard_id, "shard no longer exists");
            if let Some(shard) = self.shards.get_mut(&shard_id) {
                shard.exhausted = true;
            }
            self.next_describe = Instant::now();
            return Ok(Vec::new());
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
                // Whatever went wrong, acquire a fresh iterator from the checkpoint next time.
                shard.iterator = None;
                return match service_code(&e) {
                    Some("ExpiredIteratorException") => Ok(Vec::new()),
                    Some("TrimmedDataAccessException") => {
                        tracing::error!(consumer = self.consumer, shard = %shard_id, resume = ?shard.resume,
                            "records past the checkpoint were trimmed from the stream (older than 24 h); resuming at the trim horizon");
                        shard.resume = Resume::TrimHorizon;
                        Ok(Vec::new())
                    }
                    _ => Err(unavailable("GetRecords", &e)),
                };
            }
        };
        shard.iterator = out.next_shard_iterator;
        if shard.iterator.is_none() {
            shard.exhausted = true;
            // Its children may be ready now.
            self.next_describe = Instant::now();
        }
        Ok(out
            .records
            .unwrap_or_default()
            .into_iter()
            .filter_map(|record| Self::decode(&shard_id, record))
            .collect())
    }

    async fn commit(&mut self, position: &StreamPosition) -> Result<(), StoreError> {
        if let Some(shard) = self.shards.get_mut(&position.shard_id) {
            shard.resume = Resume::After(position.sequence_number.clone());
        }
        Ok(())
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
        assert_eq!(decoded.position.to_string(), "a/42");
        assert_eq!(decoded.event.unwrap(), envelope);

        assert!(StreamFeed::decode("a", record(OperationType::Modify, Some(image))).is_none());
        assert!(StreamFeed::decode("a", record(OperationType::Remove, None)).is_none());

        let mut broken = HashMap::new();
        broken.insert("orderId".to_owned(), AttributeValue::N("1".to_owned()));
        let bad = StreamFeed::decode("a", record(OperationType::Insert, Some(broken))).unwrap();
        assert!(
            bad.event.is_err(),
            "an undecodable image is reported, not dropped"
        );
        let missing = StreamFeed::decode("a", record(OperationType::Insert, None)).unwrap();
        assert!(missing.event.is_err());
    }
}
