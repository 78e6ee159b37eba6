"""Helpers to drive the provisioning core and the CLI in-process against moto."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pipelinectl import config as config_module
from pipelinectl.cli import main
from pipelinectl.clients import Call, ClientFactory
from pipelinectl.engine import make_context
from pipelinectl.resources.base import Context


class Pipeline:
    """A configured pipeline plus the record of every API call made through it."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.ctx = self.fresh()

    def fresh(self, **changes: Any) -> Context:
        self.settings.update(changes)
        flags = {k: v for k, v in self.settings.items() if k in config_module.SETTINGS}
        config = config_module.load(flags)
        extra = {k: v for k, v in self.settings.items() if k not in config_module.SETTINGS}
        if extra:
            config = config_module.Config(**{**config.__dict__, **extra})
        self.ctx = make_context(config, ClientFactory(config))
        return self.ctx

    @property
    def calls(self) -> list[Call]:
        return self.ctx.factory.calls

    def reset_calls(self) -> None:
        self.ctx.factory.calls.clear()

    def mutating(self) -> list[str]:
        return [str(c) for c in self.calls if c.mutating]

    def client(self, service: str) -> Any:
        return self.ctx.client(service)


@pytest.fixture
def pipeline(aws: None) -> Iterator[Callable[..., Pipeline]]:
    yield Pipeline


@pytest.fixture
def cli(aws: None) -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every API call any ClientFactory makes in this test (the CLI builds its own)."""
    calls: list[Call] = []
    original = ClientFactory._record

    def record(self: ClientFactory, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        original(self, model, params, **kwargs)
        calls.append(self.calls[-1])

    monkeypatch.setattr(ClientFactory, "_record", record)
    return calls
