#!/usr/bin/env bash
# One deploy command for AWS and for the emulator.
#
#   scripts/deploy.sh --stack NAME [--endpoint-url URL] [--arch x86_64|arm64]
#                     [--param K=V ...] [--skip-build] [--zips-dir DIR] [--bucket NAME]
#                     [--region REGION]
#
# Builds the six bootstraps (cargo lambda build --release --output-format zip) unless
# --skip-build, uploads target/lambda/<bin>/bootstrap.zip (or DIR/<bin>/bootstrap.zip,
# DIR/<bin>.zip with --zips-dir) under content-hashed keys, creates or updates the stack
# from template.yaml, waits, and prints the stack outputs as JSON on stdout (with
# --endpoint-url also "EmulatorApiUrl"). Everything else goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="" ENDPOINT="" ARCH="arm64" SKIP_BUILD=0 ZIPS_DIR="" PY_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --stack) STACK="$2"; shift 2 ;;
    --endpoint-url) ENDPOINT="$2"; shift 2 ;;
    --arch) ARCH="$2"; shift 2 ;;
    --param) PY_ARGS+=(--param "$2"); shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --zips-dir) ZIPS_DIR="$2"; SKIP_BUILD=1; shift 2 ;;
    --bucket) PY_ARGS+=(--bucket "$2"); shift 2 ;;
    --region) PY_ARGS+=(--region "$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" >&2; exit 0 ;;
    *) echo "deploy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$STACK" ]] || { echo "deploy.sh: --stack NAME is required" >&2; exit 2; }
case "$ARCH" in
  x86_64) ARCH_FLAG=--x86-64 ;;
  arm64) ARCH_FLAG=--arm64 ;;
  *) echo "deploy.sh: --arch must be x86_64 or arm64" >&2; exit 2 ;;
esac

if [[ "$SKIP_BUILD" == 0 ]]; then
  VENV="$("$ROOT/scripts/emulator-venv.sh" --release)"   # with cargo-lambda and zig
else
  VENV="$("$ROOT/scripts/emulator-venv.sh")"
fi
export PATH="$VENV/bin:$PATH"

if [[ "$SKIP_BUILD" == 0 ]]; then
  echo "deploy.sh: building bootstraps for $ARCH" >&2
  (cd "$ROOT" && cargo lambda build --release --output-format zip "$ARCH_FLAG" \
      -p ingest -p processor -p projector -p notifier -p reconciler -p archiver) >&2
fi
if [[ -z "$ZIPS_DIR" ]]; then
  ZIPS_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/lambda"
fi

[[ -n "$ENDPOINT" ]] && PY_ARGS+=(--endpoint-url "$ENDPOINT")
exec "$VENV/bin/python" "$ROOT/scripts/deploy.py" --stack "$STACK" --template "$ROOT/template.yaml" \
  --zips-dir "$ZIPS_DIR" --arch "$ARCH" ${PY_ARGS[@]+"${PY_ARGS[@]}"}
