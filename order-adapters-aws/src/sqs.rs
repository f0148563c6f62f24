//! The work queue on SQS. Dead-lettering is the queue's `RedrivePolicy` (`maxReceiveCount`):
//! nothing to do here beyond hiding a failed message for its retry delay.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use events_schema::OrderId;

use super::classify;
use order_ports::{retry_delay, Delivery, StoreError, WorkQueue};

/// The message attribute holding the correlation id of the order's request.
pub const CORRELATION_ATTRIBUTE: &str = "correlationId";
/// SQS's batch limit for `SendMessageBatch` and `ReceiveMessage`.
const SQS_BATCH: usize = 10;
/// Long-poll wait of [`WorkQueue::receive`] ("about a second").
const WAIT_SECONDS: i32 = 1;
/// SQS's maximum visibility timeout (12 h).
const MAX_VISIBILITY_SECONDS: u64 = 43_200;

/// An SQS queue whose message bodies are order ids.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
    retry_delay: fn(u32) -> Duration,
}

impl SqsWorkQueue {
    /// The queue at `queue_url`, failing messages with [`retry_delay`].
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            retry_delay,
        }
    }

    /// The same queue with another backoff for [`WorkQueue::fail`] (by receive count) than
    /// [`retry_delay`]; SQS takes whole seconds (rounded down). For tests that must not wait
    /// for it; production keeps the default.
    pub fn with_retry_delay(mut self, delay: fn(u32) -> Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Enqueues many orders with `SendMessageBatch`, 10 per call. Entries SQS refuses are
    /// reported together as one `Unavailable` naming them (the others were sent: re-sending
    /// everything is safe, the processor is idempotent).
    pub async fn send_batch(&self, order_ids: &[OrderId]) -> Result<(), StoreError> {
        let mut failures = Vec::new();
        for chunk in order_ids.chunks(SQS_BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, id) in chunk.iter().enumerate() {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(id.to_string())
                    .build()
                    .map_err(|e| StoreError::Rejected(format!("SendMessageBatch entry: {e}")))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("SendMessageBatch", &e))?;
            for failed in out.failed() {
                let order = failed
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| chunk.get(i))
                    .map_or_else(|| failed.id().to_owned(), ToString::to_string);
                failures.push(format!(
                    "{order}: {} {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "SendMessageBatch: {} of {} messages not sent: {}",
                failures.len(),
                order_ids.len(),
                failures.join("; ")
            )))
        }
    }
}

/// A receipt that no longer refers to an in-flight message: deleted, redelivered, or expired.
fn is_stale_receipt<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    super::service_code(err).is_some_and(is_stale_receipt_code)
}

