"""Plan, apply, tear down and describe steps: the core the CLI calls.

Returns data (Change, StatusRow) and reports progress through a callback; it never prints.
Steps run concurrently as soon as the steps they need are done (`up`), or once every step
that needs them is gone (`teardown`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from graphlib import TopologicalSorter
from typing import Literal, TypeVar

from pipelinectl.clients import ClientFactory
from pipelinectl.config import Config, check_names
from pipelinectl.errors import NotOursError, PipelineError, translate
from pipelinectl.resources import build, build_for_teardown
from pipelinectl.resources.base import Change, Context, Observed, Resource, StatusRow
from pipelinectl.steps import STEP_ORDER, STEPS, dependents, read_for, stopped_by

T = TypeVar("T")
MAX_PARALLEL_STEPS = 6  # the widest level of the step graph has five steps


@dataclass(frozen=True)
class Progress:
    """One event for the renderer: a resource started, waits for AWS (detail says what for)
    or finished."""

    phase: Literal["start", "wait", "done", "failed"]
    step: str
    kind: str
    name: str
    change: Change | None = None
    elapsed: float = 0.0
    error: str = ""
    detail: str = ""


ProgressCallback = Callable[[Progress], None]


class StepFailed(PipelineError):
    """A step failed; carries what was done before, so the CLI can show it."""

    def __init__(self, message: str, done: list[Change], exit_code: int) -> None:
        super().__init__(message)
        self.done = done
        self.exit_code = exit_code


def make_context(config: Config, factory: ClientFactory | None = None) -> Context:
    factory = factory or ClientFactory(config)
    try:
        region = factory.region
        account = factory.account_id()
    except Exception as exc:
        raise translate(exc, endpoint=factory.endpoint_url) from exc
    check_names(config, region, account)
    return Context(config=config, factory=factory, account=account, region=region)


def resources(ctx: Context, steps: Iterable[str]) -> list[Resource]:
    return [r for step in steps for r in build(step, ctx)]


def plan(ctx: Context, steps: Iterable[str] = STEP_ORDER) -> list[Change]:
    """What `up` would do; read-only calls only."""
    return [change for change, _ in survey(ctx, steps)]


Seen = tuple[Change, Observed | None]


def survey(ctx: Context, steps: Iterable[str]) -> list[Seen]:
    """Each resource of these steps read once, with what `up` would do to it. Every resource
    is read before any is compared, so what one learns (ctx.learned) is known to the
    desired() of the others whatever the order; the steps the chosen ones need are read for
    that too, and an untaggable resource's parents are judged from these same reads."""
    chosen = set(steps)
    wanted = chosen | {need for step in chosen for need in STEPS[step].needs}
    order = [s for s in STEP_ORDER if s in wanted]

    def read(step: str) -> list[tuple[Resource, Observed | None]]:
        return [(r, r.read()) for r in build(step, ctx)]

    with aws_errors(ctx):
        by_step = _parallel_map(read, order)  # reads only: their order does not matter
        found = [pair for step in order for pair in by_step[step]]
        seen = {(r.kind, r.name): observed for r, observed in found}
        result: list[Seen] = []
        for resource, observed in found:
            if resource.step in chosen:
                resource.seen = seen
                result.append((resource.plan(observed, read=False), observed))
        return result


def status(ctx: Context) -> list[StatusRow]:
    def describe(step: str) -> list[StatusRow]:
        return [r.status() for r in build(step, ctx)]

    with aws_errors(ctx):
        rows = _parallel_map(describe, STEP_ORDER)
    return [row for step in STEP_ORDER for row in rows[step]]


def check_needs(ctx: Context, step: str) -> None:
    """Running one step alone: say which step to run first instead of failing deep in AWS."""
    for need in STEPS[step].needs:
        for resource in build(need, ctx):
            with aws_errors(ctx):
                seen = resource.read()
            if seen is None or seen.get("deleting"):
                raise PipelineError(
                    f"The {resource.kind} {resource.name} does not exist yet: run "
                    f"`pipelinectl {need}` (or `pipelinectl up`) before `pipelinectl {step}`."
                )


