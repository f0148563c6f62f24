#!/usr/bin/env bash
# Explores each fuzz target (fuzz/, cargo-fuzz on the nightly toolchain) for a while from the
# committed seeds plus what earlier runs found. Run it before merging a change to a parser; the
# test command only replays the corpora (fuzz-checks/tests/corpus_replay.rs, stable):
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Installs the pinned cargo-fuzz into the tools cache (scripts/tools-cache.sh) when it is not
# there yet. Any finding (a panic, a failed assertion, a timeout, a leak of memory) fails the
# script; libFuzzer saves the input under fuzz/artifacts/<target>/. What the targets check and
# the figures of the last long runs: docs/fuzzing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_FUZZ_VERSION=0.13.2
# shellcheck source=tools-cache.sh
source "$ROOT/scripts/tools-cache.sh"
TOOLS="$ORDERS_TOOLS_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
SECONDS_PER_TARGET="${1:-60}"
shift || true

install_cargo_fuzz() {
  if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS" >&2
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS CARGO_TARGET_DIR="$TOOLS/build" \
      cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$TOOLS"
    rm -rf "$TOOLS/build"
  fi
}
with_tools_lock install_cargo_fuzz
export PATH="$TOOLS/bin:$PATH"
cd "$ROOT/fuzz"

# Release with debug assertions and overflow checks (cargo-fuzz's default). No sanitizer: the
# code under test is safe Rust (`unsafe_code = "forbid"`), and AddressSanitizer would halve the
# executions a short run gets.
FLAGS=(--sanitizer none)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else mapfile -t TARGETS < <(cargo +nightly fuzz list); fi
cargo +nightly fuzz build "${FLAGS[@]}"

for target in "${TARGETS[@]}"; do
  # libFuzzer adds what it finds to the first corpus directory: a scratch one under target/,
  # so the committed seeds (the second) stay as they are.
  work="target/corpus/$target"
  mkdir -p "$work"
  log="target/fuzz-$target.log"
  if ! cargo +nightly fuzz run "${FLAGS[@]}" "$target" "$work" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/, log fuzz/$log)" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)"
  corpus="$(find "$work" -type f | wc -l)"
  echo "fuzz: $target ok: $runs executions in ${SECONDS_PER_TARGET}s, coverage $cov edges, corpus $corpus inputs" >&2
done
