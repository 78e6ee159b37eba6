"""Large files on `pipelinectl local` (issue 12), end to end with the deployed processor:
a CSV split into several parts (part_size_kb = 64, the smallest accepted) and a gzip that
can only finish by continuation (function_timeout = 4: each slice keeps 2 s back and has
about 2 s to read before it hands on; at 3 s a loaded 2-core machine timed slices out),
while two invocations are killed mid-slice (`invoke:...=crash@2`, faults.py).
Every row stored once, every over-threshold row alerted (again only within the README's
window: a worker killed after SNS accepted), every bad row rejected once, and each file's
run record complete with those counts.

Bounded: 6,200 rows in all (60-120 s on a busy 2-core machine, much of it SQS's visibility
timeout after the crashes and timeouts); bench/bench_large_files.py runs the same at scale.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from sample_rows import rows

from pipelinectl.operate.fileruns import FileRun, read_file_run
from pipelinectl.resources.queues import only_sender

from .test_e2e import LocalPipeline, running_local

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-large-files")]

# visibility_timeout = 6 x the function timeout, as Lambda's developer guide recommends for an
# SQS event source ("Using Lambda with Amazon SQS"): a crashed slice comes back after 24 s.
PIPELINE_TOML = """\
function_timeout = 4
visibility_timeout = 24
part_size_kb = 64
split_threshold_kb = 64
"""
CSV_KEY, GZ_KEY = "incoming/large/big.csv", "incoming/large/big.jsonl.gz"
BUDGET_S = 150  # the whole story once `up` is done; it takes about 60 s here


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, build_cache: Path) -> Iterator[LocalPipeline]:
    with running_local(tmp_path_factory.mktemp("large"), build_cache, PIPELINE_TOML,
                       live=True) as pipeline:
        yield pipeline


def capture_alerts(local: LocalPipeline) -> str:
    """A queue subscribed to the alerts topic, which only that topic may send to."""
    sqs, sns = local.client("sqs"), local.client("sns")
    arn = "arn:aws:sqs:us-east-1:123456789012:large-alert-capture"
    policy = only_sender("AlertsTopicSends", "sns.amazonaws.com", arn, local.names()["alerts"])
    url: str = sqs.create_queue(QueueName="large-alert-capture",
                                Attributes={"Policy": json.dumps(policy)})["QueueUrl"]
    sns.subscribe(TopicArn=local.names()["alerts"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return url


def stored_ids(local: LocalPipeline, prefix: str) -> dict[str, str]:
    """transaction id -> source, of the stored items with this prefix."""
    pages = local.client("dynamodb").get_paginator("scan").paginate(
        TableName=local.names()["table"], ConsistentRead=True,
        FilterExpression="begins_with(transaction_id, :p)",
        ExpressionAttributeValues={":p": {"S": prefix + "-"}},
        ProjectionExpression="transaction_id, #s", ExpressionAttributeNames={"#s": "source"})
    return {i["transaction_id"]["S"]: i["source"]["S"] for p in pages for i in p["Items"]}


def rejected_rows(local: LocalPipeline, key: str) -> list[int]:
    """Every rejected row number listed under rejected/ for this file (duplicates kept)."""
    s3, bucket = local.client("s3"), local.names()["bucket"]
    name = key.removeprefix("incoming/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"rejected/{name}").get("Contents", [])
    found = []
    for obj in listed:
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        found += [json.loads(line)["row"] for line in body.splitlines() if line]
    return sorted(found)


def run_record(local: LocalPipeline, key: str) -> FileRun | None:
    return read_file_run(local.client("dynamodb"), local.names()["table"],
                         local.names()["bucket"], key)


def faults(local: LocalPipeline, spec: str | None = None) -> dict[str, Any]:
    """PUT a fault SPEC on the running local AWS (README, "Fault injection"), or GET its state."""
    url = f"http://127.0.0.1:{local.port}/_pipelinectl/faults"
    request = urllib.request.Request(url, data=None if spec is None else spec.encode(),
                                     method="GET" if spec is None else "PUT")
    with urllib.request.urlopen(request, timeout=10) as answer:
        state: dict[str, Any] = json.loads(answer.read() or b"{}")
    return state


def live_view(local: LocalPipeline) -> str:
    """The end of the local AWS's live view, to say why a run did not finish in time."""
    return (local.cwd / "local.log").read_text()[-4000:]


