//! The ingest Lambda: the same [`router`](crate::router) behind API Gateway (HTTP API, payload
//! format 2.0) through `lambda_http`.

use std::sync::Arc;

use order_adapters_aws::iam::Permission;
use order_adapters_aws::{iam, AwsClients, DynamoEventStore, DynamoStatusStore, SqsWorkQueue};
use order_lambda::{init_logging, EnvReader, FromEnv};
use order_ports::{AppendThenEnqueue, EventStore};

use crate::auth::{with_authentication, Authentication};
use crate::{router, AppState};

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events_table: String,
    pub status_table: String,
    pub work_queue_url: String,
    /// With the JWT authorizer: the claim that names the caller's customer. `None`: no
    /// authentication, every caller may do everything.
    pub auth_claim: Option<String>,
}

impl FromEnv for Config {
    /// The environment variables [`Config`] requires (`template.yaml` sets each of them).
    const REQUIRED: &'static [&'static str] = &["EVENTS_TABLE", "STATUS_TABLE", "WORK_QUEUE_URL"];
    /// The environment variables [`Config`] reads if set (`template.yaml` sets no others): the JWT
    /// authorizer's settings, set (non-empty) exactly when the template attaches it.
    const OPTIONAL: &'static [&'static str] = &["AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_CLAIM"];

    fn read(env: &mut EnvReader<'_>) -> Self {
        Config {
            events_table: env.required("EVENTS_TABLE"),
            status_table: env.required("STATUS_TABLE"),
            work_queue_url: env.required("WORK_QUEUE_URL"),
            auth_claim: auth_claim(env),
        }
    }
}

/// The template attaches the authorizer when both issuer and audience are set; one without the
/// other is a half-made configuration, refused at start (fail closed) rather than served open.
fn auth_claim(env: &mut EnvReader<'_>) -> Option<String> {
    let issuer: Option<String> = env.optional_parsed("AUTH_ISSUER", "must be text");
    let audience: Option<String> = env.optional_parsed("AUTH_AUDIENCE", "must be text");
    let claim: Option<String> = env.optional_parsed("AUTH_CLAIM", "must be text");
    match (issuer, audience) {
        (None, None) => None,
        (Some(_), Some(_)) => Some(claim.unwrap_or_else(|| "sub".to_owned())),
        (Some(_), None) => {
            env.required("AUTH_AUDIENCE");
            None
        }
        (None, Some(_)) => {
            env.required("AUTH_ISSUER");
            None
        }
    }
}

/// What this function's role must grant, built from the adapters' per-method constants:
/// the HTTP API appends (`POST /orders`) and loads (`GET`) events, reads the status view
/// (`GET /orders/{id}`) and its `byCustomer` index with the views it points to
/// (`GET /orders?customerId=`) and enqueues
/// work (`POST`, also on an idempotent retry).
/// `orders/tests/template.rs` checks the role in `template.yaml` grants exactly this.
pub const AWS_PERMISSIONS: &[Permission] = &[
    DynamoEventStore::APPEND,
    DynamoEventStore::LOAD,
    DynamoStatusStore::GET,
    DynamoStatusStore::LIST_BY_CUSTOMER,
    DynamoStatusStore::GET_MANY,
    SqsWorkQueue::SEND,
    iam::LOGS,
];

/// Wires the [`Config`], the clients and the runtime.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::from_env(None).await;
    let events: Arc<dyn EventStore> = Arc::new(DynamoEventStore::new(
        clients.dynamodb.clone(),
        config.events_table,
    ));
    // DynamoDB and SQS share no transaction: see AppendThenEnqueue for what heals a gap.
    let intake = AppendThenEnqueue {
        events: events.clone(),
        queue: Arc::new(SqsWorkQueue::new(clients.sqs, config.work_queue_url)),
    };
    let auth_claim = config.auth_claim;
    let app = router(AppState {
        intake: Arc::new(intake),
        events,
        status: Arc::new(DynamoStatusStore::new(
            clients.dynamodb,
            config.status_table,
        )),
    });
    let app = match auth_claim {
        Some(claim) => with_authentication(app, Authentication::Gateway { claim }),
        None => app,
    };
    lambda_http::run(app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    use order_test_support::env_lookup as lookup;

    #[test]
    fn an_empty_environment_names_exactly_the_required_variables_and_reads_only_declared_ones() {
        order_test_support::assert_config_reads_exactly::<Config>();
    }

    #[test]
    fn a_complete_environment_is_read_into_the_config() {
        let asked = RefCell::default();
        let config = Config::from_lookup(lookup(
            &[
                ("EVENTS_TABLE", "e"),
                ("STATUS_TABLE", "s"),
                ("WORK_QUEUE_URL", "q"),
            ],
            &asked,
        ))
        .unwrap();
        assert_eq!(
            config,
            Config {
                events_table: "e".into(),
                status_table: "s".into(),
                work_queue_url: "q".into(),
                auth_claim: None,
            }
        );
    }

    #[test]
    fn issuer_and_audience_turn_authentication_on_with_sub_unless_a_claim_is_named() {
        let asked = RefCell::default();
        let base = [
            ("EVENTS_TABLE", "e"),
            ("STATUS_TABLE", "s"),
            ("WORK_QUEUE_URL", "q"),
            ("AUTH_ISSUER", "https://issuer.test/"),
            ("AUTH_AUDIENCE", "orders-api"),
        ];
        let config = Config::from_lookup(lookup(&base, &asked)).unwrap();
        assert_eq!(config.auth_claim.as_deref(), Some("sub"));
        let with_claim = [&base[..], &[("AUTH_CLAIM", "email")]].concat();
        let config = Config::from_lookup(lookup(&with_claim, &asked)).unwrap();
        assert_eq!(config.auth_claim.as_deref(), Some("email"));
        // The template sets the parameter's value, empty when not used: that is off.
        let empty = [&base[..3], &[("AUTH_ISSUER", ""), ("AUTH_AUDIENCE", "")]].concat();
        let config = Config::from_lookup(lookup(&empty, &asked)).unwrap();
        assert_eq!(config.auth_claim, None);
    }

    #[test]
    fn an_issuer_without_an_audience_is_refused_at_start_not_served_open() {
        let asked = RefCell::default();
        for (set, missing) in [
            (("AUTH_ISSUER", "https://issuer.test/"), "AUTH_AUDIENCE"),
            (("AUTH_AUDIENCE", "orders-api"), "AUTH_ISSUER"),
        ] {
            let env = [
                ("EVENTS_TABLE", "e"),
                ("STATUS_TABLE", "s"),
                ("WORK_QUEUE_URL", "q"),
                set,
            ];
            let error = Config::from_lookup(lookup(&env, &asked)).unwrap_err();
            let names: Vec<&str> = error.0.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, [missing]);
        }
    }
}
