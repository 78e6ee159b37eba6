"""A resource that is another pipeline's stops every step that would name it (issue 8.1):
nothing of ours may point at, or be granted, someone else's resource."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

SHARED = '[names]\ntable = "shared-transactions"\n'


@pytest.fixture
def shared(tmp_path: Path) -> str:
    path = tmp_path / "shared.toml"
    path.write_text(SHARED)
    return str(path)


def test_another_pipelines_table_stops_everything_that_would_use_it(cli: Any,
                                                                      shared: str) -> None:
    assert cli("--name", "other", "--config", shared, "up").exit_code == 0
    before = boto3.client("iam").list_roles()["Roles"]

    plan = cli("--name", "mine", "--config", shared, "--output", "json", "plan")
    assert plan.exit_code == 1
    rows = {(c["kind"], c["name"]): c for c in json.loads(plan.stdout)["changes"]}
    assert rows[("DynamoDB table", "shared-transactions")]["action"] == "conflict"
    for kind, name in (("IAM role", "mine-processor-role"),
                       ("Lambda function", "mine-processor")):
        assert rows[(kind, name)]["action"] == "blocked"
        assert "shared-transactions is not ours" in rows[(kind, name)]["detail"]
    assert rows[("SNS topic", "mine-ingest")]["action"] == "create"
    assert "belongs to pipeline 'other'" in plan.output

    up = cli("--name", "mine", "--config", shared, "up")
    assert up.exit_code == 1
    assert "Conflict: the DynamoDB table 'shared-transactions' belongs to pipeline 'other'" \
        in up.output
    assert "Traceback" not in up.output
    # No function storing into the other pipeline's table, no role granted access to it.
    functions = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    assert functions == ["other-processor"]
    assert boto3.client("iam").list_roles()["Roles"] == before
    # What names nothing of theirs was built, so a re-run after the rename finishes the job.
    assert boto3.client("sqs").get_queue_url(QueueName="mine-transactions")
    table = boto3.client("dynamodb").describe_table(TableName="shared-transactions")
    tags = boto3.client("dynamodb").list_tags_of_resource(
        ResourceArn=table["Table"]["TableArn"])["Tags"]
    assert {"Key": "pipelinectl:pipeline", "Value": "other"} in tags


def test_a_single_step_is_stopped_by_a_conflict_in_what_it_names(cli: Any,
                                                                  shared: str) -> None:
    assert cli("--name", "other", "--config", shared, "table").exit_code == 0
    assert cli("--name", "mine", "--config", shared, "topic").exit_code == 0  # roles needs it
    dry_run = cli("--name", "mine", "--config", shared, "roles", "--dry-run")
    assert dry_run.exit_code == 1 and "shared-transactions" in dry_run.output
    result = cli("--name", "mine", "--config", shared, "roles")
    assert result.exit_code == 1
    assert "shared-transactions" in result.output
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_plan_without_conflicts_still_exits_0(cli: Any) -> None:
    assert cli("plan").exit_code == 0
