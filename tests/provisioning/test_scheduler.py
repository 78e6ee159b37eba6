"""The step scheduler: a failed step stops only what waits on it (steps.needs for `up`), so
the other steps finish and one re-run completes the job."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from pipelinectl import engine
from pipelinectl.steps import STEP_ORDER, STEPS


def _waiting_on(step: str) -> set[str]:
    """Every step that needs `step`, directly or through another step."""
    found: set[str] = set()
    for name in STEP_ORDER:  # needs come first in STEP_ORDER
        if set(STEPS[name].needs) & (found | {step}):
            found.add(name)
    return found


def test_a_failed_step_blocks_only_the_steps_that_need_it(pipeline: Any) -> None:
    p = pipeline()
    sqs = p.client("sqs")

    def fail(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    sqs.meta.events.register("before-call.sqs.CreateQueue", fail)
    with pytest.raises(engine.StepFailed, match="Step queue failed") as failed:
        engine.apply(p.ctx)
    blocked = _waiting_on("queue")
    assert blocked == {"lambda", "rule", "subscribe"}  # the graph as the README draws it
    finished = {c.step for c in failed.value.done}
    assert finished == set(STEP_ORDER) - blocked - {"queue"}
    started = {str(c) for c in p.calls if c.mutating}
    assert not started & {"lambda.CreateFunction", "events.PutRule",
                          "lambda.CreateEventSourceMapping"}
    sqs.meta.events.unregister("before-call.sqs.CreateQueue", fail)
    again = engine.apply(p.ctx)
    assert {c.step for c in again if c.action == "create"} == blocked | {"queue"}
