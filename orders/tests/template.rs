//! `template.yaml` against the code: each function's role grants exactly the IAM actions its
//! code path (and its event source mapping) needs — the `AWS_PERMISSIONS` each `lambda.rs`
//! builds from the adapters' per-method constants in `order_adapters_aws::iam` — on its own
//! resources only; each function's environment sets every variable its `Config` requires and
//! nothing it does not read; and cfn-lint accepts the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use order_adapters_aws::iam::{self, grants, Permission, Resource};
use order_lambda::FromEnv;
use yaml_serde::{Mapping, Value};

/// A function of the template and what its crate declares.
struct Function {
    logical_id: &'static str,
    permissions: &'static [Permission],
    required_env: &'static [&'static str],
    optional_env: &'static [&'static str],
}

fn functions() -> Vec<Function> {
    vec![
        Function {
            logical_id: "IngestFunction",
            permissions: ingest::lambda::AWS_PERMISSIONS,
            required_env: <ingest::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <ingest::lambda::Config as FromEnv>::OPTIONAL,
        },
        Function {
            logical_id: "ProcessorFunction",
            permissions: processor::lambda::AWS_PERMISSIONS,
            required_env: <processor::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <processor::lambda::Config as FromEnv>::OPTIONAL,
        },
        Function {
            logical_id: "ProjectorFunction",
            permissions: projector::lambda::AWS_PERMISSIONS,
            required_env: <projector::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <projector::lambda::Config as FromEnv>::OPTIONAL,
        },
        Function {
            logical_id: "NotifierFunction",
            permissions: notifier::lambda::AWS_PERMISSIONS,
            required_env: <notifier::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <notifier::lambda::Config as FromEnv>::OPTIONAL,
        },
        Function {
            logical_id: "ReconcilerFunction",
            permissions: reconciler::lambda::AWS_PERMISSIONS,
            required_env: <reconciler::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <reconciler::lambda::Config as FromEnv>::OPTIONAL,
        },
        Function {
            logical_id: "ArchiverFunction",
            permissions: archiver::lambda::AWS_PERMISSIONS,
            required_env: <archiver::lambda::Config as FromEnv>::REQUIRED,
            optional_env: <archiver::lambda::Config as FromEnv>::OPTIONAL,
        },
    ]
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("orders/ has a parent")
        .to_path_buf()
}

fn template() -> Value {
    let path = workspace_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("read template.yaml");
    yaml_serde::from_str(&text).expect("template.yaml parses (short-form tags included)")
}

fn resources(template: &Value) -> &Mapping {
    template
        .get("Resources")
        .and_then(Value::as_mapping)
        .expect("template has Resources")
}

fn resource<'t>(template: &'t Value, logical_id: &str) -> &'t Value {
    resources(template)
        .get(logical_id)
        .unwrap_or_else(|| panic!("template has no resource {logical_id}"))
}

fn properties<'t>(resource: &'t Value, what: &str) -> &'t Value {
    resource
        .get("Properties")
        .unwrap_or_else(|| panic!("{what} has no Properties"))
}

fn type_of(resource: &Value) -> &str {
    resource.get("Type").and_then(Value::as_str).unwrap_or("")
}

/// A CloudFormation value, short (`!GetAtt X.Arn`) or long (`Fn::GetAtt: [X, Arn]`) form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cfn {
    Ref(String),
    GetAtt(String, String),
    Sub(String),
    Literal(String),
    Other(String),
}

/// An intrinsic function call, short (`!If [...]`) or long (`Fn::If: [...]`) form: its name
/// without `Fn::` and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(m) if m.len() == 1 => match m.iter().next() {
            Some((Value::String(key), argument)) => {
                Some((key.strip_prefix("Fn::").unwrap_or(key).to_owned(), argument))
            }
            _ => None,
        },
        _ => None,
    }
}

fn cfn(value: &Value) -> Cfn {
    if let Value::String(s) = value {
        return Cfn::Literal(s.clone());
    }
    let Some((function, argument)) = intrinsic(value) else {
        return Cfn::Other(format!("{value:?}"));
    };
    match (function.as_str(), argument) {
        ("Ref", Value::String(name)) => Cfn::Ref(name.clone()),
        ("GetAtt", Value::String(path)) => match path.split_once('.') {
            Some((name, attribute)) => Cfn::GetAtt(name.to_owned(), attribute.to_owned()),
            None => Cfn::Other(format!("{value:?}")),
        },
        ("GetAtt", Value::Sequence(parts)) => match parts.as_slice() {
            [Value::String(name), Value::String(attribute)] => {
                Cfn::GetAtt(name.clone(), attribute.clone())
            }
            _ => Cfn::Other(format!("{value:?}")),
        },
        ("Sub", Value::String(text)) => Cfn::Sub(text.clone()),
        _ => Cfn::Other(format!("{value:?}")),
    }
}

/// A string or a list of values, as IAM's `Action` and `Resource` allow.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The deployed resource a policy `Resource` entry names, seen from one function (whose own
/// log group is `log_group`). `None`: not a resource any function of this service may touch.
fn resolve(entry: &Cfn, log_group: &str) -> Option<Resource> {
    let get_att = |name: &str, attribute: &str| matches!(entry, Cfn::GetAtt(n, a) if n == name && a == attribute);
    Some(if get_att("OrderEvents", "Arn") {
        Resource::EventsTable
    } else if get_att("OrderEvents", "StreamArn") {
        Resource::EventsStream
    } else if get_att("OrderStatus", "Arn") {
        Resource::StatusTable
    } else if matches!(entry, Cfn::Sub(s) if s == "${OrderStatus.Arn}/index/*") {
        Resource::StatusTableIndex
    } else if get_att("WorkQueue", "Arn") {
        Resource::WorkQueue
    } else if get_att("StreamFailureQueue", "Arn") {
        Resource::StreamFailureQueue
    } else if matches!(entry, Cfn::Ref(r) if r == "OrderTopic") {
        Resource::OrderTopic
    } else if get_att(log_group, "Arn") {
        Resource::OwnLogGroup
    } else {
        return None;
    })
}

/// The logical id behind `!Ref X` / `!GetAtt X.Attr`.
fn target(value: &Value, what: &str) -> String {
    match cfn(value) {
        Cfn::Ref(name) | Cfn::GetAtt(name, _) => name,
        other => panic!("{what}: expected !Ref or !GetAtt, got {other:?}"),
    }
}

/// The function's own log group (`LoggingConfig.LogGroup: !Ref X`).
fn log_group_of(function: &Value, id: &str) -> String {
    let value = properties(function, id)
        .get("LoggingConfig")
        .and_then(|c| c.get("LogGroup"))
        .unwrap_or_else(|| panic!("{id} has no LoggingConfig.LogGroup"));
    target(value, &format!("{id} LoggingConfig.LogGroup"))
}

/// The role of a function (`Role: !GetAtt XRole.Arn`).
fn role_of<'t>(template: &'t Value, function: &Value, id: &str) -> (String, &'t Value) {
    let role_ref = properties(function, id)
        .get("Role")
        .unwrap_or_else(|| panic!("{id} has no Role"));
    assert!(
        matches!(cfn(role_ref), Cfn::GetAtt(_, ref a) if a == "Arn"),
        "{id}: Role must be !GetAtt <Role>.Arn of a role in this template"
    );
    let name = target(role_ref, &format!("{id} Role"));
    let role = resource(template, &name);
    assert_eq!(type_of(role), "AWS::IAM::Role", "{id}'s Role {name}");
    (name, role)
}

/// What a role's inline policies grant, as `(resource, action)` pairs; panics on anything that
/// is not an Allow of named actions on one of this function's own resources.
fn granted(role_name: &str, role: &Value, log_group: &str) -> BTreeSet<(Resource, String)> {
    let props = properties(role, role_name);
    assert!(
        props.get("ManagedPolicyArns").is_none(),
        "{role_name}: managed policies would grant actions no test sees; use inline Policies"
    );
    let policies = props
        .get("Policies")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{role_name} has no inline Policies"));
    let mut granted = BTreeSet::new();
    for policy in policies {
        let name = policy
            .get("PolicyName")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let document = policy
            .get("PolicyDocument")
            .unwrap_or_else(|| panic!("{role_name}/{name} has no PolicyDocument"));
        let statements = document
            .get("Statement")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{role_name}/{name} has no Statement list"));
        for statement in statements {
            let sid = statement.get("Sid").and_then(Value::as_str).unwrap_or("?");
            let at = format!("{role_name}/{name}/{sid}");
            let keys: BTreeSet<&str> = statement
                .as_mapping()
                .unwrap_or_else(|| panic!("{at}: a statement is a mapping"))
                .keys()
                .filter_map(Value::as_str)
                .collect();
            let allowed: BTreeSet<&str> = ["Sid", "Effect", "Action", "Resource"].into();
            assert!(
                keys.is_subset(&allowed),
                "{at}: only Sid/Effect/Action/Resource are expected (no NotAction, \
                 NotResource or Condition), got {keys:?}"
            );
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow"),
                "{at}: Effect must be Allow"
            );
            let actions: Vec<String> = one_or_many(
                statement
                    .get("Action")
                    .unwrap_or_else(|| panic!("{at} has no Action")),
            )
            .into_iter()
            .map(|a| match a.as_str() {
                Some(a) => a.to_owned(),
                None => panic!("{at}: Action entries must be plain strings, got {a:?}"),
            })
            .collect();
            let entries = one_or_many(
                statement
                    .get("Resource")
                    .unwrap_or_else(|| panic!("{at} has no Resource")),
            );
            for entry in entries {
                let entry = cfn(entry);
                let Some(resource) = resolve(&entry, log_group) else {
                    panic!(
                        "{at}: Resource {entry:?} is not one of this function's own resources \
                         (no `*`, no other function's log group)"
                    );
                };
                for action in &actions {
                    granted.insert((resource, action.clone()));
                }
            }
        }
    }
    granted
}

