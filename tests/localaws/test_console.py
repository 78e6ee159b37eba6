"""``run_local`` as a user runs it: its own process, live view, Ctrl-C/SIGTERM, a taken port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from localaws_helpers import Local
from polling import wait_for

RECORDER = """
def handler(event, context):
    print("handled", len(event["Records"]))
    return {"batchItemFailures": []}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_local(port: int, quiet: bool = False) -> subprocess.Popen[str]:
    code = (
        "import sys; from pipelinectl.localaws import run_local; "
        # consistency off: these tests make a role and a function at once, which AWS (and
        # the default emulation) refuses for a few seconds; they are about the live view.
        f"sys.exit(run_local('127.0.0.1', {port}, {quiet}, 'off'))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Output:
    """Collects a process's stdout lines in the background."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: self.lines.extend(stream), daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@pytest.fixture
def local_process() -> Iterator[tuple[subprocess.Popen[str], Output, str]]:
    port = _free_port()
    proc = _run_local(port)
    out = Output(proc)
    try:
        wait_for(lambda: out.has("Local AWS at"), timeout=30)
        yield proc, out, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_local_shows_the_flow_and_stops_cleanly_on_sigterm(
    local_process: tuple[subprocess.Popen[str], Output, str],
) -> None:
    proc, out, url = local_process
    local = Local(url)
    name = local.name("view")
    q_url, q_arn = local.queue(name)
    local.function(name, RECORDER)
    local.mapping(q_arn, name, BatchSize=5, FunctionResponseTypes=["ReportBatchItemFailures"])
    local.client("sqs").send_message(QueueUrl=q_url, MessageBody="x")
    wait_for(lambda: out.has(f"{name} → λ {name}: batch of 1"), timeout=20)
    assert any(f"{name} → λ {name}: batch of 1" in line and "ok" in line for line in out.lines)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    time.sleep(0.1)
    assert out.has("Local AWS stopped.")


def test_run_local_stops_on_ctrl_c(
    local_process: tuple[subprocess.Popen[str], Output, str],
) -> None:
    proc, _, _ = local_process
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0


def test_run_local_refuses_a_taken_port(local: Local) -> None:
    proc = _run_local(local.port, quiet=True)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"port {local.port} on 127.0.0.1 is already in use" in err
    assert "Traceback" not in err


def test_quiet_local_reports_a_request_moto_fails_on_in_one_line_without_traceback() -> None:
    """moto raises on some requests (here an unknown region); werkzeug used to print a full
    traceback per request to stderr, even with --quiet (63 in one `up`)."""
    port = _free_port()
    proc = _run_local(port, quiet=True)
    out = Output(proc)
    try:
        wait_for(lambda: out.has("Local AWS at"), timeout=30)
        sqs = Local(f"http://127.0.0.1:{port}").client("sqs", region_name="mars-north-9")
        # one line per failed HTTP request: botocore retries a 500 a few times
        with pytest.raises(Exception, match="500"):
            sqs.list_queues()
        wait_for(lambda: out.has("moto failed on a request"), timeout=10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    failures = [line for line in out.lines if "moto failed on a request" in line]
    assert failures and all("KeyError: 'mars-north-9'" in line for line in failures), out.lines
    assert "Traceback" not in err and "Traceback" not in "".join(out.lines)
