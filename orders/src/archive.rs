//! `orders archive`, wired: the flags, the SQLite log read in sequence order, the progress bar
//! and the closing line. The archive itself (layout, manifest, day files) is
//! `order_history::archive`.

use std::path::PathBuf;

use order_history::archive::{MANIFEST, PARTITION};
use order_history::{Archive, COLUMNS};

use crate::backend::{open_existing_sqlite, Backend, BackendArgs};
use crate::progress::events_bar;
use crate::CliError;

/// Events read from the log per page.
const PAGE: usize = 5_000;

fn archive_long_help() -> String {
    format!(
        "\
Layout: DIR/{PARTITION}=YYYY-MM-DD/part-<first seq>-<last seq>.parquet, one partition per UTC day \
of occurredAt (Hive style: Athena's partition projection and DuckDB's hive_partitioning read \
it), and DIR/{MANIFEST}, which records the last global sequence archived. Each file has the \
columns of `orders events --format parquet`: {columns}.

Incremental: a run archives the events written after the manifest's sequence, up to the log's \
head when it starts, in new files; it never rewrites a file. Run it again to add what is new. \
A run that stops half-way leaves nothing the next run keeps: its files are removed and written \
again. One run at a time per DIR (a lock file).

The shipped queries (docs/queries/*.sql) read the archive as a table named order_events; with \
DuckDB: CREATE VIEW order_events AS SELECT * FROM read_parquet('DIR/{PARTITION}=*/*.parquet', \
hive_partitioning = true). Reads the log only: safe while `orders serve` runs on the same file. \
A progress bar is drawn on stderr when it is a terminal.",
        columns = COLUMNS.join(", "),
    )
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = archive_long_help())]
pub struct ArchiveArgs {
    /// The archive directory (created if missing; a second run adds what is new).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

pub async fn archive(args: ArchiveArgs) -> Result<(), CliError> {
    if args.backend.backend == Backend::Aws {
        return Err(CliError::Config(
            "archive: reads the SQLite log only (--backend sqlite); on AWS the archive is \
             written from the event table's stream"
                .into(),
        ));
    }
    let db = open_existing_sqlite(&args.backend.data, "archive")?;
    let store = db.event_store();
    let mut archive = Archive::open(&args.output)?;
    let head = store.head_seq().await?;
    let from = archive.manifest().last_seq;
    // Drawn only when stderr is a terminal; the sequence bounds the events to go.
    let bar = events_bar(Some(head.saturating_sub(from)));
    let progress = |events| bar.inc(events);
    let appended = archive
        .append(
            head,
            |after| {
                let store = store.clone();
                async move { store.read_feed(after, PAGE).await }
            },
            &progress,
        )
        .await;
    bar.finish_and_clear();
    let appended = appended?;
    if appended.events == 0 {
        println!(
            "nothing new: {} already holds the log up to sequence {}",
            args.output.display(),
            appended.last_seq
        );
    } else {
        println!(
            "archived {} events (sequence {} to {}) in {} new files under {}",
            appended.events,
            from + 1,
            appended.last_seq,
            appended.files.len(),
            args.output.display()
        );
    }
    Ok(())
}
