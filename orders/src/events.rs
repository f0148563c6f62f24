//! `orders events`: the event history as a file analysts' tools open unchanged — NDJSON, CSV or
//! Parquet, one column schema, in one deterministic order (`occurredAt`, `orderId`, `version`).
//!
//! It streams: on SQLite the log is read a page at a time in export order (keyset pages over an
//! index, [`EventExport`]), so memory holds a page and a Parquet row group, whatever the size
//! of the log. DynamoDB has no index in that order: the matching events are read (parallel
//! Scan segments, or a Query per order for `--order` / `--customer`) into an external merge
//! sort ([`ExternalSort`]), which holds one run of [`SORT_RUN`] events in memory and spills
//! the rest to temporary files — see [`sorted_from_dynamo`].

use std::fs::File;
use std::io::{BufWriter, IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use events_schema::envelope::{format_timestamp, parse_timestamp};
use events_schema::{CustomerId, EventEnvelope, EventType, LineItem, OrderEvent, OrderId};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use order_adapters_sqlite::SqliteEventStore;
use order_ports::{
    CustomerOrdersQuery, EventExport, ExportFilter, ExportPosition, MAX_CUSTOMER_ORDERS_LIMIT,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::backend::{open_log_and_view, BackendArgs, LogAndView};
use crate::external_sort::{ExternalSort, SortError, Sorted};
use crate::CliError;

/// The columns, in order: the wire names of the envelope, then of the payload's fields.
pub const COLUMNS: [&str; 12] = [
    "orderId",
    "version",
    "eventId",
    "eventType",
    "schemaVersion",
    "occurredAt",
    "correlationId",
    "customerId",
    "currency",
    "items",
    "total",
    "reason",
];

/// The payload columns an event of `event_type` fills; its other payload columns are null. The
/// one place that says so: the rows, `--help` and the export's tests follow it.
pub const fn payload_columns(event_type: EventType) -> &'static [&'static str] {
    match event_type {
        EventType::OrderReceived => &["customerId", "currency", "items"],
        EventType::OrderProcessingStarted => &[],
        EventType::OrderCompleted => &["total"],
        EventType::OrderFailed => &["reason"],
        EventType::OrderCancelled => &["reason"],
    }
}

/// `--type`'s help: the event types, from [`EventType::ALL`].
fn event_types_help() -> String {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    format!("Only events of this type: {}", names.join(", "))
}

/// `orders events --help`'s long text, its lists made from [`COLUMNS`] and [`EventType::ALL`].
fn events_long_help() -> String {
    let by_type: Vec<String> = EventType::ALL
        .iter()
        .filter(|t| !payload_columns(**t).is_empty())
        .map(|t| format!("{} ({t})", payload_columns(*t).join(", ")))
        .collect();
    format!(
        "\
Columns, in this order (names as in the wire format): {envelope}, then the payload's fields: \
{by_type}; a field the event does not carry is null (empty in CSV). Rows are ordered by \
occurredAt, then orderId, then version.

Filters combine: --since is inclusive, --until exclusive, both RFC 3339 (e.g. \
2024-05-01T00:00:00Z); a bound with sub-millisecond digits is exact on both backends (events are \
stored to the millisecond). --customer selects the orders whose OrderReceived names that customer.

On --backend aws the log has no time-ordered index: --order reads one order with a Query; \
--customer lists the customer's orders on the status table's byCustomer index (an eventually \
consistent index: an order received a moment ago may be missed) and reads each with a Query; \
otherwise the table is read by --scan-segments parallel Scan segments. The matching events are \
then sorted in bounded memory: runs of 100000 events are sorted and spilled to temporary files \
(in $TMPDIR, about 400 bytes an event), then merged; nothing is written to the output before \
the read ends.",
        envelope = COLUMNS[..7].join(", "),
        by_type = by_type.join(", "),
    )
}

/// Events read from the store at a time.
const PAGE: usize = 5_000;
/// Bytes buffered before a write to the output (one system call per buffer).
const OUT_BUFFER: usize = 256 * 1024;
/// Rows per Parquet row group: what the writer holds in memory before it flushes.
const ROW_GROUP: usize = 64 * 1024;
/// Events `--backend aws` sorts in memory before it spills a sorted run to a temporary file
/// (a decoded event takes a few hundred bytes: some 50 MB).
pub const SORT_RUN: usize = 100_000;
/// Orders whose histories `--customer` reads at once on `--backend aws`.
const CUSTOMER_QUERIES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line; `items` a nested array.
    Ndjson,
    /// A header line, then one row per event; `items` as JSON text.
    Csv,
    /// Apache Parquet (Snappy); `items` a list of structs, `occurredAt` a UTC timestamp (ms).
    /// Needs --output.
    Parquet,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = events_long_help())]
