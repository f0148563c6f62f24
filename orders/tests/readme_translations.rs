//! README.md and its Portuguese translation README.pt-BR.md show the same commands: every
//! command block of one — a fenced block tagged `sh`, `console`, `http` or untagged (this README's
//! command synopses) — appears byte for byte in the other, and each links to the other.

use std::collections::BTreeSet;

const CHECKED: [&str; 4] = ["sh", "console", "http", ""];

struct Block {
    lang: String,
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
}

fn read(name: &str) -> String {
    let path = format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    line: i + 1,
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    blocks
}

fn command_blocks(markdown: &str) -> Vec<Block> {
    fenced_blocks(markdown)
        .into_iter()
        .filter(|b| CHECKED.contains(&b.lang.as_str()))
        .collect()
}

/// Every command block of `from` that `to` lacks, each named by its line and shown whole.
fn missing(from: &str, from_name: &str, to: &str, to_name: &str) -> Vec<String> {
    let present: BTreeSet<(String, String)> = command_blocks(to)
        .into_iter()
        .map(|b| (b.lang, b.text))
        .collect();
    command_blocks(from)
        .into_iter()
        .filter(|b| !present.contains(&(b.lang.clone(), b.text.clone())))
        .map(|b| {
            format!(
                "{to_name} lacks the ```{} block of {from_name} line {}:\n{}",
                b.lang, b.line, b.text
            )
        })
        .collect()
}

#[test]
fn every_command_block_of_each_readme_appears_byte_for_byte_in_the_other() {
    let (en, pt) = (read("README.md"), read("README.pt-BR.md"));
    let mut problems = missing(&en, "README.md", &pt, "README.pt-BR.md");
    problems.extend(missing(&pt, "README.pt-BR.md", &en, "README.md"));
    assert!(
        problems.is_empty(),
        "the READMEs' commands differ ({} blocks); copy each block unchanged:\n\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        command_blocks(&en).len() >= 10,
        "only {} command blocks found in README.md",
        command_blocks(&en).len()
    );
}

#[test]
fn each_readme_links_to_the_other_near_its_top() {
    for (name, other) in [
        ("README.md", "(README.pt-BR.md)"),
        ("README.pt-BR.md", "(README.md)"),
    ] {
        let text = read(name);
        let top: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(
            top.contains(other),
            "{name} does not link {other} in its first lines"
        );
    }
}

#[test]
fn a_changed_command_is_named_with_its_line() {
    let en = "# t\n\n```sh\norders stats --by day\n```\n";
    let pt = "# t\n\n```sh\norders stats --by hour\n```\n";
    let found = missing(en, "README.md", pt, "README.pt-BR.md");
    assert_eq!(
        found,
        vec!["README.pt-BR.md lacks the ```sh block of README.md line 3:\norders stats --by day\n"]
    );
    // Prose and output blocks may differ.
    let en = "Hello\n\n```text\nday (UTC)\n```\n";
    let pt = "Olá\n\n```text\ndia (UTC)\n```\n";
    assert!(missing(en, "a", pt, "b").is_empty());
}
