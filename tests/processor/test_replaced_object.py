"""A large file overwritten while its parts run (issue 12): every part reads with a ranged
GET pinned by ``IfMatch`` to the ETag the planner saw. S3 answers 412 PreconditionFailed when
the object no longer has that ETag (S3 API Reference, GetObject, ``If-Match``: "Return the
object only if its entity tag (ETag) is the same as the one specified in this header;
otherwise, return a 412 Precondition Failed error"; the same text in the SDK reference,
https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/s3/aws.sdk.kotlin.services.s3.model/-get-object-request/if-match.html).
moto 5.2 checks If-Match before it applies the Range (moto/s3/responses.py ``_get_key``), as
the first test shows, so no motocompat patch is needed.

The old run must stop (no row of the new version read under the old run's plan, no retry
loop ending in the DLQ), say why in its record, and the new object's own event makes a new
run that stores the new version whole.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from .conftest import BUCKET, Pipeline
from .test_large_files import as_csv, drop, rows, run_until_idle, with_parts

KEY = "incoming/replaced.csv"


def test_s3_refuses_a_ranged_get_whose_if_match_is_an_older_etag(pipeline: Pipeline) -> None:
    old = pipeline.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"a" * 100)["ETag"]
    pipeline.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"b" * 100)
    with pytest.raises(ClientError) as caught:
        pipeline.s3.get_object(Bucket=BUCKET, Key=KEY, IfMatch=old, Range="bytes=10-19")
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "PreconditionFailed", 412)


def test_a_file_replaced_between_its_parts_stops_its_run_and_the_new_upload_runs_whole(
        pipeline: Pipeline) -> None:
    with_parts(pipeline, 2 * 1024)
    old, _, _ = rows(200, "old")
    drop(pipeline, KEY, as_csv(old))
    planner = pipeline.receive(limit=1)
    assert pipeline.invoke(pipeline.event(planner)) == {"batchItemFailures": []}
    pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                ReceiptHandle=planner[0]["ReceiptHandle"])
    parts = pipeline.receive()
    assert len(parts) >= 3
    # The first part runs on the original; then the object is overwritten (a new version
    # with other rows) before the other parts run.
    assert pipeline.invoke(pipeline.event(parts[:1])) == {"batchItemFailures": []}
    first_part = set(pipeline.items())
    assert first_part and first_part < {r["transaction_id"] for r in old}
    pipeline.clock.advance(5)
    new, big, bad = rows(150, "new")
    pipeline.s3.put_object(Bucket=BUCKET, Key=KEY, Body=as_csv(new))
    # The remaining parts of the old run: each answered 412, none retried, none stored.
    answer = pipeline.invoke(pipeline.event(parts[1:]))
    assert answer == {"batchItemFailures": []}
    refused = [c for c in pipeline.recorder.ops("GetObject") if c.params.get("Range")]
    assert refused and all(c.params["IfMatch"] == refused[0].params["IfMatch"] for c in refused)
    assert set(pipeline.items()) == first_part  # nothing of the new version under the old run
    record = pipeline.runs()[f"s3://{BUCKET}/{KEY}"]
    assert "was replaced" in record["failed_reason"] and "completed_at_ms" not in record
    for message in parts[1:]:
        pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                    ReceiptHandle=message["ReceiptHandle"])
    assert pipeline.dead_letters() == []

    # The new version's own event: a new run, stored whole, recorded complete.
    drop(pipeline, KEY, as_csv(new))
    run_until_idle(pipeline)
    stored = set(pipeline.items())
    assert stored - first_part == {r["transaction_id"] for i, r in enumerate(new, 1)
                                   if i not in bad}
    assert sorted(a["body"]["transaction_id"] for a in pipeline.alerts()) == sorted(big)
    record = pipeline.runs()[f"s3://{BUCKET}/{KEY}"]
    assert "failed_reason" not in record and record["totals"]["rows"] == 150
    assert (record["totals"]["stored"], record["totals"]["rejected"]) == (150 - len(bad),
                                                                         len(bad))


def test_a_part_whose_object_is_replaced_mid_read_stops_without_completing_the_run(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The part reads its range in windows; the object changes between two of them. The
    second window's 412 stops the part (the rows read are of the old version only) instead
    of being taken for a bad row and the part counted as done."""
    from lambda_src import files, split

    with_parts(pipeline, 2 * 1024)
    monkeypatch.setattr(files, "_first_window", lambda _work: 300)
    monkeypatch.setattr(split, "RANGE_WINDOW", 300)
    old, _, _ = rows(120, "mid")
    drop(pipeline, KEY, as_csv(old))
    run_planner = pipeline.receive(limit=1)
    pipeline.invoke(pipeline.event(run_planner))
    pipeline.sqs.delete_message(QueueUrl=pipeline.queue_url,
                                ReceiptHandle=run_planner[0]["ReceiptHandle"])
    parts = pipeline.receive()
    ranged: list[str] = []

    def overwrite_after_the_first_window(params: dict[str, object], **_: object) -> None:
        if params.get("Range"):
            ranged.append(str(params["Range"]))
            if len(ranged) == 2:
                pipeline.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 10)

    pipeline.runtime.files.s3.meta.events.register("provide-client-params.s3.GetObject",
                                                   overwrite_after_the_first_window)
    assert pipeline.invoke(pipeline.event(parts[:1])) == {"batchItemFailures": []}
    assert len(ranged) == 2
    record = pipeline.runs()[f"s3://{BUCKET}/{KEY}"]
    assert "was replaced" in record["failed_reason"]
    assert "completed_at_ms" not in record and not record.get("parts_done")
    stored = set(pipeline.items())
    assert stored <= {r["transaction_id"] for r in old}
    assert pipeline.s3.list_objects_v2(Bucket=BUCKET, Prefix="rejected/").get("KeyCount") == 0
