"""Shared fixtures: fake credentials, a session-wide build cache, moto with our patches."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One vendored-requirements cache for the whole run: pip runs once, not per test."""
    shared = os.environ.get("PIPELINECTL_TEST_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("pipelinectl-cache")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, build_cache: Path, tmp_path: Path) -> None:
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "PIPELINECTL_NAME",
                "PIPELINECTL_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PIPELINECTL_CACHE_DIR", str(build_cache))
    monkeypatch.chdir(tmp_path)  # no stray pipeline.toml from the checkout


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process with our compatibility patches (DESIGN.md §5)."""
    from moto import mock_aws

    from pipelinectl.localaws import motocompat

    with mock_aws():
        motocompat.apply()
        yield


@pytest.fixture
def skip_notification_delay(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to be "five minutes later": the wall clock by which bucket_events judges S3's
    EventBridge window (AWS's documented ~5 minutes after `up` enabled notifications; moto
    in-process is treated as AWS) moves past it. Call it after `up`, which stamps the time."""
    from pipelinectl.resources import bucket_events

    def skip() -> None:
        monkeypatch.setattr(bucket_events, "now",
                            lambda: time.time() + bucket_events.AWS_DELAY_SECONDS + 1)

    return skip

