"""Large files across invocations (issue 12), against moto in-process: split into parts on
the pipeline's own queue, resumed by continuation before the deadline, every row stored once,
every over-threshold row alerted once, every bad row rejected, the run's completion recorded.

The files are small and so are the parts (a few KiB, below the 64 KiB a deployed function
accepts, set on the settings directly), to keep the tests quick; the code paths are the same
at any size (tests/operate/test_large_files_e2e.py drops larger ones on `pipelinectl local`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sample_rows import rows

from lambda_src.split import WORK_MARKER

from .conftest import BUCKET, Pipeline


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


def with_parts(pipeline: Pipeline, part_bytes: int) -> Pipeline:
    """Parts (and the split threshold) of ``part_bytes``: the settings a deployed function
    reads from PART_BYTES / SPLIT_THRESHOLD_BYTES, made smaller than their 64 KiB floor."""
    settings = replace(pipeline.runtime.settings, part_bytes=part_bytes,
                       split_threshold_bytes=part_bytes)
    pipeline.runtime.settings = pipeline.runtime.files.settings = settings
    return pipeline


@pytest.fixture
def small_parts(pipeline: Pipeline) -> Pipeline:
    assert pipeline.runtime.settings.queue_url == pipeline.queue_url
    return with_parts(pipeline, 2 * 1024)  # about 58 rows a part


def test_a_large_csv_is_split_into_parts_and_stored_once(small_parts: Pipeline) -> None:
    pipeline = small_parts
    data, big, bad = rows(250, "s")
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
        250, 250 - len(bad), len(bad))
    assert pipeline.dead_letters() == []


def test_a_gzip_is_resumed_by_continuation_before_the_deadline(small_parts: Pipeline) -> None:
    pipeline = small_parts
    # Every chunk of 100 rows takes "1 s": a 2.5 s invocation keeps 2 s back (GUARD_MS) and
    # hands on after each chunk.
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)
    data, big, bad = rows(300, "g")
    body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in data))
    drop(pipeline, "incoming/big.jsonl.gz", body)
    invocations = run_until_idle(pipeline, timeout_s=2.5)
    assert invocations >= 3
    assert len(pipeline.items()) == 300 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    run = pipeline.runs()[f"s3://{BUCKET}/incoming/big.jsonl.gz"]
    assert run["run_mode"] == "resumed" and run["totals"]["slices"] >= 3
    assert run["totals"]["rows"] == 300 and run["totals"]["unchanged"] == 0  # nothing re-stored


def test_a_slice_is_recorded_before_its_continuation_can_run(small_parts: Pipeline) -> None:
    """The continuation may run at once in another invocation and finish the run: the slice
    that sends it must already be in the run's record, or the totals miss its rows (seen on
    `pipelinectl local`: a split CSV of 6,000 rows completed with rows = 5,091)."""
    pipeline = small_parts
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)
    data, _, _ = rows(300, "o")
    uri = f"s3://{BUCKET}/incoming/order.jsonl.gz"
    missing: list[str] = []

    def recorded_before_sent(params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            work = json.loads(entry["MessageBody"])
            if work.get(WORK_MARKER) and work["slice"] > 1:
                sender = f"p{work['part']:05d}s{work['slice'] - 1:04d}"
                if sender not in (pipeline.runs().get(uri, {}).get("slice_ids") or set()):
                    missing.append(sender)

    pipeline.runtime.files.sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", recorded_before_sent)
    drop(pipeline, "incoming/order.jsonl.gz",
         gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in data)))
    assert run_until_idle(pipeline, timeout_s=2.5) >= 3
    assert missing == []
    assert pipeline.runs()[uri]["totals"]["rows"] == 300


def test_a_crash_mid_part_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    data, big, bad = rows(300, "c")
    body = as_csv(data)
    with_parts(pipeline, len(body) // 2)  # two parts of 150 rows: two chunks each
    drop(pipeline, "incoming/crash.csv", body)
    pipeline.drain()  # the planner: parts queued
    calls = {"n": 0}

    def crash(_chunk: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first part's second chunk
            raise SystemExit("worker killed")  # not an Exception: nothing catches it

    pipeline.runtime.persister.after_read = crash
    batch = pipeline.sqs.receive_message(  # one part; the other stays visible
        QueueUrl=pipeline.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"],
        MessageAttributeNames=["All"], VisibilityTimeout=300)["Messages"]
    with pytest.raises(SystemExit):
        pipeline.invoke(pipeline.event(batch))
    pipeline.runtime.persister.after_read = None
    pipeline.clock.advance(3600)  # the message comes back after its visibility timeout
    pipeline.sqs.change_message_visibility(QueueUrl=pipeline.queue_url,
                                           ReceiptHandle=batch[0]["ReceiptHandle"],
                                           VisibilityTimeout=0)
    run_until_idle(pipeline)
    assert len(pipeline.items()) == 300 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    totals = pipeline.runs()[f"s3://{BUCKET}/incoming/crash.csv"]["totals"]
    assert totals["stored"] + totals["unchanged"] == 300 - len(bad)


def test_quoted_newlines_fall_back_to_sequential_from_there(small_parts: Pipeline) -> None:
    pipeline = small_parts
    data, _, bad = rows(300, "q")
    text = as_csv(data).decode().replace("q-200,", 'q-200,"', 1).replace(
        f"q-200,\"{data[199]['amount']},", f"q-200,\"{data[199]['amount']}\n\",", 1)
    drop(pipeline, "incoming/quoted.csv", text.encode())
    run_until_idle(pipeline)
    items = pipeline.items()
    assert set(items) == {r["transaction_id"] for i, r in enumerate(data, 1) if i not in bad}
    # the record spanning two lines is one row ("201.25\n" is a valid amount), and the rows
    # after it keep their numbers in the file
    assert items["q-200"]["amount"] == Decimal(data[199]["amount"])
    assert items["q-250"]["source"] == f"s3://{BUCKET}/incoming/quoted.csv#250"
    assert rejected_rows(pipeline) == sorted(bad)
    assert pipeline.runs()[f"s3://{BUCKET}/incoming/quoted.csv"]["totals"]["rows"] == 300


def test_a_slice_retried_after_handing_on_does_not_start_a_second_chain(
        small_parts: Pipeline) -> None:
    """The first slice of a gzip hands on, then its invocation times out before SQS hears
    back (seen on `pipelinectl local`: a cold worker's first slice, "timed out after 3s").
    The redelivered event must not read the file again and hand on from its own, later,
    stopping point: that ran the rest of the file twice ("2 running" in the live view) and
    the run's totals mixed slices of both chains."""
    pipeline = small_parts
    data, big, bad = rows(600, "t")
    uri = f"s3://{BUCKET}/incoming/twice.jsonl.gz"
    drop(pipeline, "incoming/twice.jsonl.gz",
         gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in data)))
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)
    event = pipeline.receive()
    assert len(event) == 1
    pipeline.invoke(pipeline.event(event), 2.5)  # one chunk, continuation sent ...
    pipeline.sqs.change_message_visibility(  # ... and no answer: SQS delivers it again
        QueueUrl=pipeline.queue_url, ReceiptHandle=event[0]["ReceiptHandle"],
        VisibilityTimeout=0)
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(0.1)
    messages = pipeline.receive()
    again = [m for m in messages if m["MessageId"] == event[0]["MessageId"]]
    assert again and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    for message in messages:
        if message is not again[0]:
            pipeline.sqs.change_message_visibility(
                QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0)
    assert pipeline.invoke(pipeline.event(again), 2.5) == {"batchItemFailures": []}
    pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                ReceiptHandle=again[0]["ReceiptHandle"])
    run_until_idle(pipeline, timeout_s=2.5)

    sent = [json.loads(e["MessageBody"]) for c in pipeline.recorder.ops("SendMessageBatch")
            if c.params["QueueUrl"] == pipeline.queue_url for e in c.params["Entries"]]
    second = {w["skip"] for w in sent if w["slice"] == 2}
    assert len(second) == 1  # one place the rest of the file starts from
    assert len(pipeline.items()) == 600 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)  # each bad row once
    totals = pipeline.runs()[uri]["totals"]
    assert (totals["rows"], totals["stored"] + totals["unchanged"], totals["rejected"]) == (
        600, 600 - len(bad), len(bad))


