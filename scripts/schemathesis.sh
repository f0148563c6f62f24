#!/usr/bin/env bash
# The HTTP API against its OpenAPI document: schemathesis (pinned in scripts/emulator-venv.sh)
# runs every check (no 5xx, every response conforms to docs/openapi.json, no input the document
# calls invalid is accepted, no valid one refused, …) on every operation, against a real
# `orders serve` on a fresh SQLite file on a free loopback port:
#
#   scripts/schemathesis.sh [--max-examples N] [extra schemathesis run args]
#
# Bounded: at most SCHEMATHESIS_TIME seconds (default 150). ORDERS_BIN names an `orders` binary
# already built (scripts/test.sh passes the one `cargo test` uses); otherwise it is built here. Configuration and the two hooks
# that stand in for a well-behaved client: scripts/schemathesis.toml, scripts/schemathesis_hooks.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$(scripts/emulator-venv.sh)"
if [[ -z "${ORDERS_BIN:-}" ]]; then
  cargo build --quiet -p orders
  ORDERS_BIN="$ROOT/target/debug/orders"
fi

STATE="$ROOT/target/schemathesis"
rm -rf "$STATE"
mkdir -p "$STATE"
ORDERS_LOG=warn "$ORDERS_BIN" serve --listen 127.0.0.1:0 --data "$STATE/orders.db" \
  >"$STATE/serve.out" 2>"$STATE/serve.log" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [[ -s "$STATE/serve.out" ]] && break
  sleep 0.1
done
URL="$(sed -n 's/^listening on //p' "$STATE/serve.out")"
[[ -n "$URL" ]] || { echo "orders serve did not start; see $STATE/serve.log" >&2; exit 1; }

# Its caches (.schemathesis/, .hypothesis/) go with the run, under target/.
cd "$STATE"
status=0
PYTHONPATH="$ROOT/scripts" timeout "${SCHEMATHESIS_TIME:-150}" \
  "$VENV/bin/schemathesis" --no-color --config-file "$ROOT/scripts/schemathesis.toml" \
  run "$ROOT/docs/openapi.json" --url "$URL" --checks all --max-examples 300 \
  --report junit --report-dir "$STATE" "$@" >"$STATE/output.txt" 2>&1 || status=$?
# The summary (operations, phases, failures, cases generated); failures in full when any.
if [[ $status -ne 0 ]]; then cat "$STATE/output.txt"; else sed -n '/SUMMARY/,$p' "$STATE/output.txt"; fi
[[ $status -eq 124 ]] && echo "schemathesis: over ${SCHEMATHESIS_TIME:-150} s" >&2
if grep -q "panicked" "$STATE/serve.log"; then
  echo "orders serve panicked during the run:" >&2
  grep -A5 "panicked" "$STATE/serve.log" >&2
  status=1
fi
exit "$status"
