//! The ports: what the handler libs need from the outside world, and nothing more.
//!
//! Error contract shared by every port: [`StoreError::Unavailable`] is transient (throttling, a
//! timeout, a 5xx, a busy database) and the caller may retry the whole operation;
//! [`StoreError::Corrupt`] and [`StoreError::Rejected`] are permanent — retrying cannot help.
//! Adapters already retry transient faults a bounded number of times before returning them.
//!
//! Async traits: native `async fn` where a trait is used generically ([`EventConsumer`],
//! [`Feed`](crate::Feed)); `#[async_trait]` only for the four held as `Arc<dyn …>`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use events_schema::{
    CustomerId, EventEnvelope, EventId, OrderId, OrderStatus, OrderStatusRecord, Version,
};

/// The most events one [`EventStore::append`] takes (DynamoDB's `TransactWriteItems` limit).
pub const MAX_APPEND_BATCH: usize = 100;

/// A failure of a port operation other than an append conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Transient: the backend is busy, throttling, timing out or down. Retry later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Permanent: a stored record cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Permanent: the request itself is invalid (a bug in the caller, not bad luck).
    #[error("request rejected: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Why an append did not happen. Nothing was written in either case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Optimistic-lock failure: a version being appended already exists, so someone else moved
    /// the order on. Never retry blindly: reload the history and decide again.
    #[error("order {order_id} already has version {version}")]
    Conflict { order_id: OrderId, version: Version },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the batch shape [`EventStore::append`] requires — 1..=[`MAX_APPEND_BATCH`] events of
/// one order with consecutive versions — and returns its first event; `Rejected` otherwise.
/// Every adapter calls this before touching its backend.
pub fn check_append_batch(events: &[EventEnvelope]) -> Result<&EventEnvelope, StoreError> {
    let Some(first) = events.first() else {
        return Err(StoreError::Rejected("append of an empty batch".into()));
    };
    if events.len() > MAX_APPEND_BATCH {
        return Err(StoreError::Rejected(format!(
            "append of {} events; at most {MAX_APPEND_BATCH} at once",
            events.len()
        )));
    }
    let mut expected = first.version;
    for event in events {
        if event.order_id != first.order_id {
            return Err(StoreError::Rejected(format!(
                "one append must be of one order: {} and {}",
                first.order_id, event.order_id
            )));
        }
        if event.version != expected {
            return Err(StoreError::Rejected(format!(
                "versions must be consecutive: expected {expected}, got {}",
                event.version
            )));
        }
        expected = expected.next();
    }
    Ok(first)
}

/// A page of [`EventStore::read_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    /// Pass back to get the next page; `None` when everything has been read.
    pub next: Option<String>,
}

/// The append-only event log: the source of truth.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` atomically — all of them or none.
    ///
    /// `events` must be 1..=[`MAX_APPEND_BATCH`] events of one order with consecutive versions;
    /// the expected current version is `events[0].version - 1` (0 for a new order). Otherwise
    /// [`StoreError::Rejected`].
    ///
    /// Errors: [`AppendError::Conflict`] when any of those versions already exists (nothing is
    /// written); [`AppendError::Store`] as in the module docs.
    async fn append(&self, events: &[EventEnvelope]) -> Result<(), AppendError>;

    /// Several independent appends at once — typically one per order, as the processor moves a
    /// batch of orders one step on. Each element of `appends` is appended as by
    /// [`append`](Self::append) (same shape rules, same [`AppendError::Conflict`]); its outcome
    /// is at the same index of the result, which has one outcome per element.
    ///
    /// Each append is atomic on its own, and one append's conflict or rejection never undoes
    /// nor prevents another. A store failure is the adapter's: SQLite writes them all in one
    /// write job, so a failed commit fails every append of the call (none was written);
    /// DynamoDB sends a bounded number at a time, each succeeding or failing on its own. The default
    /// appends one after another.
    ///
    /// Errors per element: as [`append`](Self::append).
    async fn append_many(&self, appends: &[&[EventEnvelope]]) -> Vec<Result<(), AppendError>> {
        let mut outcomes = Vec::with_capacity(appends.len());
        for events in appends {
            outcomes.push(self.append(events).await);
        }
        outcomes
    }

    /// Every event of one order, in version order, read consistently (an append that returned
    /// `Ok` is visible). An unknown order gives an empty list.
    ///
    /// Errors: `Corrupt` when a stored event cannot be decoded; `Unavailable` as usual.
    async fn load(&self, order_id: OrderId) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The histories of several orders — the processor loading a batch. Each as by
    /// [`load`](Self::load); outcome `i` is `order_ids[i]`'s, and one order's failure does not
    /// fail another's. SQLite reads them all in one read job on one connection; DynamoDB sends
    /// a bounded number of `Query`s at a time. The default loads one after another.
    ///
    /// Errors per element: as [`load`](Self::load).
    async fn load_many(
        &self,
        order_ids: &[OrderId],
    ) -> Vec<Result<Vec<EventEnvelope>, StoreError>> {
        let mut histories = Vec::with_capacity(order_ids.len());
        for order_id in order_ids {
            histories.push(self.load(*order_id).await);
        }
        histories
    }

    /// A page of the whole log, for replay and export. Start with `cursor = None`, then pass
    /// [`EventPage::next`] until it is `None`. Each event is returned exactly once over a full
    /// pass. Order: the SQLite log returns global append order; DynamoDB returns table scan order
    /// (sort by `(orderId, version)` or `occurredAt` if you need one). `limit` is a hint ≥ 1.
    ///
    /// Errors: `Rejected` for a cursor this store did not produce; otherwise as `load`.
    async fn read_all(&self, cursor: Option<String>, limit: usize)
        -> Result<EventPage, StoreError>;
}

/// A message handed out by [`WorkQueue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across redeliveries of the same message.
    pub message_id: String,
    /// Proof of this particular receipt, for `ack` / `fail`.
    pub receipt: String,
    /// The raw body: an order id, or garbage (the processor must cope).
    pub body: String,
    /// How many times this message has been received, this receipt included (1 the first time).
    pub receive_count: u32,
}

