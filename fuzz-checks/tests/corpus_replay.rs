//! Every committed seed and every past finding, through every fuzz target's check, on stable
//! Rust: the part of fuzzing that belongs in the test command (docs/fuzzing.md). Timed,
//! coverage-guided exploration is `scripts/fuzz.sh`, on nightly.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz-checks lives in the workspace root")
        .join("fuzz")
}

/// The files of one directory, sorted; none when the directory does not exist.
fn inputs_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs one target's check on each input and returns the inputs that failed, with the panic's
/// message.
fn failures(check: fn(&[u8]), inputs: &[PathBuf]) -> Vec<String> {
    inputs
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).expect("a readable corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&data)))
                .err()
                .map(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(a panic without a message)");
                    format!("{}: {message}", path.display())
                })
        })
        .collect()
}

#[test]
fn every_committed_seed_and_past_finding_passes_its_targets_check() {
    let fuzz = fuzz_dir();
    let mut replayed = 0;
    let mut failed = Vec::new();
    for fuzz_checks::Target {
        name: target,
        check,
    } in fuzz_checks::TARGETS
    {
        let seeds = inputs_in(&fuzz.join("corpus").join(target));
        assert!(
            !seeds.is_empty(),
            "fuzz/corpus/{target}/ holds no seed: the replay would prove nothing"
        );
        // Findings of a local `scripts/fuzz.sh` run that are not committed as seeds yet.
        let findings = inputs_in(&fuzz.join("artifacts").join(target));
        for inputs in [&seeds, &findings] {
            replayed += inputs.len();
            failed.extend(failures(*check, inputs));
        }
    }
    eprintln!("corpus replay: {replayed} inputs");
    assert!(
        failed.is_empty(),
        "{} of {replayed} corpus inputs fail their check:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_binary_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for fuzz_checks::Target { name: target, .. } in fuzz_checks::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        let source =
            std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{target}.rs")))
                .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("fuzz_checks::{target}(")),
            "fuzz/fuzz_targets/{target}.rs does not run fuzz_checks::{target}"
        );
    }
}

/// The replay can fail: a check that panics on some input is reported with the input's name.
#[test]
fn a_check_that_panics_is_reported_with_its_input() {
    fn refuses_everything(_: &[u8]) {
        panic!("refused");
    }
    let seed = fuzz_dir().join("corpus/post_body/seed-minimal");
    let failed = failures(refuses_everything, &[seed]);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("seed-minimal: refused"), "{failed:?}");
}
