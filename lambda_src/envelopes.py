"""What one SQS record body contains (DESIGN.md section 3, "What the processor must unwrap").

Bodies arrive in several wrappings depending on the path they took:

- ``SNS -> SQS``: an SNS notification whose ``Message`` holds the payload below, with the
  ``TransactionType`` message attribute inside the notification (raw delivery off) or as an
  SQS message attribute (raw delivery on); both are read;
- ``S3 -> EventBridge -> SNS -> SQS``: an EventBridge ``Object Created`` event;
- a classic S3 notification (``Records`` with ``eventSource: aws:s3``), whose keys are
  URL-encoded (``red flower.csv`` arrives as ``red+flower.csv``);
- a transaction object or a JSON list of them (``send_message`` straight to the queue).

This module is pure: it parses and classifies, it never calls AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from .config import INCOMING_PREFIX
from .errors import Rejected
from .split import WORK_MARKER, Work
from .validation import loads_strict

TYPE_ATTRIBUTE = "TransactionType"
FOLDER = "a folder object (key ending in /), not a file"


@dataclass(frozen=True)
class FileRef:
    """An S3 object the processor must stream."""

    bucket: str
    key: str
    size: int | None = None
    replay: str | None = None  # the replay's name when `pipelinectl replay` sent the event

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Payload:
    """The classified content of one SQS record."""

    via: str  # "sqs" or "sns": where single transactions are said to come from
    files: list[FileRef] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    type_attribute: str | None = None
    sns_message_id: str | None = None  # the SNS notification's MessageId, when via SNS
    ignored: str | None = None  # why the record needs no work (e.g. an s3:TestEvent)
    work: Work | None = None  # a part or continuation of a large file (lambda_src/split.py)


def unwrap(body: str, sqs_attributes: Mapping[str, Any] | None = None) -> Payload:
    """Classify one SQS body; raise Rejected when no reading of it makes sense."""
    doc = loads_strict(body)
    payload = Payload(via="sqs", type_attribute=_sqs_attribute(sqs_attributes))
    if isinstance(doc, dict) and "TopicArn" in doc and "Type" in doc:
        if doc["Type"] != "Notification":
            raise Rejected("unsupported_envelope", f"SNS message of type {doc['Type']!r}")
        message = doc.get("Message")
        if not isinstance(message, str):
            raise Rejected("bad_envelope", "SNS notification has no string Message")
        payload.via = "sns"
        payload.sns_message_id = doc.get("MessageId") if isinstance(doc.get("MessageId"),
                                                                     str) else None
        payload.type_attribute = _sns_attribute(doc) or payload.type_attribute
        try:
            doc = loads_strict(message)
        except Rejected as exc:
            raise Rejected(exc.code, f"SNS Message is {exc.reason}") from None
    _classify(doc, payload)
    return payload


def _classify(doc: Any, payload: Payload) -> None:
    if isinstance(doc, dict) and WORK_MARKER in doc:
        payload.work = Work.from_doc(doc)
    elif isinstance(doc, dict) and "detail-type" in doc and "detail" in doc:
        payload.files.extend(_eventbridge_file(doc))
        payload.ignored = None if payload.files else FOLDER
    elif isinstance(doc, dict) and doc.get("Event") == "s3:TestEvent":
        payload.ignored = "s3:TestEvent"
    elif isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        payload.files.extend(_s3_notification_files(doc["Records"]))
        payload.ignored = None if payload.files else FOLDER
    elif isinstance(doc, dict):
        payload.items.append(doc)
    elif isinstance(doc, list):
        if not doc:
            raise Rejected("empty_message", "the message is an empty list")
        payload.items.extend(doc)
    else:
        raise Rejected("not_an_object", "the message is neither a transaction nor a list of them")


def _eventbridge_file(event: Mapping[str, Any]) -> list[FileRef]:
    """An EventBridge S3 event; its key is not URL-encoded (unlike classic notifications)."""
    source, detail_type = event.get("source"), event.get("detail-type")
    if source != "aws.s3" or detail_type != "Object Created":
        raise Rejected("unsupported_event",
                       f"EventBridge event {source}/{detail_type} is not S3 Object Created")
    detail = event["detail"] if isinstance(event["detail"], dict) else {}
    bucket = _dig(detail, "bucket", "name")
    key = _dig(detail, "object", "key")
    size = _dig(detail, "object", "size")
    ref = _file_ref(bucket, key, size)
    replay = event.get("replay-name")
    if isinstance(replay, str) and replay:
        ref = FileRef(ref.bucket, ref.key, ref.size, replay)
    return [] if _is_folder(ref) else [ref]


def _s3_notification_files(records: list[Any]) -> list[FileRef]:
    files = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise Rejected("unsupported_event", "a Records entry is not an S3 notification")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3")
        s3 = s3 if isinstance(s3, dict) else {}
        key = _dig(s3, "object", "key")
        key = unquote_plus(key) if isinstance(key, str) else key
        ref = _file_ref(_dig(s3, "bucket", "name"), key, _dig(s3, "object", "size"))
        files.append(ref)
    files = [f for f in files if not _is_folder(f)]
    if not files and not any(_is_folder_record(r) for r in records):
        raise Rejected("unsupported_event", "the S3 notification has no ObjectCreated record")
    return files


def _file_ref(bucket: Any, key: Any, size: Any) -> FileRef:
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise Rejected("bad_envelope", "the S3 event has no bucket name or object key")
    if not key.startswith(INCOMING_PREFIX):
        # Reading elsewhere is not allowed by the role and could make the pipeline loop.
        raise Rejected("outside_incoming", f"object key {key!r} is not under {INCOMING_PREFIX}")
    return FileRef(bucket, key, int(size) if isinstance(size, int) else None)


def _is_folder(ref: FileRef) -> bool:
    """The console's "Create folder" makes an empty object whose key ends in ``/``; it holds
    no rows and must not produce a rejects object such as ``rejected/.errors.jsonl``."""
    return ref.key.endswith("/")


def _is_folder_record(record: Any) -> bool:
    key = _dig(record, "s3", "object", "key") if isinstance(record, dict) else None
    return isinstance(key, str) and key.endswith("/")


def _dig(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for step in path:
        node = node.get(step) if isinstance(node, dict) else None
    return node


def _sqs_attribute(attributes: Mapping[str, Any] | None) -> str | None:
    """``TransactionType`` from a Lambda SQS record's ``messageAttributes``."""
    entry = (attributes or {}).get(TYPE_ATTRIBUTE)
    if isinstance(entry, dict) and str(entry.get("dataType", "")).startswith("Binary"):
        raise _binary_type()
    value = entry.get("stringValue") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _sns_attribute(notification: Mapping[str, Any]) -> str | None:
    """``TransactionType`` from an SNS notification's ``MessageAttributes``."""
    entry = _dig(notification, "MessageAttributes", TYPE_ATTRIBUTE)
    if isinstance(entry, dict) and str(entry.get("Type", "")).startswith("Binary"):
        raise _binary_type()  # SNS gives its Value base64-encoded: it is not a type name
    value = entry.get("Value") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _binary_type() -> Rejected:
    """Rejected, not decoded: bytes have no agreed encoding, and storing their base64 text
    as the type would be silently wrong."""
    return Rejected("bad_type", "the TransactionType attribute must be a String attribute "
                                "(DataType String), not Binary")