/// The work queue from ingest to the processor: at-least-once, with dead letters.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues work for one order. Errors: `Unavailable` as usual.
    async fn send(&self, order_id: OrderId) -> Result<(), StoreError>;

    /// [`send`](Self::send), with the correlation id of the request that placed the order for a
    /// queue that can carry it beside the body (SQS: the message attribute `correlationId`, seen
    /// in the DLQ and by operators). Queues without attributes just send.
    async fn send_correlated(
        &self,
        order_id: OrderId,
        correlation_id: &events_schema::CorrelationId,
    ) -> Result<(), StoreError> {
        let _ = correlation_id;
        self.send(order_id).await
    }

    /// Up to `max` messages, each hidden from other receivers for `visibility`. Waits briefly
    /// (up to about a second locally, long polling on SQS) when the queue is empty, then returns
    /// an empty list. Messages that were received too often are moved to the dead letters
    /// instead of being delivered again.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError>;

    /// Done: deletes the message. Acking a stale receipt (the message has since been
    /// redelivered or deleted) is not an error.
    async fn ack(&self, delivery: &Delivery) -> Result<(), StoreError>;

    /// [`ack`](Self::ack) of several deliveries in fewer calls (SQLite: one write job; SQS:
    /// `DeleteMessageBatch`, 10 receipts a call). Stale receipts are not errors, as for `ack`.
    ///
    /// Errors: `Unavailable` as usual, when some of the messages may not have been deleted;
    /// which ones is not said. Retrying the whole call is safe (a second ack of a deleted
    /// message is a stale ack); a message left in the queue comes back after its visibility
    /// timeout, which the processor copes with (it is idempotent). The default acks one after
    /// another and stops at the first error.
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }

    /// Not done: the message stays hidden for [`retry_delay`]`(delivery.receive_count)` (the
    /// adapters' default; tests may configure another schedule), then is delivered again — or
    /// dead-lettered once its receive count has reached the maximum. Failing a stale receipt
    /// is not an error.
    async fn fail(&self, delivery: &Delivery) -> Result<(), StoreError>;
}

/// Outcome of [`StatusStore::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The record was written.
    Written,
    /// The stored record is already at this version or later; nothing was written.
    Stale,
}

/// The `OrderStatus` read model.
#[async_trait]
pub trait StatusStore: Send + Sync + 'static {
    /// The record of one order, `None` if it has not been projected (yet).
    async fn get(&self, order_id: OrderId) -> Result<Option<OrderStatusRecord>, StoreError>;

    /// Writes `record` only if no record exists or the stored one has a lower `version`, so the
    /// view only ever moves forward. A stale write is [`Upserted::Stale`], not an error.
    async fn upsert(&self, record: &OrderStatusRecord) -> Result<Upserted, StoreError>;

    /// The records of several orders at once, read like [`get`](Self::get); an order that has
    /// not been projected is absent from the map. Adapters read in bulk (SQLite: `IN (…)`;
    /// DynamoDB: `BatchGetItem`, consistent, in chunks of 100); the default calls `get` per
    /// order. Errors: as `get` — one failure fails the whole call.
    async fn get_many(
        &self,
        order_ids: &[OrderId],
    ) -> Result<HashMap<OrderId, OrderStatusRecord>, StoreError> {
        let mut found = HashMap::with_capacity(order_ids.len());
        for id in order_ids {
            if let Some(record) = self.get(*id).await? {
                found.insert(*id, record);
            }
        }
        Ok(found)
    }

    /// [`upsert`](Self::upsert) of each record (each of a different order): one outcome per
    /// record, in the same order. Whether one record's failure fails others is the adapter's:
    /// SQLite writes them in one transaction (all or none); DynamoDB has no conditional batch
    /// write, so it sends the conditional `PutItem`s concurrently and each succeeds or fails on
    /// its own. The default upserts one after another.
    async fn upsert_many(
        &self,
        records: &[OrderStatusRecord],
    ) -> Vec<Result<Upserted, StoreError>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(self.upsert(record).await);
        }
        outcomes
    }

    /// A page of one customer's orders (only those in `query.status`, when given), newest
    /// first: by `createdAt` descending, ties by `orderId` descending — the same order on every
    /// backend.
    ///
    /// Start with `cursor: None`, then pass [`StatusPage::next_cursor`] back (with the same
    /// customer and status) until it is `None`: that walks every matching order exactly once,
    /// newest first, in pages of at most `limit`. `next_cursor` is `None` only when nothing
    /// is left, so a cursor never leads to an empty page. The cursor is opaque: it encodes the
    /// position of the page's last order (the same way on every backend) and does not expire.
    /// Since a walk only moves to older positions, it never returns an order twice even while
    /// the view changes; an order projected, or (with a status filter) changing status, during
    /// the walk may or may not be in it. An unknown customer gives an empty page without a
    /// cursor.
    ///
    /// On DynamoDB this reads a key-only global secondary index, which is eventually
    /// consistent (an order projected a moment ago may be missing for a short while), then
    /// the views it points to, consistently.
    ///
    /// Errors: `Rejected` for a `limit` outside 1..=[`MAX_CUSTOMER_ORDERS_LIMIT`] or a cursor
    /// this store did not produce; `Corrupt` when a stored record cannot be decoded;
    /// `Unavailable` as usual.
    async fn list_by_customer(&self, query: &CustomerOrdersQuery)
        -> Result<StatusPage, StoreError>;

    /// A page of the orders whose view is `RECEIVED` or `PROCESSING` and was last updated
    /// strictly before `before`: the stuck-order finder of the reconciler. Start with
    /// `cursor = None`, then pass [`PendingPage::next`] back (with the same `before`) until it is
    /// `None`: that walks every such order once, in pages of at most `limit`. The cursor is
    /// opaque and does not expire. Order: oldest `updatedAt` first on SQLite; on DynamoDB
    /// oldest `createdAt` first within each shard of the sparse `pending` index, shard after
    /// shard (ADR 6).
    /// An order that moves on during a walk may or may not be in it.
    ///
    /// On DynamoDB this reads a global secondary index, which is eventually consistent: an
    /// order that just reached a terminal status may still be listed for a moment (re-enqueuing
    /// it is harmless: the processor is idempotent).
    ///
    /// Errors: `Rejected` for a `limit` outside 1..=[`MAX_PENDING_LIMIT`] or a cursor this store
    /// did not produce; `Corrupt` when a stored entry cannot be decoded; `Unavailable` as usual.
    async fn pending_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<PendingPage, StoreError>;
}

/// The largest page [`StatusStore::list_by_customer`] returns.
pub const MAX_CUSTOMER_ORDERS_LIMIT: usize = 100;

/// What [`StatusStore::list_by_customer`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerOrdersQuery {
    pub customer_id: CustomerId,
    /// Only orders currently in this status; `None` for all.
    pub status: Option<OrderStatus>,
    /// The most orders in the page: 1..=[`MAX_CUSTOMER_ORDERS_LIMIT`].
    pub limit: usize,
    /// [`StatusPage::next_cursor`] of the previous page; `None` for the first.
    pub cursor: Option<String>,
}

