"""`up` from nothing builds exactly the pipeline of DESIGN.md §2, with its settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from step_graph import every_resource_count

from pipelinectl import engine
from pipelinectl.config import EVENTBRIDGE_TAG_KEY, TAG_KEY

ACCOUNT = "123456789012"
REGION = "us-east-1"
TAGS = {TAG_KEY: "ecommerce"}


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s.get("Sid") == sid)


def test_up_creates_every_resource_with_its_settings(pipeline: Any) -> None:
    p = pipeline()
    changes = engine.apply(p.ctx)
    assert {c.action for c in changes} == {"create"}
    assert len(changes) == every_resource_count()

    # Queues: SSE, redrive to the DLQ, visibility >= 6 x function timeout, SNS-only policy.
    sqs = p.client("sqs")
    url = sqs.get_queue_url(QueueName="ecommerce-transactions")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["VisibilityTimeout"]) == 6 * 30
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": arn("sqs", "ecommerce-transactions-dlq"), "maxReceiveCount": 5}
    assert attrs["SqsManagedSseEnabled"] == "true"
    queue_policy = json.loads(attrs["Policy"])
    send = statement(queue_policy, "IngestTopicSendsOnly")
    assert send["Principal"] == {"Service": "sns.amazonaws.com"}
    assert send["Action"] == "sqs:SendMessage"
    assert send["Condition"] == {"ArnEquals": {"aws:SourceArn": arn("sns", "ecommerce-ingest")}}
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == TAGS
    dlq = sqs.get_queue_url(QueueName="ecommerce-transactions-dlq")["QueueUrl"]
    dlq_attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert dlq_attrs["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    # SQS's maximum, set explicitly: a queue made before 2025 would otherwise keep 256 KiB.
    assert attrs["MaximumMessageSize"] == dlq_attrs["MaximumMessageSize"] == "1048576"
    # Only our rule may dead-letter into the DLQ (EventBridge's documented DLQ policy).
    dead_letters = statement(json.loads(dlq_attrs["Policy"]), "OurRuleDeadLettersOnly")
    assert dead_letters["Principal"] == {"Service": "events.amazonaws.com"}
    assert dead_letters["Action"] == "sqs:SendMessage"
    assert dead_letters["Resource"] == arn("sqs", "ecommerce-transactions-dlq")
    assert dead_letters["Condition"] == {
        "ArnEquals": {"aws:SourceArn": arn("events", "rule/ecommerce-object-created")}}

    # Topics: encrypted with the pipeline's own key; only our rule / our alarms may publish.
    kms = p.client("kms")
    key = kms.describe_key(KeyId="alias/ecommerce-pipeline")["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
    key_policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"],
                                               PolicyName="default")["Policy"])
    # Who may use the key, and on what condition: tests/provisioning/test_kms.py.
    assert {s["Sid"] for s in key_policy["Statement"]} >= {
        "EventBridgePublishesToTopics", "CloudWatchAlarmsPublishToTopics"}
    sns = p.client("sns")
    ingest = sns.get_topic_attributes(TopicArn=arn("sns", "ecommerce-ingest"))["Attributes"]
    assert ingest["KmsMasterKeyId"] == "alias/ecommerce-pipeline"
    assert ingest["KmsMasterKeyId"] != "alias/aws/sns"
    publish = statement(json.loads(ingest["Policy"]), "OnlyOurRulePublishes")
    assert publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert publish["Condition"] == {
        "ArnEquals": {"aws:SourceArn": arn("events", "rule/ecommerce-object-created")}}
    alerts = sns.get_topic_attributes(TopicArn=arn("sns", "ecommerce-alerts"))["Attributes"]
    assert alerts["KmsMasterKeyId"] == "alias/ecommerce-pipeline"
    alarm_publish = statement(json.loads(alerts["Policy"]), "OnlyOurAlarmsPublish")
    assert alarm_publish["Condition"]["ArnEquals"] == {"aws:SourceArn": [
        arn("cloudwatch", f"alarm:ecommerce-{suffix}") for suffix in (
            "processor-errors", "processor-throttles", "dlq-not-empty",
            "rule-failed-invocations", "queue-oldest-message")]}
    for topic in ("ecommerce-ingest", "ecommerce-alerts"):
        tags = sns.list_tags_for_resource(ResourceArn=arn("sns", topic))["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == TAGS

    # Bucket: EventBridge on, public access blocked, TLS-only policy, encryption, tags.
    s3 = p.client("s3")
    bucket = f"ecommerce-landing-{ACCOUNT}-{REGION}"
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=bucket)
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    tls = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]
    assert tls["Effect"] == "Deny" and tls["Action"] == "s3:*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(tls["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    bucket_tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert bucket_tags.pop(EVENTBRIDGE_TAG_KEY).endswith("Z")  # when notifications went on
    assert bucket_tags == TAGS

    # Table: on-demand, key transaction_id, point-in-time recovery.
    ddb = p.client("dynamodb")
    table = ddb.describe_table(TableName="ecommerce-transactions")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "transaction_id", "KeyType": "HASH"}]
    backups = ddb.describe_continuous_backups(TableName="ecommerce-transactions")
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
        "PointInTimeRecoveryStatus"] == "ENABLED"

    # Rule: our bucket, incoming/ only, to the ingest topic.
    events = p.client("events")
    rule = events.describe_rule(Name="ecommerce-object-created")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]},
                   "object": {"key": [{"prefix": "incoming/"}]}}}
    targets = events.list_targets_by_rule(Rule="ecommerce-object-created")["Targets"]
    assert [t["Arn"] for t in targets] == [arn("sns", "ecommerce-ingest")]
    assert targets[0]["DeadLetterConfig"] == {"Arn": arn("sqs", "ecommerce-transactions-dlq")}
    assert targets[0]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400,
                                         "MaximumRetryAttempts": 185}

    # Function and its wiring.
    lam = p.client("lambda")
    function = lam.get_function(FunctionName="ecommerce-processor")
    conf = function["Configuration"]
    assert conf["Runtime"] == "python3.12"
    assert conf["Handler"] == "lambda_src.handler.lambda_handler"
    assert conf["Role"] == f"arn:aws:iam::{ACCOUNT}:role/ecommerce-processor-role"
    env = conf["Environment"]["Variables"]
    assert env["TABLE_NAME"] == "ecommerce-transactions"
    assert env["ALERTS_TOPIC_ARN"] == arn("sns", "ecommerce-alerts")
    assert env["ALERT_THRESHOLD"] == "1000"
    assert env["DLQ_URL"] == dlq
    # the processor sizes DLQ copies by the DLQ's real maximum, which the queue step set
    assert env["DLQ_MAX_MESSAGE_BYTES"] == dlq_attrs["MaximumMessageSize"]
    assert function["Tags"] == TAGS
    mappings = lam.list_event_source_mappings(FunctionName="ecommerce-processor")
    [mapping] = mappings["EventSourceMappings"]
    assert mapping["EventSourceArn"] == arn("sqs", "ecommerce-transactions")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    subs = sns.list_subscriptions_by_topic(TopicArn=arn("sns", "ecommerce-ingest"))
    assert [(s["Protocol"], s["Endpoint"]) for s in subs["Subscriptions"]] == [
        ("sqs", arn("sqs", "ecommerce-transactions"))]

    logs = p.client("logs")
    [group] = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/ecommerce-processor")[
        "logGroups"]
    assert group["retentionInDays"] == 14

    # Alarms act on the alerts topic.
    alarms = p.client("cloudwatch").describe_alarms(AlarmNamePrefix="ecommerce-")["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == {
        "ecommerce-processor-errors", "ecommerce-processor-throttles",
        "ecommerce-dlq-not-empty", "ecommerce-queue-oldest-message",
        "ecommerce-rule-failed-invocations"}
    for alarm in alarms:
        assert alarm["AlarmActions"] == [arn("sns", "ecommerce-alerts")]
    dlq_alarm = next(a for a in alarms if a["AlarmName"] == "ecommerce-dlq-not-empty")
    assert dlq_alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq_alarm["Dimensions"] == [{"Name": "QueueName",
                                        "Value": "ecommerce-transactions-dlq"}]
    assert dlq_alarm["Threshold"] == 0 and dlq_alarm["ComparisonOperator"] == \
        "GreaterThanThreshold"
    rule_alarm = next(a for a in alarms
                      if a["AlarmName"] == "ecommerce-rule-failed-invocations")
    assert (rule_alarm["Namespace"], rule_alarm["MetricName"], rule_alarm["Statistic"]) == (
        "AWS/Events", "FailedInvocations", "Sum")
    assert rule_alarm["Dimensions"] == [{"Name": "RuleName",
                                         "Value": "ecommerce-object-created"}]
    assert rule_alarm["TreatMissingData"] == "notBreaching"  # sent only when not zero


def test_role_is_least_privilege_with_exact_arns(pipeline: Any) -> None:
    p = pipeline()
    engine.apply(p.ctx, ["topic", "roles"])
    iam = p.client("iam")
    role = iam.get_role(RoleName="ecommerce-processor-role")["Role"]
    # Assumable by Lambda: the service principal, and no condition Lambda cannot satisfy.
    assert role["AssumeRolePolicyDocument"]["Statement"] == [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]
    assert iam.list_attached_role_policies(RoleName="ecommerce-processor-role")[
        "AttachedPolicies"] == []
    policy = iam.get_role_policy(RoleName="ecommerce-processor-role",
                                 PolicyName="pipeline-access")["PolicyDocument"]
    bucket = f"arn:aws:s3:::ecommerce-landing-{ACCOUNT}-{REGION}"
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    assert grants["ReadIncomingFiles"] == ("s3:GetObject", f"{bucket}/incoming/*")
    # Listing under incoming/ only: a missing object is then a 404, not a 403.
    assert grants["TellMissingIncomingFiles"] == ("s3:ListBucket", bucket)
    assert statement(policy, "TellMissingIncomingFiles")["Condition"] == {
        "StringLike": {"s3:prefix": "incoming/*"}}
    assert grants["WriteRejects"] == ("s3:PutObject", f"{bucket}/rejected/*")
    assert grants["PublishAlerts"] == ("sns:Publish", arn("sns", "ecommerce-alerts"))
    assert grants["DeadLetterInvalidMessages"] == ("sqs:SendMessage",
                                                   arn("sqs", "ecommerce-transactions-dlq"))
    assert grants["StoreTransactions"] == (
        # exactly what tests/processor/test_handler.py records the processor calling
        ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"],
        arn("dynamodb", "table/ecommerce-transactions"))
    assert grants["ConsumeQueue"] == (  # what the mapping's poller needs, nothing more
        ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
        arn("sqs", "ecommerce-transactions"))
    assert grants["WriteLogs"][1] == arn("logs",
                                         "log-group:/aws/lambda/ecommerce-processor:*")
    for statement_ in policy["Statement"]:
        assert statement_["Effect"] == "Allow"
        actions = statement_["Action"] if isinstance(statement_["Action"], list) else [
            statement_["Action"]]
        assert not any(a.endswith(":*") or a == "*" for a in actions)
        assert "*" not in statement_["Resource"].split(":")[-1].rstrip("/*:")
    key_arn = p.client("kms").describe_key(KeyId="alias/ecommerce-pipeline")["KeyMetadata"]
    assert statement(policy, "UseTopicKey")["Resource"] == key_arn["Arn"]
    assert role["Tags"] == [{"Key": TAG_KEY, "Value": "ecommerce"}] or \
        iam.list_role_tags(RoleName="ecommerce-processor-role")["Tags"] == [
            {"Key": TAG_KEY, "Value": "ecommerce"}]


def test_steps_one_by_one_in_readme_order_reach_the_state_of_up(
        cli: Any, pipeline: Any, skip_notification_delay: Callable[[], None]) -> None:
    for step in ("topic", "roles", "bucket", "table", "queue", "lambda", "rule", "subscribe",
                 "alarms"):
        result = cli(step)
        assert result.exit_code == 0, result.output
    skip_notification_delay()  # status: healthy once S3's EventBridge window has passed
    p = pipeline()
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}
    rows = engine.status(p.ctx)
    assert len(rows) == every_resource_count() and all(r.health == "ok" for r in rows), rows


def test_a_step_run_before_what_it_needs_says_which_step_to_run(cli: Any) -> None:
    result = cli("lambda")
    assert result.exit_code == 1
    assert "run `pipelinectl roles`" in result.output or \
        "run `pipelinectl queue`" in result.output
