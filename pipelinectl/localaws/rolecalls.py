"""The function runs as its execution role: every call its credentials make is authorized.

Lambda hands a function the temporary credentials of its execution role (Lambda Developer
Guide, "Defining Lambda function permissions with an execution role"). Here a worker gets
credentials from moto's STS ``AssumeRole`` of the function's role, with the function name as
session name, so ``GetCallerIdentity`` says ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION``.
moto's own IAM access control (``INITIAL_NO_AUTH_ACTION_COUNT``) is not used: it is global
(it would refuse the user's own ``testing`` credentials too), it checks identity policies only,
and against resource ``*`` for most services. Instead moto's per-request authorization hook
(``ActionAuthenticatorMixin._authenticate_and_authorize_action``, called for every request
with the parsed request) is patched: a request signed by a role session issued here is
evaluated by ``policy.py`` against the role's identity policies together with the resource's
policy (bucket, topic, queue, key); any other caller (the CLI, the AWS CLI, tests) is left
unrestricted, as an administrator would be.

A denied call gets the error its service returns, in AWS's wording (IAM User Guide,
"Troubleshoot access denied error messages"): S3 ``AccessDenied`` (403), SNS
``AuthorizationError`` (403, botocore's SNS model), SQS ``AccessDenied`` (403), DynamoDB, KMS
and CloudWatch Logs ``AccessDeniedException`` (400). Publishing to an encrypted topic also
needs ``kms:GenerateDataKey`` and ``kms:Decrypt`` on the topic's key, which SNS checks with
the caller's credentials through SNS (``kms:ViaService``); a refusal is SNS's
``KMSAccessDenied`` (400, botocore's SNS model).

S3 GetObject on a missing key answers 404 only to a caller allowed ``s3:ListBucket`` (S3 API
Reference, GetObject, "Permissions"); the ``s3:prefix`` S3 evaluates for that decision is not
documented: the object key is used here.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from werkzeug.exceptions import HTTPException

from pipelinectl.localaws import enforce
from pipelinectl.localaws.policy import Decision, Principal, Request, evaluate

#: Operations authorized by another operation's IAM action (Service Authorization Reference:
#: SQS batch actions and SNS PublishBatch need the single-message action).
_ACTION_OF = {"sqs:SendMessageBatch": "sqs:SendMessage",
              "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
              "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
              "sns:PublishBatch": "sns:Publish"}
#: Calls AWS authorizes without any permission (STS API Reference, GetCallerIdentity: "No
#: permissions are required to perform this operation").
_FREE = {"sts:GetCallerIdentity"}
#: IAM service prefix per SigV4 signing name where they differ.
_PREFIX = {"monitoring": "cloudwatch"}
_SCOPE = re.compile(r"Credential=(?P<key>[A-Z0-9]+)/\d+/(?P<region>[^/]+)/(?P<service>[^/]+)/")


class Denied(HTTPException):
    """An error response built like the service's own (``description`` is the body)."""

    def __init__(self, status: int, body: str, content_type: str) -> None:
        super().__init__(description=body)
        self.code = status
        self.content_type = content_type

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type)]

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return str(self.description)


def session_of(access_key: str) -> Any:
    """The moto STS role session whose credentials these are, or None (an administrator)."""
    from moto.sts.models import sts_backends

    if not access_key.startswith("ASIA"):
        return None
    for account in list(dict.keys(sts_backends)):
        for backend in list(dict.values(sts_backends[account])):
            found = backend.get_assumed_role_from_access_key(access_key)
            if found is not None:
                return found
    return None


def role_credentials(role_arn: str, session_name: str, region: str) -> dict[str, str]:
    """Temporary credentials of ``role_arn`` (moto's STS AssumeRole, as Lambda does)."""
    from moto.sts.models import sts_backends

    account = role_arn.split(":")[4]
    session = sts_backends[account]["aws"].assume_role(
        region_name=region, role_session_name=session_name[:64], role_arn=role_arn,
        policy="", duration=43200, external_id="")
    return {"AWS_ACCESS_KEY_ID": session.access_key_id,
            "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
            "AWS_SESSION_TOKEN": session.session_token}


def _param(response: Any, name: str) -> Any:
    try:
        return response._get_param(name)
    except Exception:
        return None


def _queue_arn(url: str, region: str) -> str:
    parts = urlparse(url).path.strip("/").split("/")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}" if len(parts) >= 2 else "*"


