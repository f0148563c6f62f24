//! The backend flags every command takes (`--backend`, `--data`, the AWS options), and the one
//! place the ports are opened on either backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::BoxStream;
use order_adapters_aws::{
    AwsClients, DynamoEventStore, DynamoStatusStore, SnsPublisher, SqsDeadLetters,
    SqsStreamFailures, SqsWorkQueue,
};
use order_adapters_sqlite::SqliteDb;
use order_history::{histories, paged_histories, HistoryError};
use order_ports::{
    AppendThenEnqueue, DeadLetters, EventStore, OrderIntake, OrderScan, Publisher, StatusRepair,
    StatusStore, WorkQueue,
};

use crate::aws_backend::{self, AwsArgs, AwsResources, Name};
use crate::CliError;

/// Where the events, queue, view and notifications live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// One SQLite file (`--data`): durable, checkpoints included; no AWS needed.
    Sqlite,
    /// DynamoDB, SQS and SNS (AWS or an emulator, see the AWS backend options). The processor
    /// polls the work queue; the projector and notifier poll the event table's DynamoDB stream.
    Aws,
}

/// `--backend`, `--data` and the AWS options: flattened into every command.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Where everything lives: `sqlite` (the file given by --data) or `aws`.
    #[arg(long, value_enum, env = "ORDERS_BACKEND", default_value_t = Backend::Sqlite)]
    pub backend: Backend,
    /// The SQLite file holding the event log, queue, status view and notifications.
    #[arg(long, env = "ORDERS_DATA", default_value = "./orders.db")]
    pub data: PathBuf,
    #[command(flatten)]
    pub aws: Box<AwsArgs>,
}

/// The ports the API and the workers share (log, queue, view, publisher), and the API's intake
/// over the first two.
pub struct Ports {
    pub intake: Arc<dyn OrderIntake>,
    pub events: Arc<dyn EventStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub status: Arc<dyn StatusStore>,
    pub publisher: Arc<dyn Publisher>,
}

impl Ports {
    /// The ports on one SQLite file: the intake appends and enqueues in one transaction.
    pub fn sqlite(db: &SqliteDb) -> Self {
        Ports {
            intake: Arc::new(db.intake()),
            events: Arc::new(db.event_store()),
            queue: Arc::new(db.work_queue_default()),
            status: Arc::new(db.status_store()),
            publisher: Arc::new(db.publisher()),
        }
    }

    /// The ports on the AWS resources `names`.
    pub fn aws(clients: &AwsClients, names: &AwsResources) -> Self {
        let events: Arc<dyn EventStore> = Arc::new(DynamoEventStore::new(
            clients.dynamodb.clone(),
            &names.events_table,
        ));
        let queue: Arc<dyn WorkQueue> = Arc::new(SqsWorkQueue::new(
            clients.sqs.clone(),
            &names.work_queue_url,
        ));
        Ports {
            // Not atomic: DynamoDB and SQS share no transaction (see AppendThenEnqueue).
            intake: Arc::new(AppendThenEnqueue {
                events: events.clone(),
                queue: queue.clone(),
            }),
            events,
            queue,
            status: Arc::new(DynamoStatusStore::new(
                clients.dynamodb.clone(),
                &names.status_table,
            )),
            publisher: Arc::new(SnsPublisher::new(clients.sns.clone(), &names.topic_arn)),
        }
    }
}

/// The log and the view, for the tools that read the log back (`verify`, `rebuild`).
pub struct LogAndView {
    pub events: Arc<dyn EventStore>,
    pub scan: Arc<dyn OrderScan>,
    pub status: Arc<dyn StatusStore>,
    pub repair: Arc<dyn StatusRepair>,
    /// The SQLite file, for what only it holds (notifications, failed_events).
    pub local: Option<SqliteDb>,
    /// The DynamoDB event table, for its parallel Scan (`orders events`).
    pub dynamo_events: Option<DynamoEventStore>,
}