@dataclass(frozen=True)
class Refusal:
    """Resources that are not ours, and the steps `up` must therefore not run."""

    conflicts: tuple[Change, ...]
    stopped: dict[str, str]  # step -> the step whose conflict stops it

    def message(self) -> str:
        owners = "; ".join(f"the {c.kind} {c.name!r} {c.detail}" for c in self.conflicts)
        steps = ", ".join(self.stopped)
        return (f"Conflict: {owners}. It is not this pipeline's, so pipelinectl will not "
                f"touch it nor run the steps that would use or grant it ({steps}); choose "
                "another --name or set its name in [names] of pipeline.toml.")

    def mark(self, changes: Iterable[Change]) -> list[Change]:
        """Plan rows as `up` would act: what a conflict stops is `blocked`, with why."""
        causes = {c.step: c for c in self.conflicts}
        return [change if change.action == "conflict" or change.step not in self.stopped
                else replace(change, action="blocked", fields=(), detail=(
                    f"{causes[self.stopped[change.step]].kind} "
                    f"{causes[self.stopped[change.step]].name} is not ours"))
                for change in changes]


def refusal(changes: Iterable[Change], chosen: Iterable[str]) -> Refusal | None:
    conflicts = tuple(c for c in changes if c.action == "conflict")
    if not conflicts:
        return None
    first: dict[str, Change] = {}
    for change in conflicts:
        first.setdefault(change.step, change)
    return Refusal(tuple(first.values()), stopped_by(set(first), chosen))


def checked_plan(ctx: Context, steps: Iterable[str]) -> tuple[list[Change], Refusal | None]:
    """What `up` of these steps would do: their plan, with what a conflict stops `blocked`.
    The steps they name or need are read too, since a conflict there stops them as well."""
    chosen = [s for s in STEP_ORDER if s in set(steps)]
    everything = plan(ctx, read_for(chosen))
    refused = refusal(everything, chosen)
    shown = [c for c in everything if c.step in chosen]
    return (refused.mark(shown) if refused else shown), refused


def apply(ctx: Context, steps: Iterable[str] = STEP_ORDER,
          on_progress: ProgressCallback | None = None) -> list[Change]:
    """Plan first (read-only): a resource that is not ours stops its step and every step that
    would name it, so nothing of ours ever points at someone else's resource.

    The plan's reads are reused: a resource it found unchanged is not read again, unless a
    step it needs (directly or not) changed something in this run (what that step learned,
    e.g. a new key's ARN, may change what it wants). Everything else is read afresh by its
    step, right before it is changed, creations included: several creates answer success
    for a resource that exists (SNS CreateTopic "is idempotent" and returns the existing
    topic; SQS CreateQueue returns an existing queue's URL when the attributes match;
    CloudWatch PutMetricAlarm "creates or updates"; S3 CreateBucket in us-east-1 "returns
    200 OK" for a bucket you own, per BucketAlreadyOwnedByYou in the S3 API Reference), so
    only a fresh read keeps `up` from taking over what another run or pipeline made."""
    chosen = [s for s in STEP_ORDER if s in set(steps)]
    seen = survey(ctx, read_for(chosen))
    refused = refusal([change for change, _ in seen], chosen)
    unchanged = {(c.kind, c.name): (c, observed) for c, observed in seen
                 if c.action == "unchanged" and observed is not None}
    needs = {s: {n for n in STEPS[s].needs if n in chosen} for s in chosen}
    return _run_graph(ctx, needs, lambda r: r.apply(), on_progress, reverse=False,
                      refused=refused, unchanged=unchanged)


def teardown(ctx: Context, keep_data: bool = False,
             on_progress: ProgressCallback | None = None) -> list[Change]:
    """Each step once the steps that need it, and those that write into it, are gone."""
    after = {s: set(dependents(s)) | set(STEPS[s].removed_after) for s in STEP_ORDER}

    def remove(resource: Resource) -> Change:
        return resource.teardown(keep=keep_data and STEPS[resource.step].data)

    return _run_graph(ctx, after, remove, on_progress, reverse=True)


StepResult = tuple[list[Change], PipelineError | None]


Unchanged = dict[tuple[str, str], tuple[Change, Observed]]


