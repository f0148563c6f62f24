//! `orders serve`: the API and every worker in one process, on one SQLite file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use events_schema::ProcessingPolicy;
use ingest::AppState;
use order_ports::sqlite::SqliteDb;
use order_ports::{EventStore, Publisher, StatusStore, WorkQueue};
use tokio::sync::watch;

use crate::pipeline::{self, NOTIFIER, PROJECTOR};
use crate::{CliError, DataArgs};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "ORDERS_LISTEN", default_value = "127.0.0.1:3000")]
    listen: String,
    #[command(flatten)]
    data: DataArgs,
    /// Concurrent queue receivers in the processor.
    #[arg(long, env = "ORDERS_WORKERS", default_value_t = 4)]
    workers: usize,
    /// Seconds a received message stays invisible before it is redelivered.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Orders above this total (minor units) fail the credit check.
    #[arg(long, env = "ORDERS_CREDIT_LIMIT", default_value_t = ProcessingPolicy::default().credit_limit)]
    credit_limit: i64,
}

pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let db = SqliteDb::open(&args.data.data).map_err(|source| CliError::Open {
        path: args.data.data.clone(),
        source,
    })?;
    let events = db.event_store();
    let event_store: Arc<dyn EventStore> = Arc::new(events.clone());
    let queue: Arc<dyn WorkQueue> = Arc::new(db.work_queue_default());
    let status: Arc<dyn StatusStore> = Arc::new(db.status_store());
    let publisher: Arc<dyn Publisher> = Arc::new(db.publisher());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    // Printed on stdout so scripts (and the end-to-end tests) can find an ephemeral port.
    println!("listening on http://{local}");
    tracing::info!(%local, data = %args.data.data.display(), "orders serve started");

    let (stop, shutdown) = watch::channel(false);
    let policy = ProcessingPolicy {
        credit_limit: args.credit_limit,
    };
    let processor = processor::Processor::new(event_store.clone(), policy);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.workers.max(1) {
        workers.spawn(pipeline::run_processor(
            processor.clone(),
            queue.clone(),
            10,
            Duration::from_secs(args.visibility_timeout),
            shutdown.clone(),
        ));
    }
    workers.spawn(pipeline::run_subscriber(
        db.clone(),
        events.clone(),
        PROJECTOR,
        projector::Projector::new(event_store.clone(), status.clone()),
        shutdown.clone(),
    ));
    workers.spawn(pipeline::run_subscriber(
        db.clone(),
        events.clone(),
        NOTIFIER,
        notifier::Notifier::new(event_store.clone(), publisher),
        shutdown.clone(),
    ));

    let app = ingest::router(AppState {
        events: event_store,
        queue,
        status,
    });
    let mut http_shutdown = shutdown.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { pipeline::stopped(&mut http_shutdown).await });
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
