"""CloudWatch Logs filter patterns the way AWS evaluates them (a moto patch, see motocompat.py).

moto's FilterLogEvents understands a single bare term and one quoted phrase; every other
pattern - a JSON pattern such as ``{ $.transaction_id = "t-1" }``, an OR of terms
``?"RequestId: a" ?"RequestId: b"``, an exclusion ``-term`` - matches *every* event. Code that
searched with those patterns would look right locally and be wrong (or slow) on AWS, so this
module evaluates the subset of AWS's syntax the pipeline uses, as the CloudWatch Logs User
Guide describes it ("Filter pattern syntax for metric filters, subscription filters, filter
log events, and Live Tail"; "Using filter patterns to match terms in JSON log events";
"Match terms in unstructured log events"):

- terms: every term must appear (case-sensitive); ``"a phrase"`` matches exactly;
  ``?a ?b`` matches events with any of them; ``-a`` excludes events with ``a``;
- JSON: ``{ SELECTOR OP VALUE }`` joined by ``&&`` / ``||`` and grouped with parentheses,
  SELECTOR ``$.a.b`` or ``$.a[0]``, OP ``=`` / ``!=`` on strings (``*`` is a wildcard, the
  value quoted or not) and ``=`` ``!=`` ``<`` ``>`` ``<=`` ``>=`` on numbers; ``IS TRUE``,
  ``IS FALSE``, ``IS NULL``, ``NOT EXISTS``. Events that are not JSON objects never match a
  JSON pattern, and a selector that names nothing makes its comparison false.

Space-delimited (``[...]``) and regular-expression (``%...%``) patterns are left to moto,
which matches everything for them; the pipeline does not use them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[str], bool]
_TOKEN = re.compile(r'\s*(?:(\|\||&&|\(|\)|!=|>=|<=|=|<|>)|("(?:[^"\\]|\\.)*")'
                    r'|([^\s=!<>()&|"]+))')
_TERM = re.compile(r'\s*([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_MISSING = object()


class PatternError(ValueError):
    """The pattern is not one AWS would accept (AWS answers InvalidParameterException)."""


@functools.lru_cache(maxsize=256)  # moto builds one filter per event it looks at
def compile_pattern(pattern: str) -> Predicate | None:
    """A predicate over log messages, or None for a form left to moto (``[...]``, ``%...%``)."""
    text = pattern.strip()
    if not text:
        return lambda _message: True
    if text.startswith("{"):
        if not text.endswith("}"):
            raise PatternError(f"unbalanced JSON filter pattern: {pattern!r}")
        return _json_predicate(text[1:-1])
    if text.startswith(("[", "%")):
        return None
    return _terms_predicate(text)


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def _terms_predicate(text: str) -> Predicate:
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    for match in _TERM.finditer(text):
        prefix, quoted, bare = match.groups()
        term = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        {"": required, "?": optional, "-": excluded}[prefix].append(term)

    def matches(message: str) -> bool:
        if any(term in message for term in excluded):
            return False
        if optional and not any(term in message for term in optional):
            return False
        return all(term in message for term in required)

    return matches


def _json_predicate(body: str) -> Predicate:
    tokens = _tokens(body)
    parser = _Parser(tokens)
    test = parser.expression()
    if parser.position != len(tokens):
        raise PatternError(f"unexpected {tokens[parser.position]!r} in a JSON filter pattern")

    def matches(message: str) -> bool:
        try:
            doc = json.loads(message)
        except ValueError:
            return False
        return isinstance(doc, dict) and test(doc)

    return matches


def _tokens(body: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(body):
        match = _TOKEN.match(body, position)
        if match is None or match.end() == position:
            if body[position:].strip():
                raise PatternError(f"cannot read the JSON filter pattern at {body[position:]!r}")
            break
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


class _Parser:
    """``or := and ('||' and)*``, ``and := atom ('&&' atom)*``, ``atom := '(' or ')' | test``."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.position = tokens, 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise PatternError("the JSON filter pattern ends too early")
        self.position += 1
        return token

    def expression(self) -> Callable[[Any], bool]:
        terms = [self._conjunction()]
        while self._peek() == "||":
            self._take()
            terms.append(self._conjunction())
        return lambda doc: any(term(doc) for term in terms)

    def _conjunction(self) -> Callable[[Any], bool]:
        terms = [self._atom()]
        while self._peek() == "&&":
            self._take()
            terms.append(self._atom())
        return lambda doc: all(term(doc) for term in terms)

    def _atom(self) -> Callable[[Any], bool]:
        if self._peek() == "(":
            self._take()
            inner = self.expression()
            if self._take() != ")":
                raise PatternError("unbalanced parentheses in the JSON filter pattern")
            return inner
        selector = self._take()
        if not selector.startswith("$"):
            raise PatternError(f"a JSON filter pattern compares $.fields, got {selector!r}")
        path = _path(selector)
        operator = self._take()
        if operator.upper() in ("IS", "NOT"):
            word = self._take().upper()
            return _special(path, operator.upper(), word)
        return _comparison(path, operator, self._take())


