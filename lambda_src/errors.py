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

MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404"})
DENIED_CODES = frozenset({"AccessDenied", "403"})
#: GetObject with If-Match on an object whose ETag changed (S3 API Reference, GetObject,
#: If-Match: "otherwise, return a 412 Precondition Failed error").
REPLACED_CODES = frozenset({"PreconditionFailed", "412"})
#: Rejected codes that say the object (this version of it) is gone, not that it is invalid.
OBJECT_GONE = frozenset({"object_not_found", "object_replaced"})

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


def object_read_error(exc: Exception, uri: str) -> Exception:
    """What a failed GetObject (whole or ranged) means for the file: gone or replaced
    (Rejected: retrying cannot help), not readable yet (TransientError), or the error as is."""
    code = error_code(exc)
    if code in MISSING_OBJECT_CODES:
        return Rejected("object_not_found", f"{uri} does not exist ({code})")
    if code in REPLACED_CODES:
        return Rejected("object_replaced", f"{uri} was replaced ({code})")
    if code in DENIED_CODES:
        # The role may list incoming/ (s3:ListBucket), so a missing object answers 404
        # (S3 API Reference, GetObject, "Permissions"): a 403 is a denial that can pass (IAM
        # changes propagate in seconds, a key grant is being added), so it is retried; the
        # queue's redrive policy bounds the retries.
        return TransientError(f"{uri} is not readable by the function yet ({code}); "
                              "will retry")
    return exc