fn declared(permissions: &[Permission]) -> BTreeSet<(Resource, String)> {
    grants(permissions)
        .into_iter()
        .map(|(resource, action)| (resource, action.to_owned()))
        .collect()
}

fn diff(
    a: &BTreeSet<(Resource, String)>,
    b: &BTreeSet<(Resource, String)>,
) -> Vec<(Resource, String)> {
    a.difference(b).cloned().collect()
}

#[test]
fn the_template_has_exactly_the_functions_the_workspace_builds() {
    let template = template();
    let in_template: BTreeSet<String> = resources(&template)
        .iter()
        .filter(|(_, r)| type_of(r) == "AWS::Lambda::Function")
        .filter_map(|(id, _)| id.as_str().map(str::to_owned))
        .collect();
    let in_code: BTreeSet<String> = functions()
        .iter()
        .map(|f| f.logical_id.to_owned())
        .collect();
    assert_eq!(in_template, in_code);
}

#[test]
fn each_function_role_grants_exactly_the_actions_its_code_calls() {
    let template = template();
    let mut failures = Vec::new();
    for f in functions() {
        let function = resource(&template, f.logical_id);
        let log_group = log_group_of(function, f.logical_id);
        let (role_name, role) = role_of(&template, function, f.logical_id);
        let granted = granted(&role_name, role, &log_group);
        let declared = declared(f.permissions);
        let missing = diff(&declared, &granted);
        let extra = diff(&granted, &declared);
        if !missing.is_empty() || !extra.is_empty() {
            failures.push(format!(
                "{} ({role_name}): missing {missing:?}, extra {extra:?}",
                f.logical_id
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_function_has_its_own_role_assumable_by_lambda_only() {
    let template = template();
    let mut roles = BTreeSet::new();
    for f in functions() {
        let function = resource(&template, f.logical_id);
        let (role_name, role) = role_of(&template, function, f.logical_id);
        assert!(
            roles.insert(role_name.clone()),
            "{role_name} is shared: each function needs its own role"
        );
        let trust = properties(role, &role_name)
            .get("AssumeRolePolicyDocument")
            .and_then(|d| d.get("Statement"))
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{role_name} has no trust statements"));
        for statement in trust {
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow")
            );
            assert_eq!(
                statement.get("Action").and_then(Value::as_str),
                Some("sts:AssumeRole"),
                "{role_name}"
            );
            let principal = statement.get("Principal").and_then(|p| p.get("Service"));
            assert_eq!(
                principal.and_then(Value::as_str),
                Some("lambda.amazonaws.com"),
                "{role_name}"
            );
        }
    }
    // No standalone policy can add grants behind the roles' backs.
    for (id, r) in resources(&template) {
        assert!(
            !matches!(
                type_of(r),
                "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy"
            ),
            "{id:?}: attach permissions as the role's inline Policies"
        );
    }
}

#[test]
fn each_event_source_mapping_permission_is_declared_by_exactly_the_functions_it_feeds() {
    let template = template();
    for f in functions() {
        let mut needed: Vec<Permission> = Vec::new();
        for (id, r) in resources(&template) {
            if type_of(r) != "AWS::Lambda::EventSourceMapping" {
                continue;
            }
            let props = properties(r, &format!("{id:?}"));
            let function = props.get("FunctionName").map(cfn);
            if function != Some(Cfn::Ref(f.logical_id.to_owned())) {
                continue;
            }
            let source = props
                .get("EventSourceArn")
                .map(cfn)
                .and_then(|s| resolve(&s, ""));
            match source {
                Some(Resource::WorkQueue) => needed.push(iam::SQS_EVENT_SOURCE),
                Some(Resource::EventsStream) => needed.push(iam::STREAM_EVENT_SOURCE),
                other => panic!("{id:?}: unexpected event source {other:?}"),
            }
            if let Some(destination) = props
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .and_then(|o| o.get("Destination"))
            {
                assert_eq!(
                    resolve(&cfn(destination), ""),
                    Some(Resource::StreamFailureQueue),
                    "{id:?}: OnFailure destination"
                );
                needed.push(iam::STREAM_ON_FAILURE);
            }
        }
        for mapping_permission in [
            iam::SQS_EVENT_SOURCE,
            iam::STREAM_EVENT_SOURCE,
            iam::STREAM_ON_FAILURE,
        ] {
            assert_eq!(
                f.permissions.contains(&mapping_permission),
                needed.contains(&mapping_permission),
                "{}: AWS_PERMISSIONS and the template's event source mappings disagree on \
                 {mapping_permission:?}",
                f.logical_id
            );
        }
    }
}

#[test]
fn every_function_environment_sets_what_its_config_requires_and_only_what_it_reads() {
    let expected_target: BTreeMap<&str, &str> = [
        ("EVENTS_TABLE", "OrderEvents"),
        ("STATUS_TABLE", "OrderStatus"),
        ("WORK_QUEUE_URL", "WorkQueue"),
        ("TOPIC_ARN", "OrderTopic"),
        ("STREAM_FAILURE_QUEUE_URL", "StreamFailureQueue"),
        ("CREDIT_LIMIT", "CreditLimit"),
        ("AUTH_ISSUER", "AuthIssuer"),
        ("AUTH_AUDIENCE", "AuthAudience"),
        ("AUTH_CLAIM", "AuthClaim"),
    ]
    .into();
    let template = template();
    let none = Mapping::new();
    for f in functions() {
        // No Environment at all: nothing set (the archiver reads nothing).
        let variables = properties(resource(&template, f.logical_id), f.logical_id)
            .get("Environment")
            .map(|e| {
                e.get("Variables")
                    .and_then(Value::as_mapping)
                    .unwrap_or_else(|| panic!("{} has no Environment.Variables", f.logical_id))
            })
            .unwrap_or(&none);
        let names: BTreeSet<&str> = variables.keys().filter_map(Value::as_str).collect();
        let required: BTreeSet<&str> = f.required_env.iter().copied().collect();
        let read: BTreeSet<&str> = required.iter().chain(f.optional_env).copied().collect();
        let unset: Vec<_> = required.difference(&names).collect();
        let unread: Vec<_> = names.difference(&read).collect();
        assert!(
            unset.is_empty() && unread.is_empty(),
            "{}: required but not set {unset:?}; set but never read {unread:?}",
            f.logical_id
        );
        for (name, value) in variables {
            let name = name.as_str().unwrap_or("?");
            let Some(expected) = expected_target.get(name) else {
                panic!("{}: no expected target for {name}", f.logical_id);
            };
            assert_eq!(
                cfn(value),
                Cfn::Ref((*expected).to_owned()),
                "{}: {name}",
                f.logical_id
            );
        }
    }
}

#[test]
fn the_credit_limit_parameter_defaults_to_the_code_default() {
    let template = template();
    let default = template
        .get("Parameters")
        .and_then(|p| p.get("CreditLimit"))
        .and_then(|p| p.get("Default"))
        .expect("template has a CreditLimit parameter with a Default");
    // CloudFormation takes a Number parameter's default as a YAML number or a string.
    let default = match default {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    assert_eq!(
        default,
        Some(events_schema::ProcessingPolicy::default().credit_limit)
    );
}

#[test]
fn the_template_passes_cfn_lint() {
    let root = workspace_root();
    let cfn_lint = root.join(".venv-tools/bin/cfn-lint");
    assert!(
        cfn_lint.exists(),
        "{} is missing: run scripts/emulator-venv.sh (scripts/test.sh installs it first)",
        cfn_lint.display()
    );
    let output = Command::new(&cfn_lint)
        .arg("template.yaml")
        .current_dir(&root)
        .output()
        .expect("run cfn-lint");
    assert!(
        output.status.success(),
        "cfn-lint template.yaml exited {:?}:\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------- capacity mode

/// The template's parameter values with `overrides` over the defaults.
fn parameter_values(template: &Value, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let parameters = template
        .get("Parameters")
        .and_then(Value::as_mapping)
        .expect("template has Parameters");
    let mut values: BTreeMap<String, String> = parameters
        .iter()
        .filter_map(|(name, p)| {
            let default = match p.get("Default")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("parameter {name:?}: unexpected default {other:?}"),
            };
            Some((name.as_str()?.to_owned(), default))
        })
        .collect();
    for (name, value) in overrides {
        assert!(
            values.contains_key(*name),
            "template has no parameter {name} with a default"
        );
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    values
}

/// Every condition of the template, evaluated as CloudFormation would with `parameters`.
fn conditions(template: &Value, parameters: &BTreeMap<String, String>) -> BTreeMap<String, bool> {
    let Some(conditions) = template.get("Conditions").and_then(Value::as_mapping) else {
        return BTreeMap::new();
    };
    let given: BTreeMap<&str, &str> = parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    conditions
        .keys()
        .map(|name| {
            let name = name.as_str().expect("condition names are strings");
            (name.to_owned(), named_condition(template, &given, name))
        })
        .collect()
}

/// `value` as CloudFormation would see it under `conditions`: each `If` replaced by its chosen
/// branch, and `Ref AWS::NoValue` dropping the property (`None`) it stands for.
fn under(value: &Value, conditions: &BTreeMap<String, bool>) -> Option<Value> {
    match intrinsic(value) {
        Some((f, Value::Sequence(args))) if f == "If" => {
            let [Value::String(name), yes, no] = args.as_slice() else {
                panic!("If takes a condition name and two values: {value:?}");
            };
            let chosen = *conditions
                .get(name)
                .unwrap_or_else(|| panic!("If names an unknown condition {name}"));
            return under(if chosen { yes } else { no }, conditions);
        }
        Some((f, Value::String(name))) if f == "Ref" && name == "AWS::NoValue" => return None,
        _ => {}
    }
    Some(match value {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .filter_map(|(k, v)| under(v, conditions).map(|v| (k.clone(), v)))
                .collect(),
        ),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().filter_map(|v| under(v, conditions)).collect())
        }
        other => other.clone(),
    })
}

/// The resources CloudFormation would create with `overrides`, as it would see them.
fn deployed(overrides: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let template = template();
    let parameters = parameter_values(&template, overrides);
    let conditions = conditions(&template, &parameters);
    resources(&template)
        .iter()
        .filter(|(_, r)| match r.get("Condition").and_then(Value::as_str) {
            Some(name) => *conditions
                .get(name)
                .unwrap_or_else(|| panic!("a resource names an unknown condition {name}")),
            None => true,
        })
        .map(|(id, r)| {
            let id = id.as_str().expect("logical ids are strings").to_owned();
            let r = under(r, &conditions).expect("a resource is never NoValue");
            (id, r)
        })
        .collect()
}

fn of_type<'r>(resources: &'r BTreeMap<String, Value>, kind: &str) -> Vec<(&'r str, &'r Value)> {
    resources
        .iter()
        .filter(|(_, r)| type_of(r) == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// Each table and each of its GSIs, as `(logical id of the table, Some(index) or None)`.
fn tables_and_indexes(resources: &BTreeMap<String, Value>) -> Vec<(String, Option<String>)> {
    let mut all = Vec::new();
    for (id, table) in of_type(resources, "AWS::DynamoDB::Table") {
        all.push((id.to_owned(), None));
        let indexes = properties(table, id)
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for index in indexes {
            let name = index.get("IndexName").and_then(Value::as_str);
            all.push((
                id.to_owned(),
                Some(name.expect("a GSI has a name").to_owned()),
            ));
        }
    }
    all
}

#[test]
fn on_demand_is_the_default_and_creates_no_provisioned_capacity_or_scaling() {
    let resources = deployed(&[]);
    for (id, table) in of_type(&resources, "AWS::DynamoDB::Table") {
        let props = properties(table, id);
        assert_eq!(
            props.get("BillingMode").and_then(Value::as_str),
            Some("PAY_PER_REQUEST"),
            "{id}"
        );
        assert!(props.get("ProvisionedThroughput").is_none(), "{id}");
        for index in props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            assert!(
                index.get("ProvisionedThroughput").is_none(),
                "{id}: {index:?}"
            );
        }
    }
    let scaling: Vec<&str> = resources
        .iter()
        .filter(|(_, r)| type_of(r).starts_with("AWS::ApplicationAutoScaling::"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        scaling.is_empty(),
        "scaling resources on demand: {scaling:?}"
    );
}

#[test]
fn provisioned_capacity_scales_reads_and_writes_of_every_table_and_index_at_70_percent() {
    let resources = deployed(&[("CapacityMode", "PROVISIONED")]);
    let mut expected = BTreeSet::new();
    for (table, index) in tables_and_indexes(&resources) {
        let props = properties(&resources[&table], &table);
        assert_eq!(
            props.get("BillingMode").and_then(Value::as_str),
            Some("PROVISIONED"),
            "{table}"
        );
        let throughput = match &index {
            None => props.get("ProvisionedThroughput"),
            Some(name) => props
                .get("GlobalSecondaryIndexes")
                .and_then(Value::as_sequence)
                .and_then(|all| {
                    all.iter()
                        .find(|i| i.get("IndexName").and_then(Value::as_str) == Some(name))
                })
                .and_then(|i| i.get("ProvisionedThroughput")),
        };
        let throughput =
            throughput.unwrap_or_else(|| panic!("{table} {index:?} has no ProvisionedThroughput"));
        for units in ["ReadCapacityUnits", "WriteCapacityUnits"] {
            assert!(
                throughput.get(units).is_some(),
                "{table} {index:?}: {units}"
            );
        }
        let (resource_id, kind) = match &index {
            None => (format!("table/${{{table}}}"), "table"),
            Some(name) => (format!("table/${{{table}}}/index/{name}"), "index"),
        };
        for (units, metric) in [
            ("ReadCapacityUnits", "DynamoDBReadCapacityUtilization"),
            ("WriteCapacityUnits", "DynamoDBWriteCapacityUtilization"),
        ] {
            expected.insert((
                resource_id.clone(),
                format!("dynamodb:{kind}:{units}"),
                metric.to_owned(),
            ));
        }
    }

    let mut scaled = BTreeSet::new();
    let policies = of_type(&resources, "AWS::ApplicationAutoScaling::ScalingPolicy");
    for (id, scalable) in of_type(&resources, "AWS::ApplicationAutoScaling::ScalableTarget") {
        let props = properties(scalable, id);
        assert_eq!(
            props.get("ServiceNamespace").and_then(Value::as_str),
            Some("dynamodb"),
            "{id}"
        );
        for bound in ["MinCapacity", "MaxCapacity"] {
            assert!(props.get(bound).is_some(), "{id} has no {bound}");
        }
        let resource_id = match props.get("ResourceId").map(cfn) {
            Some(Cfn::Sub(text)) => text,
            other => panic!("{id}: ResourceId is not a !Sub: {other:?}"),
        };
        let dimension = props
            .get("ScalableDimension")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{id} has no ScalableDimension"))
            .to_owned();
        let tracking: Vec<&Value> = policies
            .iter()
            .filter(|(_, p)| {
                properties(p, "policy")
                    .get("ScalingTargetId")
                    .is_some_and(|t| target(t, "ScalingTargetId") == id)
            })
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(tracking.len(), 1, "{id}: one scaling policy");
        let policy = properties(tracking[0], id);
        assert_eq!(
            policy.get("PolicyType").and_then(Value::as_str),
            Some("TargetTrackingScaling"),
            "{id}"
        );
        let config = policy
            .get("TargetTrackingScalingPolicyConfiguration")
            .unwrap_or_else(|| panic!("{id}: no target tracking configuration"));
        let target_value = config.get("TargetValue").and_then(Value::as_f64);
        assert_eq!(target_value, Some(70.0), "{id}");
        let metric = config
            .get("PredefinedMetricSpecification")
            .and_then(|m| m.get("PredefinedMetricType"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{id}: no predefined metric"));
        assert!(
            scaled.insert((resource_id, dimension, metric.to_owned())),
            "{id} scales a dimension twice"
        );
    }
    assert_eq!(scaled, expected);
}

/// The HTTP API routes exactly the operations of the OpenAPI document (`GET /openapi.json`
/// included), so a route added to the router and its document is not forgotten in the template.
#[test]
fn the_http_api_routes_exactly_the_documented_operations() {
    let template = template();
    let mut routed: Vec<String> = resources(&template)
        .values()
        .filter(|r| type_of(r) == "AWS::ApiGatewayV2::Route")
        .map(|r| {
            properties(r, "route")
                .get("RouteKey")
                .and_then(Value::as_str)
                .expect("a RouteKey string")
                .to_owned()
        })
        .collect();
    routed.sort();
    let document = serde_json::to_value(ingest::openapi::document()).expect("document");
    let mut documented: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("operations")
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    documented.sort();
    assert_eq!(routed, documented);
}

/// The stack's parameter values: `given`, else each parameter's `Default`.
fn parameter(template: &Value, given: &BTreeMap<&str, &str>, name: &str) -> String {
    if let Some(value) = given.get(name) {
        return (*value).to_owned();
    }
    let default = template
        .get("Parameters")
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("Default"))
        .unwrap_or_else(|| panic!("parameter {name} is not given and has no Default"));
    match default {
        Value::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A value of a condition expression (`Ref` to a parameter or a literal string).
fn condition_operand(template: &Value, given: &BTreeMap<&str, &str>, value: &Value) -> String {
    match (value, intrinsic(value)) {
        (Value::String(s), _) => s.clone(),
        // CloudFormation compares a Number parameter's value as text: `!Equals [!Ref N, 0]`.
        (Value::Number(n), _) => n.to_string(),
        (_, Some((f, Value::String(name)))) if f == "Ref" => parameter(template, given, name),
        _ => panic!("unsupported condition operand {value:?}"),
    }
}

/// Evaluates a condition expression (`And`, `Or`, `Not`, `Equals`, `Condition`) as
/// CloudFormation would with the parameters `given`.
fn condition(template: &Value, given: &BTreeMap<&str, &str>, expression: &Value) -> bool {
    let (function, argument) =
        intrinsic(expression).unwrap_or_else(|| panic!("not a condition: {expression:?}"));
    let args: Vec<&Value> = one_or_many(argument);
    match function.as_str() {
        "And" => args.iter().all(|a| condition(template, given, a)),
        "Or" => args.iter().any(|a| condition(template, given, a)),
        "Not" => !condition(template, given, args[0]),
        "Equals" => {
            condition_operand(template, given, args[0])
                == condition_operand(template, given, args[1])
        }
        "Condition" => named_condition(template, given, argument.as_str().unwrap_or("")),
        other => panic!("unsupported condition function {other}"),
    }
}

fn named_condition(template: &Value, given: &BTreeMap<&str, &str>, name: &str) -> bool {
    let expression = template
        .get("Conditions")
        .and_then(|c| c.get(name))
        .unwrap_or_else(|| panic!("no condition {name}"));
    condition(template, given, expression)
}

/// A property as deployed with the parameters `given`: `Fn::If` resolved, `None` for
/// `AWS::NoValue` or a property that is absent.
fn deployed_property(
    template: &Value,
    given: &BTreeMap<&str, &str>,
    value: Option<&Value>,
) -> Option<Cfn> {
    let value = value?;
    match intrinsic(value) {
        Some((f, Value::Sequence(branches))) if f == "If" && branches.len() == 3 => {
            let name = branches[0].as_str().expect("Fn::If names a condition");
            let chosen = if named_condition(template, given, name) {
                &branches[1]
            } else {
                &branches[2]
            };
            deployed_property(template, given, Some(chosen))
        }
        _ => match cfn(value) {
            Cfn::Ref(name) if name == "AWS::NoValue" => None,
            other => Some(other),
        },
    }
}

/// A route's deployed `(AuthorizationType, AuthorizerId)`, `None` where unset.
type RouteAuth = (Option<Cfn>, Option<Cfn>);

/// Every route of the HTTP API as deployed with `given`: route key → its [`RouteAuth`], and
/// whether the JWT authorizer resource exists (with its JwtConfiguration).
fn routes_with(given: &[(&str, &str)]) -> (BTreeMap<String, RouteAuth>, Option<Value>) {
    let template = template();
    let given: BTreeMap<&str, &str> = given.iter().copied().collect();
    let mut routes = BTreeMap::new();
    let mut authorizer = None;
    for (id, resource) in resources(&template) {
        let id = id.as_str().unwrap_or("?");
        let exists = resource
            .get("Condition")
            .and_then(Value::as_str)
            .is_none_or(|c| named_condition(&template, &given, c));
        match type_of(resource) {
            "AWS::ApiGatewayV2::Route" => {
                let props = properties(resource, id);
                assert!(exists, "{id} is conditional");
                let key = props
                    .get("RouteKey")
                    .and_then(Value::as_str)
                    .expect("RouteKey");
                let authorization =
                    deployed_property(&template, &given, props.get("AuthorizationType"));
                let authorizer_id = deployed_property(&template, &given, props.get("AuthorizerId"));
                routes.insert(key.to_owned(), (authorization, authorizer_id));
            }
            "AWS::ApiGatewayV2::Authorizer" if exists => {
                let props = properties(resource, id);
                assert_eq!(id, "JwtAuthorizer");
                assert_eq!(
                    props.get("AuthorizerType").and_then(Value::as_str),
                    Some("JWT")
                );
                authorizer = props.get("JwtConfiguration").cloned();
            }
            _ => {}
        }
    }
    (routes, authorizer)
}

const ORDER_ROUTES: [&str; 5] = [
    "POST /orders",
    "GET /orders",
    "GET /orders/{id}",
    "POST /orders/{id}/cancel",
    "GET /orders/{id}/events",
];

#[test]
fn without_issuer_and_audience_no_route_has_an_authorizer_and_none_exists() {
    for given in [
        &[][..],
        &[("AuthIssuer", "https://issuer.example/")][..],
        &[("AuthAudience", "orders-api")][..],
    ] {
        let (routes, authorizer) = routes_with(given);
        assert!(authorizer.is_none(), "{given:?}");
        assert_eq!(routes.len(), ORDER_ROUTES.len() + 2, "{routes:?}"); // + health, openapi
        for (key, (authorization, authorizer_id)) in &routes {
            assert!(
                authorization.is_none() || authorization == &Some(Cfn::Literal("NONE".into())),
                "{given:?} {key}: {authorization:?}"
            );
            assert_eq!(authorizer_id, &None, "{given:?} {key}");
        }
    }
}

#[test]
fn with_issuer_and_audience_every_order_route_needs_a_jwt_and_health_stays_open() {
    let (routes, authorizer) = routes_with(&[
        ("AuthIssuer", "https://issuer.example/"),
        ("AuthAudience", "orders-api"),
    ]);
    let jwt = authorizer.expect("the JWT authorizer exists");
    assert_eq!(
        cfn(jwt.get("Issuer").expect("Issuer")),
        Cfn::Ref("AuthIssuer".into())
    );
    let audience = one_or_many(jwt.get("Audience").expect("Audience"));
    assert_eq!(audience.len(), 1);
    assert_eq!(cfn(audience[0]), Cfn::Ref("AuthAudience".into()));
    for key in ORDER_ROUTES {
        let (authorization, authorizer_id) = routes.get(key).expect(key);
        assert_eq!(authorization, &Some(Cfn::Literal("JWT".into())), "{key}");
        assert_eq!(
            authorizer_id,
            &Some(Cfn::Ref("JwtAuthorizer".into())),
            "{key}"
        );
    }
    let (authorization, authorizer_id) = routes.get("GET /health").expect("GET /health");
    assert_eq!((authorization, authorizer_id), (&None, &None));
}

#[test]
fn the_auth_claim_parameter_defaults_to_sub() {
    let template = template();
    assert_eq!(parameter(&template, &BTreeMap::new(), "AuthClaim"), "sub");
}

/// Every metric the functions emit as EMF, named by the code that renders them.
fn emitted_metrics() -> BTreeSet<String> {
    use order_lambda::Emf;
    use order_ports::metrics::Metric;
    use std::time::Duration;
    let emf = Emf::with_sink("f", |_| {});
    let every = [
        Metric::OrderAccepted,
        Metric::OrderNotQueued,
        Metric::OrderRejected { reason: "r" },
        Metric::OrderCompleted {
            latency: Duration::ZERO,
        },
        Metric::OrderFailed,
        Metric::OrderCancelled,
        Metric::ProjectorLag(Duration::ZERO),
        Metric::NotificationPublished,
        Metric::BatchItemFailures(1),
        Metric::RecordsSetAside(1),
    ];
    every
        .iter()
        .flat_map(|m| {
            emf.render(m, 0)["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .expect("Metrics")
                .iter()
                .filter_map(|d| d["Name"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn resources_of_type<'t>(template: &'t Value, kind: &str) -> Vec<(String, &'t Value)> {
    resources(template)
        .iter()
        .filter(|(_, r)| type_of(r) == kind)
        .filter_map(|(id, r)| id.as_str().map(|id| (id.to_owned(), r)))
        .collect()
}

/// `(namespace, metric name)` of an alarm: its own, or those of its metric-math inputs.
fn alarm_metrics(alarm: &Value) -> Vec<(String, String)> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    match alarm.get("Metrics").and_then(Value::as_sequence) {
        Some(metrics) => metrics
            .iter()
            .filter_map(|m| m.get("MetricStat").and_then(|s| s.get("Metric")))
            .map(|m| (text(m.get("Namespace")), text(m.get("MetricName"))))
            .collect(),
        None => vec![(text(alarm.get("Namespace")), text(alarm.get("MetricName")))],
    }
}

/// The dashboard's widgets' metric rows, with CloudWatch's `"."` (same as the row above)
/// resolved, as `(namespace, metric name)`.
fn dashboard_metrics(template: &Value) -> BTreeSet<(String, String)> {
    let body = match cfn(properties(resource(template, "Dashboard"), "Dashboard")
        .get("DashboardBody")
        .expect("DashboardBody"))
    {
        Cfn::Sub(text) | Cfn::Literal(text) => text,
        other => panic!("DashboardBody is not a string or !Sub: {other:?}"),
    };
    // `${…}` substitutions hold names and ids only: any string stands in for them.
    let mut plain = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        plain.push('X');
        rest = rest[start..].split_once('}').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    let body: serde_json::Value = serde_json::from_str(&plain).expect("the dashboard is JSON");
    let mut found = BTreeSet::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let mut previous: Vec<String> = Vec::new();
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let parts: Vec<String> = row
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            if parts.is_empty() {
                continue;
            }
            let current: Vec<String> = if parts[0] == "..." {
                previous.clone()
            } else {
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if p == "." {
                            previous.get(i).cloned().unwrap_or_default()
                        } else {
                            p.clone()
                        }
                    })
                    .collect()
            };
            if current.len() >= 2 {
                found.insert((current[0].clone(), current[1].clone()));
            }
            previous = current;
        }
    }
    found
}

#[test]
fn alarms_and_the_dashboard_name_only_metrics_the_functions_emit() {
    let template = template();
    let emitted = emitted_metrics();
    assert!(emitted.contains("ProcessingLatency") && emitted.contains("OrdersRejected"));
    let mut named = dashboard_metrics(&template);
    for (_, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        named.extend(alarm_metrics(properties(alarm, "alarm")));
    }
    for (namespace, name) in &named {
        if namespace == order_ports::metrics::NAMESPACE {
            assert!(
                emitted.contains(name),
                "{namespace}/{name} is in the template but no function emits it; emitted: {emitted:?}"
            );
        }
    }
    let on_dashboard: BTreeSet<String> = dashboard_metrics(&template)
        .into_iter()
        .filter(|(ns, _)| ns == order_ports::metrics::NAMESPACE)
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        on_dashboard, emitted,
        "the dashboard shows every service metric"
    );
}

#[test]
fn the_dashboard_shows_the_service_metrics_next_to_the_aws_ones() {
    let shown = dashboard_metrics(&template());
    for (namespace, name) in [
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/ApiGateway", "4xx"),
        ("AWS/ApiGateway", "5xx"),
    ] {
        assert!(
            shown.contains(&(namespace.to_owned(), name.to_owned())),
            "the dashboard lacks {namespace}/{name}"
        );
    }
}

#[test]
fn each_operational_alarm_exists_and_publishes_to_the_alarm_topic() {
    let template = template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let watched = |namespace: &str, metric: &str| {
        alarms
            .iter()
            .filter(|(_, a)| {
                alarm_metrics(properties(a, "alarm"))
                    .iter()
                    .any(|(ns, m)| ns == namespace && m == metric)
            })
            .count()
    };
    // DLQ and on-failure depth, iterator age of both stream functions, error rate, API 5xx,
    // processing latency.
    assert_eq!(watched("AWS/SQS", "ApproximateNumberOfMessagesVisible"), 2);
    assert_eq!(watched("AWS/Lambda", "IteratorAge"), 2);
    assert!(
        watched("AWS/Lambda", "Errors") >= 4,
        "errors of each function"
    );
    assert_eq!(watched("Orders", "BatchItemFailures"), 1, "failed messages");
    assert_eq!(watched("AWS/ApiGateway", "5xx"), 1);
    assert_eq!(watched("Orders", "ProcessingLatency"), 1);
    let latency = alarms
        .iter()
        .find(|(_, a)| alarm_metrics(properties(a, "alarm"))[0].1 == "ProcessingLatency")
        .map(|(_, a)| properties(a, "alarm"))
        .expect("latency alarm");
    assert_eq!(
        latency.get("ExtendedStatistic").and_then(Value::as_str),
        Some("p99")
    );
    for (id, alarm) in &alarms {
        let actions = properties(alarm, id)
            .get("AlarmActions")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{id} has no AlarmActions"));
        assert_eq!(
            actions.iter().map(cfn).collect::<Vec<_>>(),
            vec![Cfn::Ref("AlarmTopic".to_owned())],
            "{id} publishes to the alarm topic"
        );
    }
}

#[test]
fn each_function_log_group_keeps_its_retention_and_counts_its_error_lines() {
    let template = template();
    let filters = resources_of_type(&template, "AWS::Logs::MetricFilter");
    for function in functions() {
        let log_group = log_group_of(
            resource(&template, function.logical_id),
            function.logical_id,
        );
        let group = resource(&template, &log_group);
        assert_eq!(
            properties(group, &log_group)
                .get("RetentionInDays")
                .map(cfn),
            Some(Cfn::Ref("LogRetentionDays".to_owned())),
            "{log_group} keeps its retention"
        );
        let counting: Vec<&String> = filters
            .iter()
            .filter(|(_, f)| {
                let p = properties(f, "filter");
                p.get("LogGroupName").map(cfn) == Some(Cfn::Ref(log_group.clone()))
                    && p.get("FilterPattern")
                        .and_then(Value::as_str)
                        .is_some_and(|pattern| pattern.contains("ERROR"))
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(counting.len(), 1, "one ERROR-line filter on {log_group}");
    }
}

/// The status table's indexes hold keys only, on attributes an order's view writes do not
/// change while it is in the index (`customerId`, `createdAt`; `pendingShard` only appears and
/// disappears): an order costs one `byCustomer` write and one `pending` put and delete, however
/// often its view is rewritten (BENCHMARKS.md, cost per order). The adapter reads the views
/// through the index keys, so a projection added here would be paid on every view write and
/// read by nobody.
#[test]
fn the_status_indexes_hold_keys_only_on_attributes_a_pending_order_does_not_change() {
    let resources = deployed(&[]);
    let indexes: BTreeMap<String, (Vec<(String, String)>, String)> =
        properties(&resources["OrderStatus"], "OrderStatus")
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .expect("OrderStatus has GSIs")
            .iter()
            .map(|index| {
                let text = |v: &Value, key: &str| {
                    v.get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_else(|| panic!("{key} of {index:?}"))
                        .to_owned()
                };
                let keys = index
                    .get("KeySchema")
                    .and_then(Value::as_sequence)
                    .expect("a GSI has a key schema")
                    .iter()
                    .map(|k| (text(k, "AttributeName"), text(k, "KeyType")))
                    .collect();
                let projection = text(
                    index.get("Projection").expect("a GSI has a projection"),
                    "ProjectionType",
                );
                (text(index, "IndexName"), (keys, projection))
            })
            .collect();
    let key = |name: &str, kind: &str| (name.to_owned(), kind.to_owned());
    assert_eq!(
        indexes,
        BTreeMap::from([
            (
                "byCustomer".to_owned(),
                (
                    vec![key("customerId", "HASH"), key("createdAt", "RANGE")],
                    "KEYS_ONLY".to_owned()
                )
            ),
            (
                "pending".to_owned(),
                (
                    vec![key("pendingShard", "HASH"), key("createdAt", "RANGE")],
                    "KEYS_ONLY".to_owned()
                )
            ),
        ])
    );
}

#[test]
fn the_stream_batching_window_defaults_to_none_and_reaches_the_projector_mapping_only() {
    let template = template();
    assert_eq!(
        parameter_values(&template, &[])["StreamBatchingWindowSeconds"],
        "0"
    );
    let resources = deployed(&[]);
    let windows: BTreeMap<&str, Option<Cfn>> =
        of_type(&resources, "AWS::Lambda::EventSourceMapping")
            .into_iter()
            .map(|(id, mapping)| {
                let window = properties(mapping, id)
                    .get("MaximumBatchingWindowInSeconds")
                    .map(|w| match w {
                        Value::Number(n) => Cfn::Literal(n.to_string()),
                        other => cfn(other),
                    });
                (id, window)
            })
            .collect();
    // The processor's SQS mapping keeps its fixed 1 s; the notifier gets no window (its
    // notifications would lag for next to no saving: template.yaml, the parameter).
    assert_eq!(
        windows,
        BTreeMap::from([
            (
                "EventsToProjector",
                Some(Cfn::Ref("StreamBatchingWindowSeconds".to_owned()))
            ),
            ("EventsToNotifier", None),
            ("WorkQueueToProcessor", Some(Cfn::Literal("1".to_owned()))),
        ])
    );
}

// ---------------------------------------------------------------- throughput knobs

/// Each key of a property mapping and its value (`!Ref P`, or a literal), `None` if the
/// property is absent.
fn fields(value: Option<&Value>) -> Option<BTreeMap<String, Cfn>> {
    let mapping = value?.as_mapping().expect("a mapping");
    Some(
        mapping
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Number(n) => Cfn::Literal(n.to_string()),
                    other => cfn(other),
                };
                (k.as_str().expect("a key").to_owned(), v)
            })
            .collect(),
    )
}

fn refs(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Cfn>> {
    Some(
        pairs
            .iter()
            .map(|(k, p)| ((*k).to_owned(), Cfn::Ref((*p).to_owned())))
            .collect(),
    )
}

/// `property` of each table and of each of its indexes, as deployed with `given`.
fn per_table_and_index(
    given: &[(&str, &str)],
    property: &str,
) -> BTreeMap<String, Option<BTreeMap<String, Cfn>>> {
    let resources = deployed(given);
    let mut found = BTreeMap::new();
    for (id, table) in of_type(&resources, "AWS::DynamoDB::Table") {
        let props = properties(table, id);
        found.insert(id.to_owned(), fields(props.get(property)));
        for index in props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = index
                .get("IndexName")
                .and_then(Value::as_str)
                .expect("a name");
            found.insert(format!("{id}/{name}"), fields(index.get(property)));
        }
    }
    found
}

const TABLES_AND_INDEXES: [&str; 4] = [
    "OrderEvents",
    "OrderStatus",
    "OrderStatus/byCustomer",
    "OrderStatus/pending",
];

#[test]
fn warm_throughput_is_off_by_default_and_reaches_each_table_and_index_when_given() {
    let defaults = per_table_and_index(&[], "WarmThroughput");
    assert_eq!(defaults.len(), 4);
    assert!(defaults.values().all(Option::is_none), "{defaults:?}");
    let given = per_table_and_index(
        &[
            ("EventsWarmReadUnits", "20000"),
            ("EventsWarmWriteUnits", "30000"),
            ("StatusWarmWriteUnits", "25000"),
        ],
        "WarmThroughput",
    );
    assert_eq!(
        given["OrderEvents"],
        refs(&[
            ("ReadUnitsPerSecond", "EventsWarmReadUnits"),
            ("WriteUnitsPerSecond", "EventsWarmWriteUnits")
        ])
    );
    // Reads left at 0 are left out, so DynamoDB keeps its own.
    for id in &TABLES_AND_INDEXES[1..] {
        assert_eq!(
            given[*id],
            refs(&[("WriteUnitsPerSecond", "StatusWarmWriteUnits")]),
            "{id}"
        );
    }
    let reads_only = per_table_and_index(&[("StatusWarmReadUnits", "15000")], "WarmThroughput");
    assert_eq!(reads_only["OrderEvents"], None);
    assert_eq!(
        reads_only["OrderStatus/pending"],
        refs(&[("ReadUnitsPerSecond", "StatusWarmReadUnits")])
    );
}

#[test]
fn the_on_demand_ceiling_is_off_by_default_and_caps_each_table_and_index_on_demand_only() {
    let defaults = per_table_and_index(&[], "OnDemandThroughput");
    assert!(defaults.values().all(Option::is_none), "{defaults:?}");
    let given = per_table_and_index(&[("OnDemandMaxWriteUnits", "60000")], "OnDemandThroughput");
    for id in TABLES_AND_INDEXES {
        assert_eq!(
            given[id],
            refs(&[("MaxWriteRequestUnits", "OnDemandMaxWriteUnits")]),
            "{id}"
        );
    }
    let both = per_table_and_index(
        &[
            ("OnDemandMaxWriteUnits", "60000"),
            ("OnDemandMaxReadUnits", "90000"),
        ],
        "OnDemandThroughput",
    );
    assert_eq!(
        both["OrderEvents"],
        refs(&[
            ("MaxReadRequestUnits", "OnDemandMaxReadUnits"),
            ("MaxWriteRequestUnits", "OnDemandMaxWriteUnits")
        ])
    );
    let provisioned = per_table_and_index(
        &[
            ("OnDemandMaxWriteUnits", "60000"),
            ("CapacityMode", "PROVISIONED"),
        ],
        "OnDemandThroughput",
    );
    assert!(provisioned.values().all(Option::is_none), "{provisioned:?}");
}

fn mapping_property(given: &[(&str, &str)], mapping: &str, property: &str) -> Option<Cfn> {
    let resources = deployed(given);
    let value = properties(&resources[mapping], mapping).get(property)?;
    Some(match value {
        Value::Number(n) => Cfn::Literal(n.to_string()),
        other => cfn(other),
    })
}

#[test]
fn each_stream_mapping_takes_its_own_parallelization_factor_defaulting_to_one() {
    let template = template();
    let defaults = parameter_values(&template, &[]);
    for (mapping, parameter) in [
        ("EventsToProjector", "ProjectorParallelizationFactor"),
        ("EventsToNotifier", "NotifierParallelizationFactor"),
    ] {
        assert_eq!(defaults[parameter], "1");
        assert_eq!(
            mapping_property(&[], mapping, "ParallelizationFactor"),
            Some(Cfn::Ref(parameter.to_owned()))
        );
    }
    assert_eq!(
        mapping_property(&[], "WorkQueueToProcessor", "ParallelizationFactor"),
        None
    );
}

#[test]
fn the_sqs_mapping_has_no_scaling_cap_by_default_a_maximum_concurrency_or_provisioned_pollers() {
    let scaling = |given: &[(&str, &str)]| {
        let resources = deployed(given);
        let props = properties(&resources["WorkQueueToProcessor"], "WorkQueueToProcessor");
        (
            fields(props.get("ScalingConfig")),
            fields(props.get("ProvisionedPollerConfig")),
        )
    };
    assert_eq!(scaling(&[]), (None, None));
    assert_eq!(
        scaling(&[("ProcessorMaxConcurrency", "50")]),
        (
            refs(&[("MaximumConcurrency", "ProcessorMaxConcurrency")]),
            None
        )
    );
    // AWS takes one or the other: the pollers win.
    let mut pollers: BTreeMap<String, Cfn> = BTreeMap::new();
    pollers.insert("MinimumPollers".to_owned(), Cfn::Literal("2".to_owned()));
    pollers.insert(
        "MaximumPollers".to_owned(),
        Cfn::Ref("ProcessorMaxPollers".to_owned()),
    );
    assert_eq!(
        scaling(&[
            ("ProcessorMaxConcurrency", "50"),
            ("ProcessorMaxPollers", "20")
        ]),
        (None, Some(pollers))
    );
}

#[test]
fn reserved_concurrency_is_set_only_on_the_functions_given_one() {
    let reserved = |given: &[(&str, &str)]| -> BTreeMap<String, Option<Cfn>> {
        let resources = deployed(given);
        functions()
            .iter()
            .map(|f| {
                let value = properties(&resources[f.logical_id], f.logical_id)
                    .get("ReservedConcurrentExecutions")
                    .map(cfn);
                (f.logical_id.to_owned(), value)
            })
            .collect()
    };
    assert!(reserved(&[]).values().all(Option::is_none));
    let template = template();
    let defaults = parameter_values(&template, &[]);
    let given = reserved(&[
        ("IngestReservedConcurrency", "40"),
        ("ReconcilerReservedConcurrency", "0"),
    ]);
    for f in functions() {
        let parameter = format!(
            "{}ReservedConcurrency",
            f.logical_id.trim_end_matches("Function")
        );
        assert_eq!(defaults[&parameter], "-1", "{parameter}");
        let expected = matches!(f.logical_id, "IngestFunction" | "ReconcilerFunction")
            .then(|| Cfn::Ref(parameter.clone()));
        assert_eq!(given[f.logical_id], expected, "{}", f.logical_id);
    }
}

// ---------------------------------------------------------------- the archive

/// The archive's resources: the logical ids the template gives them (`Archive…`, `Archiver…`)
/// and every resource of a type only the archive uses.
fn is_archive_resource(id: &str, resource: &Value) -> bool {
    id.starts_with("Archive")
        || matches!(
            type_of(resource),
            "AWS::Kinesis::Stream"
                | "AWS::KinesisFirehose::DeliveryStream"
                | "AWS::S3::Bucket"
                | "AWS::S3::BucketPolicy"
                | "AWS::Glue::Database"
                | "AWS::Glue::Table"
                | "AWS::Athena::WorkGroup"
        )
}

#[test]
fn the_archive_condition_guards_every_archive_resource_and_output() {
    let template = template();
    assert_eq!(
        parameter_values(&template, &[])["Archive"],
        "true",
        "the archive is on by default"
    );
    let mut archive = BTreeSet::new();
    for (id, r) in resources(&template) {
        let id = id.as_str().expect("logical ids are strings");
        if is_archive_resource(id, r) {
            assert_eq!(
                r.get("Condition").and_then(Value::as_str),
                Some("ArchiveOn"),
                "{id} is part of the archive: Condition ArchiveOn"
            );
            archive.insert(id.to_owned());
        }
    }
    for kind in [
        "AWS::Kinesis::Stream",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::S3::Bucket",
        "AWS::Glue::Table",
        "AWS::Athena::WorkGroup",
        "AWS::Lambda::Function",
    ] {
        assert!(
            archive
                .iter()
                .any(|id| type_of(resource(&template, id)) == kind),
            "the archive has a {kind}"
        );
    }
    // Off: none of it, and the event table streams to no Kinesis stream.
    let off = deployed(&[("Archive", "false")]);
    let left: Vec<&String> = off.keys().filter(|id| archive.contains(*id)).collect();
    assert!(left.is_empty(), "Archive=false still creates {left:?}");
    let on = deployed(&[]);
    assert!(archive.iter().all(|id| on.contains_key(id)));
    let kinesis = |resources: &BTreeMap<String, Value>| {
        properties(&resources["OrderEvents"], "OrderEvents")
            .get("KinesisStreamSpecification")
            .and_then(|k| k.get("StreamArn"))
            .map(cfn)
    };
    assert_eq!(kinesis(&off), None);
    assert_eq!(
        kinesis(&on),
        Some(Cfn::GetAtt("ArchiveStream".to_owned(), "Arn".to_owned()))
    );
    // An output naming an archive resource exists only with it.
    let outputs = template
        .get("Outputs")
        .and_then(Value::as_mapping)
        .expect("Outputs");
    for (name, output) in outputs {
        let value = output.get("Value").map(cfn);
        let names_archive =
            matches!(&value, Some(Cfn::Ref(r) | Cfn::GetAtt(r, _)) if archive.contains(r));
        assert_eq!(
            output.get("Condition").and_then(Value::as_str) == Some("ArchiveOn"),
            names_archive,
            "output {name:?}: Condition ArchiveOn exactly when it names an archive resource"
        );
    }
    for name in [
        "ArchiveBucketName",
        "ArchiveDatabaseName",
        "ArchiveTableName",
        "ArchiveWorkGroupName",
    ] {
        assert!(outputs.contains_key(name), "output {name}");
    }
}

#[test]
fn the_archive_bucket_is_encrypted_private_tls_only_and_ages_to_a_cheaper_class() {
    let resources = deployed(&[]);
    let buckets = of_type(&resources, "AWS::S3::Bucket");
    assert_eq!(buckets.len(), 1, "one bucket: the archive's");
    let (id, bucket) = buckets[0];
    let props = properties(bucket, id);
    let sse = props
        .get("BucketEncryption")
        .and_then(|e| e.get("ServerSideEncryptionConfiguration"))
        .and_then(Value::as_sequence)
        .and_then(|rules| rules.first())
        .and_then(|rule| rule.get("ServerSideEncryptionByDefault"))
        .and_then(|d| d.get("SSEAlgorithm"))
        .and_then(Value::as_str);
    assert!(matches!(sse, Some("AES256" | "aws:kms")), "{id}: encrypted");
    let block = props
        .get("PublicAccessBlockConfiguration")
        .unwrap_or_else(|| panic!("{id}: PublicAccessBlockConfiguration"));
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            block.get(flag).and_then(Value::as_bool),
            Some(true),
            "{id}: {flag}"
        );
    }
    let transitions: Vec<Option<Cfn>> = props
        .get("LifecycleConfiguration")
        .and_then(|l| l.get("Rules"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("Transitions").and_then(Value::as_sequence))
        .flatten()
        .map(|t| t.get("TransitionInDays").map(cfn))
        .collect();
    assert_eq!(
        transitions,
        vec![Some(Cfn::Ref("ArchiveTransitionDays".to_owned()))],
        "{id}: one transition, after ArchiveTransitionDays"
    );
    // A policy denying every request without TLS, on the bucket and its objects.
    let policies = of_type(&resources, "AWS::S3::BucketPolicy");
    let tls_only = policies.iter().any(|(pid, policy)| {
        let p = properties(policy, pid);
        let statements = p
            .get("PolicyDocument")
            .and_then(|d| d.get("Statement"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        p.get("Bucket").map(cfn) == Some(Cfn::Ref(id.to_owned()))
            && statements.iter().any(|s| {
                let resources: BTreeSet<Cfn> = s
                    .get("Resource")
                    .map(one_or_many)
                    .unwrap_or_default()
                    .into_iter()
                    .map(cfn)
                    .collect();
                s.get("Effect").and_then(Value::as_str) == Some("Deny")
                    && s.get("Principal").and_then(Value::as_str) == Some("*")
                    && s.get("Action").and_then(Value::as_str) == Some("s3:*")
                    && s.get("Condition")
                        .and_then(|c| c.get("Bool"))
                        .and_then(|b| b.get("aws:SecureTransport"))
                        .and_then(Value::as_str)
                        == Some("false")
                    && resources
                        == BTreeSet::from([
                            Cfn::GetAtt(id.to_owned(), "Arn".to_owned()),
                            Cfn::Sub(format!("${{{id}.Arn}}/*")),
                        ])
            })
    });
    assert!(tls_only, "{id}: a TLS-only bucket policy");
}

/// The Glue/Hive type of an Arrow type of the export row.
fn glue_type(data_type: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType;
    match data_type {
        DataType::Utf8 => "string".to_owned(),
        // Hive's int is signed 32-bit: a u32 needs bigint.
        DataType::UInt32 | DataType::Int64 => "bigint".to_owned(),
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some(zone))
            if &**zone == "UTC" =>
        {
            "timestamp".to_owned()
        }
        DataType::List(item) => format!("array<{}>", glue_type(item.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), glue_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => panic!("no Glue type for {other:?}: add it here and to template.yaml"),
    }
}

#[test]
fn the_glue_table_has_the_export_row_columns_and_projects_the_day_partition() {
    let resources = deployed(&[]);
    let table = properties(&resources["ArchiveTable"], "ArchiveTable")
        .get("TableInput")
        .expect("ArchiveTable TableInput");
    // The shipped queries read the table docs/queries/README.md names, unchanged on Athena.
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/queries/README.md"),
    )
    .expect("docs/queries/README.md");
    let read = readme
        .split_once("named **`")
        .and_then(|(_, rest)| rest.split_once("`**"))
        .map(|(name, _)| name)
        .expect("the README names the table the queries read");
    let name = table
        .get("Name")
        .and_then(Value::as_str)
        .expect("the table's name");
    assert_eq!(
        name, read,
        "the Glue table is not the one the shipped queries read"
    );
    let columns: Vec<(String, String)> = table
        .get("StorageDescriptor")
        .and_then(|s| s.get("Columns"))
        .and_then(Value::as_sequence)
        .expect("ArchiveTable columns")
        .iter()
        .map(|c| {
            let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
            (text("Name"), text("Type"))
        })
        .collect();
    let schema = order_history::arrow_schema();
    let expected: Vec<(String, String)> = order_history::COLUMNS
        .iter()
        .map(|name| {
            let field = schema
                .field_with_name(name)
                .unwrap_or_else(|_| panic!("{name} is in the Arrow schema"));
            ((*name).to_owned(), glue_type(field.data_type()))
        })
        .collect();
    assert_eq!(columns, expected, "the Glue columns are the export row's");

    let partition_keys: Vec<(Option<&str>, Option<&str>)> = table
        .get("PartitionKeys")
        .and_then(Value::as_sequence)
        .expect("ArchiveTable PartitionKeys")
        .iter()
        .map(|k| {
            (
                k.get("Name").and_then(Value::as_str),
                k.get("Type").and_then(Value::as_str),
            )
        })
        .collect();
    assert_eq!(partition_keys, vec![(Some(archiver::DAY), Some("string"))]);
    let parameters = table.get("Parameters").expect("ArchiveTable Parameters");
    let parameter = |k: &str| parameters.get(k).map(cfn);
    let literal = |s: &str| Some(Cfn::Literal(s.to_owned()));
    let day = archiver::DAY;
    assert_eq!(parameter("projection.enabled"), literal("true"));
    assert_eq!(
        parameter(&format!("projection.{day}.type")),
        literal("date")
    );
    // The archiver's day is `YYYY-MM-DD`.
    assert_eq!(
        parameter(&format!("projection.{day}.format")),
        literal("yyyy-MM-dd")
    );
    assert!(
        matches!(parameter(&format!("projection.{day}.range")), Some(Cfn::Literal(r)) if r.ends_with(",NOW")),
        "the projected days run up to today"
    );
    // Where Athena looks for a day is where Firehose writes it.
    assert_eq!(
        parameter("storage.location.template"),
        Some(Cfn::Sub(format!(
            "s3://${{ArchiveBucket}}/{}",
            firehose_prefix(&resources).replace(
                &format!("!{{partitionKeyFromLambda:{day}}}"),
                &format!("${{!{day}}}")
            )
        )))
    );
}

/// The Firehose delivery stream's S3 destination.
fn firehose_destination(resources: &BTreeMap<String, Value>) -> &Value {
    let streams = of_type(resources, "AWS::KinesisFirehose::DeliveryStream");
    assert_eq!(streams.len(), 1, "one delivery stream");
    let (id, stream) = streams[0];
    properties(stream, id)
        .get("ExtendedS3DestinationConfiguration")
        .unwrap_or_else(|| panic!("{id}: ExtendedS3DestinationConfiguration"))
}

fn firehose_prefix(resources: &BTreeMap<String, Value>) -> String {
    firehose_destination(resources)
        .get("Prefix")
        .and_then(Value::as_str)
        .expect("a literal Prefix")
        .to_owned()
}

#[test]
fn firehose_reads_the_stream_runs_the_archiver_and_partitions_by_its_day_into_parquet() {
    let resources = deployed(&[]);
    let (id, stream) = of_type(&resources, "AWS::KinesisFirehose::DeliveryStream")[0];
    let props = properties(stream, id);
    assert_eq!(
        props.get("DeliveryStreamType").and_then(Value::as_str),
        Some("KinesisStreamAsSource")
    );
    assert_eq!(
        props
            .get("KinesisStreamSourceConfiguration")
            .and_then(|k| k.get("KinesisStreamARN"))
            .map(cfn),
        Some(Cfn::GetAtt("ArchiveStream".to_owned(), "Arn".to_owned()))
    );
    let destination = firehose_destination(&resources);
    let processors = destination
        .get("ProcessingConfiguration")
        .filter(|p| p.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|p| p.get("Processors"))
        .and_then(Value::as_sequence)
        .expect("an enabled ProcessingConfiguration");
    let lambdas: Vec<Option<Cfn>> = processors
        .iter()
        .filter(|p| p.get("Type").and_then(Value::as_str) == Some("Lambda"))
        .flat_map(|p| {
            p.get("Parameters")
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p.get("ParameterName").and_then(Value::as_str) == Some("LambdaArn"))
        .map(|p| p.get("ParameterValue").map(cfn))
        .collect();
    assert_eq!(
        lambdas,
        vec![Some(Cfn::GetAtt(
            "ArchiverFunction".to_owned(),
            "Arn".to_owned()
        ))],
        "the archiver is the one processor"
    );
    assert_eq!(
        destination
            .get("DynamicPartitioningConfiguration")
            .and_then(|d| d.get("Enabled"))
            .and_then(Value::as_bool),
        Some(true)
    );
    let prefix = firehose_prefix(&resources);
    assert!(
        prefix.contains(&format!(
            "{}=!{{partitionKeyFromLambda:{}}}/",
            archiver::DAY,
            archiver::DAY
        )),
        "the prefix names the archiver's partition key: {prefix}"
    );
    assert!(
        destination
            .get("ErrorOutputPrefix")
            .and_then(Value::as_str)
            .is_some_and(
                |p| !p.is_empty() && !p.starts_with(prefix.split('/').next().unwrap_or(""))
            ),
        "failed records go under their own prefix, outside the table's"
    );
    // Dynamic partitioning needs a buffer of at least 64 MB.
    let size = destination
        .get("BufferingHints")
        .and_then(|b| b.get("SizeInMBs"))
        .and_then(Value::as_u64);
    assert!(
        size.is_some_and(|s| s >= 64),
        "BufferingHints.SizeInMBs {size:?}"
    );
    let conversion = destination
        .get("DataFormatConversionConfiguration")
        .filter(|c| c.get("Enabled").and_then(Value::as_bool) == Some(true))
        .expect("an enabled DataFormatConversionConfiguration");
    let formats: Vec<&str> = conversion
        .get("InputFormatConfiguration")
        .and_then(|i| i.get("Deserializer"))
        .and_then(|d| d.get("HiveJsonSerDe"))
        .and_then(|h| h.get("TimestampFormats"))
        .and_then(Value::as_sequence)
        .expect("HiveJsonSerDe TimestampFormats")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(formats, vec!["yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"]);
    assert!(conversion
        .get("OutputFormatConfiguration")
        .and_then(|o| o.get("Serializer"))
        .and_then(|s| s.get("ParquetSerDe"))
        .is_some());
    let schema = conversion
        .get("SchemaConfiguration")
        .expect("SchemaConfiguration");
    assert_eq!(
        schema.get("DatabaseName").map(cfn),
        Some(Cfn::Ref("ArchiveDatabase".to_owned()))
    );
    assert_eq!(
        schema.get("TableName").map(cfn),
        Some(Cfn::Ref("ArchiveTable".to_owned()))
    );
    assert_eq!(
        destination.get("CompressionFormat").and_then(Value::as_str),
        Some("UNCOMPRESSED"),
        "with Parquet the destination compression stays off"
    );
}

/// A policy `Resource` as the text of its ARN (`!GetAtt X.Arn` → `X.Arn`, `!Sub` as written).
fn resource_text(value: &Value) -> String {
    match cfn(value) {
        Cfn::GetAtt(name, attribute) => format!("{name}.{attribute}"),
        Cfn::Sub(text) | Cfn::Literal(text) => text,
        other => panic!("unexpected policy Resource {other:?}"),
    }
}

#[test]
fn the_delivery_role_grants_firehose_exactly_the_archive_it_delivers() {
    let template = template();
    let role = resource(&template, "ArchiveDeliveryRole");
    assert_eq!(
        properties(
            resource(&template, "ArchiveDeliveryStream"),
            "ArchiveDeliveryStream"
        )
        .get("KinesisStreamSourceConfiguration")
        .and_then(|k| k.get("RoleARN"))
        .map(cfn),
        Some(Cfn::GetAtt(
            "ArchiveDeliveryRole".to_owned(),
            "Arn".to_owned()
        ))
    );
    let props = properties(role, "ArchiveDeliveryRole");
    assert!(props.get("ManagedPolicyArns").is_none());
    let trust = props
        .get("AssumeRolePolicyDocument")
        .and_then(|d| d.get("Statement"))
        .and_then(Value::as_sequence)
        .expect("trust statements");
    for statement in trust {
        assert_eq!(
            statement
                .get("Principal")
                .and_then(|p| p.get("Service"))
                .and_then(Value::as_str),
            Some("firehose.amazonaws.com")
        );
    }
    let mut granted = BTreeSet::new();
    for policy in props
        .get("Policies")
        .and_then(Value::as_sequence)
        .expect("Policies")
    {
        for statement in policy
            .get("PolicyDocument")
            .and_then(|d| d.get("Statement"))
            .and_then(Value::as_sequence)
            .expect("Statement")
        {
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow")
            );
            assert!(statement.get("Condition").is_none() && statement.get("NotAction").is_none());
            for action in one_or_many(statement.get("Action").expect("Action")) {
                for entry in one_or_many(statement.get("Resource").expect("Resource")) {
                    let action = action.as_str().expect("plain actions").to_owned();
                    granted.insert((resource_text(entry), action));
                }
            }
        }
    }
    let glue = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}";
    let mut expected = BTreeSet::new();
    let mut grant = |resources: &[String], actions: &[&str]| {
        for r in resources {
            for a in actions {
                expected.insert((r.clone(), (*a).to_owned()));
            }
        }
    };
    grant(
        &["ArchiveStream.Arn".to_owned()],
        &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetShardIterator",
            "kinesis:GetRecords",
            "kinesis:ListShards",
        ],
    );
    grant(
        &["ArchiverFunction.Arn".to_owned()],
        &["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
    );
    grant(
        &[
            format!("{glue}:catalog"),
            format!("{glue}:database/${{ArchiveDatabase}}"),
            format!("{glue}:table/${{ArchiveDatabase}}/${{ArchiveTable}}"),
        ],
        &[
            "glue:GetTable",
            "glue:GetTableVersion",
            "glue:GetTableVersions",
        ],
    );
    grant(
        &["ArchiveBucket.Arn".to_owned()],
        &[
            "s3:GetBucketLocation",
            "s3:ListBucket",
            "s3:ListBucketMultipartUploads",
        ],
    );
    grant(
        &[
            "${ArchiveBucket.Arn}/events/*".to_owned(),
            "${ArchiveBucket.Arn}/errors/*".to_owned(),
        ],
        &["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
    );
    grant(
        &["ArchiveDeliveryLogGroup.Arn".to_owned()],
        &["logs:PutLogEvents"],
    );
    assert_eq!(granted, expected);
    // The object grants cover exactly where the delivery stream writes.
    let resources = deployed(&[]);
    let destination = firehose_destination(&resources);
    for key in ["Prefix", "ErrorOutputPrefix"] {
        let prefix = destination.get(key).and_then(Value::as_str).expect(key);
        let top = prefix.split('/').next().unwrap_or("");
        assert!(
            granted.contains(&(
                format!("${{ArchiveBucket.Arn}}/{top}/*"),
                "s3:PutObject".to_owned()
            )),
            "{key} {prefix} is writable"
        );
    }
}

#[test]
fn the_archive_alarms_watch_delivery_and_the_archiver() {
    let resources = deployed(&[]);
    let alarms = of_type(&resources, "AWS::CloudWatch::Alarm");
    let watching = |namespace: &str, metric: &str, dimension: &str| {
        alarms.iter().any(|(id, a)| {
            let p = properties(a, id);
            alarm_metrics(p).contains(&(namespace.to_owned(), metric.to_owned()))
                && p.get("Dimensions")
                    .and_then(Value::as_sequence)
                    .is_some_and(|d| {
                        d.iter().any(|d| {
                            d.get("Value").map(cfn) == Some(Cfn::Ref(dimension.to_owned()))
                        })
                    })
        })
    };
    assert!(watching("AWS/Lambda", "Errors", "ArchiverFunction"));
    for metric in [
        "DeliveryToS3.DataFreshness",
        "DeliveryToS3.Success",
        "ExecuteProcessing.Success",
    ] {
        assert!(
            watching("AWS/Firehose", metric, "ArchiveDeliveryStream"),
            "{metric}"
        );
    }
}