/// A page of [`StatusStore::list_by_customer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPage {
    /// Newest first.
    pub records: Vec<OrderStatusRecord>,
    /// Pass back to get the next page; `None` when nothing is left.
    pub next_cursor: Option<String>,
}

/// A position in a customer's orders: everything strictly older (by `createdAt`, then
/// `orderId`) comes after it. The one codec of the `list_by_customer` cursor, so both backends
/// accept each other's cursors: URL-safe base64 without padding of
/// `{"createdAt": "...", "orderId": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CustomerOrdersPosition {
    pub created_at: String,
    pub order_id: OrderId,
}

impl CustomerOrdersPosition {
    /// The position just after `record`.
    pub fn after(record: &OrderStatusRecord) -> Self {
        Self {
            created_at: record.created_at.clone(),
            order_id: record.order_id,
        }
    }

    pub fn encode(&self) -> Result<String, StoreError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a cursor: {e}")))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| bad())?;
        let position: Self = serde_json::from_slice(&json).map_err(|_| bad())?;
        if position.created_at.is_empty() {
            return Err(bad());
        }
        Ok(position)
    }
}

/// Checks `query.limit` and decodes `query.cursor` for [`StatusStore::list_by_customer`];
/// `Rejected` for either being invalid. Every adapter calls this before touching its backend.
pub(crate) fn check_customer_orders_query(
    query: &CustomerOrdersQuery,
) -> Result<Option<CustomerOrdersPosition>, StoreError> {
    if !(1..=MAX_CUSTOMER_ORDERS_LIMIT).contains(&query.limit) {
        return Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_CUSTOMER_ORDERS_LIMIT}, got {}",
            query.limit
        )));
    }
    query
        .cursor
        .as_deref()
        .map(CustomerOrdersPosition::decode)
        .transpose()
}

/// Cuts a look-ahead read of up to `limit + 1` records down to a page: the extra record, when
/// present, only proves that there is more, and the cursor points after the page's last record.
pub(crate) fn into_status_page(
    mut records: Vec<OrderStatusRecord>,
    limit: usize,
) -> Result<StatusPage, StoreError> {
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records
            .last()
            .map(|last| CustomerOrdersPosition::after(last).encode())
            .transpose()?
    } else {
        None
    };
    Ok(StatusPage {
        records,
        next_cursor,
    })
}

/// A message for subscribers (SNS, or the local notifications table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The event this notification announces; consumers deduplicate on it.
    pub event_id: EventId,
    /// The JSON body.
    pub message: String,
    /// Message attributes for subscription filters (`eventType`, `customerId`, `orderId`).
    pub attributes: BTreeMap<String, String>,
}

/// Publishes notifications, at least once.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one notification. Errors: `Unavailable` as usual; `Rejected` if the backend
    /// refuses the message (too large, bad attributes).
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError>;

    /// Publishes `notifications`, in order, as [`publish`](Self::publish) would one by one, in
    /// fewer calls (SNS: `PublishBatch` of up to 10 entries; SQLite: one write job).
    ///
    /// Errors: a [`PublishBatchError`] naming the first notification that may not have been
    /// published, with why (as for `publish`). Every notification before it was published;
    /// it and those after it may or may not have been (a batch call can succeed for entries
    /// after a failed one), so a caller that retries from it may publish some twice — which
    /// at-least-once delivery allows. An empty batch is refused (`Rejected`, index 0), as SNS
    /// refuses an empty `PublishBatch` (`EmptyBatchRequest`,
    /// <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>): every adapter checks
    /// it with [`check_publish_batch`]. The default publishes one after another and stops at the
    /// first error.
    async fn publish_batch(&self, notifications: &[Notification]) -> Result<(), PublishBatchError> {
        check_publish_batch(notifications)?;
        for (index, notification) in notifications.iter().enumerate() {
            self.publish(notification)
                .await
                .map_err(|error| PublishBatchError { index, error })?;
        }
        Ok(())
    }
}

/// Refuses an empty batch, as SNS does (`EmptyBatchRequest`): a caller that publishes nothing
/// has a bug, which the test doubles must show rather than hide.
pub fn check_publish_batch(notifications: &[Notification]) -> Result<(), PublishBatchError> {
    if notifications.is_empty() {
        return Err(PublishBatchError {
            index: 0,
            error: StoreError::Rejected("publish of an empty batch (EmptyBatchRequest)".into()),
        });
    }
    Ok(())
}

/// Why [`Publisher::publish_batch`] stopped: the index (in the batch) of the first
/// notification that may not have been published, and the error it met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification {index} of the batch: {error}")]
pub struct PublishBatchError {
    pub index: usize,
    pub error: StoreError,
}

/// Why a consumer could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// Retry this event (and everything after it) later.
    #[error("transient: {0}")]
    Transient(String),
    /// This event can never be handled; retrying cannot help. It is set aside (logged locally,
    /// the stream failure queue on AWS: [`SetAside`]), never silently dropped.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for ConsumeError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ConsumeError::Transient(e.to_string())
        } else {
            ConsumeError::Permanent(e.to_string())
        }
    }
}

/// A consumer of the log's change feed — the projector and the notifier. The feed delivers
/// each order's events in version order, at least once, so a consumer must be idempotent.
/// The same consumer runs behind the DynamoDB stream (Lambda, or a poller in `orders serve
/// --backend aws`) and behind the SQLite log's global sequence.
pub trait EventConsumer: Send + Sync {
    fn consume(
        &self,
        event: &EventEnvelope,
    ) -> impl std::future::Future<Output = Result<(), ConsumeError>> + Send;

    /// Handles a batch of the feed (a page of the local log, a stream batch), in order. The
    /// outcome's contract is the one of calling [`consume`](Self::consume) on each event in
    /// turn and stopping at the first transient failure: everything before
    /// [`BatchOutcome::transient`] is done (handled, or set aside as a permanent failure), it and
    /// everything after it will be delivered again. Events after it may have been handled
    /// already: the consumer is idempotent. The default does exactly that loop; a consumer
    /// overrides it to share work across the batch (the projector reads and writes each order's
    /// view once per batch).
    fn consume_batch(
        &self,
        events: &[EventEnvelope],
    ) -> impl std::future::Future<Output = BatchOutcome> + Send {
        async move {
            let mut outcome = BatchOutcome::default();
            for (index, event) in events.iter().enumerate() {
                match self.consume(event).await {
                    Ok(()) => {}
                    Err(ConsumeError::Permanent(reason)) => outcome.permanent.push((index, reason)),
                    Err(ConsumeError::Transient(reason)) => {
                        outcome.transient = Some((index, reason));
                        break;
                    }
                }
            }
            outcome
        }
    }
}

