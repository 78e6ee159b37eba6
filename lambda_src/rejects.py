"""Where invalid input goes, so that it never blocks valid input and is never lost.

- An invalid *message* is sent to the dead-letter queue with its original body and
  attributes plus ``ErrorCode``, ``ErrorReason``, ``SourceMessageId`` and ``Pipeline``
  message attributes, then acknowledged. Keeping the original attributes matters:
  ``TransactionType`` must survive a ``dlq redrive``, so it is copied first. The entry stays
  within the DLQ's ``MaximumMessageSize`` (body plus attributes; 1 MiB as `up` sets it, passed
  as ``DLQ_MAX_MESSAGE_BYTES``): only when the original does not fit are other originals
  dropped, the reason shortened, and as a last resort the body cut and marked
  ``BodyTruncated=true``. A message SQS delivered (at most the queue's own maximum, the same
  1 MiB) therefore reaches the DLQ whole. ``SendMessageBatch`` (covered by the role's
  ``sqs:SendMessage``) carries at most 10 entries and 1 MiB in all per call (botocore's SQS
  model: "the maximum total payload size ... 1 MiB").
- Invalid *file rows* are spooled (memory first, then /tmp) and written once, at the end of
  the file, to ``rejected/<key without incoming/>.errors.jsonl`` - one JSON object per line
  with row, line, code, reason and a clipped copy of the raw row. The same input yields the
  same object, so reprocessing a file simply rewrites it.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import INCOMING_PREFIX, LEGACY_MESSAGE_BYTES
from .errors import Rejected, error_code

SEND_BATCH_LIMIT = 10
SEND_BATCH_BYTES = 1_048_576
MAX_ATTRIBUTES = 10
MAX_REASON_CHARS = 1000
#: What the reason is cut to when the original body leaves no room for the full one.
MIN_REASON_CHARS = 200
TRANSACTION_TYPE = "TransactionType"
BODY_TRUNCATED = "BodyTruncated"
MAX_DETAILED_REJECTS = 10_000  # rows listed one by one in a rejects object
SPOOL_BYTES = 1024 * 1024
#: Characters SQS refuses in bodies and string attribute values (its allowed set is
#: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
_NOT_SQS_SAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_safe(text: str) -> str:
    """``text`` with every character SQS would refuse replaced by U+FFFD."""
    return _NOT_SQS_SAFE.sub("\ufffd", text)


@dataclass
class DeadLetter:
    """One invalid SQS message on its way to the DLQ."""

    message_id: str
    body: str
    problem: Rejected
    attributes: Mapping[str, Any] = field(default_factory=dict)  # Lambda-event shape


def rejects_key(key: str, prefix: str) -> str:
    """``incoming/a/b.csv`` -> ``rejected/a/b.csv.errors.jsonl``: never under incoming/."""
    return f"{prefix}{key.removeprefix(INCOMING_PREFIX)}.errors.jsonl"


class DeadLetters:
    """Sends invalid messages to the DLQ in batches."""

    def __init__(self, sqs: Any, queue_url: str, pipeline: str,
                 max_message_bytes: int = LEGACY_MESSAGE_BYTES) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.pipeline = pipeline
        #: The DLQ's MaximumMessageSize: body and message attributes together.
        self.max_bytes = max_message_bytes

    def send(self, letters: Sequence[DeadLetter]) -> dict[str, str]:
        """Send ``letters``; return message id -> reason for those that did not reach the DLQ."""
        failed: dict[str, str] = {}
        entries = []
        for index, letter in enumerate(letters):
            try:
                entries.append(self._entry(index, letter))
            except Exception as exc:  # one odd message must not stop the others
                failed[letter.message_id] = f"could not build the DLQ entry: {exc!r}"[:300]
        for batch in self._batches(entries):
            by_id = {e["Id"]: letters[int(e["Id"][1:])] for e in batch}
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
            except (ClientError, BotoCoreError) as exc:
                for letter in by_id.values():
                    failed[letter.message_id] = f"SQS SendMessageBatch failed: {error_code(exc)}"
                continue
            for bad in response.get("Failed", []):
                failed[by_id[bad["Id"]].message_id] = f"DLQ refused: {bad.get('Code')}"
        return failed

    def _entry(self, index: int, letter: DeadLetter) -> dict[str, Any]:
        """The SendMessageBatch entry, within SQS's size limit (body plus attributes).

        Ours first; then the original attributes, ``TransactionType`` first (it must survive
        a redrive), as many as fit. Too large: the reason is shortened, and if the body itself
        does not fit next to our attributes it is cut and ``BodyTruncated=true`` is added.
        """
        ours = {
            "ErrorCode": letter.problem.code,
            "ErrorReason": letter.problem.reason[:MAX_REASON_CHARS],
            "SourceMessageId": letter.message_id,
            "Pipeline": self.pipeline,
        }
        attributes = {k: _string(sqs_safe(v)) for k, v in ours.items() if v}
        body = sqs_safe(letter.body)
        originals = [(name, converted) for name, converted in (
            (n, _api_attribute(v)) for n, v in sorted(
                letter.attributes.items(), key=lambda kv: kv[0] != TRANSACTION_TYPE))
            if converted is not None and name not in attributes]
        keep_type = [a for a in originals[:1] if a[0] == TRANSACTION_TYPE]
        entry = {"Id": f"m{index}", "MessageBody": body, "MessageAttributes": attributes}
        limit = self.max_bytes
        if entry_bytes(entry) > limit and "ErrorReason" in attributes:
            reason = attributes["ErrorReason"]["StringValue"]
            attributes["ErrorReason"] = _string(reason[:MIN_REASON_CHARS])
        reserved = sum(_attribute_bytes(n, a) for n, a in keep_type)
        if entry_bytes(entry) + reserved > limit:
            attributes[BODY_TRUNCATED] = _string("true")
            room = limit - reserved - (entry_bytes(entry) - _utf8_len(body))
            entry["MessageBody"] = _cut(body, max(room, 0))
        for name, converted in originals:
            if len(attributes) >= MAX_ATTRIBUTES:
                break
            if entry_bytes(entry) + _attribute_bytes(name, converted) <= limit:
                attributes[name] = converted
        return entry

    @staticmethod
    def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        return send_batches(entries)


def send_batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """At most 10 entries and 1 MiB of payload per SendMessageBatch call."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        entry_size = entry_bytes(entry)
        if not batches or len(batches[-1]) >= SEND_BATCH_LIMIT or (
                size + entry_size > SEND_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += entry_size
    return batches


def entry_bytes(entry: Mapping[str, Any]) -> int:
    """What SQS counts against its size limits: the body plus, per message attribute, its
    name, its data type and its value (``BinaryValue`` is raw bytes, so no JSON here)."""
    return _utf8_len(entry["MessageBody"]) + sum(
        _attribute_bytes(name, attribute)
        for name, attribute in entry.get("MessageAttributes", {}).items())


def _attribute_bytes(name: str, attribute: Mapping[str, Any]) -> int:
    value = attribute.get("BinaryValue")
    value_bytes = len(value) if value is not None else _utf8_len(
        str(attribute.get("StringValue", "")))
    return _utf8_len(name) + _utf8_len(attribute["DataType"]) + value_bytes


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "backslashreplace"))


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``, never splitting a character."""
    return text.encode("utf-8", "backslashreplace")[:limit].decode("utf-8", "ignore")


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _api_attribute(value: Any) -> dict[str, Any] | None:
    """A Lambda-event message attribute (``stringValue``...) in SendMessage form."""
    if not isinstance(value, dict) or not isinstance(value.get("dataType"), str):
        return None
    if value.get("stringValue") is not None:
        return {"DataType": value["dataType"], "StringValue": sqs_safe(str(value["stringValue"]))}
    if value.get("binaryValue") is not None:
        raw = value["binaryValue"]
        data = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
        return {"DataType": value["dataType"], "BinaryValue": data}
    return None


class RejectsFile:
    """Collects reject lines for one S3 object in bounded memory, then uploads them once.

    Only the first MAX_DETAILED_REJECTS rows are listed one by one; the rest are counted by
    code in one closing line. A reject line is several times the size of its row, so an
    all-invalid file would otherwise spool many times its own size into Lambda's /tmp.
    """

    def __init__(self, source_uri: str) -> None:
        self.source_uri = source_uri
        self.count = 0
        self._unlisted: Counter[str] = Counter()
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def add(self, row: int | None, problem: Rejected, raw: str = "",
            line: int | None = None, *, transaction_id: str | None = None) -> None:
        """``transaction_id``, when the row has one, lets `pipelinectl trace ID` find the
        line without parsing ``raw`` (which is clipped, and CSV)."""
        self.count += 1
        if self.count > MAX_DETAILED_REJECTS:
            self._unlisted[problem.code] += 1
            return
        entry = {"source": self.source_uri, "row": row, "line": line,
                 "code": problem.code, "reason": problem.reason, "raw": raw}
        if transaction_id is not None:
            entry["transaction_id"] = transaction_id
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        # ASCII-escaped: input may hold lone surrogates, which no UTF-8 encoder accepts.
        self._spool.write(json.dumps(entry).encode() + b"\n")

    def upload(self, s3: Any, bucket: str, key: str) -> None:
        """Write the rejects object (only if there is something to report)."""
        if not self.count:
            return
        if self._unlisted:
            counts = ", ".join(f"{code} x {n}" for code, n in sorted(self._unlisted.items()))
            self._write({"source": self.source_uri, "row": None, "line": None,
                         "code": "more_rejects",
                         "reason": f"{sum(self._unlisted.values())} more rejected rows not "
                                   f"listed: {counts}", "raw": ""})
        self._spool.seek(0)
        s3.put_object(Bucket=bucket, Key=key, Body=self._spool,
                      ContentType="application/x-ndjson")

    def close(self) -> None:
        self._spool.close()
