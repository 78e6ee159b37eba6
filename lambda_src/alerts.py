"""High-value transaction alerts on the alerts topic.

This module only builds and publishes the messages (``PublishBatch``, at most 10 entries a
call, which the role's ``sns:Publish`` permission covers). The exactly-once-in-effect
protocol around publishing lives in :mod:`lambda_src.persist`; each message carries
``AlertId`` (the transaction id) so a subscriber can drop the rare duplicate that protocol
admits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import error_code
from .storage import chunked
from .validation import Transaction

PUBLISH_BATCH_LIMIT = 10
#: SNS wants the subject under 100 characters.
MAX_SUBJECT = 99
#: SNS filter policies match numbers in this range only; larger amounts travel as strings.
MAX_NUMBER_ATTRIBUTE = Decimal("1000000000")
_NOT_SUBJECT_SAFE = re.compile(r"[^\x20-\x7e]")


@dataclass
class PublishResult:
    """Which alerts SNS accepted (with its message id) and which it did not (with why)."""

    sent: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def subject(txn: Transaction, pipeline: str) -> str:
    """SNS subjects must be printable ASCII, one line, fewer than 100 characters."""
    text = f"[{pipeline}] High-value transaction {txn.transaction_id}: {txn.amount} {txn.currency}"
    text = _NOT_SUBJECT_SAFE.sub("?", text)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3] + "..."


def body(txn: Transaction, threshold: Decimal, pipeline: str) -> str:
    """A JSON body: amounts as strings so no consumer ever reads them as binary floats."""
    data: dict[str, Any] = {
        "alert": "HighValueTransaction",
        "alert_id": txn.transaction_id,
        "pipeline": pipeline,
        **{k: str(v) for k, v in txn.content().items()},
        "threshold": str(threshold),
        "source": txn.source,
    }
    return json.dumps(data, sort_keys=True)


def attributes(txn: Transaction, pipeline: str) -> dict[str, dict[str, str]]:
    """Message attributes for subscription filter policies."""
    number = txn.amount <= MAX_NUMBER_ATTRIBUTE
    attrs = {
        "AlertType": {"DataType": "String", "StringValue": "HighValueTransaction"},
        "AlertId": {"DataType": "String", "StringValue": txn.transaction_id},
        "TransactionId": {"DataType": "String", "StringValue": txn.transaction_id},
        "Amount": {"DataType": "Number" if number else "String", "StringValue": str(txn.amount)},
        "Currency": {"DataType": "String", "StringValue": txn.currency},
        "Pipeline": {"DataType": "String", "StringValue": pipeline},
    }
    if txn.type is not None:
        attrs["TransactionType"] = {"DataType": "String", "StringValue": txn.type}
    return attrs


class Alerter:
    """Publishes alert messages for transactions whose alert claim we hold."""

    def __init__(self, sns: Any, topic_arn: str, threshold: Decimal, pipeline: str) -> None:
        self.sns = sns
        self.topic_arn = topic_arn
        self.threshold = threshold
        self.pipeline = pipeline

    def publish(self, txns: Sequence[Transaction]) -> PublishResult:
        """Publish one message per transaction, 10 per PublishBatch call."""
        result = PublishResult()
        for chunk in chunked(txns, PUBLISH_BATCH_LIMIT):
            by_entry = {f"a{i}": txn for i, txn in enumerate(chunk)}
            entries = [
                {"Id": entry_id, "Subject": subject(txn, self.pipeline),
                 "Message": body(txn, self.threshold, self.pipeline),
                 "MessageAttributes": attributes(txn, self.pipeline)}
                for entry_id, txn in by_entry.items()
            ]
            try:
                response = self.sns.publish_batch(
                    TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                reason = f"SNS PublishBatch failed: {error_code(exc)}"
                for txn in chunk:
                    result.failed[txn.transaction_id] = reason
                continue
            for ok in response.get("Successful", []):
                result.sent[by_entry[ok["Id"]].transaction_id] = ok.get("MessageId", "")
            for bad in response.get("Failed", []):
                reason = f"SNS refused the alert: {bad.get('Code')} {bad.get('Message', '')}"
                result.failed[by_entry[bad["Id"]].transaction_id] = reason.strip()
        return result
