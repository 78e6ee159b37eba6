"""`test`: the end-to-end smoke test - a sample file through S3 and a message through SNS.

Why these expectations: they are the promises of DESIGN.md section 3 that a broken deploy
breaks first - valid rows land in the table with their source, an over-threshold row is
alerted, invalid rows never block valid ones and go to a rejects object under `rejected/`
(never under `incoming/`, or the pipeline would loop), and single messages flow via SNS.
Every run uses fresh ids, so it can be repeated on a live pipeline without interference.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipelinectl.engine import aws_errors
from pipelinectl.errors import PipelineError
from pipelinectl.operate import dlq
from pipelinectl.operate.fileruns import FileRun, read_file_run
from pipelinectl.operate.targets import Clock, Sleep, Targets
from pipelinectl.resources import bucket_events
from pipelinectl.resources.base import Context

SMOKE_PREFIX = "smoke/"
LOOP_SCAN_PAGES = 20  # 20,000 keys: enough for a test bucket, bounded on a busy one
HEADER = ("transaction_id", "amount", "timestamp", "currency", "customer_id", "type")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class SmokeResult:
    run_id: str
    file: str
    checks: tuple[Check, ...]
    seconds: float
    file_run: FileRun | None = None  # the sample file's run record, as the processor wrote it

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "file": self.file, "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "checks": [check.as_dict() for check in self.checks],
                "file_run": self.file_run.as_dict() if self.file_run else None}


@dataclass(frozen=True)
class Sample:
    """The sample file's rows, and what the pipeline must make of each."""

    run_id: str
    csv_text: str
    valid: tuple[str, ...]
    invalid: dict[str, int]  # id -> row number (1-based, header excluded)
    alert: str
    sns_id: str

    @classmethod
    def make(cls, threshold: Decimal, run_id: str | None = None) -> Sample:
        run = run_id or f"smoke-{uuid.uuid4().hex[:8]}"
        stamp = "2024-08-09T12:34:56Z"
        big = str((threshold + 500).quantize(Decimal("0.01")))
        rows = [
            (f"{run}-1", "25.50", stamp, "USD", "c-1", "Purchase"),
            (f"{run}-2", big, stamp, "USD", "c-2", "Purchase"),
            (f"{run}-3", "99.99", stamp, "EUR", "c-3", "Refund"),
            (f"{run}-4", "-5", stamp, "USD", "c-4", "Purchase"),  # not positive
            (f"{run}-5", "12.345", stamp, "USD", "c-5", "Purchase"),  # 3 decimals
            (f"{run}-6", "10", "", "USD", "c-6", "Purchase"),  # no timestamp
        ]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([HEADER, *rows])
        return cls(run, buffer.getvalue(), (f"{run}-1", f"{run}-2", f"{run}-3"),
                   {f"{run}-4": 4, f"{run}-5": 5, f"{run}-6": 6}, f"{run}-2", f"{run}-sns")


