"""The policy evaluator against AWS's documented evaluation logic and examples (IAM User Guide,
"Policy evaluation logic", "IAM JSON policy elements: Condition operators", "Single-valued vs.
multivalued context keys"; KMS Developer Guide, "Key policies in AWS KMS")."""

from __future__ import annotations

from typing import Any

import pytest

from pipelinectl.localaws.policy import Principal, Request, evaluate

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = Principal(ACCOUNT, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/app/fn", role_arn=ROLE)
EVENTS = Principal(ACCOUNT, service="events.amazonaws.com")
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:t"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k-1"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def req(action: str, resource: str, who: Principal = SESSION, **context: list[str]) -> Request:
    return Request(who, action, resource, {k.lower(): v for k, v in context.items()})


def test_nothing_allows_is_an_implicit_deny_named_as_aws_words_it() -> None:
    request = req("s3:GetObject", "arn:aws:s3:::b/k")
    decision = evaluate(request, [doc(allow("s3:PutObject"))])
    assert not decision.allowed and not decision.explicit
    assert decision.message(request) == (
        f"User: {SESSION.arn} is not authorized to perform: s3:GetObject on resource: "
        "arn:aws:s3:::b/k because no identity-based policy allows the s3:GetObject action")


def test_explicit_deny_wins_over_any_allow() -> None:
    deny = {"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    request = req("s3:GetObject", "arn:aws:s3:::b/k")
    decision = evaluate(request, [doc(allow("s3:GetObject"))], doc({**deny, "Principal": "*"}))
    assert not decision.allowed and decision.explicit and decision.statement == "NoDeletes"
    assert decision.message(request).endswith("with an explicit deny in a resource-based policy")


def test_identity_or_resource_policy_allows_within_one_account() -> None:
    request = req("sns:Publish", TOPIC)
    by_topic = doc(allow("sns:Publish", TOPIC, Principal={"AWS": ROLE}))
    assert evaluate(request, [], by_topic).allowed
    assert evaluate(request, [doc(allow("sns:Publish", TOPIC))], None).allowed


def test_an_account_principal_delegates_to_identity_policies() -> None:
    request = req("sns:Publish", TOPIC)
    account = doc(allow("sns:Publish", TOPIC, Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    assert not evaluate(request, [], account).allowed


def test_not_action_and_not_resource() -> None:
    everything_but_iam = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate(req("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q"), [everything_but_iam]
                    ).allowed
    assert not evaluate(req("iam:CreateUser", "*"), [everything_but_iam]).allowed
    not_prod = doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::prod/*"})
    assert evaluate(req("s3:GetObject", "arn:aws:s3:::dev/a"), [not_prod]).allowed
    assert not evaluate(req("s3:GetObject", "arn:aws:s3:::prod/a"), [not_prod]).allowed


def test_actions_are_case_insensitive_and_arns_take_wildcards() -> None:
    policy = doc(allow("S3:get*", "arn:aws:s3:::bucket-?/incoming/*"))
    assert evaluate(req("s3:GetObject", "arn:aws:s3:::bucket-1/incoming/a/b.csv"), [policy]
                    ).allowed
    assert not evaluate(req("s3:GetObject", "arn:aws:s3:::bucket-12/incoming/a"), [policy]
                        ).allowed


def test_a_missing_condition_key_fails_a_positive_operator_and_is_reported() -> None:
    statement = allow("sns:Publish", TOPIC, Principal={"Service": "events.amazonaws.com"},
                      Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})
    request = req("sns:Publish", TOPIC, EVENTS)
    decision = evaluate(request, [], doc(statement))
    assert not decision.allowed
    assert "aws:SourceAccount" in decision.reason() and "key absent" in decision.reason()
    assert evaluate(req("sns:Publish", TOPIC, EVENTS, **{"aws:SourceAccount": [ACCOUNT]}), [],
                    doc(statement)).allowed


def test_if_exists_holds_when_the_key_is_absent() -> None:
    statement = allow("s3:ListBucket", Condition={"StringLikeIfExists": {"s3:prefix": "in/*"}})
    assert evaluate(req("s3:ListBucket", "arn:aws:s3:::b"), [doc(statement)]).allowed
    assert not evaluate(req("s3:ListBucket", "arn:aws:s3:::b", **{"s3:prefix": ["out/"]}),
                        [doc(statement)]).allowed


@pytest.mark.parametrize(("qualifier", "aliases", "allowed"), [
    ("ForAnyValue:StringEquals", ["alias/a", "alias/x"], True),
    ("ForAnyValue:StringEquals", ["alias/x"], False),
    ("ForAllValues:StringEquals", ["alias/a", "alias/b"], True),
    ("ForAllValues:StringEquals", ["alias/a", "alias/x"], False),
    ("ForAllValues:StringEquals", None, True),  # documented: no key, the condition holds
    ("ForAnyValue:StringEquals", None, False),
])
def test_multivalued_keys(qualifier: str, aliases: list[str] | None, allowed: bool) -> None:
    statement = allow("kms:Decrypt", Condition={qualifier: {
        "kms:ResourceAliases": ["alias/a", "alias/b"]}})
    context = {"kms:ResourceAliases": aliases} if aliases else {}
    assert evaluate(req("kms:Decrypt", KEY, **context), [doc(statement)]).allowed is allowed


def test_a_key_policy_must_allow_the_caller_or_enable_iam_policies() -> None:
    request = req("kms:Decrypt", KEY)
    iam = [doc(allow("kms:Decrypt", KEY))]
    no_root = doc(allow("kms:*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}))
    refused = evaluate(request, iam, no_root, key_policy=True)
    assert not refused.allowed
    assert refused.message(request).endswith(
        "because no resource-based policy allows the kms:Decrypt action")
    root = doc(allow("kms:*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    assert evaluate(request, iam, root, key_policy=True).allowed
    assert not evaluate(request, [], root, key_policy=True).allowed
    direct = doc(allow("kms:Decrypt", Principal={"AWS": ROLE}))
    assert evaluate(request, [], direct, key_policy=True).allowed


def test_service_principals_match_only_their_own_statements() -> None:
    cloudwatch = doc(allow("sns:Publish", TOPIC, Principal={"Service": "cloudwatch.amazonaws.com"}))
    assert not evaluate(req("sns:Publish", TOPIC, EVENTS), [], cloudwatch).allowed
    assert evaluate(req("sns:Publish", TOPIC, EVENTS), [], doc(
        allow("sns:Publish", TOPIC, Principal="*"))).allowed
