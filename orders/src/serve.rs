//! `orders serve`: the API and every worker in one process — on one SQLite file, or on AWS
//! resources (real or emulated) with pollers in place of the Lambdas' event source mappings.
//!
//! Wiring only; the workers drive the same handler libs as the Lambdas:
//!
//! * the processor drains the work queue with several concurrent receivers
//!   ([`processor::run_worker`]) — the SQLite queue or SQS;
//! * the projector and the notifier are subscribers ([`order_ports::run_subscriber_draining`])
//!   over a [`Feed`]: the SQLite log's global sequence with durable checkpoints
//!   ([`SqliteFeed`]), or the event table's DynamoDB stream with durable checkpoints in a local
//!   file ([`StreamFeed`], [`StreamCheckpoints`]).
//!
//! Shutdown (SIGTERM, Ctrl-C) goes in stages, writers before readers, so every completion the
//! process caused is projected and published before it exits: the API stops accepting requests
//! and finishes the ones in flight; then the processor's workers stop receiving and finish
//! their batch; then the projector and the notifier catch up with everything written so far
//! (until their feed brings nothing new, at most [`FEED_DRAIN`]) and stop. Each stage has its
//! own signal. Whatever a stage leaves unfinished at its deadline is picked up after the next
//! start (the queue's visibility timeout, the feeds' checkpoints).
//!
//! The HTTP server is its own accept loop ([`serve_http`]) so that no client can hold the
//! service: a request's headers (and the wait for the next request on a kept-alive connection)
//! and its body have deadlines, and open connections are capped, in all and per client address,
//! below the file-descriptor limit (raised to its hard limit at start).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use events_schema::ProcessingPolicy;
use ingest::AppState;
use order_adapters_aws::{AwsClients, SqsStreamFailures, StartAt, StreamCheckpoints, StreamFeed};
use order_adapters_sqlite::{SqliteFeed, SqliteWorkQueue};
use order_ports::telemetry::LogFormat;
use order_ports::Feed;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::aws_backend::{self, AwsArgs, AwsResources, Name};
use crate::backend::{self, Backend, BackendArgs, Ports};
use crate::prometheus::Prometheus;
use crate::CliError;

/// The subscribers' names: in logs, and the SQLite checkpoints' keys.
const PROJECTOR: &str = "projector";
const NOTIFIER: &str = "notifier";

/// How long in-flight HTTP requests may take to finish once shutdown begins.
const HTTP_GRACE: Duration = Duration::from_secs(10);
/// How long the projector and the notifier may take to catch up once the processor stopped.
const FEED_DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
With --backend aws the same handler libraries run as in the Lambdas, but in this process: the \
processor long-polls the SQS work queue, and the projector and the notifier each poll the event \
table's DynamoDB stream (shards in parent-before-child order). Their stream positions are saved \
at every commit in a local SQLite file (--checkpoints, per stream, consumer and shard): a restart \
resumes each consumer after the last record it handled, so completions written while serve was \
down are notified once it is back, and nothing is replayed. On its very first run on a stream the \
projector starts at TRIM_HORIZON and the notifier at LATEST; --replay-notifications resets the \
notifier to TRIM_HORIZON (re-publishing every completion still in the stream; subscribers \
deduplicate on eventId). A checkpoint older than the stream's 24 hours is logged as an error and \
that shard resumes at TRIM_HORIZON.

A stream record the projector or the notifier can never handle (an event type or schema version \
this build cannot read, a permanent failure) is set aside in the stream failure queue \
(--stream-failure-queue-url, or the stack output StreamFailureQueueUrl; checked at start), with \
its sequence number, keys and reason, exactly as the Lambdas do, and the rest goes on; `orders \
dlq records` and `orders verify` list it. If the send fails the record is read again. Without \
that queue such records are only logged (a warning at start says so).

