#!/usr/bin/env bash
# End-to-end smoke check of the emulator path: start ministack, deploy template.yaml with
# the given zips, check the nine outputs and GET /health through the execute-api path,
# stop ministack. Usage:
#   tests-emulator/smoke.sh [ZIPS_DIR]     (default: build with cargo lambda, x86_64)
# ZIPS_DIR holds <bin>/bootstrap.zip or <bin>.zip for ingest, processor, projector, notifier.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${EMULATOR_STATE_DIR:-$ROOT/target/emulator-smoke}"
VENV="$("$ROOT/scripts/emulator-venv.sh")"
EP="$("$ROOT/scripts/emulator-start.sh" "$STATE")"
trap '"$ROOT/scripts/emulator-stop.sh" "$STATE"' EXIT

DEPLOY=(--stack smoke --endpoint-url "$EP" --arch x86_64
        --param StreamMaxRecordAgeSeconds=5 --param StreamMaxRetryAttempts=1)
if [[ $# -ge 1 ]]; then DEPLOY+=(--zips-dir "$1"); fi
"$ROOT/scripts/deploy.sh" "${DEPLOY[@]}" > "$STATE/outputs.json"

"$VENV/bin/python" - "$STATE/outputs.json" <<'PY'
import json, sys, urllib.request
out = json.load(open(sys.argv[1]))
want = ["ApiUrl", "EventsTableName", "EventsStreamArn", "StatusTableName", "WorkQueueUrl",
        "WorkDlqUrl", "StreamFailureQueueUrl", "TopicArn", "AlarmTopicArn"]
missing = [k for k in want if not out.get(k)]
assert not missing, f"missing outputs {missing}"
with urllib.request.urlopen(out["EmulatorApiUrl"] + "/health", timeout=30) as r:
    assert r.status == 200, r.status
print("smoke: 2 passed, 0 failed")
PY
