"""moto's DynamoDB patches (h, j, n, o, q), beside motocompat.py, which installs them all.

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
import functools
import re
import threading
from collections.abc import Callable
from typing import Any

Build = Callable[[Any], Any]  # moto's original attribute -> its replacement

# --------------------------------------------------------------------------------------------
# h. DynamoDB item writes race each other in moto's threaded server

#: The backend methods that change items (BatchWriteItem goes through put/delete_item), and
#: (patch q) those that iterate over a table's items: DescribeTable counts them, Scan and
#: Query walk them. Unlocked, a write landing meanwhile failed them with "dictionary changed
#: size during iteration" (HTTP 500): `pipelinectl status` (DescribeTable) while a large
#: file was being stored. DynamoDB "provides read-committed isolation and ensures that read
#: operations always return committed values for an item" (Developer Guide, "DynamoDB read
#: consistency"); here a reader waits for the write in progress, then sees whole items.
LOCKED = ("put_item", "update_item", "delete_item", "transact_write_items",
          "describe_table", "scan", "query")
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


# --------------------------------------------------------------------------------------------
# n. Creating an item with UpdateItem costs moto milliseconds of expression machinery

#: ``SET #a = :a, #b = :b [REMOVE #c, #d]``: top-level names and values only, the form the
#: processor writes (it REMOVEs the optional fields a row lacks; on a new item, nothing).
_SET_ONLY = re.compile(r"\s*SET\s+(#\w+\s*=\s*:\w+(?:\s*,\s*#\w+\s*=\s*:\w+)*)"
                       r"(?:\s+REMOVE\s+(#\w+(?:\s*,\s*#\w+)*))?\s*", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"(#\w+)\s*=\s*(:\w+)")
_NAME = re.compile(r"#\w+")
#: Scalar types only: sets, lists and maps keep moto's own path (and its validation).
_SCALAR_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL"})
#: Larger items keep moto's path, which raises ItemSizeToUpdateTooLarge as AWS does.
_FAST_BYTES = 64_000


def created_directly(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto runs every UpdateItem through its expression machinery: it parses the expression,
    deep-copies the syntax tree and walks it with seven processors, twice when the item is
    new (once to validate before creating). For the processor's rows (an ``Update`` of ten
    ``SET #n = :v`` per new row, in a TransactWriteItems) that was about 9 ms of the one
    server thread per row: 7,343 of 10,000 samples of a split 20,000-row CSV, so a million
    rows took hours and splitting a file across invocations could not run faster.

    An update that only SETs top-level attributes with placeholders (and REMOVEs others) on
    an item that does not exist creates exactly the key plus the SET attributes (DynamoDB API
    Reference, UpdateItem: "Edits an existing item's attributes, or adds a new item to the
    table if it does not already exist"; REMOVE "removes one or more attributes from an
    item", Developer Guide, "Update expressions", and a new item has none to remove: moto's
    own path agrees, see the test); that case is stored directly, after moto's own condition
    check and item validation. Anything else - an existing item, another action, a name or
    value moto would refuse, a key or index attribute, a set, list or map, a stream - goes
    through moto's path unchanged, so every error is still moto's
    (tests/localaws/test_motocompat_dynamodb.py checks both paths give the same items and
    errors for random requests)."""

    def update_item(self: Any, table_name: str, key: dict[str, Any], update_expression: str,
                    expression_attribute_names: dict[str, Any] | None,
                    expression_attribute_values: dict[str, Any] | None,
                    attribute_updates: dict[str, Any] | None = None,
                    expected: dict[str, Any] | None = None,
                    condition_expression: str | None = None,
                    return_values_on_condition_check_failure: str | None = None) -> Any:
        data = None
        if not (attribute_updates or expected):
            data = _plain_new_item(self, table_name, key, update_expression,
                                   expression_attribute_names or {},
                                   expression_attribute_values or {})
        if data is None:
            return original(self, table_name, key, update_expression,
                            expression_attribute_names, expression_attribute_values,
                            attribute_updates, expected, condition_expression,
                            return_values_on_condition_check_failure)
        from moto.dynamodb.comparisons import create_condition_expression_parser
        from moto.dynamodb.exceptions import ConditionalCheckFailed

        condition = create_condition_expression_parser(
            condition_expression, expression_attribute_names, expression_attribute_values)
        if not condition.parse().expr(None):  # moto's check, on the absent item
            raise ConditionalCheckFailed
        return _store(self.get_table(table_name), data)

    return update_item