On SIGTERM or Ctrl-C, serve stops accepting requests and finishes those in flight, then the \
processor finishes its batch, then the projector and notifier catch up with what was written \
(at most 10 s) before it exits: every completion it caused is published. Do not run this next to \
the deployed stream Lambdas unless you want two consumers.")]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "ORDERS_LISTEN", default_value = "127.0.0.1:3000")]
    listen: String,
    /// Concurrent queue receivers in the processor.
    #[arg(long, env = "ORDERS_WORKERS", default_value_t = 4)]
    workers: usize,
    /// Messages each processor worker receives and processes as one batch (SQS: at most 10).
    #[arg(long, env = "ORDERS_BATCH", default_value_t = 100)]
    batch: usize,
    /// Seconds a received message stays invisible before it is redelivered.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Orders above this total (minor units) fail the credit check.
    #[arg(long, env = "CREDIT_LIMIT", default_value_t = ProcessingPolicy::default().credit_limit)]
    credit_limit: i64,
    #[command(flatten)]
    http: HttpLimits,
    #[command(flatten)]
    auth: AuthArgs,
    /// Log lines as text or JSON (one object per line). Default: text when stderr is a
    /// terminal, JSON otherwise.
    #[arg(long, env = "ORDERS_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    // Last: the backend's AWS options set a help heading that would also take the ones above.
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    /// The format `--log-format` asks for, else the one for where stderr goes.
    pub fn log_format(&self) -> LogFormat {
        match self.log_format {
            Some(LogFormatArg::Text) => LogFormat::Text,
            Some(LogFormatArg::Json) => LogFormat::Json,
            None => LogFormat::for_stderr(),
        }
    }
}

/// What one client may hold of the HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// Seconds a client has to send a request's headers; also how long a kept-alive connection
    /// may wait idle for its next request (hyper runs one timer for both). Then it is closed.
    #[arg(long, env = "ORDERS_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a client has to send a whole request body once its headers are in; then `408`.
    #[arg(long, env = "ORDERS_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Most connections open at once; one more is closed as soon as it is accepted. Lowered
    /// to stay below the file-descriptor limit.
    #[arg(long, env = "ORDERS_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Most connections open at once from one IP address.
    #[arg(long, env = "ORDERS_MAX_CONNECTIONS_PER_IP", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: u64,
}

/// File descriptors kept free of connections: the SQLite file and its WAL, the AWS clients'
/// connections, logs.
const RESERVED_FDS: u64 = 256;

/// Everything `serve` runs on, opened in one pass from the backend flags: the ports the API
/// and the workers share, the projector's and the notifier's feeds, and what the log line at
/// start and `GET /metrics` read.
struct Opened<F> {
    ports: Ports,
    projector_feed: F,
    notifier_feed: F,
    /// The SQLite work queue, whose depth `GET /metrics` reads at each scrape (`None` on AWS:
    /// SQS has its own metrics).
    local_queue: Option<SqliteWorkQueue>,
    /// Where everything lives, for the log line at start.
    location: String,
}

pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let authentication = args.auth.authentication()?;
    // The two feeds are different types: each backend runs its own instance of `run`.
    match args.backend.backend {
        Backend::Sqlite => run(&args, authentication, open_on_sqlite(&args.backend.data)?).await,
        Backend::Aws => run(&args, authentication, open_on_aws(&args.backend.aws).await?).await,
    }
}

