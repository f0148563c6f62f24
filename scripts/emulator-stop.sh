#!/usr/bin/env bash
# Stop the ministack started by scripts/emulator-start.sh STATE_DIR (and the
# function bootstrap processes it spawned: they share its process group).
set -euo pipefail
STATE_DIR="${1:?usage: emulator-stop.sh STATE_DIR}"
PID_FILE="$STATE_DIR/pid"
[[ -f "$PID_FILE" ]] || { echo "emulator-stop: no pid file in $STATE_DIR" >&2; exit 0; }
PID="$(cat "$PID_FILE")"
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
  fi
  # bootstraps left in the group after ministack exited
  kill -KILL -- "-$PID" 2>/dev/null || true
fi
rm -f "$PID_FILE"
rm -rf "$STATE_DIR/tmp"
echo "emulator-stop: stopped ministack pid $PID" >&2
