"""The embedded local AWS: moto plus what the pipeline needs from AWS that moto lacks.

Importing this package is cheap; moto, boto3 and rich load only when a name below is used::

    from pipelinectl.localaws import LocalAws, run_local
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelinectl.localaws.console import run_local
    from pipelinectl.localaws.server import LocalAws, LocalAwsError, PortInUseError

__all__ = ["LocalAws", "LocalAwsError", "PortInUseError", "run_local"]


def __getattr__(name: str) -> Any:
    if name == "run_local":
        from pipelinectl.localaws import console

        return console.run_local
    if name in ("LocalAws", "LocalAwsError", "PortInUseError"):
        from pipelinectl.localaws import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
