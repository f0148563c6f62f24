//! The configuration a plan is made for: every template parameter the plan reads, from
//! `template.yaml`'s defaults (the copy built into this binary, or `--template FILE`) with
//! `--param K=V` over them, plus the account quotas and code constants that bound the service
//! too (also settable with `--param`, so a plan can assume a raised quota).

use std::collections::BTreeMap;

use super::limits;

/// The template this binary was built with: its parameter defaults are the plan's defaults.
const BUILT_IN_TEMPLATE: &str = include_str!("../../../template.yaml");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("the template does not parse as YAML: {0}")]
    Yaml(String),
    #[error("the template has no Parameters section")]
    NoParameters,
    #[error("--param {0:?}: expected K=V")]
    NotKeyValue(String),
    #[error("--param {name}: not a parameter the plan knows (template parameters read: {known}; quotas and code: {extra})")]
    Unknown {
        name: String,
        known: String,
        extra: String,
    },
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: String,
        value: String,
        why: String,
    },
    #[error("the template has no default for {0}, which the plan reads")]
    MissingDefault(String),
}

/// Template parameters the plan reads.
pub const TEMPLATE_PARAMETERS: [&str; 26] = [
    "ApiThrottleRate",
    "ApiThrottleBurst",
    "CapacityMode",
    "ReadCapacityMax",
    "WriteCapacityMax",
    "MemorySize",
    "Architecture",
    "ProcessorBatchSize",
    "StreamBatchSize",
    "StreamBatchingWindowSeconds",
    "EventsWarmReadUnits",
    "EventsWarmWriteUnits",
    "StatusWarmReadUnits",
    "StatusWarmWriteUnits",
    "OnDemandMaxReadUnits",
    "OnDemandMaxWriteUnits",
    "ProjectorParallelizationFactor",
    "NotifierParallelizationFactor",
    "ProcessorMaxConcurrency",
    "ProcessorMaxPollers",
    "IngestReservedConcurrency",
    "ProcessorReservedConcurrency",
    "ProjectorReservedConcurrency",
    "NotifierReservedConcurrency",
    "ReconcilerReservedConcurrency",
    "Timeout",
];

/// Not template parameters: the account quotas only AWS can raise, and the code constants
/// that bound the service, with their defaults.
pub fn extra_parameters() -> [(&'static str, f64); 5] {
    [
        (
            "AccountConcurrency",
            limits::LAMBDA_ACCOUNT_CONCURRENCY.value,
        ),
        ("ApiAccountRate", limits::API_ACCOUNT_RATE.value),
        ("TableQuotaUnits", limits::TABLE_QUOTA.value),
        ("SnsPublishRate", limits::SNS_PUBLISH_US_EAST_1.value),
        ("PendingShards", limits::PENDING_SHARDS),
    ]
}

/// The five functions, in the template's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Ingest,
    Processor,
    Projector,
    Notifier,
    Reconciler,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::Ingest,
        Function::Processor,
        Function::Projector,
        Function::Notifier,
        Function::Reconciler,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Ingest => "ingest",
            Function::Processor => "processor",
            Function::Projector => "projector",
            Function::Notifier => "notifier",
            Function::Reconciler => "reconciler",
        }
    }

    pub fn reserved_parameter(self) -> &'static str {
        match self {
            Function::Ingest => "IngestReservedConcurrency",
            Function::Processor => "ProcessorReservedConcurrency",
            Function::Projector => "ProjectorReservedConcurrency",
            Function::Notifier => "NotifierReservedConcurrency",
            Function::Reconciler => "ReconcilerReservedConcurrency",
        }
    }
}

/// A configuration, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub api_throttle_rate: f64,
    pub api_throttle_burst: f64,
    pub provisioned: bool,
    pub read_capacity_max: f64,
    pub write_capacity_max: f64,
    pub memory_mb: f64,
    pub timeout_seconds: f64,
    pub arm64: bool,
    pub processor_batch_size: f64,
    pub stream_batch_size: f64,
    pub stream_window_seconds: f64,
    /// `None`: DynamoDB's own warm throughput (a new on-demand table's).
    pub events_warm_read: Option<f64>,
    pub events_warm_write: Option<f64>,
    pub status_warm_read: Option<f64>,
    pub status_warm_write: Option<f64>,
    /// `None`: no on-demand ceiling.
    pub on_demand_max_read: Option<f64>,
    pub on_demand_max_write: Option<f64>,
    pub projector_parallelization: f64,
    pub notifier_parallelization: f64,
    /// `None`: the mapping's own cap.
    pub processor_max_concurrency: Option<f64>,
    /// `Some(n)`: provisioned mode with at most n pollers.
    pub processor_max_pollers: Option<f64>,
    /// Reserved concurrency by function, `None` where unreserved.
    pub reserved: BTreeMap<Function, f64>,
    pub account_concurrency: f64,
    pub api_account_rate: f64,
    pub table_quota_units: f64,
    pub sns_publish_rate: f64,
    pub pending_shards: f64,
    /// Every value, as given or defaulted, by parameter name (what the plan reports).
    pub values: BTreeMap<String, String>,
}

