"""Lambda-like runtime loop, run as a script in a worker process (standard library only).

The parent (``runner.py``) starts ``python -u _bootstrap.py`` with the working directory set to
the extracted deployment package and the function's environment. Protocol:

* stdin: one JSON request per line: ``{"id", "event", "deadline_ms", "arn", "memory"}``;
* stdout / stderr: whatever the handler prints (the function's log lines);
* after each invocation a sync marker line ``<token>`` goes to stderr and the result line
  ``<token>{"ok": ..., ...}`` to stdout, where ``<token>`` is a nonce from the environment,
  so the parent knows when it has read all of an invocation's output.

At start-up the handler module is imported (Lambda's init phase) and a first result line
``{"init": true, "ok": ..., "init_ms": ...}`` reports how that went.

Imports see what Lambda's Python runtime offers: the deployment package, the standard library
and boto3 with its dependencies. The interpreter runs with ``-S`` (no site-packages, no
``.pth`` files, no editable installs); site-packages is then added back behind a finder that
lets only the runtime-provided distributions through, so a dependency missing from the zip
fails here as it would on Lambda instead of being picked up from the developer's virtualenv.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import site
import sys
import time
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any

TOKEN = os.environ.pop("_PIPELINECTL_WORKER_TOKEN", "")


#: Top-level modules Lambda's python3.x runtimes provide besides the standard library.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six"}
)


class RuntimeFinder(importlib.abc.MetaPathFinder):
    """Top-level imports from site-packages only for what the Lambda runtime provides."""

    def __init__(self, site_dirs: list[str]) -> None:
        self.site_dirs = site_dirs

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None:  # a submodule: its package was already allowed
            return None
        own = [p for p in sys.path if p not in self.site_dirs]
        spec = importlib.machinery.PathFinder.find_spec(fullname, own)
        if spec is not None:
            return spec
        if fullname in RUNTIME_PROVIDED:
            return importlib.machinery.PathFinder.find_spec(fullname, self.site_dirs)
        raise ModuleNotFoundError(
            f"No module named '{fullname}' (it is not in the deployment package, and the "
            "Lambda runtime provides only boto3 and its dependencies)",
            name=fullname,
        )


def isolate_imports(task_root: str) -> None:
    sys.path[0] = task_root  # replaces this script's directory, like LAMBDA_TASK_ROOT
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    sys.path.extend(d for d in site_dirs if d not in sys.path)
    at = next(
        (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
        len(sys.meta_path),
    )
    sys.meta_path.insert(at, RuntimeFinder(site_dirs))


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers use."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = str(request.get("arn", ""))
        self.memory_limit_in_mb = str(request.get("memory", "128"))
        self.aws_request_id = str(request["id"])
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _load_handler() -> Any:
    spec = os.environ["_HANDLER"]
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{spec}': expected module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name, None)
    if handler is None:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


def _emit(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stderr.write(TOKEN + "\n")
    sys.stderr.flush()
    line = json.dumps(result, default=str)
    sys.stdout.write(TOKEN + line + "\n")
    sys.stdout.flush()


def main() -> None:
    isolate_imports(os.getcwd())
    control = sys.stdin
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the handler gets no stdin, as on Lambda
    # Init phase: import the handler once, before the first request, and report it.
    started = time.perf_counter()
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler()
    except Exception as exc:
        init_error = _error(exc, "Runtime.ImportModuleError")
    init_ms = (time.perf_counter() - started) * 1000
    _emit({"init": True, "ok": init_error is None, "init_ms": init_ms, **(init_error or {})})
    for raw in control:
        request = json.loads(raw)
        if init_error is not None:
            print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", flush=True)
            _emit(init_error)
            continue
        try:
            payload = handler(request["event"], LambdaContext(request))
            result: dict[str, Any] = {"ok": True, "payload": payload}
        except Exception as exc:
            result = _error(exc)
            print(f"[ERROR] {result['errorType']}: {exc}", flush=True)
            print("".join(traceback.format_exception(exc)).rstrip(), flush=True)
        _emit(result)


if __name__ == "__main__":
    main()