def _run_step(ctx: Context, step: str, work: Callable[[Resource], Change],
              notify: ProgressCallback, reverse: bool, unchanged: Unchanged) -> StepResult:
    """One step's resources in order (reversed for teardown), reporting each. Returns what
    was done, and the error that stopped the step: what it did before stays reported.
    `unchanged`: what the plan found unchanged and may be taken as is (see apply)."""
    items = build_for_teardown(step, ctx) if reverse else build(step, ctx)
    changes: list[Change] = []
    for resource in reversed(items) if reverse else items:
        notify(Progress("start", step, resource.kind, resource.name))
        started = time.monotonic()
        resource.progress = _waiting(notify, step, resource, started)
        known = unchanged.get((resource.kind, resource.name))
        try:
            change = replace(known[0], arn=resource.arn_of(known[1])) if known \
                else work(resource)
        except Exception as exc:
            error = exc if isinstance(exc, PipelineError) else translate(
                exc, endpoint=ctx.factory.endpoint_url)
            notify(Progress("failed", step, resource.kind, resource.name,
                            elapsed=time.monotonic() - started, error=str(error)))
            return changes, error
        changes.append(change)
        notify(Progress("done", step, resource.kind, resource.name, change,
                        time.monotonic() - started))
    return changes, None


def _waiting(notify: ProgressCallback, step: str, resource: Resource,
             started: float) -> Callable[[str], None]:
    def report(message: str) -> None:
        notify(Progress("wait", step, resource.kind, resource.name,
                        elapsed=time.monotonic() - started, detail=message))

    return report


def _run_graph(ctx: Context, waits_for: dict[str, set[str]],
               work: Callable[[Resource], Change], on_progress: ProgressCallback | None,
               *, reverse: bool, refused: Refusal | None = None,
               unchanged: Unchanged | None = None) -> list[Change]:
    """Start each step once everything it waits for is done (graphlib's TopologicalSorter
    hands out the ready ones). A failed step blocks only the steps that wait on it
    (directly or not); the others run to the end, so one re-run finishes the job. The first
    failure is raised with everything that was done, the resources a failed step finished
    before its failure included; steps a conflict stops never start."""
    notify = on_progress or (lambda _event: None)
    done: dict[str, list[Change]] = {}
    blocked: set[str] = set(refused.stopped) if refused else set()
    for conflict in refused.conflicts if refused else ():
        notify(Progress("failed", conflict.step, conflict.kind, conflict.name,
                        error=f"conflict: {conflict.detail}"))
    graph = TopologicalSorter(waits_for)
    graph.prepare()
    running: dict[Future[StepResult], str] = {}
    failure: tuple[str, PipelineError] | None = None
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_STEPS) as pool:
        while graph.is_active():
            for step in sorted(graph.get_ready(), key=STEP_ORDER.index):
                if step in blocked or waits_for.get(step, set()) & blocked:
                    blocked.add(step)  # never starts; what waits for it is blocked in turn
                    graph.done(step)
                else:
                    reuse = unchanged if unchanged and not _changed_before(
                        step, waits_for, done) else {}
                    running[pool.submit(_run_step, ctx, step, work, notify, reverse,
                                        reuse)] = step
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                exc = future.exception()
                changes, error = future.result() if exc is None else ([], translate(exc))
                done[step] = changes
                graph.done(step)
                if error is None:
                    continue
                blocked.add(step)
                if failure is None:
                    failure = (step, error)
    order = [s for s in (reversed(STEP_ORDER) if reverse else STEP_ORDER) if s in done]
    changes = [c for s in order for c in done[s]]
    if failure is not None:
        step, error = failure
        raise StepFailed(f"Step {step} failed: {error}", changes, error.exit_code)
    if refused is not None:
        raise StepFailed(refused.message(), changes, NotOursError.exit_code)
    return changes


def _changed_before(step: str, waits_for: dict[str, set[str]],
                    done: dict[str, list[Change]]) -> bool:
    """Whether a step this one waits for, directly or not, changed anything in this run."""
    upstream, stack = set(), list(waits_for.get(step, ()))
    while stack:
        name = stack.pop()
        if name not in upstream:
            upstream.add(name)
            stack.extend(waits_for.get(name, ()))
    return any(c.action != "unchanged" for name in upstream for c in done.get(name, ()))


def _parallel_map(fn: Callable[[str], T], steps: Iterable[str]) -> dict[str, T]:
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_STEPS) as pool:
        futures = {step: pool.submit(fn, step) for step in steps}
        return {step: future.result() for step, future in futures.items()}


@contextmanager
def aws_errors(ctx: Context) -> Iterator[None]:
    """Translate botocore errors with the endpoint in mind (a dead local AWS gets its hint)."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        raise translate(exc, endpoint=ctx.factory.endpoint_url) from exc
