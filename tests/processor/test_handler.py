"""The handler end to end against moto: storage, alerts, DLQ, partial batch failures."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambda_src import handler as handler_module
from lambda_src.config import ConfigError, Settings
from lambda_src.validation import validate

from .conftest import Call, Context, Pipeline, Recorder

EXAMPLE = {"transaction_id": 12345, "amount": 100, "timestamp": "2024-08-09T12:34:56Z"}
BIG = {"transaction_id": "big-1", "amount": "1500.00", "timestamp": "2024-08-09T12:35:00Z"}


def emf(output: str) -> list[dict[str, Any]]:
    """The EMF metric blobs Powertools printed."""
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def writes(recorder: Recorder) -> int:
    """DynamoDB write calls so far."""
    return sum(len(recorder.ops(op)) for op in
               ("BatchWriteItem", "TransactWriteItems", "UpdateItem"))


def attribute(message: dict[str, Any], name: str) -> str:
    return str(message["MessageAttributes"][name]["StringValue"])


def test_example_and_alert_via_sns_and_sqs(pipeline: Pipeline,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.publish(EXAMPLE, TransactionType="Purchase")
    pipeline.send(BIG, TransactionType="Refund")
    assert pipeline.drain() == {"batchItemFailures": []}

    items = pipeline.items()
    assert items["12345"]["amount"] == Decimal("100") and items["12345"]["type"] == "Purchase"
    assert items["12345"]["source"] == "sns" and "alerted_at" not in items["12345"]
    assert items["big-1"]["source"] == "sqs" and items["big-1"]["type"] == "Refund"
    assert items["big-1"]["alerted_at"] and "alert_claim_until" not in items["big-1"]
    (alert,) = pipeline.alerts()
    assert alert["body"]["transaction_id"] == "big-1" and alert["body"]["amount"] == "1500.00"
    assert alert["subject"] == "[ecommerce] High-value transaction big-1: 1500.00 USD"
    assert alert["attributes"]["AlertId"]["Value"] == "big-1"
    assert alert["attributes"]["TransactionType"]["Value"] == "Refund"
    assert alert["attributes"]["Amount"] == {"Type": "Number", "Value": "1500.00"}
    (metrics,) = emf(capsys.readouterr().out)
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PipelineTest"
    assert (metrics["TransactionsStored"], metrics["AlertsSent"]) == ([2.0], [1.0])
    assert metrics["BatchItemFailures"] == [0.0]


def test_threshold_is_strictly_greater_than(pipeline: Pipeline) -> None:
    pipeline.send({**EXAMPLE, "amount": "1000.00"})
    pipeline.send({**EXAMPLE, "transaction_id": 2, "amount": "1000.01"})
    pipeline.drain()
    assert [a["body"]["transaction_id"] for a in pipeline.alerts()] == ["2"]


BAD_MESSAGES: list[tuple[str, str]] = [
    ("not json", "invalid_json"),
    ("[]", "empty_message"),
    ("42", "not_an_object"),
    ('{"transaction_id": 1, "amount": 1, "amount": 2, "timestamp": "2024-08-09T12:34:56Z"}',
     "duplicate_field"),
    (json.dumps({"amount": 5, "timestamp": "2024-08-09T12:34:56Z"}), "missing_field"),
    (json.dumps({**EXAMPLE, "amount": "abc"}), "bad_amount"),
    (json.dumps({**EXAMPLE, "amount": 0}), "amount_not_positive"),
    (json.dumps({**EXAMPLE, "amount": -3}), "amount_not_positive"),
    (json.dumps({**EXAMPLE, "amount": 1.234}), "amount_precision"),
    (json.dumps({**EXAMPLE, "timestamp": "soon"}), "bad_timestamp"),
    (json.dumps({**EXAMPLE, "timestamp": 1723206896}), "bad_timestamp"),
    (json.dumps({**EXAMPLE, "currency": "DOLLARS"}), "bad_currency"),
    (json.dumps({**EXAMPLE, "transaction_id": None}), "missing_field"),
    (json.dumps({**EXAMPLE, "transaction_id": [1]}), "bad_transaction_id"),
    (json.dumps({**EXAMPLE, "type": {"a": 1}}), "bad_type"),
    (json.dumps({**EXAMPLE, "customer_id": True}), "bad_customer_id"),
    (json.dumps({**EXAMPLE, "comment": "x"}), "unknown_field"),
    (json.dumps({**EXAMPLE, "customer_id": "c" * 17_000}), "oversized_row"),
    (json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                 "Message": "nope"}), "invalid_json"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}),
     "unsupported_event"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "b"}, "object": {"key": "rejected/x.csv"}}}),
     "outside_incoming"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "ecommerce-landing-123456789012-us-east-1"},
                            "object": {"key": "incoming/gone.csv"}}}), "object_not_found"),
]


def test_bad_messages_are_dead_lettered_with_reasons_and_do_not_block_good_ones(
        pipeline: Pipeline) -> None:
    assert len(BAD_MESSAGES) >= 20
    goods = [{**EXAMPLE, "transaction_id": f"good-{i}"} for i in range(5)]
    pipeline.send(goods[0])
    for body, _ in BAD_MESSAGES:
        pipeline.send(body, TransactionType="Purchase")
    for good in goods[1:]:
        pipeline.send(good)
    messages = pipeline.receive()
    ids_by_body = {m["Body"]: m["MessageId"] for m in messages}

    assert pipeline.invoke(pipeline.event(messages)) == {"batchItemFailures": []}

    assert set(pipeline.items()) == {g["transaction_id"] for g in goods}
    dead = {m["Body"]: m for m in pipeline.dead_letters()}
    assert len(dead) == len(BAD_MESSAGES)
    for body, code in BAD_MESSAGES:
        message = dead[body]  # the original body, untouched
        assert attribute(message, "ErrorCode") == code, body[:80]
        assert len(attribute(message, "ErrorReason")) > 10
        assert attribute(message, "SourceMessageId") == ids_by_body[body]
        assert attribute(message, "TransactionType") == "Purchase"  # survives a redrive
        assert attribute(message, "Pipeline") == "ecommerce"


def test_a_list_message_stores_its_valid_items_and_dead_letters_the_rest(
        pipeline: Pipeline) -> None:
    pipeline.send([EXAMPLE, {**EXAMPLE, "transaction_id": 2, "amount": -1}, "x",
                   {**EXAMPLE, "transaction_id": 3}])
    assert pipeline.drain() == {"batchItemFailures": []}
    assert set(pipeline.items()) == {"12345", "3"}
    (dead,) = pipeline.dead_letters()
    reason = attribute(dead, "ErrorReason")
    assert "item 2: amount must be greater than 0" in reason
    assert "item 3: a transaction must be a JSON object" in reason


def test_redelivery_does_not_duplicate_rows_or_alerts(pipeline: Pipeline,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.send(EXAMPLE)
    pipeline.publish(BIG)
    pipeline.send([{**BIG, "transaction_id": "big-2"}, {**EXAMPLE, "transaction_id": "x"}])
    event = pipeline.event(pipeline.receive())
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    first = pipeline.items()
    assert len(pipeline.alerts()) == 2

    writes_before = writes(pipeline.recorder)
    pipeline.clock.advance(3600)
    for _ in range(2):
        assert pipeline.invoke(event) == {"batchItemFailures": []}
    assert pipeline.items() == first  # same rows, same processed_at / alerted_at
    assert pipeline.alerts() == []
    assert writes(pipeline.recorder) == writes_before  # nothing rewritten
    last = emf(capsys.readouterr().out)[-1]
    assert (last["TransactionsUnchanged"], last["TransactionsStored"]) == ([4.0], [0.0])


def test_same_transaction_twice_in_one_batch(pipeline: Pipeline) -> None:
    pipeline.send(BIG)
    pipeline.publish(BIG)
    pipeline.send([EXAMPLE, EXAMPLE])
    assert pipeline.drain() == {"batchItemFailures": []}
    assert set(pipeline.items()) == {"big-1", "12345"}
    assert len(pipeline.alerts()) == 1


def test_last_wins_changed_content_keeps_the_alert_record(pipeline: Pipeline) -> None:
    pipeline.runtime.persister.last_wins = True  # conflicting_duplicates = "last_wins"
    pipeline.send(BIG)
    pipeline.drain()
    alerted = pipeline.items()["big-1"]["alerted_at"]
    pipeline.send({**BIG, "amount": 500})  # corrected below the threshold: a whole-item put
    pipeline.drain()
    item = pipeline.items()["big-1"]
    assert item["amount"] == Decimal("500") and item["alerted_at"] == alerted
    pipeline.send({**BIG, "amount": 2500})  # above again: updated, but already alerted
    pipeline.drain()
    assert pipeline.items()["big-1"]["amount"] == Decimal("2500")
    assert len(pipeline.alerts()) == 1


def test_crash_between_storing_and_alerting_alerts_exactly_once_on_retry(
        pipeline: Pipeline) -> None:
    def crash(_txns: Any) -> None:
        raise SystemExit("simulated crash: the function dies after storing")

    pipeline.runtime.persister.before_publish = crash
    pipeline.send(BIG)
    pipeline.send(EXAMPLE)
    event = pipeline.event(pipeline.receive())
    with pytest.raises(SystemExit):
        pipeline.invoke(event)
    item = pipeline.items()["big-1"]
    assert item["amount"] == Decimal("1500") and "alerted_at" not in item  # stored, claimed
    assert item["alert_claim_until"] and pipeline.alerts() == []

    pipeline.runtime.persister.before_publish = None
    # SQS redelivers only after the visibility timeout, long after the crashed invocation's
    # deadline; until then the claim is live and a concurrent attempt must not alert.
    early = pipeline.invoke(event)
    assert len(early["batchItemFailures"]) == 1 and pipeline.alerts() == []
    pipeline.clock.advance(6 * 60 + 5)
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    (alert,) = pipeline.alerts()
    assert alert["body"]["transaction_id"] == "big-1"
    assert pipeline.items()["big-1"]["alerted_at"]
    pipeline.clock.advance(3600)
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    assert pipeline.alerts() == []


def test_crash_after_publish_is_the_documented_duplicate_window(pipeline: Pipeline) -> None:
    """Window (1) of the README: SNS accepted the alert, alerted_at was never written."""
    store = pipeline.runtime.persister.store
    original = store.record_alert

    def die(*_args: Any) -> None:
        raise SystemExit("simulated crash after publishing")

    store.record_alert = die  # type: ignore[method-assign]
    pipeline.send(BIG)
    event = pipeline.event(pipeline.receive())
    with pytest.raises(SystemExit):
        pipeline.invoke(event)
    store.record_alert = original  # type: ignore[method-assign]
    pipeline.clock.advance(6 * 60 + 5)
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    alerts = pipeline.alerts()
    assert len(alerts) == 2  # at-least-once here, and the subscriber can tell:
    assert {a["attributes"]["AlertId"]["Value"] for a in alerts} == {"big-1"}


def test_publish_failure_releases_the_claim_and_fails_only_that_record(
        pipeline: Pipeline) -> None:
    sns = pipeline.runtime.persister.alerter.sns
    real = sns.publish_batch

    def throttled(**_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "PublishBatch")

    sns.publish_batch = throttled
    pipeline.send(BIG)
    pipeline.send(EXAMPLE)
    messages = pipeline.receive()
    big_id = next(m["MessageId"] for m in messages if "big-1" in m["Body"])
    event = pipeline.event(messages)
    assert pipeline.invoke(event) == {"batchItemFailures": [{"itemIdentifier": big_id}]}
    assert "alert_claim_until" not in pipeline.items()["big-1"]  # released
    sns.publish_batch = real
    assert pipeline.invoke({"Records": [r for r in event["Records"]
                                        if r["messageId"] == big_id]}) == {"batchItemFailures": []}
    assert len(pipeline.alerts()) == 1


def test_a_live_claim_of_another_invocation_is_retried_not_skipped(pipeline: Pipeline) -> None:
    now_ms = int(pipeline.clock() * 1000)  # another invocation stored it and is alerting now
    assert pipeline.runtime.persister.store.claim(
        validate(BIG), "2024-08-09T12:35:01Z", until_ms=now_ms + 30_000,
        token="someone-else", now_ms=now_ms) is None
    pipeline.send(BIG)
    event = pipeline.event(pipeline.receive())
    assert len(pipeline.invoke(event)["batchItemFailures"]) == 1
    assert pipeline.items()["big-1"]["amount"] == Decimal("1500")  # stored all the same
    assert pipeline.alerts() == []
    pipeline.clock.advance(60)  # the other invocation died without alerting
    assert pipeline.invoke(event) == {"batchItemFailures": []}
    assert len(pipeline.alerts()) == 1


def test_throttled_items_fail_only_their_records_after_bounded_retries(
        pipeline: Pipeline) -> None:
    """DynamoDB cancels a transaction with one reason per action, in order (API Reference,
    TransactWriteItems); moto never throttles, so the cancellation is injected as AWS sends it."""
    client = pipeline.runtime.persister.store.client
    real = client.transact_write_items
    calls: list[int] = []

    def throttle_slow(TransactItems: list[dict[str, Any]]) -> Any:
        calls.append(len(TransactItems))
        ids = [a["Update"]["Key"]["transaction_id"]["S"] for a in TransactItems]
        if "slow" not in ids:
            return real(TransactItems=TransactItems)
        reasons = [{"Code": "ThrottlingError" if i == "slow" else "None"} for i in ids]
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "x"},
                           "CancellationReasons": reasons,
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "TransactWriteItems")

    client.transact_write_items = throttle_slow
    pipeline.send({**EXAMPLE, "transaction_id": "slow"})
    pipeline.send(EXAMPLE)
    messages = pipeline.receive()
    slow_id = next(m["MessageId"] for m in messages if "slow" in m["Body"])
    response = pipeline.invoke(pipeline.event(messages))
    assert response == {"batchItemFailures": [{"itemIdentifier": slow_id}]}
    assert set(pipeline.items()) == {"12345"}
    assert calls == [2] * 6 + [1]  # bounded retries, then the others alone


def test_last_wins_throttled_items_fail_only_their_records(pipeline: Pipeline) -> None:
    pipeline.runtime.persister.last_wins = True
    client = pipeline.runtime.persister.store.client
    real = client.batch_write_item

    def leave_slow_unprocessed(RequestItems: dict[str, Any]) -> Any:
        (table, requests), = RequestItems.items()
        slow = [r for r in requests if r["PutRequest"]["Item"]["transaction_id"]["S"] == "slow"]
        rest = [r for r in requests if r not in slow]
        if rest:
            real(RequestItems={table: rest})
        return {"UnprocessedItems": {table: slow} if slow else {}}

    client.batch_write_item = leave_slow_unprocessed
    pipeline.send({**EXAMPLE, "transaction_id": "slow"})
    pipeline.send(EXAMPLE)
    messages = pipeline.receive()
    slow_id = next(m["MessageId"] for m in messages if "slow" in m["Body"])
    response = pipeline.invoke(pipeline.event(messages))
    assert response == {"batchItemFailures": [{"itemIdentifier": slow_id}]}
    assert set(pipeline.items()) == {"12345"}


def test_throttled_reads_become_batch_item_failures(pipeline: Pipeline) -> None:
    def throttled(**_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchGetItem")

    pipeline.runtime.persister.store.client.batch_get_item = throttled
    pipeline.send(EXAMPLE)
    pipeline.send("not json")  # still dead-lettered: it does not depend on DynamoDB
    response = pipeline.drain()
    assert len(response["batchItemFailures"]) == 1
    assert len(pipeline.dead_letters()) == 1


def test_dlq_failure_becomes_a_batch_item_failure(pipeline: Pipeline) -> None:
    def refuse(**_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalError"},
                           "ResponseMetadata": {"HTTPStatusCode": 500}}, "SendMessageBatch")

    pipeline.runtime.dead_letters.sqs.send_message_batch = refuse
    pipeline.send("not json")
    pipeline.send(EXAMPLE)
    messages = pipeline.receive()
    bad_id = next(m["MessageId"] for m in messages if m["Body"] == "not json")
    assert pipeline.invoke(pipeline.event(messages)) == {
        "batchItemFailures": [{"itemIdentifier": bad_id}]}


def test_large_batch_respects_aws_limits(pipeline: Pipeline) -> None:
    for i in range(60):
        pipeline.send({**EXAMPLE, "transaction_id": f"plain-{i}"})
    for i in range(23):
        pipeline.send({**BIG, "transaction_id": f"big-{i}"})
    for i in range(27):
        pipeline.send(f"garbage {i}")
    assert pipeline.drain() == {"batchItemFailures": []}
    assert len(pipeline.items()) == 83 and len(pipeline.alerts()) == 23
    assert len(pipeline.dead_letters()) == 27
    recorder = pipeline.recorder
    recorder.check_limits()
    sizes = [len(c.params["TransactItems"]) for c in recorder.ops("TransactWriteItems")]
    assert sizes == [25, 25, 10]  # batched across records, within the limit
    assert [len(c.params["PublishBatchRequestEntries"]) for c in recorder.ops("PublishBatch")
            ] == [10, 10, 3]
    assert [len(c.params["Entries"]) for c in recorder.ops("SendMessageBatch")] == [10, 10, 7]


def test_the_limit_checks_can_fail() -> None:
    """The recorder is the only guard (moto accepts 26 items), so it must bite."""
    recorder = Recorder()
    item = {"PutRequest": {"Item": {"transaction_id": {"S": "x"}}}}
    recorder.calls.append(Call("dynamodb", "BatchWriteItem", {
        "RequestItems": {"t": [{"PutRequest": {"Item": {"transaction_id": {"S": str(i)}}}}
                               for i in range(26)]}}))
    with pytest.raises(AssertionError):
        recorder.check_limits()
    recorder.calls = [Call("dynamodb", "BatchWriteItem", {"RequestItems": {"t": [item, item]}})]
    with pytest.raises(AssertionError):
        recorder.check_limits()
    recorder.calls = [Call("sns", "PublishBatch", {"PublishBatchRequestEntries": [{}] * 11})]
    with pytest.raises(AssertionError):
        recorder.check_limits()
    attributes = {"ErrorReason": {"DataType": "String", "StringValue": "r" * 100}}
    recorder.max_message_bytes = lambda url: 262_144  # type: ignore[method-assign]
    recorder.calls = [Call("sqs", "SendMessageBatch", {"QueueUrl": "q", "Entries": [
        {"Id": "m0", "MessageBody": "b" * (262_144 - 50),  # attributes count too
         "MessageAttributes": attributes}]})]
    with pytest.raises(AssertionError):
        recorder.check_limits()
    recorder.max_message_bytes = lambda url: 1_048_576  # type: ignore[method-assign]
    recorder.calls = [Call("sqs", "SendMessageBatch", {"QueueUrl": "q", "Entries": [
        {"Id": f"m{i}", "MessageBody": "b" * 300_000} for i in range(4)]})]  # 1.2 MB in all
    with pytest.raises(AssertionError):
        recorder.check_limits()


ALLOWED = {("dynamodb", "BatchGetItem"), ("dynamodb", "TransactWriteItems"),
           ("dynamodb", "UpdateItem"), ("sns", "PublishBatch"), ("sqs", "SendMessageBatch"),
           ("s3", "GetObject"), ("s3", "PutObject")}


def test_only_the_granted_actions_on_the_granted_resources(pipeline: Pipeline) -> None:
    pipeline.s3.put_object(Bucket="ecommerce-landing-123456789012-us-east-1",
                           Key="incoming/a.csv",
                           Body=b"transaction_id,amount,timestamp\n1,5000,x\n2,1,2024-08-09T00:00Z\n")
    pipeline.send({"source": "aws.s3", "detail-type": "Object Created", "detail": {
        "bucket": {"name": "ecommerce-landing-123456789012-us-east-1"},
        "object": {"key": "incoming/a.csv"}}})
    pipeline.send(BIG)
    pipeline.send("junk")
    assert pipeline.drain() == {"batchItemFailures": []}
    calls = pipeline.recorder.calls
    assert {(c.service, c.operation) for c in calls} == ALLOWED
    for call in calls:
        if call.operation == "GetObject":
            assert call.params["Key"].startswith("incoming/")
        if call.operation == "PutObject":
            assert call.params["Key"] == "rejected/a.csv.errors.jsonl"
        if call.service == "dynamodb":
            tables = call.params.get("RequestItems", {call.params.get("TableName"): 0})
            if call.operation == "TransactWriteItems":
                tables = {a["Update"]["TableName"] for a in call.params["TransactItems"]}
            assert set(tables) == {"ecommerce-transactions"}
        if call.service == "sns":
            assert call.params["TopicArn"] == pipeline.alerts_arn
        if call.service == "sqs":
            assert call.params["QueueUrl"] == pipeline.dlq_url


def test_lambda_handler_builds_its_clients_lazily_from_the_environment(
        pipeline: Pipeline) -> None:
    handler_module.reset_runtime()
    try:
        pipeline.send(EXAMPLE)
        event = pipeline.event(pipeline.receive())
        assert handler_module.lambda_handler(event, Context(pipeline.clock)) == {
            "batchItemFailures": []}
        assert handler_module.get_runtime() is handler_module.get_runtime()
        assert "12345" in pipeline.items()
    finally:
        handler_module.reset_runtime()


def test_not_an_sqs_event(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="SQS event"):
        pipeline.invoke({"detail": {}})


@pytest.mark.parametrize(("env", "message"), [
    ({}, "missing environment variable(s): TABLE_NAME, ALERTS_TOPIC_ARN, DLQ_URL"),
    ({"ALERT_THRESHOLD": "lots"}, "ALERT_THRESHOLD must be a decimal number"),
    ({"ALERT_THRESHOLD": "-1"}, "finite number >= 0"),
    ({"REJECTS_PREFIX": "incoming/rejected/"}, "overlaps 'incoming/'"),
    ({"REJECTS_PREFIX": "rejected"}, "must look like 'rejected/'"),
    ({"UNKNOWN_FIELDS": "keep"}, "UNKNOWN_FIELDS must be one of"),
    ({"CONFLICTING_DUPLICATES": "overwrite"}, "CONFLICTING_DUPLICATES must be one of"),
])
def test_configuration_errors(env: dict[str, str], message: str) -> None:
    base = {"TABLE_NAME": "t", "ALERTS_TOPIC_ARN": "arn", "DLQ_URL": "url"} if env else {}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**base, **env})
    assert message in str(caught.value)


def test_configuration_defaults() -> None:
    settings = Settings.from_env({"TABLE_NAME": "t", "ALERTS_TOPIC_ARN": "a", "DLQ_URL": "u"})
    assert settings.alert_threshold == Decimal("1000") and settings.rejects_prefix == "rejected/"
