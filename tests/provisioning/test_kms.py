"""The pipeline's KMS key: a policy EventBridge can satisfy, a grant that works from the first
second, and one key (with its alias) after any interrupted or concurrent run."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from pipelinectl import engine
from pipelinectl.config import TAG_KEY
from pipelinectl.errors import PipelineError

ACCOUNT = "123456789012"
ALIAS = "alias/ecommerce-pipeline"
ALARMS = ("processor-errors", "processor-throttles", "dlq-not-empty", "queue-oldest-message",
          "rule-failed-invocations")


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s.get("Sid") == sid)


def our_keys(p: Any) -> dict[str, str]:
    """KeyId -> KeyState of every key carrying our tag, as `aws kms list-keys` + tags show."""
    kms = p.client("kms")
    keys = {}
    for key in kms.list_keys()["Keys"]:
        tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
        if {t["TagKey"]: t["TagValue"] for t in tags}.get(TAG_KEY) == "ecommerce":
            keys[key["KeyId"]] = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
    return keys


def alias_target(p: Any) -> str | None:
    aliases = p.client("kms").list_aliases()["Aliases"]
    return next((a.get("TargetKeyId") for a in aliases if a["AliasName"] == ALIAS), None)


def assert_one_key_with_its_alias(p: Any) -> str:
    live = {k for k, state in our_keys(p).items() if state != "PendingDeletion"}
    assert len(live) == 1, our_keys(p)
    [key] = live
    assert alias_target(p) == key
    assert p.client("kms").get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    return key


def assert_nothing_left(p: Any) -> None:
    assert {s for s in our_keys(p).values()} <= {"PendingDeletion"}
    assert alias_target(p) is None


def interrupt(p: Any, operation: str, *, applied: bool) -> list[str]:
    """Fail the next `operation` once: before it reaches AWS, or after AWS applied it and
    before the client heard back. Returns a list that records that it fired."""
    fired: list[str] = []
    client = p.client("kms")

    def before(**_: Any) -> None:
        if not fired:
            fired.append(operation)
            raise EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com")

    def after(**_: Any) -> None:
        if not fired:
            fired.append(operation)
            raise ReadTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com")

    event = f"{'after' if applied else 'before'}-call.kms.{operation}"
    client.meta.events.register(event, after if applied else before)
    return fired


def test_eventbridge_may_use_the_key_without_source_conditions(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["topic"])
    kms = p.client("kms")
    key = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"]  # GetKeyPolicy takes no alias
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    events = statement(policy, "EventBridgePublishesToTopics")
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(events["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert "aws:Source" not in json.dumps(events.get("Condition", {}))
    alarms = statement(policy, "CloudWatchAlarmsPublishToTopics")
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": sorted(
            f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:ecommerce-{a}" for a in ALARMS)}}


def test_role_is_granted_the_topic_key_by_its_arn(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["topic", "roles"])
    key_arn = p.client("kms").describe_key(KeyId=ALIAS)["KeyMetadata"]["Arn"]
    policy = p.client("iam").get_role_policy(RoleName="ecommerce-processor-role",
                                             PolicyName="pipeline-access")["PolicyDocument"]
    grant = statement(policy, "UseTopicKey")
    assert grant["Resource"] == key_arn  # one key, authorised at once (no alias condition)
    assert "Condition" not in grant
    assert sorted(grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    p.reset_calls()
    assert {c.action for c in engine.plan(p.ctx, ["topic", "roles"])} == {"unchanged"}


def test_the_roles_step_alone_asks_for_the_topic_step_first(cli: Any) -> None:
    result = cli("roles")
    assert result.exit_code == 1
    assert "run `pipelinectl topic`" in result.output


def test_a_topic_key_given_as_an_alias_is_granted_by_its_key_arn(pipeline: Any) -> None:
    p = pipeline()
    kms = p.client("kms")
    team_key = kms.create_key(Description="team key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/team-key", TargetKeyId=team_key["KeyId"])
    p.fresh(topic_kms_key="alias/team-key")
    engine.apply(p.ctx, ["topic", "roles"])
    policy = p.client("iam").get_role_policy(RoleName="ecommerce-processor-role",
                                             PolicyName="pipeline-access")["PolicyDocument"]
    assert statement(policy, "UseTopicKey")["Resource"] == team_key["Arn"]
    assert our_keys(p) == {}  # the pipeline made no key of its own


def test_a_topic_key_alias_that_names_no_key_is_refused_clearly(pipeline: Any) -> None:
    p = pipeline(topic_kms_key="alias/bogus")
    with pytest.raises(PipelineError, match="topic_kms_key = 'alias/bogus' names no KMS key"):
        engine.apply(p.ctx, ["roles"])
    assert p.client("iam").list_roles()["Roles"] == []  # refused before anything was made


@pytest.mark.parametrize("applied", [False, True], ids=["never-sent", "applied"])
def test_up_stopped_between_create_key_and_create_alias_adopts_that_key(
        pipeline: Any, applied: bool) -> None:
    p = pipeline()
    # after CreateKey returned (or it never did), before CreateAlias reached AWS
    fired = interrupt(p, "CreateAlias" if not applied else "CreateKey", applied=applied)
    with pytest.raises(engine.StepFailed):
        engine.apply(p.ctx, ["topic"])
    assert fired and len(our_keys(p)) == 1 and alias_target(p) is None
    planned = {c.kind: c for c in engine.plan(p.ctx, ["topic"])}
    assert planned["KMS key"].action == "update" and "alias" in planned["KMS key"].fields
    engine.apply(p.ctx, ["topic"])
    key = assert_one_key_with_its_alias(p)
    assert our_keys(p) == {key: "Enabled"}  # the first key was adopted, not a second made


def test_teardown_finds_a_key_whose_alias_was_never_made(pipeline: Any) -> None:
    p = pipeline()
    interrupt(p, "CreateAlias", applied=False)
    with pytest.raises(engine.StepFailed):
        engine.apply(p.ctx, ["topic"])
    changes = engine.teardown(p.ctx)
    assert ("KMS key", "delete") in {(c.kind, c.action) for c in changes}
    assert_nothing_left(p)


@pytest.mark.parametrize("applied", [False, True], ids=["never-sent", "applied"])
@pytest.mark.parametrize("operation", ["ScheduleKeyDeletion", "DeleteAlias"])
def test_teardown_stopped_at_either_key_call_finishes_on_its_rerun(
        pipeline: Any, operation: str, applied: bool) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["topic"])
    fired = interrupt(p, operation, applied=applied)
    with pytest.raises(engine.StepFailed):
        engine.teardown(p.ctx)
    assert fired
    engine.teardown(p.ctx)
    assert_nothing_left(p)
    p.reset_calls()
    assert {c.action for c in engine.teardown(p.ctx)} == {"absent"}
    assert p.mutating() == []


def test_up_after_teardown_makes_a_fresh_key_and_leaves_the_old_one_pending(
        pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["topic"])
    engine.teardown(p.ctx)
    engine.apply(p.ctx, ["topic"])
    key = assert_one_key_with_its_alias(p)
    assert sorted(our_keys(p).values()) == ["Enabled", "PendingDeletion"]
    assert our_keys(p)[key] == "Enabled"


def run_concurrently(*runs: Callable[[], Any]) -> dict[int, BaseException]:
    errors: dict[int, BaseException] = {}

    def run(index: int, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors[index] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def rendezvous() -> Callable[..., None]:
    """A before-call hook that holds each of two runs until both reached the call."""
    barrier = threading.Barrier(2, timeout=60)

    def meet(**_: Any) -> None:  # returning a value would replace the AWS response
        barrier.wait()

    return meet


def test_two_ups_at_once_converge_on_one_key_and_one_role(pipeline: Any) -> None:
    first, second = pipeline(), pipeline()
    # Make the race certain: each run waits at CreateRole and CreateAlias until the other
    # got there too, so both have read "absent" and both create a key.
    for operation, service in (("CreateRole", "iam"), ("CreateKey", "kms")):
        meet = rendezvous()
        for p in (first, second):
            p.client(service).meta.events.register(f"before-call.{service}.{operation}", meet)
    errors = run_concurrently(lambda: engine.apply(first.ctx), lambda: engine.apply(second.ctx))
    assert errors == {}
    key = assert_one_key_with_its_alias(first)
    states = our_keys(first)
    assert len(states) == 2 and states[key] == "Enabled"  # the loser's key is going
    roles = [r for r in first.client("iam").list_roles()["Roles"]
             if r["RoleName"] == "ecommerce-processor-role"]
    assert len(roles) == 1
    assert {c.action for c in engine.plan(first.fresh())} == {"unchanged"}
    engine.teardown(first.ctx)
    assert_nothing_left(first)
