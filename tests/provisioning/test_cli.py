"""The command line as a user meets it: output, confirmations, errors and exit codes."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from step_graph import every_resource_count

from pipelinectl.cli import main
from pipelinectl.errors import translate


def test_status_json_has_stable_keys_and_every_resource(
        cli: Any, skip_notification_delay: Callable[[], None]) -> None:
    assert cli("up").exit_code == 0
    skip_notification_delay()
    result = cli("--output", "json", "status")
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert set(payload) == {"account", "healthy", "latest_file_run", "pipeline", "region",
                            "resources"}
    assert payload["healthy"] is True and payload["latest_file_run"] is None
    assert len(payload["resources"]) == every_resource_count()
    for row in payload["resources"]:
        assert set(row) == {"arn", "details", "health", "kind", "name", "state", "step"}
        assert row["arn"].startswith("arn:aws:")
    table = next(r for r in payload["resources"] if r["kind"] == "DynamoDB table")
    assert table["details"]["item_count"] == 0


def test_status_reports_the_latest_file_run_and_what_to_do_when_it_failed(
        cli: Any, skip_notification_delay: Callable[[], None]) -> None:
    """The processor's record (written here by its own writer, lambda_src/fileruns.py) is
    what `status` shows: counts and time once complete; the reason and a next step once
    failed."""
    import boto3

    from lambda_src.fileruns import FileRuns, SliceCounts
    from lambda_src.split import Work

    assert cli("up").exit_code == 0
    skip_notification_delay()
    bucket = "ecommerce-landing-123456789012-us-east-1"
    runs = FileRuns(boto3.client("dynamodb"), "ecommerce-transactions", lambda: 1000.0)
    work = Work(run="r1", bucket=bucket, key="incoming/big.csv", etag='"e"', size=9000,
                fmt="csv", gzip=False, started_ms=990_000, kind="part", split=True)
    runs.start(work, "split", parts_total=2)
    for part in (0, 1):
        runs.slice_done(Work(**{**work.__dict__, "part": part}),
                        SliceCounts(rows=1000, stored=990, rejected=10),
                        rejects=f"rejected/big.csv.part-0000{part}.errors.jsonl")
    payload = json.loads(cli("--output", "json", "status").output)["latest_file_run"]
    assert (payload["uri"], payload["state"], payload["mode"]) == (
        f"s3://{bucket}/incoming/big.csv", "complete", "split")
    assert (payload["parts_done"], payload["parts_total"], payload["seconds"]) == (2, 2, 10.0)
    assert payload["totals"] == {"rows": 2000, "stored": 1980, "unchanged": 0, "rejected": 20}
    text = cli("status").output
    assert (f"Latest file run: s3://{bucket}/incoming/big.csv (split, 2/2 parts): 2,000 rows: "
            "1,980 stored, 0 unchanged, 20 rejected in 10.0s") in " ".join(text.split())

    newer = Work(**{**work.__dict__, "run": "r2", "started_ms": 995_000})
    runs.start(newer, "split")
    runs.failed(newer, f"s3://{bucket}/incoming/big.csv was replaced (PreconditionFailed); "
                       "the run was stopped")
    text = " ".join(cli("status").output.split())
    assert "Failed: s3://" in text and "was replaced (PreconditionFailed)" in text
    assert "its own event starts a new run" in text
    payload = json.loads(cli("--output", "json", "status").output)["latest_file_run"]
    assert payload["state"] == "failed" and "pipelinectl replay" in payload["advice"]


def test_plan_json_lists_changes_and_a_summary(cli: Any) -> None:
    payload = json.loads(cli("--output", "json", "plan").output)
    assert payload["summary"] == {"create": every_resource_count()}
    assert {c["action"] for c in payload["changes"]} == {"create"}
    assert cli("up", "--dry-run").exit_code == 0
    assert json.loads(cli("--output", "json", "up", "--dry-run").output)["summary"] == {
        "create": every_resource_count()}


def test_up_prints_progress_and_the_arns(cli: Any) -> None:
    result = cli("up")
    assert result.exit_code == 0
    assert "Lambda function ecommerce-processor: created" in result.output
    assert "arn:aws:sqs:us-east-1:123456789012:ecommerce-transactions" in result.output


def test_teardown_refuses_without_yes_in_a_non_interactive_shell(
        cli: Any, skip_notification_delay: Callable[[], None]) -> None:
    assert cli("up").exit_code == 0
    skip_notification_delay()
    result = cli("teardown")
    assert result.exit_code == 2
    assert "pass --yes" in result.output
    status = json.loads(cli("--output", "json", "status").output)
    assert all(r["health"] == "ok" for r in status["resources"])


def test_teardown_twice_says_nothing_to_do(cli: Any) -> None:
    assert cli("up").exit_code == 0
    first = cli("teardown", "--yes")
    assert first.exit_code == 0 and "deleted" in first.output
    assert "scheduled for deletion in 7 days" in first.output
    second = cli("teardown", "--yes")
    assert second.exit_code == 0
    assert "Nothing to tear down" in second.output


def test_teardown_of_a_resource_not_ours_exits_1_and_names_it(cli: Any) -> None:
    import boto3

    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName="ecommerce-transactions", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    result = cli("teardown", "--yes")
    assert result.exit_code == 1
    assert "not this pipeline's: DynamoDB table ecommerce-transactions" in result.output
    up = cli("up")
    assert up.exit_code == 1
    assert "exists without the tag pipelinectl:pipeline=ecommerce" in up.output
    assert "Traceback" not in up.output


def test_usage_errors_exit_2_without_traceback(cli: Any) -> None:
    result = cli("--name", "Bad_Name", "plan")
    assert result.exit_code == 2
    assert result.output.startswith("Error: The pipeline name 'Bad_Name'")
    assert "Traceback" not in result.output
    assert cli("--region", "mars-north-1", "plan").exit_code == 2
    assert cli("--local", "--endpoint-url", "http://x", "plan").exit_code == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_without_a_running_local_aws_says_how_to_start_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINECTL_LOCAL_PORT", str(_free_port()))
    result = CliRunner().invoke(main, ["--local", "status"])
    assert result.exit_code == 1
    assert "start it with `pipelinectl local`" in result.output


def test_no_credentials_is_one_sentence_with_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 1
    assert "No AWS credentials found" in result.output and "--local" in result.output
    verbose = CliRunner().invoke(main, ["-v", "plan"])
    assert "Traceback" in verbose.output


def test_unknown_profile_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = CliRunner().invoke(main, ["--profile", "nosuch", "plan"])
    assert result.exit_code == 2
    assert "profile (nosuch) could not be found" in result.output


def test_access_denied_names_the_missing_permission() -> None:
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": (
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
        "sqs:createqueue on resource: arn:aws:sqs:us-east-1:123456789012:q")}}, "CreateQueue")
    message = str(translate(error))
    assert "lack sqs:createqueue" in message and message.count(".") <= 3


def test_up_json_ends_with_every_resource_and_its_real_arn(cli: Any) -> None:
    payload = json.loads(cli("--output", "json", "up").stdout)  # warnings go to stderr
    assert payload["summary"] == {"create": every_resource_count()}
    arns = {r["kind"]: r["arn"] for r in payload["resources"]}
    assert len(payload["resources"]) == every_resource_count()
    assert not arns["SNS subscription"].endswith(":*")  # the ARN subscribe returned
    assert arns["SQS queue"] == "arn:aws:sqs:us-east-1:123456789012:ecommerce-transactions"


def test_access_denied_without_an_action_in_the_message_names_the_operation() -> None:
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}},
                        "PutBucketPolicy")
    assert "lack the permission for PutBucketPolicy" in str(translate(error))
