#!/usr/bin/env bash
# Every test of the project, the AWS emulator included:
#
#   scripts/test.sh [extra cargo test args]
#
# 1. installs the pinned tools into .venv-tools/ (ministack, cfn-lint, cargo-lambda, boto3) if missing;
# 2. checks formatting, lints and template.yaml (cfn-lint);
# 3. builds the five Lambda bootstraps (cargo lambda, release, x86_64 zips in target/lambda/);
# 4. starts ministack on a free loopback port, runs `cargo test --workspace` against it, stops it.
# Also: cargo-deny (licenses, bans, sources; pinned, built into .tools/ once) and schemathesis
# against a real `orders serve` (docs/openapi.json, every check, bounded in time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n==> %s\n' "$*" >&2; }

step "tools (.venv-tools)"
VENV="$(scripts/emulator-venv.sh)"
export PATH="$VENV/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "cfn-lint template.yaml"
cfn-lint template.yaml
step "cargo deny check licenses bans sources (deny.toml)"
scripts/cargo-deny.sh

step "build the Lambda bootstraps (release, x86_64)"
cargo lambda build --release --x86-64 --output-format zip \
  -p ingest -p processor -p projector -p notifier -p reconciler
export ORDERS_TEST_LAMBDA_ZIPS="$ROOT/target/lambda"

step "fuzz: 60 s per target (scripts/fuzz.sh, docs/fuzzing.md)"
scripts/fuzz.sh 60

step "start the AWS emulator"
STATE="$ROOT/target/emulator-test"
scripts/emulator-stop.sh "$STATE" >/dev/null 2>&1 || true
ORDERS_TEST_AWS_ENDPOINT="$(scripts/emulator-start.sh "$STATE")"
export ORDERS_TEST_AWS_ENDPOINT
trap 'scripts/emulator-stop.sh "$STATE" >/dev/null 2>&1 || true' EXIT
echo "emulator at $ORDERS_TEST_AWS_ENDPOINT (log: $STATE/ministack.log)" >&2

step "schemathesis: orders serve against docs/openapi.json"
# The test build (not a separate `cargo build`, whose features differ): nothing is built twice.
cargo test --workspace --no-run --quiet "$@"
ORDERS_BIN="$ROOT/target/debug/orders" scripts/schemathesis.sh

step "cargo test --workspace"
LOG="$ROOT/target/test-output.log"
cargo test --workspace "$@" 2>&1 | tee "$LOG"
# One plain closing line over every test binary (cargo prints one result line per binary,
# the last of them usually a doc-test run with nothing in it).
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$LOG"

# The criterion benches (BENCHMARKS.md), each run once in test mode: they build in the test
# profile on the dependencies the step above built (`--bench '*'`, not `--benches`, which would
# run every lib's unit tests again), and a bench that panics fails the run.
step "cargo test --bench '*' (benches once, smoke)"
cargo test --workspace --bench '*'