/// The error codes of [`is_stale_receipt`], also reported per entry by `DeleteMessageBatch`.
fn is_stale_receipt_code(code: &str) -> bool {
    matches!(
        code,
        "ReceiptHandleIsInvalid"
            | "AWS.SimpleQueueService.ReceiptHandleIsInvalid"
            | "InvalidIdFormat"
            | "MessageNotInflight"
            | "AWS.SimpleQueueService.MessageNotInflight"
    )
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(order_id.to_string())
            .send()
            .await
            .map_err(|e| classify("SendMessage", &e))?;
        Ok(())
    }

    async fn send_correlated(
        &self,
        order_id: OrderId,
        correlation_id: &events_schema::CorrelationId,
    ) -> Result<(), StoreError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(correlation_id.as_str())
            .build()
            .map_err(|e| StoreError::Rejected(format!("message attribute: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(order_id.to_string())
            .message_attributes(CORRELATION_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(|e| classify("SendMessage", &e))?;
        Ok(())
    }

    /// `max` is capped at SQS's 10 (0 returns nothing without a call); `visibility` is rounded
    /// down to whole seconds and capped at 12 h. Long-polls for 1 s.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = i32::try_from(max.min(SQS_BATCH)).unwrap_or(10);
        let visibility =
            i32::try_from(visibility.as_secs().min(MAX_VISIBILITY_SECONDS)).unwrap_or(43_200);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(visibility)
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", &e))?;
        let mut deliveries = Vec::new();
        for message in out.messages.unwrap_or_default() {
            let (Some(message_id), Some(receipt)) =
                (message.message_id(), message.receipt_handle())
            else {
                return Err(StoreError::Corrupt(format!(
                    "ReceiveMessage returned a message without id or receipt handle: {message:?}"
                )));
            };
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(1);
            deliveries.push(Delivery {
                message_id: message_id.to_owned(),
                receipt: receipt.to_owned(),
                body: message.body().unwrap_or_default().to_owned(),
                receive_count,
            });
        }
        Ok(deliveries)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_stale_receipt(&e) => Ok(()),
            Err(e) => Err(classify("DeleteMessage", &e)),
        }
    }

    /// `DeleteMessageBatch` of up to 10 receipts per call, the calls concurrent. An entry that
    /// failed on a stale receipt counts as acked, as for `ack`; any other failed entry makes
    /// the call `Unavailable`.
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let calls = deliveries.chunks(SQS_BATCH).map(|chunk| async move {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, delivery) in chunk.iter().enumerate() {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&delivery.receipt)
                    .build()
                    .map_err(|e| StoreError::Rejected(format!("DeleteMessageBatch entry: {e}")))?;
                entries.push(entry);
            }
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", &e))?;
            let failures: Vec<String> = out
                .failed()
                .iter()
                .filter(|f| !is_stale_receipt_code(f.code()))
                .map(|f| format!("{} {}", f.code(), f.message().unwrap_or_default()))
                .collect();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Unavailable(format!(
                    "DeleteMessageBatch: {} of {} messages not deleted: {}",
                    failures.len(),
                    chunk.len(),
                    failures.join("; ")
                )))
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, StoreError>>()
            .map(|_| ())
    }

    /// `ChangeMessageVisibility` to the retry delay of the receive count (whole seconds, at
    /// most 12 h): the message comes back after it, and the queue's redrive policy moves it to
    /// the DLQ when it is received more than `maxReceiveCount` times.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let delay = (self.retry_delay)(delivery.receive_count);
        let seconds = i32::try_from(delay.as_secs().min(MAX_VISIBILITY_SECONDS)).unwrap_or(43_200);
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(seconds)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_stale_receipt(&e) => Ok(()),
            Err(e) => Err(classify("ChangeMessageVisibility", &e)),
        }
    }
}

/// How long a message received from the DLQ by [`SqsDeadLetters`] stays hidden while the
/// command walks the queue; every message not deleted is made visible again at the end.
const DLQ_WALK_VISIBILITY_SECONDS: i32 = 60;

/// The work queue's dead-letter queue (stack output `WorkDlqUrl`), with the work queue its
/// messages are redriven to. SQS has no "peek": listing receives every message (hidden for
/// [`DLQ_WALK_VISIBILITY_SECONDS`] while the walk goes on, so none is seen twice) and then
/// makes each visible again; receiving raises a message's `ApproximateReceiveCount`, nothing
/// else. A message received by someone else meanwhile is missed by that walk.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    dlq_url: String,
    work_queue_url: String,
}

/// A message received from the DLQ: what the tools show, and its receipt.
struct Received {
    message: order_ports::DeadLetterMessage,
    receipt: String,
}

impl SqsDeadLetters {
    pub fn new(
        client: Client,
        dlq_url: impl Into<String>,
        work_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            dlq_url: dlq_url.into(),
            work_queue_url: work_queue_url.into(),
        }
    }

    /// One `ReceiveMessage` of up to 10 messages (waiting up to a second); empty when the
    /// queue holds nothing visible.
    async fn receive_batch(&self) -> Result<Vec<Received>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(DLQ_WALK_VISIBILITY_SECONDS)
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", &e))?;
        let mut received = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let (Some(message_id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            let attribute = |name: &MessageSystemAttributeName| {
                m.attributes().and_then(|a| a.get(name)).cloned()
            };
            let at = attribute(&MessageSystemAttributeName::SentTimestamp)
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            received.push(Received {
                message: order_ports::DeadLetterMessage {
                    message_id: message_id.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attribute(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    at,
                },
                receipt: receipt.to_owned(),
            });
        }
        Ok(received)
    }

    /// Makes received messages visible again (best effort: if this fails they come back after
    /// [`DLQ_WALK_VISIBILITY_SECONDS`] anyway).
    async fn release(&self, receipts: &[String]) {
        for receipt in receipts {
            let released = self
                .client
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %classify("ChangeMessageVisibility", &e), "dead letter stays hidden until its visibility timeout");
            }
        }
    }
}