def _path(selector: str) -> list[str | int]:
    steps: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", selector[1:]):
        steps.append(int(index) if index else name)
    return steps


def _select(doc: Any, path: list[str | int]) -> Any:
    node = doc
    for step in path:
        listed = isinstance(step, int) and isinstance(node, list) and step < len(node)
        if not (listed or (isinstance(step, str) and isinstance(node, dict) and step in node)):
            return _MISSING
        node = node[step]
    return node


def _special(path: list[str | int], operator: str, word: str) -> Callable[[Any], bool]:
    if operator == "NOT" and word == "EXISTS":
        return lambda doc: _select(doc, path) is _MISSING
    constants = {"TRUE": True, "FALSE": False, "NULL": None}
    if operator != "IS" or word not in constants:
        raise PatternError(f"unknown JSON filter test {operator} {word}")
    wanted = constants[word]
    return lambda doc: (value := _select(doc, path)) is not _MISSING and value is wanted


def _comparison(path: list[str | int], operator: str, raw: str) -> Callable[[Any], bool]:
    if operator not in ("=", "!=", "<", ">", "<=", ">="):
        raise PatternError(f"unknown operator {operator!r} in the JSON filter pattern")
    quoted = raw.startswith('"')
    text = _unquote(raw) if quoted else raw
    number = None if quoted else _number(text)
    if number is None and operator not in ("=", "!="):
        raise PatternError(f"{operator} needs a number, got {raw!r}")
    wildcard = (re.compile(".*".join(map(re.escape, text.split("*"))), re.DOTALL)
                if "*" in text else None)

    def test(doc: Any) -> bool:
        value = _select(doc, path)
        if value is _MISSING or isinstance(value, dict | list):
            return False
        if number is not None and isinstance(value, int | float) and not isinstance(value, bool):
            return _numeric(float(value), operator, number)
        shown = value if isinstance(value, str) else json.dumps(value)
        same = bool(wildcard.fullmatch(shown)) if wildcard else shown == text
        return same if operator == "=" else (not same if operator == "!=" else False)

    return test


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(value: float, operator: str, number: float) -> bool:
    return {"=": value == number, "!=": value != number, "<": value < number,
            ">": value > number, "<=": value <= number, ">=": value >= number}[operator]


def filter_with_aws_patterns(original: type) -> type:
    """moto's ``EventMessageFilter`` with AWS's evaluation of the patterns above."""

    class EventMessageFilter(original):  # type: ignore[misc]
        def __init__(self, pattern: str) -> None:
            from moto.logs.exceptions import InvalidParameterException

            super().__init__(pattern)
            try:
                self._aws = compile_pattern(pattern or "")
            except PatternError as exc:  # AWS: 400 InvalidParameterException
                raise InvalidParameterException(f"Invalid filter pattern: {exc}") from None

        def matches(self, message: str) -> bool:
            if self._aws is None:
                return bool(super().matches(message))
            return self._aws(message)

    return EventMessageFilter
