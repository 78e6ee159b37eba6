"""The one Powertools Logger every module logs through.

A single instance (rather than per-module child loggers) so keys appended per record -
``message_id``, ``transaction_id`` - appear on every line, whichever module writes it.
The service name comes from ``POWERTOOLS_SERVICE_NAME`` (read at import; Lambda sets the
environment before importing the handler).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "processor")
