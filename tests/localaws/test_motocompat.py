"""Each moto patch: unpatched moto still has the defect (so we notice when moto fixes it and the
patch can go), and the patched behaviour is AWS's."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import Any

import boto3
import moto
import pytest

from pipelinectl.localaws import motocompat
from pipelinectl.localaws.iamconditions import conditions_met
from pipelinectl.resources.role import TRUST_POLICY

REGION = "us-east-1"
BUCKET = "compat-bucket-1"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


# -------------------------------------------------------------------------------- version / apply


@pytest.mark.parametrize("version", ["5.2.1", "5.2.5", "5.2.99", "5.2.6.dev3"])
def test_tested_versions_pass(version: str, monkeypatch: pytest.MonkeyPatch,
                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(motocompat.SKIP_VERSION_CHECK_ENV, raising=False)  # no override
    with caplog.at_level(logging.WARNING):
        assert motocompat.check_moto_version(version) is None  # accepted, not raised
    assert "outside the tested range" not in caplog.text  # in range, not waved through


@pytest.mark.parametrize("version", ["5.2.0", "5.3.0", "6.0.0", "4.2.14"])
def test_untested_versions_are_refused_with_the_fix(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(motocompat.SKIP_VERSION_CHECK_ENV, raising=False)
    with pytest.raises(
        motocompat.MotoVersionError, match=r"pip install 'moto\[server\]>=5.2.1,<5.3'"
    ):
        motocompat.check_moto_version(version)


def test_version_check_can_be_overridden(monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(motocompat.SKIP_VERSION_CHECK_ENV, "1")
    with caplog.at_level(logging.WARNING):
        motocompat.check_moto_version("6.0.0")  # would raise without the override
    assert "moto 6.0.0 is outside the tested range; patching anyway" in caplog.text


def test_installed_moto_is_in_range() -> None:
    motocompat.check_moto_version()


def test_apply_is_idempotent_and_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated apply() only checks the patches are in place: no version check, no
    rebuilding, the very same installed objects."""
    with moto.mock_aws():
        motocompat.apply()
        installed = [(p.owner, p.name, p.owner.__dict__.get(p.name))
                     for p in motocompat._applied]

        def refuse(*_args: Any) -> Any:
            raise AssertionError("a repeated apply() did the first apply's work again")

        monkeypatch.setattr(motocompat, "check_moto_version", refuse)
        monkeypatch.setattr(motocompat, "_patches", refuse)
        for _ in range(3):
            motocompat.apply()
        assert motocompat.is_applied()
        assert [(o, n, o.__dict__.get(n)) for o, n, _ in installed] == installed


def test_apply_reinstalls_a_patch_replaced_behind_its_back() -> None:
    from moto.s3.models import FakeBucket

    motocompat.apply()
    with motocompat.unpatched():
        original = FakeBucket.get_permission
    FakeBucket.get_permission = original  # as a stray monkeypatch undo would
    motocompat.apply()
    assert FakeBucket.get_permission is not original
    with motocompat.unpatched():
        assert FakeBucket.get_permission is original


def test_revert_restores_and_reapply_works() -> None:
    from moto.s3.models import FakeBucket

    motocompat.apply()
    patched_fn = FakeBucket.get_permission
    with motocompat.unpatched():
        assert FakeBucket.get_permission is not patched_fn
        assert not motocompat.is_applied()
    assert motocompat.is_applied()
    assert FakeBucket.get_permission is patched_fn


# -------------------------------------------------------------------------------- a. notification


def _bucket_with_eventbridge() -> Any:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return s3


def test_defect_a_moto_drops_eventbridge_configuration(plain_moto: None) -> None:
    s3 = _bucket_with_eventbridge()
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=BUCKET)


def test_patch_a_eventbridge_configuration_is_returned(patched: None) -> None:
    s3 = _bucket_with_eventbridge()
    got = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    assert got["EventBridgeConfiguration"] == {}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=BUCKET)


