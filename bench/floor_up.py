"""The floor for `up`: the create calls `up` makes, in the order it made them (the step
graph's dependency order), with one boto3 session and nothing else: no plan, no reads, no
waits, no rendering. Started as its own process, like the CLI, so the ratio
`pipelinectl up` / this script is what pipelinectl adds on top of the calls themselves.

Run by bench_provisioning.py: python bench/floor_up.py CALLS.pickle ENDPOINT_URL
CALLS.pickle holds [(service, operation, params)] and the KMS key id that the recording made
(a key id is new on every CreateKey: this run's replaces it in later parameters).
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import boto3
from botocore import xform_name


def substitute(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new) if old else value
    if isinstance(value, dict):
        return {k: substitute(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, old, new) for v in value]
    return value


def main() -> None:
    with open(sys.argv[1], "rb") as file:
        calls, old_key = pickle.load(file)
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test",
                            region_name="us-east-1")
    clients: dict[str, Any] = {}
    new_key = ""
    for service, operation, params in calls:
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=sys.argv[2])
        answer = getattr(clients[service], xform_name(operation))(
            **substitute(params, old_key, new_key))
        if operation == "CreateKey":
            new_key = answer["KeyMetadata"]["KeyId"]


if __name__ == "__main__":
    main()
