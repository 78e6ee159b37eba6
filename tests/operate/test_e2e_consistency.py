"""`teardown --yes` then `up` at once, with the real CLI against `pipelinectl local
--consistency fast` (issue 11): the local AWS keeps every transitional state AWS has (queue
names refused after deletion, tables DELETING, mappings Creating/Deleting, functions Pending,
new roles not yet assumable, S3's EventBridge window), only shorter, and the pipeline still
converges, with the waits the user sees. The scenario is shared with the in-process version
(tests/provisioning/test_after_deletion.py)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import teardown_then_up_converges

from pipelinectl.clients import LOCAL_INFO_PATH

from .test_e2e import PIPELINE_TOML, LocalPipeline, running_local

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-consistency")]


@pytest.fixture
def fast_local(tmp_path: Path, build_cache: Path) -> Iterator[LocalPipeline]:
    with running_local(tmp_path, build_cache, PIPELINE_TOML, up=False,
                       consistency="fast") as pipeline:
        yield pipeline


def test_teardown_then_up_at_once_converges_on_fast_consistency(
        fast_local: LocalPipeline) -> None:
    # The local AWS states the window it really holds S3's events back for.
    endpoint = f"http://127.0.0.1:{fast_local.port}"
    with urllib.request.urlopen(endpoint + LOCAL_INFO_PATH, timeout=5) as response:
        stated = json.loads(response.read())
    assert stated["consistency"] == "fast" and stated["s3_eventbridge_delay_seconds"] > 0

    fast_local.ok("up", timeout=300)

    def run(*args: str) -> tuple[int, str]:
        result = fast_local.cli(*args, timeout=300)
        return result.returncode, result.stdout + result.stderr

    began = time.monotonic()
    teardown, up = teardown_then_up_converges(run)
    print(f"teardown + up + plan: {time.monotonic() - began:.1f}s\n{teardown}\n{up}")
    status = fast_local.json("status")
    assert status["healthy"], [(r["name"], r["state"]) for r in status["resources"]]
    sent = fast_local.json("send-test", "--amount", "1500", "--via", "s3")
    assert (sent["stored"], sent["alerted"]) == (True, True)
