"""Killed at any mutating call, the next run finishes the job (issue 7, "Crash at any call").

For every mutating call k of a clean `up` (and of a clean `teardown`), in both modes — the
call never reached AWS ("before"), or AWS applied it and the client never heard back
("after") — the command is killed there: that call and every later one, in every thread,
dies. Then the same command runs again, normally. Asserted: the re-run exits 0 and the account
holds exactly what a clean `up` builds (nothing missing, nothing twice, no stray resource,
tagged or not — so the teardown test's clean `up` stands for it); for teardown, the re-run
leaves nothing.

The calls are enumerated from a real run (steps one at a time, so call k is the same call in
every run), so a new resource or call is covered without touching this test. Each mode is one
test that walks every k and reports every case that did not converge.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import account_snapshot
import moto
import pytest

from pipelinectl import config as config_module
from pipelinectl import engine
from pipelinectl.clients import ClientFactory, is_mutating
from pipelinectl.localaws import motocompat
from pipelinectl.resources.base import Context

Mode = Literal["before", "after"]


class Killed(BaseException):
    """The process died at this call. A BaseException, so no `except Exception` in the code
    under test can swallow it, just as nothing survives a SIGKILL."""


@dataclass
class Killer:
    """Kills the run at mutating call number `at` (None: never; just records the calls)."""

    at: int | None = None
    mode: Mode = "before"
    calls: list[str] = field(default_factory=list)
    dead: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _current: threading.local = field(default_factory=threading.local)

    def before_call(self, model: Any, **_: Any) -> None:
        if self.dead:
            raise Killed("already dead")
        self._current.index = None
        if not is_mutating(model.name):
            return
        with self._lock:
            index = len(self.calls)
            self.calls.append(f"{model.service_model.service_name}.{model.name}")
        if index == self.at and self.mode == "before":
            self.dead = True
            raise Killed(f"before call {index}")
        self._current.index = index

    def after_call(self, model: Any, **_: Any) -> None:
        if self.mode == "after" and getattr(self._current, "index", None) == self.at:
            self.dead = True
            raise Killed(f"after call {self.at}")


@dataclass
class KillableFactory(ClientFactory):
    killer: Killer = field(default_factory=Killer)

    def _make(self, service: str) -> Any:
        client = super()._make(service)
        client.meta.events.register("before-call.*.*", self.killer.before_call)
        client.meta.events.register("after-call.*.*", self.killer.after_call)
        return client


def context(killer: Killer | None = None) -> Context:
    config = config_module.load({})
    return engine.make_context(config, KillableFactory(config, killer=killer or Killer()))


@pytest.fixture
def serial_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """One step at a time, so mutating call k is the same call in every run."""
    monkeypatch.setattr(engine, "MAX_PARALLEL_STEPS", 1)


@pytest.fixture
def fresh_aws() -> Iterator[Callable[[], Any]]:
    """A new, empty moto account per case (entering mock_aws resets every backend)."""
    mocks: list[Any] = []

    def start() -> Any:
        if mocks:
            mocks.pop().stop()
        mock = moto.mock_aws()
        mock.start()
        motocompat.apply()
        mocks.append(mock)
        return mock

    yield start
    for mock in mocks:
        mock.stop()


def killed_run(command: Callable[[Context], Any], killer: Killer) -> None:
    with contextlib.suppress(Killed, Exception):
        command(context(killer))
    assert killer.dead, f"the run ended before mutating call {killer.at}"


def up(ctx: Context) -> Any:
    return engine.apply(ctx)


def teardown(ctx: Context) -> Any:
    return engine.teardown(ctx)


def brief(value: Any) -> str:
    return json.dumps(value, sort_keys=True)[:800]


def describe(got: dict[str, Any], want: dict[str, Any]) -> str:
    """The sections that differ, briefly: enough to see what is missing or extra."""
    return "; ".join(f"{section}: got {brief(got.get(section))}, want "
                     f"{brief(want.get(section))}"
                     for section in sorted(set(got) | set(want))
                     if got.get(section) != want.get(section))


@dataclass
class Cases:
    calls: list[str]
    failures: list[str] = field(default_factory=list)

    def check(self, k: int, mode: Mode, ok: bool, why: Callable[[], str]) -> None:
        if not ok:
            self.failures.append(f"killed {mode} call {k} ({self.calls[k]}): {why()}")

    def report(self) -> str:
        return f"{len(self.failures)} of {len(self.calls)} cases did not converge:\n" + \
            "\n".join(self.failures)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_up_killed_at_any_mutating_call_converges_on_the_next_run(
        mode: Mode, serial_steps: None, fresh_aws: Callable[[], Any]) -> None:
    fresh_aws()
    recorder = Killer()
    up(context(recorder))
    clean = account_snapshot.take()
    assert len(recorder.calls) > 20, recorder.calls  # the enumeration really ran
    cases = Cases(recorder.calls)
    for k in range(len(recorder.calls)):
        fresh_aws()
        killed_run(up, Killer(at=k, mode=mode))
        try:
            up(context())
        except Exception as exc:
            cases.check(k, mode, False, lambda exc=exc: f"re-run failed: {exc}")
            continue
        after = account_snapshot.take()
        cases.check(k, mode, after == clean, lambda after=after: describe(after, clean))
        # No teardown here: the account now equals a clean `up`'s, whose teardown the
        # teardown test below covers call by call.
    assert not cases.failures, cases.report()


@pytest.mark.parametrize("mode", ["before", "after"])
def test_teardown_killed_at_any_mutating_call_finishes_on_the_next_run(
        mode: Mode, serial_steps: None, fresh_aws: Callable[[], Any]) -> None:
    fresh_aws()
    up(context())
    recorder = Killer()
    teardown(context(recorder))
    assert not account_snapshot.leftovers(account_snapshot.take())
    assert len(recorder.calls) > 10, recorder.calls
    cases = Cases(recorder.calls)
    for k in range(len(recorder.calls)):
        fresh_aws()
        up(context())
        killed_run(teardown, Killer(at=k, mode=mode))
        try:
            teardown(context())
        except Exception as exc:
            cases.check(k, mode, False, lambda exc=exc: f"re-run failed: {exc}")
            continue
        left = account_snapshot.leftovers(account_snapshot.take())
        cases.check(k, mode, not left, lambda left=left: f"left {brief(left)}")
    assert not cases.failures, cases.report()
