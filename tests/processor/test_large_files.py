"""Large files across invocations (issue 12), against moto in-process: split into parts on
the pipeline's own queue, resumed by continuation before the deadline, every row stored once,
every over-threshold row alerted once, every bad row rejected, the run's completion recorded.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from lambda_src.split import WORK_MARKER

from .conftest import BUCKET, Pipeline

TS = "2024-08-09T12:34:56Z"


def rows(n: int, prefix: str) -> tuple[list[dict[str, Any]], set[str], set[int]]:
    """n rows: every 97th invalid (amount 0), every 101st over the threshold."""
    out, big, bad = [], set(), set()
    for i in range(1, n + 1):
        amount = "0" if i % 97 == 0 else ("1500.00" if i % 101 == 0 else f"{i % 900 + 1}.25")
        out.append({"transaction_id": f"{prefix}-{i}", "amount": amount, "timestamp": TS})
        if i % 97 == 0:
            bad.add(i)
        elif i % 101 == 0:
            big.add(f"{prefix}-{i}")
    return out, big, bad


def as_csv(data: list[dict[str, Any]]) -> bytes:
    return ("transaction_id,amount,timestamp\n" + "".join(
        f"{r['transaction_id']},{r['amount']},{r['timestamp']}\n" for r in data)).encode()


def drop(pipeline: Pipeline, key: str, body: bytes) -> None:
    pipeline.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": key, "size": len(body)}}})


def run_until_idle(pipeline: Pipeline, timeout_s: float = 60.0) -> int:
    """Invoke with batches of 10 (the default batch size) until the queue is empty."""
    invocations = 0
    while batch := pipeline.receive(limit=10)[:10]:
        assert pipeline.invoke(pipeline.event(batch), timeout_s) == {"batchItemFailures": []}
        for message in batch:
            pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])
        invocations += 1
        assert invocations < 500
    return invocations


def rejected_rows(pipeline: Pipeline) -> list[int]:
    keys = [o["Key"] for o in pipeline.s3.list_objects_v2(
        Bucket=BUCKET, Prefix="rejected/").get("Contents", [])]
    return sorted(e["row"] for k in keys for e in pipeline.rejects(k))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline) -> Pipeline:
    monkeypatch.setenv("PART_BYTES", str(64 * 1024))
    monkeypatch.setenv("SPLIT_THRESHOLD_BYTES", str(64 * 1024))
    pipeline.runtime = pipeline.make_runtime()
    return pipeline


def test_a_large_csv_is_split_into_parts_and_stored_once(small_parts: Pipeline) -> None:
    pipeline = small_parts
    data, big, bad = rows(4000, "s")
    drop(pipeline, "incoming/big.csv", as_csv(data))
    run_until_idle(pipeline)
    sent = [c for c in pipeline.recorder.ops("SendMessageBatch")
            if c.params["QueueUrl"] == pipeline.queue_url]
    parts = [json.loads(e["MessageBody"]) for c in sent for e in c.params["Entries"]]
    assert len(parts) >= 3 and all(p[WORK_MARKER] == 1 and p["kind"] == "part" for p in parts)
    assert len(pipeline.recorder.ops("GetObject")) >= len(parts)  # each part reads its range
    assert all(c.params.get("IfMatch") for c in pipeline.recorder.ops("GetObject")[1:])
    items = pipeline.items()
    assert set(items) == {r["transaction_id"] for i, r in enumerate(data, 1) if i not in bad}
    assert items["s-202"]["source"] == f"s3://{BUCKET}/incoming/big.csv#202"  # file's numbers
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    run = pipeline.runs()[f"s3://{BUCKET}/incoming/big.csv"]
    assert run["run_mode"] == "split" and run["totals"]["parts"] == len(parts)
    assert (run["totals"]["rows"], run["totals"]["stored"], run["totals"]["rejected"]) == (
        4000, 4000 - len(bad), len(bad))
    assert pipeline.dead_letters() == []


def test_a_gzip_is_resumed_by_continuation_before_the_deadline(small_parts: Pipeline) -> None:
    pipeline = small_parts
    # Every chunk of 100 rows takes "1 s": a 10 s invocation hands on after about 8 chunks.
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)
    data, big, bad = rows(2500, "g")
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in data))
    drop(pipeline, "incoming/big.jsonl.gz", body)
    invocations = run_until_idle(pipeline, timeout_s=10)
    assert invocations >= 3
    assert len(pipeline.items()) == 2500 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    run = pipeline.runs()[f"s3://{BUCKET}/incoming/big.jsonl.gz"]
    assert run["run_mode"] == "resumed" and run["totals"]["slices"] >= 3
    assert run["totals"]["rows"] == 2500 and run["totals"]["unchanged"] == 0  # nothing re-stored


def test_a_crash_mid_part_loses_and_duplicates_nothing(small_parts: Pipeline) -> None:
    pipeline = small_parts
    data, big, bad = rows(3000, "c")
    drop(pipeline, "incoming/crash.csv", as_csv(data))
    pipeline.drain()  # the planner: parts queued
    calls = {"n": 0}

    def crash(_chunk: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise SystemExit("worker killed")  # not an Exception: nothing catches it

    pipeline.runtime.persister.after_read = crash
    batch = pipeline.receive(limit=1)[:1]
    with pytest.raises(SystemExit):
        pipeline.invoke(pipeline.event(batch))
    pipeline.runtime.persister.after_read = None
    pipeline.clock.advance(3600)  # the message comes back after its visibility timeout
    pipeline.sqs.change_message_visibility(QueueUrl=pipeline.queue_url,
                                           ReceiptHandle=batch[0]["ReceiptHandle"],
                                           VisibilityTimeout=0)
    run_until_idle(pipeline)
    assert len(pipeline.items()) == 3000 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    totals = pipeline.runs()[f"s3://{BUCKET}/incoming/crash.csv"]["totals"]
    assert totals["stored"] + totals["unchanged"] == 3000 - len(bad)


def test_quoted_newlines_fall_back_to_sequential_from_there(small_parts: Pipeline) -> None:
    pipeline = small_parts
    data, _, bad = rows(3000, "q")
    text = as_csv(data).decode().replace("q-2000,", 'q-2000,"', 1).replace(
        f"q-2000,\"{data[1999]['amount']},", f"q-2000,\"{data[1999]['amount']}\n\",", 1)
    drop(pipeline, "incoming/quoted.csv", text.encode())
    run_until_idle(pipeline)
    items = pipeline.items()
    assert len(items) == 3000 - len(bad) - 1  # q-2000's amount has a newline: rejected
    assert rejected_rows(pipeline) == sorted({*bad, 2000})
    assert pipeline.runs()[f"s3://{BUCKET}/incoming/quoted.csv"]["totals"]["rows"] == 3000