/// Serves until told to stop (see the module docs), on what [`open_on_sqlite`] or
/// [`open_on_aws`] opened.
async fn run<F: Feed + 'static>(
    args: &ServeArgs,
    authentication: Option<ingest::Authentication>,
    opened: Opened<F>,
) -> Result<(), CliError> {
    let Opened {
        ports,
        projector_feed,
        notifier_feed,
        local_queue,
        location,
    } = opened;
    let metrics = Arc::new(Prometheus::new());
    order_ports::metrics::install(metrics.clone());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    // Printed on stdout so scripts (and the end-to-end tests) can find an ephemeral port.
    println!("listening on http://{local}");
    tracing::info!(%local, backend = ?args.backend.backend, where_ = %location, "orders serve started");

    // One signal per stage, sent in this order (see the module docs).
    let (stop_http, http_shutdown) = watch::channel(false);
    let (stop_workers, workers_shutdown) = watch::channel(false);
    let (drain_feeds, feeds_shutdown) = watch::channel(false);
    let policy = ProcessingPolicy {
        credit_limit: args.credit_limit,
    };
    let processor = processor::Processor::new(ports.events.clone(), policy);
    let mut workers = JoinSet::new();
    for _ in 0..args.workers.max(1) {
        workers.spawn(processor::run_worker(
            processor.clone(),
            ports.queue.clone(),
            args.batch.max(1),
            Duration::from_secs(args.visibility_timeout),
            workers_shutdown.clone(),
        ));
    }
    let mut subscribers = JoinSet::new();
    spawn_subscribers(
        &mut subscribers,
        &ports,
        projector_feed,
        notifier_feed,
        &feeds_shutdown,
    );

    let app = ingest::router(AppState {
        intake: ports.intake,
        events: ports.events,
        status: ports.status,
    })
    .merge(metrics_route(metrics, local_queue));
    let app = match authentication {
        Some(authentication) => ingest::with_authentication(app, authentication),
        None => app,
    };
    let server = serve_http(listener, app, args.http.clone(), http_shutdown.clone());
    tokio::spawn(async move {
        termination().await;
        tracing::info!("shutting down: no new requests, finishing those in flight");
        let _ = stop_http.send(true);
    });
    let mut http_stopping = http_shutdown;
    tokio::select! {
        () = server => {},
        () = async {
            order_ports::stopped(&mut http_stopping).await;
            tokio::time::sleep(HTTP_GRACE).await;
        } => {
            tracing::warn!(grace = ?HTTP_GRACE, "requests still in flight after the grace period: closing their connections");
        }
    }

    tracing::info!("API stopped; the processor finishes its in-flight batch");
    let _ = stop_workers.send(true);
    while workers.join_next().await.is_some() {}

    tracing::info!(deadline = ?FEED_DRAIN, "processor stopped; the projector and the notifier catch up");
    let _ = drain_feeds.send(true);
    // The subscribers stop at FEED_DRAIN by themselves, between two batches; this bounds a batch
    // that hangs (its records come again after the next start, from the checkpoint).
    let joined = tokio::time::timeout(FEED_DRAIN + Duration::from_secs(5), async {
        while subscribers.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        tracing::warn!("a subscriber did not stop in time: aborted");
        subscribers.abort_all();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves `app` on `listener` until `shutdown`, then waits for the connections to finish
/// (the caller bounds that wait). See [`HttpLimits`].
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_connections = connection_cap(limits.max_connections);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let per_ip = PerIp::new(limits.max_connections_per_ip);
    let body_timeout = Duration::from_secs(limits.body_timeout);
    let app = app.layer(axum::middleware::map_request(move |request| async move {
        ingest::limits::with_body_deadline(request, body_timeout)
    }));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout))
        // A client that sends a whole order and hangs up at once still has it taken in: without
        // this, hyper drops the request's handler on the read side's EOF, maybe before its write
        // was spawned. The header and body deadlines still bound what such a client can hold.
        .half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or another transient failure): pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = order_ports::stopped(&mut shutdown) => break,
        };
        let Some((slot, ip_slot)) = slots
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|slot| Some((slot, per_ip.take(peer.ip())?)))
        else {
            // Closed at once: the descriptor is free again, and the client sees a reset rather
            // than a connection that hangs.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, max_connections, max_per_ip = limits.max_connections_per_ip, "connection limit reached: closing new connections");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that stalls or hangs up ends its own connection: nothing to report.
            let _ = connection.await;
            drop((slot, ip_slot));
        });
    }
    graceful.shutdown().await;
}

/// `wanted`, lowered to stay [`RESERVED_FDS`] below the file-descriptor limit, which is first
/// raised to its hard limit (so a default `ulimit -n` of 1024 does not cap the server).
fn connection_cap(wanted: u64) -> usize {
    let cap = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            let cap = wanted.min(soft.saturating_sub(RESERVED_FDS).max(1));
            if cap < wanted {
                tracing::warn!(
                    wanted,
                    cap,
                    fd_limit = soft,
                    "--max-connections lowered below the file-descriptor limit"
                );
            }
            cap
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the file-descriptor limit: keeping --max-connections");
            wanted
        }
    };
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Open connections per client address.
#[derive(Clone)]
struct PerIp {
    max: u64,
    open: Arc<Mutex<HashMap<IpAddr, u64>>>,
}

/// One connection of an address; gives its place back when dropped.
struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u64>>>,
}

impl PerIp {
    fn new(max: u64) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn spawn_subscribers<F: Feed + 'static>(
    workers: &mut JoinSet<()>,
    ports: &Ports,
    projector_feed: F,
    notifier_feed: F,
    shutdown: &watch::Receiver<bool>,
) {
    workers.spawn(order_ports::run_subscriber_draining(
        projector_feed,
        PROJECTOR,
        projector::Projector::new(ports.events.clone(), ports.status.clone()),
        shutdown.clone(),
        FEED_DRAIN,
    ));
    workers.spawn(order_ports::run_subscriber_draining(
        notifier_feed,
        NOTIFIER,
        notifier::Notifier::new(ports.events.clone(), ports.publisher.clone()),
        shutdown.clone(),
        FEED_DRAIN,
    ));
}

