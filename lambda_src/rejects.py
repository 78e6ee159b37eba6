"""Where invalid input goes, so that it never blocks valid input and is never lost.

- An invalid *message* is sent to the dead-letter queue with its original body and
  attributes plus ``ErrorCode``, ``ErrorReason``, ``SourceMessageId`` and ``Pipeline``
  message attributes, then acknowledged. Keeping the original attributes matters:
  ``TransactionType`` must survive a ``dlq redrive``. ``SendMessageBatch`` (covered by the
  role's ``sqs:SendMessage``) carries at most 10 entries and 256 KiB per call.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import INCOMING_PREFIX
from .errors import Rejected, error_code

SEND_BATCH_LIMIT = 10
SEND_BATCH_BYTES = 256 * 1024
MAX_ATTRIBUTES = 10
MAX_REASON_CHARS = 1000
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

    def __init__(self, sqs: Any, queue_url: str, pipeline: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.pipeline = pipeline

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
        ours = {
            "ErrorCode": letter.problem.code,
            "ErrorReason": letter.problem.reason[:MAX_REASON_CHARS],
            "SourceMessageId": letter.message_id,
            "Pipeline": self.pipeline,
        }
        attributes = {k: {"DataType": "String", "StringValue": sqs_safe(v)}
                      for k, v in ours.items() if v}
        for name, value in letter.attributes.items():
            if len(attributes) >= MAX_ATTRIBUTES:
                break
            converted = _api_attribute(value)
            if name not in attributes and converted is not None:
                attributes[name] = converted
        return {"Id": f"m{index}", "MessageBody": sqs_safe(letter.body),
                "MessageAttributes": attributes}

    @staticmethod
    def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """At most 10 entries and 256 KiB of payload per SendMessageBatch call."""
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
    size = len(entry["MessageBody"].encode("utf-8", "backslashreplace"))
    for name, attribute in entry.get("MessageAttributes", {}).items():
        size += len(name.encode("utf-8", "backslashreplace"))
        size += len(attribute["DataType"].encode("utf-8", "backslashreplace"))
        if "BinaryValue" in attribute:
            size += len(attribute["BinaryValue"])
        else:
            size += len(str(attribute.get("StringValue", "")).encode("utf-8", "backslashreplace"))
    return size


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
    """Collects reject lines for one S3 object in bounded memory, then uploads them once."""

    def __init__(self, source_uri: str) -> None:
        self.source_uri = source_uri
        self.count = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def add(self, row: int | None, problem: Rejected, raw: str = "",
            line: int | None = None) -> None:
        entry = {"source": self.source_uri, "row": row, "line": line, "code": problem.code,
                 "reason": problem.reason, "raw": raw}
        # ASCII-escaped: input may hold lone surrogates, which no UTF-8 encoder accepts.
        self._spool.write(json.dumps(entry).encode() + b"\n")
        self.count += 1

    def upload(self, s3: Any, bucket: str, key: str) -> None:
        """Write the rejects object (only if there is something to report)."""
        if self.count:
            self._spool.seek(0)
            s3.put_object(Bucket=bucket, Key=key, Body=self._spool,
                          ContentType="application/x-ndjson")

    def close(self) -> None:
        self._spool.close()
