//! `orders serve --auth-jwks`: the API verifies bearer tokens itself, and each customer creates,
//! lists and reads only its own orders. Keys and tokens are made in the test.

use std::process::Command;

use ingest::auth::test_keys::{claims, TestIssuer, AUDIENCE, ISSUER};
use serde_json::Value;

use crate::support::*;

struct Authenticated {
    _dir: tempfile::TempDir,
    server: Server,
    issuer: TestIssuer,
}

fn serve_with_authentication() -> Authenticated {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = TestIssuer::new("test-key-1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).expect("write the JWKS");
    let data = dir.path().join("orders.db");
    let server = Server::start_with_args(&[
        "--data",
        data.to_str().expect("utf-8 path"),
        "--auth-jwks",
        jwks.to_str().expect("utf-8 path"),
        "--auth-issuer",
        ISSUER,
        "--auth-audience",
        AUDIENCE,
    ]);
    Authenticated {
        _dir: dir,
        server,
        issuer,
    }
}

async fn send(request: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn with_auth_jwks_each_customer_sees_only_its_own_orders_and_tokens_are_checked() {
    let auth = serve_with_authentication();
    let (client, base) = (client(), auth.server.base.clone());
    let alice = auth.issuer.token_for("alice");
    let mallory = auth.issuer.token_for("mallory");
    let post = || {
        client
            .post(format!("{base}/orders"))
            .json(&order_body("alice", 1))
    };

    let (status, accepted) = send(post(), Some(&alice)).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["orderId"].as_str().expect("orderId").to_owned();
    let order = format!("{base}/orders/{id}");
    let alices_list = format!("{base}/orders?customerId=alice");
    // The projector runs in the process: the list shows the order once it has caught up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, page) = send(client.get(&alices_list), Some(&alice)).await;
        assert_eq!(status, 200, "{page}");
        if page["orders"].as_array().is_some_and(|o| o.len() == 1) {
            assert_eq!(page["orders"][0]["orderId"], id.as_str());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never listed: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(send(client.get(&order), Some(&alice)).await.0, 200);
    assert_eq!(
        send(client.get(format!("{order}/events")), Some(&alice))
            .await
            .0,
        200
    );

    // Another customer: forbidden to act for alice, and alice's order does not exist for it.
    let (status, problem) = send(post(), Some(&mallory)).await;
    assert_eq!(
        (status, &problem["title"]),
        (403, &Value::from("Forbidden"))
    );
    assert_eq!(send(client.get(&alices_list), Some(&mallory)).await.0, 403);
    let (status, problem) = send(client.get(&order), Some(&mallory)).await;
    assert_eq!(
        (status, &problem["title"]),
        (404, &Value::from("Order not found"))
    );
    assert_eq!(
        send(client.get(format!("{order}/events")), Some(&mallory))
            .await
            .0,
        404
    );

    // No token, an expired one, one for another audience: 401 problem documents.
    let expired = auth.issuer.sign(&claims("alice", AUDIENCE, -600));
    let elsewhere = auth.issuer.sign(&claims("alice", "another-api", 600));
    for (why, token) in [
        ("none", None),
        ("expired", Some(&expired)),
        ("audience", Some(&elsewhere)),
    ] {
        let response = match token {
            Some(t) => client.get(&order).bearer_auth(t),
            None => client.get(&order),
        }
        .send()
        .await
        .expect("GET");
        assert_eq!(response.status().as_u16(), 401, "{why}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{why}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let (status, _) = send(post(), token.map(String::as_str)).await;
        assert_eq!(status, 401, "{why}");
    }
    assert_eq!(
        send(client.get(format!("{base}/health")), None).await.0,
        200
    );
    auth.server.terminate();
}

#[test]
fn a_jwks_file_without_a_usable_key_stops_serve_before_it_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_orders"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("orders.db"))
        .arg("--auth-jwks")
        .arg(&jwks)
        .args(["--auth-issuer", ISSUER, "--auth-audience", AUDIENCE])
        .output()
        .expect("run orders serve");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "it listened: {:?}", output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--auth-jwks"), "{stderr}");
}
