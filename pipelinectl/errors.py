"""Our error types, and the one place that turns botocore errors into them.

Every failure a user can see is one sentence saying what is wrong and what to do next. The CLI
prints `str(error)` and exits with `error.exit_code`; tracebacks only with `-v`.
"""

from __future__ import annotations

import re
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class PipelineError(Exception):
    """An operational failure the user can act on (exit 1)."""

    exit_code = EXIT_FAILURE


class UsageError(PipelineError):
    """Bad input: flags, configuration, names (exit 2)."""

    exit_code = EXIT_USAGE


class NotOursError(PipelineError):
    """A resource with our name exists but lacks our tag: we must not touch it."""


_NOT_AUTHORIZED = re.compile(r"not authorized to perform:?\s*([\w-]+:[\w*]+)")
_THROTTLING = {"Throttling", "ThrottlingException", "TooManyRequestsException",
               "RequestLimitExceeded", "ProvisionedThroughputExceededException"}


def translate(error: BaseException, *, endpoint: str | None = None) -> PipelineError:
    """Map a botocore/boto3 exception to a PipelineError with a next step.

    Unknown errors keep AWS's own message: it is usually the most precise sentence available.
    """
    if isinstance(error, PipelineError):
        return error
    import botocore.exceptions as bex

    if isinstance(error, bex.NoCredentialsError | bex.PartialCredentialsError):
        return PipelineError(
            "No AWS credentials found: run `aws configure`, set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --local for the embedded AWS."
        )
    if isinstance(error, bex.ProfileNotFound):
        return UsageError(f"{error}: check --profile / AWS_PROFILE against ~/.aws/config.")
    if isinstance(error, bex.NoRegionError):
        return UsageError("No AWS region is set: pass --region or set AWS_REGION.")
    if isinstance(error, bex.EndpointConnectionError | bex.ConnectionClosedError):
        where = endpoint or getattr(error, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        hint = (
            " Start it with `pipelinectl local`."
            if endpoint and "127.0.0.1" in endpoint
            else " Check --endpoint-url / AWS_ENDPOINT_URL and your network."
        )
        return PipelineError(f"Cannot reach {where}.{hint}")
    if isinstance(error, bex.ClientError):
        return _not_aws(error, endpoint) or _translate_client_error(error)
    from botocore.parsers import ResponseParserError

    if isinstance(error, ResponseParserError):
        return _not_aws(error, endpoint) or PipelineError(f"{error}.")
    if isinstance(error, bex.BotoCoreError):
        return PipelineError(f"{error}.")
    return PipelineError(f"{type(error).__name__}: {error}")


_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)


def _not_aws(error: Any, endpoint: str | None) -> PipelineError | None:
    """An endpoint that answers with an HTML page (a proxy, a crashed emulator, the wrong
    URL) is not AWS: botocore puts the page in the message, or fails to parse it. One
    sentence instead: the status, the page's title, and what to check."""
    response = getattr(error, "response", None) or {}
    err = response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", ""))
    text = message if response else str(error)
    if response and not (code.isdigit() or message.lstrip().startswith("<")):
        return None
    if not response and "<html" not in text.lower() and "<!doctype" not in text.lower():
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or code
    match = _TITLE.search(text)
    title = f" ({match.group(1)[:80]})" if match else ""
    operation = getattr(error, "operation_name", "") or "A call"
    where = endpoint or "the endpoint"
    return PipelineError(
        f"{operation} failed: {where} answered {f'HTTP {status} ' if status else ''}with a "
        f"page that is not an AWS response{title}; check that --endpoint-url / "
        "AWS_ENDPOINT_URL is an AWS-compatible endpoint that serves this service and region, "
        "and see its own log."
    )


def _translate_client_error(error: Any) -> PipelineError:
    err = error.response.get("Error", {})
    code = str(err.get("Code", ""))
    message = str(err.get("Message", "")).rstrip(".")
    operation = getattr(error, "operation_name", "the call")
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                "AuthorizationError", "AuthorizationErrorException"} or "not authorized" in message:
        match = _NOT_AUTHORIZED.search(message)
        permission = match.group(1) if match else _permission_for(error)
        return PipelineError(
            f"Access denied: your credentials lack {permission}; grant it to this identity "
            "(or use a profile that has it) and re-run."
        )
    if code in {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId"}:
        return PipelineError(
            f"AWS rejected your credentials ({code}): refresh them (e.g. `aws sso login`) "
            "and re-run."
        )
    if code in _THROTTLING:
        return PipelineError(f"AWS throttled {operation} ({code}); wait a moment and re-run.")
    return PipelineError(f"{operation} failed: {code}: {message}.")


def _permission_for(error: Any) -> str:
    """AWS does not always name the action (S3 never does); the operation is what we know."""
    return f"the permission for {getattr(error, 'operation_name', 'this call')}"