pub struct EventsArgs {
    /// Only this order's events.
    #[arg(long)]
    order: Option<String>,
    /// Only the events of this customer's orders.
    #[arg(long)]
    customer: Option<String>,
    #[arg(long = "type", value_name = "TYPE", help = event_types_help())]
    event_type: Option<String>,
    /// Only events that occurred at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only events that occurred before this instant (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// The file format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Write to this file instead of stdout (required for parquet).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// --backend aws: parallel Scan segments the event table is read with (1 to 1000000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    scan_segments: u32,
    /// --backend aws: events sorted in memory per spilled run (tests force spills with a small
    /// one).
    #[arg(long, hide = true, default_value_t = SORT_RUN)]
    sort_run_events: usize,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

/// Reads the filter flags; one clear message for the first bad one.
fn filter(args: &EventsArgs) -> Result<ExportFilter, CliError> {
    let bad = |message: String| CliError::Config(message);
    let time = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|s| {
                parse_timestamp(s).ok_or_else(|| {
                    bad(format!(
                        "--{flag} {s:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z"
                    ))
                })
            })
            .transpose()
    };
    let filter = ExportFilter {
        order_id: args
            .order
            .as_deref()
            .map(|s| OrderId::parse(s).map_err(|_| bad(format!("--order {s:?} is not a UUID"))))
            .transpose()?,
        customer_id: args
            .customer
            .as_deref()
            .map(|s| {
                CustomerId::parse(s).map_err(|_| {
                    bad(format!(
                        "--customer {s:?} is not a customer id (1 to 64 characters of \
                         [A-Za-z0-9-_.:@])"
                    ))
                })
            })
            .transpose()?,
        event_type: args
            .event_type
            .as_deref()
            .map(|s| {
                s.parse::<EventType>().map_err(|_| {
                    let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                    bad(format!(
                        "--type {s:?} is not an event type ({})",
                        known.join(", ")
                    ))
                })
            })
            .transpose()?,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since >= until {
            return Err(bad(format!(
                "--since {} is not before --until {}",
                format_timestamp(since),
                format_timestamp(until)
            )));
        }
    }
    Ok(filter)
}

pub async fn events(args: EventsArgs) -> Result<(), CliError> {
    let filter = filter(&args)?;
    if args.format == Format::Parquet && args.output.is_none() {
        return Err(CliError::Config(
            "--format parquet needs --output FILE (Parquet cannot be streamed to stdout)".into(),
        ));
    }
    let log = open_log_and_view(&args.backend, "events").await?;
    let mut source = match &log.local {
        Some(db) => Source::Sqlite {
            store: db.event_store(),
            next: None,
            done: false,
        },
        None => Source::Sorted(
            sorted_from_dynamo(&log, &filter, args.scan_segments, args.sort_run_events).await?,
        ),
    };
    // Counting is a whole extra read of the log (a Scan on DynamoDB): only for a bar one sees.
    let bar = progress(
        if filter == ExportFilter::default() && std::io::stderr().is_terminal() {
            log.scan.count_events().await.ok()
        } else {
            None
        },
    );
    let result = match &args.output {
        Some(path) => export_to_file(path, args.format, &mut source, &filter, &bar).await,
        None => {
            let stdout = std::io::stdout();
            let mut sink = sink(
                args.format,
                Box::new(BufWriter::with_capacity(OUT_BUFFER, stdout)),
            )?;
            copy(&mut source, &filter, sink.as_mut(), &bar).await?;
            sink.finish()
        }
    };
    bar.finish_and_clear();
    result
}

