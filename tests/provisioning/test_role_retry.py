"""A fresh role takes seconds to propagate: CreateFunction is retried, boundedly."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipelinectl import config as config_module
from pipelinectl import packaging
from pipelinectl.clients import ClientFactory
from pipelinectl.errors import PipelineError
from pipelinectl.resources import base as base_module
from pipelinectl.resources.base import Context
from pipelinectl.resources.function import Function

NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."


def stubbed_function(monkeypatch: pytest.MonkeyPatch) -> tuple[Function, Stubber,
                                                                  list[float]]:
    config = config_module.load({})
    factory = ClientFactory(config)
    client = boto3.client("lambda", region_name="us-east-1")
    factory._clients["lambda"] = client
    ctx = Context(config=config, factory=factory, account="123456789012", region="us-east-1")
    ctx.zip_artifact = packaging.Artifact(b"zip", "c2hh", 1, from_cache=True)
    ctx.learned.dlq_url = "https://sqs.us-east-1.amazonaws.com/123456789012/ecommerce-dlq"
    ctx.learned.queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/ecommerce-transactions"
    slept: list[float] = []
    monkeypatch.setattr(base_module.time, "sleep", slept.append)
    return Function(ctx), Stubber(client), slept


def active() -> dict[str, Any]:
    return {"Configuration": {"FunctionName": "ecommerce-processor", "State": "Active",
                              "LastUpdateStatus": "Successful"}}


def test_two_not_assumable_errors_then_success(monkeypatch: pytest.MonkeyPatch) -> None:
    function, stub, slept = stubbed_function(monkeypatch)
    for _ in range(2):
        stub.add_client_error("create_function", "InvalidParameterValueException",
                              NOT_ASSUMABLE, 400)
    stub.add_response("create_function", {"FunctionName": "ecommerce-processor"},
                      {"FunctionName": "ecommerce-processor", "Code": {"ZipFile": b"zip"},
                       "PackageType": "Zip", "Description": ANY, "Tags": ANY,
                       "Publish": False, "Runtime": "python3.12", "Handler": ANY,
                       "Role": ANY, "Timeout": 30, "MemorySize": 256, "Environment": ANY})
    stub.add_response("get_function", active(), {"FunctionName": "ecommerce-processor"})
    with stub:
        function.create()
    stub.assert_no_pending_responses()
    assert slept == [1, 2]


def test_retry_gives_up_after_about_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    function, stub, slept = stubbed_function(monkeypatch)
    for _ in range(len(base_module.SETTLE_DELAYS) + 1):
        stub.add_client_error("create_function", "InvalidParameterValueException",
                              NOT_ASSUMABLE, 400)
    with stub, pytest.raises(PipelineError, match="still cannot use role"):
        function.create()
    assert 45 <= sum(slept) <= 90


def test_other_invalid_parameters_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    function, stub, slept = stubbed_function(monkeypatch)
    stub.add_client_error("create_function", "InvalidParameterValueException",
                          "Unzipped size must be smaller than 262144000 bytes", 400)
    with stub, pytest.raises(Exception, match="Unzipped size"):
        function.create()
    assert slept == []


def test_the_mapping_is_retried_while_the_role_policy_propagates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.resources.subscriptions import EventSourceMapping

    function, stub, slept = stubbed_function(monkeypatch)
    mapping = EventSourceMapping(function.ctx)
    stub.add_client_error(
        "create_event_source_mapping", "InvalidParameterValueException",
        "The provided execution role does not have permissions to call ReceiveMessage on SQS",
        400)
    uuid = "a1b2c3d4-0000-4000-8000-000000000001"
    stub.add_response("create_event_source_mapping", {"UUID": uuid})
    with stub:
        arn = mapping.create()
    stub.assert_no_pending_responses()
    assert slept == [1] and arn.endswith(f":event-source-mapping:{uuid}")


def test_point_in_time_recovery_waits_for_backups_to_become_available(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelinectl.resources.table import Table

    function, _, slept = stubbed_function(monkeypatch)
    client = boto3.client("dynamodb", region_name="us-east-1")
    function.ctx.factory._clients["dynamodb"] = client
    stub = Stubber(client)
    stub.add_client_error("update_continuous_backups", "ContinuousBackupsUnavailableException",
                          "Backups are being enabled for the table", 400)
    stub.add_response("update_continuous_backups", {"ContinuousBackupsDescription": {
        "ContinuousBackupsStatus": "ENABLED"}})
    with stub:
        Table(function.ctx)._enable_pitr()
    stub.assert_no_pending_responses()
    assert slept == [1]
