"""Runs deployed Lambda code: the zip moto holds, in reusable worker processes (one per
execution environment; pool.py keeps several per function)."""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipelinectl.localaws._aws import TEST_CREDENTIALS, arn_parts
from pipelinectl.localaws.faults import Cut

log = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
INIT_TIMEOUT_S = 10  # Lambda's limit for the init phase
#: Parent variables a worker inherits; everything else comes from the function's configuration.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "HOME")


class FunctionUnavailable(RuntimeError):
    """The function does not exist (any more) or cannot be run locally."""


@dataclass(frozen=True)
class FunctionSpec:
    """What a worker needs from a function's configuration (read from moto's Lambda backend)."""

    name: str
    arn: str
    region: str
    account: str
    handler: str
    runtime: str
    timeout: int
    memory: int
    env: tuple[tuple[str, str], ...]
    code_sha: str
    code: bytes = field(repr=False, compare=False)
    #: ReservedConcurrentExecutions (None: unreserved); a change needs no new worker.
    reserved: int | None = field(default=None, compare=False)
    role: str = ""  # the execution role: the worker's credentials (rolecalls.py)

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


def read_function(function_arn: str) -> FunctionSpec:
    """The function's current configuration and code, straight from moto's backend."""
    from moto.awslambda.utils import get_backend

    _, region, account, _ = arn_parts(function_arn)
    try:
        fn = get_backend(account, region).get_function(function_arn)
    except Exception as exc:
        raise FunctionUnavailable(f"function {function_arn} not found") from exc
    if getattr(fn, "package_type", "Zip") == "Image" or not fn.code_bytes:
        raise FunctionUnavailable(f"function {fn.function_name} has no zip code to run locally")
    return FunctionSpec(
        name=fn.function_name,
        arn=fn.function_arn,
        region=region,
        account=account,
        handler=fn.handler or "",
        runtime=fn.run_time or "python3.12",
        timeout=int(fn.timeout or 3),
        memory=int(fn.memory_size or 128),
        env=tuple(sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())),
        code_sha=fn.code_sha_256,
        role=str(getattr(fn, "role", "") or ""),
        code=fn.code_bytes,
        reserved=None if fn.reserved_concurrency is None else int(fn.reserved_concurrency),
    )


@dataclass
class Invocation:
    """The outcome of one invocation, with the log lines it printed (epoch ms, text)."""

    request_id: str
    function: FunctionSpec
    started: float
    ok: bool = False
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    timed_out: bool = False
    injected: str | None = None  # the fault rule that ended it (faults.py)
    concurrency: int = 1  # executions of the function running when it started
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: int | None = None
    log_stream: str = ""
    lines: list[tuple[int, str]] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _credentials(spec: FunctionSpec) -> dict[str, str]:
    """The execution role's credentials when policies are enforced (as Lambda gives them),
    else the local AWS's test credentials."""
    from pipelinectl.localaws import enforce, rolecalls

    if enforce.enabled() and spec.role:
        return rolecalls.role_credentials(spec.role, spec.name, spec.region)
    return {"AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": TEST_CREDENTIALS["aws_session_token"]}