/// What [`EventConsumer::consume_batch`] made of a batch (indexes into the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The events that can never be handled, in index order, each with its reason; all before
    /// `transient` (when there is one).
    pub permanent: Vec<(usize, String)>,
    /// The first event that failed transiently, with the reason: it and everything after it
    /// must be delivered again; everything before it is done.
    pub transient: Option<(usize, String)>,
}

impl BatchOutcome {
    /// An outcome from failures in any order: the lowest transient index wins, and only
    /// permanent failures before it are kept, sorted.
    pub fn from_failures(
        mut permanent: Vec<(usize, String)>,
        transient: impl IntoIterator<Item = (usize, String)>,
    ) -> Self {
        let transient = transient.into_iter().min_by_key(|(index, _)| *index);
        if let Some((stop, _)) = &transient {
            permanent.retain(|(index, _)| index < stop);
        }
        permanent.sort_by_key(|(index, _)| *index);
        BatchOutcome {
            permanent,
            transient,
        }
    }

    /// The first failure of any kind: its index and reason.
    pub fn first_failure(&self) -> Option<(usize, &str)> {
        let permanent = self.permanent.first().map(|(i, r)| (*i, r.as_str()));
        let transient = self.transient.as_ref().map(|(i, r)| (*i, r.as_str()));
        match (permanent, transient) {
            (Some(p), Some(t)) => Some(if p.0 < t.0 { p } else { t }),
            (p, t) => p.or(t),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Taking orders in, and retrying work (issue 7: no order left behind)

/// Takes an order in: its `OrderReceived` goes into the log and the order onto the work queue,
/// so that an order in the log is always either queued or already processed.
#[async_trait]
pub trait OrderIntake: Send + Sync + 'static {
    /// Appends `received` — version 1 of a new order, an `OrderReceived` (otherwise
    /// [`StoreError::Rejected`]) — and enqueues its order.
    ///
    /// `Ok` means the order is in the log, so accepted: it is queued, or (only where the log and
    /// the queue share no transaction, [`AppendThenEnqueue`]) left to the reconciler because the
    /// queue refused it. Errors: [`AppendError::Conflict`] when the order already has a version
    /// 1; nothing is written then, neither event nor message. [`AppendError::Store`] as in the
    /// module docs: the append did not succeed, so the order is not accepted (with the one
    /// exception of a store that wrote it but whose answer was lost, e.g. a timeout — a retry
    /// with the same `Idempotency-Key` then finds it).
    async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError>;

    /// Enqueues an order that is already in the log once more (an idempotent retry of its
    /// request). A duplicate message is harmless: the processor is idempotent.
    async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError>;
}

/// Checks that `received` is what [`OrderIntake::accept`] takes: version 1, `OrderReceived`.
pub fn check_intake(received: &EventEnvelope) -> Result<(), StoreError> {
    if received.version != Version::FIRST {
        return Err(StoreError::Rejected(format!(
            "an intake takes version 1 of an order, not version {}",
            received.version
        )));
    }
    if !matches!(received.event, events_schema::OrderEvent::OrderReceived(_)) {
        return Err(StoreError::Rejected(format!(
            "an intake takes an OrderReceived, not an {}",
            received.event_type()
        )));
    }
    Ok(())
}

/// [`OrderIntake`] over a log and a queue that cannot share a transaction (DynamoDB and SQS):
/// appends, then sends ([`send_after_append`]: a few brief tries). Not atomic: if every try of
/// the send fails, or the process dies between the two calls, the order is in the log with no
/// work queued. Once the append has succeeded the order is accepted all the same — `accept`
/// returns `Ok`, the API answers `202` — and a send that failed is logged and counted
/// ([`left_to_reconciler`]): the reconciler re-enqueues orders that stayed pending too long (and
/// a client's retry with the same `Idempotency-Key` enqueues again through
/// [`requeue`](OrderIntake::requeue)). So a client never retries an order that was stored, and
/// never makes a second one by doing so. Where one transaction holds both (the SQLite file),
/// use the atomic intake of that backend instead.
#[derive(Clone)]
pub struct AppendThenEnqueue {
    pub events: std::sync::Arc<dyn EventStore>,
    pub queue: std::sync::Arc<dyn WorkQueue>,
}

#[async_trait]
impl OrderIntake for AppendThenEnqueue {
    async fn accept(&self, received: &EventEnvelope) -> Result<(), AppendError> {
        check_intake(received)?;
        self.events.append(std::slice::from_ref(received)).await?;
        // Stored: from here on the order is accepted, whatever happens to the send.
        let sent = send_after_append(
            self.queue.as_ref(),
            received.order_id,
            Some(&received.correlation_id),
        )
        .await;
        if let Err(e) = sent {
            left_to_reconciler(received.order_id, &e);
        }
        Ok(())
    }

    async fn requeue(&self, order_id: OrderId) -> Result<(), StoreError> {
        send_after_append(self.queue.as_ref(), order_id, None).await
    }
}

/// The pauses before the second and the third try of [`send_after_append`]: brief, since a
/// client is waiting for its answer (the SDK's own retries of each try come on top). After
/// them the order is left to the reconciler.
pub const SEND_RETRY_PAUSES: [Duration; 2] =
    [Duration::from_millis(50), Duration::from_millis(200)];

/// Sends an order that is already in the log to `queue` (with its correlation id when given):
/// up to three tries, [`SEND_RETRY_PAUSES`] apart, while the error is transient. Returns the
/// last error when no try got through; a permanent one ends the tries at once (retrying
/// cannot help).
pub async fn send_after_append(
    queue: &dyn WorkQueue,
    order_id: OrderId,
    correlation_id: Option<&events_schema::CorrelationId>,
) -> Result<(), StoreError> {
    let mut pauses = SEND_RETRY_PAUSES.iter();
    loop {
        let sent = match correlation_id {
            Some(correlation_id) => queue.send_correlated(order_id, correlation_id).await,
            None => queue.send(order_id).await,
        };
        let error = match sent {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let Some(pause) = pauses.next() else {
            return Err(error);
        };
        tokio::time::sleep(*pause).await;
    }
}

/// A stored order that could not be queued: logged (WARN: the reconciler will send it once it
/// has been pending longer than its threshold) and counted
/// ([`Metric::OrderNotQueued`](crate::metrics::Metric::OrderNotQueued)).
pub fn left_to_reconciler(order_id: OrderId, error: &StoreError) {
    crate::metrics::record(crate::metrics::Metric::OrderNotQueued);
    tracing::warn!(
        orderId = %order_id,
        error = %error,
        "order accepted but not queued; the reconciler will enqueue it"
    );
}

/// The first [`retry_delay`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The longest [`retry_delay`].
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How long a work message that failed on its `receive_count`-th receive stays hidden before
/// it is delivered again: 1 s after the first receive, then doubling — 2 s, 4 s, 8 s, 16 s,
/// 32 s — and 60 s from the seventh on. (`0` is taken as `1`.)
///
/// Why these values: a message dead-letters only when all its receives fail. With the default
/// 5 receives the fifth comes at least 1 + 2 + 4 + 8 = 15 s after the first, so a backend
/// outage shorter than that dead-letters nothing (a 2-second one is over by the third
/// receive), while a poison message still reaches the dead letters within about a quarter of a
/// minute. The cap keeps a message with many allowed receives from sleeping for hours.
pub fn retry_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    FIRST_RETRY_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod intake_and_retry_tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A queue whose sends fail with the listed errors first, in order, then succeed; it
    /// counts the tries.
    #[derive(Default)]
    struct Refusing {
        failures: Mutex<Vec<StoreError>>,
        tries: Mutex<u32>,
    }

    impl Refusing {
        fn with(failures: Vec<StoreError>) -> Self {
            Self {
                failures: Mutex::new(failures),
                tries: Mutex::new(0),
            }
        }
        fn tries(&self) -> u32 {
            *self.tries.lock().expect("lock")
        }
    }

    #[async_trait]
    impl WorkQueue for Refusing {
        async fn send(&self, _: OrderId) -> Result<(), StoreError> {
            *self.tries.lock().expect("lock") += 1;
            let mut failures = self.failures.lock().expect("lock");
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.remove(0))
            }
        }
        async fn receive(&self, _: usize, _: Duration) -> Result<Vec<Delivery>, StoreError> {
            Ok(Vec::new())
        }
        async fn ack(&self, _: &Delivery) -> Result<(), StoreError> {
            Ok(())
        }
        async fn fail(&self, _: &Delivery) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn down() -> StoreError {
        StoreError::Unavailable("ThrottlingException".into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_fails_twice_transiently_gets_through_on_the_third_try() {
        let queue = Refusing::with(vec![down(), down()]);
        let started = tokio::time::Instant::now();
        send_after_append(&queue, OrderId::new_random(), None)
            .await
            .expect("the third try gets through");
        assert_eq!(queue.tries(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_keeps_failing_is_given_up_after_three_tries() {
        let queue = Refusing::with(vec![down(), down(), down(), down()]);
        let result = send_after_append(&queue, OrderId::new_random(), None).await;
        assert_eq!(result, Err(down()));
        assert_eq!(queue.tries(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_refused_for_good_is_not_tried_again() {
        let refused = StoreError::Rejected("AccessDenied".into());
        let queue = Refusing::with(vec![refused.clone()]);
        let result = send_after_append(&queue, OrderId::new_random(), None).await;
        assert_eq!(result, Err(refused));
        assert_eq!(queue.tries(), 1);
    }

    #[tokio::test]
    async fn a_stored_order_whose_send_keeps_failing_is_accepted_and_counted_as_not_queued() {
        let db = crate::test_util::TempSqlite::new();
        let queue = Arc::new(Refusing::with(vec![down(), down(), down()]));
        let intake = AppendThenEnqueue {
            events: Arc::new(db.db().event_store()),
            queue: queue.clone(),
        };
        let received = crate::test_util::order_received(1, 100);
        let captured = Arc::new(crate::metrics::Captured::default());
        let accepted = crate::metrics::scoped(captured.clone(), intake.accept(&received)).await;
        assert_eq!(accepted, Ok(()));
        assert_eq!(queue.tries(), 3);
        let logged = db.db().event_store().load(received.order_id).await;
        let ids: Vec<_> = logged.expect("load").iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![received.event_id]);
        assert_eq!(captured.taken(), ["OrderNotQueued"]);
    }

    #[tokio::test]
    async fn an_order_that_could_not_be_stored_is_not_accepted_and_nothing_is_sent() {
        let db = crate::test_util::TempSqlite::new();
        let queue = Arc::new(Refusing::default());
        let intake = AppendThenEnqueue {
            events: Arc::new(db.db().event_store()),
            queue: queue.clone(),
        };
        let mut not_first = crate::test_util::order_received(1, 100);
        not_first.version = Version::new(2).expect("2");
        assert!(intake.accept(&not_first).await.is_err());
        assert_eq!(queue.tries(), 0);
    }

    #[test]
    fn retry_delays_double_from_one_second_up_to_a_minute() {
        let delays: Vec<u64> = (0..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn with_five_receives_a_two_second_outage_cannot_dead_letter_a_message() {
        let before_the_fifth: Duration = (1..5).map(retry_delay).sum();
        assert!(
            before_the_fifth > Duration::from_secs(2),
            "{before_the_fifth:?}"
        );
        assert_eq!(before_the_fifth, Duration::from_secs(15));
    }
}

// ---------------------------------------------------------------------------------------------
// Pending orders: what the reconciler walks (`StatusStore::pending_before`).

/// The largest page [`StatusStore::pending_before`] returns.
pub const MAX_PENDING_LIMIT: usize = 1_000;

/// An order whose view is not terminal (`RECEIVED` or `PROCESSING`), as
/// [`StatusStore::pending_before`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    pub order_id: OrderId,
    pub status: events_schema::OrderStatus,
    /// The view's version (the last event it applied): what the reconciler compares with the
    /// log, and sets an order aside at ([`StatusRepair::set_aside_pending`]).
    pub version: Version,
    /// When the view last changed (`updatedAt`).
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A page of [`StatusStore::pending_before`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPage {
    pub orders: Vec<PendingOrder>,
    /// Pass back to get the next page; `None` only when nothing is left, so a cursor leads to
    /// an empty page only if everything after it moved on in the meantime.
    pub next: Option<String>,
}

/// Checks the `limit` of [`StatusStore::pending_before`]; every adapter calls it first.
pub(crate) fn check_pending_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PENDING_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_PENDING_LIMIT}, got {limit}"
        )))
    }
}

/// A position in a walk of pending orders: the last order returned. `shard` is the DynamoDB
/// index shard (always 0 on SQLite). Encoded as `{shard}|{sortKey}|{orderId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingPosition {
    pub shard: u32,
    /// The walk's sort key, a stored timestamp: `updatedAt` on SQLite, the `pending` index's
    /// `createdAt` on DynamoDB.
    pub sort_key: String,
    pub order_id: OrderId,
}

impl PendingPosition {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.shard, self.sort_key, self.order_id)
    }

    pub fn decode(cursor: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Rejected(format!("not a cursor of this store: {cursor:?}"));
        let mut parts = cursor.split('|');
        let (Some(shard), Some(sort_key), Some(order_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let shard = shard.parse().map_err(|_| bad())?;
        // Only a timestamp in the stored form: it is compared as text.
        let parsed = events_schema::envelope::parse_timestamp(sort_key).ok_or_else(bad)?;
        if events_schema::envelope::format_timestamp(parsed) != sort_key {
            return Err(bad());
        }
        let order_id = OrderId::parse(order_id).map_err(|_| bad())?;
        Ok(Self {
            shard,
            sort_key: sort_key.to_owned(),
            order_id,
        })
    }
}

/// Decodes one pending entry read back from a store; `Corrupt` if it does not decode.
pub(crate) fn pending_order(
    order_id: &str,
    status: &str,
    version: i64,
    updated_at: &str,
) -> Result<PendingOrder, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "pending entry {order_id:?} ({status:?}, version {version}, {updated_at:?}): bad {what}"
        ))
    };
    let version = u32::try_from(version)
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| corrupt("version"))?;
    let order_id = OrderId::parse(order_id).map_err(|_| corrupt("orderId"))?;
    let status = [
        events_schema::OrderStatus::Received,
        events_schema::OrderStatus::Processing,
    ]
    .into_iter()
    .find(|s| s.as_str() == status)
    .ok_or_else(|| corrupt("status"))?;
    let updated_at =
        events_schema::envelope::parse_timestamp(updated_at).ok_or_else(|| corrupt("updatedAt"))?;
    Ok(PendingOrder {
        order_id,
        status,
        version,
        updated_at,
    })
}

