use std::collections::{HashMap, HashSet};

use futures::future::join_all;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_orders_all_complete_exactly_once_and_retried_keys_get_the_same_order(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let client = client();
    let base = server.base.clone();

    // 200 orders: 120 without a key, 80 with one; every keyed order is sent twice at once, and
    // 20 of them a third time later.
    let posts = (0..200u32).flat_map(|n| {
        let customer = format!("cust-{}", n % 17);
        let key = (n >= 120).then(|| format!("key-{n}"));
        let copies = if key.is_some() { 2 } else { 1 };
        let (client, base) = (client.clone(), base.clone());
        (0..copies).map(move |_| {
            let (client, base, key, customer) =
                (client.clone(), base.clone(), key.clone(), customer.clone());
            async move {
                let (status, body) =
                    post_order(&client, &base, &order_body(&customer, n), key.as_deref())
                        .await
                        .expect("POST /orders");
                (n, key, status, body)
            }
        })
    });
    let responses = join_all(posts).await;

    let mut ids = HashSet::new();
    let mut by_key: HashMap<String, HashSet<String>> = HashMap::new();
    for (n, key, status, body) in &responses {
        assert_eq!(*status, 202, "order {n}: {body}");
        assert_eq!(body["status"], "RECEIVED");
        let id = body["orderId"].as_str().expect("orderId").to_owned();
        assert_eq!(body["links"]["self"], format!("/orders/{id}"));
        if let Some(key) = key {
            by_key.entry(key.clone()).or_default().insert(id.clone());
        }
        ids.insert(id);
    }
    assert_eq!(responses.len(), 280);
    assert_eq!(ids.len(), 200, "one order per distinct request");
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "a retried key always answers the same orderId"
    );

    assert_all_completed_once(&client, &base, &server.data, &ids).await;

    // A late retry of a completed keyed order: same order, still one notification.
    for n in 120..140u32 {
        let key = format!("key-{n}");
        let (status, body) = post_order(
            &client,
            &base,
            &order_body(&format!("cust-{}", n % 17), n),
            Some(&key),
        )
        .await
        .expect("retry");
        assert_eq!(status, 202);
        assert!(by_key[&key].contains(body["orderId"].as_str().expect("orderId")));
    }
    // The same customer and key with a different order is refused. (Keys are per customer.)
    let (status, body) = post_order(
        &client,
        &base,
        &order_body(&format!("cust-{}", 130 % 17), 999),
        Some("key-130"),
    )
    .await
    .expect("conflicting retry");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["title"], "Idempotency-Key reused");

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_all_completed_once(&client, &base, &server.data, &ids).await;
    assert_eq!(
        notifications_per_order(&server.data).len(),
        200,
        "one notification per order, no more"
    );
    server.terminate();
}

#[tokio::test]
async fn an_order_over_the_credit_limit_ends_failed_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let client = client();
    let body = serde_json::json!({
        "customerId": "big-spender",
        "items": [{"productId": "yacht", "quantity": 2, "unitPrice": 90_000_000}]
    });
    let (status, accepted) = post_order(&client, &server.base, &body, None)
        .await
        .expect("POST");
    assert_eq!(status, 202);
    let id = accepted["orderId"].as_str().expect("id");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, view) = get_json(&client, &format!("{}/orders/{id}", server.base)).await;
        if view["status"] == "FAILED" {
            assert_eq!(view["version"], 3);
            assert!(view["failureReason"]
                .as_str()
                .expect("reason")
                .contains("credit"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {view}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        notifications_per_order(&server.data).is_empty(),
        "no notification for a failed order"
    );
    server.terminate();
}
