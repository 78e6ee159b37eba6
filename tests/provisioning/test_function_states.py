"""The function's states as Lambda reports them (issue 7, items 6 and 10).

AWS source: Lambda Developer Guide, "Lambda function states": while LastUpdateStatus is
InProgress, UpdateFunctionCode / UpdateFunctionConfiguration fail with
ResourceConflictException; a function whose creation failed (State Failed) must be deleted
and recreated; a failed update (LastUpdateStatus Failed) keeps the previous code and
configuration.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from aws_answers import AwsAnswers, lambda_error
from step_graph import every_resource_count

from pipelinectl import engine, packaging

FUNCTION = "ecommerce-processor"


class LambdaStates(AwsAnswers):
    """Overlays the State / LastUpdateStatus Lambda would report on moto's GetFunction."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, update_seconds: float = 3) -> None:
        super().__init__(monkeypatch)
        self.update_seconds = update_seconds
        self.in_progress_until = -1.0
        self.failed_state = False
        self.failed_update = False
        self.refused: list[str] = []
        self.on("after-call.lambda.GetFunction", self._get_function)
        for operation in ("UpdateFunctionCode", "UpdateFunctionConfiguration"):
            self.on(f"before-send.lambda.{operation}", self._update)
        self.on("after-call.lambda.DeleteFunction", self._deleted)

    def _get_function(self, parsed: dict[str, Any], **_: Any) -> None:
        conf = parsed.get("Configuration")
        if conf is None:
            return
        if self.failed_state:
            conf.update(State="Failed", StateReasonCode="InternalError",
                        StateReason="Lambda could not configure the function")
        if self.failed_update:
            conf.update(LastUpdateStatus="Failed", LastUpdateStatusReasonCode="InternalError",
                        LastUpdateStatusReason="Lambda could not apply the update")
        if self.clock < self.in_progress_until:
            conf["LastUpdateStatus"] = "InProgress"

    def _update(self, event_name: str, **_: Any) -> Any:
        if self.clock < self.in_progress_until:
            self.refused.append(event_name.rsplit(".", 1)[1])
            return lambda_error(
                409, "ResourceConflictException", "The operation cannot be performed at "
                "this time. An update is in progress for resource: arn:aws:lambda:us-east-1:"
                f"123456789012:function:{FUNCTION}")
        self.failed_update = False
        self.in_progress_until = self.clock + self.update_seconds
        return None

    def _deleted(self, **_: Any) -> None:
        self.failed_state = False


def other_code() -> packaging.Artifact:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("processor/handler.py", (2024, 1, 1, 0, 0, 0)),
                         "def handler(event, context):\n    return 1\n")
    data = buffer.getvalue()
    return packaging.Artifact(data, base64.b64encode(hashlib.sha256(data).digest()).decode(),
                              1, from_cache=True)


def test_an_update_waits_for_the_update_in_progress(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = LambdaStates(monkeypatch)
    p = pipeline()
    engine.apply(p.ctx)
    aws.in_progress_until = aws.clock + 10  # someone's update (or our killed run's) is going
    p.fresh(function_timeout=60)
    new_code = p.ctx.zip_artifact = other_code()
    p.reset_calls()
    changes = engine.apply(p.ctx, ["lambda"])
    function = next(c for c in changes if c.kind == "Lambda function")
    assert function.action == "update" and "code_sha256" in function.fields
    assert aws.refused == []  # waited before the code update, and again before the config
    updates = [c.operation for c in p.calls if c.operation.startswith("UpdateFunction")]
    assert updates == ["UpdateFunctionCode", "UpdateFunctionConfiguration"]
    code = next(c for c in p.calls if c.operation == "UpdateFunctionCode")
    assert code.params["ZipFile"] == new_code.data
    assert p.client("lambda").get_function(FunctionName=FUNCTION)["Configuration"][
        "Timeout"] == 60


def test_a_function_whose_creation_failed_is_planned_and_made_again(
        cli: Any, monkeypatch: pytest.MonkeyPatch,
        skip_notification_delay: Callable[[], None]) -> None:
    aws = LambdaStates(monkeypatch)
    assert cli("up").exit_code == 0
    skip_notification_delay()  # status judges health past S3's EventBridge window
    aws.failed_state = True
    plan = json.loads(cli("--output", "json", "plan").output)
    function = next(c for c in plan["changes"] if c["kind"] == "Lambda function")
    assert function["action"] == "replace"
    assert "state Failed (Lambda could not configure the function)" in function["detail"]
    up = cli("--output", "json", "up")
    assert up.exit_code == 0, up.output
    assert {c["action"] for c in json.loads(up.stdout)["changes"]
            if c["kind"] == "Lambda function"} == {"replace"}
    plan = json.loads(cli("--output", "json", "plan").output)
    assert plan["summary"] == {"unchanged": every_resource_count()}
    status = json.loads(cli("--output", "json", "status").output)
    assert status["healthy"] is True


def test_a_failed_update_is_planned_and_applied_again(
        cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = LambdaStates(monkeypatch)
    assert cli("up").exit_code == 0
    aws.failed_update = True
    plan = json.loads(cli("--output", "json", "plan").output)
    function = next(c for c in plan["changes"] if c["kind"] == "Lambda function")
    assert function["action"] == "update"
    assert {"code_sha256", "environment", "timeout"} <= set(function["fields"])
    assert "last update failed (Lambda could not apply the update)" in function["detail"]
    assert cli("up").exit_code == 0
    plan = json.loads(cli("--output", "json", "plan").output)
    assert plan["summary"] == {"unchanged": every_resource_count()}


def test_the_change_table_after_a_failure_lists_what_the_failed_step_created(
        cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AwsAnswers(monkeypatch)
    aws.on("before-send.lambda.CreateFunction", lambda **_: lambda_error(
        400, "InvalidParameterValueException",
        "Unzipped size must be smaller than 262144000 bytes"))
    result = cli("--output", "json", "up")
    assert result.exit_code == 1
    assert "Unzipped size must be smaller" in result.stderr
    done = {(c["kind"], c["action"]) for c in json.loads(result.stdout)["changes"]}
    assert ("log group", "create") in done
    assert ("Lambda function", "create") not in done
