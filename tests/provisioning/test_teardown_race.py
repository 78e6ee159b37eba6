"""Teardown does not race the processor (issue 7, item 7).

AWS sources: S3 API reference DeleteBucket (every object, version and delete marker must be
deleted first; otherwise 409 BucketNotEmpty); Lambda API reference DeleteEventSourceMapping
(the mapping stays Deleting, and may deliver, for several seconds).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from aws_answers import AwsAnswers

from pipelinectl import engine
from pipelinectl.engine import Progress


def test_bucket_and_table_go_only_after_the_mapping_and_the_function(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    events: list[Progress] = []
    engine.teardown(p.ctx, on_progress=events.append)

    def at(phase: str, kind: str) -> int:
        return next(i for i, e in enumerate(events) if e.phase == phase and e.kind == kind)

    writers_gone = max(at("done", "event source mapping"), at("done", "Lambda function"))
    assert at("start", "S3 bucket") > writers_gone
    assert at("start", "DynamoDB table") > writers_gone


def test_a_reject_written_after_emptying_does_not_fail_teardown(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AwsAnswers(monkeypatch)
    p = pipeline()
    engine.apply(p.ctx)
    bucket = p.ctx.names.bucket
    p.client("s3").put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"x")
    late: list[str] = []

    def processor_writes_late(**_: Any) -> None:
        """An invocation still running writes its rejects after the bucket was emptied."""
        if not late:
            late.append("rejected/a.csv.rejects.jsonl")
            boto3.client("s3", region_name="us-east-1").put_object(
                Bucket=bucket, Key=late[0], Body=b"{}")

    aws.on("after-call.s3.DeleteObjects", processor_writes_late)
    p.fresh()  # clients made from now on carry the hook
    changes = engine.teardown(p.ctx)
    assert late  # the late write happened, and S3 refused the first DeleteBucket for it
    assert ("S3 bucket", "delete") in {(c.kind, c.action) for c in changes}
    assert p.client("s3").list_buckets()["Buckets"] == []
    deletes = [c.operation for c in p.calls if c.operation in {"DeleteBucket", "DeleteObjects"}]
    assert deletes == ["DeleteObjects", "DeleteBucket", "DeleteObjects", "DeleteBucket"]
