"""The pipeline's steps and the order between them, as plain data.

Kept free of imports so the CLI can list the step commands without loading the resource
modules (`pipelinectl --help` stays fast). `needs` is what a step cannot be applied without:
`up` runs every step as soon as its needs are done, `teardown` runs the graph backwards.
"""

from __future__ import annotations

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


STEPS: dict[str, Step] = {step.name: step for step in (
    # roles needs topic: the role is granted the topics' key by its ARN, known once it exists.
    Step("roles", "IAM execution role + least-privilege inline policy", ("topic",)),
    Step("bucket", "landing bucket: EventBridge on, public access blocked, TLS only",
         data=True, removed_after=("subscribe", "lambda")),
    Step("table", "DynamoDB table (on-demand, point-in-time recovery)", data=True,
         removed_after=("subscribe", "lambda")),
    Step("topic", "ingest + alerts topics, their policies, the pipeline's KMS key"),
    Step("queue", "queue + dead-letter queue + queue policy"),
    Step("lambda", "log group, then the processor function (deterministic zip)",
         ("roles", "queue")),
    Step("rule", "EventBridge rule + target", ("topic",)),
    Step("subscribe", "topic -> queue, queue -> function, optional alert e-mail",
         ("topic", "queue", "lambda")),
    Step("alarms", "CloudWatch alarms on errors, throttles, DLQ depth, message age",
         ("topic",)),
)}
STEP_ORDER = tuple(STEPS)


def dependents(step: str) -> tuple[str, ...]:
    return tuple(name for name, s in STEPS.items() if step in s.needs)
