"""End to end, as a user would: `pipelinectl local` in one process, the real CLI in others.

One local AWS and one `up` serve the whole module (module-scoped fixture); the tests run in
the order written and each needs only a pipeline that is up, so under pytest-xdist a worker
that gets some of them starts its own server and still sees a consistent story. `status`
health comes first (before anything lands in the DLQ) and teardown last. A queue subscribed
to the alerts topic captures what the pipeline publishes there (transaction alerts and
alarm notifications), the way an on-call e-mail subscription would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from step_graph import every_resource_count

from pipelinectl.resources.queues import only_sender

# One module, one worker (`pytest -n N --dist loadfile`): the whole story shares one local AWS.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-local")]

PIPELINE_TOML = """\
function_timeout = 3
visibility_timeout = 18
max_receive_count = 2
"""
STARTUP_SECONDS = 60


def _clean_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PIPELINECTL_"))}
    env.update(PIPELINECTL_CACHE_DIR=str(cache), COLUMNS="250", PYTHONUNBUFFERED="1")
    return env


@dataclass
class LocalPipeline:
    """A running `pipelinectl local` and a working directory with the test's pipeline.toml."""

    port: int
    cwd: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipelinectl", "--local", *args],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, timeout: float = 120) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--output", "json", *args))

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name="us-east-1",
                            endpoint_url=f"http://127.0.0.1:{self.port}",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def names(self) -> dict[str, str]:
        account = "123456789012"
        return {"queue": "ecommerce-transactions", "dlq": "ecommerce-transactions-dlq",
                "table": "ecommerce-transactions",
                "bucket": f"ecommerce-landing-{account}-us-east-1",
                "alerts": f"arn:aws:sns:us-east-1:{account}:ecommerce-alerts"}

    def item(self, transaction_id: str) -> dict[str, Any] | None:
        found = self.client("dynamodb").get_item(
            TableName=self.names()["table"], ConsistentRead=True,
            Key={"transaction_id": {"S": transaction_id}})
        item: dict[str, Any] | None = found.get("Item")
        return item


def _start_local(cwd: Path, env: dict[str, str], consistency: str = "off",
                 live: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    """`pipelinectl local --port 0`: it picks a free port and prints its URL (no race).
    AWS's eventual consistency is off unless asked for (test_e2e_consistency.py does), so
    this story drops files right after `up` without S3's EventBridge window. ``live``: keep
    the live view in local.log (what ran, how long, retries) to explain a slow run."""
    log = (cwd / "local.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "pipelinectl", "local", "--port", "0",
                               *([] if live else ["--quiet"]),
                               "--consistency", consistency],
                              cwd=cwd, env=env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def port() -> int | None:
        if server.poll() is not None:
            raise AssertionError(f"pipelinectl local exited: {(cwd / 'local.log').read_text()}")
        match = re.search(r"http://127\.0\.0\.1:(\d+)", (cwd / "local.log").read_text())
        return int(match.group(1)) if match else None

    return server, wait_for(port, STARTUP_SECONDS, "pipelinectl local listening")


@contextlib.contextmanager
def running_local(cwd: Path, build_cache: Path, pipeline_toml: str, *, up: bool = True,
                  consistency: str = "off", live: bool = False) -> Iterator[LocalPipeline]:
    """`pipelinectl local` serving a pipeline configured by ``pipeline_toml`` in ``cwd``
    (after `up` unless told not to); stopped with SIGTERM, the clean shutdown path, and
    killed if it has not stopped 20 s later. Every end-to-end module starts its own."""
    (cwd / "pipeline.toml").write_text(pipeline_toml)
    env = _clean_env(build_cache)
    server, port = _start_local(cwd, env, consistency=consistency, live=live)
    env["PIPELINECTL_LOCAL_PORT"] = str(port)
    try:
        pipeline = LocalPipeline(port, cwd, env)
        if up:
            pipeline.ok("up", timeout=300)
        yield pipeline
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory,
          build_cache: Path) -> Iterator[LocalPipeline]:
    with running_local(tmp_path_factory.mktemp("e2e"), build_cache, PIPELINE_TOML) as pipeline:
        yield pipeline


