//! `orders loadtest` against `orders serve`: a small closed-loop run that waits for every order,
//! over plain http and over https (a TLS front with a self-signed certificate made here, as a
//! stand-in for API Gateway's https endpoint).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

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

/// A TLS front on a loopback port for the plain-http server at `backend` (`host:port`), with a
/// self-signed certificate for 127.0.0.1 and localhost made here: each connection's TLS
/// handshake is made, then its bytes are copied both ways. Counts the completed handshakes.
struct TlsFront {
    base: String,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(backend: String) -> TlsFront {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("a self-signed certificate");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .expect("the certificate and its key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("https://{}", listener.local_addr().expect("address"));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, backend, counted) =
                    (acceptor.clone(), backend.clone(), counted.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut plain) = TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            base,
            handshakes,
            task,
        }
    }
}

async fn loadtest(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orders"))
            .arg("loadtest")
            .args(args)
            .env("ORDERS_LOG", "warn")
            .output()
            .expect("run orders loadtest")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loadtest_over_https_with_insecure_accepts_a_self_signed_certificate_and_every_order_finishes(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let backend = server.base.trim_start_matches("http://").to_owned();
    let front = TlsFront::start(backend).await;
    let output = loadtest(
        [
            "--url",
            &front.base,
            "--insecure",
            "--orders",
            "200",
            "--concurrency",
            "8",
            "--wait",
            "--json",
            "--max-duration",
            "120s",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {}: {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["url"], front.base.as_str());
    assert_eq!(report["accepted"], 200, "{report:#}");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert_eq!(report["wait"]["completed"], 200, "{report:#}");
    assert!(
        front.handshakes.load(Ordering::Relaxed) >= 1,
        "nothing went through TLS"
    );
    front.task.abort();
    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_insecure_a_self_signed_certificate_is_refused_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let backend = server.base.trim_start_matches("http://").to_owned();
    let front = TlsFront::start(backend).await;
    let output = loadtest(
        [
            "--url",
            &front.base,
            "--orders",
            "5",
            "--concurrency",
            "1",
            "--json",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["accepted"], 0, "{report:#}");
    assert_eq!(
        report["errors"]["connection"]["certificate"], 5,
        "each order refused on the certificate: {report:#}"
    );
    assert_eq!(front.handshakes.load(Ordering::Relaxed), 0);
    front.task.abort();
    server.terminate();
}

#[test]
fn insecure_is_refused_for_a_plain_http_url() {
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args([
            "loadtest",
            "--url",
            "http://127.0.0.1:3000",
            "--orders",
            "1",
            "--insecure",
        ])
        .output()
        .expect("run orders loadtest");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure"), "{stderr}");
}