impl Config {
    /// The built-in template's defaults with `overrides` (each `K=V`) over them.
    pub fn from_built_in(overrides: &[String]) -> Result<Config, ConfigError> {
        Config::from_template(BUILT_IN_TEMPLATE, overrides)
    }

    pub fn from_template(template: &str, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut values = template_defaults(template)?;
        for (name, default) in extra_parameters() {
            values.insert(name.to_owned(), format_number(default));
        }
        for given in overrides {
            let (name, value) = given
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(given.clone()))?;
            let name = name.trim();
            if !values.contains_key(name) {
                return Err(ConfigError::Unknown {
                    name: name.to_owned(),
                    known: TEMPLATE_PARAMETERS.join(", "),
                    extra: extra_parameters().map(|(n, _)| n).join(", "),
                });
            }
            values.insert(name.to_owned(), value.trim().to_owned());
        }
        Config::from_values(values)
    }

    fn from_values(values: BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| -> Result<&str, ConfigError> {
            values
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| ConfigError::MissingDefault(name.to_owned()))
        };
        let number = |name: &str, min: f64, max: f64| -> Result<f64, ConfigError> {
            let text = get(name)?;
            let invalid = |why: String| ConfigError::Invalid {
                name: name.to_owned(),
                value: text.to_owned(),
                why,
            };
            let n: f64 = text
                .parse()
                .map_err(|_| invalid("not a number".to_owned()))?;
            if !n.is_finite() || n < min || n > max {
                return Err(invalid(format!(
                    "must be from {} to {}",
                    format_number(min),
                    format_number(max)
                )));
            }
            Ok(n)
        };
        let off_if_zero = |n: f64| (n > 0.0).then_some(n);
        let choice = |name: &str, allowed: &[&str]| -> Result<String, ConfigError> {
            let text = get(name)?;
            if allowed.contains(&text) {
                Ok(text.to_owned())
            } else {
                Err(ConfigError::Invalid {
                    name: name.to_owned(),
                    value: text.to_owned(),
                    why: format!("must be one of {}", allowed.join(", ")),
                })
            }
        };
        let big = f64::MAX;
        let mut reserved = BTreeMap::new();
        for function in Function::ALL {
            let n = number(function.reserved_parameter(), -1.0, big)?;
            if n >= 0.0 {
                reserved.insert(function, n);
            }
        }
        let max_concurrency = number("ProcessorMaxConcurrency", 0.0, limits::SQS_ESM_MAX.value)?;
        if max_concurrency == 1.0 {
            return Err(ConfigError::Invalid {
                name: "ProcessorMaxConcurrency".to_owned(),
                value: "1".to_owned(),
                why: "AWS takes 2 to 1000 (0 = none)".to_owned(),
            });
        }
        let pollers = number("ProcessorMaxPollers", 0.0, 2_000.0)?;
        if pollers == 1.0 {
            return Err(ConfigError::Invalid {
                name: "ProcessorMaxPollers".to_owned(),
                value: "1".to_owned(),
                why: "an SQS mapping takes 2 to 2000 pollers (0 = standard mode)".to_owned(),
            });
        }
        let pf_max = limits::STREAM_PARALLELIZATION_MAX.value;
        for name in TEMPLATE_PARAMETERS {
            get(name)?;
        }
        Ok(Config {
            api_throttle_rate: number("ApiThrottleRate", 1.0, big)?,
            api_throttle_burst: number("ApiThrottleBurst", 1.0, big)?,
            provisioned: choice("CapacityMode", &["ON_DEMAND", "PROVISIONED"])? == "PROVISIONED",
            read_capacity_max: number("ReadCapacityMax", 1.0, big)?,
            write_capacity_max: number("WriteCapacityMax", 1.0, big)?,
            memory_mb: number("MemorySize", 128.0, 10_240.0)?,
            timeout_seconds: number("Timeout", 1.0, 900.0)?,
            arm64: choice("Architecture", &["arm64", "x86_64"])? == "arm64",
            processor_batch_size: number("ProcessorBatchSize", 1.0, 10.0)?,
            stream_batch_size: number("StreamBatchSize", 1.0, 10_000.0)?,
            stream_window_seconds: number("StreamBatchingWindowSeconds", 0.0, 300.0)?,
            events_warm_read: off_if_zero(number("EventsWarmReadUnits", 0.0, big)?),
            events_warm_write: off_if_zero(number("EventsWarmWriteUnits", 0.0, big)?),
            status_warm_read: off_if_zero(number("StatusWarmReadUnits", 0.0, big)?),
            status_warm_write: off_if_zero(number("StatusWarmWriteUnits", 0.0, big)?),
            on_demand_max_read: off_if_zero(number("OnDemandMaxReadUnits", 0.0, big)?),
            on_demand_max_write: off_if_zero(number("OnDemandMaxWriteUnits", 0.0, big)?),
            projector_parallelization: number("ProjectorParallelizationFactor", 1.0, pf_max)?,
            notifier_parallelization: number("NotifierParallelizationFactor", 1.0, pf_max)?,
            processor_max_concurrency: off_if_zero(max_concurrency),
            processor_max_pollers: off_if_zero(pollers),
            reserved,
            account_concurrency: number("AccountConcurrency", 1.0, big)?,
            api_account_rate: number("ApiAccountRate", 1.0, big)?,
            table_quota_units: number("TableQuotaUnits", 1.0, big)?,
            sns_publish_rate: number("SnsPublishRate", 1.0, big)?,
            pending_shards: number("PendingShards", 1.0, big)?,
            values,
        })
    }
}

