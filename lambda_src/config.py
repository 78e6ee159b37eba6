"""Settings from the function's environment, parsed and checked once per container.

A misconfigured function should fail on its first invocation with one clear message rather
than half-process a batch, so every variable is validated here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: Objects are only ever read from here; the EventBridge rule and the IAM policy agree.
INCOMING_PREFIX = "incoming/"

#: A single transaction is a few hundred bytes; anything far larger is a mistake or an attack,
#: and keeping rows small keeps DynamoDB items far below the 400 KB item limit.
MAX_ROW_BYTES = 16 * 1024

UNKNOWN_FIELD_POLICIES = ("reject", "ignore")
#: A second, different version of a stored transaction: refused (default) or stored.
DUPLICATE_POLICIES = ("reject", "last_wins")

#: SQS's MaximumMessageSize range (botocore's SQS model: 1,024 to 1,048,576 bytes since SQS
#: raised it to 1 MiB). Without DLQ_MAX_MESSAGE_BYTES (a function deployed by an older
#: pipelinectl) the DLQ is assumed to have the old 256 KiB default, which every queue takes.
SQS_MESSAGE_BYTES_RANGE = (1024, 1_048_576)
LEGACY_MESSAGE_BYTES = 262_144
#: Large files (lambda_src/split.py): the size of a part, and the object size above which a
#: CSV or JSON Lines file is split. pipelinectl derives both from the function's timeout and
#: memory (pipelinectl/config.py); these are the defaults of a function deployed without them.
DEFAULT_PART_BYTES = 1024 * 1024
PART_BYTES_RANGE = (64 * 1024, 1024 * 1024 * 1024)


class ConfigError(RuntimeError):
    """The function's environment is unusable; raised before any record is touched."""


@dataclass(frozen=True)
class Settings:
    """Everything the processor needs to know about its pipeline."""

    table_name: str
    alerts_topic_arn: str
    dlq_url: str
    alert_threshold: Decimal = Decimal("1000")
    rejects_prefix: str = "rejected/"
    pipeline_name: str = "ecommerce"
    unknown_fields: str = "reject"
    max_row_bytes: int = MAX_ROW_BYTES
    dlq_max_message_bytes: int = LEGACY_MESSAGE_BYTES
    conflicting_duplicates: str = "reject"
    #: The pipeline's own queue: parts and continuations are sent there. Unset (a function
    #: deployed by an older pipelinectl): files are read in one invocation, as before.
    queue_url: str | None = None
    part_bytes: int = DEFAULT_PART_BYTES
    split_threshold_bytes: int = DEFAULT_PART_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment the provisioning code sets on the function."""
        env = os.environ if env is None else env
        missing = [n for n in ("TABLE_NAME", "ALERTS_TOPIC_ARN", "DLQ_URL") if not env.get(n)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        settings = cls(
            table_name=env["TABLE_NAME"],
            alerts_topic_arn=env["ALERTS_TOPIC_ARN"],
            dlq_url=env["DLQ_URL"],
            alert_threshold=_parse_threshold(env.get("ALERT_THRESHOLD", "1000")),
            rejects_prefix=env.get("REJECTS_PREFIX") or "rejected/",
            pipeline_name=env.get("PIPELINE_NAME") or "ecommerce",
            unknown_fields=(env.get("UNKNOWN_FIELDS") or "reject").strip().lower(),
            dlq_max_message_bytes=_parse_message_bytes(env.get("DLQ_MAX_MESSAGE_BYTES")),
            conflicting_duplicates=(env.get("CONFLICTING_DUPLICATES") or "reject").strip().lower(),
            queue_url=env.get("QUEUE_URL") or None,
            part_bytes=_parse_bytes("PART_BYTES", env.get("PART_BYTES")),
            split_threshold_bytes=_parse_bytes("SPLIT_THRESHOLD_BYTES",
                                               env.get("SPLIT_THRESHOLD_BYTES")),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that would make the pipeline loop or misbehave silently."""
        prefix = self.rejects_prefix
        if not prefix.endswith("/") or prefix.startswith("/"):
            raise ConfigError(f"REJECTS_PREFIX must look like 'rejected/', got {prefix!r}")
        if prefix.startswith(INCOMING_PREFIX) or INCOMING_PREFIX.startswith(prefix):
            # Rejects written under incoming/ would trigger the pipeline again, forever.
            raise ConfigError(f"REJECTS_PREFIX {prefix!r} overlaps {INCOMING_PREFIX!r}")
        if self.unknown_fields not in UNKNOWN_FIELD_POLICIES:
            raise ConfigError(
                f"UNKNOWN_FIELDS must be one of {', '.join(UNKNOWN_FIELD_POLICIES)}, "
                f"got {self.unknown_fields!r}"
            )
        if self.conflicting_duplicates not in DUPLICATE_POLICIES:
            raise ConfigError(
                f"CONFLICTING_DUPLICATES must be one of {', '.join(DUPLICATE_POLICIES)}, "
                f"got {self.conflicting_duplicates!r}"
            )


def _parse_threshold(raw: str) -> Decimal:
    """A decimal string; a float would make 1000.10 vs 1000.1 comparisons unreliable."""
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(f"ALERT_THRESHOLD must be a decimal number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"ALERT_THRESHOLD must be a finite number >= 0, got {raw!r}")
    return value


def _parse_message_bytes(raw: str | None) -> int:
    """The DLQ's MaximumMessageSize as the provisioning code set it (DLQ copies fit in it)."""
    if not raw:
        return LEGACY_MESSAGE_BYTES
    low, high = SQS_MESSAGE_BYTES_RANGE
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not low <= value <= high:
        raise ConfigError(f"DLQ_MAX_MESSAGE_BYTES must be an integer from {low} to {high} "
                          f"(SQS's MaximumMessageSize range), got {raw!r}")
    return value


def _parse_bytes(name: str, raw: str | None) -> int:
    """PART_BYTES / SPLIT_THRESHOLD_BYTES: whole bytes, 64 KiB to 1 GiB."""
    if not raw:
        return DEFAULT_PART_BYTES
    low, high = PART_BYTES_RANGE
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return value