def live_view_all(local: LocalPipeline) -> str:
    return (local.cwd / "local.log").read_text()


def finished(local: LocalPipeline, key: str) -> FileRun | None:
    run = run_record(local, key)
    return run if run is not None and run.state != "running" else None


def test_a_split_csv_and_a_resumed_gzip_survive_killed_workers_stored_once(
        local: LocalPipeline) -> None:
    alerts_url = capture_alerts(local)
    s3, bucket = local.client("s3"), local.names()["bucket"]
    csv_rows, csv_big, csv_bad = rows(4200, "lcsv")
    body = ("transaction_id,amount,timestamp\n" + "".join(
        f"{r['transaction_id']},{r['amount']},{r['timestamp']}\n" for r in csv_rows)).encode()
    assert len(body) > 2 * 64 * 1024  # at least three parts of 64 KiB
    gz_rows, gz_big, gz_bad = rows(2000, "lgz")
    gz_body = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in gz_rows))
    s3.put_object(Bucket=bucket, Key=GZ_KEY, Body=gz_body)
    s3.put_object(Bucket=bucket, Key=CSV_KEY, Body=body)

    # Once both runs are under way, the next two invocations die mid-slice (SIGKILL at a
    # random point of a typical invocation): SQS gives their messages back after the
    # visibility timeout and the retries must neither lose nor repeat a row.
    wait_for(lambda: (run := run_record(local, GZ_KEY)) is not None and len(run.slice_ids) >= 1
             and run_record(local, CSV_KEY) is not None, 60, "both runs under way", interval=0.3)
    faults(local, "invoke:ecommerce-processor=crash@2")

    try:
        csv_run = wait_for(lambda: finished(local, CSV_KEY), BUDGET_S,
                           "the CSV's run complete", interval=0.5)
        gz_run = wait_for(lambda: finished(local, GZ_KEY), BUDGET_S,
                          "the gzip's run complete", interval=0.5)
    except AssertionError as exc:  # say why: what ran, how long, what failed
        raise AssertionError(f"{exc}\nlive view:\n{live_view(local)}") from None
    assert faults(local)["injected"] == 2  # two workers were killed mid-slice

    for run, data, bad, prefix, key in (
            (csv_run, csv_rows, csv_bad, "lcsv", CSV_KEY),
            (gz_run, gz_rows, gz_bad, "lgz", GZ_KEY)):
        assert run.state == "complete", run.failed_reason
        stored = stored_ids(local, prefix)
        assert set(stored) == {r["transaction_id"] for i, r in enumerate(data, 1)
                               if i not in bad}
        # each row under its own number in the whole file, whichever part read it
        assert all(source.endswith(f"#{tid.rsplit('-', 1)[1]}")
                   for tid, source in stored.items())
        assert run.totals is not None
        assert (run.totals.rows, run.totals.stored + run.totals.unchanged,
                run.totals.rejected) == (len(data), len(data) - len(bad), len(bad))
        assert rejected_rows(local, key) == sorted(bad)  # each bad row once
    assert csv_run.mode == "split" and csv_run.parts_total is not None \
        and csv_run.parts_total >= 3
    assert gz_run.mode == "resumed" and len(gz_run.slice_ids) >= 2  # finished by continuation

    sqs = local.client("sqs")
    alerted: Counter[str] = Counter()

    def all_alerted() -> bool:
        for message in sqs.receive_message(QueueUrl=alerts_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=alerts_url, ReceiptHandle=message["ReceiptHandle"])
            alert: dict[str, Any] = json.loads(message["Body"])
            if "AlarmName" not in alert:  # the killed workers also raise the errors alarm
                alerted[str(alert.get("transaction_id"))] += 1
        return set(alerted) >= csv_big | gz_big

    wait_for(all_alerted, 30, "every over-threshold row alerted")
    assert set(alerted) == csv_big | gz_big
    # README "Storage and the alert guarantee": a repeat needs the function to die between
    # SNS accepting an alert and alerted_at being written, so at most one per killed
    # invocation (the two crashes and any timeout the live view shows).
    killed = 2 + live_view_all(local).count("timed out after")
    assert sum(n - 1 for n in alerted.values()) <= killed, alerted.most_common(3)