@pytest.mark.parametrize("claim_seconds", [0, 0.6])
def test_parts_passed_on_untouched_by_a_busy_invocation_are_still_read(
        small_parts: Pipeline, claim_seconds: float) -> None:
    """Several parts in one batch: once the first has used the time, the others are sent on
    as they are. The copies must be read (a claim taken before passing a part on made its
    copy "already taken": on `pipelinectl local` parts were never read, also when the
    claim's own call was what used up the time)."""
    pipeline = small_parts
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)

    def slow_claim(params: dict[str, Any], **_: Any) -> None:
        if "claimed_by" in params.get("UpdateExpression", ""):
            pipeline.clock.advance(claim_seconds)

    pipeline.runtime.files.runs.client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", slow_claim)
    data, big, bad = rows(250, "b")
    drop(pipeline, "incoming/busy.csv", as_csv(data))
    run_until_idle(pipeline, timeout_s=2.5)
    assert len(pipeline.items()) == 250 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    totals = pipeline.runs()[f"s3://{BUCKET}/incoming/busy.csv"]["totals"]
    assert (totals["rows"], totals["parts"]) == (250, len(as_csv(data)) // 2048 + 1)


def test_a_part_claimed_by_a_timed_out_attempt_then_passed_on_is_read(
        pipeline: Pipeline) -> None:
    """A part's first attempt claims it and dies; its retry lands in a busy batch and is
    passed on untouched. The copy must hold that claim (on `pipelinectl local` it was
    refused as "already taken" and the part was never read: a split CSV stuck at 2/3)."""
    data, big, bad = rows(300, "k")
    body = as_csv(data)
    with_parts(pipeline, len(body) // 3)  # three parts of 100 rows
    drop(pipeline, "incoming/kept.csv", body)
    pipeline.drain()  # the planner: parts queued
    parts = pipeline.receive()
    assert len(parts) == 3

    def crash(_chunk: Any) -> None:
        raise SystemExit("worker killed")  # not an Exception: nothing catches it

    pipeline.runtime.persister.after_read = crash
    with pytest.raises(SystemExit):  # claims part 2, then dies
        pipeline.invoke(pipeline.event(parts[2:]))
    pipeline.runtime.persister.after_read = lambda _chunk: pipeline.clock.advance(1)
    # the retry comes back behind another part that uses the time: passed on untouched
    assert pipeline.invoke(pipeline.event([parts[0], parts[2]]), 2.5) == {
        "batchItemFailures": []}
    for message in parts:
        pipeline.sqs.change_message_visibility(
            QueueUrl=pipeline.queue_url, ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0)
    for message in (parts[0], parts[2]):  # acknowledged by that invocation
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                    ReceiptHandle=message["ReceiptHandle"])
    run_until_idle(pipeline, timeout_s=2.5)
    assert len(pipeline.items()) == 300 - len(bad)
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    assert rejected_rows(pipeline) == sorted(bad)
    totals = pipeline.runs()[f"s3://{BUCKET}/incoming/kept.csv"]["totals"]
    assert (totals["rows"], totals["parts"]) == (300, 3)


def test_the_runtime_is_built_in_the_init_phase_not_the_first_invocation(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """SDK clients are made while Lambda imports the handler (the init phase, outside the
    function timeout), so a new execution environment's first slice has its whole time."""
    from lambda_src import handler

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ecommerce-processor")
    built: list[object] = []
    real = handler.Runtime.from_env
    monkeypatch.setattr(handler.Runtime, "from_env",
                        classmethod(lambda cls, **kw: built.append(1) or real(**kw)))
    handler.reset_runtime(None)
    try:
        handler._init_phase()  # what importing the module runs
        assert built == [1]
        handler.get_runtime()  # the first invocation builds nothing more
        assert built == [1]
    finally:
        handler.reset_runtime(None)