impl LogAndView {
    /// Every order's whole history, in no particular order: on SQLite a page of histories at
    /// a time in order-id order (one range read per page rather than one query per order); on
    /// DynamoDB a Query per order, `concurrency` at once.
    pub fn histories(
        &self,
        concurrency: usize,
    ) -> BoxStream<'static, Result<order_history::History, HistoryError>> {
        match &self.local {
            Some(db) => {
                let store = db.event_store();
                paged_histories(move |after| {
                    let store = store.clone();
                    async move {
                        let page = store.histories_after(after, HISTORY_PAGE_EVENTS).await?;
                        Ok((page.histories, page.next))
                    }
                })
            }
            None => histories(self.events.clone(), self.scan.clone(), concurrency),
        }
    }
}

/// Events read per page by [`LogAndView::histories`] on SQLite.
const HISTORY_PAGE_EVENTS: usize = 10_000;

/// Opens an existing log and its view: the `--data` file must exist; the AWS tables must exist.
pub async fn open_log_and_view(args: &BackendArgs, command: &str) -> Result<LogAndView, CliError> {
    match args.backend {
        Backend::Sqlite => {
            let db = open_existing_sqlite(&args.data, command)?;
            let events = Arc::new(db.event_store());
            let status = Arc::new(db.status_store());
            Ok(LogAndView {
                events: events.clone(),
                scan: events,
                status: status.clone(),
                repair: status,
                local: Some(db),
                dynamo_events: None,
            })
        }
        Backend::Aws => {
            let config = order_adapters_aws::sdk_config(args.aws.endpoint_url.as_deref()).await;
            let clients = AwsClients::from_config(&config);
            let names = [Name::EventsTable, Name::StatusTable];
            let (values, _) = aws_backend::resolve_names(&args.aws, &config, &names).await?;
            for (table, name) in values.iter().zip(names) {
                aws_backend::check_table(&clients.dynamodb, table, name).await?;
            }
            let dynamo_events = DynamoEventStore::new(clients.dynamodb.clone(), &values[0]);
            let events = Arc::new(dynamo_events.clone());
            let status = Arc::new(DynamoStatusStore::new(clients.dynamodb.clone(), &values[1]));
            Ok(LogAndView {
                events: events.clone(),
                scan: events,
                status: status.clone(),
                repair: status,
                local: None,
                dynamo_events: Some(dynamo_events),
            })
        }
    }
}

/// The work queue's dead letters (`orders dlq`): the `dead_letters` table of an existing
/// `--data` file, or the SQS work DLQ with the work queue it redrives to.
pub async fn open_dead_letters(
    args: &BackendArgs,
    command: &str,
) -> Result<Arc<dyn DeadLetters>, CliError> {
    match args.backend {
        Backend::Sqlite => {
            let db = open_existing_sqlite(&args.data, command)?;
            Ok(Arc::new(db.work_queue_default()))
        }
        Backend::Aws => {
            let config = order_adapters_aws::sdk_config(args.aws.endpoint_url.as_deref()).await;
            let clients = AwsClients::from_config(&config);
            let names = [Name::WorkDlqUrl, Name::WorkQueueUrl];
            let (values, _) = aws_backend::resolve_names(&args.aws, &config, &names).await?;
            for (url, name) in values.iter().zip(names) {
                aws_backend::check_queue(&clients.sqs, url, name).await?;
            }
            Ok(Arc::new(SqsDeadLetters::new(
                clients.sqs.clone(),
                &values[0],
                &values[1],
            )))
        }
    }
}

/// The stream records consumers set aside: the `failed_events` table of an existing `--data`
/// file, or the stream failure queue on AWS (which also holds the batches the stream mappings
/// discarded).
pub enum SetAsideRecords {
    Sqlite(SqliteDb),
    Aws(SqsStreamFailures),
}