def test_patch_a_keeps_other_configurations(patched: None) -> None:
    s3 = client("s3")
    sqs = client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "EventBridgeConfiguration": {},
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}],
        },
    )
    got = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    assert got["EventBridgeConfiguration"] == {}
    assert got["QueueConfigurations"][0]["QueueArn"] == arn


# -------------------------------------------------------------------------------- a2. create tags

CREATION_TAGS = [{"Key": "pipelinectl:pipeline", "Value": "ecommerce"},
                 {"Key": "team", "Value": ""}]


def _create_tagged_bucket(region: str) -> Any:
    s3 = boto3.client("s3", region_name=region)
    config: dict[str, Any] = {"Tags": CREATION_TAGS}
    if region != "us-east-1":
        config["LocationConstraint"] = region
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration=config)
    return s3


def test_defect_a2_moto_drops_tags_given_at_creation(plain_moto: None) -> None:
    s3 = _create_tagged_bucket("eu-west-1")
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=BUCKET)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_patch_a2_tags_given_at_creation_are_stored(patched: None, region: str) -> None:
    s3 = _create_tagged_bucket(region)
    assert sorted(s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"],
                  key=lambda t: t["Key"]) == CREATION_TAGS
    assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] in {None, region}


def test_patch_a2_other_bucket_puts_are_untouched(patched: None) -> None:
    s3 = _create_tagged_bucket("us-east-1")
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"] == [{"Key": "a", "Value": "b"}]


# -------------------------------------------------------------------------------- b. policy


def _tls_only_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def test_defect_b_moto_ignores_bool_condition(plain_moto: None) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=_tls_only_policy(BUCKET))
    with pytest.raises(s3.exceptions.ClientError, match=r"403|AccessDenied"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")


def test_patch_b_tls_only_policy_allows_object_operations(patched: None) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=_tls_only_policy(BUCKET))
    s3.put_object(Bucket=BUCKET, Key="incoming/a.csv", Body=b"x")
    assert s3.get_object(Bucket=BUCKET, Key="incoming/a.csv")["Body"].read() == b"x"
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "incoming/a.csv"}]})
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_patch_b_met_conditions_still_deny(patched: None) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    policy = json.loads(_tls_only_policy(BUCKET))
    policy["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    with pytest.raises(s3.exceptions.ClientError, match=r"403|AccessDenied"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")


