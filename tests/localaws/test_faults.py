"""Fault injection: the SPEC grammar, AWS's error shapes per protocol (as botocore parses
them), counts and rates, slow answers, injected Lambda timeouts and crashes, the admin
endpoint, the live view and the InjectedFaults metric."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from localaws_helpers import Local
from polling import wait_for
from test_engine import collect, pipeline, recorded

from pipelinectl.localaws.faults import ADMIN_PATH, FaultSpecError, parse_spec


def admin(local: Local, method: str = "GET", body: Any = None) -> dict[str, Any]:
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)
                                      ).encode()
    request = urllib.request.Request(local.endpoint_url + ADMIN_PATH, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            doc: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        doc = {"status": exc.code, **json.loads(exc.read())}
    return doc


@pytest.fixture
def faulty(local: Local) -> Iterator[Local]:
    yield local
    admin(local, "DELETE")


def no_retries(local: Local, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=local.endpoint_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def test_spec_grammar() -> None:
    rules = parse_spec("dynamodb:BatchWriteItem|UpdateItem=throttle@5%; sns:Publish*=5xx@3;"
                       " sqs:*=slow:1.5s; invoke:*-processor=timeout@1%")
    assert [(r.service, r.operations, r.fault, r.rate, r.count, r.delay) for r in rules] == [
        ("dynamodb", ("BatchWriteItem", "UpdateItem"),
         "ProvisionedThroughputExceededException", 0.05, None, 0.0),
        ("sns", ("Publish*",), "InternalError", None, 3, 0.0),
        ("sqs", ("*",), "slow", None, None, 1.5),
        ("invoke", ("*-processor",), "timeout", 0.01, None, 0.0)]
    for bad in ("dynamodb=throttle", "dynamodb:PutItem=boom", "sqs:X=throttle@lots",
                "invoke:f=throttle", "s3:GetObject=slow:x", "sns:Publish=5xx@150%"):
        with pytest.raises(FaultSpecError):
            parse_spec(bad)


@pytest.mark.parametrize(("service", "spec", "call", "code", "status"), [
    ("dynamodb", "dynamodb:ListTables=throttle@1", lambda c: c.list_tables(),
     "ProvisionedThroughputExceededException", 400),
    ("dynamodb", "dynamodb:ListTables=ServiceUnavailable@1", lambda c: c.list_tables(),
     "ServiceUnavailable", 503),
    ("sns", "sns:ListTopics=throttle@1", lambda c: c.list_topics(), "Throttling", 400),
    ("sqs", "sqs:ListQueues=InternalServerError@1", lambda c: c.list_queues(),
     "InternalServerError", 500),
    ("lambda", "lambda:GetFunction=throttle@1",
     lambda c: c.get_function(FunctionName="nope"), "TooManyRequestsException", 429),
    ("s3", "s3:GetObject=throttle@1", lambda c: c.get_object(Bucket="b", Key="k"),
     "SlowDown", 503),
    ("cloudwatch", "cloudwatch:ListMetrics=ThrottlingException@1",
     lambda c: c.list_metrics(), "ThrottlingException", 400),
])
def test_errors_come_in_the_services_own_shape(faulty: Local, service: str, spec: str,
                                               call: Any, code: str, status: int) -> None:
    client = no_retries(faulty, service)
    assert admin(faulty, "PUT", spec)["rules"] == [{"rule": spec, "matched": 0, "injected": 0}]
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    state = admin(faulty)
    assert state["rules"][0]["injected"] == 1
    assert state["recent"][-1]["fault"] == code


def test_a_count_fails_the_next_calls_only_and_sdk_retries_absorb_throttling(
        faulty: Local, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipelinectl.localaws")
    admin(faulty, "PUT", {"spec": "dynamodb:ListTables=throttle@2", "seed": 1})
    retrying = faulty.client("dynamodb")  # botocore's default: retries throttling errors
    retrying.list_tables()
    state = admin(faulty)
    assert state["rules"][0] == {"rule": "dynamodb:ListTables=throttle@2", "matched": 3,
                                 "injected": 2}
    no_retries(faulty, "dynamodb").list_tables()  # the count is spent
    shown = [r.getMessage() for r in caplog.records if getattr(r, "activity", "") == "fault"]
    assert sum("dynamodb ListTables → ProvisionedThroughputExceededException" in m
               for m in shown) == 2


def test_a_rate_faults_about_that_share(faulty: Local) -> None:
    admin(faulty, "PUT", {"spec": "sqs:ListQueues=ServiceUnavailable@30%", "seed": 7})
    client, failed = no_retries(faulty, "sqs"), 0
    for _ in range(200):
        try:
            client.list_queues()
        except ClientError:
            failed += 1
    assert 40 <= failed <= 80  # 30 % of 200 (seeded)
    assert admin(faulty)["rules"][0]["injected"] == failed


def test_slow_answers_are_delayed_not_failed(faulty: Local) -> None:
    admin(faulty, "PUT", "sqs:ListQueues=slow:0.6@1")
    client = no_retries(faulty, "sqs")
    started = time.monotonic()
    client.list_queues()
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    client.list_queues()
    assert time.monotonic() - started < 0.6


def test_a_bad_spec_is_refused_with_the_reason(faulty: Local) -> None:
    answer = admin(faulty, "PUT", "dynamodb:PutItem=sometimes")
    assert answer["status"] == 400 and "unknown fault 'sometimes'" in answer["error"]


def _injected_metric(local: Local, service: str, fault: str) -> float:
    now = dt.datetime.now(dt.UTC)
    metrics = local.client("cloudwatch").list_metrics(
        Namespace="pipelinectl/LocalAWS", MetricName="InjectedFaults")["Metrics"]
    total = 0.0
    for metric in metrics:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        if dims.get("Service") == service and dims.get("Fault") == fault:
            points = local.client("cloudwatch").get_metric_statistics(
                Namespace="pipelinectl/LocalAWS", MetricName="InjectedFaults",
                Dimensions=metric["Dimensions"], StartTime=now - dt.timedelta(minutes=5),
                EndTime=now + dt.timedelta(minutes=1), Period=60, Statistics=["Sum"])
            total += sum(p["Sum"] for p in points["Datapoints"])
    return total


@pytest.mark.parametrize("kind", ["timeout", "crash"])
def test_injected_lambda_faults_end_the_invocation_and_the_batch_is_retried(
        faulty: Local, tmp_path: Path, kind: str) -> None:
    p = pipeline(faulty, tmp_path / "out.jsonl", max_receive=3)
    admin(faulty, "PUT", f"invoke:{p['name']}={kind}@1")
    faulty.client("sqs").send_message(QueueUrl=p["url"], MessageBody="once")
    # The first invocation was ended by the fault at a random point (it may have finished its
    # work, but its answer is lost), so nothing was acknowledged and SQS delivers it again.
    wait_for(lambda: any(e["record"]["attributes"]["ApproximateReceiveCount"] == "2"
                         for e in recorded(p["out"])), timeout=20)
    wait_for(lambda: faulty.depth(p["url"]) == 0, timeout=10)
    logs = wait_for(lambda: [m for m in faulty.log_messages(p["name"])
                             if "Task timed out" in m or "REPORT" in m], timeout=15)
    if kind == "timeout":
        assert any("Task timed out" in m for m in logs)
    assert wait_for(lambda: _injected_metric(faulty, "lambda", kind) >= 1, timeout=15)
    assert wait_for(lambda: _errors(faulty, p["name"]) >= 1, timeout=15)


def _errors(local: Local, function: str) -> float:
    now = dt.datetime.now(dt.UTC)
    points = local.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - dt.timedelta(minutes=5), EndTime=now + dt.timedelta(minutes=1),
        Period=60, Statistics=["Sum"])["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def test_the_local_aws_own_calls_are_never_faulted(faulty: Local, tmp_path: Path) -> None:
    """The poller's ReceiveMessage stands for Lambda's internals, not for a client."""
    p = pipeline(faulty, tmp_path / "out.jsonl")
    admin(faulty, "PUT", "sqs:ReceiveMessage|DeleteMessageBatch=ServiceUnavailable")
    no_retries(faulty, "sqs").send_message(QueueUrl=p["url"], MessageBody="delivered")
    assert collect(p["out"], 1)[0]["record"]["body"] == "delivered"
    with pytest.raises(ClientError):
        no_retries(faulty, "sqs").receive_message(QueueUrl=p["url"])
