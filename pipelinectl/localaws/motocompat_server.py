"""moto's request routing, patched (p), beside motocompat.py which installs it with the others.

Same rules as every patch in motocompat.py: one measured defect of moto's that AWS does not have,
with a test that unpatched moto still has it and one that the patched behaviour holds
(tests/localaws/test_motocompat_dynamodb.py, with the other per-request costs).

p. moto's server lists its own package directory on every request. ``DomainDispatcherApplication
.get_backend_for_host`` asks ``moto.backends.list_of_moto_modules()`` whether the Host header
names a service, and that function runs ``os.listdir`` over moto's package and ``os.path.isdir``
on each of its ~190 entries, for every request of every service: 5.5 % of the server's samples
on a split 20,000-row CSV (py-spy), more than moto's whole SQS. The directory is part of the
installed package and does not change while the server runs, so it is listed once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any


def listed_once(original: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    """The same names in the same order, read from disk the first time only."""

    @functools.cache
    def list_of_moto_modules() -> tuple[str, ...]:
        return tuple(original())

    return list_of_moto_modules


def patches(patch: Callable[..., Any]) -> list[Any]:
    """Built with motocompat's ``_Patch`` (passed in: no import cycle)."""
    from moto import backends

    return [patch(backends, "list_of_moto_modules", listed_once)]
