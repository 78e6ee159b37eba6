"""Stopping the local AWS while a function runs: prompt, worker killed, message kept."""

from __future__ import annotations

import time

from localaws_helpers import Local
from polling import wait_for

from pipelinectl.localaws.runner import Worker
from pipelinectl.localaws.server import LocalAws

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
        workers = wait_for(lambda: list(runner._workers.values()))
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
