"""The CLI's reader of a file's run record (pipelinectl/operate/fileruns.py), against records
written by the processor's own writer (lambda_src/fileruns.py) in moto: a record the
processor writes is one the CLI reads, field for field, whatever the run's stage."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from lambda_src.fileruns import FileRuns, SliceCounts, run_key
from lambda_src.split import Work
from pipelinectl.operate.fileruns import (
    Counts,
    latest_file_run,
    parse_uri,
    read_file_run,
)
from pipelinectl.resources.base import Context

BUCKET = "data-bucket"
KEY = "incoming/big.csv"
STARTED = 1_723_200_000.0  # 2024-08-09T10:40:00Z


class Clock:
    def __init__(self) -> None:
        self.now = STARTED

    def __call__(self) -> float:
        return self.now


def work(part: int = 0, run: str = "run-1") -> Work:
    return Work(run=run, bucket=BUCKET, key=KEY, etag='"abc"', size=5_000_000, fmt="csv",
                gzip=False, started_ms=int(STARTED * 1000), kind="part", part=part,
                split=True)


@pytest.fixture
def runs(ctx: Context) -> tuple[FileRuns, Clock]:
    clock = Clock()
    return FileRuns(ctx.client("dynamodb"), ctx.names.table, clock), clock


def read(ctx: Context) -> object:
    return read_file_run(ctx.client("dynamodb"), ctx.names.table, BUCKET, KEY)


def test_a_split_run_reads_as_running_then_complete(ctx: Context,
                                                    runs: tuple[FileRuns, Clock]) -> None:
    writer, clock = runs
    assert read(ctx) is None
    assert latest_file_run(ctx.client("dynamodb"), ctx.names.table) is None
    writer.start(work(), "split")
    writer.set_parts(work(), 2)
    writer.slice_done(work(0), SliceCounts(rows=100, stored=97, unchanged=0, rejected=3),
                      rejects="rejected/big.csv.part-00000.errors.jsonl")
    running = read(ctx)
    assert running is not None and running.state == "running"
    assert (running.mode, running.parts_done, running.parts_total) == ("split", 1, 2)
    assert running.counts == Counts(rows=100, stored=97, unchanged=0, rejected=3)
    assert running.totals is None and running.completed_at is None
    # Nothing has finished yet: the latest pointer is still empty.
    assert latest_file_run(ctx.client("dynamodb"), ctx.names.table) is None

    clock.now += 12.5
    writer.slice_done(work(1), SliceCounts(rows=50, stored=40, unchanged=10, rejected=0),
                      rejects=None)
    done = read(ctx)
    assert done is not None and done.state == "complete"
    assert done.uri == f"s3://{BUCKET}/{KEY}" and done.run_id == "run-1"
    assert done.totals == Counts(rows=150, stored=137, unchanged=10, rejected=3)
    assert done.seconds == 12.5 and (done.parts_done, done.parts_total) == (2, 2)
    assert done.rejects_objects == ("rejected/big.csv.part-00000.errors.jsonl",)
    assert done.started_at is not None and done.started_at.isoformat().startswith("2024-08-09")
    assert done.slice_ids == ("p00000s0001", "p00001s0001")
    latest = latest_file_run(ctx.client("dynamodb"), ctx.names.table)
    assert latest == done
    doc = done.as_dict()
    assert doc["state"] == "complete" and doc["counts"]["stored"] == 137
    assert doc["completed_at"] == "2024-08-09T10:40:12.500000Z"


def test_a_failed_run_reads_with_its_reason(ctx: Context,
                                            runs: tuple[FileRuns, Clock]) -> None:
    writer, _ = runs
    writer.start(work(), "split")
    writer.failed(work(), "s3://data-bucket/incoming/big.csv was replaced (412)")
    failed = latest_file_run(ctx.client("dynamodb"), ctx.names.table)
    assert failed is not None and failed.state == "failed"
    assert failed.failed_reason is not None and "412" in failed.failed_reason
    assert failed.as_dict()["failed_reason"] == failed.failed_reason


def test_a_newer_run_of_the_same_object_is_what_the_reader_shows(
        ctx: Context, runs: tuple[FileRuns, Clock]) -> None:
    writer, clock = runs
    writer.single(work(), SliceCounts(rows=3, stored=3), None)
    clock.now += 60
    newer = Work(**{**work(run="run-2").__dict__, "started_ms": int(clock.now * 1000)})
    writer.start(newer, "split")
    shown = latest_file_run(ctx.client("dynamodb"), ctx.names.table)
    assert shown is not None and (shown.run_id, shown.state) == ("run-2", "running")


def test_uri_parsing() -> None:
    assert parse_uri("s3://b/incoming/a/b.csv") == ("b", "incoming/a/b.csv")
    for bad in ("b/incoming/x.csv", "s3://b", "s3:///k", "s3://b/"):
        with pytest.raises(ValueError, match="s3://bucket/key"):
            parse_uri(bad)


def test_the_reader_imports_no_aws_sdk() -> None:
    """`trace`/`status` import it lazily, but its keys come from lambda_src/runkeys.py, which
    must not pull in Powertools or botocore (the processor's fileruns module does)."""
    code = ("import sys, pipelinectl.operate.fileruns; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'boto3', 'botocore', 'aws_lambda_powertools', 'rich', 'moto'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"


def test_counts_of_a_record() -> None:
    assert Counts.of({"rows": Decimal(5)}) == Counts(rows=5)


def test_a_slice_is_counted_once_however_often_it_is_recorded(
        ctx: Context, runs: tuple[FileRuns, Clock]) -> None:
    """A retry records its slice again (the attempt before it died after counting, or a
    duplicate delivery): the run's counts and parts do not change, and the run completes
    once. A retry of a slice that handed on counts the first attempt's entry, not its own."""
    writer, _ = runs
    writer.start(work(), "split")
    writer.set_parts(work(), 2)
    first = SliceCounts(rows=100, stored=100)
    follow = Work(**{**work(0).__dict__, "start": 4096, "row": 101})
    writer.slice_done(work(0), first, rejects=None, follow=follow)
    writer.slice_done(work(0), SliceCounts(rows=120, stored=0, unchanged=120),
                      rejects=None, follow=follow)  # the retry
    running = read(ctx)
    assert running is not None and running.counts == Counts(rows=100, stored=100)
    go, entry = writer.claim(work(0), "message-1")
    assert go and entry is not None and int(entry["rows"]) == 100
    writer.count(work(0), entry)  # what a retry of it does: nothing new
    for _ in range(2):
        writer.slice_done(work(1), SliceCounts(rows=10, stored=10), rejects=None)
    # A part's last slice is recorded too: its retry finds it done, with nothing to hand on
    # (read again, it could stop short and hand on rows already counted).
    go, last_entry = writer.claim(work(1), "message-2")
    assert go and last_entry is not None and "next" not in last_entry
    assert read(ctx).counts == Counts(rows=110, stored=110)  # type: ignore[union-attr]
    assert read(ctx).state == "running"  # type: ignore[union-attr]  # part 0 not done
    last = Work(**{**follow.__dict__, "slice": 2})
    writer.slice_done(last, SliceCounts(rows=5, stored=5), rejects=None)
    done = read(ctx)
    assert done is not None and done.state == "complete"
    assert done.totals == Counts(rows=115, stored=115) and len(done.slice_ids) == 3


def test_the_run_record_stays_small_however_many_slices(
        ctx: Context, runs: tuple[FileRuns, Clock]) -> None:
    """Slices keep their claims and continuations in items of their own: the run record
    grows by a slice id (~12 bytes) per slice, so a file of thousands of slices stays far
    below DynamoDB's 400 KB item limit (it held ~250 bytes a slice before)."""
    writer, _ = runs
    writer.start(work(), "split")
    writer.set_parts(work(), 300)
    for part in range(300):
        piece = work(part)
        writer.claim(piece, f"message-{part}")
        writer.slice_done(piece, SliceCounts(rows=10, stored=9, rejected=1),
                          rejects=f"rejected/big.csv.part-{part:05d}.errors.jsonl")
    item = ctx.client("dynamodb").get_item(
        TableName=ctx.names.table, Key={"transaction_id": {"S": run_key(BUCKET, KEY)}})["Item"]
    size = len(json.dumps(item))
    done = read(ctx)
    assert done is not None and done.state == "complete" and done.totals == Counts(
        rows=3000, stored=2700, rejected=300)
    assert size < 300 * 100, size  # ids and rejects keys; no per-slice maps


def test_a_stale_run_failing_late_does_not_become_the_latest(
        ctx: Context, runs: tuple[FileRuns, Clock]) -> None:
    """Run 1 of an object fails after run 2 of it started (its parts met the new upload's
    412): the record is run 2's, so "latest" still names the last run that really ended."""
    writer, clock = runs
    other = Work(**{**work(run="a").__dict__, "key": "incoming/other.csv"})
    writer.single(other, SliceCounts(rows=1, stored=1), None)
    writer.start(work(run="run-1"), "split")
    clock.now += 5
    writer.start(Work(**{**work(run="run-2").__dict__, "started_ms": int(clock.now * 1000)}),
                 "split")
    writer.failed(work(run="run-1"), "s3://data-bucket/incoming/big.csv was replaced (412)")
    shown = latest_file_run(ctx.client("dynamodb"), ctx.names.table)
    assert shown is not None and shown.uri == f"s3://{BUCKET}/incoming/other.csv"
    assert read(ctx).failed_reason is None  # type: ignore[attr-defined]