// ---------------------------------------------------------------------------------------------
// ---- Operator tools: reading the whole log back, repairing the view, dead letters ----------
//
// Ports of `orders verify`, `orders rebuild` and `orders dlq`; no handler uses them.

/// One of `total` disjoint parts of the log an [`OrderScan`] can be walked in, in parallel
/// (DynamoDB's parallel `Scan` segments). Every order is in exactly one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSegment {
    pub index: u32,
    pub total: u32,
}

impl ScanSegment {
    /// The whole log as one segment.
    pub const WHOLE: ScanSegment = ScanSegment { index: 0, total: 1 };

    /// `Rejected` unless `index < total` and `total` is 1..=`max`.
    pub fn check(&self, max: u32) -> Result<(), StoreError> {
        if self.total == 0 || self.total > max || self.index >= self.total {
            return Err(StoreError::Rejected(format!(
                "scan segment {}/{} (at most {max} segments)",
                self.index, self.total
            )));
        }
        Ok(())
    }
}

/// A page of [`OrderScan::list_orders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIdPage {
    pub order_ids: Vec<OrderId>,
    /// Pass back to get the next page of the same segment; `None` when it is exhausted.
    pub next: Option<String>,
}

/// The log walked order by order, so a tool's memory stays bounded by a page (plus one order's
/// history), whatever the size of the log.
#[async_trait]
pub trait OrderScan: Send + Sync + 'static {
    /// How many [`ScanSegment`]s this store is best walked in (1 when it cannot be split).
    fn segments(&self) -> u32;

    /// A page of the ids of the orders that have **any** event (an order whose version 1 is
    /// missing included) in `segment`; over a full pass of the segment each such order comes
    /// exactly once. Start with `cursor = None`, pass [`OrderIdPage::next`] back until `None`.
    ///
    /// Errors: `Rejected` for a segment outside 0..[`segments`](Self::segments) or a cursor this
    /// store did not produce; `Unavailable` as usual.
    async fn list_orders(
        &self,
        segment: ScanSegment,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<OrderIdPage, StoreError>;

    /// How many events the log holds (for progress reports; exact at the time of the count).
    async fn count_events(&self) -> Result<u64, StoreError>;
}