/// Each template parameter that has a `Default`, as text.
fn template_defaults(template: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    use yaml_serde::Value;
    let parsed: Value =
        yaml_serde::from_str(template).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    let parameters = parsed
        .get("Parameters")
        .and_then(Value::as_mapping)
        .ok_or(ConfigError::NoParameters)?;
    let mut defaults = BTreeMap::new();
    for (name, parameter) in parameters {
        let (Some(name), Some(default)) = (name.as_str(), parameter.get("Default")) else {
            continue;
        };
        let text = match default {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        defaults.insert(name.to_owned(), text);
    }
    Ok(defaults)
}

/// A number as a parameter value: integers without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_template_gives_every_parameter_the_plan_reads_a_default() {
        let config = Config::from_built_in(&[]).expect("defaults");
        assert_eq!(config.api_throttle_rate, 1_000.0);
        assert!(!config.provisioned);
        assert_eq!(config.events_warm_write, None);
        assert_eq!(config.projector_parallelization, 1.0);
        assert_eq!(config.processor_max_pollers, None);
        assert!(config.reserved.is_empty());
        assert_eq!(config.account_concurrency, 1_000.0);
        assert_eq!(config.pending_shards, 128.0);
    }

    #[test]
    fn a_param_overrides_its_default_and_an_unknown_or_bad_one_is_refused() {
        let config =
            Config::from_built_in(&["EventsWarmWriteUnits=30000".to_owned()]).expect("override");
        assert_eq!(config.events_warm_write, Some(30_000.0));
        assert_eq!(config.values["EventsWarmWriteUnits"], "30000");
        assert!(matches!(
            Config::from_built_in(&["NoSuchKnob=1".to_owned()]),
            Err(ConfigError::Unknown { .. })
        ));
        assert!(matches!(
            Config::from_built_in(&["ProjectorParallelizationFactor=11".to_owned()]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::from_built_in(&["MemorySize".to_owned()]),
            Err(ConfigError::NotKeyValue(_))
        ));
        assert!(matches!(
            Config::from_built_in(&["ProcessorMaxConcurrency=1".to_owned()]),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn reserved_concurrency_minus_one_means_none_and_zero_is_kept() {
        let config = Config::from_built_in(&[
            "IngestReservedConcurrency=0".to_owned(),
            "NotifierReservedConcurrency=-1".to_owned(),
        ])
        .expect("reserved");
        assert_eq!(config.reserved, BTreeMap::from([(Function::Ingest, 0.0)]));
    }

    #[test]
    fn a_template_without_a_parameter_the_plan_reads_is_named() {
        let err = Config::from_template("Parameters:\n  MemorySize:\n    Default: 128\n", &[])
            .expect_err("incomplete");
        assert!(matches!(err, ConfigError::MissingDefault(_)), "{err}");
    }
}
