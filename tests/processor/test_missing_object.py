"""Without s3:ListBucket (the role does not grant it), S3 reports a missing object as
AccessDenied: that must dead-letter the event with its reason, not retry it forever."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from .conftest import BUCKET, Pipeline


def test_access_denied_on_an_incoming_object_goes_to_the_dlq_with_its_reason(
        pipeline: Pipeline) -> None:
    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "incoming/gone.csv":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")

    pipeline.runtime.files.s3.meta.events.register("before-parameter-build.s3.GetObject", deny)
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": BUCKET}, "object": {"key": "incoming/gone.csv"}}})
    pipeline.send({"transaction_id": "ok-1", "amount": 10, "timestamp": "2024-08-09T12:34:56Z"})
    assert pipeline.drain() == {"batchItemFailures": []}
    assert "ok-1" in pipeline.items()
    [letter] = pipeline.dead_letters()
    attributes = letter["MessageAttributes"]
    assert attributes["ErrorCode"]["StringValue"] == "object_not_found"
    assert "missing or not readable" in attributes["ErrorReason"]["StringValue"]
    assert json.loads(letter["Body"])["detail"]["object"]["key"] == "incoming/gone.csv"
