use serde_json::{json, Value};

use crate::support::*;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    fields: &'static [&'static str],
}

fn post(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    fields: &'static [&'static str],
) -> Case {
    Case {
        name,
        method: "POST",
        path: "/orders".into(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        fields,
    }
}

fn json_body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[tokio::test]
async fn bad_input_gets_a_4xx_problem_naming_the_fault_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let client = client();
    let item = json!({"productId": "p", "quantity": 1, "unitPrice": 100});
    let mut cases = vec![
        post("malformed JSON", "{\"customerId\": ", 400, &["body"]),
        post("not JSON at all", "hello", 400, &["body"]),
        post("empty body", "", 400, &["body"]),
        post("a JSON array", "[1,2]", 422, &[""]),
        post(
            "wrong types",
            json_body(json!({"customerId": 42, "items": "many"})),
            422,
            &["customerId", "items"],
        ),
        post(
            "missing customerId",
            json_body(json!({"items": [item]})),
            422,
            &["customerId"],
        ),
        post(
            "missing items",
            json_body(json!({"customerId": "c"})),
            422,
            &["items"],
        ),
        post(
            "empty items",
            json_body(json!({"customerId": "c", "items": []})),
            422,
            &["items"],
        ),
        post(
            "zero quantity",
            json_body(
                json!({"customerId": "c", "items": [{"productId": "p", "quantity": 0, "unitPrice": 1}]}),
            ),
            422,
            &["items[0].quantity"],
        ),
        post(
            "negative quantity",
            json_body(
                json!({"customerId": "c", "items": [{"productId": "p", "quantity": -2, "unitPrice": 1}]}),
            ),
            422,
            &["items[0].quantity"],
        ),
        post(
            "fractional price",
            json_body(
                json!({"customerId": "c", "items": [{"productId": "p", "quantity": 1, "unitPrice": 9.99}]}),
            ),
            422,
            &["items[0].unitPrice"],
        ),
        post(
            "unknown field",
            json_body(json!({"customerId": "c", "items": [item], "customerID": "typo"})),
            422,
            &["customerID"],
        ),
        post(
            "a 1 MiB body",
            json_body(json!({"customerId": "c", "items": [item], "pad": "x".repeat(1 << 20)})),
            413,
            &["body"],
        ),
        Case {
            content_type: Some("text/plain"),
            ..post(
                "a non-JSON content type",
                json_body(json!({"customerId": "c", "items": [item]})),
                415,
                &["Content-Type"],
            )
        },
        Case {
            method: "GET",
            path: format!("/orders/{}", "0190a000-0000-7000-8000-000000000000"),
            content_type: None,
            body: Vec::new(),
            status: 404,
            fields: &[],
            name: "an unknown order id",
        },
        Case {
            method: "GET",
            path: "/orders/not-a-uuid".into(),
            content_type: None,
            body: Vec::new(),
            status: 400,
            fields: &["id"],
            name: "a malformed id in the path",
        },
        Case {
            method: "GET",
            path: "/orders/not-a-uuid/events".into(),
            content_type: None,
            body: Vec::new(),
            status: 400,
            fields: &["id"],
            name: "a malformed id in the events path",
        },
        Case {
            method: "DELETE",
            path: "/orders".into(),
            content_type: None,
            body: Vec::new(),
            status: 405,
            fields: &[],
            name: "a method the API does not have",
        },
    ];
    cases.push(Case {
        name: "an oversized Idempotency-Key",
        ..post(
            "",
            json_body(json!({"customerId": "c", "items": [item]})),
            400,
            &["Idempotency-Key"],
        )
    });

    for case in &cases {
        let url = format!("{}{}", server.base, case.path);
        let mut request = client
            .request(case.method.parse().expect("method"), &url)
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if case.name == "an oversized Idempotency-Key" {
            request = request.header("Idempotency-Key", "k".repeat(300));
        }
        let response = request.send().await.expect("request");
        let answer = ProblemResponse::read(response).await;
        let (status, content_type, problem) = (answer.status, &answer.content_type, &answer.body);
        assert_eq!(status, case.status, "{}: {problem}", case.name);
        assert_eq!(content_type, "application/problem+json", "{}", case.name);
        assert_eq!(problem["status"], case.status, "{}", case.name);
        assert!(
            problem["title"].is_string() && problem["detail"].is_string(),
            "{}: {problem}",
            case.name
        );
        let fields = answer.fields();
        assert_eq!(fields, case.fields, "{}: {problem}", case.name);
    }

    // Nothing was written: no event in the log, nothing queued, nothing published.
    let db = order_adapters_sqlite::SqliteDb::open(&server.data).expect("open");
    assert_eq!(
        db.head_seq().await.expect("head"),
        0,
        "an event was written"
    );
    assert_eq!(
        db.work_queue_default().depth().await.expect("depth"),
        0,
        "work was queued"
    );
    // And the server is still healthy.
    let (status, _) = get_json(&client, &format!("{}/health", server.base)).await;
    assert_eq!(status, 200);
    server.terminate();
}
