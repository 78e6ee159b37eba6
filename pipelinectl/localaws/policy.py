"""One IAM policy evaluator for the local AWS: deliveries between services and the function's calls.

It follows the evaluation logic AWS documents for a request within one account (IAM User
Guide, "Policy evaluation logic" > "How AWS enforcement code logic evaluates requests" and
"Policy evaluation for requests within a single account"):

1. an explicit ``Deny`` in any applicable policy (identity-based or resource-based) wins;
2. otherwise the request is allowed when the identity-based policies *or* the resource's own
   policy allow it ("If either the identity-based policy or the resource-based policy within
   the same account allows the request and the other doesn't, the request is still allowed");
3. otherwise it is implicitly denied.

KMS is the documented exception (KMS Developer Guide, "Key policies in AWS KMS"): "Unless the
key policy explicitly allows it, you cannot use IAM policies to allow access to a KMS key". A
key policy statement naming the account (``arn:aws:iam::ACCOUNT:root``) is what lets identity
policies count ("Allows access to the AWS account and enables IAM policies"). For every other
service the same statement grants an IAM role nothing by itself: naming an account as principal
delegates to that account's identity policies (IAM User Guide, "AWS account principals").

A statement applies when its ``Action``/``NotAction``, ``Resource``/``NotResource``,
``Principal``/``NotPrincipal`` (resource policies) and ``Condition`` all match; conditions are
evaluated by ``iamconditions`` (every operator, ``…IfExists``, ``ForAllValues``/``ForAnyValue``,
missing keys as IAM documents them). Actions match case-insensitively with ``*``/``?``; ARNs
with ``*``/``?`` as in ``ArnLike``.

Not evaluated (limits): SCPs/RCPs, permission boundaries, session policies, grants, ACLs,
VPC endpoint policies, policy variables (``${aws:username}``), cross-account requests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipelinectl.localaws.iamconditions import _like, conditions_met, unmet_condition

IDENTITY = "identity-based"
RESOURCE = "resource-based"


@dataclass(frozen=True)
class Principal:
    """Who asks: an IAM role session (``arn`` = the assumed-role ARN, ``role_arn`` its role)
    or an AWS service principal (``service``, e.g. ``events.amazonaws.com``)."""

    account: str
    arn: str = ""
    role_arn: str = ""
    service: str = ""

    @property
    def name(self) -> str:
        return self.service or self.arn


@dataclass(frozen=True)
class Request:
    """The request context: principal, action (``sns:Publish``), resource ARN, condition keys
    (lower-cased key -> values)."""

    principal: Principal
    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and why: which policy type decided, the deny's statement, or for an
    implicit deny the statements that would have allowed but for a condition."""

    allowed: bool
    policy_type: str = IDENTITY
    explicit: bool = False
    statement: str = ""
    unmet: tuple[str, ...] = ()

    def message(self, request: Request, who: str = "User") -> str:
        """AWS's wording (IAM User Guide, "Troubleshoot access denied error messages"):
        ``User: P is not authorized to perform: A on resource: R because no T policy allows
        the A action`` / ``… with an explicit deny in a T policy``."""
        head = (f"{who}: {request.principal.name} is not authorized to perform: "
                f"{request.action} on resource: {request.resource}")
        if self.explicit:
            return f"{head} with an explicit deny in a {self.policy_type} policy"
        return f"{head} because no {self.policy_type} policy allows the {request.action} action"

    def reason(self) -> str:
        """For the live view: explicit deny / no statement allows / which condition failed."""
        if self.allowed:
            return "allowed"
        if self.explicit:
            return f"explicit deny in the {self.policy_type} policy (statement {self.statement})"
        if self.unmet:
            return "condition not met: " + "; ".join(self.unmet)
        return f"no statement of the {self.policy_type} policy allows it"


