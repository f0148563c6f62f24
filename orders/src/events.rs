//! `orders events`: the flags of the export, and its wiring to the backend; the export itself
//! (rows, formats, the external sort) is `order_history::export`.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use events_schema::envelope::{format_timestamp, parse_timestamp};
use events_schema::{CustomerId, EventType, OrderId};
use order_history::export::SORT_RUN;
use order_history::{export_to, export_to_file, payload_columns, sort_matching, Source, COLUMNS};
use order_ports::ExportFilter;

use crate::backend::{open_log_and_view, BackendArgs};
use crate::progress::events_bar;
use crate::CliError;

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

impl From<Format> for order_history::Format {
    fn from(format: Format) -> Self {
        match format {
            Format::Ndjson => Self::Ndjson,
            Format::Csv => Self::Csv,
            Format::Parquet => Self::Parquet,
        }
    }
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
    let mut source = match (&log.local, &log.dynamo_events) {
        (Some(db), _) => Source::paged(std::sync::Arc::new(db.event_store())),
        (None, Some(table)) => {
            let segments = args.scan_segments;
            let matching = sort_matching(
                &filter,
                log.events.as_ref(),
                log.status.as_ref(),
                || table.scan_pages(segments),
                args.sort_run_events,
            )
            .await?;
            tracing::debug!(
                spilled_runs = matching.spilled_runs,
                "read the matching events into the external sort"
            );
            Source::Sorted(matching.sorted)
        }
        (None, None) => {
            return Err(CliError::Config(
                "internal: the DynamoDB event table was not opened".into(),
            ))
        }
    };
    // Counting is a whole extra read of the log (a Scan on DynamoDB): only for a bar one sees.
    let bar = events_bar(
        if filter == ExportFilter::default() && std::io::stderr().is_terminal() {
            log.scan.count_events().await.ok()
        } else {
            None
        },
    );
    let progress = |events| bar.inc(events);
    let format = args.format.into();
    let result = match &args.output {
        Some(path) => export_to_file(path, format, &mut source, &filter, &progress).await,
        None => export_to(std::io::stdout(), format, &mut source, &filter, &progress).await,
    };
    bar.finish_and_clear();
    Ok(result?)
}