def _resources(prefix: str, response: Any, region: str, account: str, moto_resource: str
               ) -> list[str]:
    """The ARNs a call acts on (each must be allowed), ``*`` where the action has none."""
    if prefix == "s3":
        return [moto_resource]
    if prefix == "sqs":
        url = _param(response, "QueueUrl")
        return [_queue_arn(url, region)] if url else ["*"]
    if prefix == "sns":
        arn = _param(response, "TopicArn") or _param(response, "TargetArn")
        return [arn] if arn else ["*"]
    if prefix == "dynamodb":
        tables = list((_param(response, "RequestItems") or {}).keys()) or \
            [_param(response, "TableName")]
        return [f"arn:aws:dynamodb:{region}:{account}:table/{t}" for t in tables if t] or ["*"]
    if prefix == "kms":
        key = _param(response, "KeyId")
        return [enforce.resolve_key(key, account, region)[0]] if key else ["*"]
    if prefix == "logs":
        group, stream = _param(response, "logGroupName"), _param(response, "logStreamName")
        if not group:
            return ["*"]
        arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
        return [f"{arn}:log-stream:{stream}" if stream else arn]
    return ["*"]


#: DynamoDB transactions are authorized as their actions on each table (DynamoDB Developer
#: Guide, "Using IAM with DynamoDB transactions": "Permissions for Put, Update, Delete, and Get
#: actions are governed by the permissions used for the underlying PutItem, UpdateItem,
#: DeleteItem, and GetItem operations"; ConditionCheck by dynamodb:ConditionCheckItem).
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _checks(action: str, response: Any, region: str, account: str, moto_resource: str
            ) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs the call needs, every one of them allowed."""
    prefix = action.split(":", 1)[0]
    if action in ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"):
        pairs = []
        for item in _param(response, "TransactItems") or []:
            for kind, body in item.items():
                table = f"arn:aws:dynamodb:{region}:{account}:table/{body.get('TableName')}"
                pairs.append((f"dynamodb:{_TRANSACT.get(kind, kind)}", table))
        return pairs
    return [(action, r) for r in _resources(prefix, response, region, account, moto_resource)]


def _resource_policy(prefix: str, resource: str, region: str, account: str) -> tuple[Any, bool]:
    """The resource's own policy and whether it is a KMS key policy."""
    if prefix == "s3" and resource.startswith("arn:aws:s3:::"):
        from moto.s3.models import s3_backends

        bucket = resource[len("arn:aws:s3:::"):].split("/", 1)[0]
        try:
            return s3_backends[account]["aws"].get_bucket(bucket).policy, False
        except Exception:
            return None, False
    if prefix == "sns" and resource != "*":
        topic = enforce.topic_of(resource)
        return (topic.policy if topic else None), False
    if prefix == "sqs" and resource != "*":
        queue = enforce.queue_of(resource)
        return (queue.policy if queue else None), False
    if prefix == "kms" and resource != "*":
        return enforce.resolve_key(resource, account, region)[1], True
    return None, False


def _context(session: Any, prefix: str, response: Any, region: str) -> dict[str, list[str]]:
    now = time.time()
    context = {
        "aws:securetransport": ["true"], "aws:sourceip": ["127.0.0.1"],
        "aws:currenttime": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))],
        "aws:epochtime": [str(int(now))], "aws:principalarn": [session.role_arn],
        "aws:principalaccount": [session.account_id], "aws:principaltype": ["AssumedRole"],
        "aws:userid": [session.user_id], "aws:requestedregion": [region],
    }
    if prefix == "s3":
        prefix_param = (getattr(response, "querystring", {}) or {}).get("prefix")
        if prefix_param:
            context["s3:prefix"] = [unquote(prefix_param[0])]
    if prefix == "kms":
        context["kms:calleraccount"] = [session.account_id]
        for key, value in (_param(response, "EncryptionContext") or {}).items():
            context[f"kms:encryptioncontext:{key}".lower()] = [str(value)]
    return context


def _decide(session: Any, action: str, resource: str, context: dict[str, list[str]],
            region: str) -> tuple[Request, Decision]:
    prefix = action.split(":", maxsplit=1)[0]
    account = session.account_id
    policy, is_key = _resource_policy(prefix, resource, region, account)
    if is_key:
        context = {**context, "kms:resourcealiases": enforce.resolve_key(
            resource, account, region)[2]}
        context = {k: v for k, v in context.items() if v}
    principal = Principal(account=account, arn=session.arn, role_arn=session.role_arn)
    request = Request(principal, action, resource, context)
    return request, evaluate(request, enforce.role_policies(session.role_arn), policy,
                             key_policy=is_key)


def _error(prefix: str, response: Any, code: str, message: str) -> Denied:
    """``code``/``message`` as the service's protocol carries them."""
    if prefix == "s3":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                f"<Message>{_xml(message)}</Message></Error>")
        return Denied(403, body, "application/xml")
    if prefix in ("sns", "sts", "iam", "cloudwatch", "ec2"):
        status = 400 if code == "KMSAccessDenied" else 403
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>"
                f"{_xml(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>")
        return Denied(status, body, "text/xml")
    if prefix == "sqs":  # JSON protocol, query compatible: botocore reads the code from here
        response.response_headers["x-amzn-query-error"] = "AccessDenied;Sender"
        body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException",
                           "message": message})
        return Denied(403, body, "application/x-amz-json-1.0")
    body = json.dumps({"__type": "AccessDeniedException", "message": message})
    return Denied(400, body, "application/x-amz-json-1.1")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _request_parts(response: Any, is_s3: bool) -> tuple[str, str, str, str] | None:
    """(access key, region, IAM prefix, IAM action) of a SigV4 request, None if unsigned."""
    match = _SCOPE.search(str(response.headers.get("Authorization", "")))
    if match is None:
        return None
    service = match.group("service")
    prefix = _PREFIX.get(service, service)
    operation = response.data.get("Action", "") if is_s3 else response._get_action()
    action = f"{prefix}:{operation}"
    return match.group("key"), match.group("region"), prefix, _ACTION_OF.get(action, action)


