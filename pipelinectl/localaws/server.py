"""``LocalAws``: moto's server in our own process plus the services moto lacks."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pipelinectl.clients import LOCAL_INFO_PATH
from pipelinectl.localaws import consistency, motocompat
from pipelinectl.localaws import enforce as enforcement
from pipelinectl.localaws._aws import Clients
from pipelinectl.localaws.alarms import AlarmEvaluator
from pipelinectl.localaws.faults import Faults
from pipelinectl.localaws.faultwire import with_faults
from pipelinectl.localaws.poller import Poller
from pipelinectl.localaws.pool import Runner
from pipelinectl.localaws.telemetry import Telemetry

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566  # config.LOCAL_DEFAULT_PORT: the local AWS imports nothing of the CLI


#: How often the workers of deleted functions are looked for and stopped.
REAP_INTERVAL_SECONDS = 1.0
#: How long stop() waits for the background services, all together.
STOP_GRACE_SECONDS = 3.0
#: How long stop() keeps shipping pending invocation logs and metrics before dropping them.
TELEMETRY_DRAIN_SECONDS = 2.0


class LocalAwsError(RuntimeError):
    """The local AWS could not start."""


class PortInUseError(LocalAwsError):
    """Something already listens on the requested address."""


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a taken port is a clean error (werkzeug exits)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":  # as http.server does; on Windows it would allow double binds
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use; stop what listens there "
                f"or pick another port (--port, or PIPELINECTL_LOCAL_PORT)."
            ) from exc
        raise LocalAwsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _with_info(app: Any, info: dict[str, Any]) -> Any:
    """Serve ``GET LOCAL_INFO_PATH`` (read-only JSON about this local AWS, e.g. the delays it
    emulates) before moto sees the request; every other request goes to moto."""
    body = json.dumps(info, sort_keys=True).encode()

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == LOCAL_INFO_PATH and environ.get("REQUEST_METHOD") in {
                "GET", "HEAD"}:
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wsgi


def _moto_server(sock: socket.socket, info: dict[str, Any], faults: Faults) -> Any:
    """A ThreadedMotoServer serving on ``sock`` that logs no requests."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _with_info(with_faults(DomainDispatcherApplication(create_backend_app),
                                         faults), info)
            self._server = make_server(
                self._ip_address,
                self._port,
                app,
                True,
                request_handler=QuietHandler,
                fd=sock.fileno(),
            )
            sock.close()  # werkzeug serves on a duplicate of the descriptor
            self._server_ready_event.set()
            self._server.serve_forever()

    host, port = sock.getsockname()[:2]
    return Server(ip_address=host, port=port, verbose=False)


class _ServerErrors(logging.Handler):
    """werkzeug prints a full traceback to stderr for every request moto fails on (an unknown
    region raised 63 of them in one `up`), even under ``--quiet``. The client already got
    HTTP 500; the live view gets one line naming the exception, the traceback goes to DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno < logging.ERROR:
            log.debug("werkzeug: %s", text)
            return
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        log.warning("moto failed on a request (answered HTTP 500): %s",
                    lines[-1] if lines else text)
        log.debug("%s", text)


def _route_server_errors() -> None:
    """Give werkzeug's logger our handler (it then adds no stderr handler of its own)."""
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(h, _ServerErrors) for h in werkzeug.handlers):
        werkzeug.addHandler(_ServerErrors())
    werkzeug.propagate = False


class _Periodic:
    """Runs a function every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, name: str, interval: float, fn: Any) -> None:
        self._fn = fn
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("%s failed: %s", self._thread.name, exc)

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout``: a round still running (alarm evaluation over a long
        metric history can take seconds) finishes in its daemon thread, harmlessly."""
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, timeout))

    def stop(self) -> None:
        self.signal_stop()
        self.join(STOP_GRACE_SECONDS)


