"""The pipeline under concurrency and injected faults: nothing lost, nothing stored twice,
every alert sent, no alert repeated outside the README's documented windows.

    .venv/bin/python bench/bench_chaos.py [--transactions 10000] [--seed 1]

Starts the local AWS in this process, `up` with batch size 10 and maximum_concurrency 8 (the
default 30 s function timeout: with 5 s, a loaded machine timed batches of ten 50-row files
out five times in a row, and SQS moved 79 file events to the DLQ unprocessed), then
turns faults on (FAULTS below) and sends half the transactions as SQS messages (1 % of them
sent twice, so two invocations can race on one id) and half as CSV files under incoming/;
1 % are above the threshold, 5 % invalid. Prints the counts and fails if an invariant breaks.
tests/operate/test_chaos.py runs the same with a few hundred transactions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lambda_src.runkeys import RUN_KEY_PREFIX  # after the path above
from pipelinectl.resources.queues import only_sender

FAULTS = ("dynamodb:BatchWriteItem|UpdateItem|PutItem=throttle@5%; "
          "sns:Publish|PublishBatch=InternalError@2%; invoke:*=timeout@1%")
FILE_ROWS = 50


@dataclass
class Plan:
    """Which transactions exist and what must become of them."""

    total: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = [{"transaction_id": f"chaos-{i}", "timestamp": "2024-08-09T12:34:56Z",
                 "amount": "-5" if i % 20 == 7 else ("1500.00" if i % 100 == 3 else
                                                     f"{10 + i % 400}.25")}
                for i in range(self.total)]
        half = self.total // 2
        self.messages = rows[:half]
        for start in range(half, self.total, FILE_ROWS):
            self.files[f"incoming/chaos/{start}.csv"] = rows[start:start + FILE_ROWS]

    def rows(self) -> list[dict[str, Any]]:
        return self.messages + [r for rows in self.files.values() for r in rows]

    def valid(self) -> set[str]:
        return {r["transaction_id"] for r in self.rows() if r["amount"] != "-5"}

    def over(self) -> set[str]:
        return {r["transaction_id"] for r in self.rows() if r["amount"] == "1500.00"}

    def invalid_messages(self) -> set[str]:
        return {r["transaction_id"] for r in self.messages if r["amount"] == "-5"}

    def invalid_file_rows(self) -> int:
        return sum(r["amount"] == "-5" for rows in self.files.values() for r in rows)


def admin(endpoint: str, spec: str | None = None, seed: int | None = None) -> dict[str, Any]:
    data = None if spec is None else json.dumps({"spec": spec, "seed": seed}).encode()
    request = urllib.request.Request(endpoint + "/_pipelinectl/faults", data=data,
                                     method="GET" if data is None else "PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        doc: dict[str, Any] = json.loads(response.read())
    return doc


def alert_sink(ctx: Any) -> str:
    """A queue subscribed (raw) to the alerts topic: every alert SNS accepted lands there."""
    sqs, sns = ctx.client("sqs"), ctx.client("sns")
    name = f"{ctx.config.name}-alert-sink"
    arn, topic = ctx.arn("sqs", name), ctx.arn("sns", ctx.names.alerts_topic)
    # As on AWS, SNS delivers only to a queue whose policy lets the topic send (the local AWS
    # enforces it).
    policy = only_sender("AlertsTopicSends", "sns.amazonaws.com", arn, topic)
    url = sqs.create_queue(QueueName=name, Attributes={"Policy": json.dumps(policy)})[
        "QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return str(url)


def send(ctx: Any, plan: Plan) -> None:
    from pipelinectl.operate.targets import Targets

    sqs, url = ctx.client("sqs"), Targets(ctx).queue_url()
    bodies = [json.dumps(r) for r in plan.messages]
    bodies += [json.dumps(r) for i, r in enumerate(plan.messages) if i % 100 == 50]  # twice
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])])
    s3 = ctx.client("s3")
    for key, rows in plan.files.items():
        lines = ["transaction_id,amount,timestamp"] + [
            f"{r['transaction_id']},{r['amount']},{r['timestamp']}" for r in rows]
        s3.put_object(Bucket=ctx.names.bucket, Key=key, Body=("\n".join(lines) + "\n").encode())


def stored(ctx: Any) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in ctx.client("dynamodb").get_paginator("scan").paginate(
            TableName=ctx.names.table, ConsistentRead=True):
        for item in page["Items"]:
            if item["transaction_id"]["S"].startswith(RUN_KEY_PREFIX):
                continue  # a file's run record (lambda_src/fileruns.py), not a transaction
            items[item["transaction_id"]["S"]] = item
    return items


def dead_lettered(ctx: Any) -> list[tuple[str, str | None]]:
    """(transaction id, ``ErrorCode``) of each DLQ message, received and left there. The
    processor dead-letters an invalid message with its ``ErrorCode`` attribute; a message SQS
    moved after ``maxReceiveCount`` failed receives has none."""
    from pipelinectl.operate.targets import Targets

    sqs, url = ctx.client("sqs"), Targets(ctx).dlq_url()
    letters: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300,
                                  WaitTimeSeconds=0, MessageAttributeNames=["ErrorCode"]
                                  ).get("Messages", [])
        if not got:
            return letters
        for message in got:
            if message["MessageId"] not in seen:
                seen.add(message["MessageId"])
                code = message.get("MessageAttributes", {}).get("ErrorCode", {})
                letters.append((json.loads(message["Body"])["transaction_id"],
                                code.get("StringValue")))


def lambda_errors(ctx: Any, since: float) -> int:
    """Invocations that failed since ``since`` (AWS/Lambda Errors, Sum): injected timeouts and
    crashes, and the real timeouts of a loaded machine. AWS counts a timeout as an error
    (Lambda Developer Guide, "Types of metrics for Lambda functions": Errors)."""
    import datetime as dt

    start = dt.datetime.fromtimestamp(since - 60, dt.UTC)
    answer = ctx.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Errors", Statistics=["Sum"], Period=60,
        Dimensions=[{"Name": "FunctionName", "Value": ctx.names.function}],
        StartTime=start, EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    return int(sum(point["Sum"] for point in answer["Datapoints"]))


def dlq_depth(ctx: Any) -> int:
    """Messages in the DLQ, visible or not (GetQueueAttributes: approximate, as on AWS)."""
    from pipelinectl.operate.targets import Targets

    attributes = ctx.client("sqs").get_queue_attributes(
        QueueUrl=Targets(ctx).dlq_url(), AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def rejected_rows(ctx: Any) -> int:
    s3, total = ctx.client("s3"), 0
    for obj in s3.list_objects_v2(Bucket=ctx.names.bucket, Prefix="rejected/").get(
            "Contents", []):
        body = s3.get_object(Bucket=ctx.names.bucket, Key=obj["Key"])["Body"].read()
        total += sum(1 for line in body.decode().splitlines() if line.strip())
    return total


def alerts(ctx: Any, url: str) -> Counter[str]:
    sqs, counts = ctx.client("sqs"), Counter[str]()
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in got:
            doc = json.loads(message["Body"])
            doc = json.loads(doc["Message"]) if doc.get("Type") == "Notification" else doc
            if isinstance(doc, dict) and "alert_id" in doc:  # not an alarm's notification
                counts[doc["alert_id"]] += 1
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return counts


def run(ctx: Any, endpoint: str, total: int, seed: int, timeout: float,
        faults: str = FAULTS) -> dict[str, Any]:
    """Send, wait until everything settled, return the counts (see check())."""
    from pipelinectl import engine

    engine.apply(ctx)
    sink = alert_sink(ctx)
    admin(endpoint, faults, seed)
    plan = Plan(total)
    started, started_wall = time.monotonic(), time.time()
    send(ctx, plan)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = stored(ctx)
        seen += alerts(ctx, sink)
        if (plan.valid() <= set(items) and plan.over() <= set(seen)
                and dlq_depth(ctx) >= len(plan.invalid_messages())
                and rejected_rows(ctx) >= plan.invalid_file_rows()):
            break
        time.sleep(2)
    items = stored(ctx)
    seen += alerts(ctx, sink)
    counted = admin(endpoint)
    time.sleep(3)  # the local AWS ships metrics every second or so
    return {"plan": plan, "items": items, "alerts": seen, "dlq": dead_lettered(ctx),
            "lambda_errors": lambda_errors(ctx, started_wall),
            "rejected_rows": rejected_rows(ctx), "faults": counted,
            "seconds": time.monotonic() - started}


def check(result: dict[str, Any]) -> dict[str, int]:
    """Assert the invariants; return the counts to print (in the failure message too)."""
    plan: Plan = result["plan"]
    items, seen, faults = result["items"], result["alerts"], result["faults"]
    lambda_faults = sum(r["injected"] for r in faults["rules"] if r["rule"].startswith("invoke:"))
    # Every invocation that died: the injected ones and a loaded machine's real timeouts.
    deaths = max(lambda_faults, result["lambda_errors"])
    coded = [t for t, code in result["dlq"] if code]  # dead-lettered by the processor
    moved = [t for t, code in result["dlq"] if not code]  # moved by SQS (maxReceiveCount)
    counts = {"transactions": plan.total, "valid": len(plan.valid()),
              "stored": len(items), "over_threshold": len(plan.over()),
              "alerted": len(set(seen) & plan.over()), "alerts_sent": sum(seen.values()),
              "alerts_repeated": sum(n - 1 for n in seen.values() if n > 1),
              "lambda_faults": lambda_faults, "lambda_errors": result["lambda_errors"],
              "faults_injected": faults["injected"],
              "invalid_messages": len(plan.invalid_messages()), "dlq": len(result["dlq"]),
              "dlq_repeated": len(coded) - len(set(coded)),
              "dlq_after_max_receives": len(moved),
              "invalid_file_rows": plan.invalid_file_rows(),
              "rejected_rows": result["rejected_rows"]}
    problems = [what for what, broken in _violations(plan, result, coded, moved, deaths,
                                                     counts) if broken]
    assert not problems, f"{'; '.join(problems)}. Counts: {counts}"
    return counts


def _violations(plan: Plan, result: dict[str, Any], coded: list[str], moved: list[str],
                deaths: int, counts: dict[str, int]) -> list[tuple[str, bool]]:
    """(what, broken) for each invariant. README "Storage and the alert guarantee": an alert
    repeats only if the function died between SNS accepting it and alerted_at being written,
    and a dead letter only if it died between SendMessageBatch to the DLQ and Lambda deleting
    the message (at-least-once delivery): at most one each per invocation that died. Injected
    SNS errors answer before SNS accepts, so they cannot repeat one. A valid message may reach
    the DLQ without a code: SQS moves a message after maxReceiveCount failed receives (SQS
    Developer Guide, "Using dead-letter queues"); an earlier attempt must have stored it."""
    items, seen = result["items"], result["alerts"]
    invalid = plan.invalid_messages()
    return [
        ("stored != valid", set(items) != plan.valid()),  # all valid, once (one key each)
        (f"not alerted: {sorted(plan.over() - set(seen))[:5]}", not plan.over() <= set(seen)),
        ("an alert at or below the threshold", not set(seen) <= plan.over()),
        ("alert not recorded", not all("alerted_at" in items.get(t, {}) for t in plan.over())),
        (f"{counts['alerts_repeated']} alert repeats > {deaths} invocations that died",
         counts["alerts_repeated"] > deaths),
        (f"DLQ != invalid messages: extra {sorted(set(coded) - invalid)[:5]}, missing "
         f"{sorted(invalid - set(coded))[:5]}", set(coded) != invalid),
        (f"{counts['dlq_repeated']} dead letters repeated > {deaths} invocations that died",
         counts["dlq_repeated"] > deaths),
        (f"moved by SQS but not valid: {moved[:5]}", not set(moved) <= plan.valid()),
        ("rejects != invalid rows", result["rejected_rows"] != plan.invalid_file_rows()),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.engine import make_context
    from pipelinectl.localaws.server import LocalAws

    with LocalAws(port=0) as aws:
        os.environ["PIPELINECTL_LOCAL_PORT"] = str(aws.port)
        config = config_module.load({"local": True, "local_port": aws.port, "batch_size": 10,
                                     "maximum_concurrency": 8}, {})
        ctx = make_context(config, ClientFactory(config))
        result = run(ctx, aws.endpoint_url, args.transactions, args.seed, timeout=1800)
        print(f"{args.transactions} transactions in {result['seconds']:.0f} s under {FAULTS}")
        for key, value in check(result).items():
            print(f"  {key:18} {value}")


if __name__ == "__main__":
    main()
