"""Fixtures for the local AWS engine tests: one LocalAws per test module."""

from __future__ import annotations

from collections.abc import Iterator

import moto
import pytest
from localaws_helpers import Local

from pipelinectl.localaws import motocompat
from pipelinectl.localaws.server import LocalAws


@pytest.fixture
def patched() -> Iterator[None]:
    """moto in-process with our patches (the AWS behaviour each patch restores)."""
    with moto.mock_aws():
        motocompat.apply()
        yield


@pytest.fixture
def plain_moto() -> Iterator[None]:
    """moto as released, for the tests that show a defect is still there."""
    from moto.core.model_instances import reset_model_data

    with moto.mock_aws(), motocompat.unpatched():
        # moto's own lists of model instances: patch m made them weak in every class that
        # made an instance earlier in this process, and moto's __new__ appends to whatever
        # the class holds; moto's reset gives every class a new list.
        reset_model_data()
        yield


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    # The engine's mechanics; policies are enforced and tested in test_enforce.py.
    with LocalAws(port=0, metrics_interval=0.5, alarm_interval=0.5, enforce=False) as aws:
        yield Local(aws.endpoint_url)
