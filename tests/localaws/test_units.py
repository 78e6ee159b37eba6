"""The engine's pure parts: batch responses, SQS records, EMF, log lines, alarm decisions."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from localaws_helpers import function_spec

from pipelinectl.localaws.alarms import _Point, decide, statistic
from pipelinectl.localaws.poller import _merge, failed_message_ids, sqs_record
from pipelinectl.localaws.runner import Invocation
from pipelinectl.localaws.telemetry import Telemetry, emf_datums, log_lines

IDS = {"m1", "m2", "m3"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
        ({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}, {"m1", "m3"}),
        ({"batchItemFailures": [{"itemIdentifier": "nope"}]}, None),  # not in the batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"id": "m1"}]}, None),  # bad key name
        ({"batchItemFailures": "m1"}, None),
        ("ok", None),
        ([{"itemIdentifier": "m1"}], None),
    ],
)
def test_partial_batch_response(payload: Any, expected: set[str] | None) -> None:
    assert failed_message_ids(payload, IDS) == expected


def test_a_message_received_twice_in_one_window_is_one_record() -> None:
    first = [{"MessageId": "a", "ReceiptHandle": "h1"}, {"MessageId": "b", "ReceiptHandle": "h2"}]
    again = [{"MessageId": "a", "ReceiptHandle": "h3"}, {"MessageId": "c", "ReceiptHandle": "h4"}]
    merged = _merge(first, again)
    assert [(m["MessageId"], m["ReceiptHandle"]) for m in merged] == [
        ("a", "h3"),
        ("b", "h2"),
        ("c", "h4"),
    ]


def test_sqs_record_has_lambdas_shape() -> None:
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "md5",
        "MD5OfMessageAttributes": "md5a",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {
            "TransactionType": {"DataType": "String", "StringValue": "Refund"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    record = sqs_record(message, "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1")
    assert record == {
        "messageId": "id-1",
        "receiptHandle": "rh",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "TransactionType": {
                "stringValue": "Refund",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "Blob": {
                "binaryValue": "AAE=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "md5OfMessageAttributes": "md5a",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q",
        "awsRegion": "eu-west-1",
    }


def _emf(**extra: Any) -> str:
    doc = {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Pipeline",
                    "Dimensions": [["service"], ["service", "stage"]],
                    "Metrics": [
                        {"Name": "Stored", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1},
                    ],
                }
            ],
        },
        "service": "processor",
        "stage": "local",
        "Stored": 2,
        "Latency": [1.5, 2.5],
    }
    doc.update(extra)
    return json.dumps(doc)


def test_emf_line_becomes_datums_per_dimension_set() -> None:
    datums = emf_datums(_emf())
    assert {ns for ns, _ in datums} == {"Pipeline"}
    by_name = {(d["MetricName"], len(d["Dimensions"])): d for _, d in datums}
    assert len(datums) == 4
    stored = by_name[("Stored", 2)]
    assert stored["Value"] == 2.0 and stored["Unit"] == "Count"
    assert stored["Dimensions"] == [
        {"Name": "service", "Value": "processor"},
        {"Name": "stage", "Value": "local"},
    ]
    assert stored["Timestamp"].timestamp() == 1_700_000_000
    latency = by_name[("Latency", 1)]
    assert latency["Values"] == [1.5, 2.5] and latency["StorageResolution"] == 1


@pytest.mark.parametrize(
    "line",
    [
        "plain text",
        '{"level": "INFO", "message": "not emf"}',
        '{"_aws": "broken"',
        _emf(Stored="two", Latency=True),  # non-numeric values are skipped
    ],
)
def test_non_emf_lines_give_nothing(line: str) -> None:
    assert emf_datums(line) == []


def test_emf_skips_dimension_sets_whose_values_are_missing() -> None:
    line = json.loads(_emf())
    del line["stage"]
    datums = emf_datums(json.dumps(line))
    assert {len(d["Dimensions"]) for _, d in datums} == {1}


def test_log_lines_frame_the_output_like_lambda() -> None:
    inv = Invocation("rid", function_spec(), started=1000.0, ok=True, duration_ms=12.3,
                     init_ms=45.6)
    inv.max_memory_mb = 40
    inv.lines = [(999_500, "init line"), (1_000_005, "hello")]
    lines = [text for _, text in log_lines(inv)]
    assert lines[0] == "init line"  # init output comes before START, as on Lambda
    assert lines[1] == "START RequestId: rid Version: $LATEST"
    assert lines[2] == "hello"
    assert lines[3] == "END RequestId: rid"
    assert lines[4] == (
        "REPORT RequestId: rid\tDuration: 12.30 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 45.60 ms"
    )


def test_log_lines_of_a_timeout() -> None:
    inv = Invocation("rid", function_spec(), started=1000.0, timed_out=True, duration_ms=3000.0)
    lines = [text for _, text in log_lines(inv)]
    assert lines[1].endswith("rid Task timed out after 3.00 seconds")
    assert lines[-1].endswith("Status: timeout")


def _alarm(**kw: Any) -> Any:
    base = {
        "comparison_operator": "GreaterThanThreshold",
        "threshold": 0.0,
        "evaluation_periods": 3,
        "datapoints_to_alarm": None,
        "treat_missing_data": None,
    }
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(
    ("alarm", "values", "state"),
    [
        (_alarm(), [1.0, 2.0, 3.0], "ALARM"),
        (_alarm(), [1.0, 0.0, 3.0], "OK"),  # 3 of 3 needed
        (_alarm(datapoints_to_alarm=2), [1.0, 0.0, 3.0], "ALARM"),
        (_alarm(), [None, None, None], "INSUFFICIENT_DATA"),
        (_alarm(treat_missing_data="notBreaching"), [None, None, None], "OK"),
        (_alarm(treat_missing_data="breaching"), [None, None, None], "ALARM"),
        (_alarm(treat_missing_data="ignore"), [None, None, None], None),  # keep state
        (_alarm(treat_missing_data="breaching"), [1.0, None, 1.0], "ALARM"),
        (_alarm(treat_missing_data="notBreaching"), [1.0, None, 1.0], "OK"),
        (_alarm(comparison_operator="LessThanThreshold", threshold=5.0), [1, 2, 3], "ALARM"),
        (_alarm(comparison_operator="GreaterThanOrEqualToThreshold"), [0, 0, 0], "ALARM"),
        (_alarm(comparison_operator="LessThanOrEqualToThreshold"), [1, 0, 0], "OK"),
    ],
)
def test_alarm_decisions(alarm: Any, values: list[float | None], state: str | None) -> None:
    assert decide(alarm, values)[0] == state


def test_statistics() -> None:
    points = [_Point(0, 1, 2.0, 2.0, 2.0), _Point(1, 2, 10.0, 4.0, 6.0)]
    assert statistic(points, "SampleCount") == 3
    assert statistic(points, "Sum") == 12.0
    assert statistic(points, "Average") == 4.0
    assert statistic(points, "Minimum") == 2.0
    assert statistic(points, "Maximum") == 6.0
    assert statistic([], "Sum") is None


def test_queue_metrics_are_put_on_change_or_heartbeat() -> None:
    telemetry = Telemetry(clients=None, heartbeat=60)  # type: ignore[arg-type]
    key = ("us-east-1", "q", "ApproximateNumberOfMessagesVisible")
    assert telemetry._due(key, 0.0)
    assert not telemetry._due(key, 0.0)
    assert telemetry._due(key, 1.0)
    telemetry._heartbeat = 0
    assert telemetry._due(key, 1.0)


