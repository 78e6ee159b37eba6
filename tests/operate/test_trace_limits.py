"""trace's log searches within FilterLogEvents' limits, checked from the recorded calls:
a filterPattern of at most 1024 characters (CloudWatch Logs API Reference, FilterLogEvents),
every page followed, and the search bounded in time (startTime and endTime)."""

from __future__ import annotations

import time
import uuid

from pipelinectl.operate import trace
from pipelinectl.resources.base import Context

PATTERN_LIMIT = 1024


def test_invocations_are_looked_up_in_bounded_calls(ctx: Context) -> None:
    logs = ctx.client("logs")
    group = ctx.names.log_group
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    events = []
    for i, rid in enumerate(ids):
        events += [{"timestamp": now - 5000 + i, "message": f"START RequestId: {rid} Version: 1"},
                   {"timestamp": now - 4000 + i,
                    "message": f"REPORT RequestId: {rid}\tDuration: {i + 1}.50 ms\t"
                               f"Billed Duration: {i + 2} ms\tMemory Size: 256 MB\t"
                               f"Max Memory Used: 60 MB"}]
    events += [{"timestamp": now - 3000, "message": "REPORT RequestId: someone-else\t"
                                                   "Duration: 1.00 ms\tBilled Duration: 1 ms"}]
    events.sort(key=lambda e: int(e["timestamp"]))  # PutLogEvents wants them in order
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events)
    ctx.factory.calls.clear()
    missing: list[str] = []
    found = trace.invocations(ctx, ids, now - 60_000, now, missing)
    assert missing == []
    assert [f["request_id"] for f in found] == ids
    assert found[3]["duration_ms"] == 4.5 and found[3]["billed_ms"] == 5
    assert found[3]["max_memory_mb"] == 60 and found[3]["started_ms"] == now - 5000 + 3
    calls = [c for c in ctx.factory.calls if c.operation == "FilterLogEvents"]
    assert len(calls) == 3  # 40 ids, 15 per call
    for call in calls:
        assert len(call.params["filterPattern"]) <= PATTERN_LIMIT
        assert (call.params["startTime"], call.params["endTime"]) == (now - 60_000, now)


def test_a_missing_report_is_stated_with_the_window(ctx: Context) -> None:
    logs = ctx.client("logs")
    logs.create_log_group(logGroupName=ctx.names.log_group)
    missing: list[str] = []
    now = int(time.time() * 1000)
    (entry,) = trace.invocations(ctx, ["r-gone"], now - 1000, now, missing)
    assert entry == {"request_id": "r-gone"}
    assert missing and "no REPORT line for invocation r-gone" in missing[0]
    assert "retention is 14 days" not in trace.retention_note(ctx, now - 1000, now)
    logs.put_retention_policy(logGroupName=ctx.names.log_group, retentionInDays=14)
    assert "retention is 14 days" in trace.retention_note(ctx, now - 1000, now)
