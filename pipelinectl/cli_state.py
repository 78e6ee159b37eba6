"""What every command gets from the global options: one typed object on the click context.

Both command modules take it with `pass_state` (click's make_pass_decorator), so neither
imports the other's internals. Click only at import: `pipelinectl --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipelinectl.config import LOCAL_DEFAULT_PORT
from pipelinectl.errors import UsageError

if TYPE_CHECKING:
    from pipelinectl.render import Renderer
    from pipelinectl.resources.base import Context

PORT_ENV = "PIPELINECTL_LOCAL_PORT"
F = TypeVar("F", bound=Callable[..., Any])


class Port(click.ParamType[int, Any]):
    """A TCP port (0 lets the system pick one, where `allow_any`); a bad $PIPELINECTL_LOCAL_PORT
    is named as such."""

    name = "port"

    def __init__(self, allow_any: bool = False) -> None:
        self.lowest = 0 if allow_any else 1

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number: int | None = value
        else:
            text = str(value).strip()
            number = int(text) if text.isdigit() else None
        if number is None or not self.lowest <= number <= 65535:
            source = ctx.get_parameter_source(param.name) if ctx and param and param.name \
                else None
            where = PORT_ENV if source == click.core.ParameterSource.ENVIRONMENT else "port"
            self.fail(f"{where}={value!r} is not a port number ({self.lowest}-65535).",
                      param, ctx)
        return number


def local_port_option(*decls: str, allow_any: bool = False,
                      **kwargs: Any) -> Callable[[F], F]:
    """The port of `--local` and of `pipelinectl local`: 4566, or $PIPELINECTL_LOCAL_PORT."""
    option: Callable[[F], F] = click.option(
        *decls, type=Port(allow_any), envvar=PORT_ENV, default=LOCAL_DEFAULT_PORT,
        show_default=True, show_envvar=True, **kwargs)
    return option


@dataclass
class CliState:
    """The global options, parsed once by `main`."""

    flags: dict[str, Any] = field(default_factory=dict)
    output: str = "table"
    verbose: bool = False

    def renderer(self) -> Renderer:
        from pipelinectl.render import Renderer

        return Renderer(self.output)

    def context(self) -> Context:
        """Load and validate configuration, then resolve account and region (one STS call)."""
        from pipelinectl import config as config_module
        from pipelinectl.clients import ClientFactory
        from pipelinectl.engine import make_context

        config = config_module.load(self.flags)
        factory = ClientFactory(config)
        if self.verbose:
            factory.listeners.append(lambda call: click.echo(f"  api: {call}", err=True))
        return make_context(config, factory)


pass_state = click.make_pass_decorator(CliState)


def confirm_or_refuse(yes: bool, what: str, usage: str) -> None:
    """Ask on a terminal; refuse (exit 2) in a non-interactive shell (teardown, dlq purge)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{usage}: pass --yes to confirm in a non-interactive shell.")
    click.confirm(what, abort=True)