CTX = {
    "aws:securetransport": ["true"],
    "aws:sourcearn": ["arn:aws:events:us-east-1:123456789012:rule/ecommerce-object-created"],
    "aws:sourceip": ["127.0.0.1"],
    "s3:max-keys": ["10"],
    "aws:currenttime": ["2024-08-09T12:34:56Z"],
}
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/ecommerce-object-created"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"Bool": {"aws:SecureTransport": "false"}}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, True),
        ({"Bool": {"aws:SecureTransport": True}}, True),
        ({"Bool": {"aws:MultiFactorAuthPresent": "false"}}, False),
        ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}, True),
        ({"StringEquals": {"aws:SourceArn": RULE_ARN}}, True),
        ({"StringEquals": {"aws:SourceArn": ["x", RULE_ARN]}}, True),
        ({"StringEquals": {"aws:SourceArn": "x"}}, False),
        ({"StringNotEquals": {"aws:SourceArn": "x"}}, True),
        ({"StringNotEquals": {"aws:SourceArn": RULE_ARN}}, False),
        ({"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, True),  # missing key
        ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, False),  # missing key
        ({"StringEqualsIgnoreCase": {"aws:SourceArn": RULE_ARN.upper()}}, True),
        ({"StringLike": {"aws:SourceArn": "arn:aws:events:*:rule/ecommerce-*"}}, True),
        ({"StringLike": {"aws:SourceArn": "arn:aws:events:*:rule/other-*"}}, False),
        ({"StringNotLike": {"aws:SourceArn": "arn:aws:events:*:rule/other-?"}}, True),
        ({"ArnEquals": {"aws:SourceArn": RULE_ARN}}, True),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:events:us-east-1:*:rule/*"}}, True),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*"}}, False),
        ({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*"}}, True),
        ({"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/x"}}, False),
        ({"Null": {"aws:SourceArn": "false"}}, True),
        ({"Null": {"aws:SourceArn": "true"}}, False),
        ({"Null": {"aws:PrincipalOrgID": "true"}}, True),
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, True),
        ({"NumericGreaterThan": {"s3:max-keys": "10"}}, False),
        ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, True),
        ({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, False),
        ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"ForAnyValue:StringEquals": {"aws:SourceArn": [RULE_ARN]}}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, True),  # missing key
        ({"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:SourceArn": "x"}}, False),
        ({"SomethingNew": {"aws:SourceArn": RULE_ARN}}, False),
        ({}, True),
    ],
)
def test_conditions(block: dict[str, Any], expected: bool) -> None:
    assert conditions_met(block, CTX) is expected


def test_condition_keys_are_case_insensitive() -> None:
    assert conditions_met({"Bool": {"AWS:SECURETRANSPORT": "true"}}, CTX)


# -------------------------------------------------------------------------------- c. SNS targets


def _eventbridge_to_sns_setup() -> tuple[Any, str, str]:
    """Bucket with EventBridge on; rule 1 → SNS topic → queue; rule 2 → queue2 directly."""
    s3, sns, sqs, events = client("s3"), client("sns"), client("sqs"), client("events")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    topic = sns.create_topic(Name="ingest")["TopicArn"]
    urls = [sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("via-sns", "direct")]
    arns = [
        sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for u in urls
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arns[0])
    pattern = json.dumps(
        {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": "incoming/"}]}},
        }
    )
    for name, arn in (("to-sns", topic), ("to-sqs", arns[1])):
        events.put_rule(Name=name, EventPattern=pattern)
        events.put_targets(Rule=name, Targets=[{"Id": "t", "Arn": arn}])
    return s3, urls[0], urls[1]


def _bodies(url: str) -> list[str]:
    msgs = client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [m["Body"] for m in msgs.get("Messages", [])]


def test_defect_c_moto_cannot_deliver_to_sns_targets(plain_moto: None) -> None:
    s3, via_sns, direct = _eventbridge_to_sns_setup()
    s3.put_object(Bucket=BUCKET, Key="incoming/a.csv", Body=b"x")
    assert _bodies(via_sns) == []
    assert _bodies(direct) == []  # the failing rule stopped the later one too


def test_patch_c_s3_event_reaches_sns_and_later_rules(patched: None) -> None:
    s3, via_sns, direct = _eventbridge_to_sns_setup()
    s3.put_object(Bucket=BUCKET, Key="incoming/a.csv", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="incoming/b.csv", Body=b"y")
    s3.put_object(Bucket=BUCKET, Key="other/c.csv", Body=b"z")
    notes = [json.loads(b) for b in _bodies(via_sns)]
    assert len(notes) == 2
    events = [json.loads(n["Message"]) for n in notes]
    assert {e["detail"]["object"]["key"] for e in events} == {"incoming/a.csv", "incoming/b.csv"}
    assert all(n["Type"] == "Notification" for n in notes)
    event = events[0]
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["account"] == "123456789012" and event["region"] == REGION
    assert event["time"].endswith("Z") and "ingestion-time" not in event
    assert events[0]["id"] != events[1]["id"]
    direct_events = [json.loads(b) for b in _bodies(direct)]
    assert len(direct_events) == 2
    assert {e["id"] for e in direct_events} == {e["id"] for e in events}


def test_patch_c_an_undeliverable_event_goes_to_the_targets_dlq_with_eventbridges_attributes(
        patched: None) -> None:
    """EventBridge user guide, "Using dead-letter queues to process undelivered events": a
    target that no longer exists is not retried; the event goes to the DLQ with RULE_ARN,
    TARGET_ARN, ERROR_CODE, ERROR_MESSAGE and RETRY_ATTEMPTS; FailedInvocations counts it."""
    sns, sqs, events = client("sns"), client("sqs"), client("events")
    s3, _via_sns, _direct = _eventbridge_to_sns_setup()
    dlq = sqs.create_queue(QueueName="rule-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    [target] = events.list_targets_by_rule(Rule="to-sns")["Targets"]
    events.put_targets(Rule="to-sns", Targets=[{**target, "DeadLetterConfig": {"Arn": dlq_arn}}])
    sns.delete_topic(TopicArn=target["Arn"])

    s3.put_object(Bucket=BUCKET, Key="incoming/lost.csv", Body=b"x")

    [dead] = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    event = json.loads(dead["Body"])
    assert event["detail"]["object"]["key"] == "incoming/lost.csv" and "ingestion-time" not in event
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == events.describe_rule(Name="to-sns")["Arn"]
    assert attributes["TARGET_ARN"] == target["Arn"]
    assert attributes["ERROR_CODE"] == "NO_RESOURCE" and attributes["ERROR_MESSAGE"]
    assert attributes["RETRY_ATTEMPTS"] == "0"
    stats = client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events", MetricName="FailedInvocations", Statistics=["Sum"],
        Dimensions=[{"Name": "RuleName", "Value": "to-sns"}], Period=60,
        StartTime="2000-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z")
    assert [p["Sum"] for p in stats["Datapoints"]] == [1.0]


def test_patch_c_put_events_with_input_transformer(patched: None) -> None:
    sns, sqs, events = client("sns"), client("sqs"), client("events")
    topic = sns.create_topic(Name="t")["TopicArn"]
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["app"]}))
    events.put_targets(
        Rule="r",
        Targets=[
            {"Id": "plain", "Arn": topic},
            {"Id": "const", "Arn": topic, "Input": '{"fixed": 1}'},
            {
                "Id": "xf",
                "Arn": topic,
                "InputTransformer": {
                    "InputPathsMap": {"amt": "$.detail.amount"},
                    "InputTemplate": '{"amount": <amt>}',
                },
            },
        ],
    )
    events.put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": '{"amount": 5}'}])
    bodies = sorted(_bodies(url))
    assert len(bodies) == 3
    parsed = [json.loads(b) for b in bodies]
    assert {"fixed": 1} in parsed and {"amount": 5} in parsed
    full = next(p for p in parsed if "detail" in p)
    assert full["detail"] == {"amount": 5} and full["source"] == "app"


# -------------------------------------------------------------------------------- d. ESM


def _queue_with_mapping() -> tuple[Any, str]:
    iam, lam, sqs = client("iam"), client("lambda"), client("sqs")
    role = iam.create_role(
        RoleName="r",
        AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    raise RuntimeError('ran')\n")
    lam.create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role,
        Handler="h.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName="fn",
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    return sqs, url


def test_defect_d_moto_swallows_messages_of_mapped_queues() -> None:
    # moto's Docker-less Lambda "succeeds" without running code, so the message is deleted.
    with moto.mock_aws(config={"lambda": {"use_docker": False}}), motocompat.unpatched():
        sqs, url = _queue_with_mapping()
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        assert _bodies(url) == []


@pytest.mark.parametrize("use_docker", [True, False])
def test_patch_d_messages_stay_for_the_poller(use_docker: bool) -> None:
    with moto.mock_aws(config={"lambda": {"use_docker": use_docker}}):
        motocompat.apply()
        sqs, url = _queue_with_mapping()
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        msgs = sqs.receive_message(
            QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"]
        )["Messages"]
        assert [m["Body"] for m in msgs] == ["hello"]
        assert msgs[0]["Attributes"]["ApproximateReceiveCount"] == "1"  # no hidden receive
        mappings = client("lambda").list_event_source_mappings(FunctionName="fn")
        assert len(mappings["EventSourceMappings"]) == 1


def test_patches_hold_for_the_moto_server() -> None:
    from moto.server import ThreadedMotoServer

    motocompat.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        bucket = "compat-server-bucket"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=_tls_only_policy(bucket))
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        assert (
            s3.get_bucket_notification_configuration(Bucket=bucket)["EventBridgeConfiguration"]
            == {}
        )
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)
    finally:
        server.stop()


# -------------------------------------------------------------------------------- f. alarm state


def _alarm_state_after_create_and_update() -> tuple[str, str]:
    cloudwatch = client("cloudwatch")
    spec: dict[str, Any] = {
        "AlarmName": "dlq-depth",
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cloudwatch.put_metric_alarm(**spec)
    created = cloudwatch.describe_alarms(AlarmNames=["dlq-depth"])["MetricAlarms"][0]["StateValue"]
    cloudwatch.set_alarm_state(AlarmName="dlq-depth", StateValue="ALARM", StateReason="test")
    cloudwatch.put_metric_alarm(**{**spec, "Threshold": 5})
    updated = cloudwatch.describe_alarms(AlarmNames=["dlq-depth"])["MetricAlarms"][0]
    assert updated["Threshold"] == 5
    return created, updated["StateValue"]


def test_defect_f_moto_alarms_start_ok_and_updates_reset_them(plain_moto: None) -> None:
    assert _alarm_state_after_create_and_update() == ("OK", "OK")


def test_patch_f_new_alarms_have_insufficient_data_and_updates_keep_state(patched: None) -> None:
    assert _alarm_state_after_create_and_update() == ("INSUFFICIENT_DATA", "ALARM")


# -------------------------------------------------------------------------------- g. SQS clock


def _clock_reads_per_send(depth: int) -> int:
    import moto.sqs.models as sqs_models

    sqs = client("sqs")
    url = sqs.create_queue(QueueName="deep")["QueueUrl"]
    for i in range(0, depth, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": f"{i + j}"} for j in range(10)]
        )
    calls = 0
    clock = sqs_models.unix_time_millis

    def counting(dt: Any = None) -> float:
        nonlocal calls
        calls += 1
        return float(clock(dt))

    # not monkeypatch: its undo would run after unpatched() re-applied the patches
    sqs_models.unix_time_millis = counting
    try:
        sqs.send_message(QueueUrl=url, MessageBody="one more")
    finally:
        sqs_models.unix_time_millis = clock
    return calls


def test_defect_g_moto_reads_the_clock_per_queued_message_on_each_send(plain_moto: None) -> None:
    from moto.core.utils import unix_time_millis
    from moto.sqs import models as sqs_models

    assert sqs_models.unix_time_millis is unix_time_millis  # the datetime-based clock
    assert _clock_reads_per_send(depth=200) >= 200


def test_patch_g_the_sqs_clock_is_cheap_and_agrees_with_motos(patched: None) -> None:
    import datetime as dt

    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs import models as sqs_models

    assert abs(sqs_models.unix_time_millis() - unix_time_millis()) < 1000
    assert abs(sqs_models.unix_time() - unix_time()) < 1
    moment = dt.datetime(2024, 8, 9, 12, 34, 56)
    assert sqs_models.unix_time_millis(moment) == unix_time_millis(moment)
    # How much cheaper it is belongs in a benchmark (bench/bench_e2e.py), not a timed test.


# -------------------------------------------------------------------------------- h. dynamodb


def test_defect_h_moto_copies_live_tables_for_transactions_without_a_lock() -> None:
    """The race itself is timing-dependent; what makes it possible is checked instead: moto's
    TransactWriteItems deep-copies the live table and takes no lock. When moto changes that,
    this fails and patch h can be reconsidered."""
    import inspect

    from moto.dynamodb.models import DynamoDBBackend

    with motocompat.unpatched():
        source = inspect.getsource(DynamoDBBackend.transact_write_items)
    assert "copy.deepcopy(" in source and "lock" not in source.lower()


def test_patch_h_concurrent_transactions_and_puts_all_succeed(patched: None) -> None:
    import threading

    ddb = client("dynamodb")
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    errors: list[BaseException] = []

    def transactions(worker: int) -> None:
        try:
            for n in range(40):
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"k": {"S": f"t{worker}-{n}-{i}"}}}}
                    for i in range(5)])
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    def puts(worker: int) -> None:
        try:
            for n in range(200):
                ddb.put_item(TableName="t", Item={"k": {"S": f"p{worker}-{n}"}})
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=fn, args=(w,)) for w in range(3)
               for fn in (transactions, puts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ddb.scan(TableName="t", Select="COUNT")["Count"] == 3 * 40 * 5 + 3 * 200


# -------------------------------------------------------------------------------- j. transactions


def _table_with(ddb: Any, **values: int) -> None:
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    for key, value in values.items():
        ddb.put_item(TableName="t", Item={"k": {"S": key}, "v": {"N": str(value)}})


def _table_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the deep copies of whole moto tables (moto calls copy.deepcopy at call time)."""
    import copy

    from moto.dynamodb.models.table import Table

    copies: list[int] = []
    real = copy.deepcopy

    def counting(obj: Any, memo: Any = None, *args: Any) -> Any:
        if isinstance(obj, Table):
            copies.append(1)
        return real(obj, memo, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    return copies


def _ten_puts(ddb: Any) -> None:
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "t", "Item": {"k": {"S": f"n{i}"}, "v": {"N": "1"}}}}
        for i in range(10)])


def test_defect_j_moto_copies_the_whole_table_once_per_transaction_action(
        plain_moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction of n actions costs n copies of the table: O(n x table size), so a file
    of 2,000 rows (2,000 transactions into a growing table) took minutes locally."""
    ddb = client("dynamodb")
    _table_with(ddb, a=1)
    copies = _table_copies(monkeypatch)
    _ten_puts(ddb)
    assert len(copies) == 10


def test_patch_j_no_table_copy_and_still_all_or_nothing(
        patched: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS: TransactWriteItems is "an all-or-nothing operation" (DynamoDB API Reference,
    TransactWriteItems); a failed condition cancels every action with
    TransactionCanceledException and a reason per action."""
    from botocore.exceptions import ClientError

    ddb = client("dynamodb")
    _table_with(ddb, b=1, c=1, d=1)
    copies = _table_copies(monkeypatch)
    _ten_puts(ddb)
    assert copies == []
    assert ddb.scan(TableName="t", Select="COUNT")["Count"] == 13

    actions = [
        {"Put": {"TableName": "t", "Item": {"k": {"S": "a"}, "v": {"N": "1"}}}},
        {"Update": {"TableName": "t", "Key": {"k": {"S": "b"}}, "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"N": "2"}}}},
        {"Delete": {"TableName": "t", "Key": {"k": {"S": "c"}}}},
        {"ConditionCheck": {"TableName": "t", "Key": {"k": {"S": "d"}},
                            "ConditionExpression": "v = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
    ]
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=actions)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in caught.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]

    def value(key: str) -> str | None:
        item = ddb.get_item(TableName="t", Key={"k": {"S": key}}).get("Item")
        return item["v"]["N"] if item else None

    assert (value("a"), value("b"), value("c"), value("d")) == (None, "1", "1", "1")
    # An item named twice is refused (ValidationException) with nothing changed either.
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[actions[1], actions[1]])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert value("b") == "1"
    # And with the condition met, every action is applied.
    ddb.put_item(TableName="t", Item={"k": {"S": "d"}, "v": {"N": "2"}})
    ddb.transact_write_items(TransactItems=actions)
    assert (value("a"), value("b"), value("c"), value("d")) == ("1", "2", None, "2")
    assert copies == []
