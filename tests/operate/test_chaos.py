"""The pipeline under concurrency and injected faults, end to end on the local AWS (the
bounded version of bench/bench_chaos.py, which runs 10,000 transactions): every valid
transaction stored once, every over-threshold one alerted, no alert repeated beyond the
README's documented window, every invalid one in the DLQ or a rejects object."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("chaos")]

# Higher rates than the benchmark's so a few hundred transactions meet every kind of fault.
FAULTS = ("dynamodb:BatchWriteItem|UpdateItem|BatchGetItem=throttle@10%; "
          "sns:PublishBatch|Publish=InternalError@10%; s3:GetObject=ServiceUnavailable@5%; "
          "invoke:*=timeout@4%; invoke:*=crash@4%")


@pytest.fixture
def local_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    from pipelinectl.localaws.server import LocalAws

    with LocalAws(port=0) as aws:
        monkeypatch.setenv("PIPELINECTL_LOCAL_PORT", str(aws.port))
        yield aws.endpoint_url, aws.port


def test_four_hundred_transactions_under_concurrency_and_faults(
        local_port: tuple[str, int]) -> None:
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.engine import make_context

    endpoint, port = local_port
    config = config_module.load({"local": True, "local_port": port, "name": "chaos",
                                 "batch_size": 10, "maximum_concurrency": 8,
                                 "function_timeout": 5}, {})
    ctx = make_context(config, ClientFactory(config))
    result = bench_chaos.run(ctx, endpoint, 400, seed=3, timeout=240, faults=FAULTS)
    counts = bench_chaos.check(result)  # asserts the invariants
    print(counts)
    assert counts["faults_injected"] >= 5  # the faults did happen
    assert counts["lambda_faults"] >= 1
    assert counts["stored"] == counts["valid"] == 380
