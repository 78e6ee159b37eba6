"""Waiting for asynchronous effects in tests: poll with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "",
             interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met within {timeout}s (last: {last!r})")
