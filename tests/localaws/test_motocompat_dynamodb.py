"""Patches n, o (motocompat_dynamodb.py) and p (motocompat_server.py): the per-row costs of the
local DynamoDB. Each is measured by counting the work moto does (validations, parses, directory
listings), never by timing; bench/bench_large_files.py gives the rows/s.

n's safety net is the property test: for random UpdateItem requests - valid or not, new item
or existing, with keys, indexes, sets and odd values - the patched method leaves the same
items and raises the same errors as moto's own."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src.storage import TransactionStore
from lambda_src.validation import validate
from pipelinectl.localaws import motocompat
from pipelinectl.localaws.motocompat_dynamodb import created_directly

ACCOUNT, REGION = "123456789012", "us-east-1"


def _processor_table(ddb: Any) -> None:
    ddb.create_table(TableName="txns", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "transaction_id",
                                            "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"}])


def _processor_rows(ddb: Any, count: int) -> None:
    """The processor's own writes: new rows through TransactionStore.create (Update actions,
    ``SET`` of every field, ``attribute_not_exists``), as a file's rows are stored."""
    store = TransactionStore(ddb, "txns")
    store.request_id = "req-1"
    txns = [validate({"transaction_id": f"t-{i}", "amount": f"{i}.25",
                               "timestamp": "2024-08-09T12:34:56Z", "currency": "USD"})
            for i in range(1, count + 1)]
    raced, unwritten = store.create(txns, "2024-08-09T12:35:00Z")
    assert (raced, unwritten) == (set(), set())


def _record_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, *,
                  record: Callable[..., Any] = lambda *args: args,
                  static: bool = False) -> list[Any]:
    """Replace ``owner.name`` by a pass-through that appends ``record(*args)`` (unless None)
    to the list returned: the work moto does, counted instead of timed."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def counting(*args: Any) -> Any:
        if (entry := record(*args)) is not None:
            calls.append(entry)
        return real(*args)

    monkeypatch.setattr(owner, name, staticmethod(counting) if static else counting)
    return calls


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """moto's update-expression validations (each deep-copies and walks the tree)."""
    from moto.dynamodb.parsing.validators import Validator

    return _record_calls(monkeypatch, Validator, "validate")


# ------------------------------------------------------------- n. new items through UpdateItem