/// The `--data` file (created if missing), its ports and its log's feeds.
fn open_on_sqlite(path: &Path) -> Result<Opened<SqliteFeed>, CliError> {
    let db = backend::open_or_create_sqlite(path)?;
    Ok(Opened {
        ports: Ports::sqlite(&db),
        projector_feed: db.feed(PROJECTOR),
        notifier_feed: db.feed(NOTIFIER),
        local_queue: Some(db.work_queue_default()),
        location: path.display().to_string(),
    })
}

/// Resolves the resources, builds the ports on them, and opens both stream feeds before the
/// API accepts anything, so a notifier starting at LATEST (its first run) sees every completion
/// of an order accepted from then on. Both resume from their checkpoints in `--checkpoints`.
async fn open_on_aws(aws: &AwsArgs) -> Result<Opened<StreamFeed>, CliError> {
    let config = order_adapters_aws::sdk_config(aws.endpoint_url.as_deref()).await;
    let clients = AwsClients::from_config(&config);
    let names = aws_backend::resolve(aws, &config, &clients.dynamodb).await?;
    let stream_error = |e: order_ports::StoreError| {
        CliError::Config(format!(
            "cannot read the stream {}: {e}",
            names.events_stream_arn
        ))
    };
    let checkpoints_error = |source| CliError::Open {
        path: aws.checkpoints.clone(),
        source,
    };
    let checkpoints = StreamCheckpoints::open(&aws.checkpoints).map_err(checkpoints_error)?;
    let notifier_start = if aws.replay_notifications {
        // A deliberate reset: the notifier's next start is a first start, at the trim horizon.
        checkpoints
            .reset(&names.events_stream_arn, NOTIFIER)
            .await
            .map_err(checkpoints_error)?;
        StartAt::TrimHorizon
    } else {
        StartAt::Latest
    };
    let set_aside = stream_failure_queue(&clients.sqs, &names).await?;
    let mut projector_feed = StreamFeed::open(
        &config,
        &names.events_stream_arn,
        PROJECTOR,
        StartAt::TrimHorizon,
        checkpoints.clone(),
    )
    .await
    .map_err(stream_error)?;
    let mut notifier_feed = StreamFeed::open(
        &config,
        &names.events_stream_arn,
        NOTIFIER,
        notifier_start,
        checkpoints,
    )
    .await
    .map_err(stream_error)?;
    if let Some(set_aside) = set_aside {
        projector_feed = projector_feed.with_set_aside(set_aside.clone());
        notifier_feed = notifier_feed.with_set_aside(set_aside);
    }
    let location = format!(
        "events={} status={} queue={} topic={} stream={} stream-failure-queue={}",
        names.events_table,
        names.status_table,
        names.work_queue_url,
        names.topic_arn,
        names.events_stream_arn,
        names
            .stream_failure_queue_url
            .as_deref()
            .unwrap_or("(none: poison is only logged)")
    );
    Ok(Opened {
        ports: Ports::aws(&clients, &names),
        projector_feed,
        notifier_feed,
        local_queue: None,
        location,
    })
}

/// Where the stream consumers set aside the records they can never handle: the stream failure
/// queue when it is named (`--stream-failure-queue-url`, its variable or the stack output), as the
/// stream Lambdas do (ADR 7). It must exist: a wrong URL stops `serve` with one line rather than
/// holding the stream at the first such record. Not named: such records are only logged (ERROR)
/// and counted, and a warning says so once at start.
async fn stream_failure_queue(
    sqs: &aws_sdk_sqs::Client,
    names: &AwsResources,
) -> Result<Option<Arc<dyn order_ports::SetAside>>, CliError> {
    let Some(url) = &names.stream_failure_queue_url else {
        tracing::warn!(
            "no stream failure queue (--stream-failure-queue-url, STREAM_FAILURE_QUEUE_URL or \
             the stack output StreamFailureQueueUrl): stream records the projector or the \
             notifier can never handle are only logged"
        );
        return Ok(None);
    };
    aws_backend::check_queue(sqs, url, Name::StreamFailureQueueUrl).await?;
    Ok(Some(Arc::new(SqsStreamFailures::new(
        sqs.clone(),
        url.clone(),
    ))))
}

