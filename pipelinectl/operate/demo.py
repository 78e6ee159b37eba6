"""`demo`: the whole product in one command, offline - embedded AWS, up, a file drop,
send-test, status, teardown.

The embedded AWS runs in this process on a free port (never the user's 4566, which a
`pipelinectl local` may be using). The steps are the very same core functions the
individual commands call, so the demo proves those, not a special path. The command layer
narrates; this module only runs the steps and returns their data.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from pipelinectl import config as config_module
from pipelinectl.clients import ClientFactory
from pipelinectl.engine import ProgressCallback
from pipelinectl.errors import PipelineError
from pipelinectl.operate import sendtest, smoke
from pipelinectl.resources.base import Change, Context, StatusRow


class Demo:
    """Owns the embedded AWS for the demo's lifetime; use as a context manager."""

    def __init__(self, flags: dict[str, Any]) -> None:
        self.flags = {**flags, "local": True, "endpoint_url": None}
        self.aws: Any = None
        self._ctx: Context | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, host: str = "127.0.0.1") -> str:
        """Start the embedded AWS on a free port and point the demo's `--local` at it (the
        environment is left alone); its URL."""
        try:
            from pipelinectl.localaws import LocalAws
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise PipelineError(
                "The demo needs the embedded local AWS: pip install 'pipelinectl[local]'."
            ) from exc
        self.aws = LocalAws(host, 0).start()
        self.flags["local_port"] = self.aws.port
        return str(self.aws.endpoint_url)

    def context(self) -> Context:
        """The pipeline context against the embedded AWS (config as the user set it)."""
        if self._ctx is None:
            from pipelinectl.engine import make_context

            config = config_module.load(self.flags)
            config = replace(config, region=config.region or "us-east-1")
            self._ctx = make_context(config, ClientFactory(config))
        return self._ctx

    def up(self, on_progress: ProgressCallback | None = None) -> list[Change]:
        from pipelinectl import engine

        return engine.apply(self.context(), on_progress=on_progress)

    def drop_file(self, timeout: float = 45.0) -> smoke.SmokeResult:
        """The sample CSV (valid, invalid, over-threshold rows) plus one SNS message."""
        return smoke.run(self.context(), timeout, run_id="demo")

    def send_test(self, amount: Decimal = Decimal("1500"),
                  timeout: float = 30.0) -> sendtest.SendTestResult:
        txn = sendtest.TestTransaction.new(amount, "demo-send-test")
        return sendtest.send_test(self.context(), txn, "sns", timeout=timeout)

    def status(self) -> list[StatusRow]:
        from pipelinectl import engine

        return engine.status(self.context())

    def teardown(self, on_progress: ProgressCallback | None = None) -> list[Change]:
        from pipelinectl import engine

        return engine.teardown(self.context(), on_progress=on_progress)

    def stop(self) -> None:
        """Stop the embedded AWS; safe to call twice."""
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
