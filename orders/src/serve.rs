//! `orders serve`: the API and every worker in one process — on one SQLite file, or on AWS
//! resources (real or emulated) with pollers in place of the Lambdas' event source mappings.
//!
//! Wiring only; the workers drive the same handler libs as the Lambdas:
//!
//! * the processor drains the work queue with several concurrent receivers
//!   ([`processor::run_worker`]) — the SQLite queue or SQS;
//! * the projector and the notifier are subscribers ([`order_ports::run_subscriber`]) over a
//!   [`Feed`]: the SQLite log's global sequence with durable checkpoints ([`SqliteFeed`]), or
//!   the event table's DynamoDB stream with checkpoints in memory ([`StreamFeed`]).

use std::net::SocketAddr;
use std::time::Duration;

use events_schema::ProcessingPolicy;
use ingest::AppState;
use order_ports::aws::{StartAt, StreamFeed};
use order_ports::sqlite::SqliteFeed;
use order_ports::Feed;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backend::{self, BackendArgs, Opened, Ports};
use crate::CliError;

/// The subscribers' names: in logs, and the SQLite checkpoints' keys.
const PROJECTOR: &str = "projector";
const NOTIFIER: &str = "notifier";

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
With --backend aws the same handler libraries run as in the Lambdas, but in this process: the \
processor long-polls the SQS work queue, and the projector and the notifier each poll the event \
table's DynamoDB stream (shards in parent-before-child order). Stream positions are kept in \
memory only: after a restart the projector replays the stream from TRIM_HORIZON (harmless, its \
version guard skips events already applied) and the notifier starts at LATEST, so completions \
written while serve was down are not notified unless --replay-notifications is given (which \
re-publishes every completion still in the stream; subscribers deduplicate on eventId). Do not \
run this next to the deployed stream Lambdas unless you want two consumers.")]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "ORDERS_LISTEN", default_value = "127.0.0.1:3000")]
    listen: String,
    #[command(flatten)]
    backend: BackendArgs,
    /// Concurrent queue receivers in the processor.
    #[arg(long, env = "ORDERS_WORKERS", default_value_t = 4)]
    workers: usize,
    /// Seconds a received message stays invisible before it is redelivered.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Orders above this total (minor units) fail the credit check.
    #[arg(long, env = "CREDIT_LIMIT", default_value_t = ProcessingPolicy::default().credit_limit)]
    credit_limit: i64,
}

/// The projector's and the notifier's feeds.
enum Feeds {
    Sqlite(SqliteFeed, SqliteFeed),
    Aws(StreamFeed, StreamFeed),
}

pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (ports, feeds, where_) = match backend::open_ports(&args.backend).await? {
        (ports, Opened::Sqlite(db)) => open_sqlite(&args, ports, &db),
        (ports, Opened::Aws { config, names }) => open_aws(&args, ports, &config, &names).await?,
    };

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    // Printed on stdout so scripts (and the end-to-end tests) can find an ephemeral port.
    println!("listening on http://{local}");
    tracing::info!(%local, backend = ?args.backend.backend, %where_, "orders serve started");

    let (stop, shutdown) = watch::channel(false);
    let policy = ProcessingPolicy {
        credit_limit: args.credit_limit,
    };
    let processor = processor::Processor::new(ports.events.clone(), policy);
    let mut workers = JoinSet::new();
    for _ in 0..args.workers.max(1) {
        workers.spawn(processor::run_worker(
            processor.clone(),
            ports.queue.clone(),
            10,
            Duration::from_secs(args.visibility_timeout),
            shutdown.clone(),
        ));
    }
    match feeds {
        Feeds::Sqlite(projector, notifier) => {
            spawn_subscribers(&mut workers, &ports, projector, notifier, &shutdown);
        }
        Feeds::Aws(projector, notifier) => {
            spawn_subscribers(&mut workers, &ports, projector, notifier, &shutdown);
        }
    }

    let app = ingest::router(AppState {
        intake: ports.intake,
        events: ports.events,
        status: ports.status,
    });
    let mut http_shutdown = shutdown.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { order_ports::stopped(&mut http_shutdown).await });
    tokio::spawn(async move {
        termination().await;
        tracing::info!("shutting down: finishing in-flight work");
        let _ = stop.send(true);
    });
    server.await?;
    while workers.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

fn spawn_subscribers<F: Feed + 'static>(
    workers: &mut JoinSet<()>,
    ports: &Ports,
    projector_feed: F,
    notifier_feed: F,
    shutdown: &watch::Receiver<bool>,
) {
    workers.spawn(order_ports::run_subscriber(
        projector_feed,
        PROJECTOR,
        projector::Projector::new(ports.events.clone(), ports.status.clone()),
        shutdown.clone(),
    ));
    workers.spawn(order_ports::run_subscriber(
        notifier_feed,
        NOTIFIER,
        notifier::Notifier::new(ports.events.clone(), ports.publisher.clone()),
        shutdown.clone(),
    ));
}

fn open_sqlite(
    args: &ServeArgs,
    ports: Ports,
    db: &order_ports::sqlite::SqliteDb,
) -> (Ports, Feeds, String) {
    let feeds = Feeds::Sqlite(db.feed(PROJECTOR), db.feed(NOTIFIER));
    (ports, feeds, args.backend.data.data.display().to_string())
}

/// Resolves the resources and opens both stream feeds before the API accepts anything, so a
/// notifier starting at LATEST sees every completion of an order accepted from then on.
async fn open_aws(
    args: &ServeArgs,
    ports: Ports,
    config: &aws_config::SdkConfig,
    names: &crate::aws_backend::AwsResources,
) -> Result<(Ports, Feeds, String), CliError> {
    let stream_error = |e: order_ports::StoreError| {
        CliError::Config(format!(
            "cannot read the stream {}: {e}",
            names.events_stream_arn
        ))
    };
    let projector_feed = StreamFeed::open(
        config,
        &names.events_stream_arn,
        PROJECTOR,
        StartAt::TrimHorizon,
    )
    .await
    .map_err(stream_error)?;
    let notifier_start = if args.backend.aws.replay_notifications {
        StartAt::TrimHorizon
    } else {
        StartAt::Latest
    };
    let notifier_feed =
        StreamFeed::open(config, &names.events_stream_arn, NOTIFIER, notifier_start)
            .await
            .map_err(stream_error)?;
    let where_ = format!(
        "events={} status={} queue={} topic={} stream={}",
        names.events_table,
        names.status_table,
        names.work_queue_url,
        names.topic_arn,
        names.events_stream_arn
    );
    Ok((ports, Feeds::Aws(projector_feed, notifier_feed), where_))
}

/// Ctrl-C or SIGTERM.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
