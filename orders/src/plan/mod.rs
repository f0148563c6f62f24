//! `orders plan`: what the deployed stack needs at a rate of orders per second, against each
//! AWS limit and template setting, which limit breaks first and what moves it; from a ramp,
//! how long each growing limit throttles and how many orders are turned away; and what a
//! million orders cost. docs/scaling.md is written from its output.

mod config;
mod limits;
mod model;
mod ramp;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use config::Config;
use model::Durations;

use crate::CliError;

/// The highest rate a plan is made for (a typo guard, not a limit of the model).
const MAX_RATE: f64 = 100_000_000.0;
/// The longest ramp simulated.
const MAX_RAMP_SECONDS: u64 = 7 * 24 * 3_600;

#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
For each resource: what the rate needs (DynamoDB units per table and index, Lambda concurrency \
by Little's law on the durations BENCHMARKS.md measured, stream shards, requests) against each \
limit, the rate at which each limit is reached, whether it is a template parameter, an account \
quota only AWS can raise, or a constant in the code, and what moves it. Every limit is data, \
with its source, in orders/src/plan/limits.rs.

Defaults are template.yaml's (the copy built into this binary, or --template); --param K=V \
overrides a template parameter, an account quota (AccountConcurrency, ApiAccountRate, \
TableQuotaUnits, SnsPublishRate) or a code constant (PendingShards), so a plan can assume a \
raised quota.

With --burst-from R0 [--ramp SECONDS]: from R0 orders/s (what the stack already serves; 0 for \
a new stack) up to --rate, linearly over --ramp seconds (0: at once), a second-by-second \
simulation of the limits that grow by themselves (on-demand tables doubling their previous peak \
within 30 minutes, a function adding 1,000 environments every 10 s, the SQS mapping adding 300 \
batches a minute): when each stops throttling and how many orders are refused (not taken) or \
delayed (taken, processed later) meanwhile.

Output: a table, or with --json one object. Exit code 0 whatever the plan finds.")]
pub struct PlanArgs {
    /// Target rate, orders per second.
    #[arg(long)]
    rate: f64,
    /// Start of a ramp: orders/s the stack already serves (0 for a new stack).
    #[arg(long)]
    burst_from: Option<f64>,
    /// Seconds the ramp from --burst-from to --rate takes (0, the default: at once).
    #[arg(long, requires = "burst_from")]
    ramp: Option<u64>,
    /// A parameter over its default: K=V (repeatable).
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Read the parameter defaults from this template instead of the built-in one.
    #[arg(long)]
    template: Option<PathBuf>,
    /// Durations for Little's law: the emulator's measured ones (an upper bound) or
    /// scripts/cost.py's estimates for AWS.
    #[arg(long, value_enum, default_value_t = Durations::Measured)]
    durations: Durations,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn plan(args: PlanArgs) -> Result<ExitCode, CliError> {
    let config = match &args.template {
        None => Config::from_built_in(&args.params),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Config(format!("--template {}: {e}", path.display())))?;
            Config::from_template(&text, &args.params)
        }
    }
    .map_err(|e| CliError::Config(e.to_string()))?;
    let ramp = match args.burst_from {
        None => None,
        Some(from) => Some((from, args.ramp.unwrap_or(0))),
    };
    let report = report(&config, args.durations, args.rate, ramp)?;
    if args.json {
        println!("{report:#}");
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole plan as one JSON object.
pub fn report(
    config: &Config,
    durations: Durations,
    rate: f64,
    ramp: Option<(f64, u64)>,
) -> Result<Value, CliError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
        return Err(CliError::Config(format!(
            "--rate must be a number of orders/s above 0 and at most {MAX_RATE}, got {rate}"
        )));
    }
    if let Some((from, seconds)) = ramp {
        if !(from.is_finite() && (0.0..=rate).contains(&from)) {
            return Err(CliError::Config(format!(
                "--burst-from must be from 0 to --rate ({rate}), got {from}"
            )));
        }
        if seconds > MAX_RAMP_SECONDS {
            return Err(CliError::Config(format!(
                "--ramp must be at most {MAX_RAMP_SECONDS} s, got {seconds}"
            )));
        }
    }
    let per = model::PerOrder::new(config, durations);
    let checks = model::checks(config, &per, rate);
    let below: Vec<&model::Check> = checks.iter().filter(|c| c.below_rate).collect();
    let first = checks.iter().find(|c| c.max_orders_per_second.is_some());
    let functions: serde_json::Map<String, Value> = config::Function::ALL
        .iter()
        .map(|f| (f.name().to_owned(), json!(per.concurrency(*f) * rate)))
        .collect();
    let total_concurrency: f64 = config::Function::ALL
        .iter()
        .map(|f| per.concurrency(*f) * rate)
        .sum();
    let on_demand = model::cost(config, &per, false);
    let provisioned = model::cost(config, &per, true);
    let month_orders = rate * 30.0 * 24.0 * 3_600.0 / 1e6;
    let shards = (per.events_write_units * rate / limits::SHARD_WRITES_ASSUMED.value)
        .ceil()
        .max(1.0);
    let ramp =
        ramp.map(|(from, seconds)| ramp::simulate(config, &per, &checks, from, rate, seconds));
    Ok(json!({
        "rate": rate,
        "durations": durations,
        "durationsSource": match durations {
            Durations::Measured => limits::measured::SOURCE,
            Durations::Estimated => limits::estimated_ms::SOURCE,
        },
        "parameters": config.values,
        "perOrder": per,
        "perOrderSource": limits::measured::SOURCE,
        "firstLimit": first,
        "limitsBelowRate": below.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "limits": checks,
        "perKey": model::per_key(&per),
        "lambdaConcurrency": {"byFunction": functions, "total": total_concurrency},
        "streamBatches": {
            "projectorRecords": per.projector_batch_records,
            "projectorSeconds": per.projector_batch_seconds,
            "notifierRecords": per.notifier_batch_records,
            "notifierSeconds": per.notifier_batch_seconds,
            "timeoutSeconds": config.timeout_seconds,
            "withinTimeout": per.projector_batch_seconds < config.timeout_seconds
                && per.notifier_batch_seconds < config.timeout_seconds,
        },
        "streamShards": {
            "estimate": shards,
            "assumption": limits::SHARD_WRITES_ASSUMED.statement,
            "readers": 2,
            "readersAdvised": limits::STREAM_READERS_PER_SHARD.value,
            "readersSource": limits::STREAM_READERS_PER_SHARD.source,
        },
        "cost": {
            "perMillionOrders": {"onDemand": on_demand, "provisioned70": provisioned},
            "perMonthAtRate": {
                "onDemand": on_demand.total * month_orders,
                "provisioned70": provisioned.total * month_orders,
            },
            "source": format!("{}; {}", limits::measured::SOURCE, limits::prices::SOURCE),
            "notIncluded": "provisioned pollers, warm-throughput increases, storage, logs, data transfer",
        },
        "ramp": ramp,
        "facts": limits::ALL
            .iter()
            .map(|(name, fact)| json!({
                "name": name,
                "value": fact.value,
                "unit": fact.unit,
                "statement": fact.statement,
                "source": fact.source,
            }))
            .collect::<Vec<_>>(),
    }))
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        None => "-".to_owned(),
        Some(0.0) => "0".to_owned(),
        Some(n) if n >= 100.0 => group(n.round()),
        Some(n) if n >= 1.0 => format!("{n:.1}"),
        Some(n) => format!("{n:.3}"),
    }
}

