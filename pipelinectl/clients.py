"""The one place that makes boto3 clients: region, profile, endpoint, retries, user agent.

It also records every API call (service, operation, parameters) through botocore's event
hooks, so tests and benchmarks can count calls and `-v` can show them.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelinectl import __version__
from pipelinectl.config import Config, check_region_form
from pipelinectl.errors import PipelineError, UsageError

Client = Any  # boto3 clients are generated at run time; we do not ship type stubs for them.

# The local AWS's read-only description of itself (README: "The embedded local AWS").
LOCAL_INFO_PATH = "/_pipelinectl/info"

READ_PREFIXES = ("Get", "List", "Describe", "Head", "Check", "Lookup", "Search", "Scan",
                 "Query", "Select", "Test")


def is_mutating(operation: str) -> bool:
    """True for calls that change state (what a no-op `up` must never make)."""
    return not operation.startswith(READ_PREFIXES)


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def mutating(self) -> bool:
        return is_mutating(self.operation)

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}"


@dataclass
class ClientFactory:
    """Builds and caches one client per service; safe to share between threads."""

    config: Config
    calls: list[Call] = field(default_factory=list)
    listeners: list[Callable[[Call], None]] = field(default_factory=list)
    _clients: dict[str, Client] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _session: Any = None
    _account: str | None = None
    _info: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str | None:
        if self.config.local:
            return f"http://127.0.0.1:{self.config.local_port}"
        return self.config.endpoint_url  # None: botocore applies AWS_ENDPOINT_URL itself

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3
            import botocore.session

            core = botocore.session.Session()
            core.register_component("data_loader", _shared_loader())
            kwargs: dict[str, Any] = {"botocore_session": core}
            if self.config.local:
                kwargs.update(aws_access_key_id="test", aws_secret_access_key="test",
                              region_name=self.config.region or "us-east-1")
            else:
                kwargs.update(profile_name=self.config.profile, region_name=self.config.region)
            self._session = boto3.Session(**kwargs)
        return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise UsageError("No AWS region is set: pass --region or set AWS_REGION.")
        check_region_form(str(region))
        if not self._region_has_partition(str(region)):
            raise UsageError(
                f"{region!r} is not an AWS region name (no AWS partition has regions named "
                "like it, e.g. us-east-1, cn-north-1, us-gov-west-1); pass a valid --region.")
        known = {name for partition in self.session.get_available_partitions()
                 for name in self.session.get_available_regions("sqs", partition)}
        if known and region not in known:
            raise UsageError(
                f"Unknown AWS region {region!r}: this boto3 lists no such region (upgrade it "
                "if the region is new); pass a valid --region.")
        return str(region)

    @staticmethod
    def _region_has_partition(region: str) -> bool:
        """Checked even with a custom endpoint, like the list of known regions: the region
        becomes part of every ARN and of the bucket name, and an emulator fails on a region
        it does not know only once IAM (global) and S3 (any region) have created things: moto
        answers an HTML 500 page for `mars-north-9` or `eu-north-9` after the role and the
        bucket exist. So a custom endpoint gets no region AWS does not have."""
        from botocore.exceptions import UnknownRegionError
        from botocore.regions import EndpointResolver

        try:
            EndpointResolver(_shared_loader().load_data("endpoints")).get_partition_for_region(
                region)
        except UnknownRegionError:
            return False
        return True

    def endpoint_info(self) -> dict[str, Any] | None:
        """What a pipelinectl local AWS says about itself at LOCAL_INFO_PATH (its emulated
        delays, e.g. of S3's EventBridge notifications); None for AWS, or for an endpoint
        that does not answer there. One GET per command, only when a delay matters."""
        if "endpoint_info" not in self._info:
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or \
                os.environ.get("AWS_ENDPOINT_URL")
            self._info["endpoint_info"] = _fetch_info(endpoint) if endpoint else None
        info: dict[str, Any] | None = self._info["endpoint_info"]
        return info

    def client(self, service: str) -> Client:
        with self._lock:
            if not self._clients and self.config.local:
                _require_listener(self.endpoint_url or "")
            if service not in self._clients:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def _make(self, service: str) -> Client:
        from botocore.config import Config as BotoConfig

        boto_config = BotoConfig(
            retries={"mode": "standard", "max_attempts": 8},
            user_agent_appid=f"pipelinectl-{__version__}",
            connect_timeout=5,
            read_timeout=65,
            max_pool_connections=20,
        )
        client = self.session.client(service, region_name=self.region,
                                     endpoint_url=self.endpoint_url, config=boto_config)
        client.meta.events.register("before-parameter-build.*.*", self._record)
        return client

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        call = Call(model.service_model.service_name, model.name, dict(params))
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)

    def account_id(self) -> str:
        if self._account is None:
            self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account


def _fetch_info(endpoint: str) -> dict[str, Any] | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + LOCAL_INFO_PATH,
                                    timeout=2) as response:
            info = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


@functools.cache
def _shared_loader() -> Any:
    """One botocore model loader per process: parsing service JSON is most of a client's
    creation cost, and every factory (each test, the local AWS) would otherwise repeat it."""
    from botocore.loaders import create_loader

    return create_loader()


def _require_listener(endpoint: str) -> None:
    """Fail in a second, with the fix, rather than after a minute of connection retries."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80),
                                      timeout=2):
            pass
    except OSError:
        raise PipelineError(
            f"Nothing is listening on {endpoint}: start it with `pipelinectl local` in "
            "another terminal (or set PIPELINECTL_LOCAL_PORT to its port)."
        ) from None
