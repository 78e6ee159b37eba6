"""Provisioning benchmark: CLI start-up, `up` from nothing beside its floor, and a no-op `up`.

Run: .venv/bin/python bench/bench_provisioning.py
Prints figures beside a baseline from the same run (ratios), never asserts on time. Goals
(README, Benchmarks): `pipelinectl --version` <= 2x `python -c pass`; `up` from nothing
<= 1.3x the floor (bench/floor_up.py: the same create calls with one boto3 session, also
started as a process); a no-op `up` reads each resource at most 1.5 times.
"""

from __future__ import annotations

import os
import pickle
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


def _cli(cwd: Path, port: int, *args: str) -> tuple[float, int]:
    """Wall time of `pipelinectl --local ... ARGS` as a process, and its API calls (-v)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelinectl", "--local", "--local-port",
                           str(port), "-v", *args], cwd=cwd, check=True, capture_output=True,
                          text=True)
    return time.perf_counter() - started, done.stderr.count("  api: ")


def _record(calls_file: Path) -> int:
    """One `up` in-process against a fresh local AWS, steps one at a time: its mutating
    calls, in dependency order, for the floor; returns how many resources it made."""
    from pipelinectl import config, engine
    from pipelinectl.localaws import LocalAws

    aws = LocalAws("127.0.0.1", 0).start()
    try:
        ctx = engine.make_context(config.load({"local": True, "local_port": aws.port}, {}))
        saved, engine.MAX_PARALLEL_STEPS = engine.MAX_PARALLEL_STEPS, 1
        try:
            changes = engine.apply(ctx)
        finally:
            engine.MAX_PARALLEL_STEPS = saved
        key = ctx.client("kms").describe_key(KeyId=ctx.names.kms_alias)["KeyMetadata"]
        calls = [(c.service, c.operation, c.params) for c in ctx.factory.calls if c.mutating]
        calls_file.write_bytes(pickle.dumps((calls, key["KeyId"])))
        return len(changes)
    finally:
        aws.stop()


UP_RUNS = 5  # the machine is shared: medians of alternating runs, each on a fresh local AWS


def _timed_floor(calls_file: Path) -> float:
    from pipelinectl.localaws import LocalAws

    aws = LocalAws("127.0.0.1", 0).start()
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).with_name("floor_up.py")),
                        str(calls_file), aws.endpoint_url], check=True)
        return time.perf_counter() - started
    finally:
        aws.stop()


def up_against_floor() -> None:
    """Both as processes, alternately, each against a fresh pipelinectl local (consistency
    off); then a no-op `up` and a `plan` on the last one."""
    from pipelinectl.localaws import LocalAws

    floors: list[float] = []
    ups: list[float] = []
    with tempfile.TemporaryDirectory() as work:
        cwd = Path(work)
        calls_file = cwd / "calls.pickle"
        resources = _record(calls_file)
        creates = len(pickle.loads(calls_file.read_bytes())[0])
        for run in range(UP_RUNS):
            floors.append(_timed_floor(calls_file))
            aws = LocalAws("127.0.0.1", 0).start()
            try:
                up, up_calls = _cli(cwd, aws.port, "up")
                ups.append(up)
                if run == UP_RUNS - 1:
                    noop, noop_calls = _cli(cwd, aws.port, "up")
                    _, plan_calls = _cli(cwd, aws.port, "plan")
            finally:
                aws.stop()
    floor, up = statistics.median(floors), statistics.median(ups)
    print(f"floor (same {creates} mutating calls, one boto3 session, a process) "
          f"{floor * 1000:7.1f} ms (median of {UP_RUNS})")
    print(f"pipelinectl up from nothing {up * 1000:7.1f} ms ({up / floor:.2f}x the floor), "
          f"{up_calls} API calls")
    print(f"pipelinectl up (no-op)      {noop * 1000:7.1f} ms, {noop_calls} API calls "
          f"(plan: {plan_calls}; {resources} resources, each read "
          f"{(noop_calls - 1) / max(plan_calls - 1, 1):.2f}x what plan reads of it)")


if __name__ == "__main__":
    startup()
    provisioning()
    up_against_floor()
