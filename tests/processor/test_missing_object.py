"""A missing object and a denied read are different things now that the role may list
incoming/ (s3:ListBucket with an s3:prefix condition): S3 answers a missing key with 404
NoSuchKey and keeps 403 AccessDenied for real denials (S3 API Reference, GetObject,
"Permissions"). The first is dead-lettered with its reason; the second may pass (IAM
propagation), so it is retried like any transient error."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from .conftest import BUCKET, Pipeline

GONE = {"source": "aws.s3", "detail-type": "Object Created", "detail": {
    "bucket": {"name": BUCKET}, "object": {"key": "incoming/gone.csv"}}}
OK = {"transaction_id": "ok-1", "amount": 10, "timestamp": "2024-08-09T12:34:56Z"}


def test_a_missing_object_goes_to_the_dlq_with_its_reason(pipeline: Pipeline) -> None:
    pipeline.send(GONE)  # nothing under that key: S3 (and moto) answer 404 NoSuchKey
    pipeline.send(OK)
    assert pipeline.drain() == {"batchItemFailures": []}
    assert "ok-1" in pipeline.items()
    [letter] = pipeline.dead_letters()
    attributes = letter["MessageAttributes"]
    assert attributes["ErrorCode"]["StringValue"] == "object_not_found"
    assert "does not exist (NoSuchKey)" in attributes["ErrorReason"]["StringValue"]
    assert json.loads(letter["Body"])["detail"]["object"]["key"] == "incoming/gone.csv"


def test_access_denied_on_an_incoming_object_is_retried_not_dead_lettered(
        pipeline: Pipeline) -> None:
    denied: list[str] = []

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "incoming/later.csv" and not denied:
            denied.append(params["Key"])  # AWS's answer while the role's grant propagates
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")

    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/later.csv",
                           Body=b"transaction_id,amount,timestamp\nf-1,20,2024-08-09T00:00Z\n")
    pipeline.runtime.files.s3.meta.events.register("before-parameter-build.s3.GetObject", deny)
    later = json.loads(json.dumps(GONE).replace("gone.csv", "later.csv"))
    pipeline.send(later)
    pipeline.send(OK)
    messages = pipeline.receive()
    result = pipeline.invoke(pipeline.event(messages))
    file_message = next(m["MessageId"] for m in messages if "later.csv" in m["Body"])
    assert result == {"batchItemFailures": [{"itemIdentifier": file_message}]}
    assert "ok-1" in pipeline.items() and "f-1" not in pipeline.items()
    assert pipeline.dead_letters() == []
    # SQS redelivers only that record; the denial has passed, so the file is stored.
    retry = [m for m in messages if m["MessageId"] == file_message]
    assert pipeline.invoke(pipeline.event(retry)) == {"batchItemFailures": []}
    assert "f-1" in pipeline.items()
