"""``pipelinectl local``: run the local AWS in the foreground with a live view of what flows."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape

from pipelinectl.localaws.server import DEFAULT_HOST, DEFAULT_PORT, LocalAws, LocalAwsError

ROOT_LOGGER = "pipelinectl.localaws"

_STYLES = {
    "start": ("●", "bold green"),
    "stop": ("●", "bold"),
    "deliver": ("→", "cyan"),
    "invoke": ("λ", "green"),
    "partial": ("λ", "yellow"),
    "fail": ("✗", "bold red"),
    "dlq": ("☠", "magenta"),
    "alarm": ("⏰", "bold yellow"),
    "fault": ("⚡", "bold magenta"),
    "refused": ("⛔", "bold red"),
}


class LiveView(logging.Handler):
    """Renders the engine's activity records (``extra={"activity": ...}``) as console lines."""

    def __init__(self, console: Console, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            activity = getattr(record, "activity", None)
            if activity is None and record.levelno < logging.WARNING:
                return
            icon, style = _STYLES.get(activity or "", ("!", "red"))
            if activity == "alarm" and record.getMessage().endswith("OK"):
                style = "bold green"
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            self.console.print(
                f"[dim]{stamp}[/] [{style}]{icon} {escape(record.getMessage())}[/]",
                highlight=False,
                soft_wrap=True,
            )
        except Exception:  # pragma: no cover - never let rendering break the engine
            self.handleError(record)


def attach_live_view(console: Console, quiet: bool = False) -> LiveView:
    """Show the engine's activity on ``console`` (only warnings when ``quiet``)."""
    handler = LiveView(console, logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def detach_live_view(handler: LiveView) -> None:
    logger = logging.getLogger(ROOT_LOGGER)
    logger.removeHandler(handler)
    if not logger.handlers:
        logger.propagate = True


def run_local(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, quiet: bool = False,
              consistency: str = "aws", **options: Any) -> int:
    """Run the local AWS until Ctrl-C or SIGTERM; return the process exit code. ``options``
    go to LocalAws (max_concurrency, faults, faults_seed, enforce)."""
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    handler = attach_live_view(console, quiet)
    try:
        aws = LocalAws(host, port, consistency=consistency, **options)
        aws.start()
    except LocalAwsError as exc:
        detach_live_view(handler)
        errors.print(f"[bold red]Error:[/] {escape(str(exc))}")
        return 1
    stop = threading.Event()
    previous = _install_signal_handlers(stop)
    try:
        console.print(
            f"Local AWS at [bold]{aws.endpoint_url}[/] (region us-east-1, credentials testing/"
            f"testing), AWS's eventual consistency: {consistency}. Use [bold]pipelinectl "
            "--local …[/] in another terminal; Ctrl-C stops.",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            "Policies are enforced as on AWS: topic, queue, key and bucket policies on "
            "deliveries, the execution role on function calls (--no-enforce turns this off)."
            if aws.enforce else "[yellow]Policies are NOT enforced (--no-enforce):[/] deliveries "
            "and function calls that AWS would refuse succeed here.",
            highlight=False, soft_wrap=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        console.print("Stopping…", style="dim")
        aws.stop()
        console.print("Local AWS stopped.")
        _restore_signal_handlers(previous)
        detach_live_view(handler)
    return 0


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
