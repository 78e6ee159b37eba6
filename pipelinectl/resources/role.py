"""The processor's IAM execution role and its one inline policy.

Every statement names an exact ARN of this pipeline. The trust policy has no conditions on
purpose: Lambda does not pass aws:SourceArn/aws:SourceAccount when it assumes an execution
role, so such a condition would make the role unassumable (moto would not notice).
"""

from __future__ import annotations

from typing import Any

from pipelinectl.errors import PipelineError
from pipelinectl.resources.base import (
    KNOWN_AFTER_APPLY,
    Change,
    Health,
    Observed,
    Resource,
    parse_policy,
    policy_json,
    tag_dict,
    tag_list,
)
from pipelinectl.resources.kms import look_up_topic_key, topic_key_arn

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

    def inline_policy(self, key_arn: str | None) -> dict[str, Any]:
        """The grants, given the ARN of the topics' key (None: topics not encrypted)."""
        ctx, names = self.ctx, self.ctx.names
        bucket = f"arn:{ctx.partition}:s3:::{names.bucket}"
        statements: list[dict[str, Any]] = [
            {"Sid": "ReadIncomingFiles", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{bucket}/incoming/*"},
            # Without s3:ListBucket, S3 answers GetObject on a missing key with 403
            # AccessDenied instead of 404 NoSuchKey (S3 API Reference, GetObject,
            # "Permissions"), and a missing object could not be told from a denied read.
            # Limited to listing under incoming/ with the s3:prefix condition key (IAM User
            # Guide example "Allows access to a home directory in Amazon S3", StringLike on
            # s3:prefix). S3 does not document which s3:prefix it evaluates for this 404/403
            # decision; if it is not met, a missing object stays a 403, which the processor
            # retries and the queue's redrive policy finally moves to the DLQ.
            {"Sid": "TellMissingIncomingFiles", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": bucket, "Condition": {"StringLike": {"s3:prefix": "incoming/*"}}},
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
            # Large files: the parts and continuations the processor queues for itself
            # (lambda_src/split.py), on the pipeline's own queue only.
            {"Sid": "ContinueLargeFiles", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": ctx.arn("sqs", names.queue)},
            {"Sid": "WriteLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": ctx.arn("logs", f"log-group:{names.log_group}:*")},
        ]
        if key_arn:
            statements.append({"Sid": "UseTopicKey", "Effect": "Allow",
                               "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                               "Resource": key_arn})
        return {"Version": "2012-10-17", "Statement": statements}

    def _wanted_policy(self) -> Any:
        """The inline policy as desired; KNOWN_AFTER_APPLY while the topics' key is not made."""
        key_arn = topic_key_arn(self.ctx)
        if key_arn is KNOWN_AFTER_APPLY:
            return KNOWN_AFTER_APPLY
        return parse_policy(policy_json(self.inline_policy(key_arn)))

    def plan(self, observed: Observed | None = None, *, read: bool = True) -> Change:
        """A key named by an alias of the user's is looked up here, not in desired()."""
        look_up_topic_key(self.ctx)
        return super().plan(observed, read=read)

    def desired(self) -> Observed:
        return {"trust_policy": TRUST_POLICY, "inline_policy": self._wanted_policy(),
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
        policy = self._policy_to_put()  # before CreateRole: a bad key setting creates nothing
        iam.create_role(
            RoleName=self.name,
            AssumeRolePolicyDocument=policy_json(TRUST_POLICY),
            Description=f"pipelinectl: execution role of {self.ctx.names.function}",
            Tags=tag_list(self.ctx.tags),
        )
        self._put_policy(policy)

    def _policy_to_put(self) -> dict[str, Any]:
        policy = self._wanted_policy()
        if policy is KNOWN_AFTER_APPLY:  # the step graph runs `topic` first; alone, say so
            raise PipelineError(
                f"The KMS key {self.ctx.names.kms_alias} does not exist yet: run `pipelinectl "
                "topic` (or `pipelinectl up`) before `pipelinectl roles`.")
        return dict(policy)

    def _put_policy(self, policy: dict[str, Any] | None = None) -> None:
        document = policy if policy is not None else self._policy_to_put()
        self.ctx.client("iam").put_role_policy(
            RoleName=self.name, PolicyName=POLICY_NAME, PolicyDocument=policy_json(document))

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
