"""End to end against a running LocalAws: resources made with plain boto3, a tiny handler zip."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from localaws_helpers import Local, handler_zip
from polling import wait_for

# Records what it processed as JSON lines in OUT_FILE (no boto3 import unless PROBE_BOTO3, so
# cold starts stay fast); fails on purpose depending on the body: "poison" always (partial batch
# failure), "flaky" on the first receive (partial failure), "crash" on the first receive
# (exception: the whole batch), "slow" on the first receive (timeout).
RECORDER = """
import json, os, time

if os.environ.get("PROBE_BOTO3"):
    import boto3  # its endpoint and credentials come from the environment the runner sets
    sqs = boto3.client("sqs")

def record(entry):
    if os.environ.get("PROBE_BOTO3"):
        entry["queues"] = sqs.list_queues().get("QueueUrls", [])
    with open(os.environ["OUT_FILE"], "a") as out:
        out.write(json.dumps(entry) + "\\n")

def handler(event, context):
    failures = []
    for r in event["Records"]:
        attempt = int(r["attributes"]["ApproximateReceiveCount"])
        body = r["body"]
        if body == "poison" or (body == "flaky" and attempt < 2):
            failures.append({"itemIdentifier": r["messageId"]})
            continue
        if body == "crash" and attempt < 2:
            raise RuntimeError("crash on first try")
        if body == "slow" and attempt < 2:
            print("going to sleep")
            time.sleep(30)
        if body == "emf":
            print(json.dumps({
                "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
                    "Namespace": "Pipeline", "Dimensions": [["service"]],
                    "Metrics": [{"Name": "TransactionsStored", "Unit": "Count"}]}]},
                "service": "processor", "TransactionsStored": 3}))
        print(f"processed {body} attempt {attempt}")
        record({
            "record": r,
            "batch": len(event["Records"]),
            "context": {
                "function_name": context.function_name,
                "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "request_id": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
            },
            "env": {k: os.environ.get(k) for k in (
                "GREETING", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_ACCESS_KEY_ID", "LAMBDA_TASK_ROOT")},
            "cwd": os.getcwd(),
        })
    return {"batchItemFailures": failures}
"""


def pipeline(
    local: Local,
    out: Path,
    *,
    probe_boto3: bool = False,
    visibility: int = 1,
    max_receive: int = 2,
    timeout: int = 3,
    batch_size: int = 10,
    window: int = 0,
) -> dict[str, Any]:
    """queue (+DLQ) → mapping → recorder function → ``out`` file."""
    name = local.name("fn")
    env = {"OUT_FILE": str(out), "GREETING": "hello"}
    if probe_boto3:
        env["PROBE_BOTO3"] = "1"
    dlq_url, dlq_arn = local.queue(f"{name}-dlq")
    url, arn = local.queue(
        f"{name}-in",
        VisibilityTimeout=str(visibility),
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}),
    )
    fn_arn = local.function(
        name,
        RECORDER,
        Timeout=timeout,
        MemorySize=256,
        Environment={"Variables": env},
    )
    mapping = local.mapping(
        arn,
        name,
        BatchSize=batch_size,
        MaximumBatchingWindowInSeconds=window,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    return {
        "name": name,
        "fn_arn": fn_arn,
        "url": url,
        "arn": arn,
        "dlq": dlq_url,
        "out": out,
        "mapping": mapping,
    }


def recorded(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def collect(out: Path, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """Wait until the recorder wrote ``count`` entries, return them."""
    return wait_for(lambda: len(got := recorded(out)) >= count and got, timeout)


def test_a_message_runs_the_deployed_code_with_lambdas_event_context_and_env(
    local: Local, tmp_path: Path
) -> None:
    p = pipeline(local, tmp_path / "out.jsonl", probe_boto3=True)
    sqs = local.client("sqs")
    sent = sqs.send_message(
        QueueUrl=p["url"],
        MessageBody="hello",
        MessageAttributes={"TransactionType": {"DataType": "String", "StringValue": "Purchase"}},
    )
    (got,) = collect(p["out"], 1)
    record = got["record"]
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == p["arn"]
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"]
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"]["TransactionType"] == {
        "stringValue": "Purchase",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    ctx = got["context"]
    assert ctx["function_name"] == p["name"]
    assert ctx["memory"] == "256"
    assert ctx["arn"] == p["fn_arn"]
    assert 0 < ctx["remaining"] <= 3000
    env = got["env"]
    assert env["GREETING"] == "hello"
    assert env["AWS_ENDPOINT_URL"] == local.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == p["name"]
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert got["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert p["url"] in got["queues"]  # boto3 in the handler reached the local AWS
    wait_for(lambda: local.depth(p["url"]) == 0)


def test_partial_batch_failures_retry_only_the_failed_and_poison_ends_in_the_dlq(
    local: Local, tmp_path: Path
) -> None:
    p = pipeline(local, tmp_path / "out.jsonl", max_receive=2)
    local.client("sqs").send_message_batch(
        QueueUrl=p["url"],
        Entries=[
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(["a", "b", "flaky", "poison"])
        ],
    )
    got = collect(p["out"], 3)
    attempts = Counter(
        (g["record"]["body"], g["record"]["attributes"]["ApproximateReceiveCount"]) for g in got
    )
    assert attempts == {("a", "1"): 1, ("b", "1"): 1, ("flaky", "2"): 1}
    dead = wait_for(lambda: local.receive_all(p["dlq"], wait=0))
    assert [m["Body"] for m in dead] == ["poison"]
    assert dead[0]["Attributes"]["ApproximateReceiveCount"] == "3"  # 2 by the poller, 1 by us
    wait_for(lambda: local.depth(p["url"]) == 0)
    assert len(recorded(p["out"])) == 3  # nothing processed twice


def test_a_function_error_returns_the_whole_batch(local: Local, tmp_path: Path) -> None:
    p = pipeline(local, tmp_path / "out.jsonl")
    local.client("sqs").send_message_batch(
        QueueUrl=p["url"],
        Entries=[{"Id": "1", "MessageBody": "crash"}, {"Id": "2", "MessageBody": "fine"}],
    )
    got = collect(p["out"], 2)
    assert sorted(
        (g["record"]["body"], g["record"]["attributes"]["ApproximateReceiveCount"]) for g in got
    ) == [
        ("crash", "2"),
        ("fine", "2"),
    ]
    messages = wait_for(
        lambda: (m := local.log_messages(p["name"])) and any("REPORT" in x for x in m[-3:]) and m
    )
    assert any(m.startswith("[ERROR] RuntimeError: crash on first try") for m in messages)
    assert any("Traceback" in m for m in messages)


def test_a_timed_out_batch_returns_to_the_queue_and_the_worker_is_replaced(
    local: Local, tmp_path: Path
) -> None:
    p = pipeline(local, tmp_path / "out.jsonl", timeout=1, visibility=2)
    local.client("sqs").send_message(QueueUrl=p["url"], MessageBody="slow")
    (got,) = collect(p["out"], 1)
    assert got["record"]["attributes"]["ApproximateReceiveCount"] == "2"
    messages = local.log_messages(p["name"])
    assert "going to sleep" in messages
    assert any(m.endswith("Task timed out after 1.00 seconds") for m in messages)
    assert any(m.startswith("REPORT") and "Status: timeout" in m for m in messages)
    streams = local.client("logs").describe_log_streams(logGroupName=f"/aws/lambda/{p['name']}")
    assert len(streams["logStreams"]) == 2  # a new execution environment after the timeout


def test_logs_have_start_end_report_and_the_handlers_lines(local: Local, tmp_path: Path) -> None:
    p = pipeline(local, tmp_path / "out.jsonl")
    local.client("sqs").send_message(QueueUrl=p["url"], MessageBody="logme")
    collect(p["out"], 1)
    messages = wait_for(lambda: local.log_messages(p["name"]))
    assert messages[0].startswith("START RequestId: ")
    assert "processed logme attempt 1" in messages
    assert any(m.startswith("END RequestId: ") for m in messages)
    report = next(m for m in messages if m.startswith("REPORT RequestId: "))
    assert "Duration: " in report and "Memory Size: 256 MB" in report
    assert "Init Duration: " in report


def _metric_sum(local: Local, namespace: str, name: str, dims: list[dict[str, str]]) -> float:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    stats = local.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dims,
        StartTime=now - dt.timedelta(minutes=5),
        EndTime=now + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(d["Sum"] for d in stats["Datapoints"]))


def test_emf_lines_and_invocations_become_metrics(local: Local, tmp_path: Path) -> None:
    p = pipeline(local, tmp_path / "out.jsonl")
    local.client("sqs").send_message(QueueUrl=p["url"], MessageBody="emf")
    collect(p["out"], 1)
    emf_dims = [{"Name": "service", "Value": "processor"}]
    wait_for(lambda: _metric_sum(local, "Pipeline", "TransactionsStored", emf_dims) == 3.0)
    fn_dims = [{"Name": "FunctionName", "Value": p["name"]}]
    wait_for(lambda: _metric_sum(local, "AWS/Lambda", "Invocations", fn_dims) == 1.0)
    assert _metric_sum(local, "AWS/Lambda", "Errors", fn_dims) == 0.0
    assert _metric_sum(local, "AWS/Lambda", "Throttles", fn_dims) == 0.0
    duration = local.client("cloudwatch").list_metrics(
        Namespace="AWS/Lambda", MetricName="Duration", Dimensions=fn_dims
    )
    assert duration["Metrics"]
    queue_dims = [{"Name": "QueueName", "Value": f"{p['name']}-in"}]
    wanted = {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}

    def queue_metrics() -> set[str]:
        listed = local.client("cloudwatch").list_metrics(Namespace="AWS/SQS", Dimensions=queue_dims)
        return {m["MetricName"] for m in listed["Metrics"]}

    wait_for(lambda: wanted <= queue_metrics())


def test_dlq_alarm_goes_to_alarm_and_its_sns_action_is_delivered(local: Local) -> None:
    name = local.name("alarm")
    dlq_url, _ = local.queue(f"{name}-dlq")
    inbox_url, inbox_arn = local.queue(f"{name}-inbox")
    sns = local.client("sns")
    topic = sns.create_topic(Name=f"{name}-alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    cloudwatch = local.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{name}-dlq-not-empty",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": f"{name}-dlq"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
        OKActions=[topic],
    )
    # A new alarm starts in INSUFFICIENT_DATA and, with an empty DLQ, settles in OK.
    wait_for(lambda: _alarm(local, f"{name}-dlq-not-empty")["StateValue"] == "OK")
    local.client("sqs").send_message(QueueUrl=dlq_url, MessageBody="dead")
    alarm = wait_for(
        lambda: (a := _alarm(local, f"{name}-dlq-not-empty"))["StateValue"] == "ALARM" and a
    )
    assert "Threshold Crossed" in alarm["StateReason"]
    notes = [json.loads(m["Body"]) for m in collect_raw(local, inbox_url, 2)]
    assert [n["Subject"].split(":")[0] for n in notes] == ["OK", "ALARM"]
    message = json.loads(notes[1]["Message"])
    assert message["AlarmName"] == f"{name}-dlq-not-empty"
    assert message["NewStateValue"] == "ALARM" and message["OldStateValue"] == "OK"
    assert message["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert message["Trigger"]["Dimensions"] == [{"value": f"{name}-dlq", "name": "QueueName"}]
    assert message["AlarmActions"] == [topic]


def collect_raw(local: Local, url: str, count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def probe() -> bool:
        seen.extend(local.receive_all(url, wait=0))
        return len(seen) >= count

    wait_for(probe, 10)
    return sorted(seen, key=lambda m: int(m["Attributes"]["SentTimestamp"]))


def _alarm(local: Local, name: str) -> dict[str, Any]:
    alarms = local.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return dict(alarms[0])


def test_s3_object_created_flows_through_eventbridge_and_sns_to_sqs(local: Local) -> None:
    name = local.name("flow")
    bucket = f"{name}-landing"
    s3, sns, events = local.client("s3"), local.client("sns"), local.client("events")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )
    topic = sns.create_topic(Name=f"{name}-ingest")["TopicArn"]
    url, arn = local.queue(f"{name}-q")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    events.put_rule(
        Name=f"{name}-object-created",
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [bucket]},
                    "object": {"key": [{"prefix": "incoming/"}]},
                },
            }
        ),
    )
    events.put_targets(Rule=f"{name}-object-created", Targets=[{"Id": "ingest", "Arn": topic}])
    s3.put_object(Bucket=bucket, Key="rejected/x.csv", Body=b"ignored")
    s3.put_object(Bucket=bucket, Key="incoming/tx.csv", Body=b"id,amount\n1,10\n")
    (msg,) = wait_for(lambda: local.receive_all(url, wait=0))
    note = json.loads(msg["Body"])
    assert note["Type"] == "Notification" and note["TopicArn"] == topic
    event = json.loads(note["Message"])
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == bucket
    assert event["detail"]["object"]["key"] == "incoming/tx.csv"
    assert local.receive_all(url, wait=0) == []


def test_batching_window_gathers_messages_into_one_batch(local: Local, tmp_path: Path) -> None:
    p = pipeline(local, tmp_path / "out.jsonl", batch_size=5, window=2, visibility=10)
    sqs = local.client("sqs")
    for body in ("w1", "w2", "w3"):
        sqs.send_message(QueueUrl=p["url"], MessageBody=body)
    got = collect(p["out"], 3)
    assert {g["batch"] for g in got} == {3}


def test_a_disabled_mapping_stops_polling_and_reenabling_resumes(
    local: Local, tmp_path: Path
) -> None:
    p = pipeline(local, tmp_path / "out.jsonl")
    lam = local.client("lambda")
    lam.update_event_source_mapping(UUID=p["mapping"], Enabled=False)
    time.sleep(0.6)  # the poller rediscovers mappings every 0.25 s
    local.client("sqs").send_message(QueueUrl=p["url"], MessageBody="later")
    time.sleep(1.5)
    assert local.depth(p["url"]) == 1
    lam.update_event_source_mapping(UUID=p["mapping"], Enabled=True)
    (got,) = collect(p["out"], 1)
    assert got["record"]["body"] == "later"


def test_new_code_and_configuration_take_effect_on_the_next_invocation(
    local: Local, tmp_path: Path
) -> None:
    p = pipeline(local, tmp_path / "out.jsonl")
    sqs = local.client("sqs")
    sqs.send_message(QueueUrl=p["url"], MessageBody="v1")
    collect(p["out"], 1)
    lam = local.client("lambda")
    new_code = RECORDER.replace('print(f"processed', 'print(f"v2 processed')
    lam.update_function_code(FunctionName=p["name"], ZipFile=handler_zip(new_code))
    lam.update_function_configuration(
        FunctionName=p["name"],
        Environment={"Variables": {"OUT_FILE": str(p["out"]), "GREETING": "bonjour"}},
    )
    sqs.send_message(QueueUrl=p["url"], MessageBody="v2")
    got = collect(p["out"], 2)[-1]
    assert got["env"]["GREETING"] == "bonjour"
    wait_for(lambda: "v2 processed v2 attempt 1" in local.log_messages(p["name"]))


@pytest.mark.parametrize("bad_handler", ["nomodule.handler", "handler.missing"])
def test_a_broken_handler_is_an_invocation_error_not_a_crash(
    local: Local, bad_handler: str
) -> None:
    name = local.name("broken")
    url, arn = local.queue(f"{name}-in", VisibilityTimeout="30")
    local.function(name, "def handler(e, c):\n    return None\n", Handler=bad_handler)
    local.mapping(arn, name, BatchSize=1)
    local.client("sqs").send_message(QueueUrl=url, MessageBody="x")
    messages = wait_for(
        lambda: (m := local.log_messages(name)) and any("REPORT" in x for x in m) and m
    )
    assert any("Runtime.ImportModuleError" in m for m in messages)
    assert local.depth(url) == 1  # not deleted