/// Writes to the status view that the projector never makes: for `orders rebuild --force`, and
/// the reconciler's setting aside of an order it cannot repair (ADR 11).
#[async_trait]
pub trait StatusRepair: Send + Sync + 'static {
    /// Replaces the stored record by `record` only if the stored one is still at `expected`
    /// (compare-and-set on the version, so a projector moving the order on meanwhile wins);
    /// [`Upserted::Stale`] when it is not. Unlike [`StatusStore::upsert`] this may move the
    /// view *back* (a view ahead of its log) or rewrite it at the same version.
    async fn replace(
        &self,
        record: &OrderStatusRecord,
        expected: Version,
    ) -> Result<Upserted, StoreError>;

    /// Takes a pending view out of [`StatusStore::pending_before`]'s walk while it stays at
    /// `version`, remembering `reason`: the reconciler's "reported once and left alone" for an
    /// order whose log does not fold, which re-enqueuing could only cycle through the dead
    /// letters (ADR 11). The view's fields are not changed, so reads and `orders verify` see
    /// it as before. Any later write of the view ([`StatusStore::upsert`] of a newer version,
    /// [`replace`](Self::replace)) ends it: the order is pending again, or done.
    ///
    /// Only if the stored view is still `RECEIVED` or `PROCESSING` at `version` (so a projector
    /// that moved the order on meanwhile wins); [`Upserted::Stale`] otherwise, also when there
    /// is no view. Setting aside again what already is set aside is `Written` (idempotent).
    /// SQLite records it in the `pending_set_aside` table; DynamoDB removes the view's
    /// `pendingShard` (the order leaves the sparse `pending` index) and sets `setAside` and
    /// `setAsideAt` on it, in one conditional `UpdateItem`.
    ///
    /// Errors: `Unavailable` as usual.
    async fn set_aside_pending(
        &self,
        order_id: OrderId,
        version: Version,
        reason: &str,
    ) -> Result<Upserted, StoreError>;
}

