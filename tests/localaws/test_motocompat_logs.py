"""The FilterLogEvents patch (motocompat_logs.py): unpatched moto matches every event for a
JSON or OR pattern (so we notice when moto fixes it), patched it evaluates them as AWS does
(CloudWatch Logs User Guide, "Filter pattern syntax ..." and "Using filter patterns to match
terms in JSON log events")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from pipelinectl.localaws import motocompat

GROUP = "/aws/lambda/compat"
LINES = [
    json.dumps({"message": "alert sent", "transaction_id": "t-1", "level": "INFO",
                "amount": 1500, "file": "s3://b/incoming/a.csv"}),
    json.dumps({"message": "alert sent", "transaction_id": "t-2", "level": "INFO",
                "amount": 20}),
    json.dumps({"message": "batch processed", "records": 2, "ok": True, "n": None}),
    "START RequestId: r-1 Version: $LATEST",
    "REPORT RequestId: r-1\tDuration: 12.00 ms",
    "REPORT RequestId: r-2\tDuration: 30.00 ms",
]


@pytest.fixture
def logs() -> Iterator[Any]:
    with moto.mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName="s")
        now = int(time.time() * 1000)  # PutLogEvents refuses events older than 14 days
        client.put_log_events(logGroupName=GROUP, logStreamName="s", logEvents=[
            {"timestamp": now + i, "message": m} for i, m in enumerate(LINES)])
        yield client


def matching(client: Any, pattern: str) -> list[str]:
    pages = client.get_paginator("filter_log_events").paginate(
        logGroupName=GROUP, filterPattern=pattern)
    return [e["message"] for page in pages for e in page["events"]]


def test_defect_moto_matches_every_event_for_json_and_or_patterns(logs: Any) -> None:
    with motocompat.unpatched():
        assert len(matching(logs, '{ $.transaction_id = "t-1" }')) == len(LINES)
        assert len(matching(logs, '?"RequestId: r-1" ?"RequestId: r-2"')) == len(LINES)


@pytest.mark.parametrize(("pattern", "expected"), [
    ('{ $.transaction_id = "t-1" }', [0]),
    ("{ $.transaction_id = t-* }", [0, 1]),
    ('{ $.transaction_id = "t-1" || $.records = 2 }', [0, 2]),
    ('{ ($.message = "alert sent") && $.amount > 1000 }', [0]),
    ("{ $.amount <= 20 }", [1]),
    ('{ $.file = "s3://b/incoming/a.csv" }', [0]),
    ('{ $.transaction_id != "t-1" }', [1]),  # a missing field never matches
    ("{ $.ok IS TRUE }", [2]),
    ("{ $.n IS NULL }", [2]),
    ("{ $.amount NOT EXISTS }", [2]),
    ('?"RequestId: r-1" ?"RequestId: r-2"', [3, 4, 5]),
    ('"REPORT RequestId: r-2"', [5]),
    ("REPORT -r-2", [4]),
    ("RequestId r-1", [3, 4]),
])
def test_patch_patterns_match_as_on_aws(logs: Any, pattern: str, expected: list[int]) -> None:
    motocompat.apply()
    assert matching(logs, pattern) == [LINES[i] for i in expected]


def test_patch_a_malformed_json_pattern_is_refused_like_aws(logs: Any) -> None:
    motocompat.apply()
    with pytest.raises(ClientError) as caught:
        matching(logs, '{ $.transaction_id = "t-1" ')
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