@pytest.fixture(scope="module")
def alerts(local: LocalPipeline) -> Callable[[], list[dict[str, Any]]]:
    """Subscribe a capture queue to the alerts topic; returns a reader of what arrived."""
    sqs, sns = local.client("sqs"), local.client("sns")
    arn = "arn:aws:sqs:us-east-1:123456789012:e2e-alert-capture"
    # As on AWS, SNS delivers only to a queue whose policy lets the topic send (the local AWS
    # enforces it).
    policy = only_sender("AlertsTopicSends", "sns.amazonaws.com", arn, local.names()["alerts"])
    url = sqs.create_queue(QueueName="e2e-alert-capture",
                           Attributes={"Policy": json.dumps(policy)})["QueueUrl"]
    sns.subscribe(TopicArn=local.names()["alerts"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            try:
                seen.append(json.loads(message["Body"]))
            except ValueError:
                seen.append({"raw": message["Body"]})
        return seen

    return read


def test_status_is_healthy_after_up(local: LocalPipeline) -> None:
    status = local.json("status")
    unhealthy = [(r["name"], r["state"]) for r in status["resources"] if r["health"] != "ok"]
    assert status["healthy"] and not unhealthy, unhealthy
    assert len(status["resources"]) == every_resource_count()


def test_send_test_1500_is_stored_and_alerted(
        local: LocalPipeline, alerts: Callable[[], list[dict[str, Any]]]) -> None:
    result = local.json("send-test", "--amount", "1500", "--id", "e2e-1500")
    assert (result["stored"], result["alerted"], result["ok"]) == (True, True, True)
    assert result["outcome"] == "stored and alerted"
    assert result["latency_seconds"] > 0
    item = local.item("e2e-1500")
    assert item and item["source"]["S"] == "sns" and "alerted_at" in item
    assert item["type"]["S"] == "Purchase"  # from the TransactionType attribute
    wait_for(lambda: [a for a in alerts() if "e2e-1500" in json.dumps(a)], 15,
             "the alert on the alerts topic")


def test_send_test_100_is_stored_without_alert(local: LocalPipeline) -> None:
    text = local.ok("send-test", "--amount", "100", "--id", "e2e-100")
    assert "✓ stored after" in text and "no alert expected" in text
    assert "End-to-end latency" in text
    item = local.item("e2e-100")
    assert item and "alerted_at" not in item


@pytest.mark.parametrize("via", ["sqs", "s3"])
def test_send_test_other_paths(local: LocalPipeline, via: str) -> None:
    result = local.json("send-test", "--amount", "1500", "--via", via)
    assert result["ok"], result
    assert result["source"] == ("sqs" if via == "sqs" else result["reference"] + "#1")


def test_a_file_with_good_and_bad_rows(local: LocalPipeline) -> None:
    names = local.names()
    s3 = local.client("s3")
    rows = ["transaction_id,amount,timestamp",
            "e2e-f1,10.50,2024-08-09T12:34:56Z", "e2e-f2,2000,2024-08-09T12:34:56Z",
            "e2e-f3,oops,2024-08-09T12:34:56Z", "e2e-f4,7,not-a-time",
            "e2e-f5,3,2024-08-09T12:34:56Z"]
    s3.put_object(Bucket=names["bucket"], Key="incoming/e2e/file.csv",
                  Body="\n".join(rows).encode())
    for good in ("e2e-f1", "e2e-f2", "e2e-f5"):
        item = wait_for(lambda t=good: local.item(t), 30, f"{good} stored")
        assert item["source"]["S"].startswith(f"s3://{names['bucket']}/incoming/e2e/file.csv#")
    assert local.item("e2e-f3") is None and local.item("e2e-f4") is None
    wait_for(lambda: "alerted_at" in (local.item("e2e-f2") or {}), 15, "e2e-f2 alerted")
    key = "rejected/e2e/file.csv.errors.jsonl"
    body = wait_for(lambda: _object(s3, names["bucket"], key), 15, "the rejects object")
    rejects = [json.loads(line) for line in body.splitlines()]
    assert sorted(r["row"] for r in rejects) == [3, 4]
    assert all(r["reason"] for r in rejects)
    # The invocation is over once its message has left the queue (the mapping deletes it
    # after the batch returned): only then does nothing under incoming/ prove nothing was
    # written back there.
    sqs = local.client("sqs")
    url = sqs.get_queue_url(QueueName=names["queue"])["QueueUrl"]
    wait_for(lambda: _queue_empty(sqs, url), 15, "the file's message consumed")
    listed = s3.list_objects_v2(Bucket=names["bucket"], Prefix="incoming/e2e/")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["incoming/e2e/file.csv"]
    # The message is deleted after the run's record was written: `status` reports the file.
    run = local.json("status")["latest_file_run"]
    assert (run["uri"], run["state"], run["mode"]) == (
        f"s3://{names['bucket']}/incoming/e2e/file.csv", "complete", "single")
    assert (run["totals"]["rows"], run["totals"]["stored"] + run["totals"]["unchanged"],
            run["totals"]["rejected"]) == (5, 3, 2)
    assert run["rejects_objects"] == [key]


def _queue_empty(sqs: Any, url: str) -> bool:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return all(int(value) == 0 for value in attrs.values())


def test_the_smoke_test_passes(local: LocalPipeline) -> None:
    result = local.json("test")
    assert result["ok"], [c for c in result["checks"] if not c["ok"]]
    assert len(result["checks"]) == 8
    assert result["file_run"]["state"] == "complete", result["file_run"]


def test_a_poison_message_lands_in_the_dlq_with_its_reason_and_the_alarm_fires(
        local: LocalPipeline, alerts: Callable[[], list[dict[str, Any]]]) -> None:
    sqs = local.client("sqs")
    url = sqs.get_queue_url(QueueName=local.names()["queue"])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"transaction_id": "e2e-poison", '
                     '"amount": -3, "timestamp": "2024-08-09T12:34:56Z"}')
    listed = wait_for(lambda: local.json("dlq", "list")["messages"], 20, "a DLQ message")
    (letter,) = [m for m in listed if "e2e-poison" in m["body"]]
    assert "greater than 0" in letter["reason"]
    assert local.json("dlq", "list")["count"] == len(listed)  # listing consumed nothing

    def alarm_state() -> str | None:
        rows = local.json("status")["resources"]
        state = next(r["state"] for r in rows if r["name"] == "ecommerce-dlq-not-empty")
        return state if state == "ALARM" else None

    wait_for(alarm_state, 30, "the DLQ alarm in ALARM")
    wait_for(lambda: [a for a in alerts() if a.get("NewStateValue") == "ALARM"
                      and a.get("AlarmName") == "ecommerce-dlq-not-empty"], 15,
             "the ALARM notification on the alerts topic")


def test_dlq_redrive_moves_messages_back(local: LocalPipeline) -> None:
    sqs = local.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=local.names()["dlq"])["QueueUrl"]
    for txn_id, amount in (("e2e-redriven", 12), ("e2e-redrive-poison", -1)):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(
            {"transaction_id": txn_id, "amount": amount, "timestamp": "2024-08-09T12:34:56Z"}))
    before = local.json("dlq", "list")["count"]
    result = local.json("dlq", "redrive")
    assert result["method"] == "receive-send-delete"  # moto has no StartMessageMoveTask
    assert (result["moved"], result["failed"]) == (before, 0)
    # the valid one is processed this time; the poison one comes straight back
    wait_for(lambda: local.item("e2e-redriven"), 20, "the redriven transaction stored")
    back = wait_for(lambda: [m for m in local.json("dlq", "list")["messages"]
                             if "e2e-redrive-poison" in m["body"]], 20, "the poison one back")
    assert "greater than 0" in back[0]["reason"]
    assert all("e2e-redriven" not in m["body"] for m in local.json("dlq", "list")["messages"])


