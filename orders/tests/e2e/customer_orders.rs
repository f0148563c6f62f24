//! `GET /orders?customerId=`: a customer's orders, page by page, through `orders serve`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Follows `nextCursor` from `{base}/orders?{query}` to the end; returns every page's orders.
pub async fn walk_customer_orders(
    client: &reqwest::Client,
    base: &str,
    query: &str,
) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/orders?{query}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, body) = get_json(client, &url).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        pages.push(body["orders"].as_array().expect("an orders array").clone());
        match &body["nextCursor"] {
            Value::Null => return pages,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("nextCursor is {other} in {body}"),
        }
        assert!(pages.len() <= 1_000, "the walk of {query} does not end");
    }
}

/// Asserts `orders` is newest first: `createdAt` descending, ties by `orderId` descending.
pub fn assert_newest_first(orders: &[Value]) {
    let keys: Vec<(&str, &str)> = orders
        .iter()
        .map(|o| {
            (
                o["createdAt"].as_str().expect("createdAt"),
                o["orderId"].as_str().expect("orderId"),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first");
}

fn ids(orders: &[Value]) -> Vec<String> {
    orders
        .iter()
        .map(|o| o["orderId"].as_str().expect("orderId").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_orders_are_walked_newest_first_exactly_once_through_orders_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let client = client();
    let base = server.base.clone();

    let mut mine = HashSet::new();
    let mut all = HashSet::new();
    for n in 0..15u32 {
        let customer = if n % 5 == 4 {
            "cust-other"
        } else {
            "cust-list"
        };
        let (status, body) = post_order(&client, &base, &order_body(customer, n), None)
            .await
            .expect("POST /orders");
        assert_eq!(status, 202, "{body}");
        let id = body["orderId"].as_str().expect("orderId").to_owned();
        if customer == "cust-list" {
            mine.insert(id.clone());
        }
        all.insert(id);
    }
    assert_eq!(mine.len(), 12);
    wait_until_completed(&client, &base, &all).await;

    // The list reads the view, which may trail the log a moment after the orders completed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pages = loop {
        let pages = walk_customer_orders(&client, &base, "customerId=cust-list&limit=5").await;
        let done = pages
            .concat()
            .iter()
            .filter(|o| o["status"] == "COMPLETED")
            .count();
        if done == mine.len() {
            break pages;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of 12 orders COMPLETED in the list"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [5, 5, 2],
        "pages of at most the limit, no empty page"
    );
    let listed = pages.concat();
    assert_newest_first(&listed);
    let listed_ids = ids(&listed);
    assert_eq!(
        listed_ids.iter().cloned().collect::<HashSet<_>>(),
        mine,
        "exactly the customer's orders"
    );
    assert_eq!(listed_ids.len(), mine.len(), "no order twice");
    assert!(listed.iter().all(|o| o["customerId"] == "cust-list"));

    let completed =
        walk_customer_orders(&client, &base, "customerId=cust-list&status=COMPLETED").await;
    assert_eq!(
        ids(&completed.concat()),
        listed_ids,
        "one page of 50 by default"
    );
    let failed = walk_customer_orders(&client, &base, "customerId=cust-list&status=FAILED").await;
    assert_eq!(failed, [Vec::<Value>::new()]);

    let response = client
        .get(format!("{base}/orders?customerId=cust-list&limit=0"))
        .send()
        .await
        .expect("GET");
    let problem = ProblemResponse::read(response).await;
    assert_eq!(problem.status, 400, "{}", problem.body);
    assert_eq!(problem.content_type, "application/problem+json");
    assert_eq!(problem.fields(), ["limit"]);
    server.terminate();
}
