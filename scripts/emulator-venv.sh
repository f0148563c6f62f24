#!/usr/bin/env bash
# Create (idempotently) the project-local tools virtualenv .venv-tools/ with pinned
# ministack (AWS emulator), cfn-lint, cargo-lambda (+ zig), boto3, duckdb (reads the
# Parquet export back in the tests) and schemathesis (tests `orders serve` against
# docs/openapi.json).
# Prints the venv path on stdout. Fast no-op when the stamp matches the requirement list.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOOLS_VENV:-$ROOT/.venv-tools}"
PYTHON="${PYTHON:-python3}"

REQUIREMENTS="ministack==1.5.33
cfn-lint==1.51.0
cargo-lambda==1.9.2
boto3==1.43.106
duckdb==1.5.6
schemathesis==4.32.5"

hash_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
WANT="$(hash_of "$REQUIREMENTS")"
STAMP="$VENV/.requirements.sha256"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "$VENV"
  exit 0
fi

echo "emulator-venv: installing tools into $VENV" >&2
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV" >&2
fi
REQ_FILE="$VENV/requirements.txt"
printf '%s\n' "$REQUIREMENTS" > "$REQ_FILE"
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ_FILE" >&2
printf '%s' "$WANT" > "$STAMP"
echo "$VENV"
