"""moto's DynamoDB patches (h, j), beside motocompat.py which installs them with the others.

Same rules as every patch in motocompat.py: one measured difference from AWS (or a defect of
moto's that AWS does not have), pinned to the tested moto range, with a test that unpatched
moto still has the defect and one that the patched behaviour is AWS's
(tests/localaws/test_motocompat.py). :func:`patches` is collected by ``motocompat._patches()``,
so install/uninstall bookkeeping stays in one place.

The backend methods are patched once each: a method may get a replacement (``REPLACEMENTS``,
patch j) and, around it, the item-write lock (``LOCKED``, patch h). Add a method to
``LOCKED`` for another race, or a replacement to ``REPLACEMENTS``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

Build = Callable[[Any], Any]  # moto's original attribute -> its replacement

# --------------------------------------------------------------------------------------------
# h. DynamoDB item writes race each other in moto's threaded server

#: The backend methods that change items (BatchWriteItem goes through put/delete_item).
LOCKED = ("put_item", "update_item", "delete_item", "transact_write_items")
_WRITES = threading.RLock()


def serialized_item_write(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto's TransactWriteItems changes items in several steps (and without patch j
    deep-copies every table it touches) while other request threads keep writing: with several
    concurrent batches the copy failed with "dictionary changed size during iteration" and
    the client got HTTP 500. DynamoDB isolates transactions from concurrent writes (Developer
    Guide, "Transactions: how it works", isolation levels: serializable); here item writes
    take one lock, in turn."""

    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return original(self, *args, **kwargs)

    return write


# --------------------------------------------------------------------------------------------
# j. TransactWriteItems deep-copies the whole table once per action

_rollback = threading.local()  # .active: set while our transaction wrapper runs in this thread


class CopyModule:
    """``moto.dynamodb.models.copy``: the stdlib module, except that while a transaction runs
    through :func:`item_rollback` a whole Table is not deep-copied (moto's rollback copy, taken
    once per action: O(actions x table size)); the wrapper keeps the touched items instead."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def deepcopy(self, obj: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_rollback, "active", False) and isinstance(obj, Table):
            return obj  # moto's "restore" then puts the live table back: a no-op
        return self._real.deepcopy(obj, memo)


Snapshot = tuple[Any, Any, Any, Any]  # table, hash key, range key, item before (None: absent)


def item_rollback(original: Callable[..., Any]) -> Callable[..., Any]:
    """All or nothing, as AWS does it (DynamoDB API Reference, TransactWriteItems: "an
    all-or-nothing operation"; a failed condition cancels the whole transaction with
    TransactionCanceledException), at the cost of the items the transaction names: each is
    copied before moto runs the actions and put back if moto raises."""

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        snapshots = _snapshot(self, transact_items)
        _rollback.active = True
        try:
            return original(self, transact_items)
        except Exception:
            _restore(snapshots)
            raise
        finally:
            _rollback.active = False

    return transact


def _snapshot(backend: Any, transact_items: list[dict[str, Any]]) -> list[Snapshot]:
    snapshots: list[Snapshot] = []
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue  # moto refuses it before changing anything
        op = next(iter(entry.values()))
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        key = op.get("Key") or {name: op.get("Item", {})[name]
                                for name in (table.hash_key_attr, table.range_key_attr)
                                if name and name in op.get("Item", {})}
        try:
            hash_key, range_key = backend.get_keys_value(table, key)
            item = table.get_item(hash_key, range_key)
        except Exception:  # an invalid key: moto refuses it, changing nothing
            continue
        snapshots.append((table, hash_key, range_key, copy.deepcopy(item)))
    return snapshots


def _restore(snapshots: list[Snapshot]) -> None:
    """Newest first, so an item named twice ends as it was before the first."""
    for table, hash_key, range_key, item in reversed(snapshots):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item


#: Patch j: moto's method -> ours (the lock of patch h goes around it).
REPLACEMENTS: dict[str, Build] = {"transact_write_items": item_rollback}


def _locked(replace: Build | None) -> Build:
    def build(original: Any) -> Any:
        return serialized_item_write(replace(original) if replace else original)

    return build


def patches(patch: Callable[..., Any]) -> list[Any]:
    """Every DynamoDB patch, one per patched attribute, built with motocompat's ``_Patch``
    (passed in: no import cycle; collected by motocompat._patches)."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    names = dict.fromkeys([*LOCKED, *REPLACEMENTS])
    return [
        patch(models, "copy", CopyModule),
        *(patch(DynamoDBBackend, name, _locked(REPLACEMENTS.get(name))) for name in names),
    ]
