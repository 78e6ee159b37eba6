"""Processor benchmark: throughput against moto in-process, and AWS calls per 1,000 transactions
beside a naive one-PutItem-per-record handler, measured in the same run.

    .venv/bin/python bench/bench_processor.py [--transactions 10000] [--naive-transactions 1000]

Three workloads of N transactions each (1 % above the alert threshold):
  messages/10   one transaction per SQS message, Lambda batch size 10 (the default)
  messages/100  the same with batch size 100 (a batching window lets Lambda fill it)
  file          one CSV file of N rows dropped in incoming/ (one S3 event)

Records/second is the handler's wall-clock rate against moto in this process, so it measures
our code plus moto's, not AWS; the call counts are exact and are what AWS would bill/throttle.
The naive handler's calls are exactly linear (one PutItem per transaction, one Publish per
alert), so it runs on a 1,000-transaction sample of each workload to keep the bench short.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "processor", "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from lambda_src.handler import Runtime, handle  # noqa: E402

BUCKET = "bench-landing-123456789012-us-east-1"
SESSION = boto3.session.Session()
TS = "2024-08-09T12:34:56Z"


def transaction(i: int, run: str) -> dict[str, Any]:
    return {"transaction_id": f"{run}-{i:06d}", "amount": "2500.00" if i % 100 == 0 else "42.50",
            "timestamp": TS, "currency": "EUR", "customer_id": f"c-{i % 997}"}


def record(body: str) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": body,
            "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench", "awsRegion": "us-east-1"}


def message_events(n: int, batch: int, run: str) -> list[dict[str, Any]]:
    records = [record(json.dumps(transaction(i, run))) for i in range(n)]
    return [{"Records": records[i : i + batch]} for i in range(0, n, batch)]


def file_events(n: int, run: str) -> list[dict[str, Any]]:
    rows = "".join(f"{t['transaction_id']},{t['amount']},{t['timestamp']},{t['currency']},"
                   f"{t['customer_id']}\n" for t in (transaction(i, run) for i in range(n)))
    key = f"incoming/{run}.csv"
    SESSION.client("s3").put_object(
        Bucket=BUCKET, Key=key,
        Body=("transaction_id,amount,timestamp,currency,customer_id\n" + rows).encode())
    event = {"source": "aws.s3", "detail-type": "Object Created",
             "detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
    return [{"Records": [record(json.dumps(event))]}]


class Naive:
    """The baseline: one PutItem per transaction, one Publish per alert, no reads."""

    def __init__(self, table: str, topic: str) -> None:
        self.ddb = SESSION.client("dynamodb")
        self.sns = SESSION.client("sns")
        self.s3 = SESSION.client("s3")
        self.table, self.topic = table, topic

    def clients(self) -> list[Any]:
        return [self.ddb, self.sns, self.s3]

    def __call__(self, event: dict[str, Any]) -> None:
        for rec in event["Records"]:
            body = json.loads(rec["body"])
            if body.get("source") == "aws.s3":
                detail = body["detail"]
                data = self.s3.get_object(Bucket=detail["bucket"]["name"],
                                          Key=detail["object"]["key"])["Body"].read().decode()
                header, *lines = data.splitlines()
                names = header.split(",")
                for line in lines:
                    self.store(dict(zip(names, line.split(","), strict=True)))
            else:
                self.store(body)

    def store(self, txn: dict[str, Any]) -> None:
        item = {k: {"N": str(v)} if k == "amount" else {"S": str(v)} for k, v in txn.items()}
        self.ddb.put_item(TableName=self.table, Item=item)
        if float(txn["amount"]) > 1000:
            self.sns.publish(TopicArn=self.topic, Message=json.dumps(txn))


def setup() -> tuple[str, str, str]:
    ddb, sns, sqs, s3 = (SESSION.client(s) for s in ("dynamodb", "sns", "sqs", "s3"))
    ddb.create_table(TableName="bench-transactions", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "transaction_id",
                                            "AttributeType": "S"}])
    s3.create_bucket(Bucket=BUCKET)
    topic = sns.create_topic(Name="bench-alerts")["TopicArn"]
    dlq = sqs.create_queue(QueueName="bench-dlq")["QueueUrl"]
    os.environ.update(TABLE_NAME="bench-transactions", ALERTS_TOPIC_ARN=topic, DLQ_URL=dlq,
                      PIPELINE_NAME="bench")
    return "bench-transactions", topic, dlq


def count_calls(clients: list[Any]) -> Counter[str]:
    calls: Counter[str] = Counter()

    def hook(event_name: str, **_: Any) -> None:
        calls[event_name.split(".", 2)[2]] += 1

    for client in clients:
        client.meta.events.register("before-parameter-build.*.*", hook)
    return calls


def timed(fn: Callable[[dict[str, Any]], Any], events: list[dict[str, Any]]) -> float:
    """Wall-clock seconds for all events; the EMF lines the handler prints are discarded."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for event in events:
            fn(event)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--naive-transactions", type=int, default=1_000)
    args = parser.parse_args()
    n, naive_n = args.transactions, min(args.naive_transactions, args.transactions)
    print(f"processor bench: {n:,} transactions per workload ({naive_n:,} for the naive "
          f"handler), moto in-process, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPU(s)")
    with mock_aws():
        table, topic, _ = setup()
        runtime = Runtime.from_env(session=SESSION)
        ours = count_calls([runtime.persister.store.client, runtime.persister.alerter.sns,
                            runtime.files.s3, runtime.dead_letters.sqs])
        naive = Naive(table, topic)
        theirs = count_calls(naive.clients())
        print(f"\n{'workload':<13}{'ours rec/s':>11}{'naive rec/s':>12}{'ours calls/1k':>15}"
              f"{'naive calls/1k':>16}{'ratio':>8}   our calls")
        workloads: list[tuple[str, Callable[[int, str], list[dict[str, Any]]]]] = [
            ("messages/10", lambda k, run: message_events(k, 10, run)),
            ("messages/100", lambda k, run: message_events(k, 100, run)),
            ("file", file_events),
        ]
        for name, make in workloads:
            ours.clear()
            theirs.clear()
            ours_s = timed(lambda e: _check(handle(e, None, runtime)), make(n, f"o-{name}"))
            naive_s = timed(naive, make(naive_n, f"n-{name}"))
            per_k_ours = 1000 * sum(ours.values()) / n
            per_k_naive = 1000 * sum(theirs.values()) / naive_n
            detail = ", ".join(f"{op} {c}" for op, c in sorted(ours.items()))
            print(f"{name:<13}{n / ours_s:>11,.0f}{naive_n / naive_s:>12,.0f}{per_k_ours:>15.1f}"
                  f"{per_k_naive:>16.1f}{per_k_naive / per_k_ours:>7.1f}x   {detail}")
    print("\nratio = naive API calls / our API calls for the same transactions "
          "(1 % alerts; ours includes the reads that make redelivery idempotent)")


def _check(response: dict[str, Any]) -> None:
    if response["batchItemFailures"]:
        raise SystemExit(f"unexpected batch item failures: {response}")


if __name__ == "__main__":
    main()
