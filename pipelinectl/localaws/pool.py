"""Lambda's concurrency locally: several execution environments (worker processes) per
function, the function's reserved concurrency, and a cap for this machine.

Lambda Developer Guide, "Configuring reserved concurrency": reserved concurrency is the
maximum number of concurrent instances of the function; at 0 the function is throttled and
processes no events. A throttled invocation is refused with TooManyRequestsException (Reason
ReservedFunctionConcurrentInvocationLimitExceeded) and counted in the Throttles metric, not in
Invocations or Errors ("Types of metrics for Lambda functions"). The local cap
(``--max-concurrency``) is not an AWS limit but this machine's: an invocation over it waits
for a free worker rather than being throttled.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinectl.localaws.faults import Faults
from pipelinectl.localaws.runner import (
    FunctionSpec,
    FunctionUnavailable,
    Invocation,
    Worker,
    read_function,
)

log = logging.getLogger(__name__)

Listener = Callable[[Invocation], None]
ThrottleListener = Callable[[FunctionSpec], None]


def default_max_concurrency() -> int:
    """Concurrent invocations this machine runs by default: 4 per CPU (an invocation mostly
    waits on the local AWS's answers), at least 2."""
    return max(2, 4 * (os.cpu_count() or 1))


class Throttled(RuntimeError):
    """Lambda refused the invocation: the function's reserved concurrency is all in use."""

    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"


@dataclass
class _Environments:
    """The worker processes of one function."""

    idle: list[Worker] = field(default_factory=list)
    busy: set[Worker] = field(default_factory=set)
    starting: int = 0

    @property
    def running(self) -> int:
        return len(self.busy) + self.starting


class Runner:
    """Invokes functions by ARN, each invocation in a free worker of the function (a new one
    when none is idle), up to its reserved concurrency; workers are replaced when the code or
    configuration changes, after a timeout or a crash."""

    def __init__(self, endpoint_url: str, workdir: Path, max_concurrency: int | None = None,
                 faults: Faults | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.workdir = workdir
        self.max_concurrency = max_concurrency or default_max_concurrency()
        self.faults = faults
        self.listeners: list[Listener] = []
        self.throttle_listeners: list[ThrottleListener] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(self.max_concurrency)
        self._functions: dict[str, _Environments] = {}
        self._closed = False

    def workers(self) -> list[Worker]:
        """Every worker process, idle or busy."""
        with self._lock:
            return [w for env in self._functions.values() for w in (*env.idle, *env.busy)]

    def invoke(self, function_arn: str, event: Any) -> Invocation:
        """Run one invocation; Throttled when the reserved concurrency is in use."""
        spec = read_function(function_arn)
        while not self._slots.acquire(timeout=0.5):
            if self._closed:
                raise FunctionUnavailable("the local AWS is stopping")
        try:
            worker, running = self._acquire(function_arn, spec)
            cut = None if self.faults is None else self.faults.invocation(spec.name)
            inv = worker.invoke(event, str(uuid.uuid4()), cut)
            inv.concurrency = running
            self._release(function_arn, worker, inv)
        finally:
            self._slots.release()
        if self.faults is not None and inv.ok:
            self.faults.observed(spec.name, inv.duration_ms / 1000)
        self._notify(self.listeners, inv)
        return inv

    def _notify(self, listeners: list[Any], arg: Any) -> None:
        for listener in listeners:
            try:
                listener(arg)
            except Exception:
                log.exception("runner listener failed")

    def _acquire(self, arn: str, spec: FunctionSpec) -> tuple[Worker, int]:
        stale: list[Worker] = []
        with self._lock:
            if self._closed:
                raise FunctionUnavailable("the local AWS is stopping")
            env = self._functions.setdefault(arn, _Environments())
            if spec.reserved is not None and env.running >= spec.reserved:
                throttled = True
            else:
                throttled, worker = False, None
                while env.idle and worker is None:
                    candidate = env.idle.pop()
                    if candidate.alive and candidate.spec == spec:
                        worker = candidate
                    else:
                        stale.append(candidate)
                if worker is not None:
                    env.busy.add(worker)
                    return worker, env.running
                env.starting += 1
        for old in stale:
            old.kill()
        if throttled:
            self._notify(self.throttle_listeners, spec)
            raise Throttled(f"Rate Exceeded. ({spec.name}: reserved concurrency {spec.reserved}"
                            " in use)")
        try:
            worker = Worker(spec, self._extract(spec), self.endpoint_url)
        finally:
            with self._lock:
                env.starting -= 1
        with self._lock:
            if self._closed:
                worker.kill()
                raise FunctionUnavailable("the local AWS is stopping")
            env.busy.add(worker)
            return worker, env.running

    def _release(self, arn: str, worker: Worker, inv: Invocation) -> None:
        with self._lock:
            env = self._functions.get(arn)
            keep = not self._closed and env is not None and worker.alive and not inv.timed_out
            if env is not None:
                env.busy.discard(worker)
                if keep:
                    env.idle.append(worker)
        if not keep:
            worker.kill()

    def _extract(self, spec: FunctionSpec) -> Path:
        target = self.workdir / f"{spec.name}-{spec.code_sha.replace('/', '_')[:16]}"
        if not target.exists():
            staging = self.workdir / f".{target.name}-{uuid.uuid4().hex}"
            try:
                with zipfile.ZipFile(io.BytesIO(spec.code)) as zf:
                    zf.extractall(staging)
            except zipfile.BadZipFile as exc:
                raise FunctionUnavailable(f"function {spec.name}: code is not a zip") from exc
            try:
                staging.rename(target)
            except OSError:  # extracted concurrently by another thread
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def reap(self) -> int:
        """Kill the idle workers of functions that no longer exist (or whose code moto no
        longer holds); returns how many. A busy worker finishes its invocation, as on AWS, and
        is reaped on a later round."""
        with self._lock:
            arns = list(self._functions)
        reaped: list[Worker] = []
        for arn in arns:
            try:
                read_function(arn)
                continue
            except FunctionUnavailable:
                pass
            with self._lock:
                env = self._functions.get(arn)
                if env is None:
                    continue
                reaped += env.idle
                env.idle = []
                if not env.running:
                    del self._functions[arn]
        for worker in reaped:
            worker.kill()
            log.debug("worker of deleted function %s stopped", worker.spec.name)
        return len(reaped)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [w for env in self._functions.values() for w in (*env.idle, *env.busy)]
            self._functions.clear()
        for worker in workers:
            worker.kill()
