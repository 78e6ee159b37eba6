"""The pipeline's steps, each a list of resources, and the order between them.

`needs` is what a step cannot be applied without (it reads or points at those resources);
`up` runs every step as soon as its needs are done, `teardown` runs the graph backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelinectl.resources.alarms import Alarm, alarm_specs
from pipelinectl.resources.base import Context, Resource
from pipelinectl.resources.bucket import Bucket
from pipelinectl.resources.function import Function, LogGroup
from pipelinectl.resources.queues import DeadLetterQueue, Queue
from pipelinectl.resources.role import Role
from pipelinectl.resources.rule import Rule
from pipelinectl.resources.subscriptions import (
    EmailSubscription,
    EventSourceMapping,
    QueueSubscription,
)
from pipelinectl.resources.table import Table
from pipelinectl.resources.topics import AlertsTopic, IngestTopic, PipelineKey


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    needs: tuple[str, ...]
    build: Callable[[Context], list[Resource]]
    data: bool = False  # holds user data: kept by `teardown --keep-data`


def _topics(ctx: Context) -> list[Resource]:
    key: list[Resource] = [PipelineKey(ctx)] if ctx.config.topic_kms_key == "pipeline" else []
    return [*key, IngestTopic(ctx), AlertsTopic(ctx)]


def _subscriptions(ctx: Context) -> list[Resource]:
    email: list[Resource] = [EmailSubscription(ctx)] if ctx.config.alert_email else []
    return [QueueSubscription(ctx), EventSourceMapping(ctx), *email]


STEPS: dict[str, Step] = {step.name: step for step in (
    Step("roles", "IAM execution role + least-privilege inline policy", (),
         lambda ctx: [Role(ctx)]),
    Step("bucket", "landing bucket: EventBridge on, public access blocked, TLS only", (),
         lambda ctx: [Bucket(ctx)], data=True),
    Step("table", "DynamoDB table (on-demand, point-in-time recovery)", (),
         lambda ctx: [Table(ctx)], data=True),
    Step("topic", "ingest + alerts topics, their policies, the pipeline's KMS key", (),
         _topics),
    Step("queue", "queue + dead-letter queue + queue policy", (),
         lambda ctx: [DeadLetterQueue(ctx), Queue(ctx)]),
    Step("lambda", "log group, then the processor function (deterministic zip)",
         ("roles", "queue"), lambda ctx: [LogGroup(ctx), Function(ctx)]),
    Step("rule", "EventBridge rule + target", ("topic",), lambda ctx: [Rule(ctx)]),
    Step("subscribe", "topic -> queue, queue -> function, optional alert e-mail",
         ("topic", "queue", "lambda"), _subscriptions),
    Step("alarms", "CloudWatch alarms on errors, throttles, DLQ depth, message age",
         ("topic",), lambda ctx: [Alarm(ctx, spec) for spec in alarm_specs(ctx)]),
)}
STEP_ORDER = tuple(STEPS)


def dependents(step: str) -> tuple[str, ...]:
    return tuple(name for name, s in STEPS.items() if step in s.needs)
