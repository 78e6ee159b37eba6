"""The smoke test's sample and its judgement; the fake clock's hook plays the processor."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import Decimal

from lambda_src.fileruns import SliceCounts
from pipelinectl.operate import smoke
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context

from .conftest import FakeTime, operations, put_item


def test_the_processor_judges_the_sample_rows_as_the_smoke_test_expects() -> None:
    """What the smoke test expects of each row is checked against the processor's own reader
    and validation (lambda_src), not restated: valid rows validate, the invalid ones are
    refused at the row numbers it waits for, the alert row is over the threshold."""
    from lambda_src.readers import iter_rows
    from lambda_src.validation import Rejected, validate

    threshold = Decimal("1000")
    sample = smoke.Sample.make(threshold, "run1")
    refused: dict[str, int] = {}
    amounts: dict[str, Decimal] = {}
    rows = list(iter_rows(io.BytesIO(sample.csv_text.encode()), "csv", 1 << 20))
    for row in rows:
        assert row.problem is None, row.problem
        try:
            txn = validate(row.value, source="s3")
        except Rejected:
            refused[str(row.value["transaction_id"])] = row.number
        else:
            amounts[txn.transaction_id] = txn.amount
    assert tuple(amounts) == sample.valid
    assert refused == sample.invalid and len(refused) >= 2
    over = [t for t, amount in amounts.items() if amount > threshold]
    assert over == [sample.alert]


def _record(ctx: Context, key: str, counts: SliceCounts) -> None:
    """The sample file's run record, written by the processor's own writer."""
    from lambda_src.fileruns import FileRuns
    from lambda_src.split import Work

    work = Work(run="r1", bucket=ctx.names.bucket, key=key, etag='"e"', size=300, fmt="csv",
                gzip=False, started_ms=1_723_200_000_000)
    FileRuns(ctx.client("dynamodb"), ctx.names.table, lambda: 1_723_200_000.4).single(
        work, counts, "rejected/" + key.removeprefix("incoming/") + ".errors.jsonl")


HEALTHY = SliceCounts(rows=6, stored=3, unchanged=0, rejected=3)


def _processor(ctx: Context, targets: Targets, sample: smoke.Sample, key: str,
               *, alert: bool = True, loop: bool = False,
               record: SliceCounts | None = HEALTHY) -> Callable[[int], None]:
    """What a healthy processor does with the sample, on the second poll."""

    def hook(sleeps: int) -> None:
        if sleeps != 2:
            return
        if record is not None:
            _record(ctx, key, record)
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
    assert len(result.checks) == 8
    assert fake_time.sleeps == 2  # stopped as soon as everything was there
    assert result.file == f"s3://{ctx.names.bucket}/{key}"
    publish = next(c.params for c in ctx.factory.calls if c.operation == "Publish")
    assert json.loads(publish["Message"])["transaction_id"] == "run2-sns"
    assert operations(ctx, "dynamodb").count("BatchGetItem") == 3
    run = result.as_dict()["file_run"]
    assert run["uri"] == result.file and run["state"] == "complete"
    assert (run["counts"]["rows"], run["counts"]["stored"], run["counts"]["rejected"]) == (
        6, 3, 3)


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


def test_a_run_record_with_other_counts_or_none_fails_its_check(
        ctx: Context, targets: Targets, fake_time: FakeTime) -> None:
    sample = smoke.Sample.make(ctx.config.alert_threshold, "run5")
    key = "incoming/smoke/run5.csv"
    wrong = SliceCounts(rows=6, stored=4, unchanged=0, rejected=2)  # a row stored wrongly
    fake_time.on_sleep.append(_processor(ctx, targets, sample, key, record=wrong))
    result = smoke.run(ctx, 5, run_id="run5", clock=fake_time.clock, sleep=fake_time.sleep)
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert set(failed) == {"file run recorded complete"}
    assert "4 stored" in failed["file run recorded complete"]

    sample = smoke.Sample.make(ctx.config.alert_threshold, "run6")
    fake_time.on_sleep[:] = [_processor(ctx, targets, sample, "incoming/smoke/run6.csv",
                                        record=None)]
    fake_time.sleeps = 0
    result = smoke.run(ctx, 5, run_id="run6", clock=fake_time.clock, sleep=fake_time.sleep)
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert set(failed) == {"file run recorded complete"}
    assert "pipelinectl lambda" in failed["file run recorded complete"]
    assert result.file_run is None and result.as_dict()["file_run"] is None
