"""Fixtures for the operate commands' unit tests: moto in-process, the pipeline's queues,
table, topics and bucket created by the provisioning core, and a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipelinectl import config as config_module
from pipelinectl import engine
from pipelinectl.clients import ClientFactory
from pipelinectl.operate.targets import Targets
from pipelinectl.resources.base import Context

# What the operate commands touch; `lambda`/`subscribe` would need the zip and add nothing.
STEPS = ("bucket", "table", "topic", "queue")


@pytest.fixture
def ctx(aws: None, skip_notification_delay: Callable[[], None]) -> Iterator[Context]:
    """A pipeline that has been up for a while (past S3's EventBridge window)."""
    config = config_module.load({})
    pipeline = engine.make_context(config, ClientFactory(config))
    engine.apply(pipeline, STEPS)
    skip_notification_delay()
    pipeline.factory.calls.clear()
    yield pipeline


@pytest.fixture
def targets(ctx: Context) -> Targets:
    return Targets(ctx)


@dataclass
class FakeTime:
    """A clock that only moves when slept on; `on_sleep` hooks play the processor."""

    now: float = 1000.0
    sleeps: int = 0
    on_sleep: list[Callable[[int], None]] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        for hook in self.on_sleep:
            hook(self.sleeps)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def put_item(ctx: Context, **values: Any) -> None:
    """Write a transaction item the way the processor would (strings and numbers)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    ctx.client("dynamodb").put_item(
        TableName=ctx.names.table,
        Item={k: serializer.serialize(v) for k, v in values.items()})


def operations(ctx: Context, service: str = "sqs") -> list[str]:
    return [c.operation for c in ctx.factory.calls if c.service == service]