def authorize_call(response: Any, is_s3: bool, moto_resource: str) -> None:
    """Raise :class:`Denied` when a role session issued here may not make this request."""
    if not enforce.enabled():
        return
    parts = _request_parts(response, is_s3)
    if parts is None:
        return
    access_key, region, prefix, action = parts
    session = session_of(access_key)
    if session is None or action in _FREE:
        return
    context = _context(session, prefix, response, region)
    for needed, resource in _checks(action, response, region, session.account_id,
                                    moto_resource):
        request, decision = _decide(session, needed, resource, context, region)
        if not decision.allowed:
            raise _refused(prefix, response, request, decision)
        if needed == "s3:GetObject":
            _missing_object_needs_list(session, response, resource, context, region)
        if needed == "sns:Publish":
            _topic_key_for_caller(session, response, resource, context, region)


def _refused(prefix: str, response: Any, request: Request, decision: Decision,
             code: str | None = None) -> Denied:
    import logging

    logging.getLogger(__name__).warning("refused: %s (%s)", decision.message(request),
                                        decision.reason(), extra={"activity": "refused"})
    default = {"s3": "AccessDenied", "sns": "AuthorizationError", "sqs": "AccessDenied",
               "cloudwatch": "AccessDenied", "sts": "AccessDenied", "iam": "AccessDenied"}
    return _error(prefix, response, code or default.get(prefix, "AccessDeniedException"),
                  decision.message(request))


def _missing_object_needs_list(session: Any, response: Any, resource: str,
                               context: dict[str, list[str]], region: str) -> None:
    from moto.s3.models import s3_backends

    bucket, _, key = resource[len("arn:aws:s3:::"):].partition("/")
    try:
        if s3_backends[session.account_id]["aws"].get_object(bucket, key) is not None:
            return
    except Exception:
        pass
    listing = {**context, "s3:prefix": [key]}
    request, decision = _decide(session, "s3:ListBucket", f"arn:aws:s3:::{bucket}", listing,
                                region)
    if not decision.allowed:
        raise _refused("s3", response, request, decision)


def _topic_key_for_caller(session: Any, response: Any, topic_arn: str,
                          context: dict[str, list[str]], region: str) -> None:
    topic = enforce.topic_of(topic_arn)
    if topic is None or not topic.kms_master_key_id:
        return
    account = topic_arn.split(":")[4]
    key_arn = enforce.resolve_key(topic.kms_master_key_id, account, topic_arn.split(":")[3])[0]
    via = {**context, "kms:calleraccount": [session.account_id],
           "kms:viaservice": [f"sns.{region}.amazonaws.com"]}
    for action in enforce.KEY_USE:
        request, decision = _decide(session, action, key_arn, via, region)
        if not decision.allowed:
            raise _refused("sns", response, request, decision, code="KMSAccessDenied")


def authenticate_and_authorize(original: Any) -> Any:
    """Patch of moto's ``ActionAuthenticatorMixin._authenticate_and_authorize_action``."""

    def hook(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        authorize_call(self, iam_request_cls.__name__ == "S3IAMRequest", resource)
        original(self, iam_request_cls, resource)

    return hook


@dataclass(frozen=True)
class _RoleSession:
    """The role as a Lambda service call uses it (polling the queue, shipping the logs)."""

    role_arn: str
    account_id: str
    session_name: str

    @property
    def arn(self) -> str:
        role = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account_id}:assumed-role/{role}/{self.session_name}"

    @property
    def user_id(self) -> str:
        return f"AROA:{self.session_name}"


def service_call_refused(role_arn: str, session_name: str, actions: list[str], resource: str,
                         region: str) -> str | None:
    """Why the execution role may not make one of ``actions`` on ``resource`` (the calls the
    Lambda service makes with it: sqs:ReceiveMessage/DeleteMessage/GetQueueAttributes for an
    SQS event source mapping, Lambda Developer Guide "Using Lambda with Amazon SQS" >
    execution role permissions; logs:CreateLogStream/PutLogEvents for the function's logs),
    or None when every one is allowed or nothing is enforced."""
    if not enforce.enabled() or not role_arn:
        return None
    session = _RoleSession(role_arn, role_arn.split(":")[4], session_name)
    base = _context(session, "", None, region)
    for action in actions:
        request, decision = _decide(session, action, resource, dict(base), region)
        if not decision.allowed:
            return f"{decision.message(request)} ({decision.reason()})"
    return None
