"""moto's model bookkeeping, patched (m), beside motocompat.py which installs it with the others.

Same rules as every patch in motocompat.py: one measured defect of moto's that AWS does not have,
with a test that unpatched moto still has it and one that the patched behaviour holds
(tests/localaws/test_motocompat_models.py).

m. Every model object moto ever makes is kept alive. ``moto.core.common_models.BaseModel.__new__``
appends each instance to its class's ``instances_tracked`` list (for moto's dashboard,
``/moto-api/data.json``) and only a full moto reset empties it. That includes the copies moto
makes to answer a request: a DynamoDB Scan deep-copies every item it returns, a Query or
UpdateItem the items it touches, an SQS ReceiveMessage each message it returns. So memory grew
with (requests x items), not with what the services hold. Measured on the chaos bench
(bench/bench_memory.py): 1,000 transactions left 12,000 DynamoDB items alive for 961 in the
table, and a Scan of a 500-item table left 500 more items alive on every call; the bench scans
its table every 2 s, so 10,000 transactions ran out of 23.7 GB. AWS keeps nothing of a read
(a Scan "returns one or more items", DynamoDB API Reference, Scan).

The patch keeps the bookkeeping but weakly: the dashboard still lists every live model, and an
object nothing else holds is freed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_convert_lock = threading.Lock()


class WeakInstances:
    """A list-like set of weak references: ``append`` and iteration, as moto uses
    ``instances_tracked``; dead references are dropped every time the list doubles."""

    def __init__(self, initial: Iterable[Any] = ()) -> None:
        self._refs: list[weakref.ref[Any]] = []
        self._lock = threading.Lock()
        self._prune_at = 1024
        for obj in initial:
            self.append(obj)

    def append(self, obj: Any) -> None:
        try:
            ref = weakref.ref(obj)
        except TypeError:  # a model without __weakref__ (none in moto 5.2): not listed
            return
        with self._lock:
            self._refs.append(ref)
            if len(self._refs) >= self._prune_at:
                self._refs = [r for r in self._refs if r() is not None]
                self._prune_at = max(1024, 2 * len(self._refs))

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            refs = list(self._refs)
        return (obj for ref in refs if (obj := ref()) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def weakly_tracked_new(_original: Any) -> Any:
    """``BaseModel.__new__`` that lists the instance weakly (moto's lists it strongly)."""

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance: Any = object.__new__(cls)
        tracked = cls.__dict__.get("instances_tracked")
        if not isinstance(tracked, WeakInstances):
            with _convert_lock:  # the first instance since moto (re)set the list
                tracked = cls.__dict__.get("instances_tracked")
                if not isinstance(tracked, WeakInstances):
                    tracked = WeakInstances(tracked or ())
                    type.__setattr__(cls, "instances_tracked", tracked)
        tracked.append(instance)
        return instance

    return staticmethod(__new__)


def patches(patch: Callable[..., Any]) -> list[Any]:
    """Patch m, built with motocompat's ``_Patch`` (passed in: no import cycle)."""
    from moto.core.common_models import BaseModel

    return [patch(BaseModel, "__new__", weakly_tracked_new)]