def test_an_event_eventbridge_cannot_deliver_is_dead_lettered_shown_and_redriven(
        local: LocalPipeline) -> None:
    """Issue 7 item 2: a failed delivery (here the ingest topic is gone, an error EventBridge
    does not retry) lands in the DLQ with EventBridge's attributes instead of vanishing."""
    names = local.names()
    rows = [r for r in local.json("status")["resources"] if r["kind"] == "EventBridge rule"]
    assert rows[0]["details"]["dead_letter_queue"].endswith(":" + names["dlq"])
    local.client("sns").delete_topic(TopicArn=names["alerts"].replace("-alerts", "-ingest"))
    local.client("s3").put_object(
        Bucket=names["bucket"], Key="incoming/e2e/undelivered.csv",
        Body=b"transaction_id,amount,timestamp\ne2e-undelivered,5,2024-08-09T12:34:56Z\n")

    def from_eventbridge() -> list[dict[str, Any]]:
        return [m for m in local.json("dlq", "list")["messages"] if m["origin"] == "eventbridge"]

    (letter,) = wait_for(from_eventbridge, 20, "the undelivered event in the DLQ")
    assert letter["eventbridge"]["rule"].endswith(":rule/ecommerce-object-created")
    assert letter["eventbridge"]["target"].endswith(":ecommerce-ingest")
    assert letter["code"] == "NO_RESOURCE" and "could not deliver to ecommerce-ingest" in \
        letter["reason"]
    table = local.ok("dlq", "list")
    assert "eventbridge" in table and "NO_RESOURCE" in table and "Object Created:" in table

    local.ok("up")  # the topic and its subscription are back
    local.json("dlq", "redrive")
    wait_for(lambda: local.item("e2e-undelivered"), 30, "the redriven file's row stored")
    assert from_eventbridge() == []


