//! The export: the event history as a file analysts' tools open unchanged — NDJSON, CSV or
//! Parquet, one column schema ([`export_row`](crate::export_row)), in one deterministic order
//! (`occurredAt`, `orderId`, `version`).
//!
//! It streams: from a store that pages in export order ([`EventExport`]: SQLite, keyset pages
//! over an index) memory holds a page and a Parquet row group, whatever the size of the log. A
//! store with no index in that order (DynamoDB) is read into an external merge sort
//! ([`ExternalSort`]), which holds one run of [`SORT_RUN`] events in memory and spills the rest
//! to temporary files — see [`sort_matching`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use events_schema::{EventEnvelope, LineItem};
use futures::stream::BoxStream;
use futures::StreamExt;
use order_ports::{
    CustomerOrdersQuery, EventExport, EventStore, ExportFilter, ExportPosition, StatusStore,
    StoreError, MAX_CUSTOMER_ORDERS_LIMIT,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::export_row::{arrow_schema, item_field, item_fields, row, write_json_line, COLUMNS};
use crate::external_sort::{ExternalSort, Sorted};
use crate::HistoryError;

/// Events read from the store at a time.
const PAGE: usize = 5_000;
/// Bytes buffered before a write to the output (one system call per buffer).
const OUT_BUFFER: usize = 256 * 1024;
/// Rows per Parquet row group: what the writer holds in memory before it flushes.
const ROW_GROUP: usize = 64 * 1024;
/// Events [`sort_matching`] sorts in memory before it spills a sorted run to a temporary file
/// (a decoded event takes a few hundred bytes: some 50 MB).
pub const SORT_RUN: usize = 100_000;
/// Orders whose histories [`sort_matching`] reads at once for a customer.
const CUSTOMER_QUERIES: usize = 16;

/// The file formats of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line; `items` a nested array.
    Ndjson,
    /// A header line, then one row per event; `items` as JSON text.
    Csv,
    /// Apache Parquet (Snappy); `items` a list of structs, `occurredAt` a UTC timestamp (ms).
    /// Cannot be streamed: it needs a file.
    Parquet,
}

/// Writes the matching events of `source` to `out` as `format`; `progress` hears how many
/// events each page added.
pub async fn export_to(
    out: impl Write + Send + 'static,
    format: Format,
    source: &mut Source,
    filter: &ExportFilter,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), HistoryError> {
    let mut sink = sink(format, Box::new(BufWriter::with_capacity(OUT_BUFFER, out)))?;
    copy(source, filter, sink.as_mut(), progress).await?;
    sink.finish()
}

