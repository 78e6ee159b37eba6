"""IAM policy condition evaluation, as IAM documents it (used by the bucket policy patch and by
the policy evaluator in ``policy.py``)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def _like(pattern: str, value: str) -> bool:
    return _wildcard(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """IAM's ``*`` and ``?``, compiled once per pattern: every request the local AWS
    authorizes matches each statement's actions and resources."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def _number(text: str) -> float:
    return float(text)


def _date(text: str) -> float:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _ip(expected: str, actual: str) -> bool:
    return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)


_Match = Callable[[str, str], bool]  # (policy value, request value) -> match
_POSITIVE: dict[str, _Match] = {
    "stringequals": lambda e, a: e == a,
    "stringequalsignorecase": lambda e, a: e.lower() == a.lower(),
    "stringlike": _like,
    "numericequals": lambda e, a: _number(a) == _number(e),
    "numericlessthan": lambda e, a: _number(a) < _number(e),
    "numericlessthanequals": lambda e, a: _number(a) <= _number(e),
    "numericgreaterthan": lambda e, a: _number(a) > _number(e),
    "numericgreaterthanequals": lambda e, a: _number(a) >= _number(e),
    "dateequals": lambda e, a: _date(a) == _date(e),
    "datelessthan": lambda e, a: _date(a) < _date(e),
    "datelessthanequals": lambda e, a: _date(a) <= _date(e),
    "dategreaterthan": lambda e, a: _date(a) > _date(e),
    "dategreaterthanequals": lambda e, a: _date(a) >= _date(e),
    "bool": lambda e, a: e.lower() == a.lower(),
    "binaryequals": lambda e, a: e == a,
    "ipaddress": _ip,
    "arnequals": _like,  # AWS: ArnEquals and ArnLike behave the same
    "arnlike": _like,
}
_NEGATED: dict[str, str] = {
    "stringnotequals": "stringequals",
    "stringnotequalsignorecase": "stringequalsignorecase",
    "stringnotlike": "stringlike",
    "numericnotequals": "numericequals",
    "datenotequals": "dateequals",
    "notipaddress": "ipaddress",
    "arnnotequals": "arnequals",
    "arnnotlike": "arnlike",
}


def _as_strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


def _condition_met(operator: str, expected: list[str], actual: list[str] | None) -> bool:
    """One operator on one key, following IAM's documented evaluation rules."""
    op = operator.lower()
    qualifier = ""
    if ":" in op:
        qualifier, op = op.split(":", 1)
    if_exists = op.endswith("ifexists")
    op = op.removesuffix("ifexists")
    if op == "null":
        return (actual is None) == (expected[0].lower() == "true")
    negated = op in _NEGATED
    match = _POSITIVE.get(_NEGATED.get(op, op))
    if match is None:
        log.warning("condition operator %s is not supported; treating it as not met", operator)
        return False
    if actual is None:
        return if_exists or negated or qualifier == "forallvalues"

    def one(value: str) -> bool:
        try:
            hit = any(match(e, value) for e in expected)
        except ValueError:
            hit = False
        return not hit if negated else hit

    if qualifier == "forallvalues":
        return all(one(v) for v in actual)
    return any(one(v) for v in actual)


def conditions_met(condition_block: dict[str, Any], context: dict[str, list[str]]) -> bool:
    """True when every operator/key pair of a policy ``Condition`` block holds for ``context``.

    ``context`` maps lower-cased condition keys to their request values. Supported: String*,
    Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*, Null, the ``IfExists``
    suffix and the ``ForAllValues:``/``ForAnyValue:`` prefixes. A missing key fails positive
    operators and satisfies negated ones, as IAM documents. Unknown operators are not met.
    """
    return unmet_condition(condition_block, context) is None


def unmet_condition(condition_block: dict[str, Any],
                    context: dict[str, list[str]]) -> str | None:
    """The first operator/key pair of a ``Condition`` block that does not hold, described for
    a person (``StringEquals aws:SourceAccount: key absent from the request``), or None when
    every pair holds (the same rules as :func:`conditions_met`)."""
    for operator, pairs in condition_block.items():
        for key, expected in pairs.items():
            actual = context.get(key.lower())
            if not _condition_met(operator, _as_strings(expected), actual):
                got = "key absent from the request" if actual is None else f"request has {actual}"
                return f"{operator} {key} {_as_strings(expected)}: {got}"
    return None
