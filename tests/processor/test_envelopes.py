"""Every envelope shape, as moto really produces it (SNS -> SQS, send_message, S3 events)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.batch import BatchRun
from lambda_src.config import Settings
from lambda_src.envelopes import FileRef, unwrap
from lambda_src.errors import Rejected

from .conftest import BUCKET, Pipeline
from .test_validation import json_values

EXAMPLE = {"transaction_id": 12345, "amount": 100, "timestamp": "2024-08-09T12:34:56Z"}


def only_record(pipeline: Pipeline, url: str | None = None) -> dict[str, Any]:
    messages = pipeline.receive(url)
    assert len(messages) == 1
    return pipeline.event(messages)["Records"][0]


def unwrap_record(record: dict[str, Any]) -> Any:
    return unwrap(record["body"], record["messageAttributes"])


def test_example_via_sns_publish_with_transaction_type(pipeline: Pipeline) -> None:
    pipeline.publish(EXAMPLE, TransactionType="Purchase")
    payload = unwrap_record(only_record(pipeline))
    assert (payload.via, payload.items, payload.type_attribute) == ("sns", [EXAMPLE], "Purchase")


def test_example_via_sqs_send_message_with_transaction_type(pipeline: Pipeline) -> None:
    pipeline.send(EXAMPLE, TransactionType="Refund")
    payload = unwrap_record(only_record(pipeline))
    assert (payload.via, payload.items, payload.type_attribute) == ("sqs", [EXAMPLE], "Refund")


def test_raw_sns_delivery_puts_the_attribute_on_the_sqs_message(pipeline: Pipeline) -> None:
    arn = pipeline.sns.list_subscriptions_by_topic(TopicArn=pipeline.ingest_arn)[
        "Subscriptions"][0]["SubscriptionArn"]
    pipeline.sns.set_subscription_attributes(SubscriptionArn=arn,
                                             AttributeName="RawMessageDelivery",
                                             AttributeValue="true")
    pipeline.publish(EXAMPLE, TransactionType="Refund")
    payload = unwrap_record(only_record(pipeline))
    assert (payload.items, payload.type_attribute) == ([EXAMPLE], "Refund")


def test_a_list_of_transactions(pipeline: Pipeline) -> None:
    pipeline.send([EXAMPLE, {**EXAMPLE, "transaction_id": 2}])
    assert len(unwrap_record(only_record(pipeline)).items) == 2


def enable_eventbridge(pipeline: Pipeline) -> None:
    """S3 -> EventBridge -> rule(incoming/) -> the queue (moto cannot target SNS: §5)."""
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    pipeline.events.put_rule(Name="object-created", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": "incoming/"}]}},
    }))
    pipeline.events.put_targets(Rule="object-created",
                                Targets=[{"Id": "queue", "Arn": pipeline.queue_arn}])


def test_eventbridge_object_created_from_a_real_put_object(pipeline: Pipeline) -> None:
    enable_eventbridge(pipeline)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/day 1/a+b.csv", Body=b"x,y\n")
    payload = unwrap_record(only_record(pipeline))
    assert payload.files == [FileRef(BUCKET, "incoming/day 1/a+b.csv", 4)]


def test_eventbridge_event_wrapped_in_sns(pipeline: Pipeline) -> None:
    """What the EventBridge -> SNS target delivers: the event JSON as the SNS Message."""
    enable_eventbridge(pipeline)
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=b"{}\n")
    event_json = only_record(pipeline)["body"]
    pipeline.sqs.purge_queue(QueueUrl=pipeline.queue_url)
    pipeline.publish(event_json)
    payload = unwrap_record(only_record(pipeline))
    assert payload.via == "sns" and payload.files == [FileRef(BUCKET, "incoming/a.jsonl", 3)]


def test_classic_s3_notification_keys_are_url_decoded(pipeline: Pipeline) -> None:
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": pipeline.queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    test_event = only_record(pipeline)  # S3 sends s3:TestEvent on configuration
    assert unwrap_record(test_event).ignored == "s3:TestEvent"
    pipeline.s3.put_object(Bucket=BUCKET, Key="incoming/day 1/a+b.csv", Body=b"x")
    payload = unwrap_record(only_record(pipeline))
    assert payload.files == [FileRef(BUCKET, "incoming/day 1/a+b.csv", 1)]


@pytest.mark.parametrize(("body", "code"), [
    ("not json", "invalid_json"),
    ("42", "not_an_object"),
    ("null", "not_an_object"),
    ("[]", "empty_message"),
    (json.dumps({"Type": "Notification", "TopicArn": "arn:x", "Message": 5}), "bad_envelope"),
    (json.dumps({"Type": "Notification", "TopicArn": "arn:x", "Message": "{oops"}),
     "invalid_json"),
    (json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": "arn:x"}),
     "unsupported_envelope"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}),
     "unsupported_event"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "b"}}}), "bad_envelope"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "b"}, "object": {"key": "rejected/a.csv"}}}),
     "outside_incoming"),
    (json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]}),
     "unsupported_event"),
    (json.dumps({"Records": [{"eventSource": "aws:kinesis"}]}), "unsupported_event"),
])
def test_invalid_envelopes(body: str, code: str) -> None:
    with pytest.raises(Rejected) as caught:
        unwrap(body)
    assert caught.value.code == code


# -- properties ---------------------------------------------------------------------------

envelope_like = st.recursive(
    json_values,
    lambda inner: st.fixed_dictionaries({}, optional={
        "Type": st.sampled_from(["Notification", "Other"]) | inner,
        "TopicArn": st.just("arn:aws:sns:us-east-1:1:t"),
        "Message": inner.map(lambda v: json.dumps(v, default=str)) | inner,
        "MessageAttributes": inner, "source": st.just("aws.s3") | inner,
        "detail-type": st.just("Object Created") | inner, "detail": inner,
        "Records": st.lists(inner, max_size=3), "Event": st.just("s3:TestEvent"),
        "bucket": inner, "object": inner, "key": inner, "name": inner,
    }),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(doc=envelope_like, raw=st.text(max_size=60), use_raw=st.booleans())
def test_planning_a_record_never_raises(doc: Any, raw: str, use_raw: bool) -> None:
    """Whatever the body, a record gets a plan: a payload, or a reason to dead-letter it."""
    body = raw if use_raw else json.dumps(doc, default=str)
    run = BatchRun(Settings("t", "arn", "url"), None, None, None, 0)  # type: ignore[arg-type]
    plan = run._plan({"messageId": "m", "body": body, "messageAttributes": {
        "TransactionType": {"dataType": "String", "stringValue": raw}}})
    assert (plan.payload is None) == (plan.problem is not None)
    for _, problem in plan.item_problems:
        assert problem.code and problem.reason
