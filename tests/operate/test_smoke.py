"""The smoke test's sample and its judgement; the fake clock's hook plays the processor."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal

from pipelinectl.operate import smoke
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context

from .conftest import FakeTime, operations, put_item


def test_sample_has_valid_invalid_and_over_threshold_rows() -> None:
    sample = smoke.Sample.make(Decimal("1000"), "run1")
    rows = list(csv.DictReader(io.StringIO(sample.csv_text)))
    assert [r["transaction_id"] for r in rows] == [f"run1-{i}" for i in range(1, 7)]
    assert sample.valid == ("run1-1", "run1-2", "run1-3")
    assert sample.invalid == {"run1-4": 4, "run1-5": 5, "run1-6": 6}
    assert Decimal(rows[1]["amount"]) > 1000 and sample.alert == "run1-2"
    assert Decimal(smoke.Sample.make(Decimal("5000"), "r").csv_text.splitlines()[2]
                   .split(",")[1]) == Decimal("5500.00")


def _processor(ctx: Context, targets: Targets, sample: smoke.Sample, key: str,
               *, alert: bool = True, loop: bool = False) -> Callable[[int], None]:
    """What a healthy processor does with the sample, on the second poll."""

    def hook(sleeps: int) -> None:
        if sleeps != 2:
            return
        for row, txn_id in enumerate(sample.valid, start=1):
            extra = {"alerted_at": "2024-01-01T00:00:00Z"} if alert and txn_id == sample.alert \
                else {}
            put_item(ctx, transaction_id=txn_id, amount=Decimal(1), source=f"s3://"
                     f"{ctx.names.bucket}/{key}#{row}", processed_at="x", **extra)
        put_item(ctx, transaction_id=sample.sns_id, amount=Decimal(42), source="sns",
                 processed_at="x")
        rejects = "".join(json.dumps({"row": r, "reason": "bad"}) + "\n"
                          for r in sample.invalid.values())
        rejects_key = "rejected/" + key.removeprefix("incoming/") + ".errors.jsonl"
        if loop:
            rejects_key = "incoming/" + rejects_key
        targets.client("s3").put_object(Bucket=ctx.names.bucket, Key=rejects_key,
                                        Body=rejects.encode())

    return hook


def test_a_healthy_pipeline_passes_every_check(ctx: Context, targets: Targets,
                                               fake_time: FakeTime) -> None:
    sample = smoke.Sample.make(ctx.config.alert_threshold, "run2")
    key = "incoming/smoke/run2.csv"
    fake_time.on_sleep.append(_processor(ctx, targets, sample, key))
    result = smoke.run(ctx, 30, run_id="run2", clock=fake_time.clock, sleep=fake_time.sleep)
    assert result.ok, result.as_dict()
    assert len(result.checks) == 7
    assert fake_time.sleeps == 2  # stopped as soon as everything was there
    assert result.file == f"s3://{ctx.names.bucket}/{key}"
    publish = next(c.params for c in ctx.factory.calls if c.operation == "Publish")
    assert json.loads(publish["Message"])["transaction_id"] == "run2-sns"
    assert operations(ctx, "dynamodb").count("BatchGetItem") == 3


def test_failures_are_named(ctx: Context, targets: Targets, fake_time: FakeTime) -> None:
    sample = smoke.Sample.make(ctx.config.alert_threshold, "run3")
    key = "incoming/smoke/run3.csv"
    fake_time.on_sleep.append(_processor(ctx, targets, sample, key, alert=False, loop=True))
    put_item(ctx, transaction_id="run3-4", amount=Decimal(1), source="x", processed_at="x")
    result = smoke.run(ctx, 5, run_id="run3", clock=fake_time.clock, sleep=fake_time.sleep)
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert set(failed) == {"over-threshold row alerted", "invalid rows not stored",
                           "rejects written under rejected/",
                           "nothing looped back under incoming/"}
    assert "run3-4" in failed["invalid rows not stored"]
    assert "incoming/rejected/smoke/run3.csv.errors.jsonl" in failed[
        "nothing looped back under incoming/"]


def test_nothing_processed_fails_after_the_timeout(ctx: Context,
                                                   fake_time: FakeTime) -> None:
    result = smoke.run(ctx, 3, run_id="run4", clock=fake_time.clock, sleep=fake_time.sleep)
    assert not result.ok
    assert fake_time.now - 1000 >= 3
    assert {c.name for c in result.checks if c.ok} == {
        "invalid rows not stored", "nothing looped back under incoming/",
        "no sample message in the DLQ"}
