"""Memory of the local AWS under the chaos bench: peak RSS, RSS over time, and what holds it.

    .venv/bin/python bench/bench_memory.py --transactions 1000 [--limit-gb 4] [--referrers]
        [--tracemalloc SECONDS]

Runs bench/bench_chaos.py's run() in this process (the local AWS in-process, ``up``, faults
on) while a thread samples this process's VmRSS (and its Lambda workers') every second. Above
``--limit-gb`` it kills the workers and exits (code 3) so a leak cannot take the machine. At
the end it prints the peak, the samples, and the sizes of what moto's backends keep; with
``--tracemalloc SECONDS`` also the allocation sites that grew most from then to the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_chaos  # after the paths above


def _rss_kb(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> list[int]:
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            pids.append(int(entry))
    return pids


class Sampler(threading.Thread):
    """Samples RSS each ``interval`` s; kills the workers and exits above ``limit_kb``."""

    def __init__(self, limit_kb: int, interval: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.limit_kb, self.interval = limit_kb, interval
        self.samples: list[tuple[float, int, int]] = []  # (s, own kB, workers kB)
        self.started = time.monotonic()
        self.snapshot_at: float | None = None
        self.snapshot: tracemalloc.Snapshot | None = None

    def run(self) -> None:
        while True:
            children = _children()
            own, workers = _rss_kb(), sum(_rss_kb(p) for p in children)
            self.samples.append((time.monotonic() - self.started, own, workers))
            if own + workers > self.limit_kb:
                print(f"GUARD: RSS {own // 1024} MB + workers {workers // 1024} MB above "
                      f"{self.limit_kb // 1024} MB: killing the run", flush=True)
                for pid in children:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                self.report()
                os._exit(3)
            time.sleep(self.interval)

    @property
    def peak_kb(self) -> int:
        return max((own for _, own, _ in self.samples), default=0)

    def report(self) -> None:
        peak_workers = max((w for _, _, w in self.samples), default=0)
        print(f"peak RSS {self.peak_kb / 1024:.0f} MB (this process); "
              f"workers together at most {peak_workers / 1024:.0f} MB")
        step = max(1, len(self.samples) // 20)
        for t, own, workers in self.samples[::step]:
            print(f"  {t:7.0f} s  {own / 1024:7.0f} MB  workers {workers / 1024:6.0f} MB")


def backend_sizes() -> Counter[str]:
    """What moto's backends hold, counted (all accounts and regions)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends

    from pipelinectl.localaws._aws import regional_backends

    sizes = _log_and_metric_sizes()
    for _, _, sqs in regional_backends(sqs_backends):
        for q in sqs.queues.values():
            sizes["sqs messages"] += len(q._messages)
            sizes["sqs deleted_messages"] += len(getattr(q, "deleted_messages", ()))
    for _, _, ddb in regional_backends(dynamodb_backends):
        for table in ddb.tables.values():
            sizes["dynamodb items"] += len(table)
    for account in s3_backends:
        for bucket in s3_backends[account]["global"].buckets.values():
            sizes["s3 keys"] += len(bucket.keys)
            sizes["s3 key versions"] += sum(len(v) for v in bucket.keys.lists())
    return sizes


def _log_and_metric_sizes() -> Counter[str]:
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.logs.models import logs_backends

    from pipelinectl.localaws._aws import regional_backends

    sizes: Counter[str] = Counter()
    for _, _, logs in regional_backends(logs_backends):
        for group in logs.groups.values():
            for stream in group.streams.values():
                sizes["logs events"] += len(stream.events)
                sizes["logs event bytes"] += sum(len(e.message) for e in stream.events)
    for _, _, cw in regional_backends(cloudwatch_backends):
        sizes["cloudwatch datapoints"] += len(cw.metric_data)
    return sizes


