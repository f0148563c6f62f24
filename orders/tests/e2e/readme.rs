//! The README's curl examples, run as written against a fresh `orders serve`, with the answers the
//! README shows. Only the address is swapped for the test server's; `"…"` in an expected JSON
//! value means "any value".

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Server;

const README_ADDRESS: &str = "http://127.0.0.1:3000";

struct Block {
    lang: String,
    text: String,
}

fn code_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                current = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The shell commands of a block, with `\` continuations joined and trailing comments dropped.
fn curl_commands(block: &Block) -> Vec<String> {
    block
        .text
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split("   #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| l.starts_with("curl "))
        .collect()
}

fn run(command: &str, base: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", &command.replace(README_ADDRESS, base)])
        .output()
        .expect("run curl");
    assert!(output.status.success(), "`{command}` failed: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// `expected` with `"…"` as a wildcard.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == "…" => true,
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        _ => expected == actual,
    }
}

/// Splits an `http` block or a `curl -i` output into (status line, headers, body).
fn http_parts(text: &str) -> (String, Vec<(String, String)>, Value) {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").expect("headers, blank line, body");
    let mut lines = head.lines();
    let status = lines.next().expect("status line").trim().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body.trim()).expect("JSON body"),
    )
}

#[tokio::test]
async fn the_readme_curl_examples_answer_what_the_readme_shows() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("orders.db"));
    let blocks = code_blocks(&readme);
    let mut checked = 0;
    for (i, block) in blocks.iter().enumerate() {
        if block.lang != "sh" || !block.text.contains(README_ADDRESS) {
            continue;
        }
        let commands = curl_commands(block);
        let expected = blocks
            .get(i + 1)
            .filter(|next| next.lang == "http" || next.lang == "json");
        let Some(expected) = expected else {
            // No answer shown: the commands must still succeed and answer JSON.
            for command in &commands {
                let out = run(command, &server.base);
                serde_json::from_str::<Value>(&out)
                    .unwrap_or_else(|e| panic!("`{command}` did not answer JSON ({e}): {out}"));
                checked += 1;
            }
            continue;
        };
        assert_eq!(
            commands.len(),
            1,
            "one command before a shown answer: {commands:?}"
        );
        let command = &commands[0];
        // The answer may be a later state (the order completes in the background): poll a while.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = run(command, &server.base);
            let ok = if expected.lang == "http" {
                let (want_status, want_headers, want_body) = http_parts(&expected.text);
                let (status, headers, body) = http_parts(&out);
                status == want_status
                    && want_headers.iter().all(|h| headers.contains(h))
                    && matches(&want_body, &body)
            } else {
                let want: Value = serde_json::from_str(expected.text.trim()).expect("README JSON");
                serde_json::from_str(&out).is_ok_and(|got| matches(&want, &got))
            };
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{command}` answered\n{out}\nbut the README shows\n{}",
                expected.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} README examples found");
    server.terminate();
}
