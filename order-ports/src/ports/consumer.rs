//! The consumer contract of the change feed: [`EventConsumer`] (the projector and the
//! notifier) and what it made of a batch ([`BatchOutcome`]).

use events_schema::EventEnvelope;

use super::*;

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