def type_counts() -> Counter[str]:
    """Live objects tracked by the garbage collector, by type (cheap enough for a whole run)."""
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def mark_item_sites(every: int = 10) -> None:
    """Record where every ``every``-th moto DynamoDB Item was made (cheaper than tracemalloc)."""
    import traceback

    from moto.dynamodb.models.dynamo_type import Item

    counter = iter(range(10**12))

    def site(item: Any) -> Any:
        if next(counter) % every == 0:
            item._bench_site = " <- ".join(
                f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in reversed(traceback.extract_stack(limit=16)[:-2]))
        return item

    init, deepcopy = Item.__init__, Item.__deepcopy__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        site(self)

    def __deepcopy__(self: Any, memo: dict[int, Any]) -> Any:
        return site(deepcopy(self, memo))

    Item.__init__, Item.__deepcopy__ = __init__, __deepcopy__  # type: ignore[method-assign]


def stray_referrers() -> None:
    """How many moto DynamoDB Items are alive in no table, and where the sampled ones were made
    (mark_item_sites)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import Item

    from pipelinectl.localaws._aws import regional_backends

    stored: set[int] = set()
    for _, _, ddb in regional_backends(dynamodb_backends):
        for table in ddb.tables.values():
            for value in table.items.values():
                for item in (value.values() if isinstance(value, dict) else [value]):
                    stored.add(id(item))
    gc.collect()
    strays = [o for o in gc.get_objects() if isinstance(o, Item) and id(o) not in stored]
    print(f"{len(strays)} Items in no table")
    sites = Counter(getattr(item, "_bench_site", "?") for item in strays)
    for site, n in sites.most_common(4):
        print(f"  {n} made at: {site}")
    if tracemalloc.is_tracing():
        sites = Counter(
            "\n".join(tb.format()[-20:]) if (tb := tracemalloc.get_object_traceback(item))
            else "?" for item in strays)
        for site, n in sites.most_common(3):
            print(f"  {n} allocated at:\n{site}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--referrers", action="store_true",
                        help="show what holds DynamoDB items that are in no table")
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--tracemalloc", type=float, metavar="SECONDS", default=None,
                        help="compare allocations SECONDS after the start with the end")
    args = parser.parse_args()
    sampler = Sampler(int(args.limit_gb * 1024 * 1024))
    if args.referrers:
        mark_item_sites()
    sampler.start()
    if args.tracemalloc is not None:
        tracemalloc.start(25)
    try:
        run(args, sampler)
    finally:
        sampler.report()


def run(args: argparse.Namespace, sampler: Sampler) -> None:
    from pipelinectl import config as config_module
    from pipelinectl.clients import ClientFactory
    from pipelinectl.engine import make_context
    from pipelinectl.localaws.server import LocalAws

    with LocalAws(port=0) as aws:
        os.environ["PIPELINECTL_LOCAL_PORT"] = str(aws.port)
        config = config_module.load({"local": True, "local_port": aws.port, "batch_size": 10,
                                     "maximum_concurrency": 8, "function_timeout": 5}, {})
        ctx = make_context(config, ClientFactory(config))
        first: list[Any] = []
        types_before = type_counts()
        if args.tracemalloc is not None:
            def early() -> None:  # once the backlog is being worked on
                time.sleep(args.tracemalloc)
                gc.collect()
                first.append(tracemalloc.take_snapshot())
            threading.Thread(target=early, daemon=True).start()
        result = bench_chaos.run(ctx, aws.endpoint_url, args.transactions, args.seed,
                                 timeout=1800)
        print(f"{args.transactions} transactions in {result['seconds']:.0f} s")
        counts = bench_chaos.check(result)
        print(f"  stored {counts['stored']} of {counts['valid']} valid")
        grown = type_counts()
        grown.subtract(types_before)
        print("live objects that grew most, by type:")
        for name, n in grown.most_common(12):
            print(f"  {name:32} +{n}")
        if args.referrers:
            stray_referrers()
        for key, value in backend_sizes().items():
            print(f"  {key:24} {value}")
        if first:
            last = tracemalloc.take_snapshot()
            print(f"allocation sites that grew most since {args.tracemalloc:.0f} s:")
            for stat in last.compare_to(first[0], "traceback")[:12]:
                print(f"  +{stat.size_diff / 1024:9.0f} kB  +{stat.count_diff:8d} objects")
                for line in stat.traceback.format()[-12:]:
                    print("     ", line)


if __name__ == "__main__":
    main()
