"""Operate a running pipeline: send-test, the smoke test, logs, the DLQ, local AWS and demo.

Each module returns data (dataclasses with ``as_dict()`` for ``--output json``); the click
commands in ``pipelinectl.cli_operate`` render it through ``pipelinectl.render``. Like the
provisioning core, nothing here imports boto3 at module level, so ``--help`` stays fast.
"""