/// Writes the file, or removes what was written of it: a failed export leaves no truncated
/// file behind that a tool would read as complete.
pub async fn export_to_file(
    path: &Path,
    format: Format,
    source: &mut Source,
    filter: &ExportFilter,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), HistoryError> {
    let file = File::create(path).map_err(|source| HistoryError::Create {
        path: path.to_owned(),
        source,
    })?;
    let written = export_to(file, format, source, filter, progress).await;
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

async fn copy(
    source: &mut Source,
    filter: &ExportFilter,
    sink: &mut dyn Sink,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), HistoryError> {
    loop {
        let page = source.next_page(filter).await?;
        if page.is_empty() {
            return Ok(());
        }
        for event in &page {
            sink.write(event)?;
        }
        progress(page.len() as u64);
    }
}

// ------------------------------------------------------------------------------------ sources

/// Where the exported events come from, already in export order.
pub enum Source {
    /// A store that pages in export order.
    Paged {
        store: Arc<dyn EventExport>,
        /// The next page, already being read (on another task) while this one is written:
        /// reading and decoding, and encoding and writing, each keep a core busy.
        next: Option<tokio::task::JoinHandle<Result<Vec<EventEnvelope>, HistoryError>>>,
        done: bool,
    },
    /// The events [`sort_matching`] sorted.
    Sorted(Sorted<EventEnvelope, ExportPosition>),
}

impl Source {
    /// The pages of `store`, from the start of the export.
    pub fn paged(store: Arc<dyn EventExport>) -> Self {
        Source::Paged {
            store,
            next: None,
            done: false,
        }
    }

    /// The next events in export order; empty at the end.
    pub async fn next_page(
        &mut self,
        filter: &ExportFilter,
    ) -> Result<Vec<EventEnvelope>, HistoryError> {
        match self {
            Source::Paged { store, next, done } => {
                if *done {
                    return Ok(Vec::new());
                }
                let page = match next.take() {
                    Some(reading) => reading.await??,
                    None => store.page(filter, None, PAGE).await?,
                };
                *done = page.len() < PAGE;
                if let (false, Some(last)) = (*done, page.last()) {
                    let (store, filter, after) =
                        (store.clone(), filter.clone(), ExportPosition::of(last));
                    *next = Some(tokio::spawn(async move {
                        Ok(store.page(&filter, Some(&after), PAGE).await?)
                    }));
                }
                Ok(page)
            }
            Source::Sorted(sorted) => Ok(sorted.by_ref().take(PAGE).collect::<Result<_, _>>()?),
        }
    }
}

/// The matching events of a log with no index in export order, sorted, and how many runs the
/// sort spilled to disk.
pub struct MatchingEvents {
    pub sorted: Sorted<EventEnvelope, ExportPosition>,
    pub spilled_runs: usize,
}

/// The matching events of a log with no index in export order (DynamoDB), sorted in export
/// order through an external merge sort. Every matching event is read before the first is
/// returned: one order's history with a consistent `load` (`filter.order_id`); a customer's
/// orders from `status`'s by-customer listing, each read with a `load`
/// (`filter.customer_id`, without reading the whole log); otherwise the whole log, as the
/// pages of `scan_all` (opened only then). Memory: one run of `run_size` events, the pages in
/// flight (what `scan_all` holds, or [`CUSTOMER_QUERIES`] histories), and a read buffer per
/// spilled run being merged.
pub async fn sort_matching<ScanAll>(
    filter: &ExportFilter,
    events: &dyn EventStore,
    status: &dyn StatusStore,
    scan_all: ScanAll,
    run_size: usize,
) -> Result<MatchingEvents, HistoryError>
where
    ScanAll:
        FnOnce() -> Result<BoxStream<'static, Result<Vec<EventEnvelope>, StoreError>>, StoreError>,
{
    let mut sorter = ExternalSort::new(run_size, ExportPosition::of);
    // A customer is named only by the OrderReceived of each order.
    let mut keep_history = |history: Vec<EventEnvelope>| -> Result<(), HistoryError> {
        let customer = history.iter().find_map(|e| e.event.customer_id().cloned());
        for event in history {
            if filter.matches(&event, customer.as_ref()) {
                sorter.push(event)?;
            }
        }
        Ok(())
    };
    if let Some(order_id) = filter.order_id {
        keep_history(events.load(order_id).await?)?;
    } else if let Some(customer) = &filter.customer_id {
        let mut cursor = None;
        loop {
            let page = status
                .list_by_customer(&CustomerOrdersQuery {
                    customer_id: customer.clone(),
                    status: None,
                    limit: MAX_CUSTOMER_ORDERS_LIMIT,
                    cursor: cursor.take(),
                })
                .await?;
            let mut histories = futures::stream::iter(&page.records)
                .map(|record| async move {
                    events
                        .load(record.order_id)
                        .await
                        .map_err(|source| HistoryError::Order {
                            order_id: record.order_id,
                            source,
                        })
                })
                .buffer_unordered(CUSTOMER_QUERIES);
            while let Some(history) = histories.next().await {
                keep_history(history?)?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    } else {
        let mut pages = scan_all()?;
        while let Some(page) = pages.next().await {
            for event in page? {
                // No customer here: `customer_id` took the branch above.
                if filter.matches(&event, None) {
                    sorter.push(event)?;
                }
            }
        }
    }
    let spilled_runs = sorter.spilled_runs();
    Ok(MatchingEvents {
        sorted: sorter.finish()?,
        spilled_runs,
    })
}

// -------------------------------------------------------------------------------------- sinks

/// Where rows go, one format each.
pub trait Sink: Send {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), HistoryError>;
    /// Flushes what is buffered (for Parquet, writes the footer without which the file is
    /// unreadable).
    fn finish(self: Box<Self>) -> Result<(), HistoryError>;
}

/// The sink writing `format` to `out` (unbuffered: buffer `out` if it is a file or a pipe).
pub fn sink(format: Format, out: Box<dyn Write + Send>) -> Result<Box<dyn Sink>, HistoryError> {
    Ok(match format {
        Format::Ndjson => Box::new(Ndjson(out)),
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out);
            // Written by hand: serde writes a header only before the first row, and an empty
            // export must still say what its columns are.
            writer.write_record(COLUMNS).map_err(csv_error)?;
            Box::new(Csv(writer))
        }
        Format::Parquet => Box::new(Parquet::new(out)?),
    })
}

struct Ndjson(Box<dyn Write + Send>);

impl Sink for Ndjson {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), HistoryError> {
        write_json_line(event, &mut self.0).map_err(|e| HistoryError::Io(e.into()))
    }

    fn finish(mut self: Box<Self>) -> Result<(), HistoryError> {
        Ok(self.0.flush()?)
    }
}

struct Csv(csv::Writer<Box<dyn Write + Send>>);

fn csv_error(e: csv::Error) -> HistoryError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => HistoryError::Io(e),
        other => HistoryError::Csv(format!("{other:?}")),
    }
}

impl Sink for Csv {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), HistoryError> {
        let items_json = |items: &[LineItem]| serde_json::to_string(items).unwrap_or_default();
        self.0.serialize(row(event, items_json)).map_err(csv_error)
    }

    fn finish(mut self: Box<Self>) -> Result<(), HistoryError> {
        self.0.flush()?;
        Ok(())
    }
}