@dataclass
class _State:
    """What the last observation found."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rejects_key: str | None = None
    file_run: FileRun | None = None


def run(ctx: Context, timeout: float = 60.0, *, run_id: str | None = None,
        clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> SmokeResult:
    """Drop the sample, publish the message, wait, then judge every expectation."""
    targets = Targets(ctx)
    sample = Sample.make(ctx.config.alert_threshold, run_id)
    key = f"incoming/{SMOKE_PREFIX}{sample.run_id}.csv"
    started = clock()
    with aws_errors(ctx):
        pending = bucket_events.current(ctx)
        if pending is not None:
            raise PipelineError(pending.refusal("the smoke test"))
        _send(targets, sample, key)
        state = _State()
        while True:
            _observe(targets, sample, state, key)
            if _complete(sample, state) or clock() - started >= timeout:
                break
            sleep(0.25)
        checks = _judge(targets, sample, state, key)
    return SmokeResult(sample.run_id, f"s3://{targets.names.bucket}/{key}", checks,
                       clock() - started, state.file_run)


def _send(targets: Targets, sample: Sample, key: str) -> None:
    targets.client("s3").put_object(Bucket=targets.names.bucket, Key=key,
                                    Body=sample.csv_text.encode(), ContentType="text/csv")
    message = {"transaction_id": sample.sns_id, "amount": 42,
               "timestamp": "2024-08-09T12:34:56Z"}
    targets.client("sns").publish(
        TopicArn=targets.ingest_topic_arn, Message=json.dumps(message),
        MessageAttributes={"TransactionType": {"DataType": "String",
                                               "StringValue": "Purchase"}})


def _observe(targets: Targets, sample: Sample, state: _State, key: str) -> None:
    state.items.update(targets.get_items([*sample.valid, sample.sns_id, *sample.invalid]))
    if state.file_run is None or state.file_run.state == "running":
        state.file_run = read_file_run(targets.client("dynamodb"), targets.names.table,
                                       targets.names.bucket, key)
    if state.rejects_key is None:
        state.rejects_key = _find_rejects(targets, sample.run_id)
    if state.rejects_key is not None and not state.rejects:
        body = targets.client("s3").get_object(Bucket=targets.names.bucket,
                                               Key=state.rejects_key)["Body"].read()
        state.rejects = [json.loads(line) for line in body.decode().splitlines() if line]


def _complete(sample: Sample, state: _State) -> bool:
    stored = all(t in state.items for t in (*sample.valid, sample.sns_id))
    alerted = bool(state.items.get(sample.alert, {}).get("alerted_at"))
    finished = state.file_run is not None and state.file_run.state != "running"
    return stored and alerted and bool(state.rejects) and finished


def _judge(targets: Targets, sample: Sample, state: _State, key: str) -> tuple[Check, ...]:
    bucket = targets.names.bucket
    valid = [t for t in sample.valid if t in state.items]
    sources_ok = all(str(state.items[t].get("source", "")).startswith(f"s3://{bucket}/{key}#")
                     for t in valid)
    stored_invalid = sorted(t for t in sample.invalid if t in state.items)
    alerted_at = state.items.get(sample.alert, {}).get("alerted_at")
    sns_item = state.items.get(sample.sns_id)
    return (
        Check("valid file rows stored", len(valid) == len(sample.valid) and sources_ok,
              f"{len(valid)}/{len(sample.valid)} stored"
              + ("" if sources_ok else "; wrong source attribute")),
        Check("over-threshold row alerted", bool(alerted_at),
              f"{sample.alert} alerted_at {alerted_at}" if alerted_at else
              f"{sample.alert} has no alerted_at"),
        Check("invalid rows not stored", not stored_invalid,
              f"stored: {', '.join(stored_invalid)}" if stored_invalid else
              f"0/{len(sample.invalid)} stored"),
        _rejects_check(sample, state, bucket),
        _run_check(sample, state.file_run),
        Check("SNS message stored", sns_item is not None and sns_item.get("source") == "sns",
              f"{sample.sns_id} source={sns_item.get('source')}" if sns_item else
              f"{sample.sns_id} not stored"),
        _loop_check(targets, sample, key),
        _dlq_check(targets, sample),
    )


def _rejects_check(sample: Sample, state: _State, bucket: str) -> Check:
    name = "rejects written under rejected/"
    if state.rejects_key is None:
        return Check(name, False, f"no object under s3://{bucket}/rejected/ for {sample.run_id}")
    rows = sorted(int(r["row"]) for r in state.rejects if r.get("row") is not None)
    expected = sorted(sample.invalid.values())
    reasons = all(r.get("reason") for r in state.rejects)
    return Check(name, rows == expected and reasons,
                 f"s3://{bucket}/{state.rejects_key}: rows {rows} (expected {expected})")


def _run_check(sample: Sample, run: FileRun | None) -> Check:
    """The processor's record of the file (lambda_src/fileruns.py): what `status` reports."""
    name = "file run recorded complete"
    if run is None:
        return Check(name, False, "no run record for the sample file (a processor older "
                                  "than this CLI? run `pipelinectl lambda`)")
    counts = run.counts
    expected = (len(sample.valid) + len(sample.invalid), len(sample.valid), len(sample.invalid))
    found = (counts.rows, counts.stored + counts.unchanged, counts.rejected)
    detail = (f"{run.state}: {counts.rows} rows, {counts.stored} stored, {counts.unchanged} "
              f"unchanged, {counts.rejected} rejected (expected {expected[0]}, {expected[1]}, "
              f"{expected[2]})")
    if run.failed_reason:
        detail += f"; {run.failed_reason}"
    return Check(name, run.state == "complete" and found == expected, detail)


def _loop_check(targets: Targets, sample: Sample, key: str) -> Check:
    keys, complete = _incoming_keys(targets)
    extra = sorted(k for k in keys if sample.run_id in k and k != key)
    scope = "" if complete else f" (first {len(keys)} keys checked)"
    return Check("nothing looped back under incoming/", not extra,
                 f"written under incoming/: {', '.join(extra[:3])}" if extra else
                 f"only the sample file is under incoming/{scope}")


def _dlq_check(targets: Targets, sample: Sample) -> Check:
    letters = [d for d in dlq.peek(targets.ctx, 100) if sample.run_id in d.body]
    return Check("no sample message in the DLQ", not letters,
                 f"{len(letters)} in the DLQ: {letters[0].reason}" if letters else
                 "none (file rows are rejected into the rejects object)")


def _find_rejects(targets: Targets, run_id: str) -> str | None:
    response = targets.client("s3").list_objects_v2(
        Bucket=targets.names.bucket, Prefix=f"rejected/{SMOKE_PREFIX}{run_id}")
    keys = [str(o["Key"]) for o in response.get("Contents", [])]
    return keys[0] if keys else None


def _incoming_keys(targets: Targets) -> tuple[list[str], bool]:
    """Keys under incoming/ (anything derived from the sample and written back there would
    carry its run id), up to LOOP_SCAN_PAGES pages; and whether that was all of them."""
    s3 = targets.client("s3")
    keys: list[str] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=targets.names.bucket,
                                                         Prefix="incoming/")
    for number, page in enumerate(pages, start=1):
        keys.extend(str(o["Key"]) for o in page.get("Contents", []))
        if number >= LOOP_SCAN_PAGES and page.get("IsTruncated"):
            return keys, False
    return keys, True