class LocalAws:
    """moto's server in this process, patched (motocompat), with the pipeline's AWS behaviours.

    Adds: event source mapping polling that runs the deployed zip in worker processes, function
    logs, AWS/Lambda, AWS/SQS and EMF metrics, and alarm evaluation with SNS actions.
    ``consistency`` (``aws``, ``fast``, default ``off``) emulates AWS's eventual consistency
    (see ``consistency``). ``port=0`` picks a free port; ``fresh`` (default) empties moto's
    in-process state first, while ``stop()`` leaves it for inspection. ``enforce`` (default)
    evaluates topic, queue, key and bucket policies on deliveries and the execution role on
    the function's calls. Use as a context manager, or ``start()``/``stop()``::

        with LocalAws(port=0) as aws:
            boto3.client("sqs", endpoint_url=aws.endpoint_url, ...)
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        poll_interval: float = 0.25,
        metrics_interval: float = 2.0,
        alarm_interval: float = 1.0,
        fresh: bool = True,
        consistency: str = "off",
        max_concurrency: int | None = None,
        faults: str = "",
        faults_seed: int | None = None,
        enforce: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.poll_interval = poll_interval
        self.metrics_interval = metrics_interval
        self.alarm_interval = alarm_interval
        self.fresh = fresh
        self.consistency = consistency  # AWS's eventual consistency: aws, fast or off
        self.max_concurrency = max_concurrency
        self.faults = Faults(seed=faults_seed)
        self.faults.configure(faults)  # FaultSpecError (a ValueError) before anything starts
        self.enforce = enforce
        self._server: Any = None
        self._workdir: Path | None = None
        self._services: list[Any] = []
        self.runner: Runner | None = None
        self._telemetry: Telemetry | None = None

    def info(self) -> dict[str, Any]:
        """The read-only document served at ``GET /_pipelinectl/info``: the consistency mode
        and its durations, among them ``s3_eventbridge_delay_seconds`` (how long after
        PutBucketNotificationConfiguration S3 events start flowing here), so the CLI judges
        S3's EventBridge window by what this endpoint really does."""
        return {"service": "pipelinectl-local", **consistency.describe(),
                # moto has no StartMessageMoveTask: `dlq redrive` moves messages itself.
                "sqs_message_move_tasks": False}

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint_url(self) -> str:
        if not self.running:
            raise LocalAwsError("the local AWS is not running")
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self, host: str | None = None, port: int | None = None) -> Self:
        """Start moto's server and the services; raise PortInUseError if the port is taken."""
        if self.running:
            return self
        motocompat.apply()
        consistency.apply(self.consistency)
        enforcement.set_enabled(self.enforce)  # policies evaluated as AWS does (enforce.py)
        if self.fresh:  # moto's state is per process: start from an empty account
            from moto.core.base_backend import BackendDict

            BackendDict.reset()
        self.host = host if host is not None else self.host
        self.port = port if port is not None else self.port
        _route_server_errors()
        server = _moto_server(_bind(self.host, self.port), self.info(), self.faults)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        clients = Clients(self.endpoint_url)
        self._workdir = Path(tempfile.mkdtemp(prefix="pipelinectl-local-"))
        self.runner = Runner(self.endpoint_url, self._workdir, self.max_concurrency, self.faults)
        telemetry = self._telemetry = Telemetry(clients, faults=self.faults)
        telemetry.start()
        self.runner.listeners.append(telemetry.on_invocation)
        self.runner.throttle_listeners.append(telemetry.on_throttle)
        alarms = AlarmEvaluator(clients)
        self._services = [
            Poller(clients, self.runner, interval=self.poll_interval),
            _Periodic("sqs-metrics", self.metrics_interval, telemetry.sample_queues),
            _Periodic("alarms", self.alarm_interval, alarms.evaluate_all),
            _Periodic("reap-workers", REAP_INTERVAL_SECONDS, self.runner.reap),
        ]
        for service in self._services:
            service.start()
        log.debug("local AWS listening on %s", self.endpoint_url)
        return self

    def stop(self) -> None:
        """Stop the services, kill the workers, shut the server down, remove temp files."""
        if not self.running:
            return
        if self.runner is not None:
            self.runner.close()  # first: an invocation in flight ends now, its batch not deleted
        # Every service is told at once and all share one grace period: after heavy use,
        # waiting for each in turn (an alarm round, a shipping backlog) took ~25 s on SIGTERM.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for service in self._services:
            service.signal_stop()
        if self._telemetry is not None:
            self._telemetry.stop(drain_seconds=TELEMETRY_DRAIN_SECONDS)
            self._telemetry = None
        for service in self._services:
            service.join(deadline - time.monotonic())
        self._server.stop()
        self._server = None
        consistency.apply("off")  # process-wide patches: leave moto as we found it
        enforcement.set_enabled(False)
        self._services = []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        log.debug("local AWS stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
