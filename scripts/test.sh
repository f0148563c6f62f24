#!/usr/bin/env bash
# Every test of the project, the AWS emulator included:
#
#   scripts/test.sh [extra cargo test args]
#
# Each step prints its wall time when it ends, and a table of all of them closes the run.
#  1. tools: the pinned test tools (ministack, cfn-lint, boto3, duckdb, schemathesis) in the tools
#     cache, linked as .venv-tools/ (scripts/emulator-venv.sh); installed in the background while
#     the next steps compile, reused from the cache by later runs and fresh clones;
#  2. formatting;
#  3. clippy and the test build in one: `cargo build --workspace --all-targets` with clippy-driver
#     as the workspace's rustc wrapper lints every target (-D warnings) as it compiles every test,
#     bench and binary; `cargo test` below compiles nothing more. Then cargo-deny (licenses, bans,
#     sources; scripts/cargo-deny.sh) and template.yaml (cfn-lint);
#  4. the six Lambda bootstraps zipped from that build's binaries (target/lambda-test/, the host
#     is x86_64 Linux like the emulator's functions): the release cross build (`cargo lambda`) is
#     what scripts/deploy.sh ships, not what the tests need;
#  5. ministack on a free loopback port; schemathesis against a real `orders serve`
#     (docs/openapi.json, every check, bounded in time);
#  6. `cargo test --workspace` against the emulator: unit, contract, end-to-end (the stack deployed
#     from template.yaml with scripts/deploy.sh) and the fuzz corpora replayed (fuzz-checks/);
#  7. the criterion benches, each run once as a smoke test.
# Not here: timed fuzzing (scripts/fuzz.sh, nightly) and the release zips (scripts/deploy.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# --- step timing ------------------------------------------------------------------------------
STEP_NAMES=() STEP_SECONDS=() STEP_NAME="" STEP_START=0 RUN_START=$SECONDS
end_step() {
  if [[ -n "$STEP_NAME" ]]; then
    local took=$((SECONDS - STEP_START))
    STEP_NAMES+=("$STEP_NAME") STEP_SECONDS+=("$took")
    printf '<== %s: %dm%02ds\n' "$STEP_NAME" $((took / 60)) $((took % 60)) >&2
    STEP_NAME=""
  fi
}
step() {
  end_step
  STEP_NAME="$*" STEP_START=$SECONDS
  printf '\n==> %s\n' "$*" >&2
}
print_table() {
  local status="$1" i total=$((SECONDS - RUN_START))
  end_step
  printf '\n| step | wall time |\n|---|---|\n' >&2
  for i in "${!STEP_NAMES[@]}"; do
    printf '| %s | %dm%02ds |\n' "${STEP_NAMES[$i]}" $((STEP_SECONDS[i] / 60)) $((STEP_SECONDS[i] % 60)) >&2
  done
  printf '| **total** (%s) | **%dm%02ds** |\n' "$([[ $status == 0 ]] && echo passed || echo "FAILED, exit $status")" \
    $((total / 60)) $((total % 60)) >&2
}
STATE="$ROOT/target/emulator-test"
on_exit() {
  local status=$?
  scripts/emulator-stop.sh "$STATE" >/dev/null 2>&1 || true
  if [[ -n "${VENV_JOB:-}" ]]; then kill "$VENV_JOB" 2>/dev/null || true; fi
  print_table "$status"
  exit "$status"
}
trap on_exit EXIT

# --- 1. tools, in the background: pip is mostly network, the next steps are CPU ----------------
# Its own time goes in the table as a row of its own, marked as overlapped (not in the total).
mkdir -p target
rm -f target/venv-seconds
(
  started=$SECONDS
  status=0
  scripts/emulator-venv.sh >target/venv-path 2>target/venv.log || status=$?
  echo $((SECONDS - started)) >target/venv-seconds
  exit $status
) &
VENV_JOB=$!
wait_for_venv() {
  if ! wait "$VENV_JOB"; then
    VENV_JOB=""
    cat target/venv.log >&2
    echo "test.sh: installing the tools venv failed (log above)" >&2
    return 1
  fi
  VENV_JOB=""
  cat target/venv.log >&2
  local took
  took="$(cat target/venv-seconds)"
  STEP_NAMES+=("tools venv: install or reuse (in the background, overlapped)") STEP_SECONDS+=("$took")
  VENV="$(cat target/venv-path)"
  export PATH="$VENV/bin:$PATH"
}

# --- 2. formatting -----------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

# --- 3. clippy and the test build, in one compilation ------------------------------------------
# `cargo clippy` is `cargo check` with clippy-driver as the workspace's rustc wrapper: a check
# build of the whole dependency tree that nothing else reuses. Here the same wrapper and lint
# flags run in the one real build, so clippy lints our crates (every target, -D warnings, as
# `cargo clippy --workspace --all-targets -- -D warnings` does) while they compile, and the
# dependencies are compiled once. Exported: `cargo test` below must see the same wrapper, or it
# would compile our crates again.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"   # cargo-clippy's encoding of `-- -D warnings`
step "clippy (-D warnings) and the test build: cargo build --workspace --all-targets"
cargo build --workspace --all-targets --keep-going

step "cargo deny check licenses bans sources (deny.toml)"
scripts/cargo-deny.sh

# --- 4. the Lambda bootstraps from that build ---------------------------------------------------
step "zip the six Lambda bootstraps from the test build (target/lambda-test/)"
scripts/test-lambda-zips.sh "$ROOT/target/lambda-test"
export ORDERS_TEST_LAMBDA_ZIPS="$ROOT/target/lambda-test"

step "tools: wait for the venv; cfn-lint template.yaml"
wait_for_venv
cfn-lint template.yaml

# --- 5. emulator, schemathesis -----------------------------------------------------------------
step "start the AWS emulator"
scripts/emulator-stop.sh "$STATE" >/dev/null 2>&1 || true
ORDERS_TEST_AWS_ENDPOINT="$(scripts/emulator-start.sh "$STATE")"
export ORDERS_TEST_AWS_ENDPOINT
echo "emulator at $ORDERS_TEST_AWS_ENDPOINT (log: $STATE/ministack.log)" >&2

step "schemathesis: orders serve against docs/openapi.json"
ORDERS_BIN="$ROOT/target/debug/orders" scripts/schemathesis.sh

# --- 6. the tests ------------------------------------------------------------------------------
step "cargo test --workspace"
LOG="$ROOT/target/test-output.log"
cargo test --workspace "$@" 2>&1 | tee "$LOG"
# One plain closing line over every test binary (cargo prints one result line per binary,
# the last of them usually a doc-test run with nothing in it).
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, i }' "$LOG"

# --- 7. benches ---------------------------------------------------------------------------------
# The criterion benches (BENCHMARKS.md), each run once in test mode, on the test build above
# (`--bench '*'`, not `--benches`, which would run every lib's unit tests again); a bench that
# panics fails the run.
step "cargo test --bench '*' (benches once, smoke)"
cargo test --workspace --bench '*'
end_step