/// A work message that was received too often and set aside (the local `dead_letters` table,
/// the SQS work DLQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterMessage {
    pub message_id: String,
    /// The raw body: an order id, or whatever was sent.
    pub body: String,
    pub receive_count: u32,
    /// RFC 3339: when it was dead-lettered (locally) or first sent (SQS `SentTimestamp`).
    pub at: String,
}

/// Which dead letters [`DeadLetters::redrive`] sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveFilter {
    All,
    /// Only the messages whose body is this order's id.
    Order(OrderId),
}

/// The dead letters of the work queue: look at them, and send them back to be processed
/// (safe at any time: the processor is idempotent).
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Every dead letter, oldest first where the backend knows the order. Nothing is removed.
    async fn list(&self) -> Result<Vec<DeadLetterMessage>, StoreError>;

    /// Sends the matching dead letters back to the work queue (a fresh receive count) and
    /// removes them from the dead letters; returns the messages redriven. Each message is re-sent before it
    /// is removed, so an interruption can duplicate a message but never lose one.
    async fn redrive(&self, filter: &RedriveFilter) -> Result<Vec<DeadLetterMessage>, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Stream records set aside (issue 17): what a stream consumer can never handle goes to the
// stream failure queue, sent by the consumer itself, so the rest of its batch goes on.

/// A stream record a consumer (the projector or the notifier) can never handle — it does not
/// decode (an event type or schema version this build does not know, a damaged image), or the
/// consumer failed it permanently — and set aside instead of letting it hold up, and in the end
/// drop, its neighbours. On AWS it is one message of the stream failure queue
/// ([`SetAsideRecord::to_message`]); locally the same record is a row of `failed_events`.
///
/// The record itself stays in the event table: this names it (its keys and stream sequence
/// number) and says why, so that it can be read back and, with a binary that can read it,
/// applied (`orders rebuild`, `--replay-notifications`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAsideRecord {
    /// Which consumer set it aside: `projector` or `notifier`.
    pub set_aside_by: String,
    /// The record's stream sequence number (`dynamodb.SequenceNumber`), when it has one.
    pub sequence_number: Option<String>,
    /// The stream (`eventSourceARN`), when the record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// The table keys of the event, as far as they are readable.
    pub order_id: Option<String>,
    pub version: Option<u64>,
    /// The event's id, when the record decoded (a permanent failure of the consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Why it can never be handled.
    pub reason: String,
    /// When it was set aside (RFC 3339, UTC, milliseconds).
    pub at: String,
}

/// The key [`SetAsideRecord::to_message`] writes first, which tells a consumer's own message
/// apart from the stream mapping's on-failure record in the same queue.
const SET_ASIDE_BY: &str = "setAsideBy";

impl SetAsideRecord {
    /// The JSON body of its stream failure queue message.
    pub fn to_message(&self) -> String {
        // Serializing plain strings and numbers cannot fail; fall back to the reason alone.
        serde_json::to_string(self).unwrap_or_else(|_| {
            serde_json::json!({ SET_ASIDE_BY: self.set_aside_by, "reason": self.reason })
                .to_string()
        })
    }
}

/// Sets stream records aside (the stream failure queue on AWS). Used by the stream functions
/// for each record they can never handle, before they let the batch go on.
#[async_trait]
pub trait SetAside: Send + Sync + 'static {
    /// Stores `record` durably. Errors as in the module docs: when this fails, the caller
    /// must not move past the record (the Lambda reports it as its batch item failure).
    async fn set_aside(&self, record: &SetAsideRecord) -> Result<(), StoreError>;
}

/// One message of the stream failure queue, as `orders verify` and `orders dlq records` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// A record a consumer set aside itself.
    SetAside(SetAsideRecord),
    /// The stream mapping's own on-failure record: a batch it discarded after its retries or
    /// the record age ran out. It holds the batch's metadata, not its records.
    /// <https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>
    Discarded(DiscardedBatch),
    /// A message that is neither (its body as it is).
    Unknown(String),
}

/// What the on-failure record of a stream mapping says about the batch it discarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscardedBatch {
    /// `requestContext.functionArn`: whose mapping discarded it.
    pub function_arn: Option<String>,
    /// `requestContext.condition`: `RetryAttemptsExhausted`, `RecordAgeExceeded`, …
    pub condition: Option<String>,
    pub shard_id: Option<String>,
    pub start_sequence_number: Option<String>,
    pub end_sequence_number: Option<String>,
    pub batch_size: Option<u64>,
    /// `timestamp` of the record.
    pub timestamp: Option<String>,
}

impl StreamFailure {
    /// Reads a stream failure queue message body; never fails (an unknown shape is
    /// [`StreamFailure::Unknown`]).
    pub fn parse(body: &str) -> Self {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
            return StreamFailure::Unknown(body.to_owned());
        };
        if value.get(SET_ASIDE_BY).is_some() {
            return match serde_json::from_value::<SetAsideRecord>(value) {
                Ok(record) => StreamFailure::SetAside(record),
                Err(_) => StreamFailure::Unknown(body.to_owned()),
            };
        }
        let Some(info) = value.get("DDBStreamBatchInfo") else {
            return StreamFailure::Unknown(body.to_owned());
        };
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let context = value.get("requestContext");
        StreamFailure::Discarded(DiscardedBatch {
            function_arn: text(context.and_then(|c| c.get("functionArn"))),
            condition: text(context.and_then(|c| c.get("condition"))),
            shard_id: text(info.get("shardId")),
            start_sequence_number: text(info.get("startSequenceNumber")),
            end_sequence_number: text(info.get("endSequenceNumber")),
            batch_size: info.get("batchSize").and_then(serde_json::Value::as_u64),
            timestamp: text(value.get("timestamp")),
        })
    }
}

impl std::fmt::Display for StreamFailure {
    /// One line: what it is, where, and why.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        match self {
            StreamFailure::SetAside(r) => write!(
                f,
                "stream record {}: set aside by the {} at {} (order {}, version {}{}): {}",
                or_unknown(&r.sequence_number),
                r.set_aside_by,
                r.at,
                or_unknown(&r.order_id),
                r.version.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                r.event_id
                    .as_deref()
                    .map_or_else(String::new, |id| format!(", event {id}")),
                r.reason
            ),
            StreamFailure::Discarded(b) => write!(
                f,
                "stream batch {}..{} of shard {}: discarded by the mapping of {} ({}, {} records) at {}",
                or_unknown(&b.start_sequence_number),
                or_unknown(&b.end_sequence_number),
                or_unknown(&b.shard_id),
                or_unknown(&b.function_arn),
                or_unknown(&b.condition),
                b.batch_size.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                or_unknown(&b.timestamp)
            ),
            StreamFailure::Unknown(body) => write!(f, "stream failure queue message: {body}"),
        }
    }
}

