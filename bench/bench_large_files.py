"""Large files end to end on the local AWS (issue 12): stored once, alerted once, rejected.

    .venv/bin/python bench/bench_large_files.py [--csv-rows 1000000] [--gz-rows 200000]
    .venv/bin/python bench/bench_large_files.py --compare [--csv-rows 20000]

Default mode: starts the local AWS in this process, `up` with the default settings, drops a
CSV of ``--csv-rows`` rows (about 42 bytes a row: 1,000,000 rows = 41.7 MB, split into parts)
and a gzip of ``--gz-rows`` JSON Lines (finished by continuation), waits for both run records
to complete, then asserts: every valid row stored once (one item per id, its source the
row's number in the file), every over-threshold row alerted once, every invalid row in the
rejects once, each run record's totals equal to those counts. Prints rows/s and the counts.

``--compare``: the same CSV processed split (default settings) and unsplit (one invocation:
``split_threshold_kb`` above the file's size and a function timeout long enough), with the
local AWS's concurrency (``--max-concurrency``) at 1, 2 and 4; prints rows/s for each and
the ratio split/unsplit. Each case gets a fresh local AWS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_chaos import alert_sink, alerts

from pipelinectl.operate.fileruns import FileRun, read_file_run

TS = "2024-08-09T12:34:56Z"


def amount(i: int) -> str:
    """Every 97th row invalid (amount 0), every 101st over the threshold (1000)."""
    return "0" if i % 97 == 0 else ("1500.00" if i % 101 == 0 else f"{i % 900 + 1}.25")


def csv_body(n: int, prefix: str) -> bytes:
    return ("transaction_id,amount,timestamp,currency\n" + "".join(
        f"{prefix}-{i},{amount(i)},{TS},USD\n" for i in range(1, n + 1))).encode()


def gz_body(n: int, prefix: str) -> bytes:
    return gzip.compress(b"".join(json.dumps(
        {"transaction_id": f"{prefix}-{i}", "amount": amount(i), "timestamp": TS}).encode()
        + b"\n" for i in range(1, n + 1)))


def expected(n: int, prefix: str) -> tuple[set[str], set[str], int]:
    """(valid ids, over-threshold ids, invalid rows)."""
    valid = {f"{prefix}-{i}" for i in range(1, n + 1) if i % 97}
    over = {f"{prefix}-{i}" for i in range(1, n + 1) if i % 97 and i % 101 == 0}
    return valid, over, n // 97


def stored(ctx: Any, prefix: str, n: int) -> dict[str, str]:
    """The source of each of the file's n ids the table holds (valid or not). BatchGetItem,
    100 keys a call, not a Scan: moto sorts the whole table for every Scan page, so paging
    through a million items takes hours locally."""
    ddb, found = ctx.client("dynamodb"), {}
    for first in range(1, n + 1, 100):
        keys = [{"transaction_id": {"S": f"{prefix}-{i}"}}
                for i in range(first, min(first + 100, n + 1))]
        request = {ctx.names.table: {"Keys": keys, "ConsistentRead": True,
                                     "ProjectionExpression": "transaction_id, #s",
                                     "ExpressionAttributeNames": {"#s": "source"}}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(ctx.names.table, []):
                found[item["transaction_id"]["S"]] = item["source"]["S"]
            request = response.get("UnprocessedKeys") or {}
    return found


def rejected(ctx: Any, key: str) -> Counter[int]:
    s3, name = ctx.client("s3"), key.removeprefix("incoming/")
    rows: Counter[int] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=ctx.names.bucket, Prefix=f"rejected/{name}"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=ctx.names.bucket, Key=obj["Key"])["Body"].read()
            rows.update(json.loads(line)["row"] for line in body.decode().splitlines() if line)
    return rows


def wait_run(ctx: Any, key: str, timeout: float) -> FileRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = read_file_run(ctx.client("dynamodb"), ctx.names.table, ctx.names.bucket, key)
        if run is not None and run.state != "running":
            return run
        time.sleep(2)
    raise AssertionError(f"{key}: the run did not finish within {timeout:.0f} s")


def check(ctx: Any, run: FileRun, key: str, n: int, prefix: str) -> dict[str, Any]:
    """Assert the invariants for one file; return its counts."""
    valid, over, invalid = expected(n, prefix)
    assert run.state == "complete", run.failed_reason
    items = stored(ctx, prefix, n)
    assert set(items) == valid, f"{key}: {len(items)} stored, {len(valid)} valid"
    assert all(src.endswith(f"#{tid.rsplit('-', 1)[1]}") for tid, src in items.items())
    rows = rejected(ctx, key)
    assert len(rows) == invalid and set(rows.values()) <= {1}, f"{key}: rejects {len(rows)}"
    assert run.totals is not None and (run.totals.rows, run.totals.rejected) == (n, invalid)
    assert run.totals.stored + run.totals.unchanged == len(valid)
    return {"rows": n, "stored": len(items), "over_threshold": len(over),
            "rejected": len(rows), "mode": run.mode, "parts": run.parts_total,
            "slices": len(run.slice_ids), "run_seconds": run.seconds}


def local(settings: dict[str, Any], max_concurrency: int | None) -> Any:
    from pipelinectl.localaws.server import LocalAws

    aws = LocalAws(port=0, max_concurrency=max_concurrency)
    aws.__enter__()
    os.environ["PIPELINECTL_LOCAL_PORT"] = str(aws.port)
    from pipelinectl import config as config_module
    from pipelinectl import engine
    from pipelinectl.clients import ClientFactory

    config = config_module.load({"local": True, "local_port": aws.port, **settings}, {})
    ctx = engine.make_context(config, ClientFactory(config))
    engine.apply(ctx)
    return aws, ctx


def large(csv_rows: int, gz_rows: int, timeout: float) -> None:
    aws, ctx = local({}, None)
    try:
        sink = alert_sink(ctx)
        s3, started = ctx.client("s3"), time.monotonic()
        body = csv_body(csv_rows, "bc")
        s3.put_object(Bucket=ctx.names.bucket, Key="incoming/bench/big.csv", Body=body)
        s3.put_object(Bucket=ctx.names.bucket, Key="incoming/bench/big.jsonl.gz",
                      Body=gz_body(gz_rows, "bg"))
        seen: Counter[str] = Counter()
        results = {}
        for key, n, prefix in (("incoming/bench/big.csv", csv_rows, "bc"),
                               ("incoming/bench/big.jsonl.gz", gz_rows, "bg")):
            run = wait_run(ctx, key, timeout)
            results[key] = check(ctx, run, key, n, prefix)
            results[key]["rows_per_s"] = round(n / float(run.seconds or 1), 1)
        wall = time.monotonic() - started
        time.sleep(5)
        seen += alerts(ctx, sink)
        over = expected(csv_rows, "bc")[1] | expected(gz_rows, "bg")[1]
        assert set(seen) == over and set(seen.values()) <= {1}, "alerts != over-threshold"
        print(f"CSV {len(body) / 1e6:.1f} MB, {csv_rows} rows + gzip {gz_rows} rows: "
              f"{(csv_rows + gz_rows) / wall:.0f} rows/s overall, {wall:.0f} s wall")
        for key, counts in results.items():
            print(f"  {key}: {counts}")
        print(f"  alerts: {len(seen)} ids, each once")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"  peak RSS of this process (the local AWS): {peak:.0f} MB")
    finally:
        aws.__exit__(None, None, None)


def once(csv_rows: int, split: bool, concurrency: int, timeout: float) -> float:
    """rows/s of the CSV, split (defaults) or unsplit (one invocation, long timeout)."""
    body = csv_body(csv_rows, "cmp")
    settings: dict[str, Any] = {} if split else {
        "split_threshold_kb": len(body) // 1024 + 64, "part_size_kb": len(body) // 1024 + 64,
        "function_timeout": 900, "visibility_timeout": 5400}
    aws, ctx = local(settings, concurrency)
    try:
        ctx.client("s3").put_object(Bucket=ctx.names.bucket, Key="incoming/cmp.csv", Body=body)
        run = wait_run(ctx, "incoming/cmp.csv", timeout)
        counts = check(ctx, run, "incoming/cmp.csv", csv_rows, "cmp")
        assert counts["mode"] == ("split" if split else "single"), counts
        return csv_rows / float(run.seconds or 1)
    finally:
        aws.__exit__(None, None, None)


def compare(csv_rows: int, timeout: float) -> None:
    print(f"CSV of {csv_rows} rows, rows/s (run record's seconds):")
    unsplit = once(csv_rows, False, 1, timeout)
    print(f"  unsplit (one invocation): {unsplit:.0f}")
    for concurrency in (1, 2, 4):
        rate = once(csv_rows, True, concurrency, timeout)
        print(f"  split, max concurrency {concurrency}: {rate:.0f} "
              f"({rate / unsplit:.2f}x unsplit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--gz-rows", type=int, default=200_000)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    if args.compare:
        compare(args.csv_rows, args.timeout)
    else:
        large(args.csv_rows, args.gz_rows, args.timeout)


if __name__ == "__main__":
    main()
