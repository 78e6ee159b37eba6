"""Stopping the local AWS while a function runs: prompt, worker killed, message kept."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from localaws_helpers import Local
from polling import wait_for

from pipelinectl.localaws.alarms import AlarmEvaluator
from pipelinectl.localaws.runner import Worker
from pipelinectl.localaws.server import LocalAws
from pipelinectl.localaws.telemetry import Telemetry

SLOW = "import time\ndef handler(event, context):\n    print('working')\n    time.sleep(60)\n"


def test_stop_during_an_invocation_is_prompt_and_keeps_the_message() -> None:
    from moto.sqs.models import sqs_backends

    aws = LocalAws(port=0).start()
    workers: list[Worker] = []
    try:
        local = Local(aws.endpoint_url)
        url, arn = local.queue("slow-in", VisibilityTimeout="120")
        local.function("slow", SLOW, Timeout=90)
        local.mapping(arn, "slow", BatchSize=1)
        local.client("sqs").send_message(QueueUrl=url, MessageBody="x")
        assert aws.runner is not None
        runner = aws.runner
        workers = wait_for(runner.workers)
        wait_for(lambda: workers[0].invocations == 0 and workers[0]._initialized)
    finally:
        started = time.monotonic()
        aws.stop()
        elapsed = time.monotonic() - started
    # Not a speed check: waiting for the running invocation would take its full 60 s sleep;
    # the bound only tells "killed" from "waited" on a loaded machine.
    assert elapsed < 30
    assert not workers[0].alive
    assert not aws.running
    queue = sqs_backends["123456789012"]["us-east-1"].queues["slow-in"]
    assert len(queue._messages) == 1  # not deleted: it would come back after its visibility


def test_stop_after_heavy_use_neither_waits_out_a_slow_alarm_round_nor_a_shipping_backlog(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After heavy use an alarm round (moto scans every stored datapoint) and the invocation
    log backlog each took long enough that SIGTERM waited ~25 s. Here both are made slow on
    purpose: a round of 30 s and 40 invocations of 1 s each to ship."""
    round_started = threading.Event()

    def slow_round(self: AlarmEvaluator) -> None:
        round_started.set()
        time.sleep(30)

    def slow_record(self: Telemetry, inv: object) -> None:
        time.sleep(1)

    monkeypatch.setattr(AlarmEvaluator, "evaluate_all", slow_round)
    monkeypatch.setattr(Telemetry, "record", slow_record)
    aws = LocalAws(port=0, alarm_interval=0.05).start()
    assert aws._telemetry is not None
    for _ in range(40):
        aws._telemetry.on_invocation(SimpleNamespace(function=SimpleNamespace(name="f")))  # type: ignore[arg-type]
    assert round_started.wait(10)
    caplog.set_level(logging.INFO, logger="pipelinectl.localaws")
    started = time.monotonic()
    aws.stop()
    elapsed = time.monotonic() - started
    # Not a speed check: waiting would take 30 s (the round) or 40 s (the backlog); the bound
    # only tells "stopped within the grace period" from "waited" on a loaded machine.
    assert elapsed < 15
    assert not aws.running
    assert any("were not shipped" in r.getMessage() for r in caplog.records)


def test_the_worker_of_a_deleted_function_is_stopped_without_waiting_for_shutdown() -> None:
    aws = LocalAws(port=0).start()
    try:
        local = Local(aws.endpoint_url)
        url, arn = local.queue("short-lived-in")
        local.function("short-lived", "def handler(event, context):\n    return {}\n")
        uuid = local.mapping(arn, "short-lived", BatchSize=1)
        local.client("sqs").send_message(QueueUrl=url, MessageBody="x")
        assert aws.runner is not None
        runner = aws.runner
        worker = wait_for(lambda: next(iter(runner.workers()), None))
        wait_for(lambda: worker.invocations == 1)
        lam = local.client("lambda")
        lam.delete_event_source_mapping(UUID=uuid)
        lam.delete_function(FunctionName="short-lived")
        wait_for(lambda: not worker.alive and not runner.workers(), timeout=20)
    finally:
        aws.stop()
