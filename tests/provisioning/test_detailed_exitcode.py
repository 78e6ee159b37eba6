"""`plan --detailed-exitcode` for CI (Terraform's convention: 0 no change, 1 error, 2 changes
pending), and the drift a CI job prints from the JSON plan."""

from __future__ import annotations

import json
from typing import Any

import boto3
from step_graph import every_resource_count

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/ecommerce-transactions"


def test_plan_exits_0_when_nothing_would_change(cli: Any) -> None:
    assert cli("up").exit_code == 0
    assert cli("plan", "--detailed-exitcode").exit_code == 0
    assert cli("up", "--dry-run", "--detailed-exitcode").exit_code == 0


def test_plan_exits_2_from_nothing(cli: Any) -> None:
    result = cli("--output", "json", "plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert json.loads(result.output)["summary"] == {"create": every_resource_count()}


def test_a_console_edit_exits_2_and_names_the_field_with_both_values(cli: Any) -> None:
    assert cli("up").exit_code == 0
    boto3.client("sqs", region_name="us-east-1").set_queue_attributes(
        QueueUrl=QUEUE_URL, Attributes={"VisibilityTimeout": "31"})
    result = cli("--output", "json", "up", "--dry-run", "--detailed-exitcode")
    assert result.exit_code == 2
    changed = [c for c in json.loads(result.output)["changes"] if c["action"] != "unchanged"]
    assert [(c["kind"], c["fields"]) for c in changed] == [("SQS queue",
                                                            ["visibility_timeout"])]
    assert changed[0]["drift"] == [{"field": "visibility_timeout", "observed": 31,
                                    "desired": 180}]
    assert cli("plan").exit_code == 0  # without the flag a pending change is no error


def test_a_secret_in_the_environment_is_named_never_shown(cli: Any) -> None:
    assert cli("up").exit_code == 0
    lam = boto3.client("lambda", region_name="us-east-1")
    variables = lam.get_function_configuration(
        FunctionName="ecommerce-processor")["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName="ecommerce-processor",
        Environment={"Variables": {**variables, "DB_PASSWORD": "hunter2"}})
    result = cli("--output", "json", "plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert "hunter2" not in result.output
    function = next(c for c in json.loads(result.output)["changes"]
                    if c["kind"] == "Lambda function")
    assert function["drift"] == [{"field": "environment", "keys": ["DB_PASSWORD"],
                                  "observed": "(secret: not shown)",
                                  "desired": "(secret: not shown)"}]


def test_a_conflict_is_a_pending_change_and_errors_exit_1(cli: Any) -> None:
    boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="ecommerce-transactions")
    conflict = cli("plan", "--detailed-exitcode")
    assert conflict.exit_code == 2
    assert "Conflict" in conflict.output
    assert cli("plan").exit_code == 1  # as before, without the flag
    # Errors, even usage errors (normally 2), exit 1 so 2 always means "changes pending".
    assert cli("--region", "US-EAST-1", "plan", "--detailed-exitcode").exit_code == 1
    assert cli("plan", "--detailed-exitcode", "--bogus").exit_code == 1
    assert cli("up", "--detailed-exitcode").exit_code == 1  # without --dry-run