def parse(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy given as JSON text, a dict, or None (no policy)."""
    if document is None or document in ("", b""):
        return []
    if isinstance(document, bytes):
        document = document.decode()
    if isinstance(document, str):
        return list(_parsed_text(document))
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


@functools.lru_cache(maxsize=256)
def _parsed_text(document: str) -> tuple[dict[str, Any], ...]:
    """Each policy text is decoded once: the local AWS evaluates the same few documents on
    every request. The statements are only read, never changed."""
    statements = json.loads(document).get("Statement", [])
    return (statements,) if isinstance(statements, dict) else tuple(statements)


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_like(a.lower(), action.lower()) for a in _listed(statement["NotAction"]))
    return any(_like(a.lower(), action.lower()) for a in _listed(statement.get("Action", [])))


def _resource_matches(statement: dict[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_like(r, resource) for r in _listed(statement["NotResource"]))
    if "Resource" not in statement:  # allowed in resource policies: the resource itself
        return True
    return any(_like(r, resource) for r in _listed(statement["Resource"]))


def _principal_match(principal_block: Any, who: Principal) -> str:
    """"direct" (this principal), "account" (its account: delegation to IAM) or ""."""
    if principal_block == "*":
        return "direct"
    if not isinstance(principal_block, dict):
        return ""
    if who.service and who.service in _listed(principal_block.get("Service", [])):
        return "direct"
    found = ""
    for value in _listed(principal_block.get("AWS", [])):
        if value == "*" or (who.arn and value in (who.arn, who.role_arn)):
            return "direct"
        if not who.service and value in (who.account, f"arn:aws:iam::{who.account}:root"):
            found = "account"
    return found


@dataclass
class _Outcome:
    deny: str | None = None  # Sid (or index) of an applicable Deny
    allow: str = ""  # "", "account" or "direct"
    unmet: list[str] = field(default_factory=list)


def _scan(statements: Iterable[dict[str, Any]], request: Request, resource_policy: bool
          ) -> _Outcome:
    out = _Outcome()
    for index, statement in enumerate(statements):
        if not (_action_matches(statement, request.action)
                and _resource_matches(statement, request.resource)):
            continue
        kind = "direct"
        if resource_policy:
            if "NotPrincipal" in statement:
                kind = "" if _principal_match(statement["NotPrincipal"], request.principal) \
                    else "direct"
            else:
                kind = _principal_match(statement.get("Principal"), request.principal)
            if not kind:
                continue
        condition = statement.get("Condition") or {}
        sid = str(statement.get("Sid") or f"#{index + 1}")
        if not conditions_met(condition, request.context):
            if statement.get("Effect") == "Allow":
                out.unmet.append(f"statement {sid}: {unmet_condition(condition, request.context)}")
            continue
        if statement.get("Effect") == "Deny":
            out.deny = out.deny or sid
        elif kind == "direct" or not out.allow:
            out.allow = kind
    return out


def evaluate(request: Request, identity: Iterable[Any] = (), resource: Any = None, *,
             key_policy: bool = False) -> Decision:
    """Decide ``request`` against the principal's identity policies (documents) and the
    resource's policy (``key_policy=True`` when it is a KMS key policy)."""
    mine = _scan([s for doc in identity for s in parse(doc)], request, resource_policy=False)
    theirs = _scan(parse(resource), request, resource_policy=True)
    if mine.deny:
        return Decision(False, IDENTITY, True, mine.deny)
    if theirs.deny:
        return Decision(False, RESOURCE, True, theirs.deny)
    unmet = tuple(mine.unmet + theirs.unmet)
    if theirs.allow == "direct":
        return Decision(True, RESOURCE)
    if key_policy:
        if theirs.allow == "account" and mine.allow:
            return Decision(True, IDENTITY)
        missing = IDENTITY if theirs.allow == "account" else RESOURCE
        return Decision(False, missing, unmet=unmet)
    if mine.allow:
        return Decision(True, IDENTITY)
    return Decision(False, RESOURCE if request.principal.service else IDENTITY, unmet=unmet)
