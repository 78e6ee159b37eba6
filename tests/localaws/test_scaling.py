"""Lambda's SQS scaling on the local AWS: concurrent batches, MaximumConcurrency, reserved
concurrency (throttling), ConcurrentExecutions and Throttles.

AWS sources: Lambda Developer Guide "Configuring scaling behavior for SQS event source
mappings" (five concurrent batches to start, up to 300 more per minute, MaximumConcurrency
2-1000) and "Handling errors for an SQS event source" (a throttled batch is retried until its
visibility timeout, then returns to the queue); "Configuring reserved concurrency" (0: the
function processes nothing).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from localaws_helpers import Local
from polling import wait_for

# Each record: which process ran it, and when it started and ended (epoch seconds).
TIMED = """
import json, os, time

def handler(event, context):
    start = time.time()
    time.sleep(float(os.environ.get("SLEEP", "0.4")))
    with open(os.environ["OUT_FILE"], "a") as out:
        for r in event["Records"]:
            out.write(json.dumps({"body": r["body"], "pid": os.getpid(), "start": start,
                                  "end": time.time()}) + "\\n")
    return {"batchItemFailures": []}
"""


def _runs(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def _peak_overlap(runs: list[dict[str, Any]]) -> int:
    """The most invocations that were running at one instant (one per distinct start)."""
    spans = {(r["pid"], r["start"]): r["end"] for r in runs}
    edges = sorted([(s, 1) for _, s in spans] + [(e, -1) for e in spans.values()],
                   key=lambda edge: (edge[0], edge[1]))
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def _setup(local: Local, out: Path, *, scaling: dict[str, int] | None = None,
           visibility: int = 30, sleep: float = 0.4) -> tuple[str, str]:
    name = local.name("scale")
    url, arn = local.queue(f"{name}-in", VisibilityTimeout=str(visibility))
    local.function(name, TIMED, Timeout=5,
                   Environment={"Variables": {"OUT_FILE": str(out), "SLEEP": str(sleep)}})
    extra: dict[str, Any] = {"ScalingConfig": scaling} if scaling else {}
    local.mapping(arn, name, BatchSize=1, FunctionResponseTypes=["ReportBatchItemFailures"],
                  **extra)
    return name, url


def _send(local: Local, url: str, count: int) -> None:
    sqs = local.client("sqs")
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(count, start + 10))])


def _metric(local: Local, name: str, function: str, statistic: str) -> float:
    now = dt.datetime.now(dt.UTC)
    points = local.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName=name,
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1),
        Period=60, Statistics=[statistic])["Datapoints"]
    values = [p[statistic] for p in points]
    return float(max(values, default=0.0) if statistic == "Maximum" else sum(values))


def test_a_backlog_runs_several_batches_at_once_in_separate_environments(
        local: Local, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    name, url = _setup(local, out)
    _send(local, url, 30)
    runs = wait_for(lambda: len(got := _runs(out)) >= 30 and got, timeout=60)
    assert sorted(r["body"] for r in runs) == sorted(f"m{i}" for i in range(30))
    assert _peak_overlap(runs) >= 5  # Lambda starts with five concurrent batches
    assert len({r["pid"] for r in runs}) >= 5  # one execution environment per batch
    assert wait_for(lambda: _metric(local, "ConcurrentExecutions", name, "Maximum") >= 5,
                    timeout=15)


def test_maximum_concurrency_caps_the_concurrent_batches(local: Local, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _, url = _setup(local, out, scaling={"MaximumConcurrency": 2})
    _send(local, url, 12)
    runs = wait_for(lambda: len(got := _runs(out)) >= 12 and got, timeout=60)
    assert _peak_overlap(runs) == 2


def test_reserved_concurrency_zero_runs_nothing_counts_throttles_and_keeps_the_message(
        local: Local, tmp_path: Path) -> None:
    from moto.sqs.models import sqs_backends

    out = tmp_path / "out.jsonl"
    name, url = _setup(local, out)
    local.client("lambda").put_function_concurrency(FunctionName=name,
                                                    ReservedConcurrentExecutions=0)
    local.client("sqs").send_message(QueueUrl=url, MessageBody="held")
    assert wait_for(lambda: _metric(local, "Throttles", name, "Sum") >= 3, timeout=20)
    assert not out.exists()  # nothing ran
    queue = sqs_backends["123456789012"]["us-east-1"].queues[f"{name}-in"]
    assert [m.body for m in queue._messages] == ["held"]  # still in the queue, not deleted
    assert _metric(local, "Invocations", name, "Sum") == 0


def test_reserved_concurrency_bounds_executions_and_throttled_batches_still_complete(
        local: Local, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    name, url = _setup(local, out, visibility=60, sleep=0.3)
    local.client("lambda").put_function_concurrency(FunctionName=name,
                                                    ReservedConcurrentExecutions=1)
    _send(local, url, 8)
    runs = wait_for(lambda: len(got := _runs(out)) >= 8 and got, timeout=60)
    assert sorted(r["body"] for r in runs) == sorted(f"m{i}" for i in range(8))
    assert _peak_overlap(runs) == 1
    assert wait_for(lambda: _metric(local, "Throttles", name, "Sum") >= 1, timeout=15)