#[cfg(test)]
mod set_aside_tests {
    use super::*;

    fn record() -> SetAsideRecord {
        SetAsideRecord {
            set_aside_by: "projector".into(),
            sequence_number: Some("4200".into()),
            event_source_arn: None,
            order_id: Some("o-1".into()),
            version: Some(3),
            event_id: None,
            reason: "unknown event type OrderTeleported".into(),
            at: "2026-12-07T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_set_aside_record_reads_back_from_its_message_as_it_was_written() {
        let written = record();
        let message = written.to_message();
        assert!(
            message.starts_with(r#"{"setAsideBy":"projector""#),
            "{message}"
        );
        assert_eq!(
            StreamFailure::parse(&message),
            StreamFailure::SetAside(written)
        );
    }

    #[test]
    fn the_mappings_own_on_failure_record_is_read_as_a_discarded_batch() {
        // The shape of Lambda's on-failure record for a DynamoDB stream mapping.
        let body = r#"{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:eu-west-1:1:function:s-projector","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2026-12-07T00:00:00.000Z","DDBStreamBatchInfo":{"shardId":"shardId-1","startSequenceNumber":"100","endSequenceNumber":"900","approximateArrivalOfFirstRecord":"2026-12-07T00:00:00Z","approximateArrivalOfLastRecord":"2026-12-07T00:00:00Z","batchSize":9,"streamArn":"arn:s"}}"#;
        let parsed = StreamFailure::parse(body);
        assert_eq!(
            parsed,
            StreamFailure::Discarded(DiscardedBatch {
                function_arn: Some("arn:aws:lambda:eu-west-1:1:function:s-projector".into()),
                condition: Some("RetryAttemptsExhausted".into()),
                shard_id: Some("shardId-1".into()),
                start_sequence_number: Some("100".into()),
                end_sequence_number: Some("900".into()),
                batch_size: Some(9),
                timestamp: Some("2026-12-07T00:00:00.000Z".into()),
            })
        );
        assert!(parsed.to_string().contains("100..900 of shard shardId-1"));
    }

    #[test]
    fn a_message_of_another_shape_is_kept_as_it_is() {
        for body in ["not json", "{}", r#"{"setAsideBy": 3}"#] {
            assert_eq!(
                StreamFailure::parse(body),
                StreamFailure::Unknown(body.to_owned())
            );
        }
    }

    #[test]
    fn a_set_aside_record_is_shown_with_its_keys_sequence_number_and_reason() {
        let line = StreamFailure::SetAside(record()).to_string();
        assert_eq!(
            line,
            "stream record 4200: set aside by the projector at 2026-12-07T00:00:00.000Z \
             (order o-1, version 3): unknown event type OrderTeleported"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Exporting the history (`orders events`, issue 8): the log in time order, filtered, a page at a
// time.

/// The most events one [`EventExport::page`] returns.
pub const MAX_EXPORT_PAGE: usize = 10_000;

/// `t` rounded up to a whole millisecond (unchanged when it is one already). Events are stored
/// with millisecond precision, so for every stored `occurredAt`, `occurredAt >= t` holds exactly
/// when `occurredAt >= ceil_to_millis(t)`, and `occurredAt < t` exactly when
/// `occurredAt < ceil_to_millis(t)`: the one rule that lets an adapter compare bounds at
/// millisecond precision (SQLite compares text) and select exactly what
/// [`ExportFilter::matches`] selects (the DynamoDB export filters with it).
pub fn ceil_to_millis(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let below = t.timestamp_subsec_nanos() % 1_000_000;
    if below == 0 {
        return t;
    }
    t.checked_add_signed(chrono::Duration::nanoseconds(i64::from(1_000_000 - below)))
        .unwrap_or(t)
}

/// Which events [`EventExport::page`] returns; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only this order's events.
    pub order_id: Option<OrderId>,
    /// Only the events of the orders this customer placed (the `customerId` of their
    /// `OrderReceived`).
    pub customer_id: Option<CustomerId>,
    /// Only events of this type.
    pub event_type: Option<events_schema::EventType>,
    /// Only events with `occurredAt >= since`.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events with `occurredAt < until` (so consecutive windows never overlap).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl ExportFilter {
    /// Whether `event` passes the filter. `customer` is the customer of the event's order
    /// when the caller knows it (always needed when `customer_id` is set).
    pub fn matches(&self, event: &EventEnvelope, customer: Option<&CustomerId>) -> bool {
        self.order_id.is_none_or(|id| id == event.order_id)
            && self.event_type.is_none_or(|t| t == event.event_type())
            && self.since.is_none_or(|t| event.occurred_at >= t)
            && self.until.is_none_or(|t| event.occurred_at < t)
            && self
                .customer_id
                .as_ref()
                .is_none_or(|c| customer == Some(c))
    }
}

/// A position in the export order — `occurredAt`, then `orderId`, then `version` — taken from
/// the last event of a page: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportPosition {
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub order_id: OrderId,
    pub version: Version,
}

impl ExportPosition {
    /// Where `event` sits in the export order. (`OrderId` orders as its UUID, which is the
    /// order of its lower-case text form, so every backend sorts alike.)
    pub fn of(event: &EventEnvelope) -> Self {
        Self {
            occurred_at: event.occurred_at,
            order_id: event.order_id,
            version: event.version,
        }
    }
}

/// The log in export order, a page at a time: what `orders events` streams.
#[async_trait]
pub trait EventExport: Send + Sync + 'static {
    /// Up to `limit` (1..=[`MAX_EXPORT_PAGE`]) events matching `filter`, strictly after
    /// `after`, ordered by `occurredAt`, then `orderId`, then `version`. Start with `after =
    /// None`, then pass the position of the last event returned; a page shorter than `limit`
    /// is the last one. Events appended meanwhile with an `occurredAt` after the position are
    /// included; an event can never be returned twice.
    ///
    /// Errors: `Rejected` for a `limit` out of range; `Corrupt` when a stored event cannot be
    /// decoded; `Unavailable` as usual.
    async fn page(
        &self,
        filter: &ExportFilter,
        after: Option<&ExportPosition>,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError>;
}

/// Checks the `limit` of [`EventExport::page`]; every adapter calls it first.
pub fn check_export_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_EXPORT_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Rejected(format!(
            "limit must be 1..={MAX_EXPORT_PAGE}, got {limit}"
        )))
    }
}
