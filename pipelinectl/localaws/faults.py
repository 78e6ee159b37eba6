"""Fault injection for the local AWS: ``pipelinectl local --faults SPEC`` and
``/_pipelinectl/faults``.

Partial batch failures, retries and the exactly-once alert exist for throttling, 5xx answers
and timeouts, which moto never produces. A SPEC names operations and what happens to them::

    SPEC   := RULE (";" RULE)*
    RULE   := TARGET "=" FAULT ["@" AMOUNT]
    TARGET := SERVICE ":" OPERATION ("|" OPERATION)*    boto3 service name; operation globs
            | "invoke:" FUNCTION                         a Lambda function (name glob)
    FAULT  := "throttle" | "5xx" | CODE | "slow:" SECONDS        (API operations)
            | "timeout" | "crash"                                (invoke: targets)
    AMOUNT := PERCENT "%" (each matching call, independently) | COUNT (the next COUNT calls)

e.g. ``dynamodb:BatchWriteItem|UpdateItem=throttle@5%; sns:Publish*=ServiceUnavailable@2%;
invoke:*=timeout@1%``. An error fault answers *instead of* moto (nothing is applied), in
the error shape of the service's protocol (faultwire.py). Calls the local AWS makes itself
(its poller, logs, metrics, alarms) are never faulted: they stand for AWS's own internals.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: The user agent fragment of the local AWS's own clients (never faulted).
INTERNAL_AGENT = "pipelinectl-localaws"
ADMIN_PATH = "/_pipelinectl/faults"
METRIC_NAMESPACE = "pipelinectl/LocalAWS"

# Error codes and their HTTP status, as AWS documents them: DynamoDB Developer Guide "Error
# handling with DynamoDB" (ProvisionedThroughputExceededException and ThrottlingException 400,
# InternalServerError 500, ServiceUnavailable 503); the AWS API "Common Errors" (ThrottlingException
# 400, InternalFailure 500, ServiceUnavailable 503; query-protocol services such as SNS and
# CloudWatch answer "Throttling"); SNS Publish "InternalError" 500; Lambda
# TooManyRequestsException 429 and ServiceException 500; S3 "SlowDown" 503 and "InternalError"
# 500; SQS "RequestThrottled" (SQS API reference, common errors).
CODES: dict[str, int] = {
    "ProvisionedThroughputExceededException": 400, "ThrottlingException": 400,
    "Throttling": 400, "RequestThrottled": 400, "TooManyRequestsException": 429,
    "SlowDown": 503, "InternalServerError": 500, "InternalFailure": 500, "InternalError": 500,
    "ServiceException": 500, "ServiceUnavailable": 503,
}
THROTTLE_CODE = {"dynamodb": "ProvisionedThroughputExceededException", "sns": "Throttling",
                 "cloudwatch": "Throttling", "iam": "Throttling", "sts": "Throttling",
                 "sqs": "RequestThrottled", "lambda": "TooManyRequestsException",
                 "s3": "SlowDown"}
SERVER_CODE = {"dynamodb": "InternalServerError", "sns": "InternalError", "s3": "InternalError",
               "sqs": "InternalError", "lambda": "ServiceException"}
INVOKE_FAULTS = ("timeout", "crash")
_RULE = re.compile(r"^(?P<service>[a-z0-9-]+):(?P<ops>[^=]+)=(?P<fault>[^@]+)(?:@(?P<amount>.+))?$")


class FaultSpecError(ValueError):
    """A SPEC that does not parse; the message says what to write instead."""


@dataclass
class Rule:
    """One RULE of a SPEC, with its counters."""

    text: str
    service: str
    operations: tuple[str, ...]
    fault: str  # an error code, "slow", "timeout" or "crash"
    delay: float = 0.0
    rate: float | None = None
    count: int | None = None
    matched: int = 0
    injected: int = 0

    def matches(self, service: str, operation: str) -> bool:
        return service == self.service and any(
            fnmatch.fnmatchcase(operation, pattern) for pattern in self.operations)

    def fires(self, rng: random.Random) -> bool:
        """Called with the Faults lock held: whether this matching call is faulted."""
        self.matched += 1
        if self.count is not None:
            hit = self.injected < self.count
        else:
            hit = rng.random() < (1.0 if self.rate is None else self.rate)
        self.injected += hit
        return hit

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.text, "matched": self.matched, "injected": self.injected}


def parse_spec(spec: str) -> list[Rule]:
    """The rules of a SPEC (grammar in the module docstring); FaultSpecError if malformed."""
    return [_parse_rule(part.strip()) for part in spec.split(";") if part.strip()]


def _parse_rule(text: str) -> Rule:
    match = _RULE.match(text.replace(" ", ""))
    if match is None:
        raise FaultSpecError(f"fault rule {text!r} is not SERVICE:OPERATION=FAULT[@AMOUNT], "
                             "e.g. dynamodb:BatchWriteItem=throttle@5%")
    service, fault = match["service"], match["fault"]
    service = "cloudwatch" if service == "monitoring" else service
    rule = Rule(text, service, tuple(match["ops"].split("|")), fault)
    if service == "invoke":
        if fault not in INVOKE_FAULTS:
            raise FaultSpecError(f"fault rule {text!r}: an invoke: target takes timeout or "
                                 "crash")
    elif fault.startswith("slow:"):
        rule.fault, rule.delay = "slow", _number(text, fault[5:].rstrip("s"), 0.0, 300.0)
    elif fault in ("throttle", "5xx"):
        table = THROTTLE_CODE if fault == "throttle" else SERVER_CODE
        rule.fault = table.get(service, "ThrottlingException" if fault == "throttle"
                               else "InternalFailure")
    elif fault not in CODES:
        raise FaultSpecError(f"fault rule {text!r}: unknown fault {fault!r}; use throttle, "
                             f"5xx, slow:SECONDS or one of {', '.join(sorted(CODES))}")
    amount = match["amount"]
    if amount is not None and amount.endswith("%"):
        rule.rate = _number(text, amount[:-1], 0.0, 100.0) / 100
    elif amount is not None:
        if not amount.isdigit():
            raise FaultSpecError(f"fault rule {text!r}: the amount is PERCENT% or a COUNT, "
                                 f"not {amount!r}")
        rule.count = int(amount)
    return rule


def _number(text: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FaultSpecError(f"fault rule {text!r}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise FaultSpecError(f"fault rule {text!r}: {raw} is outside {low:g}-{high:g}")
    return value


@dataclass(frozen=True)
class Cut:
    """An injected end of an invocation: the worker is killed ``after`` seconds into it (or as
    it answers, if sooner: its answer is then lost, as when the sandbox dies before the reply
    reaches Lambda)."""

    kind: str  # "timeout" or "crash"
    after: float
    rule: str


@dataclass
class Faults:
    """The active rules, their counters, the recent injections and the metrics to put."""

    seed: int | None = None
    rules: list[Rule] = field(default_factory=list)
    spec: str = ""
    total: int = 0
    _recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    _unshipped: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _durations: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def configure(self, spec: str, seed: int | None = None) -> None:
        rules = parse_spec(spec)
        with self._lock:
            self.rules, self.spec = rules, spec
            if seed is not None:
                self._rng.seed(seed)
        if rules:
            log.info("fault injection: %s", spec, extra={"activity": "fault"})

    def request(self, service: str, operation: str) -> Rule | None:
        """The rule that faults this API call, if any (the call is counted as injected)."""
        with self._lock:
            for rule in self.rules:
                if rule.service != "invoke" and rule.matches(service, operation) and \
                        rule.fires(self._rng):
                    self._note(service, operation, rule)
                    return rule
        return None

    def invocation(self, function: str) -> Cut | None:
        """An injected timeout or crash for this invocation of ``function``, if any."""
        with self._lock:
            for rule in self.rules:
                if rule.service == "invoke" and rule.matches("invoke", function) and \
                        rule.fires(self._rng):
                    self._note("lambda", function, rule)
                    typical = self._durations.get(function, 0.2)
                    return Cut(rule.fault, self._rng.uniform(0.0, typical), rule.text)
        return None

    def observed(self, function: str, seconds: float) -> None:
        """A normal invocation's duration: cuts land within a typical invocation."""
        with self._lock:
            old = self._durations.get(function)
            self._durations[function] = seconds if old is None else 0.8 * old + 0.2 * seconds

    def _note(self, service: str, operation: str, rule: Rule) -> None:
        self.total += 1
        self._unshipped[(service, operation, rule.fault)] += 1
        self._recent.append({"time": time.time(), "service": service, "operation": operation,
                             "fault": rule.fault, "rule": rule.text})
        shown = f"{rule.fault} {rule.delay:g}s" if rule.fault == "slow" else rule.fault
        what = f"λ {operation}" if rule.service == "invoke" else f"{service} {operation}"
        log.info("injected fault: %s → %s (%s)", what, shown, rule.text,
                 extra={"activity": "fault"})

    def state(self) -> dict[str, Any]:
        """What ``GET /_pipelinectl/faults`` answers."""
        with self._lock:
            return {"spec": self.spec, "injected": self.total,
                    "rules": [rule.as_dict() for rule in self.rules],
                    "recent": list(self._recent)}

    def metric_data(self) -> list[dict[str, Any]]:
        """``InjectedFaults`` datums (Sum) for what was injected since the last call."""
        with self._lock:
            counts, self._unshipped = self._unshipped, Counter()
        return [{"MetricName": "InjectedFaults", "Value": float(n), "Unit": "Count",
                 "Dimensions": [{"Name": "Service", "Value": service},
                                {"Name": "Operation", "Value": operation},
                                {"Name": "Fault", "Value": fault}]}
                for (service, operation, fault), n in sorted(counts.items())]
