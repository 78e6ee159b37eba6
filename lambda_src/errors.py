"""The three ways a record can go wrong, and how a botocore error maps onto them.

The distinction drives everything the handler does with a failure:

- :class:`Rejected` - the *content* is wrong and retrying cannot help: rows go to the
  rejects object, messages to the DLQ with the reason, and the SQS record is acknowledged;
- :class:`TransientError` - the content may be fine but AWS said "not now" (throttling,
  timeouts, 5xx, or a concurrent invocation holds the alert claim): the SQS record becomes a
  batch item failure so SQS redelivers only it;
- anything else is a bug or misconfiguration and is also reported as a batch item failure,
  so the record is retried and finally redriven to the DLQ by the queue's redrive policy.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionConflictException",
        "KMSThrottlingException",
        "KMSThrottling",
    }
)

NETWORK_ERRORS: tuple[type[Exception], ...] = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)


class Rejected(Exception):
    """Invalid content: carries a stable machine code and a human reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class TransientError(Exception):
    """Retry later: the record is reported as a batch item failure."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """True for errors a later retry can fix: throttling, timeouts, network and 5xx."""
    if isinstance(exc, NETWORK_ERRORS):
        return True
    if isinstance(exc, ClientError):
        meta: dict[str, Any] = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False
