#!/usr/bin/env python3
"""Init time and peak RSS of the five Lambda bootstraps, run as Lambda runs them: against a
runtime-API stub (a small HTTP server speaking the Lambda runtime API) that serves events and
records the responses. Python standard library only.

    scripts/bench-lambdas.py init [--zips target/lambda] [--runs 20]
    scripts/bench-lambdas.py rss --endpoint URL [--zips target/lambda] [--records 1000]

`init`: for each function, `--runs` cold starts; the time from spawning the process to its first
`GET /runtime/invocation/next` (configuration read, AWS clients built, runtime started). No AWS
call happens before that, so no emulator is needed.

`rss`: peak RSS (VmHWM of /proc/<pid>/status) of each function after a 1,000-record batch, with
its AWS calls going to the emulator at URL (a running ministack: scripts/emulator-start.sh).
It deploys template.yaml there (scripts/deploy.sh --skip-build, so the tables, queue and topic
are the real ones), deletes the stack's event source mappings so that the emulator does not run
the deployed copies of the functions on the same data, and then runs, one after the other:
  ingest      1,000 `POST /orders` invocations in one process, the first of them the biggest
              valid order (100 line items), as API Gateway (payload 2.0) sends them;
  processor   one SQS event of those 1,000 orders;
  projector   one DynamoDB stream event of 1,000 records (the events the two steps above wrote);
  notifier    one stream event of the 1,000 `OrderCompleted` records (what its filter passes);
  reconciler  one scheduled run over the table.
Every response is checked (201/202, no batch item failures), so a figure is never the RSS of a
function that failed early.

Build the zips first: cargo lambda build --release --x86-64 --output-format zip -p ingest …
(see BENCHMARKS.md). Prints a table, and the raw figures as JSON with --json.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["ingest", "processor", "projector", "notifier", "reconciler"]
REGION = "us-east-1"
ACCOUNT = "000000000000"


# ---------------------------------------------------------------- runtime-API stub

class Stub:
    """The Lambda runtime API for one process: hands out `events` one per
    `GET /invocation/next`, records each response, and holds the next `next` once the events
    are used up (a real runtime freezes the process there)."""

    def __init__(self, events: list[dict]):
        self.events = queue.Queue()
        for e in events:
            self.events.put(e)
        self.first_next: float | None = None
        self.first_next_seen = threading.Event()
        self.results: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self._reply(404)
                if stub.first_next is None:
                    stub.first_next = time.perf_counter()
                    stub.first_next_seen.set()
                while not stub.stopping.is_set():
                    try:
                        event = stub.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                else:
                    self.close_connection = True
                    return self._reply(503)
                request_id = str(uuid.uuid4())
                self._reply(200, json.dumps(event).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = self.path.rsplit("/", 1)[-1]  # response | error (invocation or init)
                stub.results.put((kind, body))
                self._reply(202, b"{}", {"Content-Type": "application/json"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def unpack(zips: Path, name: str, into: Path) -> Path:
    with zipfile.ZipFile(zips / name / "bootstrap.zip") as z:
        z.extract("bootstrap", into / name)
    path = into / name / "bootstrap"
    path.chmod(0o755)
    return path


def function_env(runtime_api: str, name: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_LAMBDA_LOG_LEVEL": "WARN",
        "RUST_LOG": "warn",
    }
    env.update(extra)
    return env


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


# Values that satisfy each function's configuration; `init` makes no AWS call with them.
PLACEHOLDER_ENV = {
    "EVENTS_TABLE": "OrderEvents",
    "STATUS_TABLE": "OrderStatus",
    "WORK_QUEUE_URL": f"http://127.0.0.1:9/{ACCOUNT}/work",
    "TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:orders",
    "STREAM_FAILURE_QUEUE_URL": f"http://127.0.0.1:9/{ACCOUNT}/stream-failures",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


def measure_init(bootstrap: Path, name: str) -> float:
    stub = Stub([])
    try:
        start = time.perf_counter()
        proc = subprocess.Popen([str(bootstrap)], env=function_env(stub.address, name, PLACEHOLDER_ENV),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if not stub.first_next_seen.wait(timeout=10):
                err = proc.stderr.read1(4096) if proc.poll() is not None else b""
                raise RuntimeError(f"{name} never asked for an invocation: {err!r}")
            return (stub.first_next - start) * 1000
        finally:
            proc.kill()
            proc.wait()
    finally:
        stub.close()


def cmd_init(args) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        bootstraps = {n: unpack(args.zips, n, Path(tmp)) for n in FUNCTIONS}
        for name in FUNCTIONS:  # one warm-up start each: page cache
            measure_init(bootstraps[name], name)
        # Round robin, so a burst of load on the shared machine hits every function alike.
        samples = {n: [] for n in FUNCTIONS}
        for _ in range(args.runs):
            for name in FUNCTIONS:
                samples[name].append(measure_init(bootstraps[name], name))
        for name in FUNCTIONS:
            s = sorted(samples[name])
            figures[name] = {"runs": len(s), "median_ms": statistics.median(s), "min_ms": s[0],
                             "max_ms": s[-1], "samples_ms": [round(x, 2) for x in s]}
    print(f"{'function':<12} {'median':>9} {'min':>9} {'max':>9}  (ms to the first /invocation/next, {args.runs} runs)")
    for name, f in figures.items():
        print(f"{name:<12} {f['median_ms']:>9.2f} {f['min_ms']:>9.2f} {f['max_ms']:>9.2f}")
    return figures


# ---------------------------------------------------------------- emulator (stdlib only)

def aws_json(endpoint: str, service: str, target: str, body: dict, version: str = "1.0") -> dict:
    """One call of an AWS JSON-protocol API on the emulator (it does not check signatures)."""
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": f"application/x-amz-json-{version}",
        "X-Amz-Target": target,
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


def lambda_api(endpoint: str, method: str, path: str) -> dict:
    request = urllib.request.Request(endpoint.rstrip("/") + path, method=method, headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/lambda/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
        return json.loads(raw) if raw else {}


def deploy(endpoint: str, zips: Path, stack: str) -> dict:
    out = subprocess.run(
        [str(ROOT / "scripts/deploy.sh"), "--stack", stack, "--endpoint-url", endpoint,
         "--arch", "x86_64", "--zips-dir", str(zips)],
        check=True, stdout=subprocess.PIPE, cwd=ROOT)
    return json.loads(out.stdout)


def detach_event_sources(endpoint: str, outputs: dict) -> int:
    """Deletes the mappings of this stack's queue and stream: the deployed functions must not
    consume what the benchmarked processes are given."""
    ours = {outputs["EventsStreamArn"]}
    deleted = 0
    for mapping in lambda_api(endpoint, "GET", "/2015-03-31/event-source-mappings/").get("EventSourceMappings", []):
        source = mapping.get("EventSourceArn", "")
        if source in ours or source.endswith(":" + outputs["WorkQueueUrl"].rsplit("/", 1)[-1]):
            lambda_api(endpoint, "DELETE", f"/2015-03-31/event-source-mappings/{mapping['UUID']}")
            deleted += 1
    return deleted


def scan_all(endpoint: str, table: str) -> list[dict]:
    items, start = [], None
    while True:
        body = {"TableName": table, "ConsistentRead": True}
        if start:
            body["ExclusiveStartKey"] = start
        page = aws_json(endpoint, "dynamodb", "DynamoDB_20120810.Scan", body)
        items += page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


# ---------------------------------------------------------------- events

def http_api_event(body: dict) -> dict:
    now = int(time.time() * 1000)
    return {
        "version": "2.0", "routeKey": "POST /orders", "rawPath": "/orders", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.execute-api.localhost"},
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "bench", "domainName": "bench.execute-api.localhost",
            "domainPrefix": "bench", "requestId": str(uuid.uuid4()), "routeKey": "POST /orders",
            "stage": "$default", "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": now,
            "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench-lambdas"},
        },
        "body": json.dumps(body), "isBase64Encoded": False,
    }


def order_body(n: int, items: int) -> dict:
    return {"customerId": f"bench-customer-{n % 97}", "currency": "EUR",
            "items": [{"productId": f"sku-{n}-{i:03}-" + "x" * 48, "quantity": 1 + i % 7,
                       "unitPrice": 100 + i} for i in range(items)]}


def sqs_event(order_ids: list[str], queue_url: str) -> dict:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rsplit('/', 1)[-1]}"
    now = str(int(time.time() * 1000))
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": f"bench-{i}", "body": oid,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now, "SenderId": ACCOUNT,
                       "ApproximateFirstReceiveTimestamp": now},
        "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": arn, "awsRegion": REGION} for i, oid in enumerate(order_ids)]}


def stream_event(items: list[dict], stream_arn: str) -> dict:
    return {"Records": [{
        "eventID": f"{i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": REGION, "eventSourceARN": stream_arn,
        "dynamodb": {"ApproximateCreationDateTime": time.time(),
                     "Keys": {"orderId": item["orderId"], "version": item["version"]},
                     "NewImage": item, "SequenceNumber": f"{1_000_000 + i:021}", "SizeBytes": 500,
                     "StreamViewType": "NEW_IMAGE"}} for i, item in enumerate(items)]}


# ---------------------------------------------------------------- rss

def run_batch(bootstrap: Path, name: str, env: dict, events: list[dict]) -> tuple[int, list[bytes]]:
    """Runs `events` through one process; its peak RSS (KiB) and the responses."""
    stub = Stub(events)
    proc = subprocess.Popen([str(bootstrap)], env=function_env(stub.address, name, env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    responses = []
    try:
        for _ in events:
            try:
                kind, body = stub.results.get(timeout=600)
            except queue.Empty:
                raise RuntimeError(f"{name}: no response within 600 s")
            if kind != "response":
                raise RuntimeError(f"{name}: {kind}: {body[:500]!r}")
            responses.append(body)
        return peak_rss_kib(proc.pid), responses
    finally:
        proc.kill()
        _, err = proc.communicate()
        stub.close()
        if err.strip():
            sys.stderr.write(f"--- {name} stderr (last 2 KB)\n{err[-2000:].decode(errors='replace')}\n")


def no_failures(name: str, body: bytes):
    failures = json.loads(body).get("batchItemFailures") or []
    if failures:
        raise RuntimeError(f"{name}: {len(failures)} batch item failures, first {failures[0]}")


def cmd_rss(args) -> dict:
    n = args.records
    stack = f"bench-rss-{os.getpid()}"
    print(f"deploying {stack} to {args.endpoint} …", file=sys.stderr)
    outputs = deploy(args.endpoint, args.zips, stack)
    print(f"deleted {detach_event_sources(args.endpoint, outputs)} event source mappings", file=sys.stderr)
    env = {"AWS_ENDPOINT_URL": args.endpoint, "EVENTS_TABLE": outputs["EventsTableName"],
           "STATUS_TABLE": outputs["StatusTableName"], "WORK_QUEUE_URL": outputs["WorkQueueUrl"],
           "TOPIC_ARN": outputs["TopicArn"], "STREAM_FAILURE_QUEUE_URL": outputs["StreamFailureQueueUrl"]}
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        bootstraps = {f: unpack(args.zips, f, Path(tmp)) for f in FUNCTIONS}

        posts = [http_api_event(order_body(0, 100))] + [http_api_event(order_body(i, 3)) for i in range(1, n)]
        started = time.perf_counter()
        rss, responses = run_batch(bootstraps["ingest"], "ingest", env, posts)
        order_ids = []
        for r in responses:
            response = json.loads(r)
            if response.get("statusCode") not in (201, 202):
                raise RuntimeError(f"ingest answered {response}")
            order_ids.append(json.loads(response["body"])["orderId"])
        figures["ingest"] = {"peak_rss_kib": rss, "invocations": n,
                             "seconds": time.perf_counter() - started,
                             "batch": f"{n} POST /orders, the first with 100 line items "
                                      f"({len(posts[0]['body'])} bytes)"}

        started = time.perf_counter()
        rss, responses = run_batch(bootstraps["processor"], "processor", env,
                                   [sqs_event(order_ids, outputs["WorkQueueUrl"])])
        no_failures("processor", responses[0])
        figures["processor"] = {"peak_rss_kib": rss, "seconds": time.perf_counter() - started,
                                "batch": f"one SQS event of {n} records"}

        items = scan_all(args.endpoint, outputs["EventsTableName"])
        items.sort(key=lambda i: (i["orderId"]["S"], int(i["version"]["N"])))
        if len(items) < n:
            raise RuntimeError(f"only {len(items)} events in the log")
        started = time.perf_counter()
        rss, responses = run_batch(bootstraps["projector"], "projector", env,
                                   [stream_event(items[:n], outputs["EventsStreamArn"])])
        no_failures("projector", responses[0])
        figures["projector"] = {"peak_rss_kib": rss, "seconds": time.perf_counter() - started,
                                "batch": f"one stream event of {n} records (whole histories)"}

        completed = [i for i in items if i["eventType"]["S"] == "OrderCompleted"][:n]
        if len(completed) < n:
            raise RuntimeError(f"only {len(completed)} OrderCompleted events in the log")
        started = time.perf_counter()
        rss, responses = run_batch(bootstraps["notifier"], "notifier", env,
                                   [stream_event(completed, outputs["EventsStreamArn"])])
        no_failures("notifier", responses[0])
        figures["notifier"] = {"peak_rss_kib": rss, "seconds": time.perf_counter() - started,
                               "batch": f"one stream event of {n} OrderCompleted records"}

        started = time.perf_counter()
        scheduled = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                     "source": "aws.events", "account": ACCOUNT, "region": REGION, "resources": [],
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detail": {}}
        rss, _ = run_batch(bootstraps["reconciler"], "reconciler", env, [scheduled])
        figures["reconciler"] = {"peak_rss_kib": rss, "seconds": time.perf_counter() - started,
                                 "batch": f"one scheduled run over {n} views"}
    print(f"{'function':<12} {'peak RSS':>10}  batch")
    for name, f in figures.items():
        print(f"{name:<12} {f['peak_rss_kib'] / 1024:>8.1f} MiB  {f['batch']} ({f['seconds']:.1f} s)")
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="cold start to the first /invocation/next")
    init.add_argument("--runs", type=int, default=20)
    rss = sub.add_parser("rss", help="peak RSS on a 1,000-record batch (needs an emulator)")
    rss.add_argument("--endpoint", required=True, help="ministack URL (scripts/emulator-start.sh)")
    rss.add_argument("--records", type=int, default=1000)
    for p in (init, rss):
        p.add_argument("--zips", type=Path, default=ROOT / "target/lambda")
        p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    figures = cmd_init(args) if args.command == "init" else cmd_rss(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
