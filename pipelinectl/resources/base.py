"""The one interface every resource kind implements, and the planning built on it.

A resource reads its remote state into a flat dict of comparable fields, states the fields it
wants, and the generic `plan()` compares the two. `apply()` then makes only the calls the
differing fields need, which is why a second `up` makes no mutating call, and why `plan`,
`up --dry-run` and `status` need no special code per resource. ARNs are derived from
account, region and names, so planning needs no resource to exist.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeVar

from pipelinectl.clients import Client, ClientFactory
from pipelinectl.config import TAG_KEY, Config, Names
from pipelinectl.errors import NotOursError, PipelineError

Action = Literal["create", "update", "replace", "unchanged", "conflict", "delete", "absent",
                 "refused", "keep", "blocked"]
Observed = dict[str, Any]
T = TypeVar("T")
HealthLevel = Literal["ok", "warn", "error"]
Health = tuple[str, HealthLevel, dict[str, Any]]


class _KnownAfterApply:
    """A desired value that depends on a resource not created yet (Terraform's phrase)."""

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "(known after apply)"


KNOWN_AFTER_APPLY: Any = _KnownAfterApply()


@dataclass(frozen=True)
class Change:
    """What one resource needs: the unit of plan output and of apply."""

    step: str
    kind: str
    name: str
    action: Action
    fields: tuple[str, ...] = ()
    detail: str = ""
    #: Each drifted field with its observed and desired value (secrets hidden), so a CI
    #: job can print a useful diff. Not compared: values may be unhashable dicts.
    drift: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    #: The resource's ARN as AWS reported it (apply sets it; plan rows leave it empty).
    arn: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "name": self.name, "action": self.action,
                "fields": list(self.fields), "detail": self.detail,
                "drift": list(self.drift)}


@dataclass(frozen=True)
class StatusRow:
    """One line of `status`: what exists, where, and whether it is healthy."""

    step: str
    kind: str
    name: str
    arn: str
    state: str
    health: Literal["ok", "warn", "error", "missing"]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "name": self.name, "arn": self.arn,
                "state": self.state, "health": self.health, "details": self.details}


@dataclass
class Learned:
    """What a run learns from AWS that other resources need, one typed field each (as
    Chalice's output variables): the resource that reads or creates the value records it,
    the others take it in desired(), which thus makes no call. Each value has one producer,
    which the step graph runs before its consumers (`roles` needs `topic`, `lambda` needs
    `queue`), and `plan` reads every resource before it compares any. Steps run in threads:
    a field is written by one assignment and read as one attribute, which need no lock."""

    #: The ARN of the topics' KMS key (kms.PipelineKey, or the key topic_kms_key names).
    topic_key_arn: str | None = None
    #: The DLQ's URL (queues.DeadLetterQueue): the processor's DLQ_URL.
    dlq_url: str | None = None
    #: The queue's URL (queues.Queue): the processor's QUEUE_URL (large files' work messages).
    queue_url: str | None = None
    #: The bucket's pipelinectl:eventbridge-enabled-at stamp (bucket.Bucket), for `up`'s
    #: warning while S3's EventBridge window is open (bucket_events).
    eventbridge_enabled_at: str | None = None