/// 12345.0 → "12,345".
fn group(n: f64) -> String {
    let digits = format!("{}", n.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

fn print_table(report: &Value) {
    println!(
        "plan for {} orders/s (durations: {}; {})",
        number(&report["rate"]),
        report["durations"].as_str().unwrap_or("?"),
        report["durationsSource"].as_str().unwrap_or("?")
    );
    let first = &report["firstLimit"];
    if !first.is_null() {
        println!(
            "first limit: {} at {} orders/s ({}; lever: {})",
            first["resource"].as_str().unwrap_or("?"),
            number(&first["maxOrdersPerSecond"]),
            first["kind"].as_str().unwrap_or("?"),
            first["lever"].as_str().unwrap_or("?")
        );
    }
    let below = report["limitsBelowRate"].as_array().map_or(0, Vec::len);
    println!("limits below the rate: {below}");
    println!();
    println!(
        "{:<44} {:>13} {:>26} {:<9} {:<8} lever",
        "limit", "max orders/s", "need / limit at rate", "kind", "effect"
    );
    for check in report["limits"].as_array().into_iter().flatten() {
        let marker = if check["belowRate"].as_bool() == Some(true) {
            "!"
        } else {
            " "
        };
        println!(
            "{marker}{:<43} {:>13} {:>26} {:<9} {:<8} {}",
            check["id"].as_str().unwrap_or("?"),
            number(&check["maxOrdersPerSecond"]),
            format!("{} / {}", number(&check["need"]), number(&check["limit"])),
            check["kind"].as_str().unwrap_or("?"),
            check["effect"].as_str().unwrap_or("?"),
            check["lever"].as_str().unwrap_or("?")
        );
    }
    println!();
    for key in report["perKey"].as_array().into_iter().flatten() {
        println!(
            "per key: {} orders/s at most per key ({})",
            number(&key["maxOrdersPerSecondPerKey"]),
            key["id"].as_str().unwrap_or("?")
        );
    }
    let lambda = &report["lambdaConcurrency"];
    let by = &lambda["byFunction"];
    println!(
        "Lambda concurrency at the rate: ingest {}, processor {}, projector {}, notifier {} (total {})",
        number(&by["ingest"]),
        number(&by["processor"]),
        number(&by["projector"]),
        number(&by["notifier"]),
        number(&lambda["total"])
    );
    println!(
        "stream shards (estimate): {}; readers per shard: 2 (projector, notifier), advised at most 2",
        number(&report["streamShards"]["estimate"])
    );
    let batches = &report["streamBatches"];
    if batches["withinTimeout"].as_bool() == Some(false) {
        println!(
            "WARNING: a busy shard's batch takes {} s (projector) / {} s (notifier), over Timeout {} s: lower StreamBatchSize or raise Timeout",
            number(&batches["projectorSeconds"]),
            number(&batches["notifierSeconds"]),
            number(&batches["timeoutSeconds"])
        );
    }
    let cost = &report["cost"];
    println!(
        "cost per 1M orders: on demand {} $, provisioned at 70% {} $; a 30-day month at this rate: {} $ / {} $",
        format_money(&cost["perMillionOrders"]["onDemand"]["total"]),
        format_money(&cost["perMillionOrders"]["provisioned70"]["total"]),
        number(&cost["perMonthAtRate"]["onDemand"]),
        number(&cost["perMonthAtRate"]["provisioned70"])
    );
    let ramp = &report["ramp"];
    if !ramp.is_null() {
        println!();
        println!(
            "ramp {} → {} orders/s over {} s (simulated {} s): {} orders refused ({}), {} delayed ({})",
            number(&ramp["fromRate"]),
            number(&ramp["toRate"]),
            ramp["rampSeconds"],
            ramp["simulatedSeconds"],
            number(&ramp["refusedOrders"]),
            seconds(&ramp["stopsRefusingSecond"]),
            number(&ramp["delayedOrders"]),
            seconds(&ramp["stopsDelayingSecond"])
        );
        for t in ramp["throttled"].as_array().into_iter().flatten() {
            println!(
                "  {:<44} {:<8} from second {:>5}, {}: {} orders over (lever: {})",
                t["id"].as_str().unwrap_or("?"),
                t["effect"].as_str().unwrap_or("?"),
                t["firstThrottledSecond"],
                seconds(&t["stopsThrottlingSecond"]),
                number(&t["ordersOver"]),
                t["lever"].as_str().unwrap_or("?")
            );
        }
    }
}

fn format_money(v: &Value) -> String {
    v.as_f64().map_or("-".to_owned(), |n| format!("{n:.2}"))
}

/// When a limit stops throttling.
fn seconds(v: &Value) -> String {
    match v.as_u64() {
        Some(0) => "never throttled".to_owned(),
        Some(s) => format!("stops at second {s}"),
        None => "never stops: raise its lever".to_owned(),
    }
}

#[cfg(test)]
mod tests;