/// Writes the file, or removes what was written of it: a failed export leaves no truncated
/// file behind that a tool would read as complete.
async fn export_to_file(
    path: &Path,
    format: Format,
    source: &mut Source,
    filter: &ExportFilter,
    bar: &ProgressBar,
) -> Result<(), CliError> {
    let file = File::create(path)
        .map_err(|e| CliError::Config(format!("cannot create {}: {e}", path.display())))?;
    let written = async {
        let mut sink = sink(format, Box::new(BufWriter::with_capacity(OUT_BUFFER, file)))?;
        copy(source, filter, sink.as_mut(), bar).await?;
        sink.finish()
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

async fn copy(
    source: &mut Source,
    filter: &ExportFilter,
    sink: &mut dyn Sink,
    bar: &ProgressBar,
) -> Result<(), CliError> {
    loop {
        let page = source.next_page(filter).await?;
        if page.is_empty() {
            return Ok(());
        }
        for event in &page {
            sink.write(event)?;
        }
        bar.inc(page.len() as u64);
    }
}

fn progress(total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{wide_bar} {human_pos}/{human_len} events  {per_sec}  ETA {eta}"
    } else {
        "{spinner} {human_pos} events  {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

// ------------------------------------------------------------------------------------ sources

enum Source {
    Sqlite {
        store: SqliteEventStore,
        /// The next page, already being read (on the blocking pool) while this one is written:
        /// reading and decoding, and encoding and writing, each keep a core busy.
        next: Option<tokio::task::JoinHandle<Result<Vec<EventEnvelope>, CliError>>>,
        done: bool,
    },
    Sorted(Sorted<EventEnvelope, ExportPosition>),
}

impl Source {
    /// The next events in export order; empty at the end.
    async fn next_page(&mut self, filter: &ExportFilter) -> Result<Vec<EventEnvelope>, CliError> {
        match self {
            Source::Sqlite { store, next, done } => {
                if *done {
                    return Ok(Vec::new());
                }
                let page = match next.take() {
                    Some(reading) => reading
                        .await
                        .map_err(|e| CliError::Config(format!("reading the log stopped: {e}")))??,
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
            Source::Sorted(sorted) => sorted
                .by_ref()
                .take(PAGE)
                .collect::<Result<_, _>>()
                .map_err(sort_error),
        }
    }
}

fn sort_error(e: SortError) -> CliError {
    match e {
        SortError::Io(e) => CliError::Io(e),
        other => CliError::Config(other.to_string()),
    }
}

/// The matching events of a DynamoDB log, sorted in export order through an external merge
/// sort. The log has no index in that order, so every matching event is read before the first
/// is returned: one order's history with a consistent Query (`--order`); a customer's orders
/// from the status table's `byCustomer` index, each read with a Query (`--customer`, without
/// scanning the table); otherwise the whole table with `segments` parallel Scan segments.
/// Memory: one run of `run_size` events, the pages in flight (two 1 MB Scan pages per segment,
/// or [`CUSTOMER_QUERIES`] histories), and a read buffer per spilled run being merged.
async fn sorted_from_dynamo(
    log: &LogAndView,
    filter: &ExportFilter,
    segments: u32,
    run_size: usize,
) -> Result<Sorted<EventEnvelope, ExportPosition>, CliError> {
    let mut sorter = ExternalSort::new(run_size, ExportPosition::of);
    // A customer is named only by the OrderReceived of each order.
    let mut keep_history = |history: Vec<EventEnvelope>| -> Result<(), CliError> {
        let customer = history.iter().find_map(|e| e.event.customer_id().cloned());
        for event in history {
            if filter.matches(&event, customer.as_ref()) {
                sorter.push(event).map_err(sort_error)?;
            }
        }
        Ok(())
    };
    if let Some(order_id) = filter.order_id {
        keep_history(log.events.load(order_id).await?)?;
    } else if let Some(customer) = &filter.customer_id {
        let mut cursor = None;
        loop {
            let page = log
                .status
                .list_by_customer(&CustomerOrdersQuery {
                    customer_id: customer.clone(),
                    status: None,
                    limit: MAX_CUSTOMER_ORDERS_LIMIT,
                    cursor: cursor.take(),
                })
                .await?;
            let mut histories = futures::stream::iter(&page.records)
                .map(|record| async move {
                    log.events
                        .load(record.order_id)
                        .await
                        .map_err(|source| CliError::Order {
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
        let table = log.dynamo_events.as_ref().ok_or_else(|| {
            CliError::Config("internal: the DynamoDB event table was not opened".into())
        })?;
        let mut pages = table.scan_pages(segments)?;
        while let Some(page) = pages.next().await {
            for event in page? {
                // No customer here: --customer took the branch above.
                if filter.matches(&event, None) {
                    sorter.push(event).map_err(sort_error)?;
                }
            }
        }
    }
    tracing::debug!(
        spilled_runs = sorter.spilled_runs(),
        "read the matching events into the external sort"
    );
    sorter.finish().map_err(sort_error)
}

// -------------------------------------------------------------------------------------- sinks

trait Sink: Send {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), CliError>;
    fn finish(self: Box<Self>) -> Result<(), CliError>;
}

fn sink(format: Format, out: Box<dyn Write + Send>) -> Result<Box<dyn Sink>, CliError> {
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

/// One event as a row: the envelope, then the payload's fields (`None` where the event has no
/// such field).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a, Items> {
    order_id: String,
    version: u32,
    event_id: String,
    event_type: &'static str,
    schema_version: u32,
    occurred_at: String,
    correlation_id: &'a str,
    customer_id: Option<&'a str>,
    currency: Option<&'a str>,
    items: Option<Items>,
    total: Option<i64>,
    reason: Option<&'a str>,
}

#[deny(clippy::wildcard_enum_match_arm)]
fn row<'a, Items>(
    event: &'a EventEnvelope,
    items: impl FnOnce(&'a [LineItem]) -> Items,
) -> Row<'a, Items> {
    let mut row = Row {
        order_id: event.order_id.to_string(),
        version: event.version.get(),
        event_id: event.event_id.to_string(),
        event_type: event.event_type().as_str(),
        schema_version: event.event.schema_version(),
        occurred_at: format_timestamp(event.occurred_at),
        correlation_id: event.correlation_id.as_str(),
        customer_id: None,
        currency: None,
        items: None,
        total: None,
        reason: None,
    };
    match &event.event {
        OrderEvent::OrderReceived(order) => {
            row.customer_id = Some(order.customer_id.as_str());
            row.currency = Some(order.currency.as_str());
            row.items = Some(items(&order.items));
        }
        OrderEvent::OrderProcessingStarted => {}
        OrderEvent::OrderCompleted { total } => row.total = Some(*total),
        OrderEvent::OrderFailed { reason } => row.reason = Some(reason),
        OrderEvent::OrderCancelled { reason } => row.reason = reason.as_deref(),
    }
    row
}

struct Ndjson(Box<dyn Write + Send>);

impl Sink for Ndjson {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), CliError> {
        serde_json::to_writer(&mut self.0, &row(event, |items| items))
            .map_err(|e| CliError::Io(e.into()))?;
        self.0.write_all(b"\n")?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        Ok(self.0.flush()?)
    }
}

struct Csv(csv::Writer<Box<dyn Write + Send>>);

fn csv_error(e: csv::Error) -> CliError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => CliError::Io(e),
        other => CliError::Config(format!("cannot write CSV: {other:?}")),
    }
}

impl Sink for Csv {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), CliError> {
        let items_json = |items: &[LineItem]| serde_json::to_string(items).unwrap_or_default();
        self.0.serialize(row(event, items_json)).map_err(csv_error)
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        self.0.flush()?;
        Ok(())
    }
}

/// The Arrow schema of the Parquet file.
pub fn arrow_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("orderId", false),
        Field::new("version", DataType::UInt32, false),
        text("eventId", false),
        text("eventType", false),
        Field::new("schemaVersion", DataType::UInt32, false),
        Field::new(
            "occurredAt",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        text("correlationId", false),
        text("customerId", true),
        text("currency", true),
        Field::new("items", DataType::List(item_field()), true),
        Field::new("total", DataType::Int64, true),
        text("reason", true),
    ]))
}

fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new("productId", DataType::Utf8, false),
        Field::new("quantity", DataType::UInt32, false),
        Field::new("unitPrice", DataType::Int64, false),
    ])
}

