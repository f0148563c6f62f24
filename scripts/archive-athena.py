#!/usr/bin/env python3
"""Runs one of the shipped queries (docs/queries/*.sql) through Athena over the deployed archive
and prints the answer as JSON, in the shape scripts/archive-query.py prints for DuckDB:
{"columns": [...], "rows": [[...], ...]}.

    .venv-tools/bin/python scripts/archive-athena.py --database DB --table TABLE \
        --workgroup WG QUERY.sql [NAME=VALUE ...]

Credentials, region and endpoint come from the environment (AWS_ENDPOINT_URL for the emulator).
The parameters are replaced as docs/queries/README.md says (archive-query.py's `substitute`).
The queries read a relation named `order_events`; here that name is replaced by the Glue table
(`"DB"."TABLE"`), the one difference from the DuckDB runner's view. Athena answers every value
as text: numbers are given back as numbers, timestamps in the RFC 3339 form `orders events`
writes (UTC, milliseconds), nested values (`items`) as JSON when the text is ministack's
rendering of them (Python's repr; real Athena writes `[{productid=…, …}]`, left as text).
"""

import argparse
import ast
import datetime
import json
import os
import re
import sys
import time

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
archive_query = __import__("archive-query")

NUMBER_TYPES = {"tinyint", "smallint", "integer", "int", "bigint"}
FLOAT_TYPES = {"double", "float", "real", "decimal"}


def value(text, kind):
    if text is None:
        return None
    kind = kind.lower()
    if kind in NUMBER_TYPES:
        return int(text)
    if kind in FLOAT_TYPES:
        number = float(text)
        return int(number) if number.is_integer() else number
    if kind in ("row", "array", "map") or kind.startswith(("array", "row", "map")):
        # ministack's Athena writes a nested value as Python's repr of it.
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    if kind.startswith("timestamp"):
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" UTC", ""))
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--workgroup", required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("query")
    ap.add_argument("params", nargs="*")
    args = ap.parse_args()
    given = dict(arg.split("=", 1) for arg in args.params)
    with open(args.query, encoding="utf-8") as f:
        sql = archive_query.substitute(f.read(), given).strip().rstrip(";")
    sql = re.sub(r"\border_events\b", f'"{args.database}"."{args.table}"', sql)

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    athena = boto3.client("athena", region_name=region)
    started = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": args.database},
        WorkGroup=args.workgroup,
    )
    qid = started["QueryExecutionId"]
    deadline = time.monotonic() + args.timeout
    while True:
        status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        if status["State"] == "SUCCEEDED":
            break
        if status["State"] in ("FAILED", "CANCELLED"):
            sys.exit(f"archive-athena: {args.query}: {status['State']}: {status.get('StateChangeReason')}")
        if time.monotonic() > deadline:
            sys.exit(f"archive-athena: {args.query}: still {status['State']} after {args.timeout}s")
        time.sleep(0.2)

    columns, rows, token, first = [], [], None, True
    while True:
        page = athena.get_query_results(QueryExecutionId=qid, **({"NextToken": token} if token else {}))
        info = page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
        columns = [c["Name"] for c in info]
        data = page["ResultSet"]["Rows"]
        if first:
            data = data[1:]  # the header row
            first = False
        for row in data:
            cells = [d.get("VarCharValue") for d in row["Data"]]
            rows.append([value(c, i["Type"]) for c, i in zip(cells, info)])
        token = page.get("NextToken")
        if not token:
            break
    json.dump({"columns": columns, "rows": rows}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