/// Opens the [`SetAsideRecords`] (`orders dlq records`); on AWS the stream failure queue must be
/// named (`--stream-failure-queue-url` or `--stack`) and exist.
pub async fn open_set_aside(
    args: &BackendArgs,
    command: &str,
) -> Result<SetAsideRecords, CliError> {
    match args.backend {
        Backend::Sqlite => Ok(SetAsideRecords::Sqlite(open_existing_sqlite(
            &args.data, command,
        )?)),
        Backend::Aws => {
            let config = order_adapters_aws::sdk_config(args.aws.endpoint_url.as_deref()).await;
            let clients = AwsClients::from_config(&config);
            let name = Name::StreamFailureQueueUrl;
            let (values, _) = aws_backend::resolve_names(&args.aws, &config, &[name]).await?;
            let url = values.into_iter().next().ok_or_else(|| {
                CliError::Config(format!("--backend aws needs {}", name.describe()))
            })?;
            aws_backend::check_queue(&clients.sqs, &url, name).await?;
            Ok(SetAsideRecords::Aws(SqsStreamFailures::new(
                clients.sqs,
                url,
            )))
        }
    }
}

/// The stream failure queue for `orders verify` on AWS, when it can be named (a flag, its
/// variable or the stack's output); `None` when it cannot, or on SQLite (whose
/// `failed_events` [`LogAndView::local`] reads).
pub async fn open_stream_failures_if_named(args: &BackendArgs) -> Option<SqsStreamFailures> {
    if args.backend != Backend::Aws {
        return None;
    }
    let config = order_adapters_aws::sdk_config(args.aws.endpoint_url.as_deref()).await;
    let clients = AwsClients::from_config(&config);
    let (values, _) =
        aws_backend::resolve_names(&args.aws, &config, &[Name::StreamFailureQueueUrl])
            .await
            .ok()?;
    let url = values.into_iter().next()?;
    Some(SqsStreamFailures::new(clients.sqs, url))
}

/// What `orders reconcile` works on: the view (its pending orders, and the writes that repair
/// it), the log and the work queue.
pub struct ReconcilePorts {
    pub events: Arc<dyn EventStore>,
    pub status: Arc<dyn StatusStore>,
    pub repair: Arc<dyn StatusRepair>,
    pub queue: Arc<dyn WorkQueue>,
}

/// Opens [`ReconcilePorts`]: an existing `--data` file, or the status table, the event table
/// and the work queue on AWS.
pub async fn open_reconcile_ports(
    args: &BackendArgs,
    command: &str,
) -> Result<ReconcilePorts, CliError> {
    match args.backend {
        Backend::Sqlite => {
            let db = open_existing_sqlite(&args.data, command)?;
            let status = Arc::new(db.status_store());
            Ok(ReconcilePorts {
                events: Arc::new(db.event_store()),
                status: status.clone(),
                repair: status,
                queue: Arc::new(db.work_queue_default()),
            })
        }
        Backend::Aws => {
            let config = order_adapters_aws::sdk_config(args.aws.endpoint_url.as_deref()).await;
            let clients = AwsClients::from_config(&config);
            let names = [Name::StatusTable, Name::WorkQueueUrl, Name::EventsTable];
            let (values, _) = aws_backend::resolve_names(&args.aws, &config, &names).await?;
            aws_backend::check_table(&clients.dynamodb, &values[0], names[0]).await?;
            aws_backend::check_queue(&clients.sqs, &values[1], names[1]).await?;
            aws_backend::check_table(&clients.dynamodb, &values[2], names[2]).await?;
            let status = Arc::new(DynamoStatusStore::new(clients.dynamodb.clone(), &values[0]));
            Ok(ReconcilePorts {
                events: Arc::new(DynamoEventStore::new(clients.dynamodb.clone(), &values[2])),
                status: status.clone(),
                repair: status,
                queue: Arc::new(SqsWorkQueue::new(clients.sqs.clone(), &values[1])),
            })
        }
    }
}

/// Opens the SQLite file at `path`, creating it if it is missing (`serve` starts on an empty
/// one).
pub fn open_or_create_sqlite(path: &Path) -> Result<SqliteDb, CliError> {
    SqliteDb::open(path).map_err(|source| CliError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Opens a file that must already exist: a read-back command never creates an empty database
/// in place of a mistyped path.
pub fn open_existing_sqlite(path: &Path, command: &str) -> Result<SqliteDb, CliError> {
    if !path.is_file() {
        return Err(CliError::Config(format!(
            "{command}: no database at {} (give the file `orders serve` uses with --data FILE \
             or ORDERS_DATA, or use --backend aws)",
            path.display()
        )));
    }
    open_or_create_sqlite(path)
}
