#!/usr/bin/env python3
"""Upload the function zips and create/update the CloudFormation stack of template.yaml.

Called by scripts/deploy.sh (which builds the zips and provides the tools venv); works
against real AWS (default credential chain) and against ministack (--endpoint-url).
Prints the stack outputs as one JSON object on stdout; everything else goes to stderr.
With --endpoint-url it adds "EmulatorApiUrl": <endpoint>/_aws/execute-api/<apiId>, the
path form of the HTTP API that needs no *.execute-api.localhost name resolution.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
from botocore.config import Config

FUNCTIONS = {  # binary/package name -> template parameter holding its S3 key
    "ingest": "IngestKey",
    "processor": "ProcessorKey",
    "projector": "ProjectorKey",
    "notifier": "NotifierKey",
    "reconciler": "ReconcilerKey",
    "archiver": "ArchiverKey",
}
OUTPUT_KEYS = [
    "ApiUrl", "EventsTableName", "EventsStreamArn", "StatusTableName", "WorkQueueUrl",
    "WorkDlqUrl", "StreamFailureQueueUrl", "TopicArn", "AlarmTopicArn", "ReconcilerFunctionName",
]
# The archive's outputs: there with Archive=true (the default), absent with Archive=false.
ARCHIVE_OUTPUT_KEYS = ["ArchiveBucketName", "ArchiveDatabaseName", "ArchiveTableName", "ArchiveWorkGroupName"]
TEMPLATE_BODY_LIMIT = 51_200
DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
DONE_BAD = {
    "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_COMPLETE", "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED",
}


def log(msg: str) -> None:
    print(f"deploy: {msg}", file=sys.stderr, flush=True)


def find_zip(zips_dir: Path, name: str) -> Path:
    for candidate in (zips_dir / name / "bootstrap.zip", zips_dir / f"{name}.zip"):
        if candidate.is_file():
            return candidate
    sys.exit(f"deploy: no zip for {name} under {zips_dir} (want {name}/bootstrap.zip or {name}.zip)")


def template_defaults(template: str) -> dict[str, str]:
    """Parameter defaults, read without a YAML library (the template's own simple layout)."""
    defaults, current, in_params = {}, None, False
    for line in template.splitlines():
        if re.match(r"^Parameters:\s*$", line):
            in_params = True
            continue
        if in_params and re.match(r"^\S", line):
            break
        if not in_params:
            continue
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^    Default:\s*(\S+)\s*$", line)
        if m and current:
            defaults[current] = m.group(1).strip("'\"")
    return defaults


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--zips-dir", required=True, type=Path)
    ap.add_argument("--arch", choices=["x86_64", "arm64"], default="arm64")
    ap.add_argument("--endpoint-url")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    ap.add_argument("--bucket", help="artifact bucket (default: <stack>-artifacts[-<account>-<region>])")
    ap.add_argument("--param", action="append", default=[], metavar="K=V")
    ap.add_argument("--wait-timeout", type=float, default=1800.0)
    args = ap.parse_args()

    session_kwargs = {"region_name": args.region}
    if args.endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        session_kwargs.update(aws_access_key_id="test", aws_secret_access_key="test")
    session = boto3.session.Session(**session_kwargs)
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"})

    def client(name: str):
        return session.client(name, endpoint_url=args.endpoint_url, config=cfg)

    s3, cfn = client("s3"), client("cloudformation")

    template = Path(args.template).read_text()
    overrides = {}
    for kv in args.param:
        if "=" not in kv:
            sys.exit(f"deploy: --param wants K=V, got {kv!r}")
        k, v = kv.split("=", 1)
        overrides[k] = v

    # Visibility timeout vs function timeout: CloudFormation cannot multiply, so check here.
    defaults = template_defaults(template)
    timeout = int(overrides.get("Timeout", defaults.get("Timeout", "10")))
    visibility = int(overrides.get("WorkQueueVisibilityTimeout", defaults.get("WorkQueueVisibilityTimeout", "60")))
    if visibility < timeout:
        sys.exit(f"deploy: WorkQueueVisibilityTimeout ({visibility}) < Timeout ({timeout}); AWS refuses the SQS mapping")
    if visibility < 6 * timeout:
        log(f"warning: WorkQueueVisibilityTimeout ({visibility}) < 6 x Timeout ({6 * timeout})")
    # A batching window ages the projector's stream records by design: an iterator-age alarm
    # below it would sound all the time.
    window_ms = 1000 * int(overrides.get("StreamBatchingWindowSeconds", defaults.get("StreamBatchingWindowSeconds", "0")))
    age_alarm_ms = int(overrides.get("IteratorAgeAlarmMs", defaults.get("IteratorAgeAlarmMs", "60000")))
    if window_ms and age_alarm_ms <= window_ms:
        sys.exit(f"deploy: IteratorAgeAlarmMs ({age_alarm_ms}) <= StreamBatchingWindowSeconds in ms ({window_ms}); the alarm would always sound")

    bucket = args.bucket
    if not bucket:
        if args.endpoint_url:
            bucket = f"{args.stack.lower()}-artifacts"
        else:
            account = client("sts").get_caller_identity()["Account"]
            bucket = f"{args.stack.lower()}-artifacts-{account}-{args.region}"
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        log(f"creating bucket {bucket}")
        kwargs = {"Bucket": bucket}
        if args.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": args.region}
        s3.create_bucket(**kwargs)

    params = {"ArtifactBucket": bucket, "Architecture": args.arch}
    for name, param in FUNCTIONS.items():
        path = find_zip(args.zips_dir, name)
        data = path.read_bytes()
        key = f"{args.stack}/{name}-{args.arch}-{hashlib.sha256(data).hexdigest()[:16]}.zip"
        try:
            s3.head_object(Bucket=bucket, Key=key)
            log(f"s3://{bucket}/{key} already there")
        except botocore.exceptions.ClientError:
            log(f"uploading {path} ({len(data)} bytes) to s3://{bucket}/{key}")
            s3.put_object(Bucket=bucket, Key=key, Body=data)
        params[param] = key
    params.update(overrides)

    tpl_arg = {"TemplateBody": template}
    if len(template.encode()) > TEMPLATE_BODY_LIMIT:
        key = f"{args.stack}/template-{hashlib.sha256(template.encode()).hexdigest()[:16]}.yaml"
        s3.put_object(Bucket=bucket, Key=key, Body=template.encode())
        tpl_arg = {"TemplateURL": f"https://{bucket}.s3.amazonaws.com/{key}"}
        if args.endpoint_url:
            tpl_arg = {"TemplateURL": f"{args.endpoint_url.rstrip('/')}/{bucket}/{key}"}

    cfn_params = [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()]
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]

    status = None
    try:
        status = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]["StackStatus"]
    except botocore.exceptions.ClientError as e:
        if "does not exist" not in str(e):
            raise
    if status == "ROLLBACK_COMPLETE":
        log(f"stack {args.stack} is ROLLBACK_COMPLETE: deleting it first")
        cfn.delete_stack(StackName=args.stack)
        wait(cfn, args.stack, args.wait_timeout, {"DELETE_COMPLETE"}, allow_missing=True)
        status = None

    started = time.time()
    if status is None:
        log(f"creating stack {args.stack}")
        cfn.create_stack(StackName=args.stack, Parameters=cfn_params, Capabilities=caps, **tpl_arg)
        final = wait(cfn, args.stack, args.wait_timeout, DONE_OK)
    else:
        log(f"updating stack {args.stack} (was {status})")
        try:
            cfn.update_stack(StackName=args.stack, Parameters=cfn_params, Capabilities=caps, **tpl_arg)
            final = wait(cfn, args.stack, args.wait_timeout, DONE_OK)
        except botocore.exceptions.ClientError as e:
            if "No updates are to be performed" not in str(e):
                raise
            log("no updates to perform")
            final = status
    if final not in DONE_OK:
        report_failure(cfn, args.stack)
        return 1
    log(f"stack {args.stack}: {final} in {time.time() - started:.1f}s")

    stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        log(f"missing outputs: {missing}")
        return 1
    result = {k: outputs[k] for k in OUTPUT_KEYS + ARCHIVE_OUTPUT_KEYS if k in outputs}
    if args.endpoint_url:
        m = re.match(r"^[a-z]+://([^.]+)\.execute-api\.", outputs["ApiUrl"])
        if m:
            result["EmulatorApiUrl"] = f"{args.endpoint_url.rstrip('/')}/_aws/execute-api/{m.group(1)}"
            log(f"emulator: the API is reached at {result['EmulatorApiUrl']}/<path> "
                f"(or Host: {m.group(1)}.execute-api.localhost on the emulator port)")
    print(json.dumps(result, indent=2))
    return 0


def wait(cfn, stack: str, timeout: float, ok: set[str], allow_missing: bool = False) -> str:
    deadline = time.time() + timeout
    delay = 0.2
    status = "?"
    while time.time() < deadline:
        try:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except botocore.exceptions.ClientError as e:
            if allow_missing and "does not exist" in str(e):
                return "DELETE_COMPLETE"
            raise
        if status in ok or status in DONE_BAD or (status.endswith("_COMPLETE") and "PROGRESS" not in status):
            return status
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
    log(f"timed out waiting for {stack} (last status {status})")
    return status


def report_failure(cfn, stack: str) -> None:
    try:
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except botocore.exceptions.ClientError as e:
        log(f"stack failed and its events could not be read: {e}")
        return
    for ev in reversed(events):
        if "FAILED" in ev.get("ResourceStatus", ""):
            log(f"{ev.get('LogicalResourceId')} {ev.get('ResourceType')} {ev['ResourceStatus']}: "
                f"{ev.get('ResourceStatusReason', '')}")
    log(f"stack {stack} did not deploy")


if __name__ == "__main__":
    sys.exit(main())