/// Authentication, off unless `--auth-jwks` is given: then the API verifies bearer tokens itself,
/// as API Gateway's JWT authorizer does for the Lambda (`ingest::auth`).
#[derive(Debug, clap::Args)]
struct AuthArgs {
    /// Require a bearer token signed (RS256 or ES256) by a key of this JWKS file; a caller then
    /// creates, lists and reads only the orders of the customer its token names.
    #[arg(long, value_name = "FILE", requires_all = ["auth_issuer", "auth_audience"])]
    auth_jwks: Option<std::path::PathBuf>,
    /// The `iss` tokens must carry (with --auth-jwks).
    #[arg(long, value_name = "ISSUER", requires = "auth_jwks")]
    auth_issuer: Option<String>,
    /// The `aud` tokens must carry (with --auth-jwks).
    #[arg(long, value_name = "AUDIENCE", requires = "auth_jwks")]
    auth_audience: Option<String>,
    /// The claim that names the caller's customer (its customerId).
    #[arg(long, value_name = "CLAIM", default_value = "sub")]
    auth_claim: String,
}

impl AuthArgs {
    /// The verifier, read once at start: a missing or unusable key file stops `serve` before it
    /// listens rather than refusing every request.
    fn authentication(&self) -> Result<Option<ingest::Authentication>, CliError> {
        let (Some(path), Some(issuer), Some(audience)) =
            (&self.auth_jwks, &self.auth_issuer, &self.auth_audience)
        else {
            return Ok(None);
        };
        let jwks = std::fs::read_to_string(path)
            .map_err(|e| CliError::Config(format!("--auth-jwks {}: {e}", path.display())))?;
        let verifier = ingest::JwtVerifier::from_jwks(&jwks, issuer, audience, &self.auth_claim)
            .map_err(|e| CliError::Config(format!("--auth-jwks {}: {e}", path.display())))?;
        Ok(Some(ingest::Authentication::Tokens(verifier)))
    }
}

/// `GET /metrics`: the Prometheus registry, with the queue's depth and dead letters read at
/// each scrape (from the SQLite file; on `--backend aws` they stay 0: read SQS's own metrics).
/// Only here, not in the shared API router: the Lambdas publish EMF instead.
///
/// With `--auth-jwks` it is behind the same authentication as the order routes (the handler
/// takes a [`Caller`](ingest::Caller), so a request without a valid bearer token is `401`):
/// the numbers say how much business the service does. Any valid token may read them; give a
/// scraper one (docs/security.md).
fn metrics_route(metrics: Arc<Prometheus>, queue: Option<SqliteWorkQueue>) -> axum::Router {
    let scrape = move |_caller: ingest::Caller| {
        let (metrics, queue) = (metrics.clone(), queue.clone());
        async move {
            if let Some(queue) = &queue {
                match (queue.depth().await, queue.dead_letter_count().await) {
                    (Ok(depth), Ok(dead)) => {
                        metrics
                            .queue_depth
                            .set(i64::try_from(depth).unwrap_or(i64::MAX));
                        metrics
                            .dead_letters
                            .set(i64::try_from(dead).unwrap_or(i64::MAX));
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "metrics: could not read the queue's depth");
                    }
                }
            }
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                metrics.render(),
            )
        }
    };
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .layer(axum::middleware::from_fn(ingest::correlation::correlate))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use ingest::auth::test_keys::{TestIssuer, AUDIENCE, ISSUER};
    use tower::ServiceExt;

    async fn scrape(app: &axum::Router, token: Option<&str>) -> StatusCode {
        let mut request = Request::get("/metrics");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status()
    }

    #[tokio::test]
    async fn with_authentication_on_metrics_need_a_valid_token_like_the_order_routes() {
        let issuer = TestIssuer::new("k1");
        let verifier =
            ingest::JwtVerifier::from_jwks(&issuer.jwks(), ISSUER, AUDIENCE, "sub").unwrap();
        let app = ingest::with_authentication(
            metrics_route(Arc::new(Prometheus::new()), None),
            ingest::Authentication::Tokens(verifier),
        );
        assert_eq!(scrape(&app, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            scrape(&app, Some("garbage")).await,
            StatusCode::UNAUTHORIZED
        );
        let token = issuer.token_for("scraper");
        assert_eq!(scrape(&app, Some(&token)).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_authentication_metrics_are_open() {
        let app = metrics_route(Arc::new(Prometheus::new()), None);
        assert_eq!(scrape(&app, None).await, StatusCode::OK);
    }
}
