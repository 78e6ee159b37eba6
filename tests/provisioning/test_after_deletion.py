"""`teardown` then `up` on AWS, where deletions take time (issue 7, item 5).

AWS sources (see aws_answers.AfterDeletion): SQS API reference DeleteQueue (a name is refused
for 60 s after its queue was deleted: QueueDeletedRecently), DynamoDB API reference
DeleteTable (the table stays DELETING until DynamoDB completes the deletion), Lambda API
reference DeleteEventSourceMapping (the mapping enters Deleting for several seconds).
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_answers import AfterDeletion
from scenarios import teardown_then_up_converges

from pipelinectl import engine
from pipelinectl.engine import Progress


def test_teardown_then_up_right_away_works(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AfterDeletion(monkeypatch)
    assert cli("up").exit_code == 0

    def run(*args: str) -> tuple[int, str]:
        result = cli(*args)
        return result.exit_code, result.output

    teardown_then_up_converges(run)
    # teardown returned only once the table and the mapping were gone, not just going
    # (checked before up re-created them: nothing was refused but the queue names).
    assert {what.split()[0] for what, _ in aws.refused} == {"CreateQueue"}
    # SQS refused the names until 60 s after the deletion; up retried until then.
    refused = [what for what, _ in aws.refused]
    assert "CreateQueue ecommerce-transactions-dlq" in refused
    for queue in ("ecommerce-transactions", "ecommerce-transactions-dlq"):
        assert aws.created[queue] >= aws.queues[queue] + 60


def test_a_queue_name_refused_too_long_fails_in_one_sentence(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AfterDeletion(monkeypatch, queue_seconds=3600)
    p = pipeline()
    aws.queues["ecommerce-transactions-dlq"] = 0.0  # deleted by someone a moment ago
    with pytest.raises(engine.StepFailed) as failed:
        engine.apply(p.ctx, ["queue"])
    message = str(failed.value)
    assert "SQS still refuses the queue name ecommerce-transactions-dlq" in message
    assert message.endswith("wait a minute and re-run the command.")
    assert 60 < aws.clock <= 75  # bounded: a little more than SQS's 60 s


def test_plan_and_up_treat_a_table_and_mapping_being_deleted_as_absent(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock is shared by the steps running at once: the table's wait must not use up
    # the mapping's deletion before the subscribe step even looks at it.
    aws = AfterDeletion(monkeypatch, mapping_seconds=45)
    p = pipeline()
    engine.apply(p.ctx)
    # An interrupted teardown (or the console) deleted them: AWS is still deleting them.
    lam, ddb = p.client("lambda"), p.client("dynamodb")
    mapping = lam.list_event_source_mappings()["EventSourceMappings"][0]["UUID"]
    lam.delete_event_source_mapping(UUID=mapping)
    ddb.delete_table(TableName="ecommerce-transactions")

    planned = {c.kind: c for c in engine.plan(p.ctx)}
    for kind in ("DynamoDB table", "event source mapping"):
        assert planned[kind].action == "create"
        assert "still being deleted" in planned[kind].detail
    status = {r.kind: r for r in engine.status(p.ctx)}
    assert status["DynamoDB table"].state == "being deleted"

    events: list[Progress] = []
    changes = engine.apply(p.ctx, on_progress=events.append)
    assert {c.kind for c in changes if c.action == "create"} == {
        "DynamoDB table", "event source mapping"}
    waits = {e.kind for e in events if e.phase == "wait"}
    assert {"DynamoDB table", "event source mapping"} <= waits
    assert aws.refused == []  # nothing was created while its predecessor was going
    assert aws.created["ecommerce-transactions"] >= aws.tables["ecommerce-transactions"] + 20
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}


def test_teardown_finishes_a_deletion_already_under_way(
        pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = AfterDeletion(monkeypatch)
    p = pipeline()
    engine.apply(p.ctx, ["table"])
    p.client("dynamodb").delete_table(TableName="ecommerce-transactions")
    changes = engine.teardown(p.ctx)
    table = next(c for c in changes if c.kind == "DynamoDB table")
    assert table.action == "absent"
    assert not aws.table_deleting("ecommerce-transactions")
