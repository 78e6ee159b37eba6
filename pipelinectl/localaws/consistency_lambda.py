"""The Lambda half of the consistency emulation (see ``consistency``, items 3-5): function
states (Pending, LastUpdateStatus InProgress), event source mapping states (Creating,
Deleting) and the refusals AWS answers while they last.

Each builder takes moto's original attribute and returns its replacement. The moments of
change are kept on moto's own objects (``_pcl_*`` attributes) and, for deleted mappings, in
``consistency.state``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelinectl.localaws import consistency

# Lambda API reference, CreateFunction errors: InvalidParameterValueException; the wording is
# the one AWS answers for a role Lambda cannot assume (yet).
ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
# The wording AWS answers CreateEventSourceMapping with while the execution role's policy
# (sqs:ReceiveMessage ...) has not reached Lambda (as reported by users, e.g. in
# terraform-provider-aws's retries on it; not in the API reference).
ROLE_CANNOT_RECEIVE = ("The function execution role does not have permissions to call "
                       "ReceiveMessage on SQS")


def _error(code: str, message: str, status: int = 400) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(code, message)
    error.code = status
    return error


def _within(obj: Any, attr: str, duration: float) -> bool:
    return consistency.state.within(obj.__dict__.get(attr), duration)


# -- function states ------------------------------------------------------------------------


def function_configuration(original: Callable[..., dict[str, Any]]
                           ) -> Callable[..., dict[str, Any]]:
    """Lambda Developer Guide, "Lambda function states": Pending with reason code Creating
    after CreateFunction; LastUpdateStatus InProgress after an update."""
    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config = original(self, on_create)
        if _within(self, "_pcl_created_at", consistency.state.durations.function_pending):
            config.update(State="Pending", StateReason="The function is being created.",
                          StateReasonCode="Creating")
            if not on_create:
                config.update(LastUpdateStatus="InProgress",
                              LastUpdateStatusReason="The function is being created.",
                              LastUpdateStatusReasonCode="Creating")
        elif _within(self, "_pcl_updated_at", consistency.state.durations.function_updating):
            config.update(LastUpdateStatus="InProgress",
                          LastUpdateStatusReason="The function is being updated.")
        return config

    return get_configuration


def create_function(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: Any, spec: dict[str, Any]) -> Any:
        if not consistency.role_assumable(str(spec.get("Role", ""))):
            raise _error("InvalidParameterValueException", ROLE_NOT_ASSUMABLE)
        created = original(self, spec)
        now = consistency.clock()
        created.__dict__["_pcl_created_at"] = now
        self.get_function(spec["FunctionName"]).__dict__["_pcl_created_at"] = now
        return created

    return create


def update_function(original: Callable[..., Any]) -> Callable[..., Any]:
    """UpdateFunctionCode and UpdateFunctionConfiguration: refused while the function is
    Pending or another update is InProgress (Developer Guide, "Lambda function states")."""
    def update(self: Any, function_name: str, qualifier: Any, body: dict[str, Any]) -> Any:
        function = self.get_function(function_name, qualifier)
        if _within(function, "_pcl_created_at", consistency.state.durations.function_pending):
            raise _error("ResourceConflictException", "The operation cannot be performed at "
                         "this time. The function is currently in the following state: "
                         "Pending", 409)
        if _within(function, "_pcl_updated_at", consistency.state.durations.function_updating):
            raise _error("ResourceConflictException", "The operation cannot be performed at "
                         "this time. An update is in progress for resource: "
                         f"{function.function_arn}", 409)
        if "Role" in body and not consistency.role_assumable(str(body["Role"])):
            raise _error("InvalidParameterValueException", ROLE_NOT_ASSUMABLE)
        result = original(self, function_name, qualifier, body)
        function.__dict__["_pcl_updated_at"] = consistency.clock()
        return result

    return update


# -- event source mappings ------------------------------------------------------------------


def mapping_configuration(original: Callable[..., dict[str, Any]]
                          ) -> Callable[..., dict[str, Any]]:
    def get_configuration(self: Any) -> dict[str, Any]:
        config = original(self)
        if "_pcl_deleted_at" in self.__dict__:
            config["State"] = "Deleting"
        elif _within(self, "_pcl_created_at", consistency.state.durations.mapping_creating):
            config["State"] = "Creating"
        return config

    return get_configuration


def _deleting(backend: Any) -> list[Any]:
    """The mappings ``backend`` deleted that are still Deleting (the others are forgotten)."""
    state = consistency.state
    with state.lock:
        kept = [(at, esm) for at, esm in state.mappings.get(id(backend), [])
                if state.within(at, state.durations.mapping_deleting)]
        state.mappings[id(backend)] = kept
    return [esm for _, esm in kept]


def create_mapping(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: Any, spec: dict[str, Any]) -> Any:
        function = self.get_function(spec.get("FunctionName", ""))
        for esm in _deleting(self):
            if (esm.event_source_arn, esm.function_arn) == (spec.get("EventSourceArn"),
                                                            function.function_arn):
                raise _error(
                    "ResourceConflictException",
                    f"An event source mapping with SQS arn (\" {esm.event_source_arn} \") and "
                    f"function (\" {spec['FunctionName']} \") already exists. Please update or "
                    f"delete the existing mapping with UUID {esm.uuid}", 409)
        if not consistency.role_policy_propagated(function.role):
            raise _error("InvalidParameterValueException", ROLE_CANNOT_RECEIVE)
        esm = original(self, spec)
        esm.__dict__["_pcl_created_at"] = consistency.clock()
        return esm

    return create


def delete_mapping(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete(self: Any, uuid: str) -> Any:
        esm = original(self, uuid)
        if esm is not None:
            now = consistency.clock()
            esm.__dict__["_pcl_deleted_at"] = now
            with consistency.state.lock:
                consistency.state.mappings.setdefault(id(self), []).append((now, esm))
        return esm

    return delete


def get_mapping(original: Callable[..., Any]) -> Callable[..., Any]:
    def get(self: Any, uuid: str) -> Any:
        found = original(self, uuid)
        if found is None:
            found = next((esm for esm in _deleting(self) if esm.uuid == uuid), None)
        return found

    return get


def list_mappings(original: Callable[..., Any]) -> Callable[..., Any]:
    def list_(self: Any, event_source_arn: str, function_name: str) -> list[Any]:
        found = list(original(self, event_source_arn, function_name))
        for esm in _deleting(self):
            if event_source_arn and esm.event_source_arn != event_source_arn:
                continue
            if function_name and esm.function_name != function_name:
                continue
            found.append(esm)
        return found

    return list_