fn item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(item_fields()), false))
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

    fn push(&mut self, event: &EventEnvelope) -> Result<(), CliError> {
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
        let end = i32::try_from(self.product_id.len())
            .map_err(|_| CliError::Config("too many items in one Parquet batch".into()))?;
        self.item_offsets.push(end);
        self.total.push(row.total);
        self.reason.push(row.reason.map(str::to_owned));
        Ok(())
    }

    /// The batch, leaving the columns empty.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, CliError> {
        let c = std::mem::take(self);
        let items = StructArray::try_new(
            item_fields(),
            vec![
                Arc::new(StringArray::from(c.product_id)) as ArrayRef,
                Arc::new(UInt32Array::from(c.quantity)),
                Arc::new(Int64Array::from(c.unit_price)),
            ],
            None,
        )
        .map_err(arrow_error)?;
        let offsets: Vec<i32> = std::iter::once(0).chain(c.item_offsets).collect();
        let items = ListArray::try_new(
            item_field(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(items),
            Some(NullBuffer::from(c.items_valid)),
        )
        .map_err(arrow_error)?;
        RecordBatch::try_new(
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
        )
        .map_err(arrow_error)
    }
}

fn arrow_error(e: arrow_schema::ArrowError) -> CliError {
    CliError::Config(format!("cannot build the Parquet batch: {e}"))
}

fn parquet_error(e: parquet::errors::ParquetError) -> CliError {
    match e {
        parquet::errors::ParquetError::External(e) => match e.downcast::<std::io::Error>() {
            Ok(io) => CliError::Io(*io),
            Err(e) => CliError::Config(format!("cannot write Parquet: {e}")),
        },
        other => CliError::Config(format!("cannot write Parquet: {other}")),
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
    fn new(out: Box<dyn Write + Send>) -> Result<Self, CliError> {
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

    fn flush_batch(&mut self) -> Result<(), CliError> {
        if self.columns.len() > 0 {
            let batch = self.columns.take(&self.schema)?;
            self.writer.write(&batch).map_err(parquet_error)?;
        }
        Ok(())
    }
}

impl Sink for Parquet {
    fn write(&mut self, event: &EventEnvelope) -> Result<(), CliError> {
        self.columns.push(event)?;
        if self.columns.len() >= BATCH {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CliError> {
        self.flush_batch()?;
        let mut out = self.writer.into_inner().map_err(parquet_error)?;
        Ok(out.flush()?)
    }
}

#[cfg(test)]
#[path = "events_props.rs"]
mod props;
