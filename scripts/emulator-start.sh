#!/usr/bin/env bash
# Start ministack (AWS emulator) in the background on a free loopback port.
#
#   scripts/emulator-start.sh STATE_DIR        (e.g. target/emulator)
#
# Writes STATE_DIR/pid, STATE_DIR/port, STATE_DIR/endpoint, STATE_DIR/env (sourceable),
# logs to STATE_DIR/ministack.log, waits until /_ministack/health answers, and prints
# the endpoint URL on stdout. Functions run by the emulator inherit its environment,
# so AWS_ENDPOINT_URL + dummy credentials here let a Rust SDK inside a function reach it.
# Set EMULATOR_PORT to force a port. Stop with scripts/emulator-stop.sh STATE_DIR.
set -euo pipefail

STATE_DIR="${1:?usage: emulator-start.sh STATE_DIR}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$("$ROOT/scripts/emulator-venv.sh")"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"

if [[ -f "$STATE_DIR/pid" ]] && kill -0 "$(cat "$STATE_DIR/pid")" 2>/dev/null; then
  echo "emulator-start: already running (pid $(cat "$STATE_DIR/pid"))" >&2
  cat "$STATE_DIR/endpoint"
  exit 0
fi

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_once() {
  local port="$1" endpoint="http://127.0.0.1:$1"
  rm -rf "$STATE_DIR/tmp"; mkdir -p "$STATE_DIR/tmp"
  cat > "$STATE_DIR/env" <<ENV
export AWS_ENDPOINT_URL=$endpoint
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
ENV
  # setsid: ministack and the bootstrap processes it spawns share one process group,
  # so emulator-stop.sh can end them all by that group id.
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
    BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" MINISTACK_HOST=localhost \
    AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    LAMBDA_EXECUTOR=local PERSIST_STATE=0 S3_PERSIST=0 \
    IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 LOG_LEVEL="${EMULATOR_LOG_LEVEL:-INFO}" \
    TMPDIR="$STATE_DIR/tmp" \
    setsid "$VENV/bin/ministack" > "$STATE_DIR/ministack.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$STATE_DIR/pid"
  echo "$port" > "$STATE_DIR/port"
  echo "$endpoint" > "$STATE_DIR/endpoint"
  local i
  for i in $(seq 1 150); do   # up to 15 s
    if ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    if "$VENV/bin/python" - "$endpoint" <<'PY' 2>/dev/null; then
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_ministack/health", timeout=1) as r:
    sys.exit(0 if r.status == 200 and "version" in json.load(r) else 1)
PY
      return 0
    fi
    sleep 0.1
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  return 1
}

for attempt in 1 2 3; do
  PORT="${EMULATOR_PORT:-$(free_port)}"
  if start_once "$PORT"; then
    echo "emulator-start: ministack pid $(cat "$STATE_DIR/pid") on http://127.0.0.1:$PORT (log $STATE_DIR/ministack.log)" >&2
    cat "$STATE_DIR/endpoint"
    exit 0
  fi
  echo "emulator-start: attempt $attempt on port $PORT failed; log tail:" >&2
  tail -n 20 "$STATE_DIR/ministack.log" >&2 || true
  rm -f "$STATE_DIR/pid"
  [[ -n "${EMULATOR_PORT:-}" ]] && break
done
echo "emulator-start: ministack did not come up" >&2
exit 1
