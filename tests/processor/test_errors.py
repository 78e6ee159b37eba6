"""The failure taxonomy: which botocore errors count as transient."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from lambda_src.errors import error_code, is_transient


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(("exc", "transient"), [
    (client_error("ProvisionedThroughputExceededException", 400), True),
    (client_error("ThrottlingException", 400), True),
    (client_error("SlowDown", 503), True),
    (client_error("Whatever", 500), True),
    (ReadTimeoutError(endpoint_url="https://x"), True),
    (EndpointConnectionError(endpoint_url="https://x"), True),
    (client_error("AccessDeniedException", 400), False),
    (client_error("ResourceNotFoundException", 400), False),
    (ValueError("bug"), False),
])
def test_is_transient(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_error_code() -> None:
    assert error_code(client_error("SlowDown", 503)) == "SlowDown"
    assert error_code(ValueError("x")) == "ValueError"
