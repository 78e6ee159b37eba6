"""Fixtures for the local AWS engine tests: one LocalAws per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localaws_helpers import Local

from pipelinectl.localaws.server import LocalAws


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    # The engine's mechanics; policies are enforced and tested in test_enforce.py.
    with LocalAws(port=0, metrics_interval=0.5, alarm_interval=0.5, enforce=False) as aws:
        yield Local(aws.endpoint_url)
