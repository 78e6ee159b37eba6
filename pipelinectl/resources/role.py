"""The processor's IAM execution role and its one inline policy.

Every statement names an exact ARN of this pipeline. The trust policy has no conditions on
purpose: Lambda does not pass aws:SourceArn/aws:SourceAccount when it assumes an execution
role, so such a condition would make the role unassumable (moto would not notice).
"""

from __future__ import annotations

from typing import Any

from pipelinectl.resources.base import (
    Health,
    Observed,
    Resource,
    parse_policy,
    policy_json,
    tag_dict,
    tag_list,
)
from pipelinectl.resources.topics import topic_key_resource

POLICY_NAME = "pipeline-access"
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
# The item-level actions the processor makes (lambda_src/storage.py, persist.py);
# tests/processor/test_iam.py checks every call it records against this policy.
TABLE_ACTIONS = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"]
# What the Lambda service needs to poll the queue for the mapping (as in the managed
# AWSLambdaSQSQueueExecutionRole), and nothing more.
QUEUE_ACTIONS = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]


class Role(Resource):
    step = "roles"
    kind = "IAM role"

    @property
    def name(self) -> str:
        return self.ctx.names.role

    @property
    def arn(self) -> str:
        return self.ctx.arn("iam", f"role/{self.name}", region=False)

    def inline_policy(self) -> dict[str, Any]:
        ctx, names = self.ctx, self.ctx.names
        bucket = f"arn:{ctx.partition}:s3:::{names.bucket}"
        statements: list[dict[str, Any]] = [
            {"Sid": "ReadIncomingFiles", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{bucket}/incoming/*"},
            {"Sid": "WriteRejects", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": f"{bucket}/rejected/*"},
            {"Sid": "StoreTransactions", "Effect": "Allow", "Action": TABLE_ACTIONS,
             "Resource": ctx.arn("dynamodb", f"table/{names.table}")},
            {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish",
             "Resource": ctx.arn("sns", names.alerts_topic)},
            {"Sid": "ConsumeQueue", "Effect": "Allow", "Action": QUEUE_ACTIONS,
             "Resource": ctx.arn("sqs", names.queue)},
            {"Sid": "DeadLetterInvalidMessages", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": ctx.arn("sqs", names.dlq)},
            {"Sid": "WriteLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": ctx.arn("logs", f"log-group:{names.log_group}:*")},
        ]
        key_resource, key_condition = topic_key_resource(ctx)
        if key_resource:
            statement: dict[str, Any] = {
                "Sid": "UseTopicKey", "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": key_resource}
            if key_condition:
                statement["Condition"] = key_condition
            statements.append(statement)
        return {"Version": "2012-10-17", "Statement": statements}

    def desired(self) -> Observed:
        return {"trust_policy": TRUST_POLICY,
                "inline_policy": parse_policy(policy_json(self.inline_policy())),
                "tags": self.ctx.tags}

    def read(self) -> Observed | None:
        iam = self.ctx.client("iam")
        try:
            role = iam.get_role(RoleName=self.name)["Role"]
        except iam.exceptions.NoSuchEntityException:
            return None
        try:
            inline = iam.get_role_policy(RoleName=self.name, PolicyName=POLICY_NAME)
            policy = parse_policy(inline["PolicyDocument"])
        except iam.exceptions.NoSuchEntityException:
            policy = None
        tags = iam.list_role_tags(RoleName=self.name).get("Tags", [])
        return {"trust_policy": parse_policy(role["AssumeRolePolicyDocument"]),
                "inline_policy": policy, "tags": tag_dict(tags)}

    def create(self) -> None:
        iam = self.ctx.client("iam")
        iam.create_role(
            RoleName=self.name,
            AssumeRolePolicyDocument=policy_json(TRUST_POLICY),
            Description=f"pipelinectl: execution role of {self.ctx.names.function}",
            Tags=tag_list(self.ctx.tags),
        )
        self._put_policy()

    def _put_policy(self) -> None:
        self.ctx.client("iam").put_role_policy(
            RoleName=self.name, PolicyName=POLICY_NAME,
            PolicyDocument=policy_json(self.inline_policy()))

    def update(self, fields: set[str], observed: Observed) -> None:
        iam = self.ctx.client("iam")
        if "trust_policy" in fields:
            iam.update_assume_role_policy(RoleName=self.name,
                                          PolicyDocument=policy_json(TRUST_POLICY))
        if "inline_policy" in fields:
            self._put_policy()
        if "tags" in fields:
            iam.tag_role(RoleName=self.name, Tags=tag_list(self.ctx.tags))

    def delete(self, observed: Observed) -> None:
        iam = self.ctx.client("iam")
        for name in iam.list_role_policies(RoleName=self.name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=self.name, PolicyName=name)
        for attached in iam.list_attached_role_policies(RoleName=self.name).get(
                "AttachedPolicies", []):
            iam.detach_role_policy(RoleName=self.name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=self.name)

    def health(self, observed: Observed) -> Health:
        if observed["inline_policy"] is None:
            return "no inline policy", "error", {}
        return "ready", "ok", {}