#[async_trait]
impl order_ports::DeadLetters for SqsDeadLetters {
    async fn list(&self) -> Result<Vec<order_ports::DeadLetterMessage>, StoreError> {
        let mut seen = Vec::new();
        let mut receipts = Vec::new();
        let outcome = loop {
            match self.receive_batch().await {
                Ok(batch) if batch.is_empty() => break Ok(()),
                Ok(batch) => {
                    for r in batch {
                        receipts.push(r.receipt);
                        seen.push(r.message);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.release(&receipts).await;
        outcome?;
        seen.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(seen)
    }

    /// Per matching message: `SendMessage` of its body to the work queue, then `DeleteMessage`
    /// from the DLQ. Messages of other orders are made visible again at the end.
    async fn redrive(
        &self,
        filter: &order_ports::RedriveFilter,
    ) -> Result<Vec<order_ports::DeadLetterMessage>, StoreError> {
        let wanted = match filter {
            order_ports::RedriveFilter::All => None,
            order_ports::RedriveFilter::Order(id) => Some(id.to_string()),
        };
        let mut redriven = Vec::new();
        let mut kept = Vec::new();
        let outcome: Result<(), StoreError> = async {
            loop {
                let batch = self.receive_batch().await?;
                if batch.is_empty() {
                    return Ok(());
                }
                for r in batch {
                    if wanted.as_ref().is_some_and(|w| *w != r.message.body) {
                        kept.push(r.receipt);
                        continue;
                    }
                    self.client
                        .send_message()
                        .queue_url(&self.work_queue_url)
                        .message_body(&r.message.body)
                        .send()
                        .await
                        .map_err(|e| classify("SendMessage", &e))?;
                    match self
                        .client
                        .delete_message()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(&r.receipt)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_stale_receipt(&e) => {}
                        Err(e) => return Err(classify("DeleteMessage", &e)),
                    }
                    redriven.push(r.message);
                }
            }
        }
        .await;
        self.release(&kept).await;
        outcome.map(|()| redriven)
    }
}

/// The stream failure queue (stack output `StreamFailureQueueUrl`): the stream mappings'
/// on-failure destination, and where the projector and notifier functions set aside, themselves,
/// each record they can never handle ([`order_ports::SetAside`]), so that the rest of their batch goes
/// on. Read back by `orders verify` and `orders dlq records`.
#[derive(Debug, Clone)]
pub struct SqsStreamFailures {
    client: Client,
    queue_url: String,
}

/// One message of the stream failure queue as [`SqsStreamFailures::list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFailureMessage {
    pub message_id: String,
    /// When it was sent (SQS `SentTimestamp`, RFC 3339).
    pub at: String,
    pub failure: order_ports::StreamFailure,
}

impl SqsStreamFailures {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Every message of the queue, oldest first, read as the DLQ is read by
    /// [`SqsDeadLetters`]: received, then made visible again; nothing is removed. A record set
    /// aside twice (its batch was retried before the set-aside was known to have worked) is
    /// listed once.
    pub async fn list(&self) -> Result<Vec<StreamFailureMessage>, StoreError> {
        use order_ports::DeadLetters as _;
        let walker = SqsDeadLetters::new(self.client.clone(), &self.queue_url, "");
        let mut seen = std::collections::HashSet::new();
        let mut listed = Vec::new();
        for message in walker.list().await? {
            let failure = order_ports::StreamFailure::parse(&message.body);
            if let order_ports::StreamFailure::SetAside(r) = &failure {
                let key = (r.set_aside_by.clone(), r.sequence_number.clone());
                if r.sequence_number.is_some() && !seen.insert(key) {
                    continue;
                }
            }
            listed.push(StreamFailureMessage {
                message_id: message.message_id,
                at: message.at,
                failure,
            });
        }
        Ok(listed)
    }
}

#[async_trait]
impl order_ports::SetAside for SqsStreamFailures {
    /// `SendMessage` of [`SetAsideRecord::to_message`](order_ports::SetAsideRecord::to_message).
    async fn set_aside(&self, record: &order_ports::SetAsideRecord) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(record.to_message())
            .send()
            .await
            .map_err(|e| classify("SendMessage (stream failure queue)", &e))?;
        Ok(())
    }
}
