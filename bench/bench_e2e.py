"""End-to-end local benchmark: transactions/second from send to stored, and send-test latency.

    .venv/bin/python bench/bench_e2e.py [--messages 2000] [--rows 100000] [--send-tests 20]

Runs `pipelinectl local` as a separate process (as a user would), `pipelinectl --local up`
with the default settings except a 900 s function timeout (so one invocation can stream the
whole file), then measures:
  messages   N transactions, one per SQS message, sent with SendMessageBatch (10 per call);
             clock from the first send to the moment the table holds all N
  file       one CSV of N rows put under incoming/ (S3 -> EventBridge -> SNS -> SQS -> Lambda
             streams it); clock from PutObject to the last row stored
  send-test  `send-test --amount 1500` (SNS path, stored and alerted) N times after one
             warm-up; the end-to-end latency it reports (polling every <= 0.25 s)
Everything runs on this machine: moto, the poller, the worker process running the deployed
zip. The figures measure our local AWS plus our processor, not AWS.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PIPELINE_TOML = "function_timeout = 900\nvisibility_timeout = 5400\n"


def start_local(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    log_path = workdir / "local.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelinectl", "local", "--port", "0", "--quiet",
         "--consistency", "off"], cwd=workdir,
        env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", log_path.read_text())
        if match:
            return server, int(match.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"pipelinectl local did not start:\n{log_path.read_text()}")


def cli(workdir: Path, env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipelinectl", "--local", *args], cwd=workdir,
                   env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.monotonic() - started


def count_items(ctx: Any) -> int:
    dynamodb = ctx.client("dynamodb")
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(
            TableName=ctx.names.table, Select="COUNT", ConsistentRead=True):
        total += int(page["Count"])
    return total


def wait_until_stored(ctx: Any, target: int, timeout: float, probe_id: str | None = None
                      ) -> float:
    """Monotonic time at which the table first held `target` items."""
    from pipelinectl.operate.targets import Targets

    targets = Targets(ctx)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe_id is None or targets.get_item(probe_id) is not None:
            now = time.monotonic()
            if count_items(ctx) >= target:
                return now
        time.sleep(0.25 if probe_id else 0.5)
    raise SystemExit(f"only {count_items(ctx)} of {target} items stored after {timeout}s")


def bench_messages(ctx: Any, count: int) -> dict[str, float]:
    from pipelinectl.operate.targets import Targets

    sqs, url = ctx.client("sqs"), Targets(ctx).queue_url()
    before = count_items(ctx)
    started = time.monotonic()
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": (
            f'{{"transaction_id": "bench-m-{i}", "amount": {10 + i % 500}.25, '
            f'"timestamp": "2024-08-09T12:34:56Z"}}')} for i in range(start, min(start + 10,
                                                                                 count))]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        assert not failed, failed
    sent = time.monotonic()
    done = wait_until_stored(ctx, before + count, 600)
    return {"send_s": sent - started, "total_s": done - started,
            "tps": count / (done - started)}


def _bodies(prefix: str, count: int) -> list[str]:
    return [f'{{"transaction_id": "{prefix}-{i}", "amount": {10 + i % 500}.25, '
            f'"timestamp": "2024-08-09T12:34:56Z"}}' for i in range(count)]


def _fill(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body}
                   for i, body in enumerate(bodies[start:start + 10])]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def bench_drain(ctx: Any, count: int) -> dict[str, float]:
    """``count`` messages queued while the mapping is disabled, then drained by the pipeline
    (enable -> the table holds them all)."""
    from pipelinectl.operate.targets import Targets

    lam, sqs, url = ctx.client("lambda"), ctx.client("sqs"), Targets(ctx).queue_url()
    [mapping] = lam.list_event_source_mappings(FunctionName=ctx.names.function)[
        "EventSourceMappings"]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    time.sleep(1.0)  # the poller rediscovers mappings every 0.25 s
    before = count_items(ctx)
    _fill(sqs, url, _bodies("drain", count))
    started = time.monotonic()
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    done = wait_until_stored(ctx, before + count, 600)
    return {"total_s": done - started, "tps": count / (done - started)}


def bench_floor(ctx: Any, count: int) -> dict[str, float]:
    """The local AWS's own floor: the same calls the pipeline needs per batch, made by one
    tight client loop (ReceiveMessage of 10, BatchWriteItem of their items,
    DeleteMessageBatch) on a scratch queue and table, until ``count`` messages are stored."""
    import json

    sqs, dynamodb = ctx.client("sqs"), ctx.client("dynamodb")
    url = sqs.create_queue(QueueName="bench-floor")["QueueUrl"]
    dynamodb.create_table(TableName="bench-floor", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "transaction_id",
                                                 "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"}])
    _fill(sqs, url, _bodies("floor", count))
    started, stored = time.monotonic(), 0
    while stored < count:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get(
                "Messages", [])
        if not messages:
            continue
        items = [json.loads(m["Body"]) for m in messages]
        dynamodb.batch_write_item(RequestItems={"bench-floor": [{"PutRequest": {"Item": {
            "transaction_id": {"S": t["transaction_id"]}, "amount": {"N": str(t["amount"])},
            "timestamp": {"S": t["timestamp"]}}}} for t in items]})
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        stored += len(messages)
    elapsed = time.monotonic() - started
    sqs.delete_queue(QueueUrl=url)
    dynamodb.delete_table(TableName="bench-floor")
    return {"total_s": elapsed, "tps": count / elapsed}


def bench_file(ctx: Any, rows: int) -> dict[str, float]:
    lines = ["transaction_id,amount,timestamp,currency,customer_id,type"]
    lines += [f"bench-f-{i},{10 + i % 500}.50,2024-08-09T12:34:56Z,USD,c-{i % 97},Purchase"
              for i in range(rows)]
    body = ("\n".join(lines) + "\n").encode()
    before = count_items(ctx)
    started = time.monotonic()
    ctx.client("s3").put_object(Bucket=ctx.names.bucket, Key="incoming/bench/file.csv",
                                Body=body)
    done = wait_until_stored(ctx, before + rows, 1800, probe_id=f"bench-f-{rows - 1}")
    return {"mb": len(body) / 2**20, "total_s": done - started, "tps": rows / (done - started)}


def bench_send_test(ctx: Any, runs: int) -> dict[str, float]:
    from pipelinectl.operate import sendtest

    def one() -> float:
        result = sendtest.send_test(ctx, sendtest.TestTransaction.new(Decimal("1500")), "sns",
                                    timeout=60)
        assert result.ok and result.latency_seconds is not None, result.problem
        return result.latency_seconds

    cold = one()
    samples = sorted(one() for _ in range(runs))
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"cold_s": cold, "p50_s": statistics.median(samples), "p95_s": p95,
            "max_s": samples[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--send-tests", type=int, default=20)
    parser.add_argument("--drain", type=int, default=2000,
                        help="queued messages drained, beside the floor (0: skip)")
    parser.add_argument("--only-drain", action="store_true",
                        help="measure the drain and its floor only")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pipelinectl-bench-"))
    (workdir / "pipeline.toml").write_text(PIPELINE_TOML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPELINECTL_"))}
    if os.environ.get("PIPELINECTL_CACHE_DIR"):
        env["PIPELINECTL_CACHE_DIR"] = os.environ["PIPELINECTL_CACHE_DIR"]
    server, port = start_local(workdir, env)
    env["PIPELINECTL_LOCAL_PORT"] = os.environ["PIPELINECTL_LOCAL_PORT"] = str(port)
    os.chdir(workdir)
    try:
        run(workdir, env, args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(workdir: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.engine import make_context

    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; local AWS on port {env['PIPELINECTL_LOCAL_PORT']}")
    print(f"up (CLI, from nothing):           {cli(workdir, env, 'up'):.1f} s")
    config = config_module.load({"local": True,
                                 "local_port": int(env["PIPELINECTL_LOCAL_PORT"])})
    ctx = make_context(config, ClientFactory(config))
    if args.drain:
        floor = bench_floor(ctx, args.drain)
        drain = bench_drain(ctx, args.drain)
        print(f"floor: {args.drain} messages received, batch-written and deleted by one "
              f"client loop in {floor['total_s']:.1f} s = {floor['tps']:.0f} transactions/s")
        print(f"drain: {args.drain} queued messages through the pipeline in "
              f"{drain['total_s']:.1f} s = {drain['tps']:.0f} transactions/s = "
              f"{drain['tps'] / floor['tps']:.0%} of the floor")
    if args.only_drain:
        return
    latency = bench_send_test(ctx, args.send_tests)
    print(f"send-test --amount 1500 (sns):    cold {latency['cold_s']:.2f} s, then over "
          f"{args.send_tests} runs p50 {latency['p50_s']:.2f} s, p95 {latency['p95_s']:.2f} s,"
          f" max {latency['max_s']:.2f} s")
    messages = bench_messages(ctx, args.messages)
    print(f"{args.messages} messages (SQS batches of 10): sent in {messages['send_s']:.1f} s, "
          f"all stored after {messages['total_s']:.1f} s = {messages['tps']:.0f} "
          "transactions/s")
    file = bench_file(ctx, args.rows)
    print(f"one {args.rows}-row CSV ({file['mb']:.1f} MB): all stored after "
          f"{file['total_s']:.1f} s = {file['tps']:.0f} transactions/s")
    print(f"teardown (CLI):                   {cli(workdir, env, 'teardown', '--yes'):.1f} s")


if __name__ == "__main__":
    main()
