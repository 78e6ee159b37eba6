"""A second `up` changes nothing; a changed setting makes exactly the calls it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelinectl import engine, packaging

# Waiters and reads that updates may make; anything else must be named by the test.
READS = ("Get", "List", "Describe", "Head")


def test_second_up_makes_no_mutating_call_and_reads_each_resource_once(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    p.fresh()
    engine.plan(p.ctx)
    one_read_each = sorted(str(c) for c in p.calls)
    assert {"iam.GetRole", "s3.HeadBucket", "lambda.ListEventSourceMappings"} <= set(
        one_read_each)
    p.fresh()
    changes = engine.apply(p.ctx)
    assert {c.action for c in changes} == {"unchanged"}
    assert p.mutating() == []
    # the conflict check's reads are reused: a no-op `up` costs what `plan` costs
    assert sorted(str(c) for c in p.calls) == one_read_each


def test_what_follows_a_change_is_read_afresh(pipeline: Any) -> None:
    """The plan's reads are reused only where nothing the step needs changed in this run."""
    p = pipeline()
    engine.apply(p.ctx)
    sqs = p.client("sqs")
    dlq = sqs.get_queue_url(QueueName="ecommerce-transactions-dlq")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"MessageRetentionPeriod": "60"})
    p.fresh()
    changes = engine.apply(p.ctx)
    assert [(c.kind, c.action) for c in changes if c.action != "unchanged"] == [
        ("SQS dead-letter queue", "update")]
    reads = [str(c) for c in p.calls]
    # the plan's, then the lambda step's, then the mapping's check of its parent's owner
    # (subscribe needs lambda, which needs queue)
    assert reads.count("lambda.GetFunction") == 3
    assert reads.count("s3.HeadBucket") == 1  # nothing the bucket needs changed


def test_plan_on_an_empty_account_lists_every_create_and_mutates_nothing(pipeline: Any) -> None:
    p = pipeline()
    changes = engine.plan(p.ctx)
    assert [(c.step, c.kind, c.action) for c in changes] == [
        ("roles", "IAM role", "create"), ("bucket", "S3 bucket", "create"),
        ("table", "DynamoDB table", "create"), ("topic", "KMS key", "create"),
        ("topic", "SNS topic", "create"), ("topic", "SNS topic", "create"),
        ("queue", "SQS dead-letter queue", "create"), ("queue", "SQS queue", "create"),
        ("lambda", "log group", "create"), ("lambda", "Lambda function", "create"),
        ("rule", "EventBridge rule", "create"), ("subscribe", "SNS subscription", "create"),
        ("subscribe", "event source mapping", "create"),
        *[("alarms", "CloudWatch alarm", "create")] * 5]
    assert p.mutating() == []
    assert engine.status(p.ctx)[0].health == "missing"


def test_plan_after_up_shows_no_change(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    p.fresh()
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}
    assert p.mutating() == []


@pytest.mark.parametrize(("setting", "value", "expected_calls", "resource", "fields"), [
    ("batch_size", 5, ["lambda.UpdateEventSourceMapping"], "event source mapping",
     ("batch_size",)),
    ("alert_threshold", 1500, ["lambda.UpdateFunctionConfiguration"], "Lambda function",
     ("environment",)),
    ("max_receive_count", 3, ["sqs.SetQueueAttributes"], "SQS queue", ("redrive_policy",)),
    ("log_retention_days", 30, ["logs.PutRetentionPolicy"], "log group", ("retention_days",)),
])
def test_one_changed_setting_makes_exactly_its_update(
        pipeline: Any, setting: str, value: Any, expected_calls: list[str], resource: str,
        fields: tuple[str, ...]) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    p.fresh(**{setting: value})
    planned = [c for c in engine.plan(p.ctx) if c.action != "unchanged"]
    assert [(c.kind, c.fields) for c in planned] == [(resource, fields)]
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == expected_calls
    p.fresh()
    assert [c for c in engine.plan(p.ctx) if c.action != "unchanged"] == []


def test_changed_handler_code_uploads_code_and_nothing_else(pipeline: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    p = pipeline()
    engine.apply(p.ctx)
    src = tmp_path / "lambda_src"
    for path in packaging.source_dir().rglob("*.py"):
        target = src / path.relative_to(packaging.source_dir())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (src / "requirements.txt").write_text(
        (packaging.source_dir() / "requirements.txt").read_text())
    (src / "handler.py").write_text((src / "handler.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(packaging, "source_dir", lambda: src)
    p.fresh()
    planned = [c for c in engine.plan(p.ctx) if c.action != "unchanged"]
    assert [(c.kind, c.fields) for c in planned] == [("Lambda function", ("code_sha256",))]
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == ["lambda.UpdateFunctionCode"]
    uploaded = next(c for c in p.calls if c.operation == "UpdateFunctionCode")
    assert uploaded.params["ZipFile"] == p.ctx.artifact().data


def test_the_zip_is_deterministic_and_ships_the_processor_and_its_requirements() -> None:
    import io
    import zipfile

    first, second = packaging.build(), packaging.build()
    assert first.data == second.data and first.sha256 == second.sha256
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "lambda_src/handler.py" in names
    assert any(n.startswith("aws_lambda_powertools/") for n in names)
    assert names == sorted(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    infos = zipfile.ZipFile(io.BytesIO(first.data)).infolist()
    assert {i.date_time for i in infos} == {packaging.ZIP_EPOCH}


def test_versioning_turned_off_is_suspended_once_then_unchanged(pipeline: Any) -> None:
    p = pipeline(bucket_versioning=True)
    engine.apply(p.ctx)
    p.fresh(bucket_versioning=False)
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == ["s3.PutBucketVersioning"]
    assert p.client("s3").get_bucket_versioning(Bucket=p.ctx.names.bucket)["Status"] == \
        "Suspended"
    p.fresh()
    engine.apply(p.ctx)
    assert p.mutating() == []