/// Rows collected column by column until a batch is full.
#[derive(Default)]
struct Columns {
    order_id: Vec<String>,
    version: Vec<u32>,
    event_id: Vec<String>,
    event_type: Vec<&'static str>,
    schema_version: Vec<u32>,
    occurred_at: Vec<i64>,
    correlation_id: Vec<String>,
    customer_id: Vec<Option<String>>,
    currency: Vec<Option<String>>,
    /// End offset of each row's items in the three item columns; `items_valid` marks rows
    /// that have items at all (an empty list and no list are not the same thing).
    item_offsets: Vec<i32>,
    items_valid: Vec<bool>,
    product_id: Vec<String>,
    quantity: Vec<u32>,
    unit_price: Vec<i64>,
    total: Vec<Option<i64>>,
    reason: Vec<Option<String>>,
}

impl Columns {
    fn len(&self) -> usize {
        self.order_id.len()
    }

    fn push(&mut self, event: &EventEnvelope) -> Result<(), HistoryError> {
        let row = row(event, |items| items);
        self.order_id.push(row.order_id);
        self.version.push(row.version);
        self.event_id.push(row.event_id);
        self.event_type.push(row.event_type);
        self.schema_version.push(row.schema_version);
        self.occurred_at.push(event.occurred_at.timestamp_millis());
        self.correlation_id.push(row.correlation_id.to_owned());
        self.customer_id.push(row.customer_id.map(str::to_owned));
        self.currency.push(row.currency.map(str::to_owned));
        self.items_valid.push(row.items.is_some());
        for item in row.items.unwrap_or_default() {
            self.product_id.push(item.product_id.as_str().to_owned());
            self.quantity.push(item.quantity);
            self.unit_price.push(item.unit_price);
        }
        let end = i32::try_from(self.product_id.len()).map_err(|_| HistoryError::TooManyItems)?;
        self.item_offsets.push(end);
        self.total.push(row.total);
        self.reason.push(row.reason.map(str::to_owned));
        Ok(())
    }

    /// The batch, leaving the columns empty.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, HistoryError> {
        let c = std::mem::take(self);
        let items = StructArray::try_new(
            item_fields(),
            vec![
                Arc::new(StringArray::from(c.product_id)) as ArrayRef,
                Arc::new(UInt32Array::from(c.quantity)),
                Arc::new(Int64Array::from(c.unit_price)),
            ],
            None,
        )?;
        let offsets: Vec<i32> = std::iter::once(0).chain(c.item_offsets).collect();
        let items = ListArray::try_new(
            item_field(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(items),
            Some(NullBuffer::from(c.items_valid)),
        )?;
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(c.order_id)) as ArrayRef,
                Arc::new(UInt32Array::from(c.version)),
                Arc::new(StringArray::from(c.event_id)),
                Arc::new(StringArray::from(c.event_type)),
                Arc::new(UInt32Array::from(c.schema_version)),
                Arc::new(TimestampMillisecondArray::from(c.occurred_at).with_timezone("UTC")),
                Arc::new(StringArray::from(c.correlation_id)),
                Arc::new(StringArray::from(c.customer_id)),
                Arc::new(StringArray::from(c.currency)),
                Arc::new(items),
                Arc::new(Int64Array::from(c.total)),
                Arc::new(StringArray::from(c.reason)),
            ],
        )?)
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> HistoryError {
    match e {
        parquet::errors::ParquetError::External(e) => match e.downcast::<std::io::Error>() {
            Ok(io) => HistoryError::Io(*io),
            Err(e) => HistoryError::Parquet(e.to_string()),
        },
        other => HistoryError::Parquet(other.to_string()),
    }
}

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH: usize = 8 * 1024;

struct Parquet {
    schema: SchemaRef,
    writer: ArrowWriter<Box<dyn Write + Send>>,
    columns: Columns,
}

impl Parquet {
    fn new(out: Box<dyn Write + Send>) -> Result<Self, HistoryError> {
        let schema = arrow_schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let writer =
            ArrowWriter::try_new(out, schema.clone(), Some(properties)).map_err(parquet_error)?;
        Ok(Parquet {
            schema,
            writer,
            columns: Columns::default(),
        })
    }

    fn flush_batch(&mut self) -> Result<(), HistoryError> {
        if self.columns.len() > 0 {
            let batch = self.columns.take(&self.schema)?;
            self.writer.write(&batch).map_err(parquet_error)?;
        }
        Ok(())
    }
}

impl Sink for Parquet {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), HistoryError> {
        self.columns.push(event)?;
        if self.columns.len() >= BATCH {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), HistoryError> {
        self.flush_batch()?;
        let mut out = self.writer.into_inner().map_err(parquet_error)?;
        Ok(out.flush()?)
    }
}

#[cfg(test)]
#[path = "export_props.rs"]
mod props;
