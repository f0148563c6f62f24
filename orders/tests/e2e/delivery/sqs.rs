//! The work queue as SQS runs it, and the processor's SQS event source mapping:
//! - a received message is hidden for the visibility timeout, then visible again unless deleted;
//!   `ChangeMessageVisibility` moves that moment
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>);
//! - at-least-once: a message may be delivered more than once, even while a receiver holds it
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues.html>);
//! - a message received more than `maxReceiveCount` times moves to the dead-letter queue
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html>);
//! - the mapping hands the function up to `BatchSize` messages and, with
//!   `ReportBatchItemFailures`, deletes every message the response does not name; a function
//!   error deletes none (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use events_schema::OrderId;
use order_ports::{Delivery, StoreError, WorkQueue};
use serde_json::json;

use super::{Clock, Rng};

#[derive(Debug, Clone)]
struct Message {
    body: String,
    receive_count: u32,
    visible_at_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// By message id, in send order (ids are zero-padded counters).
    messages: BTreeMap<String, Message>,
    dead: Vec<(String, String)>,
    next_id: u64,
}

pub struct SqsQueue {
    state: Mutex<State>,
    clock: Arc<Clock>,
    visibility_timeout: Duration,
    max_receive_count: u32,
    /// The share of receives that leave the message visible as well (a duplicate delivery).
    duplicate_rate: f64,
    rng: Mutex<Rng>,
}

impl SqsQueue {
    pub fn new(
        clock: Arc<Clock>,
        visibility_timeout: Duration,
        max_receive_count: u32,
        duplicate_rate: f64,
        seed: u64,
    ) -> Self {
        Self {
            state: Mutex::default(),
            clock,
            visibility_timeout,
            max_receive_count,
            duplicate_rate,
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("queue lock")
    }

    /// Messages not yet deleted, visible or not.
    pub fn in_queue(&self) -> usize {
        self.lock().messages.len()
    }

    /// `(message id, body)` of every dead-lettered message.
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.lock().dead.clone()
    }

    /// When the next hidden message becomes visible, if one is hidden.
    pub fn next_visible_ms(&self) -> Option<u64> {
        self.lock().messages.values().map(|m| m.visible_at_ms).min()
    }

    /// A receive as the mapping's poller makes it: up to `max` visible messages, each hidden for
    /// `visibility`; a message past `maxReceiveCount` goes to the dead-letter queue instead.
    fn receive_now(&self, max: usize, visibility: Duration) -> Vec<Delivery> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let mut rng = self.rng.lock().expect("rng lock");
        let visible: Vec<String> = state
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at_ms <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut deliveries = Vec::new();
        for id in visible {
            if deliveries.len() == max {
                break;
            }
            let message = state.messages.get_mut(&id).expect("listed");
            if message.receive_count >= self.max_receive_count {
                let body = message.body.clone();
                state.messages.remove(&id);
                state.dead.push((id, body));
                continue;
            }
            message.receive_count += 1;
            if !rng.chance(self.duplicate_rate) {
                message.visible_at_ms = now + visibility.as_millis() as u64;
            }
            deliveries.push(Delivery {
                message_id: id.clone(),
                receipt: format!("{id}/{}", message.receive_count),
                body: message.body.clone(),
                receive_count: message.receive_count,
            });
        }
        deliveries
    }

    /// The SQS event for `deliveries`, as Lambda builds it.
    pub fn event(deliveries: &[Delivery]) -> SqsEvent {
        let records: Vec<serde_json::Value> = deliveries
            .iter()
            .map(|d| {
                json!({
                    "messageId": d.message_id,
                    "receiptHandle": d.receipt,
                    "body": d.body,
                    "attributes": {"ApproximateReceiveCount": d.receive_count.to_string()},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:WorkQueue",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records }))
            .expect("the harness writes messages Lambda's event type reads")
    }

    /// What the mapping does with the function's answer: deletes every message the response
    /// does not name (all of them unnamed when `None`, a function error: none deleted).
    pub fn settle(&self, deliveries: &[Delivery], response: Option<&SqsBatchResponse>) {
        let Some(response) = response else {
            return;
        };
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        // An identifier that names no message of the batch fails the whole batch.
        if failed
            .iter()
            .any(|id| !deliveries.iter().any(|d| d.message_id == *id))
        {
            return;
        }
        let mut state = self.lock();
        for d in deliveries {
            if !failed.contains(&d.message_id.as_str()) {
                state.messages.remove(&d.message_id);
            }
        }
    }

    pub fn poll(&self, batch_size: usize) -> Vec<Delivery> {
        self.receive_now(batch_size, self.visibility_timeout)
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("m{:08}", state.next_id);
        state.messages.insert(
            id,
            Message {
                body: order_id.to_string(),
                receive_count: 0,
                visible_at_ms: now,
            },
        );
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.receive_now(max, visibility))
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.lock().messages.remove(&delivery.message_id);
        Ok(())
    }

    /// `ChangeMessageVisibility` to the retry delay of its receive count, as the SQS adapter does.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        if let Some(m) = self.lock().messages.get_mut(&delivery.message_id) {
            m.visible_at_ms =
                now + order_ports::retry_delay(delivery.receive_count).as_millis() as u64;
        }
        Ok(())
    }
}