def test_defect_n_moto_validates_a_new_items_update_twice(
        plain_moto: None, validations: list[Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    _processor_table(ddb)
    _processor_rows(ddb, 10)
    assert len(validations) == 20


def test_patch_n_processor_rows_stored_without_the_expression_machinery(
        patched: None, validations: list[Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    _processor_table(ddb)
    _processor_rows(ddb, 10)
    assert validations == []
    item = ddb.get_item(TableName="txns", Key={"transaction_id": {"S": "t-7"}})["Item"]
    assert item["amount"] == {"N": "7.25"} and item["currency"] == {"S": "USD"}
    assert ddb.scan(TableName="txns", Select="COUNT")["Count"] == 10
    # A row that exists by now is refused, as with moto's path (and AWS): nothing changes.
    store = TransactionStore(ddb, "txns")
    again = validate({"transaction_id": "t-7", "amount": "99.00",
                               "timestamp": "2024-08-09T12:34:56Z", "currency": "EUR"})
    assert store.create([again], "2024-08-09T13:00:00Z") == ({"t-7"}, set())
    item = ddb.get_item(TableName="txns", Key={"transaction_id": {"S": "t-7"}})["Item"]
    assert item["amount"] == {"N": "7.25"}


@pytest.fixture(scope="module")
def moto_update_item() -> Iterator[Callable[..., Any]]:
    """moto's own DynamoDBBackend.update_item, whatever other tests patched meanwhile."""
    from moto.dynamodb.models import DynamoDBBackend

    with motocompat.unpatched():
        yield DynamoDBBackend.__dict__["update_item"]


NAMES = {"#a": "a", "#b": "b", "#d": "d", "#e": "e", "#f": "f", "#k": "k", "#r": "r",
         "#g": "g", "#c": "a"}
VALUES = {":s": {"S": "x"}, ":e": {"S": ""}, ":n": {"N": "1.5"}, ":bad": {"N": "abc"},
          ":t": {"BOOL": True}, ":null": {"NULL": True}, ":nf": {"NULL": False},
          ":ss": {"SS": ["x"]}, ":empty": {"SS": []}, ":l": {"L": [{"S": "x"}]},
          ":big": {"S": "x" * 2048}, ":rn": {"N": "2"}, ":bin": {"B": b"\x00\x01"}}
#: What the processor sends: distinct top-level names, scalar values.
PLAIN_SETS = st.lists(st.tuples(st.sampled_from(["#a", "#b", "#d"]),
                                st.sampled_from([":s", ":e", ":n", ":t", ":null", ":rn",
                                                 ":bin", ":big"])),
                      min_size=1, max_size=3, unique_by=lambda pair: pair[0]).map(
    lambda pairs: "SET " + ", ".join(f"{n} = {v}" for n, v in pairs))
#: ... and REMOVE the optional fields it lacks (on a new item: nothing to remove).
REMOVES = st.lists(st.sampled_from(["#e", "#f", "#a", "#k", "#g", "#missing"]), max_size=3,
                   unique=True).map(lambda names: f" REMOVE {', '.join(names)}" if names else "")
EXPRESSIONS = st.one_of(
    st.tuples(PLAIN_SETS, REMOVES).map("".join),
    st.lists(st.tuples(st.sampled_from([*NAMES, "#missing"]),
                       st.sampled_from([*VALUES, ":missing"])), min_size=1, max_size=4).map(
        lambda pairs: "SET " + ", ".join(f"{n} = {v}" for n, v in pairs)),
    st.sampled_from(["set #a=:s", "SET #a = :s REMOVE #b", "SET a = :s", "SET #a = #b",
                     "SET #a = :n + :n", "REMOVE #a", "SET #a = :s,", "",
                     "SET #a = if_not_exists(#a, :s)", "ADD #a :n"]))
CONDITIONS = st.sampled_from([None, "attribute_not_exists(#k)", "attribute_exists(#k)",
                              "#a = :s", "attribute_not_exists(#a) AND #b <> :n"])
RIGHT_KEY: dict[str, Any] = {"k": {"S": "h"}}
ODD_KEYS = st.sampled_from([{"k": {"N": "1"}}, {"k": {"S": ""}}, {"z": {"S": "h"}},
                            {"k": {"S": "h"}, "z": {"S": "z"}}, {"k": {"S": "h" * 2100}},
                            {"k": {"S": "h"}, "r": {"S": "1"}}])


def _right_key(range_key: bool) -> dict[str, Any]:
    return {**RIGHT_KEY, "r": {"N": "1"}} if range_key else dict(RIGHT_KEY)


def _table(backend: Any, range_key: bool, index: bool) -> Any:
    schema = [{"AttributeName": "k", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "k", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "r", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "r", "AttributeType": "N"})
    indexes = None
    if index:
        attrs.append({"AttributeName": "g", "AttributeType": "S"})
        indexes = [{"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"}}]
    return backend.create_table("t", schema=schema, throughput=None, attr=attrs,
                                global_indexes=indexes, indexes=None, streams=None,
                                billing_mode="PAY_PER_REQUEST", sse_specification=None,
                                tags=[], deletion_protection_enabled=None,
                                warm_throughput=None)


def _outcome(backend: Any, call: Callable[..., Any], request: dict[str, Any]) -> tuple[Any, ...]:
    try:
        call(backend, "t", **request)
    except Exception as exc:  # the error moto would answer with
        return ("error", type(exc).__name__, str(getattr(exc, "message", exc)))
    table = backend.get_table("t")
    return ("ok", sorted(repr(item.to_json()) for item in table.all_items()))


def _compare(moto_update_item: Callable[..., Any], range_key: bool, index: bool,
             existing: bool, request: dict[str, Any]) -> bool:
    """Both paths on identical tables; asserts the same outcome; True if n's path was taken."""
    from moto.dynamodb.models import DynamoDBBackend

    from pipelinectl.localaws.motocompat_dynamodb import _plain_new_item

    outcomes, direct = [], False
    for call in (moto_update_item, created_directly(moto_update_item)):
        backend = DynamoDBBackend(REGION, ACCOUNT)
        table = _table(backend, range_key, index)
        if existing:
            table.put_item({**_right_key(range_key), "a": {"S": "old"}})
        direct = _plain_new_item(backend, "t", request["key"], request["update_expression"],
                                 request["expression_attribute_names"],
                                 request["expression_attribute_values"]) is not None
        outcomes.append(_outcome(backend, call, request))
    assert outcomes[0] == outcomes[1]
    return direct


EXAMPLES = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@EXAMPLES
@given(range_key=st.booleans(), index=st.booleans(), existing=st.booleans(),
       odd_key=st.one_of(st.none(), ODD_KEYS), expression=EXPRESSIONS, condition=CONDITIONS,
       names=st.dictionaries(st.sampled_from([*NAMES]), st.sampled_from(["a", "b", "k", "g"]),
                             max_size=2).map(lambda extra: {**NAMES, **extra}))
def test_patch_n_same_items_and_errors_as_moto_for_random_updates(
        moto_update_item: Callable[..., Any], range_key: bool, index: bool, existing: bool,
        odd_key: dict[str, Any] | None, expression: str, condition: str | None,
        names: dict[str, str]) -> None:
    _compare(moto_update_item, range_key, index, existing, {
        "key": odd_key or _right_key(range_key), "update_expression": expression,
        "expression_attribute_names": names, "expression_attribute_values": dict(VALUES),
        "condition_expression": condition})


@EXAMPLES
@given(range_key=st.booleans(), index=st.booleans(), expression=PLAIN_SETS,
       condition=CONDITIONS,
       removes=st.lists(st.sampled_from(["#e", "#f"]), unique=True).map(", ".join))
def test_patch_n_new_items_of_plain_sets_take_the_direct_path(
        moto_update_item: Callable[..., Any], range_key: bool, index: bool, expression: str,
        condition: str | None, removes: str) -> None:
    """The processor's form on a new item: stored directly, with moto's items and errors
    (a failed condition included)."""
    assert _compare(moto_update_item, range_key, index, False, {
        "key": _right_key(range_key),
        "update_expression": expression + (f" REMOVE {removes}" if removes else ""),
        "expression_attribute_names": dict(NAMES),
        "expression_attribute_values": dict(VALUES), "condition_expression": condition})


# ---------------------------------------------------------------- o. one parse per expression


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The texts moto tokenizes (the first step of every parse)."""
    from moto.dynamodb.parsing.tokens import ExpressionTokenizer

    return _record_calls(monkeypatch, ExpressionTokenizer, "make_list",
                         record=lambda text: text, static=True)


def test_defect_o_moto_parses_an_update_expression_per_action(
        plain_moto: None, parses: list[Any]) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    _processor_table(ddb)
    _processor_rows(ddb, 10)
    assert len(parses) == 10 * 2 and len(set(parses)) == 1  # the same text each time


def test_patch_o_each_expression_parsed_once(patched: None, parses: list[Any]) -> None:
    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
        UpdateExpressionParser,
    )

    UpdateExpressionParser.make.cache_clear()  # earlier tests may have parsed the same text
    ddb = boto3.client("dynamodb", region_name=REGION)
    _processor_table(ddb)
    _processor_rows(ddb, 10)
    assert len(parses) == 1
    # Existing items still go through moto's validation of the (shared) parsed tree: an
    # update that sets the key is refused as AWS does, and the cached tree is unharmed.
    for _ in range(2):
        with pytest.raises(ddb.exceptions.ClientError, match="part of the key"):
            ddb.update_item(TableName="txns", Key={"transaction_id": {"S": "t-1"}},
                            UpdateExpression="SET #k = :v",
                            ExpressionAttributeNames={"#k": "transaction_id"},
                            ExpressionAttributeValues={":v": {"S": "x"}})
    ddb.update_item(TableName="txns", Key={"transaction_id": {"S": "t-1"}},
                    UpdateExpression="SET #c = :c", ExpressionAttributeNames={"#c": "currency"},
                    ExpressionAttributeValues={":c": {"S": "EUR"}})
    item = ddb.get_item(TableName="txns", Key={"transaction_id": {"S": "t-1"}})["Item"]
    assert item["currency"] == {"S": "EUR"}


# ------------------------------------------------------- p. the server lists moto's directory


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Listings of moto's own package directory (imports list other directories)."""
    return _record_calls(monkeypatch, os, "listdir", record=lambda path=".": (
        str(path) if str(path).endswith("moto") else None))


def _route_requests(count: int) -> list[Any]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    return [app.get_backend_for_host(host) for host in ["dynamodb", "sqs"] * (count // 2)]


def test_defect_p_moto_lists_its_package_directory_per_request(
        plain_moto: None, listings: list[Any]) -> None:
    assert _route_requests(10) == ["dynamodb", "sqs"] * 5
    assert len(listings) == 10


def test_patch_p_listed_once(patched: None, listings: list[Any]) -> None:
    from moto import backends

    cast(Any, backends.list_of_moto_modules).cache_clear()
    assert _route_requests(10) == ["dynamodb", "sqs"] * 5
    assert len(listings) == 1


# ----------------------------------------------- q. reads that iterate a table during writes


def _count_while_a_row_is_written() -> tuple[Any, threading.Thread, threading.Event]:
    """DescribeTable (which counts the items) paused mid-count while another thread stores a
    new row: (the DescribeTable outcome, the writer, set once the writer's put returned)."""
    from moto.dynamodb.models import dynamodb_backends

    ddb = boto3.client("dynamodb", region_name=REGION)
    _processor_table(ddb)
    _processor_rows(ddb, 3)
    backend = dynamodb_backends[ACCOUNT][REGION]
    table = backend.get_table("txns")
    paused, wrote = threading.Event(), threading.Event()

    class PausingItems(dict):  # type: ignore[type-arg]
        def values(self) -> Any:  # type: ignore[override]
            view = iter(dict.values(self))
            yield next(view)
            paused.set()
            wrote.wait(0.5)  # a writer that can get in does so within this
            yield from view

    table.items = PausingItems(table.items)

    def write() -> None:
        paused.wait(5)
        backend.put_item("txns", {"transaction_id": {"S": "t-new"}})
        wrote.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        outcome: Any = backend.describe_table("txns")["Table"]["ItemCount"]
    except RuntimeError as exc:
        outcome = exc
    return outcome, writer, wrote


def test_defect_q_moto_counts_items_while_a_write_lands(plain_moto: None) -> None:
    outcome, writer, wrote = _count_while_a_row_is_written()
    writer.join(5)
    assert wrote.is_set()  # the write landed in the middle of the count
    assert isinstance(outcome, RuntimeError)
    assert "changed size during iteration" in str(outcome)


def test_patch_q_a_count_waits_for_the_write_and_sees_whole_items(patched: None) -> None:
    outcome, writer, wrote = _count_while_a_row_is_written()
    assert outcome == 3  # the write waited: it could not land within the 0.5 s pause
    writer.join(5)
    assert wrote.is_set() and not writer.is_alive()  # and landed right after
    ddb = boto3.client("dynamodb", region_name=REGION)
    assert ddb.describe_table(TableName="txns")["Table"]["ItemCount"] == 4
