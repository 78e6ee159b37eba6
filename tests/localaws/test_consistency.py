"""The consistency emulation, patch by patch: plain moto changes everything at once (so the
patch is still needed), and with the emulation on, AWS's transitional state holds for its
window and then clears. Time is a fake clock (``consistency.clock``), moved by the tests.
AWS sources: see the docstring of ``pipelinectl.localaws.consistency``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from localaws_helpers import handler_zip

from pipelinectl.localaws import consistency, motocompat
from pipelinectl.localaws.consistency import DURATIONS
from pipelinectl.localaws.poller import enabled_sqs_mappings
from pipelinectl.resources.role import TRUST_POLICY

REGION = "us-east-1"
FAST = DURATIONS["fast"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(consistency, "clock", fake)
    return fake


def _moto(mode: str) -> Iterator[None]:
    with moto.mock_aws():
        motocompat.apply()
        consistency.apply(mode)
        try:
            yield
        finally:
            consistency.apply("off")


@pytest.fixture
def fast(clock: Clock) -> Iterator[None]:
    yield from _moto("fast")


@pytest.fixture
def plain() -> Iterator[None]:
    yield from _moto("off")


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# -- 1. a deleted queue's name --------------------------------------------------------------


def _recreate_queue() -> Any:
    sqs = client("sqs")
    sqs.delete_queue(QueueUrl=sqs.create_queue(QueueName="reused")["QueueUrl"])
    return sqs


def test_plain_moto_reuses_a_deleted_queue_name_at_once(plain: None) -> None:
    _recreate_queue().create_queue(QueueName="reused")


@pytest.mark.parametrize("mode", ["aws", "fast"])
def test_a_deleted_queue_name_is_refused_for_the_window(mode: str, clock: Clock) -> None:
    for _ in _moto(mode):
        sqs = _recreate_queue()
        window = DURATIONS[mode].queue_name_reuse
        clock.advance(window - 0.5)
        with pytest.raises(sqs.exceptions.QueueDeletedRecently):
            sqs.create_queue(QueueName="reused")
        sqs.create_queue(QueueName="other")  # only that name
        clock.advance(1)
        sqs.create_queue(QueueName="reused")
    assert DURATIONS["aws"].queue_name_reuse == 60  # SQS API reference, DeleteQueue


# -- 2. a deleted table ---------------------------------------------------------------------

TABLE = {"TableName": "t", "BillingMode": "PAY_PER_REQUEST",
         "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
         "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}]}


def test_plain_moto_forgets_a_deleted_table_at_once(plain: None) -> None:
    ddb = client("dynamodb")
    ddb.create_table(**TABLE)
    ddb.delete_table(TableName="t")
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName="t")


def test_a_deleted_table_is_deleting_then_gone(fast: None, clock: Clock) -> None:
    ddb = client("dynamodb")
    ddb.create_table(**TABLE)
    ddb.delete_table(TableName="t")
    assert ddb.describe_table(TableName="t")["Table"]["TableStatus"] == "DELETING"
    with pytest.raises(ClientError) as refused:
        ddb.create_table(**TABLE)
    assert code(refused) == "ResourceInUseException"
    clock.advance(FAST.table_deleting)
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName="t")
    ddb.create_table(**TABLE)
    assert ddb.describe_table(TableName="t")["Table"]["TableStatus"] == "ACTIVE"


# -- 3./5. functions and roles --------------------------------------------------------------


def _role(clock: Clock | None = None) -> str:
    arn = str(client("iam").create_role(
        RoleName="r", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]["Arn"])
    if clock is not None:
        clock.advance(FAST.role_propagation)
    return arn


def _function(role: str) -> None:
    client("lambda").create_function(
        FunctionName="f", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": handler_zip("def handler(e, c): return 1")})


def _state() -> tuple[str, str]:
    conf = client("lambda").get_function(FunctionName="f")["Configuration"]
    return conf["State"], conf["LastUpdateStatus"]


def test_plain_moto_lets_lambda_use_a_new_role_and_is_active_at_once(plain: None) -> None:
    _function(_role())
    assert _state() == ("Active", "Successful")
    lam = client("lambda")
    lam.update_function_configuration(FunctionName="f", Timeout=5)
    lam.update_function_configuration(FunctionName="f", Timeout=6)
    assert _state() == ("Active", "Successful")


def test_a_new_role_cannot_be_assumed_by_lambda_at_first(fast: None, clock: Clock) -> None:
    role = _role()
    with pytest.raises(ClientError) as refused:
        _function(role)
    assert code(refused) == "InvalidParameterValueException"
    assert "The role defined for the function cannot be assumed by Lambda." in str(refused.value)
    clock.advance(FAST.role_propagation)
    _function(role)


def test_a_new_function_is_pending_then_active(fast: None, clock: Clock) -> None:
    _function(_role(clock))
    assert _state() == ("Pending", "InProgress")
    with pytest.raises(ClientError) as refused:
        client("lambda").update_function_configuration(FunctionName="f", Timeout=5)
    assert code(refused) == "ResourceConflictException"
    assert "Pending" in str(refused.value)
    clock.advance(FAST.function_pending)
    assert _state() == ("Active", "Successful")


def test_an_update_is_in_progress_and_refuses_a_second(fast: None, clock: Clock) -> None:
    _function(_role(clock))
    clock.advance(FAST.function_pending)
    lam = client("lambda")
    lam.update_function_configuration(FunctionName="f", Timeout=5)
    assert _state() == ("Active", "InProgress")
    with pytest.raises(ClientError) as refused:
        lam.update_function_code(FunctionName="f", ZipFile=handler_zip("def handler(e, c): 2"))
    assert code(refused) == "ResourceConflictException"
    assert "An update is in progress for resource" in str(refused.value)
    clock.advance(FAST.function_updating)
    assert _state() == ("Active", "Successful")
    lam.update_function_code(FunctionName="f", ZipFile=handler_zip("def handler(e, c): 2"))


# -- 4. event source mappings ---------------------------------------------------------------


def _queue_and_function(clock: Clock | None) -> str:
    _function(_role(clock))
    if clock is not None:
        clock.advance(FAST.function_pending)
    sqs = client("sqs")
    url = sqs.create_queue(QueueName="src")["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"])


def test_plain_moto_mappings_are_enabled_and_gone_at_once(plain: None) -> None:
    lam = client("lambda")
    uuid = lam.create_event_source_mapping(EventSourceArn=_queue_and_function(None),
                                           FunctionName="f")["UUID"]
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"
    lam.delete_event_source_mapping(UUID=uuid)
    assert lam.list_event_source_mappings()["EventSourceMappings"] == []


def test_a_mapping_is_creating_then_enabled_and_only_then_polled(
        fast: None, clock: Clock) -> None:
    lam = client("lambda")
    uuid = lam.create_event_source_mapping(EventSourceArn=_queue_and_function(clock),
                                           FunctionName="f")["UUID"]
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Creating"
    assert uuid not in enabled_sqs_mappings()
    clock.advance(FAST.mapping_creating)
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"
    assert uuid in enabled_sqs_mappings()


def test_a_deleted_mapping_is_deleting_and_blocks_its_replacement(
        fast: None, clock: Clock) -> None:
    lam = client("lambda")
    queue = _queue_and_function(clock)
    uuid = lam.create_event_source_mapping(EventSourceArn=queue, FunctionName="f")["UUID"]
    clock.advance(FAST.mapping_creating)
    assert lam.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    listed = lam.list_event_source_mappings(EventSourceArn=queue)["EventSourceMappings"]
    assert [(m["UUID"], m["State"]) for m in listed] == [(uuid, "Deleting")]
    assert uuid not in enabled_sqs_mappings()
    with pytest.raises(ClientError) as refused:
        lam.create_event_source_mapping(EventSourceArn=queue, FunctionName="f")
    assert code(refused) == "ResourceConflictException"
    assert uuid in str(refused.value)
    clock.advance(FAST.mapping_deleting)
    assert lam.list_event_source_mappings(EventSourceArn=queue)["EventSourceMappings"] == []
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_event_source_mapping(UUID=uuid)
    lam.create_event_source_mapping(EventSourceArn=queue, FunctionName="f")


def test_a_mapping_waits_for_the_role_policy_to_reach_lambda(fast: None, clock: Clock) -> None:
    queue = _queue_and_function(clock)
    client("iam").put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*",
                                                "Resource": queue}]}))
    lam = client("lambda")
    with pytest.raises(ClientError) as refused:
        lam.create_event_source_mapping(EventSourceArn=queue, FunctionName="f")
    assert code(refused) == "InvalidParameterValueException"
    assert "execution role does not have permissions to call" in str(refused.value)
    clock.advance(FAST.role_propagation)
    lam.create_event_source_mapping(EventSourceArn=queue, FunctionName="f")


# -- 6. S3's EventBridge notifications ------------------------------------------------------


def _bucket_to_queue() -> tuple[Any, str]:
    """A bucket with EventBridge notifications just enabled, a rule sending its Object
    Created events to a queue; returns (s3 client, queue URL)."""
    s3, sqs, events = client("s3"), client("sqs"), client("events")
    s3.create_bucket(Bucket="landing")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="created", EventPattern=json.dumps(
        {"source": ["aws.s3"], "detail-type": ["Object Created"]}))
    events.put_targets(Rule="created", Targets=[{"Id": "q", "Arn": arn}])
    s3.put_bucket_notification_configuration(
        Bucket="landing", NotificationConfiguration={"EventBridgeConfiguration": {}})
    return s3, url


def _keys_delivered(url: str) -> list[str]:
    messages = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["detail"]["object"]["key"]
            for m in messages.get("Messages", [])]


def test_plain_moto_sends_s3_events_right_after_enabling(plain: None) -> None:
    s3, url = _bucket_to_queue()
    s3.put_object(Bucket="landing", Key="incoming/early.csv", Body=b"x")
    assert _keys_delivered(url) == ["incoming/early.csv"]


def test_s3_sends_no_events_until_eventbridge_takes_effect(fast: None, clock: Clock) -> None:
    s3, url = _bucket_to_queue()
    s3.put_object(Bucket="landing", Key="incoming/early.csv", Body=b"x")
    clock.advance(FAST.s3_eventbridge)
    s3.put_object(Bucket="landing", Key="incoming/late.csv", Body=b"x")
    # moto delivers synchronously: the early object's event was dropped, not delayed.
    assert _keys_delivered(url) == ["incoming/late.csv"]
    # Re-applying the same configuration does not open a new window.
    s3.put_bucket_notification_configuration(
        Bucket="landing", NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket="landing", Key="incoming/again.csv", Body=b"x")
    assert _keys_delivered(url) == ["incoming/again.csv"]


def test_the_info_document_states_the_delay_it_emulates(clock: Clock) -> None:
    for mode in ("aws", "fast", "off"):
        for _ in _moto(mode):
            info = consistency.describe()
            assert info["consistency"] == mode
            assert info["s3_eventbridge_delay_seconds"] == DURATIONS[mode].s3_eventbridge
    assert DURATIONS["aws"].s3_eventbridge == 300  # "around five minutes" (S3 User Guide)


# -- 7. KMS aliases and authorization -------------------------------------------------------


def test_plain_moto_names_a_new_alias_at_once(plain: None) -> None:
    kms = client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/new", TargetKeyId=key)
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key)["Aliases"]] == ["alias/new"]


def test_alias_changes_reach_authorization_after_the_window(fast: None, clock: Clock) -> None:
    kms = client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/new", TargetKeyId=key)

    def aliases(key_id: str) -> set[str]:
        return consistency.authorizing_aliases("123456789012", REGION, key_id)

    assert aliases(key) == set()  # visible in the API, not yet in authorization
    clock.advance(FAST.kms_alias)
    assert aliases(key) == {"alias/new"}
    kms.update_alias(AliasName="alias/new", TargetKeyId=other)
    assert (aliases(key), aliases(other)) == ({"alias/new"}, set())
    clock.advance(FAST.kms_alias)
    assert (aliases(key), aliases(other)) == (set(), {"alias/new"})
    kms.delete_alias(AliasName="alias/new")
    assert aliases(other) == {"alias/new"}
    clock.advance(FAST.kms_alias)
    assert aliases(other) == set()
