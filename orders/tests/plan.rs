//! `orders plan` as an operator runs it: the binary, its JSON, and the settings
//! docs/scaling.md recommends (read from the document itself, so the two cannot drift).

use std::process::Command;

use serde_json::Value;

fn plan(args: &[String]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .arg("plan")
        .arg("--json")
        .args(args)
        .output()
        .expect("run orders plan");
    assert!(
        output.status.success(),
        "orders plan {args:?} exited {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// The `--param K=V`s of docs/scaling.md's `orders plan --rate RATE` command.
fn recommended(rate: u64) -> Vec<String> {
    let path = format!("{}/../docs/scaling.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).expect("read docs/scaling.md");
    let marker = format!("\norders plan --rate {rate} ");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/scaling.md has no `{marker}` command"));
    let block = &doc[start..];
    let block = &block[..block.find("```").unwrap_or(block.len())];
    let tokens: Vec<&str> = block.split_whitespace().collect();
    tokens
        .windows(2)
        .filter(|w| w[0] == "--param")
        .flat_map(|w| ["--param".to_owned(), w[1].to_owned()])
        .collect()
}

fn limits(report: &Value) -> &Vec<Value> {
    report["limits"].as_array().expect("limits")
}

fn below(report: &Value) -> Vec<String> {
    report["limitsBelowRate"]
        .as_array()
        .expect("limitsBelowRate")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect()
}

#[test]
fn at_100k_orders_a_second_the_default_template_names_its_first_limit_and_every_limit_below_it() {
    let report = plan(&strings(&["--rate", "100000"]));
    let all = limits(&report);
    let lowest = all
        .iter()
        .filter_map(|l| l["maxOrdersPerSecond"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let first = &report["firstLimit"];
    assert_eq!(
        first["maxOrdersPerSecond"].as_f64(),
        Some(lowest),
        "{first:#}"
    );
    assert_eq!(first["id"], "stream.projector", "{first:#}");
    // Listed: exactly the limits reached below 100k, lowest first.
    let expected: Vec<String> = all
        .iter()
        .filter(|l| {
            l["maxOrdersPerSecond"]
                .as_f64()
                .is_some_and(|m| m < 100_000.0)
        })
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    let listed = below(&report);
    assert_eq!(listed, expected);
    for id in [
        "stream.projector",
        "stream.notifier",
        "api.stage-rate",
        "dynamodb.events.writes.warm",
        "dynamodb.status.writes.warm",
        "dynamodb.pending.writes.per-key",
        "lambda.account-concurrency",
        "api.account-rate",
        "dynamodb.events.writes.table-quota",
        "sqs.processor-mapping",
        "sns.publish",
    ] {
        assert!(listed.iter().any(|l| l == id), "{id} not in {listed:?}");
    }
    // Each names what moves it and where its number comes from.
    for limit in all {
        assert!(
            !limit["lever"].as_str().unwrap_or("").is_empty(),
            "{limit:#}"
        );
        assert!(
            !limit["source"].as_str().unwrap_or("").is_empty(),
            "{limit:#}"
        );
    }
}

#[test]
fn with_the_settings_docs_scaling_recommends_only_account_quotas_are_below_100k() {
    let mut args = strings(&["--rate", "100000"]);
    args.extend(recommended(100_000));
    let report = plan(&args);
    let listed = below(&report);
    assert!(!listed.is_empty(), "100k orders/s needs quota increases");
    for id in &listed {
        let limit = limits(&report)
            .iter()
            .find(|l| l["id"] == id.as_str())
            .expect("a listed limit");
        assert_eq!(limit["kind"], "quota", "{limit:#}");
    }
    for quota in [
        "lambda.account-concurrency",
        "api.account-rate",
        "dynamodb.events.writes.table-quota",
        "sns.publish",
    ] {
        assert!(
            listed.iter().any(|l| l == quota),
            "{quota} not in {listed:?}"
        );
    }
}

#[test]
fn the_settings_docs_scaling_recommends_for_10k_leave_nothing_below_it_but_quotas() {
    let mut args = strings(&["--rate", "10000"]);
    args.extend(recommended(10_000));
    let report = plan(&args);
    for id in below(&report) {
        let limit = limits(&report)
            .iter()
            .find(|l| l["id"] == id.as_str())
            .expect("a listed limit");
        assert_eq!(limit["kind"], "quota", "{limit:#}");
    }
}

fn throttled<'r>(ramp: &'r Value, id: &str) -> Option<&'r Value> {
    ramp["throttled"]
        .as_array()
        .expect("throttled")
        .iter()
        .find(|t| t["id"] == id)
}

#[test]
fn a_burst_on_a_new_stack_reports_what_docs_scaling_says_it_does() {
    let burst = strings(&[
        "--rate",
        "2000",
        "--burst-from",
        "0",
        "--param",
        "ApiThrottleRate=2400",
        "--param",
        "ProjectorParallelizationFactor=4",
        "--param",
        "NotifierParallelizationFactor=2",
    ]);
    let report = plan(&burst);
    let ramp = &report["ramp"];
    let events = throttled(ramp, "dynamodb.events.writes.warm").expect("the event table");
    assert_eq!(events["effect"], "refused");
    assert_eq!(events["stopsThrottlingSecond"], 1800, "{ramp:#}");
    assert_eq!(
        events["ordersOver"], 1_200_000.0,
        "667 a second for 30 minutes"
    );
    let status = throttled(ramp, "dynamodb.status.writes.warm").expect("the status table");
    assert_eq!(status["effect"], "delayed");
    assert_eq!(status["stopsThrottlingSecond"], 1800, "{ramp:#}");
    let ingest = throttled(ramp, "lambda.ingest.scaling").expect("the ingest function");
    assert_eq!(ingest["ordersOver"], 1_000.0);
    assert_eq!(ingest["stopsThrottlingSecond"], 1);
    let mapping = throttled(ramp, "sqs.processor-mapping").expect("the SQS mapping");
    assert_eq!(mapping["stopsThrottlingSecond"], 12);
    assert_eq!(ramp["stopsRefusingSecond"], 1800, "{ramp:#}");

    let mut warmed = burst;
    warmed.extend(strings(&[
        "--param",
        "EventsWarmWriteUnits=6600",
        "--param",
        "StatusWarmWriteUnits=5500",
    ]));
    let report = plan(&warmed);
    let ramp = &report["ramp"];
    assert!(
        throttled(ramp, "dynamodb.events.writes.warm").is_none(),
        "{ramp:#}"
    );
    assert!(
        throttled(ramp, "dynamodb.status.writes.warm").is_none(),
        "{ramp:#}"
    );
    assert_eq!(ramp["refusedOrders"], 1_000.0, "{ramp:#}");
    assert_eq!(ramp["stopsRefusingSecond"], 1);
}

#[test]
fn an_unknown_parameter_is_refused_with_one_error_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["plan", "--rate", "1000", "--param", "NoSuchKnob=3"])
        .output()
        .expect("run orders plan");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: --param NoSuchKnob"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_table_names_the_first_limit_and_the_cost() {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["plan", "--rate", "1000"])
        .output()
        .expect("run orders plan");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("first limit: "), "{stdout}");
    assert!(
        stdout.contains("cost per 1M orders: on demand "),
        "{stdout}"
    );
}
