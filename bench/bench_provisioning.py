"""Provisioning benchmark: CLI start-up, and `up` from nothing vs a second `up` on moto.

Run: .venv/bin/python bench/bench_provisioning.py
Prints figures beside a baseline from the same run (ratios), never asserts on time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 10


def median_wall(command: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def startup() -> None:
    baseline = median_wall([sys.executable, "-c", "pass"])
    version = median_wall([sys.executable, "-m", "pipelinectl", "--version"])
    helped = median_wall([sys.executable, "-m", "pipelinectl", "--help"])
    print(f"python -c pass              {baseline * 1000:7.1f} ms (baseline)")
    print(f"pipelinectl --version       {version * 1000:7.1f} ms ({version / baseline:.1f}x)")
    print(f"pipelinectl --help          {helped * 1000:7.1f} ms ({helped / baseline:.1f}x)")


def provisioning() -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.setdefault("PIPELINECTL_CACHE_DIR",
                          str(Path(tempfile.gettempdir()) / "pipelinectl-bench-cache"))
    from moto import mock_aws

    from pipelinectl import config, engine
    from pipelinectl.localaws import motocompat

    with mock_aws():  # warm moto's backends and the build cache, outside the measurement
        motocompat.apply()
        engine.apply(engine.make_context(config.load({"name": "warmup"}, {})))
    with mock_aws():
        motocompat.apply()
        rows = []
        for label in ("up from nothing", "second up (no-op)"):
            ctx = engine.make_context(config.load({}, {}))
            ctx.factory.calls.clear()
            started = time.perf_counter()
            engine.apply(ctx)
            wall = time.perf_counter() - started
            calls = ctx.factory.calls
            rows.append((label, len(calls), sum(c.mutating for c in calls), wall))
    for label, calls, mutating, wall in rows:
        print(f"{label:<26} {calls:4d} API calls, {mutating:3d} mutating, "
              f"{wall * 1000:7.1f} ms")
    print(f"second up / first up wall time: {rows[1][3] / rows[0][3]:.2f}x")


if __name__ == "__main__":
    startup()
    provisioning()