class Worker:
    """One long-lived process running one function's code (a Lambda execution environment)."""

    def __init__(self, spec: FunctionSpec, code_dir: Path, endpoint_url: str) -> None:
        self.spec = spec
        self.log_stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex
        self._token = secrets.token_hex(16)
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.update(dict(spec.env))
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint_url,
                **_credentials(spec),
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "LAMBDA_TASK_ROOT": str(code_dir),
                "_HANDLER": spec.handler,
                "PYTHONDONTWRITEBYTECODE": "1",
                "_PIPELINECTL_WORKER_TOKEN": self._token,
            }
        )
        self._events: queue.Queue[tuple[str, str]] = queue.Queue()
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-E", "-u", str(BOOTSTRAP)],
            cwd=code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for stream, kind in ((self._proc.stdout, "out"), (self._proc.stderr, "err")):
            threading.Thread(
                target=self._read, args=(stream, kind), name=f"worker-{kind}", daemon=True
            ).start()
        self.invocations = 0
        self._initialized = False
        self._exited = False  # its output ended: the process is gone or going

    @property
    def alive(self) -> bool:
        return not self._exited and self._proc.poll() is None

    def _read(self, stream: IO[str], kind: str) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            before, token, after = line.partition(self._token)
            if before or not token:
                self._events.put(("line", before))
            if token:
                self._events.put(("result" if kind == "out" else "mark", after))
        self._events.put(("eof", kind))

    def _await(self, deadline: float, lines: list[tuple[int, str]]) -> tuple[Any, bool]:
        """Read output until a result and the stderr marker came: (result or None, timed out)."""
        result: dict[str, Any] | None = None
        marked, eofs = False, 0
        while (result is None or not marked) and eofs < 2:
            remaining = deadline - time.time()
            if remaining <= 0:
                return result, True
            try:
                kind, text = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if kind == "line":
                lines.append((_now_ms(), text))
            elif kind == "result":
                result = json.loads(text)
            elif kind == "mark":
                marked = True
            else:
                eofs += 1
                self._exited = True
        return result, False

    def _init(self, inv: Invocation) -> bool:
        """Wait for the init phase (limited to INIT_TIMEOUT_S, apart from the function timeout)."""
        self._initialized = True
        result, timed_out = self._await(time.time() + INIT_TIMEOUT_S, inv.lines)
        if result is not None:
            inv.init_ms = result.get("init_ms")
        if timed_out or result is None:
            inv.error_type = "Runtime.InitTimeout" if timed_out else "Runtime.ExitError"
            inv.error_message = (
                f"init did not finish within {INIT_TIMEOUT_S} seconds"
                if timed_out
                else f"worker exited (code {self._proc.poll()}) during init"
            )
            inv.timed_out = timed_out
            self.kill()
            self._drain(inv)
            return False
        return True

    def invoke(self, event: Any, request_id: str, cut: Cut | None = None) -> Invocation:
        spec = self.spec
        inv = Invocation(request_id, spec, time.time(), log_stream=self.log_stream)
        if not self._initialized and not self._init(inv):
            inv.duration_ms = (time.time() - inv.started) * 1000
            return inv
        inv.started = time.time()  # the function timeout starts after init, as on Lambda
        deadline = inv.started + spec.timeout
        request = {
            "id": request_id,
            "event": event,
            "deadline_ms": int(deadline * 1000),
            "arn": spec.arn,
            "memory": spec.memory,
        }
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the process died; reading hits EOF and reports it
        stop_at = deadline if cut is None else min(deadline, inv.started + cut.after)
        result, inv.timed_out = self._await(stop_at, inv.lines)
        if inv.timed_out or cut is not None:
            self.kill()
            self._drain(inv)
        inv.duration_ms = (time.time() - inv.started) * 1000
        self.invocations += 1
        if cut is not None:  # an injected end: whatever it answered is lost
            result, inv.timed_out, inv.injected = None, cut.kind == "timeout", cut.rule
        self._settle(inv, result)
        return inv

    def _settle(self, inv: Invocation, result: dict[str, Any] | None) -> None:
        inv.max_memory_mb = self._max_memory_mb()
        if inv.timed_out:
            inv.error_type = "Sandbox.Timedout"
            inv.error_message = f"Task timed out after {self.spec.timeout:.2f} seconds"
        elif result is None:
            inv.error_type = "Runtime.ExitError"
            inv.error_message = f"worker exited (code {self._proc.poll()}) during the invocation"
        else:
            inv.ok = bool(result.get("ok"))
            inv.payload = result.get("payload")
            inv.error_type = result.get("errorType")
            inv.error_message = result.get("errorMessage")

    def _drain(self, inv: Invocation) -> None:
        """After a kill: collect what the process printed before it died."""
        eofs, until = 0, time.time() + 1.0
        while eofs < 2 and time.time() < until:
            try:
                kind, text = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "line":
                inv.lines.append((_now_ms(), text))
            eofs += kind == "eof"

    def _max_memory_mb(self) -> int | None:
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return None

    def kill(self) -> None:
        if self.alive:
            self._proc.kill()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            log.warning("worker %s did not exit", self._proc.pid)
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
