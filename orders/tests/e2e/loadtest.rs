//! `orders loadtest` against `orders serve`: a small closed-loop run that waits for every order.

use std::process::Command;

use serde_json::Value;

use crate::support::Server;

#[tokio::test(flavor = "multi_thread")]
async fn a_loadtest_run_reports_every_order_accepted_and_finished_with_ordered_latencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orders"))
            .args(["loadtest", "--url", &base])
            .args(["--orders", "300", "--concurrency", "16", "--wait", "--json"])
            .args(["--max-duration", "120s"])
            .env("ORDERS_LOG", "warn")
            .output()
            .expect("run orders loadtest")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {}: {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["sent"], 300, "{report:#}");
    assert_eq!(report["accepted"], 300, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert!(report["acceptedPerSecond"].as_f64().expect("rate") > 0.0);
    let wait = &report["wait"];
    assert_eq!(wait["finished"], 300, "{report:#}");
    assert_eq!(wait["completed"], 300, "{report:#}");
    assert_eq!(wait["unfinished"], 0, "{report:#}");
    for latencies in [&report["acceptLatencyMs"], &wait["acceptToFinishedMs"]] {
        let get = |p: &str| {
            latencies[p]
                .as_f64()
                .unwrap_or_else(|| panic!("{p} in {report:#}"))
        };
        let (p50, p90, p99, max) = (get("p50"), get("p90"), get("p99"), get("max"));
        assert!(
            0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "{latencies}"
        );
    }
    server.terminate();
}

#[test]
fn a_remote_host_is_refused_without_allow_remote() {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args([
            "loadtest",
            "--url",
            "http://192.0.2.1:3000",
            "--orders",
            "1",
        ])
        .output()
        .expect("run orders loadtest");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
