#!/usr/bin/env python3
"""Runs one of the shipped queries (docs/queries/*.sql) with DuckDB over an `orders archive`
directory and prints the answer as JSON: {"columns": [...], "rows": [[...], ...]}.

    .venv-tools/bin/python scripts/archive-query.py ARCHIVE_DIR QUERY.sql [NAME=VALUE ...]

It does what docs/queries/README.md asks of any runner:
  * the session time zone is UTC (Athena's), and the view `order_events` reads every part file
    of the archive with its `day` partition column, `occurredAt` as a plain timestamp in UTC
    (Athena's type for it);
  * each `-- param :NAME TYPE` line of the query names a parameter that must be given as
    NAME=VALUE: a `string` becomes a quoted SQL literal, a `timestamp` (RFC 3339, any offset)
    becomes TIMESTAMP 'YYYY-MM-DD HH:MM:SS.mmm' in UTC; every :NAME in the text is replaced.

Timestamps print as RFC 3339 UTC with milliseconds (as `orders events` writes them), whole
decimals as integers. Needs the duckdb package (scripts/emulator-venv.sh installs it).
"""

import datetime
import decimal
import json
import re
import sys

import duckdb

PARAM = re.compile(r"^--\s*param\s+:(\w+)\s+(string|timestamp)\s*$", re.MULTILINE)


def literal(kind, value):
    if kind == "string":
        return "'" + value.replace("'", "''") + "'"
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SystemExit(f"error: {value!r} has no offset (write e.g. 2025-01-01T10:00:00Z)")
    utc = moment.astimezone(datetime.timezone.utc)
    return "TIMESTAMP '" + utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}'"


def substitute(sql, given):
    declared = dict(PARAM.findall(sql))
    missing = sorted(set(declared) - set(given))
    unknown = sorted(set(given) - set(declared))
    if missing or unknown:
        raise SystemExit(f"error: parameters missing {missing}, not declared {unknown}")
    # Longest names first, so :as_of never eats part of :as_of_end.
    for name in sorted(declared, key=len, reverse=True):
        sql = re.sub(rf":{name}\b", lambda _m, n=name: literal(declared[n], given[n]), sql)
    return sql


def plain(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    archive, query = argv[1], argv[2]
    given = dict(arg.split("=", 1) for arg in argv[3:])
    with open(query, encoding="utf-8") as f:
        sql = substitute(f.read(), given).strip().rstrip(";")
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    glob = archive.rstrip("/").replace("'", "''") + "/day=*/*.parquet"
    # occurredAt as a plain timestamp in UTC: the type Athena gives the Glue table's column.
    db.execute(
        "CREATE VIEW order_events AS SELECT * REPLACE (occurredAt AT TIME ZONE 'UTC' AS occurredAt) "
        f"FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    result = db.execute(sql)
    columns = [d[0] for d in result.description]
    rows = [[plain(v) for v in row] for row in result.fetchall()]
    json.dump({"columns": columns, "rows": rows}, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv)
