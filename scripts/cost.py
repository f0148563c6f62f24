#!/usr/bin/env python3
"""AWS requests and capacity units per order, counted on the emulator, and the cost per
1,000,000 orders at us-east-1 list prices. Python standard library only.

    scripts/cost.py measure --orders 300 [--concurrency 16] [--zips target/lambda] [--out target/cost-counts.json]
    scripts/cost.py price [--counts target/cost-counts.json] [--json]
    scripts/cost.py archive [--orders-per-day 1000000] [--buffer-seconds 300] [--events N ...]

`measure` starts its own ministack (as scripts/emulator-start.sh does) with a counting proxy in
front of it: the emulator hands the proxy's URL to the functions it runs as AWS_ENDPOINT_URL,
so every AWS call of every deployed function goes through the proxy, which records it (service,
operation, status, and for DynamoDB the items written and read). It deploys template.yaml
(scripts/deploy.sh --skip-build), zeroes the counts, posts N orders through the HTTP API from
--concurrency clients at once (so that the stream and queue batches fill as under load: one
client posting one order after the other leaves most batches with one order), waits until
every order is COMPLETED in the view and notified, and writes the counts with the functions'
invocations and durations (their REPORT lines) to --out.

DynamoDB capacity is computed from the recorded items by DynamoDB's published rules, not taken
from the emulator (which does not compute it): a write costs ceil(item size / 1 KB) WRU, twice
that in a transaction, and a failed conditional write costs the same as a successful one; each
global secondary index that the written item enters, leaves or changes costs one more write of
the projected item (two when its index key changes); a strongly consistent read costs
ceil(size / 4 KB) RRU, per item for GetItem/BatchGetItem, over the whole result for Query
(half that when eventually consistent). SNS and SQS bill a request per 64 KB chunk of its
payload: a PublishBatch of up to ten messages is one request when the ten together are under
64 KB; the script counts billed requests that way (`sns_billed`, `sqs_billed`).

`price` turns counts into dollars with the PRICES below, beside two references from the same
prices: the seed's design and this architecture's floor (see REFERENCES). Lambda's own polling
of the SQS queue (one ReceiveMessage and one DeleteMessageBatch per processor invocation) is not
seen by the proxy (the emulator polls internally) and is added per processor invocation;
reading a DynamoDB stream from a Lambda trigger is free.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# us-east-1 list prices (USD), as published by AWS on its pricing pages, read 2026-11-30.
# Free tiers are left out: the figure is the marginal cost of an order.
PRICES = {
    "date": "2026-11-30",
    "http_api_per_million": 1.00,          # API Gateway HTTP API, first 300M requests/month
    "rest_api_per_million": 3.50,          # API Gateway REST API, first 333M requests/month
    "lambda_requests_per_million": 0.20,
    "lambda_gb_second_x86": 0.0000166667,  # arm64: 0.0000133334
    "lambda_gb_second_arm": 0.0000133334,
    "dynamodb_wru_per_million": 0.625,     # on-demand (price of 2024-11-01)
    "dynamodb_rru_per_million": 0.125,
    "dynamodb_wcu_hour": 0.00065,          # provisioned
    "dynamodb_rcu_hour": 0.00013,
    "sqs_per_million": 0.40,               # standard queue, per request (64 KB chunk)
    "sns_publish_per_million": 0.50,       # per publish request (a PublishBatch of ≤ 10 is one)
}
PROVISIONED_UTILISATION = 0.70             # the template's target tracking value

# Per order, for the references. Writes are of items under 1 KB; an invocation is priced at
# the template's default MemorySize (128 MB) for 10 ms (GB-s are a small share either way).
REFERENCES = {
    "seed (one mutable row, REST API)": {
        "api": "rest", "api_requests": 1, "wru": 3, "rru": 0, "sqs": 1, "sns": 1,
        "lambda": {"ingest": {"invocations": 1, "gb_seconds": 0.125 * 0.010},
                   "worker": {"invocations": 1, "gb_seconds": 0.125 * 0.010}},
        "note": "one PutItem and two UpdateItems on one row, one SendMessage, one Publish, "
                "REST API, an ingest and a worker invocation",
    },
    "floor of this architecture": {
        "api": "http", "api_requests": 1, "wru": 5, "rru": 0, "sqs": 1, "sns": 1,
        "lambda": {"ingest": {"invocations": 1, "gb_seconds": 0.125 * 0.010}},
        "note": "three event writes, one view write, one index entry, one SendMessage, one "
                "Publish, one HTTP API request, one ingest invocation (batched consumers free)",
    },
}


# An ESTIMATE, not a measurement: billed milliseconds per invocation on AWS, from the chain of
# AWS calls each function waits on in turn, at ~5 ms per in-region DynamoDB call and ~10 ms per
# SQS/SNS call (typical published figures: single-digit ms for DynamoDB), plus ~2 ms of its own
# work. The emulator's REPORT durations (the measured line) are an upper bound instead: every
# call there is a round trip to a Python process on a busy machine.
ESTIMATED_MS = {
    "ingest": 2 + 5 + 10,          # conditional PutItem (v1), then SendMessage
    "processor": 2 + 5 * 5,        # per order, concurrently: Query, then twice GetItem + PutItem
    "projector": 2 + 5 + 5,        # BatchGetItem of the batch's views, then the PutItems at once
    "notifier": 2 + 5 + 10,        # the histories (Query, at once), then PublishBatch calls
    "reconciler": 2 + 128 * 5,     # a Query per pending shard (not invoked per order)
}


# ---------------------------------------------------------------- DynamoDB size rules

def number_size(n: str) -> int:
    digits = n.lstrip("-").replace(".", "").lstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(v: dict) -> int:
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return number_size(x)
    if kind == "B":
        return len(x) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in x.items())
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in x)
    if kind in ("SS", "NS", "BS"):
        return sum(len(e.encode()) if kind == "SS" else number_size(e) for e in x)
    raise ValueError(f"attribute type {kind}")


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def write_units(item: dict | None) -> int:
    return max(1, math.ceil(item_size(item or {}) / 1024))


def read_units(size: int) -> int:
    return max(1, math.ceil(size / 4096))


# ---------------------------------------------------------------- the counting proxy

class Ledger:
    """What the proxy saw since the last reset."""

    def __init__(self, indexes: dict[str, list[dict]] | None = None):
        self.lock = threading.Lock()
        self.indexes = indexes or {}   # table -> [{name, keys, projection, include}]
        self.views: dict[tuple[str, str], dict] = {}  # (table, key) -> item, for index writes
        self.reset()

    def reset(self):
        with self.lock:
            self.requests: Counter = Counter()   # "service:Operation status"
            self.wru: Counter = Counter()        # "table" / "table/index" -> units
            self.rru: Counter = Counter()
            self.sns_messages = 0
            self.billed: Counter = Counter()     # "sns" / "sqs" -> requests as billed (64 KB chunks)

    def index_writes(self, table: str, old: dict | None, new: dict | None):
        for index in self.indexes.get(table, []):
            keys = index["keys"]

            def projected(item):
                if not item or not all(k in item for k in keys):
                    return None
                if index["projection"] == "ALL":
                    return item
                kept = set(keys) | set(index["base_keys"]) | set(index["include"])
                return {k: v for k, v in item.items() if k in kept}

            before, after = projected(old), projected(new)
            name = f"{table}/{index['name']}"
            if before is None and after is None:
                continue
            if before is None or after is None:
                self.wru[name] += write_units(before or after)
            elif any(before[k] != after[k] for k in keys):
                self.wru[name] += write_units(before) + write_units(after)
            elif before != after:
                self.wru[name] += write_units(after)

    def put(self, table: str, item: dict, ok: bool, transaction: bool):
        units = write_units(item) * (2 if transaction else 1)
        self.wru[table] += units
        if ok and self.indexes.get(table):
            key = json.dumps({k: item[k] for k in self.base_keys(table)}, sort_keys=True)
            old = self.views.get((table, key))
            self.views[(table, key)] = item
            self.index_writes(table, old, item)

    def base_keys(self, table: str) -> list[str]:
        return self.indexes[table][0]["base_keys"]

    def record(self, service: str, operation: str, status: int, request: dict, response: dict):
        with self.lock:
            self.requests[f"{service}:{operation} {status}"] += 1
            ok = status == 200
            if service == "dynamodb":
                self.dynamodb(operation, ok, request, response)
            elif service == "sns" and ok:
                self.sns_messages += len(request.get("entries", [])) or 1
            if service in ("sns", "sqs") and ok:
                chunks = max(1, math.ceil(request.get("payload_bytes", 0) / 65536))
                self.billed[service] += chunks

    def dynamodb(self, op: str, ok: bool, req: dict, resp: dict):
        if op == "PutItem":
            self.put(req["TableName"], req["Item"], ok, False)
        elif op == "TransactWriteItems":
            for action in req.get("TransactItems", []):
                if "Put" in action:
                    self.put(action["Put"]["TableName"], action["Put"]["Item"], ok, True)
                elif "ConditionCheck" in action:
                    self.rru[action["ConditionCheck"]["TableName"]] += 2
        elif op == "BatchWriteItem":
            for table, writes in req.get("RequestItems", {}).items():
                for w in writes:
                    if "PutRequest" in w:
                        self.put(table, w["PutRequest"]["Item"], ok, False)
        elif op == "GetItem":
            item = resp.get("Item")
            units = read_units(item_size(item) if item else 0)
            self.rru[req["TableName"]] += units if req.get("ConsistentRead") else units / 2
        elif op == "BatchGetItem":
            for table, items in resp.get("Responses", {}).items():
                consistent = req["RequestItems"].get(table, {}).get("ConsistentRead")
                n = len(req["RequestItems"].get(table, {}).get("Keys", []))
                units = sum(read_units(item_size(i)) for i in items) + (n - len(items))
                self.rru[table] += units if consistent else units / 2
        elif op in ("Query", "Scan"):
            size = sum(item_size(i) for i in resp.get("Items", []))
            name = req["TableName"] + (f"/{req['IndexName']}" if req.get("IndexName") else "")
            units = read_units(size)
            self.rru[name] += units if req.get("ConsistentRead") else units / 2

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "wru": dict(self.wru), "rru": dict(self.rru),
                    "sns_messages": self.sns_messages, "billed": dict(self.billed)}


def payload_bytes(fields: list[tuple[str, str]]) -> int:
    """The billed payload of an SNS/SQS request: message bodies and message attribute names,
    types and values (query protocol field names; the JSON protocol is flattened to these)."""
    return sum(len(v.encode()) for k, v in fields
               if k.endswith(("Message", "MessageBody", ".Name", ".DataType", ".StringValue")))


def flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON-protocol request as (dotted path, scalar) pairs, e.g. `Entries.0.MessageBody`."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in flatten(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in flatten(v, f"{prefix}.{i}")]
    return [(prefix, str(value))]


def service_and_operation(headers, path: str, body: bytes) -> tuple[str, str, dict]:
    target = headers.get("X-Amz-Target")
    auth = headers.get("Authorization", "")
    service = auth.split("Credential=", 1)[-1].split("/")[3] if "Credential=" in auth else "?"
    if target:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        operation = target.rsplit(".", 1)[-1]
        if service in ("sns", "sqs"):
            # MessageAttributes are maps keyed by name: count the names as the query form does.
            fields = flatten(request)
            names = [(k, k.rsplit(".", 2)[-2]) for k, _ in fields if k.endswith(".DataType")]
            request = {"payload_bytes": payload_bytes(fields) + sum(len(n.encode()) for _, n in names),
                       "entries": request.get("PublishBatchRequestEntries", []) if operation == "PublishBatch" else []}
        return service, operation, request
    fields = urllib.parse.parse_qsl(body.decode(errors="replace")) if body else []
    form = dict(fields)
    if "Action" in form:
        entries = [k for k in form if k.startswith("PublishBatchRequestEntries.member.") and k.endswith(".Id")]
        return service, form["Action"], {"entries": entries, "payload_bytes": payload_bytes(fields)}
    return service, f"{path.split('?')[0]}", {}


def start_proxy(upstream_port: int, ledger: Ledger) -> http.server.ThreadingHTTPServer:
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            service, operation, request = service_and_operation(self.headers, self.path, body)
            if service != "?":
                try:
                    parsed = json.loads(data) if service == "dynamodb" and data else {}
                except ValueError:
                    parsed = {}
                ledger.record(service, operation, response.status, request, parsed)
            self.send_response(response.status)
            for k, v in response.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- measure

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_ministack(state: Path, port: int, functions_endpoint: str) -> subprocess.Popen:
    """As scripts/emulator-start.sh, except that the functions get the proxy as their endpoint."""
    venv = subprocess.run([str(ROOT / "scripts/emulator-venv.sh")], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update(BIND_HOST="127.0.0.1", GATEWAY_PORT=str(port), MINISTACK_HOST="localhost",
               AWS_ENDPOINT_URL=functions_endpoint, AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
               LAMBDA_EXECUTOR="local", PERSIST_STATE="0", S3_PERSIST="0", IOT_MTLS_ENABLED="0",
               SFTP_ENABLED="0", LOG_LEVEL="WARNING", TMPDIR=str(state / "tmp"))
    log = open(state / "ministack.log", "wb")
    proc = subprocess.Popen([f"{venv}/bin/ministack"], env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ministack/health", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"ministack exited; see {state / 'ministack.log'}")
            time.sleep(0.1)
    raise RuntimeError("ministack did not come up in 30 s")


def aws_json(endpoint: str, service: str, target: str, body: dict, version: str = "1.0") -> dict:
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": f"application/x-amz-json-{version}", "X-Amz-Target": target,
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


def table_indexes(endpoint: str, table: str) -> list[dict]:
    desc = aws_json(endpoint, "dynamodb", "DynamoDB_20120810.DescribeTable", {"TableName": table})["Table"]
    base = [k["AttributeName"] for k in desc["KeySchema"]]
    return [{"name": g["IndexName"], "keys": [k["AttributeName"] for k in g["KeySchema"]], "base_keys": base,
             "projection": g["Projection"]["ProjectionType"],
             "include": g["Projection"].get("NonKeyAttributes", [])}
            for g in desc.get("GlobalSecondaryIndexes", [])]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def reports(endpoint: str, since_ms: int) -> dict:
    """Invocations and billed milliseconds per function, from the REPORT lines of its logs."""
    out = {}
    groups = aws_json(endpoint, "logs", "Logs_20140328.DescribeLogGroups", {}, "1.1").get("logGroups", [])
    for group in groups:
        name, token, count, millis, memory = group["logGroupName"], None, 0, 0.0, 0
        while True:
            body = {"logGroupName": name, "startTime": since_ms, "filterPattern": "REPORT"}
            if token:
                body["nextToken"] = token
            page = aws_json(endpoint, "logs", "Logs_20140328.FilterLogEvents", body, "1.1")
            for e in page.get("events", []):
                msg = e["message"]
                if msg.startswith("REPORT RequestId"):
                    fields = dict(p.split(": ", 1) for p in msg.split("\t")[1:] if ": " in p)
                    count += 1
                    millis += float(fields.get("Billed Duration", "0 ms").split()[0])
                    memory = int(fields.get("Memory Size", "0 MB").split()[0])
            token = page.get("nextToken")
            if not token:
                break
        if count:
            out[name] = {"invocations": count, "billed_ms": millis, "memory_mb": memory}
    return out


def cmd_measure(args) -> int:
    state = ROOT / "target" / "cost-emulator"
    state.mkdir(parents=True, exist_ok=True)
    ledger = Ledger()
    upstream = free_port()
    proxy = start_proxy(upstream, ledger)
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    ministack = start_ministack(state, upstream, proxy_url)
    endpoint = f"http://127.0.0.1:{upstream}"
    try:
        stack = f"cost-{os.getpid()}"
        print(f"deploying {stack} (ministack {endpoint}, proxy {proxy_url}) …", file=sys.stderr)
        outputs = json.loads(subprocess.run(
            [str(ROOT / "scripts/deploy.sh"), "--stack", stack, "--endpoint-url", endpoint, "--arch",
             "x86_64", "--zips-dir", str(args.zips)], check=True, stdout=subprocess.PIPE, cwd=ROOT).stdout)
        status_table = outputs["StatusTableName"]
        ledger.indexes = {status_table: table_indexes(endpoint, status_table)}
        api = outputs["EmulatorApiUrl"]
        time.sleep(2)
        ledger.reset()
        since = int(time.time() * 1000) - 1000
        started = time.time()

        def order(n: int) -> str:
            return post(f"{api}/orders", {"customerId": f"customer-{n % 50}", "currency": "EUR",
                                          "items": [{"productId": "sku-1", "quantity": 2, "unitPrice": 1999},
                                                    {"productId": "sku-2", "quantity": 1, "unitPrice": 4500}]})["orderId"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            ids = list(pool.map(order, range(args.orders)))
        print(f"posted {len(ids)} orders from {args.concurrency} clients in {time.time() - started:.1f} s; "
              "waiting for COMPLETED …", file=sys.stderr)
        deadline = time.time() + args.timeout
        while True:
            snap = ledger.snapshot()
            published = snap["sns_messages"]
            done = sum(1 for i in ids if aws_json(endpoint, "dynamodb", "DynamoDB_20120810.GetItem", {
                "TableName": status_table, "Key": {"orderId": {"S": i}}}).get("Item", {})
                .get("status", {}).get("S") == "COMPLETED")
            if done == len(ids) and published >= len(ids):
                break
            if time.time() > deadline:
                raise RuntimeError(f"after {args.timeout} s: {done} completed, {published} published")
            time.sleep(3)
        time.sleep(5)  # let the last batches' writes land in the ledger
        result = {"orders": len(ids), "concurrency": args.concurrency, "api_requests": len(ids), **ledger.snapshot(),
                  "lambda": reports(endpoint, since), "measured": time.strftime("%Y-%m-%d"),
                  "stack": stack}
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    finally:
        os.killpg(ministack.pid, signal.SIGTERM)
        ministack.wait(timeout=30)
        proxy.shutdown()
    return 0


# ---------------------------------------------------------------- price

LAMBDA_NAMES = ("ingest", "processor", "projector", "notifier", "reconciler")


def per_order(counts: dict) -> dict:
    """The measured counts as quantities per order."""
    n = counts["orders"]
    lam, memory = {}, 128
    for group, f in counts["lambda"].items():
        memory = f["memory_mb"]
        short = next((x for x in LAMBDA_NAMES if x in group.lower()), group)
        lam[short] = {"invocations": f["invocations"] / n,
                      "gb_seconds": f["billed_ms"] / 1000 * f["memory_mb"] / 1024 / n}
    requests = counts["requests"]
    billed = counts.get("billed")
    if billed is not None:
        # Requests as billed: one per 64 KB chunk of each successful request's payload.
        sqs, sns = billed.get("sqs", 0) / n, billed.get("sns", 0) / n
    else:  # counts from before the script counted chunks: one per request
        sqs = sum(v for k, v in requests.items() if k.startswith("sqs:")) / n
        sns = sum(v for k, v in requests.items() if k.startswith("sns:Publish")) / n
    # Lambda's SQS poller: a ReceiveMessage and a DeleteMessageBatch per processor batch.
    sqs += 2 * lam.get("processor", {}).get("invocations", 0)
    return {"api": "http", "api_requests": counts["api_requests"] / n,
            "wru": sum(counts["wru"].values()) / n, "rru": sum(counts["rru"].values()) / n,
            "sqs": sqs, "sns": sns, "lambda": lam, "memory_mb": memory}


def with_estimated_durations(q: dict) -> dict:
    """`q` with each function's GB-s from ESTIMATED_MS instead of the emulator's durations."""
    memory_gb = q.get("memory_mb", 128) / 1024
    lam = {name: {**f, "gb_seconds": f["invocations"] * ESTIMATED_MS.get(name, 0) / 1000 * memory_gb}
           for name, f in q["lambda"].items()}
    return {**q, "lambda": lam}


def with_stream_window(counts: dict) -> dict | None:
    """An ESTIMATE, not a measurement: the counts as they would be with a stream batching window
    (template parameter StreamBatchingWindowSeconds) long enough for each order's three events to
    reach the projector in one batch. The projector then reads and writes an order's view once
    (1 RRU, 1 WRU: a view is under 1 KB), already COMPLETED, so it never enters the `pending`
    index; everything else as measured (Lambda too: fewer, longer projector invocations are
    left out). ministack ignores batching windows on stream mappings, so this cannot be
    measured there; on AWS the orders a window's end splits (about an order's life / the window)
    still pay the extra writes. None for counts without a `pending` index."""
    n = counts["orders"]
    pending = next((k for k in counts["wru"] if k.endswith("/pending")), None)
    if pending is None:
        return None
    status = pending.rsplit("/", 1)[0]
    return per_order({**counts, "wru": {**counts["wru"], status: n, pending: 0},
                      "rru": {**counts["rru"], status: n}})


def dollars_per_million(q: dict, provisioned: bool = False) -> dict:
    p = PRICES
    api = q["api_requests"] * (p["http_api_per_million"] if q["api"] == "http" else p["rest_api_per_million"])
    lam_req = sum(f["invocations"] for f in q["lambda"].values()) * p["lambda_requests_per_million"]
    lam_gbs = sum(f["gb_seconds"] for f in q["lambda"].values()) * p["lambda_gb_second_x86"] * 1e6
    if provisioned:
        # A capacity unit-hour serves 3,600 unit-seconds; at 70% utilisation, 2,520 of them.
        wru = q["wru"] * p["dynamodb_wcu_hour"] / (3600 * PROVISIONED_UTILISATION) * 1e6
        rru = q["rru"] * p["dynamodb_rcu_hour"] / (3600 * PROVISIONED_UTILISATION) * 1e6
    else:
        wru = q["wru"] * p["dynamodb_wru_per_million"]
        rru = q["rru"] * p["dynamodb_rru_per_million"]
    sqs = q["sqs"] * p["sqs_per_million"]
    sns = q["sns"] * p["sns_publish_per_million"]
    lines = {"API Gateway": api, "Lambda requests": lam_req, "Lambda GB-s": lam_gbs,
             "DynamoDB writes": wru, "DynamoDB reads": rru, "SQS": sqs, "SNS": sns}
    lines["total"] = sum(lines.values())
    return lines


def cmd_price(args) -> int:
    rows = {}
    if args.counts.exists():
        counts = json.loads(args.counts.read_text())
        q = per_order(counts)
        rows["this code, on demand"] = (q, dollars_per_million(q))
        rows["this code, provisioned at 70%"] = (q, dollars_per_million(q, provisioned=True))
        e = with_estimated_durations(q)
        rows["  same, GB-s ESTIMATED, on demand"] = (e, dollars_per_million(e))
        rows["  same, GB-s ESTIMATED, prov. 70%"] = (e, dollars_per_million(e, provisioned=True))
        w = with_stream_window(counts)
        if w is not None:
            rows["  stream window ESTIMATED, on demand"] = (w, dollars_per_million(w))
            rows["  stream window ESTIMATED, prov. 70%"] = (w, dollars_per_million(w, provisioned=True))
    for name, ref in REFERENCES.items():
        rows[name] = (ref, dollars_per_million(ref))
    rows["floor, provisioned at 70%"] = (REFERENCES["floor of this architecture"],
                                         dollars_per_million(REFERENCES["floor of this architecture"], True))
    print(f"USD per 1,000,000 orders, us-east-1 list prices of {PRICES['date']}")
    columns = list(next(iter(rows.values()))[1])
    print(f"{'':<38}" + "".join(f"{c:>17}" for c in columns))
    for name, (_, d) in rows.items():
        print(f"{name:<38}" + "".join(f"{d[c]:>17.3f}" for c in columns))
    if args.counts.exists():
        print(f"\nper order, measured on {counts['orders']} orders from {counts.get('concurrency', 1)} "
              f"clients ({counts.get('measured')}):")
        print(f"  WRU {q['wru']:.2f}  RRU {q['rru']:.2f}  SQS {q['sqs']:.2f}  SNS {q['sns']:.3f}  "
              f"API {q['api_requests']:.0f}")
        for name, f in sorted(q["lambda"].items()):
            print(f"  {name:<11} {f['invocations']:.3f} invocations, {f['gb_seconds'] * 1e3:.3f} GB-ms")
        print("  requests by operation (total):")
        for k, v in sorted(counts["requests"].items()):
            print(f"    {k:<40} {v:>7}  ({v / counts['orders']:.2f}/order)")
        print("  WRU by table/index:", {k: round(v / counts['orders'], 2) for k, v in counts["wru"].items()})
        print("  RRU by table/index:", {k: round(v / counts['orders'], 2) for k, v in counts["rru"].items()})
        floor = rows["floor of this architecture"][1]["total"]
        print(f"\nthis code / floor (on demand): {rows['this code, on demand'][1]['total'] / floor:.2f}x")
    if args.json:
        print(json.dumps({k: d for k, (_, d) in rows.items()}, indent=2))
    return 0


# ---------------------------------------------------------------- archive

# The archive (template.yaml, Archive=true): OrderEvents' Kinesis streaming destination ->
# on-demand Kinesis stream -> Firehose (the archiver as Lambda processor, dynamic partitioning by
# day, Parquet conversion) -> S3 -> Athena. Its billing RULES and PRICES, as found with the
# search tool on 2026-12-07 (us-east-1 where a page names a region). None = the search did not
# find the figure on an AWS page: the script prints the billed quantity and no dollars for it.
ARCHIVE_PRICES = {
    "date": "2026-12-07",
    # https://aws.amazon.com/kinesis/data-streams/pricing/ (on-demand): per GB written, each
    # record rounded up to the nearest 1 KB; per GB read; a per-hour charge per stream.
    "kinesis_on_demand_ingest_per_gb": None,
    "kinesis_on_demand_retrieval_per_gb": None,
    "kinesis_on_demand_stream_hour": None,
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html: "subject to both
    # Kinesis Data Streams pricing for the data stream and DynamoDB pricing for the source table"
    # (the change data capture unit); the unit's rule and price were not found.
    "dynamodb_cdc_unit_per_million": None,
    # https://aws.amazon.com/de/kinesis/data-firehose/pricing/ (AWS's page, German edition):
    # ingestion per GB in 5 KB increments per record (a 3 KB record is billed as 5 KB, a 12 KB
    # one as 15 KB); format conversion per GB ingested, in 5 KB increments; dynamic partitioning
    # per GB delivered to S3, per object, optionally per JQ processing hour.
    "firehose_ingest_per_gb": None,
    "firehose_format_conversion_per_gb": None,
    "firehose_dynamic_partitioning_per_gb": None,
    "firehose_dynamic_partitioning_per_1000_objects": None,
    # https://aws.amazon.com/s3/pricing/ : per GB-month by storage class, per request; no figure
    # found on an AWS page.
    "s3_standard_gb_month": None,
    "s3_standard_ia_gb_month": None,
    "s3_put_per_1000": None,
    # Athena: no AWS page with the figure was found.
    "athena_per_tb": None,
}

# Figures found only on third-party pages (not AWS's): printed apart, marked UNVERIFIED.
UNVERIFIED_PRICES = {
    "athena_per_tb": (5.00, "https://athena.guide/articles/athena-basics-pricing-model/ and "
                            "https://rcpedia.stanford.edu/services/athena.html: $5 per TB, rounded "
                            "up to the MB, 10 MB minimum per query"),
    "s3_standard_gb_month": (0.023, "https://cloudburn.io/blog/amazon-s3-pricing (us-east-1, "
                                    "March 2026)"),
}

ATHENA_MINIMUM_BYTES = 10 * 1024 * 1024
KB, MB, GB, TB = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4

# An order's events, from the golden files (the wire form the event table stores as an item).
ARCHIVE_ORDER = ("order_received_v2.json", "order_processing_started_v1.json",
                 "order_completed_v1.json")
# A generated correlation id (CorrelationId::generate: a hyphenated UUID v7) instead of the
# goldens' "corr-1", so the sizes are those of an order posted without X-Correlation-Id.
GENERATED_CORRELATION_ID = "01938a3c-0000-7000-8000-0000000000c1"

# Parquet: an ASSUMPTION, not a measurement. Plain-encoded bytes per value (4-byte length + UTF-8
# for strings, 8 for bigint, 12 for a timestamp written as INT96), then a compression ratio per
# column: the random UUID columns 1:1 (hex text, nothing to share), every other column 4:1
# (dictionary + run-length encoding + Snappy over a few distinct values). Null columns ~0.
UUID_COLUMNS = ("orderId", "eventId", "correlationId")
OTHER_COLUMNS_RATIO = 4.0
# The columns `docs/queries/orders_by_day_and_status.sql` (= `orders stats --by day`) reads
# after Trino prunes the rest: the dedup key, the order, its version, type and time.
STATS_QUERY_COLUMNS = ("eventId", "orderId", "version", "eventType", "occurredAt")

# An ESTIMATE: the archiver's billed milliseconds per batch (decoding base64 JSON and writing
# rows, no AWS call), at the template's default 128 MB.
ARCHIVER_ESTIMATED_MS = 100
# Firehose invokes the processor per buffered batch: 3 MB or 60 s (template.yaml's note).
PROCESSOR_BUFFER_BYTES, PROCESSOR_BUFFER_SECONDS = 3 * MB, 60


def attribute_value(v):
    """A JSON value as DynamoDB attribute-value JSON, as serde_dynamo writes the wire form."""
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, (int, float)):
        return {"N": str(v)}
    if isinstance(v, str):
        return {"S": v}
    if v is None:
        return {"NULL": True}
    if isinstance(v, list):
        return {"L": [attribute_value(e) for e in v]}
    return {"M": {k: attribute_value(e) for k, e in v.items()}}


def change_record(wire: dict, item: dict) -> bytes:
    """The Kinesis record DynamoDB's streaming destination writes for the INSERT of `item`: the
    layout of archiver/src/tests.rs (kds.html), compact JSON, a CloudFormation-named table."""
    record = {
        "awsRegion": "us-east-1",
        "eventID": "7f1ee7b6-0000-4000-8000-000000000001",
        "eventName": "INSERT",
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": "orders-OrderEvents-1A2B3C4D5E6F7",
        "dynamodb": {
            "ApproximateCreationDateTime": 1764000000001,
            "ApproximateCreationDateTimePrecision": "MILLISECOND",
            "Keys": {"orderId": item["orderId"], "version": item["version"]},
            "NewImage": item,
            "SizeBytes": item_size(item),
        },
        "eventSource": "aws:dynamodb",
    }
    return json.dumps(record, separators=(",", ":")).encode()


def export_row(wire: dict) -> dict:
    """order-history's export row (export_row.rs): the envelope, then the payload's fields."""
    payload = wire.get("payload", {})
    row = {k: wire[k] for k in ("orderId", "version", "eventId", "eventType", "schemaVersion",
                                "occurredAt", "correlationId")}
    for k in ("customerId", "currency", "items", "total", "reason"):
        row[k] = payload.get(k)
    return row


def parquet_column_bytes(row: dict) -> dict:
    """Estimated compressed Parquet bytes of each column of `row` (see the ASSUMPTION above)."""
    def plain(v):
        if v is None:
            return 0
        if isinstance(v, str):
            return 4 + len(v.encode())
        if isinstance(v, int):
            return 8
        if isinstance(v, list):
            return sum(plain(x) for e in v for x in e.values())
        raise ValueError(v)
    out = {}
    for k, v in row.items():
        size = 12 if k == "occurredAt" else plain(v)
        out[k] = size if k in UUID_COLUMNS else size / OTHER_COLUMNS_RATIO
    return out


def archive_sizes() -> dict:
    golden = ROOT / "events-schema/tests/golden"
    events = []
    for name in ARCHIVE_ORDER:
        wire = json.loads((golden / name).read_text())
        wire["correlationId"] = GENERATED_CORRELATION_ID
        item = {k: attribute_value(v) for k, v in wire.items()}
        record = change_record(wire, item)
        row = export_row(wire)
        columns = parquet_column_bytes(row)
        events.append({"name": name, "item": item_size(item), "record": len(record),
                       "row_json": len(json.dumps(row, separators=(",", ":"))) + 1,
                       "parquet": sum(columns.values()),
                       "parquet_stats": sum(columns[c] for c in STATS_QUERY_COLUMNS)})
    return {"events": events}


def fmt_usd(quantity: float, price, per: float = 1.0) -> str:
    return "price not found" if price is None else f"{quantity / per * price:.4f}"


def cmd_archive(args) -> int:
    s = archive_sizes()
    ev = s["events"]
    n = 1e6  # orders
    per_order = lambda key: sum(e[key] for e in ev)
    kinesis_in = sum(math.ceil(e["record"] / KB) * KB for e in ev) * n
    kinesis_out = per_order("record") * n
    firehose_in = sum(math.ceil(e["record"] / (5 * KB)) * 5 * KB for e in ev) * n
    rows_json = per_order("row_json") * n
    parquet = per_order("parquet") * n
    cdc_units = sum(max(1, math.ceil(e["item"] / KB)) for e in ev) * n
    days = n / args.orders_per_day
    flushes_per_day = 86400 / args.buffer_seconds
    objects = max(flushes_per_day * days, rows_json / (128 * MB))
    stream_hours = 24 * days
    batches = max(86400 / PROCESSOR_BUFFER_SECONDS * days, kinesis_out / PROCESSOR_BUFFER_BYTES)
    gb_s = batches * ARCHIVER_ESTIMATED_MS / 1000 * 128 / 1024
    p, a = PRICES, ARCHIVE_PRICES

    print(f"The archive: sizes per event (goldens {', '.join(ARCHIVE_ORDER)}; correlationId generated)")
    print(f"  {'event':<36}{'item B':>8}{'change record B':>17}{'row JSON B':>12}{'Parquet B (est.)':>18}")
    for e in ev:
        print(f"  {e['name']:<36}{e['item']:>8}{e['record']:>17}{e['row_json']:>12}{e['parquet']:>18.1f}")
    print(f"\nper 1,000,000 orders (3,000,000 events) at {args.orders_per_day:,.0f} orders/day "
          f"({days:g} days), buffer {args.buffer_seconds} s; prices of {a['date']}, us-east-1")
    lines = [
        ("DynamoDB -> Kinesis: change data capture units", f"{cdc_units / 1e6:.2f} M units",
         fmt_usd(cdc_units, a["dynamodb_cdc_unit_per_million"], 1e6)),
        ("Kinesis on demand: data in (records rounded up to 1 KB)", f"{kinesis_in / GB:.3f} GB",
         fmt_usd(kinesis_in, a["kinesis_on_demand_ingest_per_gb"], GB)),
        ("Kinesis on demand: data out (Firehose reading)", f"{kinesis_out / GB:.3f} GB",
         fmt_usd(kinesis_out, a["kinesis_on_demand_retrieval_per_gb"], GB)),
        ("Kinesis on demand: stream-hours", f"{stream_hours:.0f} h",
         fmt_usd(stream_hours, a["kinesis_on_demand_stream_hour"])),
        ("Firehose ingestion (records rounded up to 5 KB)", f"{firehose_in / GB:.3f} GB",
         fmt_usd(firehose_in, a["firehose_ingest_per_gb"], GB)),
        ("Firehose format conversion (same 5 KB rule)", f"{firehose_in / GB:.3f} GB",
         fmt_usd(firehose_in, a["firehose_format_conversion_per_gb"], GB)),
        ("Firehose dynamic partitioning: GB (<= the JSON rows)", f"{rows_json / GB:.3f} GB",
         fmt_usd(rows_json, a["firehose_dynamic_partitioning_per_gb"], GB)),
        ("Firehose dynamic partitioning: objects", f"{objects:,.0f}",
         fmt_usd(objects, a["firehose_dynamic_partitioning_per_1000_objects"], 1000)),
        ("archiver Lambda: invocations", f"{batches:,.0f}",
         f"{batches / 1e6 * p['lambda_requests_per_million']:.4f}"),
        (f"archiver Lambda: GB-s (ESTIMATED {ARCHIVER_ESTIMATED_MS} ms, 128 MB)", f"{gb_s:.1f} GB-s",
         f"{gb_s * p['lambda_gb_second_x86']:.4f}"),
        ("S3 PUTs (one per object)", f"{objects:,.0f}",
         fmt_usd(objects, a["s3_put_per_1000"], 1000)),
        ("S3 Standard, per month stored", f"{parquet / GB:.3f} GB-month",
         fmt_usd(parquet, a["s3_standard_gb_month"], GB)),
        ("S3 Standard-IA, per month stored (after transition)", f"{parquet / GB:.3f} GB-month",
         fmt_usd(parquet, a["s3_standard_ia_gb_month"], GB)),
    ]
    print(f"  {'':<58}{'billed quantity':>20}{'USD':>18}")
    for name, q, usd in lines:
        print(f"  {name:<58}{q:>20}{usd:>18}")

    print("\nA question's cost, `orders stats` (AWS: parallel Scan + a Query per order) against "
          "Athena (`docs/queries/orders_by_day_and_status.sql`)")
    item = sum(e["item"] for e in ev) / len(ev)
    stats_bytes = sum(e["parquet_stats"] for e in ev) / len(ev)
    print(f"  mean item {item:.0f} B; Parquet bytes of the columns the query reads "
          f"({', '.join(STATS_QUERY_COLUMNS)}): {stats_bytes:.1f} B/event (est.)")
    print(f"  {'events':>15}{'Scan RRU':>14}{'Scan USD':>10}{'+Query RRU':>14}{'stats USD':>11}"
          f"{'Athena MB':>12}{'Athena USD':>18}{'UNVERIFIED $5/TB':>18}")
    for events in args.events:
        # Scan: eventually consistent (list_orders sets no ConsistentRead): 0.5 RRU per 4 KB of
        # the items read (a projection does not shrink what is read); Query: strongly
        # consistent, an order's three items under 4 KB: 1 RRU per order.
        scan = math.ceil(events * item / (4 * KB)) * 0.5
        query = events / 3
        scan_usd = scan / 1e6 * p["dynamodb_rru_per_million"]
        stats_usd = (scan + query) / 1e6 * p["dynamodb_rru_per_million"]
        scanned = events * stats_bytes
        billed_mb = max(ATHENA_MINIMUM_BYTES, math.ceil(scanned / MB) * MB) / MB
        unverified = billed_mb * MB / TB * UNVERIFIED_PRICES["athena_per_tb"][0]
        print(f"  {events:>15,}{scan:>14,.0f}{scan_usd:>10.4f}{scan + query:>14,.0f}{stats_usd:>11.4f}"
              f"{billed_mb:>12,.0f}{fmt_usd(billed_mb * MB, a['athena_per_tb'], TB):>18}"
              f"{unverified:>18.4f}")
    print("\nnot found on AWS's pages (no dollars above for them): "
          + ", ".join(k for k, v in a.items() if v is None))
    print("UNVERIFIED (third-party pages only): "
          + "; ".join(f"{k} {v[0]} ({v[1]})" for k, v in UNVERIFIED_PRICES.items()))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--orders", type=int, default=300)
    m.add_argument("--concurrency", type=int, default=16, help="clients posting orders at once")
    m.add_argument("--zips", type=Path, default=ROOT / "target/lambda")
    m.add_argument("--out", type=Path, default=ROOT / "target/cost-counts.json")
    m.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("price")
    p.add_argument("--counts", type=Path, default=ROOT / "target/cost-counts.json")
    p.add_argument("--json", action="store_true")
    a = sub.add_parser("archive", help="the archive's cost per 1,000,000 orders, and a question's "
                                        "cost on each path (estimates from sizes and rules)")
    a.add_argument("--orders-per-day", type=float, default=1_000_000)
    a.add_argument("--buffer-seconds", type=int, default=300, help="ArchiveBufferSeconds")
    a.add_argument("--events", type=int, nargs="+", default=[1_000_000, 100_000_000, 1_000_000_000])
    args = ap.parse_args()
    if args.command == "archive":
        return cmd_archive(args)
    return cmd_measure(args) if args.command == "measure" else cmd_price(args)


if __name__ == "__main__":
    sys.exit(main())
