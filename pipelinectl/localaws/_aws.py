"""boto3 clients the engine uses to talk to its own endpoint, and helpers to walk moto's state."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from pipelinectl.localaws.faults import INTERNAL_AGENT

#: Credentials the local AWS hands out (moto accepts any; these map to account 123456789012).
TEST_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class Clients:
    """Thread-safe cache of boto3 clients pointed at the local endpoint, one per service/region."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        # Our own session: the user's profile, config file and AWS_ENDPOINT_URL_* play no part.
        core = botocore.session.Session(
            session_vars={
                "profile": (None, None, None, None),
                "config_file": (None, None, os.devnull, None),
                "credentials_file": (None, None, os.devnull, None),
            }
        )
        self._session = boto3.session.Session(
            botocore_session=core, region_name="us-east-1", **TEST_CREDENTIALS
        )
        self._config = Config(
            retries={"max_attempts": 2, "mode": "standard"},
            read_timeout=30,
            max_pool_connections=64,
            user_agent_extra=INTERNAL_AGENT,  # never faulted (faults.py)
        )

    def __call__(self, service: str, region: str) -> Any:
        key = (service, region)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._session.client(
                        service,
                        region_name=region,
                        endpoint_url=self.endpoint_url,
                        config=self._config,
                    )
                    self._clients[key] = client
        return client


def regional_backends(backend_dict: Any) -> Iterator[tuple[str, str, Any]]:
    """(account, region, backend) for every backend moto has created so far (none created here)."""
    for account_id, by_region in list(dict.items(backend_dict)):
        for region, backend in list(dict.items(by_region)):
            yield account_id, region, backend


def arn_parts(arn: str) -> tuple[str, str, str, str]:
    """(service, region, account, resource) of an ARN."""
    _, _, service, region, account, resource = arn.split(":", 5)
    return service, region, account, resource
