"""The pipeline's steps and the order between them, as plain data.

Kept free of imports so the CLI can list the step commands without loading the resource
modules (`pipelinectl --help` stays fast). `needs` is what a step cannot be applied without:
`up` runs every step as soon as its needs are done, `teardown` runs the graph backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    needs: tuple[str, ...] = ()
    data: bool = False  # holds user data: kept by `teardown --keep-data`
    #: Steps that write into this one: teardown removes it only once they are gone (the
    #: processor writes rejects into the bucket and items into the table, so deleting those
    #: first races it and S3 answers BucketNotEmpty).
    removed_after: tuple[str, ...] = ()
    #: Steps whose resources this one names without needing them first (in a policy, the
    #: function's environment, a target, an alarm). A conflict there stops this step too:
    #: it would point the pipeline at (or grant it) a resource that is not ours.
    refers: tuple[str, ...] = ()


STEPS: dict[str, Step] = {step.name: step for step in (
    # roles needs topic: the role is granted the topics' key by its ARN, known once it exists.
    # Its policy also names the bucket, table, both queues and the function's log group.
    Step("roles", "IAM execution role + least-privilege inline policy", ("topic",),
         refers=("bucket", "table", "queue", "lambda")),
    Step("bucket", "landing bucket: EventBridge on, public access blocked, TLS only",
         data=True, removed_after=("subscribe", "lambda")),
    Step("table", "DynamoDB table (on-demand, point-in-time recovery)", data=True,
         removed_after=("subscribe", "lambda")),
    # Topic policies admit our rule (ingest) and our alarms (alerts).
    Step("topic", "ingest + alerts topics, their policies, the pipeline's KMS key",
         refers=("rule", "alarms")),
    # The queue policy admits the ingest topic, the DLQ's admits the rule.
    Step("queue", "queue + dead-letter queue + queue policy", refers=("topic", "rule")),
    # The environment names the table and the alerts topic.
    Step("lambda", "log group, then the processor function (deterministic zip)",
         ("roles", "queue"), refers=("table", "topic")),
    Step("rule", "EventBridge rule + target (dead-lettering into the DLQ)", ("topic", "queue"),
         refers=("bucket",)),
    Step("subscribe", "topic -> queue, queue -> function, optional alert e-mail",
         ("topic", "queue", "lambda")),
    # Alarms watch the function, the queues and the rule.
    Step("alarms", "CloudWatch alarms on errors, throttles, DLQ depth, message age",
         ("topic",), refers=("lambda", "queue", "rule")),
)}
STEP_ORDER = tuple(STEPS)


def dependents(step: str) -> tuple[str, ...]:
    return tuple(name for name, s in STEPS.items() if step in s.needs)


def stopped_by(conflicting: set[str], chosen: Iterable[str]) -> dict[str, str]:
    """Which chosen steps a conflict stops, each with the step whose conflict stops it: its
    own step, every step that names or needs one of its resources, and every step that needs
    a stopped one (STEP_ORDER lists needs first)."""
    wanted = set(chosen)
    stopped: dict[str, str] = {}
    for name in STEP_ORDER:
        if name not in wanted:
            continue
        step = STEPS[name]
        cause = next((c for c in (name, *step.refers, *step.needs) if c in conflicting),
                     None) or next((stopped[n] for n in step.needs if n in stopped), None)
        if cause is not None:
            stopped[name] = cause
    return stopped


def read_for(chosen: Iterable[str]) -> tuple[str, ...]:
    """The steps whose ownership decides whether the chosen ones may run."""
    wanted = set(chosen)
    for name in list(wanted):
        wanted.update(STEPS[name].refers, STEPS[name].needs)
    return tuple(name for name in STEP_ORDER if name in wanted)