def _plain_new_item(backend: Any, table_name: str, key: dict[str, Any], expression: str,
                    names: dict[str, Any], values: dict[str, Any]) -> dict[str, Any] | None:
    """The whole new item when the update is one :func:`created_directly` may store itself,
    else None (moto's path decides)."""
    match = _SET_ONLY.fullmatch(expression or "")
    if match is None:
        return None
    assignments = _ASSIGNMENT.findall(match.group(1))
    attributes = [names.get(name) for name, _ in assignments]
    removed = [names.get(name) for name in _NAME.findall(match.group(2) or "")]
    touched = attributes + removed  # moto refuses a path named twice ("overlap")
    if (None in touched or len(set(touched)) != len(touched)
            or any(placeholder not in values for _, placeholder in assignments)):
        return None
    table = backend.get_table(table_name)
    indexed: set[Any] = {table.hash_key_attr, table.range_key_attr,
                         *table.hash_key_names, *table.range_key_names}
    if (table.stream_shard is not None or set(key) != set(table.table_key_attrs)
            or indexed.intersection(touched)):
        return None
    data: dict[str, Any] = dict(key)
    for attribute, (_, placeholder) in zip(attributes, assignments, strict=True):
        data[str(attribute)] = values[placeholder]
    if (any(not isinstance(v, dict) or len(v) != 1 or not _SCALAR_TYPES.issuperset(v)
            for v in data.values()) or len(repr(data)) > _FAST_BYTES):
        return None
    try:
        table._validate_item_types(data)
        table._validate_key_sizes(data)
        hash_key, range_key = backend.get_keys_value(table, key)
        if (hash_key.type != table.hash_key_type
                or (range_key is not None and range_key.type != table.range_key_type)
                or table.get_item(hash_key, range_key) is not None):
            return None
    except Exception:  # moto refuses it: let moto's own path say so
        return None
    return data


def _store(table: Any, data: dict[str, Any]) -> Any:
    """What ``Table.put_item`` does with an item :func:`_plain_new_item` accepted (types, key
    sizes, absence and no stream already checked), without the cost of moto's ``Item()``:
    it re-adds the size of every attribute set so far for each attribute it sets (quadratic
    in attributes); this item's size was bounded by ``_FAST_BYTES`` before."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    hash_key = DynamoType(data[table.hash_key_attr])
    range_key = DynamoType(data[table.range_key_attr]) if table.range_key_attr else None
    item = Item(hash_key, range_key, {})
    item.attrs.update((name, DynamoType(value)) for name, value in data.items())
    if range_key is None:
        table.items[hash_key] = item
    else:
        table.items[hash_key][range_key] = item
    return item


# --------------------------------------------------------------------------------------------
# o. moto parses one update expression up to three times per action

def parsed_once(original: Any) -> Any:
    """``UpdateExpressionParser.make`` is pure (the text in, a syntax tree out) and moto
    parses the same text for the request's validation, again in UpdateItem and once more per
    TransactWriteItems action, though a processor sends the same expression for every row.
    Trees are shared read-only: moto's Validator deep-copies the tree before changing it."""
    make = original.__func__

    @functools.lru_cache(maxsize=512)
    def cached(cls: Any, expression: str) -> Any:
        return make(cls, expression)

    replacement: Any = cached  # lru_cache keeps cache_clear() (tests use it)
    return classmethod(replacement)


#: moto's method -> ours (the lock of patch h goes around it): patches j and n.
REPLACEMENTS: dict[str, Build] = {"transact_write_items": item_rollback,
                                  "update_item": created_directly}


def _locked(replace: Build | None) -> Build:
    def build(original: Any) -> Any:
        return serialized_item_write(replace(original) if replace else original)

    return build


def patches(patch: Callable[..., Any]) -> list[Any]:
    """Every DynamoDB patch, one per patched attribute, built with motocompat's ``_Patch``
    (passed in: no import cycle; collected by motocompat._patches)."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
        UpdateExpressionParser,
    )

    names = dict.fromkeys([*LOCKED, *REPLACEMENTS])
    return [
        patch(models, "copy", CopyModule),
        patch(UpdateExpressionParser, "make", parsed_once),
        *(patch(DynamoDBBackend, name, _locked(REPLACEMENTS.get(name))) for name in names),
    ]
