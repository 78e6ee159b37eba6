"""The worker process on its own: what code can import, output capture, errors, timeouts."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from localaws_helpers import function_spec

from pipelinectl.localaws.runner import Worker


def _worker(tmp_path: Path, source: str, timeout: int = 3, **files: str) -> Worker:
    code = tmp_path / "code"
    code.mkdir()
    (code / "handler.py").write_text(textwrap.dedent(source))
    for name, text in files.items():
        path = code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    spec = function_spec(handler="handler.handler", timeout=timeout, env=(("STAGE", "test"),))
    return Worker(spec, code, "http://127.0.0.1:9")


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def test_imports_are_limited_to_the_package_the_stdlib_and_boto3(
    tmp_path: Path, workers: list[Worker]
) -> None:
    source = """
    import json, boto3, botocore, dateutil, urllib3   # stdlib and what the runtime provides
    import vendored                                   # shipped in the zip
    from pkg import sub

    def handler(event, context):
        try:
            import rich                               # installed here, not on Lambda
        except ImportError as exc:
            return {"rich": str(exc), "vendored": vendored.VALUE, "sub": sub.VALUE}
        return {"rich": "importable"}
    """
    worker = _worker(
        tmp_path,
        source,
        **{"vendored.py": "VALUE = 1", "pkg/__init__.py": "", "pkg/sub.py": "VALUE = 2"},
    )
    workers.append(worker)
    inv = worker.invoke({}, "r1")
    assert inv.ok, inv.error_message
    assert inv.payload["vendored"] == 1 and inv.payload["sub"] == 2
    assert inv.payload["rich"].startswith("No module named 'rich'")
    assert "not in the deployment package" in inv.payload["rich"]


def test_a_missing_dependency_fails_init_like_lambda(tmp_path: Path, workers: list[Worker]) -> None:
    worker = _worker(tmp_path, "import aws_lambda_powertools\ndef handler(e, c):\n    pass\n")
    workers.append(worker)
    for request in ("r1", "r2"):
        inv = worker.invoke({}, request)
        assert not inv.ok
        assert inv.error_type == "Runtime.ImportModuleError"
        assert "aws_lambda_powertools" in (inv.error_message or "")


def test_output_environment_and_context(tmp_path: Path, workers: list[Worker]) -> None:
    source = """
    import os, sys
    print("at init")

    def handler(event, context):
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.stdout.write("no newline")
        return {
            "event": event,
            "stage": os.environ["STAGE"],
            "endpoint": os.environ["AWS_ENDPOINT_URL"],
            "handler": os.environ["_HANDLER"],
            "remaining": context.get_remaining_time_in_millis(),
            "request": context.aws_request_id,
            "path0": sys.path[0] == os.environ["LAMBDA_TASK_ROOT"],
            "token_hidden": "_PIPELINECTL_WORKER_TOKEN" not in os.environ,
        }
    """
    worker = _worker(tmp_path, source)
    workers.append(worker)
    inv = worker.invoke({"a": 1}, "req-1")
    assert inv.ok, inv.error_message
    assert inv.payload == {
        "event": {"a": 1},
        "stage": "test",
        "endpoint": "http://127.0.0.1:9",
        "handler": "handler.handler",
        "remaining": inv.payload["remaining"],
        "request": "req-1",
        "path0": True,
        "token_hidden": True,
    }
    assert 0 < inv.payload["remaining"] <= 3000
    texts = [text for _, text in inv.lines]
    assert texts[0] == "at init"
    assert set(texts[1:]) == {"to stdout", "to stderr", "no newline"}
    assert inv.init_ms is not None
    again = worker.invoke({}, "req-2")  # the same process, no init this time
    assert again.ok and again.init_ms is None
    assert [t for _, t in again.lines if t == "at init"] == []


def test_an_exception_is_an_error_with_its_traceback(tmp_path: Path, workers: list[Worker]) -> None:
    worker = _worker(tmp_path, "def handler(e, c):\n    raise ValueError('bad amount')\n")
    workers.append(worker)
    inv = worker.invoke({}, "r1")
    assert not inv.ok
    assert (inv.error_type, inv.error_message) == ("ValueError", "bad amount")
    texts = [text for _, text in inv.lines]
    assert texts[0] == "[ERROR] ValueError: bad amount"
    assert any("Traceback" in t for t in texts)
    assert worker.alive  # the environment survives a handler error


def test_a_timeout_kills_the_worker(tmp_path: Path, workers: list[Worker]) -> None:
    source = "import time\ndef handler(e, c):\n    print('start')\n    time.sleep(30)\n"
    worker = _worker(tmp_path, source, timeout=1)
    workers.append(worker)
    inv = worker.invoke({}, "r1")
    assert inv.timed_out and not inv.ok
    assert inv.error_type == "Sandbox.Timedout"
    assert 1000 <= inv.duration_ms < 3000
    assert [t for _, t in inv.lines] == ["start"]
    assert not worker.alive


def test_exiting_the_process_is_an_error(tmp_path: Path, workers: list[Worker]) -> None:
    worker = _worker(tmp_path, "import sys\ndef handler(e, c):\n    sys.exit(3)\n")
    workers.append(worker)
    inv = worker.invoke({}, "r1")
    assert not inv.ok and inv.error_type == "Runtime.ExitError"
    assert not worker.alive
