"""The HTTP side of fault injection: a WSGI layer in front of moto that recognises each
request's service and operation, answers a faulted one with AWS's error shape for that
service's protocol, and serves the ``/_pipelinectl/faults`` admin endpoint.

Error shapes, as AWS sends them (and botocore parses them into ``ClientError`` codes):
JSON protocol (DynamoDB, SQS, Logs, KMS, EventBridge) ``{"__type": "<namespace>#Code",
"message": ...}`` (the DynamoDB Developer Guide, "Error handling", shows this exact form);
query protocol (SNS, IAM, STS) ``<ErrorResponse><Error><Type/><Code/><Message/></Error>``;
rest-json (Lambda) the ``x-amzn-ErrorType`` header; rest-xml (S3) ``<Error><Code/>``;
Smithy RPC v2 CBOR (CloudWatch) a CBOR map with ``__type``.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from pipelinectl.localaws.faults import ADMIN_PATH, CODES, INTERNAL_AGENT, Faults, FaultSpecError

Wsgi = Callable[[dict[str, Any], Any], Iterable[bytes]]
_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_SIGNING_TO_CLIENT = {"monitoring": "cloudwatch", "email": "ses"}
_LAMBDA_PATHS = (  # Lambda REST paths of the operations a pipeline uses (API reference)
    ("POST", re.compile(r"^/2015-03-31/functions/[^/]+/invocations$"), "Invoke"),
    ("GET", re.compile(r"^/2015-03-31/functions/[^/]+$"), "GetFunction"),
    ("POST", re.compile(r"^/2015-03-31/functions/?$"), "CreateFunction"),
    ("PUT", re.compile(r"^/2015-03-31/functions/[^/]+/configuration$"),
     "UpdateFunctionConfiguration"),
    ("PUT", re.compile(r"^/2015-03-31/functions/[^/]+/code$"), "UpdateFunctionCode"),
    ("PUT", re.compile(r"^/2017-10-31/functions/[^/]+/concurrency$"), "PutFunctionConcurrency"),
    ("POST", re.compile(r"^/2015-03-31/event-source-mappings/?$"), "CreateEventSourceMapping"),
)
_S3_OBJECT_OPS = {"GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject",
                  "HEAD": "HeadObject"}


def _service(environ: dict[str, Any]) -> str | None:
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return None
    return _SIGNING_TO_CLIENT.get(match[1], match[1])


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back so moto reads it too."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def operation(environ: dict[str, Any], service: str) -> str:
    """The API operation a request calls ('' when unknown: only a ``*`` pattern matches)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if "/operation/" in path:  # Smithy RPC v2 CBOR
        return str(path).rsplit("/", 1)[-1]
    if service == "lambda":
        return next((op for m, pattern, op in _LAMBDA_PATHS
                     if m == method and pattern.match(path)), "")
    if service == "s3":
        parts = path.lstrip("/").split("/", 1)
        if len(parts) == 2 and parts[1] and not environ.get("QUERY_STRING"):
            if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
                return "CopyObject"
            return _S3_OBJECT_OPS.get(method, "")
        return ""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" not in query and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        query = parse_qs(_read_body(environ).decode("utf-8", "replace"))
    return str(query.get("Action", [""])[0])


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    n = len(raw)
    head = bytes([0x60 | n]) if n < 24 else (bytes([0x78, n]) if n < 256 else
                                             bytes([0x79]) + n.to_bytes(2, "big"))
    return head + raw


def error_response(service: str, code: str, environ: dict[str, Any]
                   ) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of AWS's error answer ``code`` for this request's protocol."""
    status, rid = CODES[code], str(uuid.uuid4())
    message = "Rate exceeded" if status in (400, 429) or code == "SlowDown" else \
        "We encountered an internal error. Please try again."
    headers = [("x-amzn-RequestId", rid)]
    if environ.get("HTTP_X_AMZ_TARGET"):
        version = "1.0" if service == "dynamodb" else "1.1"
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}",
                           "message": message}).encode()
        headers.append(("Content-Type", f"application/x-amz-json-{version}"))
    elif "/operation/" in environ.get("PATH_INFO", ""):
        body = b"\xa2" + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + \
            _cbor_text(message)
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif service == "lambda":
        body = json.dumps({"Type": "User" if status < 500 else "Service",
                           "message": message}).encode()
        headers += [("x-amzn-ErrorType", code), ("Content-Type", "application/json")]
    elif service == "s3":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                f"<Message>{escape(message)}</Message><RequestId>{rid}</RequestId></Error>"
                ).encode()
        headers.append(("Content-Type", "application/xml"))
    else:
        kind = "Sender" if status < 500 else "Receiver"
        body = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>"
                f"{escape(message)}</Message></Error><RequestId>{rid}</RequestId>"
                "</ErrorResponse>").encode()
        headers.append(("Content-Type", "text/xml"))
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


_REASONS = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable", 200: "OK"}


def _json(start_response: Any, status: int, doc: Any) -> list[bytes]:
    body = json.dumps(doc, sort_keys=True).encode()
    start_response(f"{status} {_REASONS.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _admin(faults: Faults, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """GET: rules, counters, recent injections. PUT/POST: a new SPEC (text, or JSON
    {"spec", "seed"}). DELETE: no faults."""
    method = environ.get("REQUEST_METHOD")
    if method in ("PUT", "POST"):
        raw = _read_body(environ).decode("utf-8", "replace")
        try:
            doc = json.loads(raw) if raw.lstrip().startswith("{") else {"spec": raw}
            seed = doc.get("seed")
            faults.configure(str(doc.get("spec", "")), None if seed is None else int(seed))
        except (FaultSpecError, ValueError, TypeError) as exc:
            return _json(start_response, 400, {"error": str(exc)})
    elif method == "DELETE":
        faults.configure("")
    return _json(start_response, 200, faults.state())


def with_faults(app: Wsgi, faults: Faults) -> Wsgi:
    """``app`` behind fault injection and the admin endpoint."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == ADMIN_PATH:
            return _admin(faults, environ, start_response)
        if faults.rules and INTERNAL_AGENT not in environ.get("HTTP_USER_AGENT", ""):
            service = _service(environ)
            rule = None if service is None else faults.request(service,
                                                               operation(environ, service))
            if rule is not None and service is not None:
                if rule.fault == "slow":
                    time.sleep(rule.delay)
                else:
                    status, headers, body = error_response(service, rule.fault, environ)
                    start_response(f"{status} {_REASONS[status]}", headers)
                    return [body]
        return app(environ, start_response)

    return wsgi
