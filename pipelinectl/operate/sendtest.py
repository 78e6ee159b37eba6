"""`send-test`: publish one transaction, follow it until it is stored (and alerted).

It is the one command that proves the whole path end to end, so when it fails it must say
where the transaction got stuck rather than just "timed out": in the DLQ (with the reason
the processor attached), rejected by the file reader, stored but not alerted, or nowhere at
all (nothing is consuming the queue). Readers are cheap consistent GetItem calls; the DLQ
is only peeked when its depth grew since we started, so waiting costs almost nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError
from pipelinectl.operate import dlq
from pipelinectl.operate.targets import Clock, Sleep, Targets
from pipelinectl.resources import bucket_events
from pipelinectl.resources.base import Context

Via = Literal["sns", "sqs", "s3"]
VIAS: tuple[Via, ...] = ("sns", "sqs", "s3")
SEND_TEST_PREFIX = "incoming/send-test/"
DLQ_CHECK_EVERY = 1.0  # seconds between DLQ depth checks while waiting
MAX_POLL_DELAY = 0.25  # GetItem at most 4x a second: cheap, and latency stays precise


@dataclass(frozen=True)
class TestTransaction:
    transaction_id: str
    amount: Decimal
    type: str
    timestamp: str

    @classmethod
    def new(cls, amount: Decimal, transaction_id: str | None = None,
            txn_type: str = "Purchase") -> TestTransaction:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return cls(transaction_id or f"send-test-{uuid.uuid4().hex[:12]}", amount, txn_type,
                   stamp)

    def json(self, *, with_type: bool) -> str:
        """The message body; the amount is written as an exact JSON number (never a float)."""
        doc: dict[str, Any] = {"transaction_id": self.transaction_id, "amount": "@AMOUNT@",
                               "timestamp": self.timestamp, "currency": "USD",
                               "customer_id": "pipelinectl-send-test"}
        if with_type:
            doc["type"] = self.type
        return json.dumps(doc).replace('"@AMOUNT@"', str(self.amount))


@dataclass(frozen=True)
class Sent:
    """What was published and how; the start of the latency clock."""

    txn: TestTransaction
    via: Via
    reference: str  # SNS/SQS message id, or the s3:// URI of the object
    path: tuple[str, ...]
    expect_alert: bool
    started: float  # clock() just before publishing
    baseline: dict[str, Any] | None = None  # the item as it was before (re-used --id)
    dlq_depth: int = 0


@dataclass
class Seen:
    """What waiting observed; seconds are measured from `Sent.started`."""

    item: dict[str, Any] | None = None
    stored_after: float | None = None
    alerted_after: float | None = None
    dead_letter: dlq.DeadLetter | None = None
    last_dlq_check: float = field(default=-DLQ_CHECK_EVERY)

    def finished(self, expect_alert: bool) -> bool:
        if self.dead_letter is not None:
            return True
        return self.stored_after is not None and (
            not expect_alert or self.alerted_after is not None)


@dataclass(frozen=True)
class SendTestResult:
    transaction_id: str
    amount: str
    via: Via
    reference: str
    path: tuple[str, ...]
    threshold: str
    expect_alert: bool
    waited: bool
    stored: bool
    alerted: bool
    stored_seconds: float | None
    alerted_seconds: float | None
    source: str | None
    outcome: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def latency_seconds(self) -> float | None:
        return self.alerted_seconds if self.expect_alert else self.stored_seconds

    def as_dict(self) -> dict[str, Any]:
        return {"transaction_id": self.transaction_id, "amount": self.amount,
                "via": self.via, "reference": self.reference, "path": list(self.path),
                "threshold": self.threshold, "expect_alert": self.expect_alert,
                "waited": self.waited, "stored": self.stored, "alerted": self.alerted,
                "stored_seconds": _round(self.stored_seconds),
                "alerted_seconds": _round(self.alerted_seconds),
                "latency_seconds": _round(self.latency_seconds), "source": self.source,
                "outcome": self.outcome, "ok": self.ok, "problem": self.problem}


def send_test(ctx: Context, txn: TestTransaction, via: Via = "sns", *, wait: bool = True,
              timeout: float = 60.0, clock: Clock = time.monotonic,
              sleep: Sleep = time.sleep) -> SendTestResult:
    """Publish `txn` via `via`, then (unless `wait` is false) follow it to the table."""
    targets = Targets(ctx)
    with aws_errors(ctx):
        pending = bucket_events.current(ctx) if via == "s3" else None
        if pending is not None:
            raise PipelineError(pending.refusal("send-test --via s3"))
        sent = publish(targets, txn, via, clock)
        if not wait:
            return result(ctx, sent, None)
        seen = follow(targets, sent, timeout, clock=clock, sleep=sleep)
        return result(ctx, sent, seen, diagnose(targets, sent, seen, timeout))


def publish(targets: Targets, txn: TestTransaction, via: Via, clock: Clock) -> Sent:
    """Send one transaction into the pipeline the way a producer on that path would."""
    names = targets.names
    threshold = targets.ctx.config.alert_threshold
    baseline = targets.get_item(txn.transaction_id)
    depth = sum(targets.queue_depth(targets.dlq_url()))
    type_attribute = {"TransactionType": {"DataType": "String", "StringValue": txn.type}}
    tail = (f"SQS {names.queue}", f"Lambda {names.function}", f"DynamoDB {names.table}")
    alert = (f"SNS {names.alerts_topic} (alert)",) if txn.amount > threshold else ()
    started = clock()
    if via == "sns":
        reference = str(targets.client("sns").publish(
            TopicArn=targets.ingest_topic_arn, Message=txn.json(with_type=False),
            MessageAttributes=type_attribute)["MessageId"])
        path: tuple[str, ...] = (f"SNS {names.ingest_topic}", *tail, *alert)
    elif via == "sqs":
        reference = str(targets.client("sqs").send_message(
            QueueUrl=targets.queue_url(), MessageBody=txn.json(with_type=False),
            MessageAttributes=type_attribute)["MessageId"])
        path = (*tail, *alert)
    else:
        key = f"{SEND_TEST_PREFIX}{txn.transaction_id}.jsonl"
        targets.client("s3").put_object(Bucket=names.bucket, Key=key,
                                        Body=(txn.json(with_type=True) + "\n").encode(),
                                        ContentType="application/x-ndjson")
        reference = f"s3://{names.bucket}/{key}"
        path = (reference, f"EventBridge {names.rule}", f"SNS {names.ingest_topic}", *tail,
                *alert)
    return Sent(txn, via, reference, path, txn.amount > threshold, started, baseline, depth)


def follow(targets: Targets, sent: Sent, timeout: float, *, clock: Clock = time.monotonic,
           sleep: Sleep = time.sleep) -> Seen:
    """Poll until stored (and alerted when expected), in the DLQ, or `timeout` passed."""
    seen = Seen()
    delay = 0.05
    while True:
        look(targets, sent, seen, clock() - sent.started)
        left = sent.started + timeout - clock()
        if seen.finished(sent.expect_alert) or left <= 0:
            return seen
        sleep(min(delay, left))
        delay = min(delay * 1.5, MAX_POLL_DELAY)


def look(targets: Targets, sent: Sent, seen: Seen, elapsed: float) -> None:
    """One observation: the item (new or changed since we sent), then maybe the DLQ."""
    item = targets.get_item(sent.txn.transaction_id)
    if item is not None and _is_ours(item, sent):
        seen.item = item
        if seen.stored_after is None:
            seen.stored_after = elapsed
        if item.get("alerted_at") and seen.alerted_after is None:
            seen.alerted_after = elapsed
    if seen.stored_after is None and elapsed - seen.last_dlq_check >= DLQ_CHECK_EVERY:
        seen.last_dlq_check = elapsed
        if sum(targets.queue_depth(targets.dlq_url())) > sent.dlq_depth:
            seen.dead_letter = dlq.find(targets.ctx, sent.txn.transaction_id)


def _is_ours(item: dict[str, Any], sent: Sent) -> bool:
    """A re-used --id may already be stored: only a new write (processed_at) counts."""
    if sent.baseline is None:
        return True
    return bool(item.get("processed_at") != sent.baseline.get("processed_at")
                or item.get("timestamp") == sent.txn.timestamp)


def diagnose(targets: Targets, sent: Sent, seen: Seen, timeout: float) -> str | None:
    """None when all went as expected; otherwise one sentence on where it got stuck."""
    txn_id = sent.txn.transaction_id
    if seen.dead_letter is not None:
        return (f"Transaction {txn_id} is in the DLQ: {seen.dead_letter.reason}; see "
                "`pipelinectl dlq list`.")
    if seen.stored_after is not None:
        if sent.expect_alert and seen.alerted_after is None:
            return (f"Transaction {txn_id} was stored, no alert yet after {timeout:g}s "
                    f"(amount {sent.txn.amount} > threshold); check `pipelinectl logs`.")
        return None
    letter = dlq.find(targets.ctx, txn_id)
    if letter is not None:
        seen.dead_letter = letter
        return f"Transaction {txn_id} is in the DLQ: {letter.reason}; see `pipelinectl dlq list`."
    if sent.via == "s3":
        reason = _rejected(targets, sent)
        if reason:
            return f"Transaction {txn_id} was rejected by the file reader: {reason}."
    return _nothing_arrived(targets, sent, timeout)


def _rejected(targets: Targets, sent: Sent) -> str | None:
    """The rejects object the processor writes for an invalid file row, if any."""
    key = (f"rejected/{SEND_TEST_PREFIX.removeprefix('incoming/')}"
           f"{sent.txn.transaction_id}.jsonl.errors.jsonl")
    s3 = targets.client("s3")
    try:
        body = s3.get_object(Bucket=targets.names.bucket, Key=key)["Body"].read()
    except Exception:
        return None
    first = json.loads(body.decode().splitlines()[0])
    return f"{first.get('reason')} (s3://{targets.names.bucket}/{key})"


def _nothing_arrived(targets: Targets, sent: Sent, timeout: float) -> str:
    visible, in_flight = targets.queue_depth(targets.queue_url())
    states = targets.mapping_states()
    facts = [f"{visible} waiting and {in_flight} in flight in {targets.names.queue}"]
    if not states:
        facts.append("the queue has no event source mapping (run `pipelinectl subscribe`)")
    elif "Enabled" not in states:
        facts.append(f"its event source mapping is {', '.join(states)}")
    if targets.ctx.config.local:
        question = "is `pipelinectl local` running / is the mapping enabled?"
    else:
        question = "is the event source mapping enabled? See `pipelinectl status` and logs."
    return (f"Nothing arrived for transaction {sent.txn.transaction_id} after {timeout:g}s "
            f"({'; '.join(facts)}): {question}")


def result(ctx: Context, sent: Sent, seen: Seen | None,
           problem: str | None = None) -> SendTestResult:
    stored = seen is not None and seen.stored_after is not None
    alerted = seen is not None and seen.alerted_after is not None
    if seen is None:
        outcome = "sent (not waiting)"
    elif problem is not None:
        outcome = ("in the DLQ" if seen.dead_letter else
                   "stored, no alert yet" if stored else "not stored")
    elif sent.expect_alert:
        outcome = "stored and alerted"
    else:
        outcome = "stored (below the threshold: no alert expected)"
    item = seen.item if seen is not None else None
    return SendTestResult(
        transaction_id=sent.txn.transaction_id, amount=str(sent.txn.amount), via=sent.via,
        reference=sent.reference, path=sent.path, threshold=str(ctx.config.alert_threshold),
        expect_alert=sent.expect_alert, waited=seen is not None, stored=stored,
        alerted=alerted, stored_seconds=seen.stored_after if seen else None,
        alerted_seconds=seen.alerted_after if seen else None,
        source=str(item["source"]) if item and "source" in item else None,
        outcome=outcome, problem=problem)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