def test_dlq_purge_asks_then_empties(local: LocalPipeline) -> None:
    refused = local.cli("dlq", "purge")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    local.ok("dlq", "purge", "--yes")
    assert local.json("dlq", "list")["count"] == 0


def test_logs_show_the_handler_lines(local: LocalPipeline) -> None:
    # 1h, not 10m: the module's story may have run more than ten minutes ago on a loaded
    # machine, and the window is not what this test is about (test_logs covers --since).
    text = local.ok("logs", "--since", "1h")
    assert "INFO batch processed" in text and "START RequestId" in text
    events = local.json("logs", "--filter", "batch processed")["events"]
    assert events and all("batch processed" in e["message"] for e in events)
    follower = subprocess.Popen([sys.executable, "-m", "pipelinectl", "--local", "--output",
                                 "json", "logs", "--follow", "--since", "1s"], cwd=local.cwd,
                                env=local.env, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in follower.stdout or ():
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        local.ok("send-test", "--amount", "5", "--id", "e2e-followed")
        # the follower printed the batch's line (no fixed sleep: it may take a poll or two)
        wait_for(lambda: any("batch processed" in line for line in lines), 20,
                 "the followed batch line")
    finally:
        follower.terminate()
        follower.wait(timeout=20)
        reader.join(timeout=20)
    followed = [json.loads(line) for line in lines if line.startswith("{")]
    assert any("batch processed" in e["message"] for e in followed)
    assert len({e["event_id"] for e in followed}) == len(followed)  # each event once


def _replayed(local: LocalPipeline, *args: str) -> dict[str, Any]:
    """Replay incoming/replay/ and wait for the processor's log line naming that replay
    (the proof the replayed file was processed again, before asserting what did not change)."""
    done: dict[str, Any] = local.json("replay", "--prefix", "incoming/replay/", *args)
    assert done["counts"]["published"] == 1, done
    wait_for(lambda: local.json("logs", "--since", "10m", "--filter",
                                done["replay_name"])["events"], 30, "the replayed file")
    return done


def test_replay_stores_a_file_dropped_before_the_rule_once_and_a_row_fixed_later(
        local: LocalPipeline, alerts: Callable[[], list[dict[str, Any]]]) -> None:
    names, events = local.names(), local.client("events")
    events.remove_targets(Rule="ecommerce-object-created", Ids=["ingest-topic"])
    events.delete_rule(Name="ecommerce-object-created")
    rows = [{"transaction_id": "e2e-r1", "amount": 10, "timestamp": "2024-08-09T12:34:56Z"},
            {"transaction_id": "e2e-r2", "amount": 2000, "timestamp": "2024-08-09T12:34:56Z"},
            {"transaction_id": "e2e-r3", "amount": 5, "timestamp": "2024-08-09T12:34:56Z",
             "note": "a field the processor rejects by default"}]
    local.client("s3").put_object(Bucket=names["bucket"], Key="incoming/replay/early.jsonl",
                                  Body="\n".join(json.dumps(r) for r in rows).encode())
    local.ok("rule")  # the rule exists only now: S3 sends nothing for the earlier file
    dry = local.json("replay", "--prefix", "incoming/replay/", "--dry-run")
    assert dry["counts"] == {"selected": 1, "bytes": dry["objects"][0]["size"],
                             "published": 0}
    assert local.item("e2e-r1") is None  # the dry run sent nothing

    _replayed(local)
    first = {t: local.item(t) for t in ("e2e-r1", "e2e-r2")}
    assert all(first.values()) and local.item("e2e-r3") is None
    wait_for(lambda: "alerted_at" in (local.item("e2e-r2") or {}), 15, "e2e-r2 alerted")
    first["e2e-r2"] = local.item("e2e-r2")
    wait_for(lambda: [a for a in alerts() if "e2e-r2" in json.dumps(a)], 15, "the alert")

    _replayed(local)  # twice: no duplicate, no rewrite, no second alert
    assert {t: local.item(t) for t in first} == first
    assert len([a for a in alerts() if "e2e-r2" in json.dumps(a)]) == 1

    lam = local.client("lambda")  # a processor change: unknown fields are now ignored
    env = lam.get_function_configuration(FunctionName="ecommerce-processor")["Environment"]
    lam.update_function_configuration(FunctionName="ecommerce-processor", Environment={
        "Variables": {**env["Variables"], "UNKNOWN_FIELDS": "ignore"}})
    try:
        _replayed(local)
        assert local.item("e2e-r3") is not None  # rejected before, stored now
        assert {t: local.item(t) for t in first} == first
    finally:
        local.ok("lambda")  # back to the configured processor


def test_teardown_leaves_nothing(local: LocalPipeline) -> None:
    local.ok("teardown", "--yes")
    status = local.json("status")
    assert {r["health"] for r in status["resources"]} == {"missing"}
    names = local.names()
    queues = local.client("sqs").list_queues().get("QueueUrls", [])
    assert not [q for q in queues if q.rsplit("/", 1)[-1] in (names["queue"], names["dlq"])]
    assert names["table"] not in local.client("dynamodb").list_tables()["TableNames"]
    assert not local.client("lambda").list_functions()["Functions"]
    assert not local.client("cloudwatch").describe_alarms()["MetricAlarms"]
    buckets = [b["Name"] for b in local.client("s3").list_buckets()["Buckets"]]
    assert names["bucket"] not in buckets
    assert "Nothing to tear down" in local.ok("teardown", "--yes")


def test_send_test_without_local_running_says_start_it(tmp_path: Path,
                                                       build_cache: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_clean_env(build_cache), "PIPELINECTL_LOCAL_PORT": str(port)}
    result = subprocess.run([sys.executable, "-m", "pipelinectl", "--local", "send-test"],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "pipelinectl local" in result.stderr and "Traceback" not in result.stderr


def test_demo_exits_0(tmp_path: Path, build_cache: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pipelinectl", "demo", "--quiet"],
                            cwd=tmp_path, env=_clean_env(build_cache), capture_output=True,
                            text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "Demo complete" in result.stdout
    for step in ("up:", "File drop", "send-test --amount 1500", "status:", "teardown:"):
        assert step in result.stdout


def _object(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    except s3.exceptions.NoSuchKey:
        return None
