//! The events table's DynamoDB stream: every successful append becomes one `INSERT` record per
//! event, in a shard chosen by the order id (the table's partition key), with a sequence number
//! that grows within the stream — as DynamoDB Streams writes them
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html>: each
//! record appears exactly once, in the order of the changes to its item).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use events_schema::{EventEnvelope, OrderId};
use order_ports::{AppendError, EventPage, EventStore, StoreError};
use serde_json::{json, Value};

use super::Clock;

pub const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:000000000000:table/OrderEvents/stream/2026-12-07T00:00:00.000";

/// A record the consumers can never decode, as a rolling deploy or a damaged write makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poison {
    /// An event type this build does not know (a newer writer's).
    UnknownEventType,
    /// A known event type at a schema version from the future (a newer writer's).
    FutureSchemaVersion,
    /// An image that is not an event at all.
    Garbage,
}

impl Poison {
    pub const ALL: [Poison; 3] = [
        Poison::UnknownEventType,
        Poison::FutureSchemaVersion,
        Poison::Garbage,
    ];
}

#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub sequence_number: String,
    /// The item key hash: `(orderId, version)`, what ParallelizationFactor keeps in order.
    pub item_key: (String, u64),
    pub arrival_ms: u64,
    /// The whole record as Lambda hands it over (`Records[i]`).
    pub json: Value,
}

#[derive(Debug, Default)]
pub struct Stream {
    pub shards: Vec<Vec<Arc<StreamRecord>>>,
    next_sequence: u64,
}

impl Stream {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: vec![Vec::new(); shards.max(1)],
            next_sequence: 1,
        }
    }

    fn shard_of(&self, order_id: &str) -> usize {
        let mut h = DefaultHasher::new();
        order_id.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    fn push(&mut self, order_id: String, version: u64, image: Value, now: u64) {
        let sequence_number = format!("{:021}", self.next_sequence);
        self.next_sequence += 1;
        let keys = json!({"orderId": {"S": order_id}, "version": {"N": version.to_string()}});
        let json = json!({
            "eventID": format!("e{sequence_number}"),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": STREAM_ARN,
            "dynamodb": {
                "ApproximateCreationDateTime": now / 1000,
                "Keys": keys,
                "NewImage": image,
                "SequenceNumber": sequence_number,
                "SizeBytes": 200,
                "StreamViewType": "NEW_IMAGE"
            }
        });
        let shard = self.shard_of(&order_id);
        self.shards[shard].push(Arc::new(StreamRecord {
            sequence_number,
            item_key: (order_id, version),
            arrival_ms: now,
            json,
        }));
    }

    pub fn push_event(&mut self, event: &EventEnvelope, now: u64) {
        let item = event.to_item().expect("an event converts to an item");
        let image = serde_json::to_value(&item).expect("an item is JSON");
        self.push(
            event.order_id.to_string(),
            u64::from(event.version.get()),
            image,
            now,
        );
    }

    /// Writes an undecodable record with the keys `(order_id, version)`, shaped from `template`
    /// (a valid event of that order) where the kind needs one.
    pub fn push_poison(&mut self, kind: Poison, template: &EventEnvelope, version: u64, now: u64) {
        let order_id = template.order_id.to_string();
        let mut image = serde_json::to_value(template.to_item().expect("item")).expect("json");
        image["version"] = json!({"N": version.to_string()});
        match kind {
            Poison::UnknownEventType => {
                image["eventType"] = json!({"S": "OrderRefunded"});
            }
            Poison::FutureSchemaVersion => {
                // A completion from a newer writer: the notifier's filter lets it through.
                image["eventType"] = json!({"S": "OrderCompleted"});
                image["schemaVersion"] = json!({"N": "99"});
            }
            Poison::Garbage => {
                image = json!({
                    "orderId": {"S": order_id},
                    "version": {"N": version.to_string()},
                    "eventType": {"S": "OrderCompleted"},
                    "payload": {"B": "AAEC"}
                });
            }
        }
        self.push(order_id, version, image, now);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(Vec::len).sum()
    }
}

/// The event store with its stream: an append that succeeded in `inner` is written to `stream`.
pub struct StreamingEventStore {
    pub inner: Arc<dyn EventStore>,
    pub stream: Arc<Mutex<Stream>>,
    pub clock: Arc<Clock>,
}

impl StreamingEventStore {
    fn record(&self, events: &[EventEnvelope]) {
        let now = self.clock.now_ms();
        let mut stream = self.stream.lock().expect("stream lock");
        for event in events {
            stream.push_event(event, now);
        }
    }
}

#[async_trait]
impl EventStore for StreamingEventStore {
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError> {
        self.inner.append(events).await?;
        self.record(events);
        Ok(())
    }

    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        let outcomes = self.inner.append_many(appends).await;
        for (events, outcome) in appends.iter().zip(&outcomes) {
            if outcome.is_ok() {
                self.record(events);
            }
        }
        outcomes
    }

    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.load(order_id).await
    }

    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        self.inner.load_many(order_ids).await
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.inner.read_all(cursor, limit).await
    }
}
