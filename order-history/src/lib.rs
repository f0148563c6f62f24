//! What analysts run on the order log, on any backend: the ports come in as parameters, so
//! the `orders` CLI, and anything else that reads the history (the archive's processor), share
//! one definition of each.
//!
//! * [`export_row`]: the export row — its columns, which an event fills, its Arrow schema: its
//!   one definition, for `orders events` and for the archive (Parquet by day): the `archiver`
//!   function writes each event's [`write_json_line`], the line of the NDJSON export.
//! * [`export`]: the log written as NDJSON, CSV or Parquet in export order, from a store that
//!   pages in that order ([`EventExport`](order_ports::EventExport)) or through
//!   [`external_sort`] from one that cannot.
//! * [`walk`]: every order's whole history, streamed in bounded memory.
//! * [`replay`]: an order, or every order, as it was at a moment.
//! * [`stats`]: per hour or day of receipt, counts, totals and completion-time percentiles.

pub mod export;
pub mod export_row;
pub mod external_sort;
pub mod replay;
pub mod stats;
pub mod walk;

use events_schema::OrderId;
use order_ports::StoreError;

pub use export::{export_to, export_to_file, sort_matching, Format, MatchingEvents, Source};
pub use export_row::{arrow_schema, payload_columns, write_json_line, COLUMNS};
pub use external_sort::{ExternalSort, SortError, Sorted};
pub use replay::{order_as_of, AsOf, Cut, Summary};
pub use stats::{Bucket, By, Latencies, Percentiles, StatsByReceipt};
pub use walk::{all_orders, histories, paged_histories, produced, History};

/// Why reading or writing the history failed. Each is one line, fit to show as it is.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order {order_id}: {source}")]
    Order {
        order_id: OrderId,
        source: StoreError,
    },
    #[error("order {0} is not in the log")]
    NotInLog(OrderId),
    #[error("order {order_id}: its history does not fold: {reason}")]
    DoesNotFold { order_id: OrderId, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot create {path}: {source}")]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sort(SortError),
    #[error("reading the log stopped: {0}")]
    ReadStopped(#[from] tokio::task::JoinError),
    #[error("cannot write CSV: {0}")]
    Csv(String),
    #[error("cannot build the Parquet batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("too many items in one Parquet batch")]
    TooManyItems,
    #[error("cannot write Parquet: {0}")]
    Parquet(String),
}

impl From<SortError> for HistoryError {
    // A spill that fails to write is an I/O error like any other write of the export.
    fn from(e: SortError) -> Self {
        match e {
            SortError::Io(e) => HistoryError::Io(e),
            other => HistoryError::Sort(other),
        }
    }
}