@dataclass
class Context:
    """Everything a resource needs to know about where it lives, and what the run learned."""

    config: Config
    factory: ClientFactory
    account: str
    region: str
    learned: Learned = field(default_factory=Learned)
    #: The processor's zip (packaging.Artifact) once artifact() built it (tests set it).
    zip_artifact: Any = field(default=None, repr=False)
    _artifact_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def artifact(self) -> Any:
        """The processor's zip, built once per run from local files (no AWS call)."""
        with self._artifact_lock:
            if self.zip_artifact is None:
                from pipelinectl import packaging

                self.zip_artifact = packaging.build()
            return self.zip_artifact

    @property
    def names(self) -> Names:
        return self.config.names(self.account, self.region)

    @property
    def tags(self) -> dict[str, str]:
        return self.config.resource_tags()

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def client(self, service: str) -> Client:
        return self.factory.client(service)

    def arn(self, service: str, resource: str, *, region: bool = True,
            account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")


class Resource(ABC):
    """One AWS resource the pipeline owns."""

    step: ClassVar[str]
    kind: ClassVar[str]
    #: False for things that cannot carry tags (subscriptions, mappings, aliases): they are
    #: ours because they hang off a resource that is ours and are only found through it.
    taggable: ClassVar[bool] = True
    #: Fields whose values may hold secrets: the plan names them, never shows their values.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    #: Set by the engine for the run: tells the user what this resource is waiting for.
    progress: Callable[[str], None] | None = None
    #: Set by the engine's pre-plan: what it read of every resource, by (kind, name), so an
    #: untaggable resource judges its parents' ownership without reading them again.
    seen: Mapping[tuple[str, str], Observed | None] | None = None

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    @abstractmethod
    def name(self) -> str: ...

    @property
    @abstractmethod
    def arn(self) -> str: ...

    @abstractmethod
    def read(self) -> Observed | None:
        """Remote state as {field: value} (plus "tags"), or None when absent."""

    @abstractmethod
    def desired(self) -> Observed:
        """The fields we want, in the same shape read() returns them."""

    @abstractmethod
    def create(self) -> str | None:
        """Create it; returns the ARN AWS assigned where it is not derived from names."""

    @abstractmethod
    def update(self, fields: set[str], observed: Observed) -> None: ...

    @abstractmethod
    def delete(self, observed: Observed) -> None: ...

    def health(self, observed: Observed) -> Health:
        """State text, health and details for `status`; override where there is more."""
        return "exists", "ok", {}

    def arn_of(self, observed: Observed) -> str:
        """The ARN of what read() found: `arn` (derived from names, fixed) unless AWS
        assigns it (subscriptions, mappings, keys), which override this."""
        return self.arn

    def wait_deleted(self, observed: Observed) -> None:
        """Wait until a resource that read() reported as {"deleting": True} is gone. Only
        kinds whose deletion AWS finishes asynchronously report that, and override this."""
        raise NotImplementedError(f"{self.kind} has no deleting state")

    def waiting(self, message: str) -> None:
        """Say what we wait for (the engine shows it as progress)."""
        if self.progress is not None:
            self.progress(message)

    # -- generic behaviour built on the methods above -------------------------------------

    def parents(self) -> list[Resource]:
        """What an untaggable resource hangs off: it is ours only if they all are."""
        return []

    def owner_problem(self, observed: Observed) -> str | None:
        if not self.taggable:
            for parent in self.parents():
                key = (parent.kind, parent.name)
                seen = self.seen[key] if self.seen is not None and key in self.seen \
                    else parent.read()
                problem = parent.owner_problem(seen) if seen is not None else None
                if problem:
                    return f"hangs off {parent.kind} {parent.name}, which {problem}"
            return None
        owner = (observed.get("tags") or {}).get(TAG_KEY)
        if owner == self.ctx.config.name:
            return None
        if owner is None:
            return f"exists without the tag {TAG_KEY}={self.ctx.config.name}"
        return f"belongs to pipeline {owner!r}"

    def change(self, action: Action, fields: tuple[str, ...] = (), detail: str = "") -> Change:
        return Change(self.step, self.kind, self.name, action, fields, detail)

    def plan(self, observed: Observed | None = None, *, read: bool = True) -> Change:
        if read:
            observed = self.read()
        if observed is None:
            return self.change("create")
        if observed.get("deleting"):  # whoever owned it, it is going: ours comes after it
            return self.change("create", detail=f"the previous {self.kind} is still being "
                               "deleted: up waits until it is gone, then creates it")
        problem = self.owner_problem(observed)
        if problem:
            return self.change("conflict", detail=problem)
        wanted = self.desired()
        differing = tuple(k for k, v in wanted.items() if not _matches(k, observed.get(k), v))
        if not differing:
            return self.change("unchanged")
        drift = tuple(drifted(k, observed.get(k), wanted[k], secret=k in self.secret_fields)
                      for k in differing)
        return replace(self.change("update", differing), drift=drift)

    def apply(self) -> Change:
        observed = self.read()
        planned = self.plan(observed, read=False)
        if planned.action == "conflict":
            raise NotOursError(
                f"The {self.kind} {self.name!r} {planned.detail}; it is not this pipeline's, "
                "so pipelinectl will not touch it. Choose another --name or set its name "
                "in [names] of pipeline.toml."
            )
        assigned: str | None = None
        if planned.action == "create":
            if observed is not None and observed.get("deleting"):
                self.wait_deleted(observed)
            try:
                assigned = self.create()
            except Exception as exc:
                if error_code(exc) not in CREATED_MEANWHILE:
                    raise
                return self._adopt_created_meanwhile(exc)
        elif planned.action == "replace" and observed is not None:
            self.delete(observed)
            assigned = self.create()
        elif planned.action == "update" and observed is not None:
            self.update(set(planned.fields), observed)
        if assigned is None and observed is not None and planned.action != "create":
            assigned = self.arn_of(observed)
        return replace(planned, arn=assigned or self.arn)

    def _adopt_created_meanwhile(self, exc: Exception) -> Change:
        """Another run created this resource between our read and our create (two `up` at
        once): adopt it when it is ours, bringing it to the desired state like any update."""
        observed = self.read()
        if observed is None:
            raise exc
        planned = self.plan(observed, read=False)
        if planned.action == "conflict":
            raise PipelineError(
                f"The {self.kind} {self.name!r} was created by someone else while this run was "
                f"creating it, and it {planned.detail}. If another `pipelinectl up` is running, "
                "let it finish, then run `pipelinectl up` again."
            ) from exc
        if planned.action == "update":
            self.update(set(planned.fields), observed)
        elif planned.action != "unchanged":  # e.g. still being deleted: not another run's
            raise exc
        return replace(planned, detail="created meanwhile by another run; adopted",
                       arn=self.arn_of(observed))

    def teardown(self, keep: bool = False) -> Change:
        observed = self.read()
        if observed is None:
            return self.change("absent")
        if observed.get("deleting"):  # an earlier teardown started it: see it through
            self.wait_deleted(observed)
            return self.change("absent", detail="its deletion was already under way")
        problem = self.owner_problem(observed)
        if problem:
            return self.change("refused", detail=problem)
        if keep:
            return self.change("keep", detail="kept (--keep-data)")
        self.delete(observed)
        return self.change("delete")

    def status(self) -> StatusRow:
        observed = self.read()
        if observed is None:
            return StatusRow(self.step, self.kind, self.name, self.arn, "missing", "missing")
        if observed.get("deleting"):
            return StatusRow(self.step, self.kind, self.name, self.arn, "being deleted",
                             "missing")
        problem = self.owner_problem(observed)
        if problem:
            return StatusRow(self.step, self.kind, self.name, self.arn_of(observed),
                             f"not ours: {problem}", "error")
        state, health, details = self.health(observed)
        return StatusRow(self.step, self.kind, self.name, self.arn_of(observed), state, health,
                         details)


SECRET = "(secret: not shown)"


def drifted(key: str, have: Any, want: Any, *, secret: bool = False) -> dict[str, Any]:
    """One drifted field for the plan. A secret field (e.g. the function's environment, which
    anyone may have given a password) shows only which of its keys differ, never values."""
    if not secret:
        return {"field": key, "observed": have, "desired": want}
    old = have if isinstance(have, dict) else {}
    new = want if isinstance(want, dict) else {}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return {"field": key, "observed": SECRET, "desired": SECRET, "keys": keys}


def _matches(key: str, have: Any, want: Any) -> bool:
    """Tags match when ours are present: tags someone else added are theirs to keep."""
    if key == "tags":
        return isinstance(have, dict) and all(have.get(k) == v for k, v in want.items())
    return bool(have == want)


# What a create answers when the resource appeared since we read it (another run made it),
# per each API reference's error list: IAM "EntityAlreadyExists" (the request "attempted to
# create a resource that already exists"), KMS CreateAlias "AlreadyExistsException", Logs
# CreateLogGroup "ResourceAlreadyExistsException", DynamoDB CreateTable
# "ResourceInUseException", S3 "BucketAlreadyOwnedByYou", Lambda "ResourceConflictException"
# ("The resource already exists, or another operation is in progress"), SQS "QueueNameExists".
# Adoption re-reads first, so a code that meant something else finds nothing new to adopt.
CREATED_MEANWHILE = frozenset({
    "EntityAlreadyExists", "AlreadyExistsException", "ResourceAlreadyExistsException",
    "ResourceInUseException", "BucketAlreadyOwnedByYou", "ResourceConflictException",
    "QueueNameExists",
})

# About a minute in all: how long AWS's eventual consistency (IAM propagation, a table's
# backups becoming available) is worth waiting for before telling the user.
SETTLE_DELAYS = (1, 2, 3, 5, 8, 10, 10, 10, 10)


def retry_while(settling: Callable[[Exception], bool], call: Callable[[], T],
                give_up: Callable[[Exception], str], delays: Sequence[float] = SETTLE_DELAYS,
                on_retry: Callable[[Exception], None] | None = None) -> T:
    """Retry `call` while AWS answers with a state that settles by itself, and nothing else;
    after `delays`, raise a PipelineError with `give_up(last error)`. `on_retry` hears of
    each refusal (to tell the user what is being waited for)."""
    for delay in delays:
        try:
            return call()
        except Exception as exc:
            if not settling(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
        time.sleep(delay)
    try:
        return call()
    except Exception as exc:
        if not settling(exc):
            raise
        raise PipelineError(give_up(exc)) from exc


def wait_until(done: Callable[[], bool], delays: Sequence[float] = SETTLE_DELAYS) -> bool:
    """Poll `done` (for AWS operations that finish asynchronously and have no boto3 waiter);
    False if it still is not done once `delays` have passed."""
    for delay in delays:
        if done():
            return True
        time.sleep(delay)
    return done()


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def policy_json(document: dict[str, Any]) -> str:
    """Canonical JSON so equal policies compare equal as text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def parse_policy(text: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Policies come back as JSON text, URL-encoded JSON (IAM) or already parsed."""
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        return text
    from urllib.parse import unquote

    try:
        parsed: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        parsed = json.loads(unquote(text))
    return parsed


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str,
                                                                                       str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tag_dict(items: list[dict[str, str]] | None, key: str = "Key",
             value: str = "Value") -> dict[str, str]:
    return {item[key]: item[value] for item in items or []}
