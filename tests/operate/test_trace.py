"""`pipelinectl trace` against `pipelinectl local`, as a user would run it: one local AWS and
one `up` shared by every case (a transaction stored and alerted via SNS, one via SQS, a file
row, a dead-lettered message, a row rejected in a file, the file itself), asserting the
timeline's JSON content against what the pipeline really did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for

from .test_e2e import PIPELINE_TOML, LocalPipeline, running_local

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("trace-local")]
ROWS = ["transaction_id,amount,timestamp", "tr-f1,10.50,2024-08-09T12:34:56Z",
        "tr-f2,2000,2024-08-09T12:34:56Z", "tr-f3,-5,2024-08-09T12:34:56Z"]
FILE_KEY = "incoming/trace/t.csv"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory,
          build_cache: Path) -> Iterator[LocalPipeline]:
    """The pipeline, with traffic of every kind already sent through it."""
    with running_local(tmp_path_factory.mktemp("trace"), build_cache,
                       PIPELINE_TOML) as pipeline:
        pipeline.ok("send-test", "--amount", "1500", "--id", "tr-sns")
        pipeline.ok("send-test", "--amount", "100", "--id", "tr-sqs", "--via", "sqs")
        poison = pipeline.cli("send-test", "--amount", "2.999", "--id", "tr-dlq", "--via",
                              "sqs", "--timeout", "30")
        assert "is in the DLQ" in poison.stderr, poison.stderr
        pipeline.client("s3").put_object(Bucket=pipeline.names()["bucket"], Key=FILE_KEY,
                                         Body="\n".join(ROWS).encode())
        wait_for(lambda: pipeline.item("tr-f2") and "alerted_at" in pipeline.item("tr-f2"),
                 30, "the file's rows stored and alerted")
        yield pipeline


def trace(local: LocalPipeline, target: str) -> dict[str, Any]:
    """`trace` once the invocation's REPORT line is in (logs ship when it ends)."""
    def complete() -> dict[str, Any] | None:
        found: dict[str, Any] = local.json("trace", target)
        ended = found["invocations"] and all("duration_ms" in i for i in found["invocations"])
        return found if ended else None

    result: dict[str, Any] = wait_for(complete, 20, f"the trace of {target} with its REPORT")
    return result


def steps(found: dict[str, Any]) -> list[str]:
    return [s["step"] for s in found["steps"]]


def assert_timeline(found: dict[str, Any]) -> None:
    """Steps in time order; the time between steps adds up to the total."""
    times = [s["at_ms"] for s in found["steps"]]
    assert times == sorted(times)
    gaps = sum(s["since_previous_s"] for s in found["steps"])
    assert abs(gaps - found["steps"][-1]["since_first_s"]) < 0.01


def test_stored_and_alerted_via_sns(local: LocalPipeline) -> None:
    found = trace(local, "tr-sns")
    item = local.item("tr-sns")
    assert item is not None
    assert found["outcome"] == "stored and alerted"
    assert found["entered"] == {"via": "sns", "message_id": item["message_id"]["S"],
                                "sns_message_id": item["sns_message_id"]["S"],
                                "transaction_type": "Purchase"}
    assert steps(found) == ["queued", "invocation started", "stored", "alert sent",
                            "invocation ended"]
    (invocation,) = found["invocations"]
    assert invocation["request_id"] == item["request_id"]["S"]
    assert invocation["duration_ms"] > 0 and invocation["billed_ms"] >= 1
    alert = next(s for s in found["steps"] if s["step"] == "alert sent")
    assert item["alert_message_id"]["S"] in alert["detail"]
    assert alert["at"] == item["alerted_at"]["S"]
    assert_timeline(found)
    assert found["missing"] == []


def test_stored_via_sqs_without_alert(local: LocalPipeline) -> None:
    found = trace(local, "tr-sqs")
    assert found["outcome"] == "stored"
    assert found["entered"]["via"] == "sqs" and "sns_message_id" not in found["entered"]
    assert "alert sent" not in steps(found)
    assert steps(found)[0] == "queued" and "stored" in steps(found)
    assert_timeline(found)


def test_a_file_row(local: LocalPipeline) -> None:
    found = trace(local, "tr-f2")
    uri = f"s3://{local.names()['bucket']}/{FILE_KEY}"
    assert found["outcome"] == "stored and alerted"
    assert (found["entered"]["via"], found["entered"]["file"], found["entered"]["row"]) == (
        "s3", uri, 2)
    assert steps(found)[0] == "file uploaded"
    assert {"stored", "alert sent", "file processed", "invocation ended"} <= set(steps(found))
    assert_timeline(found)


def test_dead_lettered(local: LocalPipeline) -> None:
    found = trace(local, "tr-dlq")
    assert found["outcome"] == "dead-lettered" and found["item"] is None
    assert found["dead_letter"]["code"] == "amount_precision"
    assert found["entered"]["via"] == "sqs"
    assert found["entered"]["message_id"] == found["dead_letter"]["source_message_id"]
    dlq = next(s for s in found["steps"] if s["step"] == "in the DLQ")
    assert "more than 2 decimal places" in dlq["detail"]
    assert steps(found) == ["invocation started", "in the DLQ", "invocation ended"]


def test_rejected_in_a_file(local: LocalPipeline) -> None:
    found = trace(local, "tr-f3")
    assert found["outcome"] == "rejected"
    (line,) = found["rejects"]
    assert (line["row"], line["code"]) == (3, "amount_not_positive")
    assert line["object"].endswith("/rejected/trace/t.csv.errors.jsonl")
    assert found["entered"]["row"] == 3
    assert {"file uploaded", "rejected", "file processed", "invocation ended"} <= set(
        steps(found))


def test_a_file(local: LocalPipeline) -> None:
    uri = f"s3://{local.names()['bucket']}/{FILE_KEY}"
    found = trace(local, uri)
    assert found["kind"] == "file" and found["found"]
    assert found["file"]["counts"] == {"rows": 3, "stored": 2, "unchanged": 0, "rejected": 1,
                                       "alerts_sent": 1}
    assert found["file"]["counts_from"] == "run record"
    assert (found["file"]["run"]["state"], found["file"]["run"]["mode"]) == ("complete", "single")
    assert found["outcome"].startswith("complete (single run): 3 rows, 2 stored")
    assert [a["transaction_id"] for a in found["file"]["alerts"]] == ["tr-f2"]
    assert len(found["file"]["rejects_objects"]) == 1
    assert steps(found)[0] == "file uploaded"
    assert {"run started", "alert sent", "file processed", "invocation ended"} <= set(
        steps(found))
    assert_timeline(found)
    assert found["missing"] == []


def test_text_output_and_nothing_found(local: LocalPipeline) -> None:
    text = local.ok("trace", "tr-sns")
    assert "Trace of transaction tr-sns: stored and alerted" in text
    assert "invocation ended" in text and "First to last step" in text
    missing = local.cli("trace", "tr-never-sent")
    assert missing.returncode == 1
    assert "Nothing found for 'tr-never-sent'" in missing.stderr
    assert "not stored in the table, not in the DLQ" in missing.stdout
    usage = local.cli("trace", "s3://bucket/elsewhere/x.csv")
    assert usage.returncode == 2 and "s3://BUCKET/incoming/KEY" in usage.stderr

