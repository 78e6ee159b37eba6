"""Which resources make up each step (pipelinectl.steps has the steps and their order)."""

from __future__ import annotations

from collections.abc import Callable

from pipelinectl.resources.alarms import Alarm, alarm_specs
from pipelinectl.resources.base import Context, Resource
from pipelinectl.resources.bucket import Bucket
from pipelinectl.resources.function import Function, LogGroup
from pipelinectl.resources.kms import PipelineKey
from pipelinectl.resources.queues import DeadLetterQueue, Queue
from pipelinectl.resources.role import Role
from pipelinectl.resources.rule import Rule
from pipelinectl.resources.subscriptions import (
    EmailSubscription,
    EventSourceMapping,
    QueueSubscription,
)
from pipelinectl.resources.table import Table
from pipelinectl.resources.topics import AlertsTopic, IngestTopic


def _topics(ctx: Context) -> list[Resource]:
    key: list[Resource] = [PipelineKey(ctx)] if ctx.config.topic_kms_key == "pipeline" else []
    return [*key, IngestTopic(ctx), AlertsTopic(ctx)]


def _topics_ever(ctx: Context) -> list[Resource]:
    """For teardown: the pipeline's own key may exist from before topic_kms_key changed."""
    return [PipelineKey(ctx), IngestTopic(ctx), AlertsTopic(ctx)]


def _subscriptions(ctx: Context) -> list[Resource]:
    email: list[Resource] = [EmailSubscription(ctx)] if ctx.config.alert_email else []
    return [QueueSubscription(ctx), EventSourceMapping(ctx), *email]


BUILDERS: dict[str, Callable[[Context], list[Resource]]] = {
    "roles": lambda ctx: [Role(ctx)],
    "bucket": lambda ctx: [Bucket(ctx)],
    "table": lambda ctx: [Table(ctx)],
    "topic": _topics,
    "queue": lambda ctx: [DeadLetterQueue(ctx), Queue(ctx)],
    "lambda": lambda ctx: [LogGroup(ctx), Function(ctx)],
    "rule": lambda ctx: [Rule(ctx)],
    "subscribe": _subscriptions,
    "alarms": lambda ctx: [Alarm(ctx, spec) for spec in alarm_specs(ctx)],
}


def build(step: str, ctx: Context) -> list[Resource]:
    """The resources of one step, in the order they are created."""
    return BUILDERS[step](ctx)


def build_for_teardown(step: str, ctx: Context) -> list[Resource]:
    """Everything of a step the pipeline may have created under any configuration."""
    return _topics_ever(ctx) if step == "topic" else build(step, ctx)
